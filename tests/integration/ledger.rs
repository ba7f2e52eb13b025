//! The audit ledger on the embedded default: every lifecycle event of a request becomes one
//! chained, masked entry on the signed `countersign/ledger` branch; the branch catches up after
//! a crash without losing or duplicating an entry; a rewritten branch stops countersign.

use countersign::api::{State, Verdict};
use countersign::ledger::entry::{GENESIS, check_line};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::*;

fn git(repo: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn of_request<'a>(entries: &'a [Value], id: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["request_id"] == id).collect()
}

/// Submits a distinct request as agent-a and waits for its review to be open.
async fn pending(h: &Harness, n: u32) -> String {
    h.pending_with(&action_body(json!({ "n": n }))).await.0
}

fn events(entries: &[&Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// Every line checks, `seq` runs 1, 2, 3, … and each `prev` is the previous `hash`.
fn assert_chain(repo: &Path) {
    let entries = ledger_entries(repo);
    let mut prev = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        let line = countersign::ledger::entry::canonical(e);
        let checked = check_line(&line).unwrap_or_else(|err| panic!("entry {i}: {err}"));
        assert_eq!(checked.seq, i as i64 + 1);
        assert_eq!(checked.prev, prev, "entry {} is not chained", checked.seq);
        prev = checked.hash;
    }
}

#[tokio::test]
async fn a_requests_whole_life_is_in_the_signed_ledger_branch() {
    let h = Harness::start().await;
    let approved = pending(&h, 1).await;
    let r = h
        .reviewer(BOB)
        .review(&approved, Verdict::Approve, Some("fine"))
        .await
        .unwrap();
    assert_eq!(r.state, State::Approved);
    let denied = pending(&h, 2).await;
    // The agent's owner cannot approve (recorded as not counted); an optional owner's approval
    // counts without deciding; the owner's denial decides.
    let refused = h
        .reviewer(ALICE)
        .review(&denied, Verdict::Approve, None)
        .await;
    assert_eq!(refused.refusal().0, 403);
    let counted = h
        .reviewer(DAVE)
        .review(&denied, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(counted.state, State::PendingReview);
    let r = h
        .reviewer(ALICE)
        .review(&denied, Verdict::Deny, Some("not this week"))
        .await
        .unwrap();
    assert_eq!(r.state, State::Denied);
    h.wait_state(&h.agent_a(), &approved, State::Succeeded)
        .await;
    let entries = h.ledger_synced().await;

    let life = of_request(&entries, &approved);
    assert_eq!(
        events(&life),
        [
            "received",
            "policy_decision",
            "review_opened",
            "approved",
            "execution_started",
            "credential_issued",
            "execution_succeeded"
        ]
    );
    let received = life[0];
    assert_eq!(received["actor"], "agent-a");
    assert_eq!(
        (
            &received["action"],
            &received["resource"],
            &received["environment"]
        ),
        (
            &json!("db.export"),
            &json!("prod/customers"),
            &json!("prod")
        )
    );
    assert_eq!(received["justification"], "weekly report");
    assert!(received["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(received["payload_summary"].is_string());
    let policy = life[1];
    let commit = policy["policy_commit"].as_str().unwrap();
    assert_eq!(commit.len(), 40);
    assert_eq!(policy["requirements"][0]["section"], "Exports");
    assert_eq!(policy["requirements"][0]["owners"], json!(["@acme/data"]));
    assert_eq!(life[3]["approvers"], json!(["bob"]));
    assert_eq!(life[3]["actor"], "bob");
    assert_eq!(life[3]["policy_commit"], commit);

    let life = of_request(&entries, &denied);
    assert_eq!(
        events(&life),
        [
            "received",
            "policy_decision",
            "review_opened",
            "approval_refused",
            "approval_recorded",
            "denied"
        ]
    );
    assert_eq!(life[3]["actor"], "alice");
    assert_eq!(life[3]["counted"], false);
    assert!(
        life[3]["refused"]
            .as_str()
            .unwrap()
            .contains("owns the submitting agent"),
        "{}",
        life[3]
    );
    assert_eq!(life[4]["actor"], "dave");
    assert_eq!(life[4]["counted"], true);
    assert_eq!(life[4]["counted_for"][0]["section"], "Audit");
    assert_eq!(life[5]["reason"], "not this week");
    assert_eq!(life[5]["actor"], "alice");
    assert_chain(&h.repo_path());

    // Readable with plain git: sentences in the log, signatures git itself accepts.
    let repo = h.repo_path();
    let (_, log) = git(&repo, &["log", "--format=%B", "countersign/ledger"]);
    let short = &commit[..7];
    assert!(
        log.contains(&format!("{approved} approved by @bob (policy {short})")),
        "{log}"
    );
    assert!(log.contains(&format!("{denied} denied by @alice")), "{log}");
    let signers = h.dir.path().join("allowed_signers");
    let (ok, text) = git(&repo, &["show", "countersign/ledger:allowed_signers"]);
    assert!(ok, "{text}");
    std::fs::write(&signers, text).unwrap();
    let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let (ok, out) = git(&repo, &["rev-list", "countersign/ledger"]);
    assert!(ok);
    for commit in out.lines() {
        let (ok, text) = git(&repo, &["-c", &config, "verify-commit", commit]);
        assert!(ok, "commit {commit} does not verify: {text}");
    }
}

#[tokio::test]
async fn refused_submissions_are_audited_once_without_a_request() {
    let h = Harness::start().await;
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/admin",
        "environment": "prod", "justification": "try it", "payload": {},
    }))
    .unwrap();
    let headers = signed_headers("agent-b", KEY_B, now(), "POST", "/v1/requests", &body);
    let first = h.raw("POST", "/v1/requests", &headers, body.clone()).await;
    assert_eq!(first.0, 403, "{}", first.1);
    // The same signed call again: refused again, but not audited twice.
    let again = h.raw("POST", "/v1/requests", &headers, body).await;
    assert_eq!(again.0, 403, "{}", again.1);
    let entries = h.ledger_synced().await;
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e["event"] == "intake_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{entries:?}");
    assert_eq!(refused[0]["actor"], "agent-b");
    assert_eq!(refused[0]["reason"], "out_of_scope");
    assert_eq!(refused[0]["action"], "iam.grant");
    let (rows, _) = h.stored().await;
    let count = |t: &str| rows.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!((count("requests"), count("events")), (0, 0));
}

