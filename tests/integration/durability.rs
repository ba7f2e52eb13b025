//! Nothing accepted is lost: requests survive a graceful restart and a `kill -9` of the real
//! binary at any moment, interrupted work resumes, and forge failures are retried. Storage
//! faults on a real filesystem (full, read-only, damaged database, stale git locks) lose
//! nothing acknowledged, run nothing twice, show in `/readyz` and heal by themselves.

use countersign::api::{Readiness, State, Verdict};
use countersign::cli::client::{AgentClient, ClientError};
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use testkit::tmpfs::Tmpfs;
use testkit::*;

#[tokio::test]
async fn pending_requests_survive_a_restart_and_can_be_decided_after() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let before = h.agent_a().status(&id).await.unwrap();
    let h = h.restart_with(|_| {}).await;
    let after = h.agent_a().status(&id).await.unwrap();
    assert_eq!(after.state, State::PendingReview);
    assert_eq!(after.digest, before.digest);
    // The review URL names the server's address, which changes with the port.
    let reference = |s: &countersign::api::RequestStatus| s.review.clone().unwrap().reference;
    assert_eq!(reference(&after), reference(&before));
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .expect("decided after the restart");
}

#[tokio::test]
async fn a_failing_forge_is_retried_and_the_review_appears_once_it_works() {
    let h = Harness::start().await;
    let repo = h.repo_path();
    let hidden = repo.with_extension("away");
    std::fs::rename(&repo, &hidden).unwrap();
    let id = h.submit_ok().await;
    let agent = h.agent_a();
    let failing = agent
        .wait_for(&id, Duration::from_secs(10), |s| {
            s.forge.as_ref().is_some_and(|f| f.attempts >= 1)
        })
        .await
        .unwrap();
    assert_eq!(failing.state, State::Received);
    assert!(failing.review.is_none());
    let error = failing.forge.unwrap().last_error.unwrap();
    assert!(
        !error.contains("limit"),
        "forge errors carry no request data: {error}"
    );
    let (status, ready) = h.raw("GET", "/readyz", &[], vec![]).await;
    assert_eq!(status, 503, "{ready}");
    std::fs::rename(&hidden, &repo).unwrap();
    let open = h.wait_state(&agent, &id, State::PendingReview).await;
    assert!(open.review.unwrap().reference.ends_with(&id));
    assert!(open.forge.is_none());
}

#[tokio::test]
async fn kill_9_during_a_burst_loses_no_accepted_request_and_work_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_server_config(dir.path());
    let mut server = spawn_server(&config);
    // Kill the server hard as soon as some requests have been acknowledged, mid-burst.
    let accepted = burst_then_kill_9(&mut server, 200, 20).await;

    let server = spawn_server(&config);
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    for id in &accepted {
        let status = agent
            .wait_for(id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap_or_else(|e| panic!("accepted request {id} was lost or stuck: {e}"));
        assert!(status.review.is_some());
    }
}

#[tokio::test]
async fn invalid_configuration_fails_at_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen = \"localhost-ish\"", "`listen`"),
        ("request_tll = \"1h\"", "request_tll"),
        (
            "[[agents]]\nid = \"a\"\nkeys = [{ env = \"COUNTERSIGN_TEST_NOT_SET\" }]",
            "agents[0].keys[0]",
        ),
        (
            "[[reviewers]]\nname = \"bob\"\ntoken_sha256 = \"abc\"",
            "reviewers[0].token_sha256",
        ),
    ];
    for (text, field) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!(
                "data_dir = {:?}\n{text}",
                dir.path().join("d").display().to_string()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} should fail");
        assert!(
            stderr.contains(field),
            "{text}: stderr should name {field}: {stderr}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "serve",
            "--listen",
            "nope",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));
}

#[test]
fn the_demo_runs_the_whole_flow_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "demo",
            "--data-dir",
            dir.path().join("demo").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo finished"), "{stdout}");
    assert!(stdout.contains("self_approval_forbidden"), "{stdout}");
    assert!(
        stdout.contains("approved by @bob (policy ")
            && stdout.contains("execution_succeeded")
            && stdout.contains("exported_rows")
            && stdout.contains("countersign ledger verify: ok, 8 entries"),
        "the demo shows the request's ledger timeline, verified: {stdout}"
    );
    assert!(dir.path().join("demo/countersign.db").exists());
    assert!(
        !stdout.contains("ann@example.com"),
        "the demo payload's e-mail must not be shown raw"
    );
}

