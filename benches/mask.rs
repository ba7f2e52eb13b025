//! Masking throughput, one thread, release build: `countersign mask FILE > /dev/null` end to end
//! and `Masker::mask_text` in-process, on two 10 MiB corpora side by side:
//! - sparse: the labelled generator's mixed JSON lines and prose, 3 % of lines sensitive;
//! - dense: a realistic export where every line carries about three sensitive values, names
//!   and addresses included (the independent records of `tests/data/mask/labelled.jsonl`,
//!   one per line, repeated: JSON export lines and sentences, 3.3 labelled values per line).
//!
//! `cargo bench --bench mask`. Targets (issue 18): end to end at least 300 MB/s sparse and
//! 150 MB/s dense.

use countersign::mask::Masker;
use std::process::{Command, Stdio};
use std::time::Instant;
use testkit::corpus::generate;

const SIZE: usize = 10 * 1024 * 1024;

fn dense() -> (String, usize) {
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
    let mut text = String::with_capacity(SIZE + 4096);
    let (mut values, mut lines) = (0, 0);
    let mut i = 0;
    while text.len() < SIZE {
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
    for _ in 0..3 {
        let t = Instant::now();
        let (masked, _) = masker.mask_text(text);
        in_process.push(t.elapsed().as_secs_f64());
        std::hint::black_box(masked);
    }
    let mut end_to_end = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["mask", input.to_str().unwrap()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        end_to_end.push(t.elapsed().as_secs_f64());
        assert!(status.success());
    }
    let (e_best, e_median) = best_and_median(end_to_end);
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
    let sparse = generate(1, SIZE, 0.03);
    let (dense, per_100_lines) = dense();
    let masker = Masker::default();
    println!(
        "\nmask: sparse {:.1} MB ({} labelled values), dense {:.1} MB ({:.1} values per line); 3 runs each",
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