#[tokio::test]
async fn entries_missing_from_git_after_a_crash_appear_once_on_restart() {
    testkit::sqlite_only!("restarts on its data directory");
    let h = Harness::start().await;
    let id = h.pending().await;
    let before = h.ledger_synced().await;
    assert_eq!(events(&of_request(&before, &id)).len(), 3);
    // The crash: the state change committed in the database, the git commit never happened.
    // Rewinding the branch by its last commit(s) leaves exactly that on disk.
    let repo = h.repo_path();
    let (ok, root) = git(
        &repo,
        &["rev-list", "--max-parents=0", "countersign/ledger"],
    );
    assert!(ok);
    let (dir, http) = h.stop().await;
    let (ok, text) = git(
        &repo,
        &["update-ref", "refs/heads/countersign/ledger", root.trim()],
    );
    assert!(ok, "{text}");
    assert!(ledger_entries(&repo).is_empty());
    let h = Harness::resume(dir, http).await;
    let after = h.ledger_synced().await;
    assert_eq!(after, before, "every entry back, once, unchanged");
    assert_chain(&repo);
    // Later events continue the same chain.
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    h.wait_state(&h.agent_a(), &id, State::Succeeded).await;
    let later = h.ledger_synced().await;
    // approved, execution_started, credential_issued, execution_succeeded
    assert_eq!(later.len(), before.len() + 4);
    assert_chain(&repo);
}

#[tokio::test]
async fn a_rewritten_ledger_branch_stops_countersign_at_start() {
    testkit::sqlite_only!("restarts on its data directory");
    let h = Harness::start().await;
    h.pending().await;
    h.ledger_synced().await;
    let repo = h.repo_path();
    let (dir, _) = h.stop().await;
    // Rewrite the tip: same entries, the last one edited (its hash recomputed too).
    let git2repo = git2::Repository::open(&repo).unwrap();
    let tip = git2repo
        .find_reference("refs/heads/countersign/ledger")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let tree = tip.tree().unwrap();
    let mut path = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |d, e| {
        if e.name().unwrap().ends_with(".jsonl") {
            path = Some(format!("{d}{}", e.name().unwrap()));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    let path = path.unwrap();
    let blob = git2repo
        .find_blob(tree.get_path(Path::new(&path)).unwrap().id())
        .unwrap();
    let mut lines: Vec<Value> = std::str::from_utf8(blob.content())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last_mut().unwrap();
    last["review_ref"] = json!("somewhere/else");
    last.as_object_mut().unwrap().remove("hash");
    last["hash"] = json!(countersign::ledger::entry::hash_of(last));
    let text: String = lines
        .iter()
        .map(|l| countersign::ledger::entry::canonical(l) + "\n")
        .collect();
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(
        &path,
        git2repo.blob(text.as_bytes()).unwrap(),
        git2::FileMode::Blob,
    );
    let new_tree = git2repo
        .find_tree(update.create_updated(&git2repo, &tree).unwrap())
        .unwrap();
    let parent = tip.parent(0).unwrap();
    let sig = git2::Signature::now("mallory", "mallory@example.com").unwrap();
    git2repo
        .commit(
            Some("refs/heads/countersign/ledger"),
            &sig,
            &sig,
            "rewritten",
            &new_tree,
            &[&parent],
        )
        .unwrap_err(); // the reference moved: commit() refuses a non-fast-forward update
    let forged = git2repo
        .commit(None, &sig, &sig, "rewritten", &new_tree, &[&parent])
        .unwrap();
    git2repo
        .reference("refs/heads/countersign/ledger", forged, true, "force")
        .unwrap();

    let err = countersign::app::Server::start(&config(dir.path()))
        .await
        .err()
        .expect("countersign refuses to write on a rewritten ledger");
    let text = format!("{err:#}");
    assert!(text.contains("differs from the database"), "{text}");
}

#[tokio::test]
async fn secrets_in_a_request_never_reach_the_ledger() {
    let h = Harness::start().await;
    let canary_key = "sk_live_51HcanaryLEDGERsecret0000000000";
    let canary_mail = "ledger.canary@example.org";
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod",
        "justification": format!("send to {canary_mail}"),
        "payload": { "api_key": canary_key, "to": canary_mail },
    }))
    .unwrap();
    let a = h.agent_a().submit(&body, None).await.unwrap();
    let id = a.id.as_str().to_owned();
    h.wait_state(&h.agent_a(), &id, State::PendingReview).await;
    let reason = format!("ask {canary_mail} first");
    h.reviewer(ALICE)
        .review(&id, Verdict::Deny, Some(&reason))
        .await
        .unwrap();
    let entries = h.ledger_synced().await;
    let received = of_request(&entries, &id)[0];
    assert!(
        received["payload_summary"]
            .as_str()
            .unwrap()
            .contains("masked"),
        "{received}"
    );
    let (_, everything) = git(
        &h.repo_path(),
        &["log", "-p", "--format=%B", "countersign/ledger"],
    );
    assert!(everything.contains(&id));
    for canary in [canary_key, canary_mail] {
        assert!(
            !everything.contains(canary),
            "{canary} leaked into the ledger"
        );
    }
}

