//! Masking throughput, one thread, release build: `countersign mask FILE > /dev/null` end to end
//! and `Masker::mask_text` in-process, on two 10 MiB corpora side by side:
//! - sparse: the labelled generator's mixed JSON lines and prose, 3 % of lines sensitive;
//! - dense: a realistic export where every line carries about three sensitive values, names
//!   and addresses included (the independent records of `tests/data/mask/labelled.jsonl`,
//!   one per line, repeated: JSON export lines and sentences, 3.3 labelled values per line).
//!
//! `cargo bench --bench mask`. Targets (issue 18): end to end at least 300 MB/s sparse and
//! 150 MB/s dense.
//!
//! `MASK_BEFORE=PATH` also times another build of the command (the one before a change) end to
//! end in the same run. For profiling, `MASK_PROFILE=sparse` (or `dense`) masks that corpus once in-process and
//! nothing else, `MASK_DUMP=DIR` writes both corpora to DIR, and `MASK_MB=N` sets the corpus size (for example
//! `MASK_PROFILE=dense MASK_MB=1 valgrind --tool=callgrind target/release/deps/mask-* --bench`).

use countersign::mask::Masker;
use std::process::{Command, Stdio};
use std::time::Instant;
use testkit::corpus::generate;

const SIZE: usize = 10 * 1024 * 1024;
/// Timed runs per path (the median and best of them are reported).
const RUNS: usize = 5;

/// The corpus size: `MASK_MB` MiB, 10 by default.
fn size() -> usize {
    std::env::var("MASK_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(SIZE, |mb| mb * 1024 * 1024)
}

fn dense(size: usize) -> (String, usize) {
    let records: Vec<(String, usize)> = include_str!("../tests/data/mask/labelled.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["text"].as_str().unwrap().replace('\n', " "),
                v["labels"].as_array().unwrap().len(),
            )
        })
        .collect();
    let mut text = String::with_capacity(size + 4096);
    let (mut values, mut lines) = (0, 0);
    let mut i = 0;
    while text.len() < size {
        let (record, n) = &records[i % records.len()];
        text.push_str(record);
        text.push('\n');
        values += n;
        lines += 1;
        i += 1;
    }
    (text, values * 100 / lines)
}

fn best_and_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[0], v[v.len() / 2])
}

fn measure(name: &str, text: &str, target: f64, masker: &Masker) -> bool {
    let mb = text.len() as f64 / 1e6;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.txt");
    std::fs::write(&input, text).unwrap();
    let mut in_process = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let (masked, _) = masker.mask_text(text);
        in_process.push(t.elapsed().as_secs_f64());
        std::hint::black_box(masked);
    }
    let end_to_end_of = |binary: &str| {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let status = Command::new(binary)
                .args(["mask", input.to_str().unwrap()])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert!(status.success());
        }
        best_and_median(times)
    };
    // Another build of the command (`MASK_BEFORE=path`), timed in the same run for comparison.
    if let Ok(before) = std::env::var("MASK_BEFORE") {
        let (best, median) = end_to_end_of(&before);
        println!(
            "| {name} | before: `{before} mask FILE > /dev/null` (end to end) | {:.0} | {:.0} | |",
            mb / median,
            mb / best
        );
    }
    let (e_best, e_median) = end_to_end_of(env!("CARGO_BIN_EXE_countersign"));
    let (i_best, i_median) = best_and_median(in_process);
    println!(
        "| {name} | `countersign mask FILE > /dev/null` (end to end) | {:.0} | {:.0} | >= {target:.0} |",
        mb / e_median,
        mb / e_best
    );
    println!(
        "| {name} | `Masker::mask_text` in-process | {:.0} | {:.0} | |",
        mb / i_median,
        mb / i_best
    );
    mb / e_median >= target
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("mask: run with `cargo bench --bench mask`");
        return;
    }
    let size = size();
    let sparse = generate(1, size, 0.03);
    let (dense, per_100_lines) = dense(size);
    let masker = Masker::default();
    if let Ok(dir) = std::env::var("MASK_DUMP") {
        std::fs::write(format!("{dir}/sparse.txt"), &sparse.text).unwrap();
        std::fs::write(format!("{dir}/dense.txt"), &dense).unwrap();
        return;
    }
    if let Ok(which) = std::env::var("MASK_PROFILE") {
        let text = if which == "dense" {
            &dense
        } else {
            &sparse.text
        };
        let t = Instant::now();
        let (masked, findings) = masker.mask_text(text);
        println!(
            "{which}: {:.1} MB in {:.3} s, {} findings",
            text.len() as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            findings.len()
        );
        std::hint::black_box(masked);
        return;
    }
    println!(
        "\nmask: sparse {:.1} MB ({} labelled values), dense {:.1} MB ({:.1} values per line); {RUNS} runs each",
        sparse.text.len() as f64 / 1e6,
        sparse.secrets.len(),
        dense.len() as f64 / 1e6,
        per_100_lines as f64 / 100.0
    );
    println!("| corpus | path | median MB/s | best MB/s | target |");
    println!("|---|---|---|---|---|");
    let sparse_ok = measure("sparse", &sparse.text, 300.0, &masker);
    let dense_ok = measure("dense", &dense, 150.0, &masker);
    println!(
        "targets: sparse {}, dense {}",
        if sparse_ok { "MET" } else { "NOT MET" },
        if dense_ok { "MET" } else { "NOT MET" }
    );
}