#[tokio::test]
async fn payloads_sealed_before_a_key_rotation_stay_readable() {
    testkit::sqlite_only!("restarts on its data directory with a rotated key file");
    let h = Harness::start().await;
    let old = h.submit_ok().await;
    h.wait_state(&h.agent_a(), &old, State::PendingReview).await;
    let (dir, http) = h.stop().await;
    let key = dir.path().join("keys").join("payload.key");
    let before = std::fs::read_to_string(&key).unwrap();
    let id = countersign::vault::rotate_payload_key(&key).unwrap();
    assert_ne!(std::fs::read_to_string(&key).unwrap(), before);
    let h = Harness::resume(dir, http).await;
    // The reviewer view opens the sealed submission to mask it: old and new keys both work.
    // (The payload is the agent's own JSON, not an API document.)
    let view = h.reviewer(BOB).show(&old).await.unwrap();
    assert_eq!(view.payload["limit"], 5);
    let body = action_body(serde_json::json!({ "limit": 6 }));
    let new = h.agent_a().submit(&body, None).await.unwrap();
    let new = new.id.as_str().to_owned();
    h.wait_state(&h.agent_a(), &new, State::PendingReview).await;
    let view = h.reviewer(BOB).show(&new).await.unwrap();
    assert_eq!(view.payload["limit"], 6, "{view:?}");
    // The new row is sealed under the new key id.
    let db = h.dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let (sealed,): (String,) = sqlx::query_as("SELECT submission FROM requests WHERE id = ?")
        .bind(&new)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(sealed.starts_with(&format!("xc2:{id}:")), "{sealed}");
}

// ---------------------------------------------------------------------------------------------
// Storage faults, on a real small filesystem (tmpfs; the tests skip, saying so, without root).

/// `db.export` runs a command appending the request id to `<out>/runs` (outside the faulty
/// filesystem), so every run is counted.
async fn record_runs(h: &Harness, out: &std::path::Path) {
    let actions = format!(
        "[actions.\"db.export\"]\n\
         executor = {{ type = \"command\", argv = [\"/bin/sh\", \"-c\", \"echo $COUNTERSIGN_REQUEST_ID >> {}/runs\"] }}\n\
         audience = \"exports\"\n",
        out.display()
    );
    h.server
        .local_forge()
        .commit_files("main", &[("policies/actions.toml", &actions)], "count runs")
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
}

fn runs_of(out: &std::path::Path, id: &str) -> usize {
    std::fs::read_to_string(out.join("runs"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == id)
        .count()
}

/// `/readyz` until `ready` (200 or not), within 30 s; the last answer.
async fn wait_ready(h: &Harness, ready: bool) -> Readiness {
    wait_url_ready(&h.url, ready).await
}

async fn wait_succeeded(h: &Harness, id: &str) {
    let status = h
        .agent_a()
        .wait_for(id, Duration::from_secs(30), |s| {
            matches!(
                s.state,
                State::Succeeded | State::Failed | State::OutcomeUnknown
            )
        })
        .await
        .unwrap();
    assert_eq!(status.state, State::Succeeded, "{status:?}");
}

/// Every acknowledged request is there, as its agent sees it (never `404`).
async fn assert_all_there(h: &Harness, ids: &[String], when: &str) {
    for id in ids {
        if let Err(e) = h.agent_a().status(id).await {
            panic!("{when}: acknowledged request {id}: {e}");
        }
    }
}

#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_work_runs_nothing_twice_and_heals_by_itself() {
    testkit::sqlite_only!("fills the disk under the SQLite file");
    let Some(fs) = Tmpfs::mount("4m", "a_full_disk_loses_no_acknowledged_work") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let h = Harness::start_in(fs.path(), |c| {
        c.sweep_interval = Duration::from_millis(100);
    })
    .await;
    record_runs(&h, out.path()).await;
    // Before the fault: one action approved and run; one request waiting for its reviewer.
    let (ran, _) = h.pending_with(&action_body(json!({"limit": 1}))).await;
    h.reviewer(BOB)
        .review(&ran, Verdict::Approve, None)
        .await
        .unwrap();
    wait_succeeded(&h, &ran).await;
    let (waiting, _) = h.pending_with(&action_body(json!({"limit": 2}))).await;

    fs.fill();
    // Submissions until the full disk refuses one, then some more: whatever is acknowledged,
    // before or after the first failure, must really be stored.
    let agent = h.agent_a();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut after_refusal = 0;
    for n in 0..1000 {
        match agent.submit(&action_body(json!({ "n": n })), None).await {
            Ok(answer) => acknowledged.push(answer.id.as_str().to_owned()),
            Err(e) if e.status() == Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR) => {
                refused += 1
            }
            Err(e) => panic!("unexpected: {e}"),
        }
        if refused > 0 {
            after_refusal += 1;
            if after_refusal > 20 {
                break;
            }
        }
    }
    assert!(refused > 0, "the full disk never made a write fail");
    let approval = h
        .reviewer(BOB)
        .review(&waiting, Verdict::Approve, None)
        .await;
    let approved = match &approval {
        Ok(_) => true,
        Err(e) if e.status() == Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR) => false,
        Err(e) => panic!("unexpected: {e}"),
    };
    assert_all_there(&h, &acknowledged, "during the fault").await;
    let ready = wait_ready(&h, false).await;
    assert!(!ready.database.ok, "{ready:?}");

    // Space comes back: service resumes without a restart.
    fs.free();
    let ready = wait_ready(&h, true).await;
    assert!(ready.database.ok, "{ready:?}");
    let after = h.submit_ok().await;
    acknowledged.push(after);
    if !approved {
        h.reviewer(BOB)
            .review(&waiting, Verdict::Approve, None)
            .await
            .unwrap();
    }
    wait_succeeded(&h, &waiting).await;
    assert_all_there(&h, &acknowledged, "after the fault").await;

    // And after a restart: nothing acknowledged is lost, nothing ran twice.
    let h = h
        .restart_with(|c| c.sweep_interval = Duration::from_millis(100))
        .await;
    assert_all_there(&h, &acknowledged, "after a restart").await;
    for id in [&ran, &waiting] {
        let status = h.agent_a().status(id).await.unwrap();
        assert_eq!(status.state, State::Succeeded, "{status:?}");
    }
    assert_eq!(
        runs_of(out.path(), &ran),
        1,
        "approved before the fault: ran once"
    );
    assert_eq!(
        runs_of(out.path(), &waiting),
        1,
        "approved during the fault: ran once"
    );
}

