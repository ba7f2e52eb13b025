//! Ledger verification benchmark: builds a ledger of realistic entries (1,000,000 by default,
//! `ENTRIES` to change it) in a temporary bare repository with `LedgerRepo::append`, 1,000
//! entries per signed commit, then times `ledger::verify::verify` over it.
//!
//! `cargo bench --bench ledger_verify` (release). Target (ledger issue): at least 100,000
//! entries/s over 1,000,000 entries. `BENCH_REPO=DIR` builds the ledger there once and reuses
//! it on later runs (to profile `countersign ledger verify --repo DIR`).

use countersign::ledger::entry::{Draft, Sealed, seal};
use countersign::ledger::{GENESIS, LedgerRepo, Signer, verify};
use serde_json::{Map, Value, json};
use std::time::Instant;

const PER_COMMIT: usize = 1000;
/// 2026-11-21T00:00:00Z; entries are 400 ms apart, so a million spans about five days.
const START_MS: i64 = 1_795_219_200_000;
const STEP_MS: i64 = 400;

/// The fields of the `n`th entry: requests that go through their whole life, 7 entries each.
fn draft_fields(n: u64) -> (String, &'static str, String, Value) {
    let request = n / 7;
    let id = format!("cr_01JD{request:020}");
    let policy = format!("{:040x}", request % 97 + 0x3f2a_1c9d);
    let (event, actor, fields) = match n % 7 {
        0 => (
            "received",
            format!("agent-{}", request % 13),
            json!({
                "agent": format!("agent-{}", request % 13),
                "kind": "action",
                "action": "db.export",
                "resource": format!("prod/customers/{}", request % 1000),
                "environment": "prod",
                "digest": format!("sha256:{:064x}", request),
                "justification": "Quarterly churn analysis for the [EMAIL] account team",
                "payload_summary": "{\"table\":\"customers\",\"rows\":[NUMBER]}",
            }),
        ),
        1 => (
            "policy_decision",
            "policy".to_owned(),
            json!({"policy_commit": policy, "outcome": "needs_review", "risk": "high",
                   "requirements": [{"section": "Exports", "approvals": 1, "eligible": ["@acme/data"]}]}),
        ),
        2 => (
            "review_opened",
            "countersign".to_owned(),
            json!({"review_ref": format!("countersign/review/{id}")}),
        ),
        3 => (
            "approval_recorded",
            "alice".to_owned(),
            json!({"section": "Exports", "note": "ok for the quarter"}),
        ),
        4 => (
            "approved",
            "alice".to_owned(),
            json!({"approvers": ["alice"], "policy_commit": policy}),
        ),
        5 => (
            "credential_issued",
            "countersign".to_owned(),
            json!({"jti": format!("jti_{request:016x}"), "audience": "db-gateway",
                   "scope": "db.export:prod/customers", "expires_at": "2026-11-21T11:15:02.311Z"}),
        ),
        _ => (
            "outcome",
            format!("agent-{}", request % 13),
            json!({"status": "succeeded", "detail": "exported [NUMBER] rows"}),
        ),
    };
    (id, event, actor, fields)
}

fn build(dir: &std::path::Path, entries: u64) -> anyhow::Result<(u64, usize)> {
    git2::Repository::init_bare(dir)?;
    let mut ledger = LedgerRepo::open(
        dir,
        "countersign/ledger",
        Signer::generate("bench@countersign"),
    )?;
    let mut prev = GENESIS.to_owned();
    let mut batch: Vec<Sealed> = Vec::with_capacity(PER_COMMIT);
    let mut bytes = 0u64;
    for n in 0..entries {
        let (id, event, actor, fields) = draft_fields(n);
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let draft = Draft {
            request_id: &id,
            event,
            actor: &actor,
            fields: Map::clone(&fields),
        };
        let sealed = seal(n as i64 + 1, START_MS + n as i64 * STEP_MS, draft, &prev);
        prev = sealed.hash.clone();
        bytes += sealed.line.len() as u64 + 1;
        batch.push(sealed);
        if batch.len() == PER_COMMIT || n + 1 == entries {
            ledger.append(&batch)?;
            batch.clear();
        }
    }
    Ok((bytes, entries.div_ceil(PER_COMMIT as u64) as usize))
}

fn main() -> anyhow::Result<()> {
    let entries: u64 = match std::env::var("ENTRIES") {
        Ok(v) => v.parse()?,
        Err(_) => 1_000_000,
    };
    let temp = tempfile::tempdir()?;
    let dir = match std::env::var_os("BENCH_REPO") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temp.path().to_owned(),
    };
    let bytes = if dir.join("HEAD").exists() {
        println!("reusing the ledger in {}", dir.display());
        None
    } else {
        let started = Instant::now();
        let (bytes, commits) = build(&dir, entries)?;
        println!(
            "built {entries} entries ({:.0} MB, {:.0} bytes/entry) in {commits} commits: {:.1} s",
            bytes as f64 / 1e6,
            bytes as f64 / entries as f64,
            started.elapsed().as_secs_f64()
        );
        Some(bytes)
    };
    for run in 1..=3 {
        let report = verify::verify(&dir, "countersign/ledger", None)?
            .map_err(|b| anyhow::anyhow!("the benchmark ledger is broken: {b}"))?;
        let secs = report.elapsed.as_secs_f64();
        let n = report.entries as f64;
        let mb = bytes.map_or(String::new(), |b| {
            format!(", {:.0} MB/s", b as f64 / 1e6 / secs)
        });
        println!(
            "verify run {run}: {} entries, {} files, {} commits in {secs:.2} s = {:.0} entries/s{mb}",
            report.entries,
            report.files,
            report.commits,
            n / secs,
        );
    }
    Ok(())
}
