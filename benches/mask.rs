//! Masking throughput: `countersign mask` end to end (release binary, one thread) on a 10 MiB
//! mixed corpus of JSON lines and prose from the labelled generator, and the engine in-process.
//!
//! `cargo bench --bench mask`. Target (issue #3): at least 100 MB/s end to end.

use countersign::mask::Masker;
use countersign::mask::corpus::generate;
use std::process::{Command, Stdio};
use std::time::Instant;

const SIZE: usize = 10 * 1024 * 1024;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("mask: run with `cargo bench --bench mask`");
        return;
    }
    let corpus = generate(1, SIZE, 0.03);
    let bytes = corpus.text.len() as f64;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.txt");
    std::fs::write(&input, &corpus.text).unwrap();

    let masker = Masker::default();
    let mut in_process = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let (masked, _) = masker.mask_text(&corpus.text);
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
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mb = bytes / 1e6;
    println!(
        "\nmask: {:.1} MB corpus ({} labelled values, {} decoys), 3 runs each",
        mb,
        corpus.secrets.len(),
        corpus.decoys.len()
    );
    println!("| path | median MB/s | best MB/s | target |");
    println!("|---|---|---|---|");
    println!(
        "| `countersign mask FILE > /dev/null` (end to end) | {:.0} | {:.0} | >= 100 |",
        mb / median(&mut end_to_end.clone()),
        mb / best(&end_to_end)
    );
    println!(
        "| `Masker::mask_text` in-process | {:.0} | {:.0} | |",
        mb / median(&mut in_process.clone()),
        mb / best(&in_process)
    );
    let ok = mb / median(&mut end_to_end) >= 100.0;
    println!("target: {}", if ok { "MET" } else { "NOT MET" });
}
