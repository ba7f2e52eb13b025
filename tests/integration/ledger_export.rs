//! `ledger show` and `ledger export` on a small ledger with whole request lives: a request
//! approved and run, one denied, one refused at intake, one still pending; the period filter,
//! both formats, and the refusal to export a broken ledger.

use crate::ledger_support::*;
use countersign::ledger::DEFAULT_BRANCH;
use countersign::ledger::export::{self, Period};
use serde_json::{Value, json};

fn run(f: &Fixture, args: &[&str]) -> (Option<i32>, String, String) {
    let repo = f.repo_path();
    let mut all = vec!["ledger", "--repo", repo.to_str().unwrap()];
    all.extend(args);
    let out = countersign(&all, f.dir.path());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn show_prints_a_requests_timeline() {
    let f = Fixture::new();
    let timeline = export::show(&f.repo_path(), DEFAULT_BRANCH, REQ_A).unwrap();
    let seqs: Vec<i64> = timeline.entries.iter().map(|s| s.entry.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 10, 11, 12]);
    assert!(timeline.damaged.is_empty());

    let (code, stdout, _) = run(&f, &["show", REQ_A]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    assert!(
        lines[0].starts_with("2026-11-20T09:00:00.000Z  received "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(&format!(
            "{REQ_A} received from agent-a: db.export prod/customers in prod"
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[4].contains(&format!("{REQ_A} approved by @alice (policy 3f2a1c9)")),
        "{}",
        lines[4]
    );
    assert!(lines[7].contains(" outcome "), "{}", lines[7]);

    let (code, stdout, _) = run(&f, &["show", REQ_A, "--json"]);
    assert_eq!(code, Some(0));
    let written = lines_of(&f, DAY1);
    assert_eq!(stdout.lines().next(), Some(written[0].as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(stdout.lines().nth(5).unwrap()).unwrap()["seq"],
        10
    );

    let (code, stdout, stderr) = run(&f, &["show", "cr_unknown"]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains("no ledger entries for cr_unknown"),
        "{stderr}"
    );
}

fn lines_of(f: &Fixture, path: &str) -> Vec<String> {
    lines(&f.files(f.tip())[path])
}

#[test]
fn export_gathers_each_request_of_the_period() {
    let f = Fixture::new();
    let period = Period::new("2026-11-20", "2026-11-22").unwrap();
    let evidence = export::export(&f.repo_path(), DEFAULT_BRANCH, None, period)
        .unwrap()
        .unwrap();
    let json = evidence.to_json();
    let head = batches().into_iter().flatten().last().unwrap();
    assert_eq!(
        json["chain_head"],
        json!({"seq": 15, "hash": head.hash, "commit": f.tip().to_string()})
    );
    assert_eq!(
        json["period"],
        json!({"from": "2026-11-20", "to": "2026-11-22", "timezone": "UTC"})
    );
    assert_eq!(json["summary"]["requests"], 4);
    for (state, n) in [
        ("succeeded", 1),
        ("denied", 1),
        ("refused", 1),
        ("pending", 1),
        ("approved", 0),
    ] {
        assert_eq!(json["summary"][state], n, "{state}: {}", json["summary"]);
    }
    let requests = json["requests"].as_array().unwrap();
    assert_eq!(
        requests[0],
        json!({
            "request_id": REQ_A, "agent": "agent-a", "action": "db.export",
            "resource": "prod/customers", "environment": "prod",
            "received_at": "2026-11-20T09:00:00.000Z", "state": "succeeded",
            "approvers": ["alice"], "policy_commit": POLICY, "risk": "high",
            "credential_jti": "jti_0001", "outcome": "succeeded", "reason": ""
        })
    );
    let b = &requests[1];
    assert_eq!(
        (b["request_id"].as_str(), b["state"].as_str()),
        (Some(REQ_B), Some("denied"))
    );
    assert_eq!(
        (b["agent"].as_str(), b["reason"].as_str()),
        (Some("agent-b"), Some("not during the freeze"))
    );
    assert_eq!(b["approvers"], json!([]));
    let c = &requests[2];
    assert_eq!(
        (
            c["request_id"].as_str(),
            c["state"].as_str(),
            c["agent"].as_str(),
            c["action"].as_str()
        ),
        (
            Some(REQ_C),
            Some("refused"),
            Some("agent-c"),
            Some("db.drop")
        )
    );
    assert_eq!(c["reason"], "agent not allowed");
    assert_eq!(
        (
            requests[3]["request_id"].as_str(),
            requests[3]["state"].as_str()
        ),
        (Some(REQ_D), Some("pending"))
    );
}

#[test]
fn export_filters_by_the_day_a_request_was_received() {
    let f = Fixture::new();
    let ids = |from: &str, to: &str| -> Vec<String> {
        let period = Period::new(from, to).unwrap();
        let evidence = export::export(&f.repo_path(), DEFAULT_BRANCH, None, period)
            .unwrap()
            .unwrap();
        evidence
            .requests
            .iter()
            .map(|r| r.request_id.clone())
            .collect()
    };
    // B was received on day 1 and denied on day 2: it belongs to day 1.
    assert_eq!(ids("2026-11-21", "2026-11-21"), [REQ_C]);
    assert_eq!(ids("2026-11-20", "2026-11-20"), [REQ_A, REQ_B]);
    assert_eq!(ids("2026-11-22", "2026-12-31"), [REQ_D]);
    assert!(ids("2026-10-01", "2026-10-31").is_empty());
}

#[test]
fn the_binary_exports_json_and_csv() {
    let f = Fixture::new();
    let (code, stdout, stderr) = run(
        &f,
        &["export", "--from", "2026-11-20", "--to", "2026-11-22"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    // The summary comes before the (long) list of requests.
    let at = |key: &str| stdout.find(&format!("\n  \"{key}\": ")).unwrap();
    assert!(stdout.starts_with("{\n  \"period\": {"), "{stdout}");
    assert!(at("chain_head") < at("summary") && at("summary") < at("requests"));
    assert!(
        stdout.contains("\"summary\": {\n    \"requests\": 4,"),
        "{stdout}"
    );
    assert_eq!(json["requests"].as_array().unwrap().len(), 4);

    let (code, csv, _) = run(
        &f,
        &[
            "export",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-22",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code, Some(0));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert_eq!(
        rows[0],
        "request_id,agent,action,resource,environment,received_at,state,approvers,policy_commit,risk,credential_jti,outcome,reason"
    );
    assert_eq!(
        rows[1],
        format!(
            "{REQ_A},agent-a,db.export,prod/customers,prod,2026-11-20T09:00:00.000Z,succeeded,alice,{POLICY},high,jti_0001,succeeded,"
        )
    );
    assert!(
        rows[3].starts_with(&format!("{REQ_C},agent-c,db.drop,prod/all,prod,")),
        "{}",
        rows[3]
    );
    let head = batches().into_iter().flatten().last().unwrap();
    assert_eq!(
        rows[5],
        format!(
            "# summary: 2026-11-20 to 2026-11-22 (UTC): 4 requests (denied 1, pending 1, refused 1, succeeded 1); chain head seq 15 {} at commit {}",
            head.hash,
            f.tip()
        )
    );

    for bad in [["--from", "2026-11-31"], ["--from", "yesterday"]] {
        let (code, _, stderr) = run(&f, &["export", bad[0], bad[1], "--to", "2026-12-01"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("is not a date (YYYY-MM-DD)"), "{stderr}");
    }
}

#[test]
fn a_broken_ledger_is_not_exported() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day3 = lines(&files[DAY3]);
    day3.pop();
    files.insert(DAY3.into(), join(&day3));
    let oid = f.commit_on_tip(files, "trim", Some(&f.signer()));
    let (code, stdout, stderr) = run(
        &f,
        &["export", "--from", "2026-11-20", "--to", "2026-11-22"],
    );
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains(&format!(
            "refusing to export: the ledger is broken: commit {} (\"trim\") removed line 3",
            short(oid)
        )),
        "{stderr}"
    );
}
