//! Ledger append benchmark: how many entries per second the single ledger writer commits to
//! a local git repository (signed commits, fsync off as in the embedded default), grouping
//! the entries that wait in the database outbox.
//!
//! `cargo bench --bench ledger_append`. Target (issue #7): at least 2,000 entries/s sustained.
//! Two figures:
//! - sustained: producers write entries (one transaction each, ~350-byte entries) as fast as
//!   they can for `SECONDS` while the writer runs; the rate is entries on the branch divided by
//!   the time until the branch holds all of them, with the writer's lag at the end;
//! - catch-up: `BACKLOG` entries wait in the database, then the writer starts (largest groups).

use countersign::jobs::{LedgerSource, LedgerWriter};
use countersign::mask::Masker;
use countersign::request::RequestId;
use countersign::store::Store;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fields(n: u64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "agent": "deploy-bot",
        "kind": "action",
        "action": "db.export",
        "resource": format!("prod/customers-{}", n % 97),
        "environment": "production",
        "reason": "out_of_scope",
        "message": "subject `actions/db.export/prod/customers` is outside the subjects agent `deploy-bot` may request",
        "policy_commit": "3f2a1c9d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
    }) else {
        unreachable!()
    };
    map
}

async fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(dir.path().join("repo.git")).unwrap();
    let store = Store::open(
        &dir.path().join("countersign.db"),
        countersign::config::Synchronous::Normal,
        Arc::new(Masker::default()),
    )
    .await
    .unwrap();
    (dir, store)
}

async fn produce(store: &Store, n: u64) {
    let id = RequestId::generate();
    let signature = format!("sig-{n}");
    store
        .record_intake_refusal(
            &id,
            "deploy-bot",
            &signature,
            i64::MAX,
            countersign::time::now_ms(),
            fields(n),
        )
        .await
        .unwrap();
}

async fn writer(dir: &std::path::Path, store: &Store) -> LedgerWriter {
    LedgerSource {
        store: store.clone(),
        repo_path: dir.join("repo.git"),
        branch: countersign::ledger::DEFAULT_BRANCH.into(),
        key_file: dir.join("ledger_ed25519"),
        signer: "countersign@localhost".into(),
        remote: None,
        status: Default::default(),
    }
    .open(None)
    .await
    .unwrap()
}

async fn sustained(seconds: u64) {
    let (dir, store) = setup().await;
    let writer = writer(dir.path(), &store).await;
    let status = writer.status();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(writer.run(stop_rx));
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..4 {
        let (store, produced, done) = (store.clone(), produced.clone(), done.clone());
        producers.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = produced.fetch_add(1, Ordering::Relaxed);
                produce(&store, n).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    done.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    let offered = started.elapsed();
    let total = store.ledger_last_seq().await.unwrap();
    let lag_entries = total - status.committed_seq.load(Ordering::Relaxed);
    while status.committed_seq.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_in = started.elapsed();
    let commits = status.commits.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    task.await.unwrap();
    println!(
        "sustained: {total} entries offered in {:.1} s ({:.0}/s by 4 producers); on the branch after {:.2} s: {:.0} entries/s; {commits} commits ({:.0} entries/commit); lag when producers stopped: {lag_entries} entries, drained in {:.0} ms",
        offered.as_secs_f64(),
        total as f64 / offered.as_secs_f64(),
        all_in.as_secs_f64(),
        total as f64 / all_in.as_secs_f64(),
        total as f64 / commits.max(1) as f64,
        (all_in - offered).as_secs_f64() * 1000.0,
    );
}

async fn catch_up(backlog: u64) {
    let (dir, store) = setup().await;
    for n in 0..backlog {
        produce(&store, n).await;
    }
    let writer = writer(dir.path(), &store).await;
    let started = Instant::now();
    let n = writer.catch_up().await.unwrap();
    let took = started.elapsed();
    let commits = writer.status().commits.load(Ordering::Relaxed);
    println!(
        "catch-up: {n} waiting entries committed in {:.2} s: {:.0} entries/s in {commits} commits",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sustained(env("SECONDS", 10)).await;
        catch_up(env("BACKLOG", 50_000)).await;
    });
}