#[tokio::test]
async fn the_ledger_shows_in_readiness_and_metrics() {
    let h = Harness::start().await;
    h.pending().await;
    let entries = h.ledger_synced().await;
    // The writer tells its status after the commit that the branch already shows.
    let ready: Value = wait_until(
        "readiness to report the committed ledger",
        Duration::from_secs(10),
        async || {
            let ready: Value = h
                .http
                .get(format!("{}/readyz", h.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (ready["ledger"]["committed_seq"] == entries.len()).then_some(ready)
        },
    )
    .await;
    assert_eq!(ready["ledger"]["ok"], true, "{ready}");
    // One replica: it leads (on SQLite with no lease; on PostgreSQL under the first epoch).
    assert_eq!(ready["replica"]["role"], "leader", "{ready}");
    let epoch = ready["replica"].get("lease_epoch").and_then(Value::as_i64);
    assert_eq!(epoch, testkit::backend::postgres().then_some(1), "{ready}");
    assert_eq!(ready["ledger"]["committed_seq"], entries.len());
    assert_eq!(ready["ledger"]["pending"], 0);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains(&format!(
            "countersign_ledger_committed_seq {}",
            entries.len()
        )),
        "{metrics}"
    );
}

/// The database's outbox, read directly (the server keeps running).
async fn outbox(db: &Path) -> Vec<(i64, String)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = sqlx::query_as("SELECT seq, line FROM ledger ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn kill_9_mid_burst_loses_and_duplicates_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_server_config(dir.path());
    let mut server = spawn_server(&config);
    let accepted = burst_then_kill_9(&mut server, 200, 30).await;

    let server = spawn_server(&config);
    let agent = countersign::cli::client::AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    for id in &accepted {
        agent
            .wait_for(id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
    }
    let data = dir.path().join("data");
    let repo = data.join("repo.git");
    let db_path = data.join("countersign.db");
    let (db, branch) = wait_until(
        "the ledger branch to catch up with the database",
        Duration::from_secs(20),
        async || {
            let (db, branch) = (outbox(&db_path).await, ledger_entries(&repo));
            (branch.len() == db.len()).then_some((db, branch))
        },
    )
    .await;
    for ((seq, line), entry) in db.iter().zip(&branch) {
        assert_eq!(entry["seq"], *seq);
        assert_eq!(&countersign::ledger::entry::canonical(entry), line);
    }
    assert_chain(&repo);
    let entries = ledger_entries(&repo);
    for id in &accepted {
        assert_eq!(
            events(&of_request(&entries, id)),
            ["received", "policy_decision", "review_opened"],
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_database_from_before_the_ledger_gets_its_entries_once() {
    testkit::sqlite_only!("an old SQLite schema");
    let h = Harness::start().await;
    let id = pending(&h, 1).await;
    let before = h.ledger_synced().await;
    let (dir, http) = h.stop().await;
    // An older database: events, no ledger rows, no ledger branch yet.
    let db = dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let repo = dir.path().join("repo.git");
    let (ok, text) = git(
        &repo,
        &["update-ref", "-d", "refs/heads/countersign/ledger"],
    );
    assert!(ok, "{text}");
    let h = Harness::resume(dir, http).await;
    let after = h.ledger_synced().await;
    assert_eq!(after, before, "the same entries, rebuilt from the events");
    assert_eq!(events(&of_request(&after, &id)).len(), 3);
    // A later start does not write them again.
    let h = h.restart_with(|_| {}).await;
    assert_eq!(h.ledger_synced().await, before);
}
