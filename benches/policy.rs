//! Policy benchmark: compile a generated 5,000-line CODEOWNERS (plus teams, agents and
//! settings) and evaluate a request with 100 subjects against it.
//!
//! `cargo bench --bench policy`. Targets (issue #4): compilation under 50 ms, evaluation p50
//! under 50 µs. Compilation happens once per policy commit (the engine caches it).

use countersign::policy::Policy;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LINES: usize = 5000;
const SUBJECTS: usize = 100;

fn generate() -> BTreeMap<String, String> {
    let mut codeowners = String::from("# generated\n* @acme/default\n");
    let sections = 50;
    let per_section = LINES / sections;
    for s in 0..sections {
        codeowners.push_str(&format!("\n[Section {s}][{}] @acme/team{s}\n", 1 + s % 2));
        for i in 0..per_section {
            let line = match i % 5 {
                0 => format!("/services/svc{s}/module{i}/ @acme/team{s} @user{i}\n"),
                1 => format!("*.{s}x{i} @user{i} @user{}\n", i + 1),
                2 => format!("/actions/op{s}.{i}/** @acme/team{s}\n"),
                3 => format!("docs/s{s}/**/guide{i}.md @user{i} @user{}\n", i + 2),
                _ => format!("/infra/env{s}/**/stack{i}/*.tf\n"),
            };
            codeowners.push_str(&line);
        }
    }
    let mut teams = String::from("[teams]\n\"acme/default\" = [\"@ann\", \"@ben\"]\n");
    for s in 0..sections {
        teams.push_str(&format!(
            "\"acme/team{s}\" = [\"@lead{s}\", \"@dev{s}\", \"@ops{s}\"]\n"
        ));
    }
    let agents = "[agents.bench]\nowners = [\"@ann\"]\nallowed = [\"**\"]\n".to_owned();
    let settings =
        "[defaults]\nrisk = \"medium\"\n\n[sections.\"Section 3\"]\nrisk = \"high\"\n".to_owned();
    [
        ("policies/CODEOWNERS", codeowners),
        ("policies/teams.toml", teams),
        ("policies/agents.toml", agents),
        ("policies/policy.toml", settings),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn subjects() -> Vec<String> {
    (0..SUBJECTS)
        .map(|i| match i % 4 {
            0 => format!("services/svc{}/module{}/src/lib.rs", i % 50, (i * 5) % 100),
            1 => format!("infra/env{}/eu/stack{}/main.tf", i % 50, 4 + (i * 5) % 95),
            2 => format!("actions/op{}.{}/prod/db", i % 50, 2 + (i * 5) % 95),
            _ => format!("docs/s{}/deep/guide{}.md", i % 50, 3 + (i * 5) % 95),
        })
        .collect()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("policy: run with `cargo bench --bench policy`");
        return;
    }
    let files = generate();
    let lines = files["policies/CODEOWNERS"].lines().count();
    let mut compile = Vec::new();
    let mut policy = None;
    for _ in 0..20 {
        let t = Instant::now();
        let p = Policy::compile("bench", &files).unwrap_or_else(|e| panic!("{e:?}"));
        compile.push(t.elapsed());
        policy = Some(p);
    }
    let policy = policy.unwrap();
    let subjects = subjects();
    let check = policy.evaluate("bench", "prod", &subjects);
    assert!(
        check.requirements.len() > 10,
        "the request must match many rules"
    );
    let mut eval = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let e = policy.evaluate("bench", "prod", &subjects);
        eval.push(t.elapsed());
        std::hint::black_box(e);
    }
    if std::env::var("PROBE").is_ok() {
        let co = countersign::policy::codeowners::Codeowners::parse(&files["policies/CODEOWNERS"])
            .unwrap();
        let t = Instant::now();
        for _ in 0..200 {
            for s in &subjects {
                std::hint::black_box(co.matches(s));
            }
        }
        println!(
            "matches only: {:.1} µs per 100 subjects",
            t.elapsed().as_secs_f64() * 1e6 / 200.0
        );
        let t = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(
                countersign::policy::codeowners::Codeowners::parse(&files["policies/CODEOWNERS"])
                    .unwrap(),
            );
        }
        println!(
            "codeowners parse only: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3 / 5.0
        );
    }
    let c50 = percentile(&mut compile, 0.5);
    let (e50, e99) = (percentile(&mut eval, 0.5), percentile(&mut eval, 0.99));
    println!(
        "\npolicy: CODEOWNERS of {lines} lines, request of {SUBJECTS} subjects matching {} rules",
        check.requirements.len()
    );
    println!("| measure | p50 | p99 / max | target |");
    println!("|---|---|---|---|");
    println!(
        "| compile (20 runs) | {:.1} ms | {:.1} ms (max) | < 50 ms |",
        c50.as_secs_f64() * 1e3,
        compile.iter().max().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "| evaluate (2000 runs) | {:.1} µs | {:.1} µs | p50 < 50 µs |",
        e50.as_secs_f64() * 1e6,
        e99.as_secs_f64() * 1e6
    );
    let met = c50 < Duration::from_millis(50) && e50 < Duration::from_micros(50);
    println!("targets: {}", if met { "MET" } else { "NOT MET" });
}