/// `/readyz` of a server at `url` until `ready` (200, or 503 with the same document), within
/// 30 s; the last answer.
async fn wait_url_ready(url: &str, ready: bool) -> Readiness {
    let what = format!(
        "/readyz to answer {}",
        if ready { "ready" } else { "not ready" }
    );
    wait_until(&what, Duration::from_secs(30), async || {
        let r = reqwest::get(format!("{url}/readyz")).await.unwrap();
        let status = r.status().as_u16();
        let body: Readiness = r.json().await.unwrap();
        ((status == 200) == ready).then_some(body)
    })
    .await
}

/// The data directory's filesystem is read-only when countersign starts (remounted after a
/// crash, as the kernel does on errors): it serves what it has, refuses writes with `500` and
/// reports not ready; once the filesystem is writable again it resumes without a restart.
#[tokio::test]
async fn a_read_only_data_directory_refuses_writes_and_heals_once_writable_again() {
    let Some(fs) = Tmpfs::mount("32m", "a_read_only_data_directory_refuses_writes") else {
        return;
    };
    let config = write_server_config(fs.path());
    let mut server = spawn_server(&config);
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let before = agent
        .submit(&action_body(json!({"limit": 7})), None)
        .await
        .unwrap();
    let before = before.id.as_str().to_owned();
    agent
        .wait_for(&before, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    // Linux remounts read-only only while nothing is open for writing: after a crash.
    server.kill_9();
    fs.remount(true);

    let server = spawn_server(&config);
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let refused = agent.submit(&action_body(json!({"limit": 8})), None).await;
    assert_eq!(
        refused.as_ref().err().and_then(ClientError::status),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
        "nothing can be stored: {refused:?}"
    );
    let ready = wait_url_ready(&server.url, false).await;
    assert!(!ready.database.ok, "{ready:?}");
    agent.status(&before).await.expect("what it has is served");

    fs.remount(false);
    let ready = wait_url_ready(&server.url, true).await;
    assert!(ready.database.ok, "{ready:?}");
    let after = agent
        .submit(&action_body(json!({"limit": 9})), None)
        .await
        .unwrap();
    let after = after.id.as_str().to_owned();
    agent
        .wait_for(&after, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    let reviewer = countersign::cli::client::ReviewerClient::new(&server.url, BOB);
    reviewer
        .review(&before, Verdict::Approve, None)
        .await
        .unwrap();
    drop(server);

    let server = spawn_server(&config);
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    for id in [&before, &after] {
        if let Err(e) = agent.status(id).await {
            panic!("{id} after a restart: {e}");
        }
    }
    let status = agent.status(&before).await.unwrap();
    assert_ne!(
        status.state,
        State::PendingReview,
        "the approval was kept: {status:?}"
    );
}

/// Start-up refuses a damaged database, saying what is wrong and what to do.
#[tokio::test]
async fn a_database_truncated_to_half_is_refused_at_start_saying_so() {
    testkit::sqlite_only!("truncates the SQLite file");
    let h = Harness::start().await;
    for n in 0..20 {
        h.agent_a()
            .submit(
                &action_body(json!({ "n": n, "pad": "x".repeat(2000) })),
                None,
            )
            .await
            .unwrap();
    }
    let (dir, _http) = h.stop().await;
    let db = dir.path().join("countersign.db");
    // The damage must hit committed pages: fold a write-ahead log still beside the file into it
    // first (the last connection to close checkpoints it and removes it).
    let wal = dir.path().join("countersign.db-wal");
    if wal.exists() {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    assert!(!wal.exists(), "the whole database is in its file");
    let len = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let err = countersign::app::Server::start(&config(dir.path()))
        .await
        .err()
        .expect("a damaged database is refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("is damaged")
            && message.contains("restore the database file from a backup"),
        "{message}"
    );
    assert!(message.contains(&db.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_deleted_or_emptied_database_is_named_as_such_not_as_another_database() {
    testkit::sqlite_only!("deletes and empties the SQLite file");
    for emptied in [false, true] {
        let h = Harness::start().await;
        h.pending().await;
        h.ledger_synced().await;
        let (dir, _http) = h.stop().await;
        let db = dir.path().join("countersign.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        if emptied {
            std::fs::write(&db, b"").unwrap();
        }
        let err = countersign::app::Server::start(&config(dir.path()))
            .await
            .err()
            .expect("a database without the history of its ledger is refused");
        let message = format!("{err:#}");
        assert!(
            message.contains("was deleted, emptied or replaced")
                && message.contains("restore the database from a backup"),
            "{message}"
        );
        assert!(
            !message.contains("another countersign database"),
            "{message}"
        );
    }
}

/// `--repo` mode (a repository countersign did not create): a `kill -9` during a ref update
/// leaves its lock file; countersign holds its data directory, so it knows the locks on its own
/// refs are leftovers and clears them at start: the review opens and the ledger is written at
/// once. A lock held while running is reported as a lock.
#[tokio::test]
async fn stale_git_locks_of_a_killed_run_are_cleared_at_start_and_a_held_lock_is_named() {
    testkit::sqlite_only!("restarts on its data directory");
    let repo_dir = tempfile::tempdir().unwrap();
    seed_repo(repo_dir.path());
    let repo = repo_dir.path().join("repo.git");
    let with_repo = |c: &mut countersign::config::ServerConfig| {
        c.repo = Some(repo.clone());
    };
    let h = Harness::start_with(with_repo).await;
    // A request whose review could not be opened yet (the repository was away).
    let hidden = repo.with_extension("away");
    std::fs::rename(&repo, &hidden).unwrap();
    let id = h.submit_ok().await;
    h.agent_a()
        .wait_for(&id, Duration::from_secs(10), |s| {
            s.forge.as_ref().is_some_and(|f| f.attempts >= 1)
        })
        .await
        .unwrap();
    let (dir, http) = h.stop().await;
    std::fs::rename(&hidden, &repo).unwrap();
    // What a kill during the review's and the ledger's ref updates leaves behind.
    let heads = repo.join("refs/heads/countersign");
    std::fs::create_dir_all(&heads).unwrap();
    std::fs::write(heads.join(format!("{id}.lock")), b"").unwrap();
    std::fs::write(heads.join("ledger.lock"), b"").unwrap();

    let mut c = config(dir.path());
    c.repo = Some(repo.clone());
    let server = countersign::app::Server::start(&c).await.unwrap();
    let h = Harness {
        url: server.url(),
        dir,
        server,
        http,
        notifying: false,
        database: None,
    };
    h.wait_state(&h.agent_a(), &id, State::PendingReview).await;
    wait_until(
        "the ledger branch to catch up",
        Duration::from_secs(20),
        async || {
            let last = h.server.engine.store().ledger_last_seq().await.unwrap();
            ledger_entries(&repo).len() as i64 == last
        },
    )
    .await;
    wait_ready(&h, true).await;
    assert!(!heads.join(format!("{id}.lock")).exists());

    // A second countersign on the same data directory is refused (so the locks it would find
    // are not leftovers).
    let err = countersign::app::Server::start(&c)
        .await
        .err()
        .expect("one countersign per data directory");
    assert!(
        format!("{err:#}").contains("another countersign is already running"),
        "{err:#}"
    );

    // Another git process holding the ledger branch: the error says it is a lock.
    std::fs::write(heads.join("ledger.lock"), b"").unwrap();
    h.submit_ok().await;
    let ready = wait_ready(&h, false).await;
    let error = ready.ledger.error.clone().unwrap_or_default();
    assert!(error.contains("is locked"), "{ready:?}");
    assert!(!error.contains("moved"), "{ready:?}");
    std::fs::remove_file(heads.join("ledger.lock")).unwrap();
    wait_ready(&h, true).await;
}
