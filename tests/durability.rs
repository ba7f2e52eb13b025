//! Nothing accepted is lost: requests survive a graceful restart and a `kill -9` of the real
//! binary at any moment, interrupted work resumes, and forge failures are retried.

mod common;

use common::*;
use countersign::cli::client::AgentClient;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn pending_requests_survive_a_restart_and_can_be_decided_after() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let before = h.agent_a().status(&id).await.unwrap().body;
    let h = h.restart_with(|_| {}).await;
    let after = h.agent_a().status(&id).await.unwrap().body;
    assert_eq!(after["state"], "pending_review");
    assert_eq!(after["digest"], before["digest"]);
    // The review URL names the server's address, which changes with the port.
    assert!(after["review"]["reference"].is_string());
    assert_eq!(after["review"]["reference"], before["review"]["reference"]);
    assert_eq!(
        h.reviewer(BOB)
            .review(&id, "approve", None)
            .await
            .unwrap()
            .status,
        200
    );
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
            s["forge"]["attempts"].as_i64().unwrap_or(0) >= 1
        })
        .await
        .unwrap();
    assert_eq!(failing["state"], "received");
    assert!(failing["review"].is_null());
    let error = failing["forge"]["last_error"].as_str().unwrap();
    assert!(
        !error.contains("limit"),
        "forge errors carry no request data: {error}"
    );
    let (status, ready) = h.raw("GET", "/readyz", &[], vec![]).await;
    assert_eq!(status, 503, "{ready}");
    std::fs::rename(&hidden, &repo).unwrap();
    let open = h.wait_state(&agent, &id, "pending_review").await;
    assert!(open["review"]["reference"].as_str().unwrap().ends_with(&id));
    assert!(open.get("forge").is_none());
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
                s["state"] == "pending_review"
            })
            .await
            .unwrap_or_else(|e| panic!("accepted request {id} was lost or stuck: {e}"));
        assert!(status["review"]["reference"].is_string());
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
    let h = Harness::start().await;
    let old = h.submit_ok().await;
    h.wait_state(&h.agent_a(), &old, "pending_review").await;
    let (dir, http) = h.stop().await;
    let key = dir.path().join("keys").join("payload.key");
    let before = std::fs::read_to_string(&key).unwrap();
    let id = countersign::vault::rotate_payload_key(&key).unwrap();
    assert_ne!(std::fs::read_to_string(&key).unwrap(), before);
    let h = Harness::resume(dir, http).await;
    // The reviewer view opens the sealed submission to mask it: old and new keys both work.
    let view = h.reviewer(BOB).show(&old).await.unwrap();
    assert_eq!(view.status, 200, "{}", view.body);
    assert_eq!(view.body["payload"]["limit"], 5);
    let body = action_body(serde_json::json!({ "limit": 6 }));
    let new = h.agent_a().submit(&body, None).await.unwrap();
    assert_eq!(new.status, 202, "{}", new.body);
    let new = new.body["id"].as_str().unwrap().to_owned();
    h.wait_state(&h.agent_a(), &new, "pending_review").await;
    let view = h.reviewer(BOB).show(&new).await.unwrap();
    assert_eq!(view.body["payload"]["limit"], 6, "{}", view.body);
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
