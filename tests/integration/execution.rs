//! Execution of approved requests, end to end on the embedded default: the action runs once,
//! with a just-in-time token a real loopback service verifies through the JWKS (independent
//! code) and binds to the content it receives; concurrent approvals start one run; a command
//! gets the payload and token, a slow one is killed; a tampered or unsealed stored payload is
//! refused before anything runs; a `change` is merged; the raw payload is erased; the agent's callback
//! is signed with its own key.

use testkit::jwt_check::{issuer_keys, verify_independently};
use testkit::*;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use countersign::api::{self, CallbackState, RequestStatus, Verdict};
use countersign::cli::client::ClientError;
use countersign::request::RequestId;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AUDIENCE: &str = "https://warehouse.internal";

/// Replaces `policies/actions.toml` on the base branch and loads the new policy.
async fn set_actions(h: &Harness, toml: &str) {
    h.server
        .local_forge()
        .commit_files("main", &[("policies/actions.toml", toml)], "test actions")
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    assert!(
        h.server.engine.policy().policy.is_ok(),
        "the test registry compiles"
    );
}

async fn events_of(h: &Harness, id: &str) -> Vec<String> {
    h.server
        .engine
        .store()
        .events(&RequestId::parse(id).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The request ended `failed` with an `execution_refused` event naming `why`, before anything
/// ran: no execution, and no credential on the ledger.
async fn assert_refused_before_running(h: &Harness, id: &str, why: &str) {
    let status = wait_done(h, id).await;
    assert_eq!(status.state, api::State::Failed, "{status:?}");
    assert!(status.execution.is_none(), "nothing ran: {status:?}");
    let events = h
        .server
        .engine
        .store()
        .events(&RequestId::parse(id).unwrap())
        .await
        .unwrap();
    let refused = events
        .iter()
        .find(|e| e.kind == "execution_refused")
        .expect("the refusal is recorded");
    assert!(refused.detail.contains(why), "{}", refused.detail);
    // Credentials are ledger entries (not events): none was issued for this request.
    let ledger = h.ledger_synced().await;
    assert!(
        !ledger
            .iter()
            .any(|e| e["request_id"] == id && e["event"] == "credential_issued"),
        "no credential was issued for {id}"
    );
}

/// Waits until the request ended: `succeeded`, `failed` or `outcome_unknown`.
async fn wait_done(h: &Harness, id: &str) -> RequestStatus {
    h.agent_a()
        .wait_for(id, Duration::from_secs(30), |s| {
            matches!(
                s.state,
                api::State::Succeeded | api::State::Failed | api::State::OutcomeUnknown
            )
        })
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The warehouse: a resource service that trusts countersign only through its published keys.

#[derive(Default)]
struct Warehouse {
    countersign: Mutex<String>,
    /// (status answered, verified claims or refusal, idempotency key, body)
    calls: Mutex<Vec<(u16, Value, String, Value)>>,
}

/// `POST /export/<resource>`: verifies the bearer token (JWKS over HTTP, ed25519-dalek) and
/// recomputes the digest of what it received from the token's own binding: a token for other
/// content, another audience, or an expired one is refused.
async fn export(
    State(w): State<Arc<Warehouse>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let token = header("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or("")
        .to_owned();
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let countersign = w.countersign.lock().unwrap().clone();
    let (issuer, jwks) = issuer_keys(&reqwest::Client::new(), &countersign).await;
    // The binding, recomputed here: RFC 8785 JSON of what the token says plus what arrived.
    let unverified: Value = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or(Value::Null);
    let subject = json!({
        "agent": unverified["sub"].as_str().unwrap_or("").trim_start_matches("agent:"),
        "kind": "action",
        "action": unverified["action"],
        "resource": unverified["resource"],
        "environment": unverified["environment"],
        "payload": payload,
        "changes": [],
    });
    let digest = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(
            serde_json_canonicalizer::to_vec(&subject).unwrap()
        ))
    );
    let result = verify_independently(&token, &jwks, &issuer, AUDIENCE, &digest);
    let (status, seen) = match result {
        Ok(claims) => (StatusCode::OK, claims),
        Err((status, why)) => (status, json!(why)),
    };
    w.calls.lock().unwrap().push((
        status.as_u16(),
        seen.clone(),
        header("idempotency-key"),
        payload.clone(),
    ));
    // Echo what it got: the output countersign stores must be masked.
    (
        status,
        json!({ "exported": payload, "seen": seen }).to_string(),
    )
}

async fn start_warehouse() -> (Arc<Warehouse>, String) {
    let w = Arc::new(Warehouse::default());
    let app = axum::Router::new()
        .route("/export/{*resource}", axum::routing::post(export))
        .with_state(w.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (w, url)
}

/// The agent's side of the callback: verifies countersign's signature with the agent's key.
#[derive(Default)]
struct Callbacks {
    received: Mutex<Vec<(bool, Value)>>,
}

async fn callback(
    State(c): State<Arc<Callbacks>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts = h("x-countersign-timestamp");
    let keys = [key(KEY_A_OLD), key(KEY_A_NEW)];
    let valid = countersign::request::signature::verify(
        &keys,
        h("x-countersign-signature"),
        ts,
        "POST",
        "/hooks/outcome?src=countersign",
        &body,
    )
    .is_ok()
        && h("x-countersign-agent") == "agent-a";
    let fresh = ts.parse::<i64>().is_ok_and(|t| (t - now()).abs() <= 60);
    c.received.lock().unwrap().push((
        valid && fresh,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ));
    // The first delivery fails: the outcome must be retried.
    if c.received.lock().unwrap().len() == 1 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn start_callbacks() -> (Arc<Callbacks>, String) {
    let c = Arc::new(Callbacks::default());
    let app = axum::Router::new()
        .route("/hooks/outcome", axum::routing::post(callback))
        .with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/outcome?src=countersign",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (c, url)
}

#[tokio::test]
async fn an_approved_action_runs_once_with_a_token_the_service_verifies() {
    // The agent listens on loopback: an internal address, so it is opted in.
    let h = Harness::start_with(|c| {
        c.execution = countersign::execute::ExecutionFile {
            callback_hosts: vec!["127.0.0.1".into()],
            ..Default::default()
        }
        .resolve()
        .unwrap();
    })
    .await;
    let (warehouse, service) = start_warehouse().await;
    *warehouse.countersign.lock().unwrap() = h.url.clone();
    let (callbacks, callback_url) = start_callbacks().await;
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\nexecutor = {{ type = \"http\", url = \"{service}/export/{{{{ resource }}}}\" }}\naudience = \"{AUDIENCE}\"\nidempotent = true\n"
        ),
    )
    .await;
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "weekly report",
        "payload": { "limit": 5, "notify": "jane.doe@example.com" },
        "callback_url": callback_url,
    }))
    .unwrap();
    let (id, _) = h.pending_with(&body).await;
    let r = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, api::State::Approved);
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");

    let calls = warehouse.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "exactly one run: {calls:?}");
    let (code, claims, idempotency_key, received) = &calls[0];
    assert_eq!(*code, 200, "the service accepted the token: {claims}");
    assert_eq!(claims["request_id"], id.as_str());
    assert_eq!(claims["digest"], status.digest.as_str());
    assert_eq!(claims["approvers"], json!(["bob"]));
    assert_eq!(claims["sub"], "agent:agent-a");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300,
        "the default credential_ttl is 5 minutes"
    );
    assert_eq!(
        idempotency_key, &id,
        "the request id is the idempotency key"
    );
    assert_eq!(
        received["notify"], "jane.doe@example.com",
        "the raw payload"
    );

    let exec = status.execution.as_ref().expect("it ran");
    assert_eq!(exec.executor, "http");
    assert_eq!(exec.attempts, 1);
    let outcome = exec.outcome.as_ref().expect("it ended");
    assert_eq!(outcome.http_status, Some(200));
    assert_eq!(outcome.credential.as_deref(), claims["jti"].as_str());
    let output = &outcome.output;
    assert!(output.contains("\"limit\":5"), "{output}");
    assert!(
        !output.contains("jane.doe@example.com"),
        "output is masked: {output}"
    );
    assert!(status.payload_erased_at.is_some(), "{status:?}");
    // The reviewer still sees the masked request after the raw payload is gone (the payload
    // is the agent's own JSON, not an API document).
    let view = h.reviewer(CAROL).show(&id).await.unwrap();
    assert_eq!(view.payload["limit"], 5);
    assert_ne!(view.payload["notify"], "jane.doe@example.com");

    let ledger: Vec<String> = h
        .ledger_synced()
        .await
        .into_iter()
        .filter(|e| e["request_id"] == id.as_str())
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ledger[4..],
        [
            "execution_started",
            "credential_issued",
            "execution_succeeded"
        ],
        "{ledger:?}"
    );

    // The callback: retried after a 503, signed with the agent's key, the outcome inside.
    wait_until(
        "two callback deliveries",
        Duration::from_secs(10),
        async || callbacks.received.lock().unwrap().len() >= 2,
    )
    .await;
    let got = callbacks.received.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failed delivery, one retry: {got:?}");
    for (valid, body) in &got {
        assert!(valid, "countersign signs callbacks with the agent's key");
        assert!(!body.to_string().contains("jane.doe@example.com"));
        let body: api::CallbackBody = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(body.id.as_str(), id);
        assert_eq!(body.state, api::State::Succeeded);
        assert_eq!(body.outcome.unwrap().http_status, Some(200));
    }
    let status = h.agent_a().status(&id).await.unwrap();
    let callback = status.execution.unwrap().callback.unwrap();
    assert_eq!(
        (callback.state, callback.attempts),
        (CallbackState::Delivered, 2)
    );
    // A late, repeated approval cannot start anything.
    let again = h.reviewer(CAROL).review(&id, Verdict::Approve, None).await;
    assert_eq!(again.refusal().0, 409);
    h.settle().await;
    assert_eq!(warehouse.calls.lock().unwrap().len(), 1);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("countersign_requests{state=\"succeeded\"} 1")
            && metrics.contains("countersign_requests{state=\"executing\"} 0")
            && metrics.contains("countersign_callbacks{state=\"delivered\"} 1"),
        "{metrics}"
    );
}

/// A command executor whose program appends one line per run to `<dir>/runs`, writes the
/// payload it read and the token it got, and prints both.
fn recording_command(dir: &Path, extra: &str) -> String {
    format!(
        "executor = {{ type = \"command\", argv = [\"/bin/sh\", \"-c\", \"echo \\\"$COUNTERSIGN_REQUEST_ID\\\" >> {d}/runs; cat > {d}/payload.json; printf %s \\\"$CS_TOKEN\\\" > {d}/token; echo token=$CS_TOKEN; {extra}\"], token_env = \"CS_TOKEN\" }}\n",
        d = dir.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn concurrent_approvals_start_a_single_run() {
    let h = Harness::start().await;
    let out = tempfile::tempdir().unwrap();
    set_actions(
        &h,
        &format!(
            "[actions.\"iam.grant\"]\n{}audience = \"iam\"\n",
            recording_command(out.path(), "true")
        ),
    )
    .await;
    let grant = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/admin",
        "environment": "prod", "justification": "on-call", "payload": {"role": "admin"},
    }))
    .unwrap();
    let (id, _) = h.pending_with(&grant).await;
    // Two approvals are needed (bob and carol): sent at the same moment, several times each.
    let (bob, carol) = (h.reviewer(BOB), h.reviewer(CAROL));
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..6 {
        let r = if i % 2 == 0 {
            bob.clone()
        } else {
            carol.clone()
        };
        let id = id.clone();
        racing.spawn(async move { r.review(&id, Verdict::Approve, None).await });
    }
    let mut approved = 0;
    while let Some(a) = racing.join_next().await {
        // A repeated approval is refused; the others are recorded.
        if let Ok(a) = a.unwrap()
            && a.state == api::State::Approved
        {
            approved += 1;
        }
    }
    assert_eq!(approved, 1, "exactly one call decides");
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");
    h.settle().await;
    assert_eq!(lines(&out.path().join("runs")), vec![id.clone()], "one run");
    let started = events_of(&h, &id)
        .await
        .iter()
        .filter(|e| *e == "execution_started")
        .count();
    assert_eq!(started, 1);
}

#[tokio::test]
async fn a_command_gets_the_payload_and_token_and_a_slow_one_is_killed() {
    let h = Harness::start().await;
    let out = tempfile::tempdir().unwrap();
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\n{}audience = \"{AUDIENCE}\"\n\n[actions.deploy]\nexecutor = {{ type = \"command\", argv = [\"/bin/sleep\", \"30\"], timeout = \"1s\" }}\naudience = \"deploy\"\n",
            recording_command(out.path(), "echo done")
        ),
    )
    .await;
    let (id, _) = h
        .pending_with(&action_body(
            json!({"limit": 7, "secret": "hunter2-canary"}),
        ))
        .await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");
    let payload: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("payload.json")).unwrap())
            .unwrap();
    assert_eq!(
        payload,
        json!({"limit": 7, "secret": "hunter2-canary"}),
        "raw payload on stdin"
    );
    let token = std::fs::read_to_string(out.path().join("token")).unwrap();
    let (issuer, jwks) = issuer_keys(&h.http, &h.url).await;
    let claims = verify_independently(&token, &jwks, &issuer, AUDIENCE, &status.digest)
        .expect("the command's token verifies with the published keys");
    assert_eq!(claims["request_id"], id.as_str());
    let outcome = status.execution.unwrap().outcome.unwrap();
    assert_eq!(outcome.exit_status, Some(0));
    let output = &outcome.output;
    assert!(
        output.contains("token=[credential]") && output.contains("done"),
        "{output}"
    );
    assert!(!output.contains(&token));

    // deploy to staging is auto-approved (low risk): it runs at once, and is killed at 1 s.
    let answer = h
        .agent_a()
        .submit(
            &serde_json::to_vec(&json!({
                "kind": "action", "action": "deploy", "resource": "staging/web",
                "environment": "staging", "justification": "ship it", "payload": {},
            }))
            .unwrap(),
            None,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let status = wait_done(&h, answer.id.as_str()).await;
    assert_eq!(status.state, api::State::Failed, "{status:?}");
    let outcome = status.execution.unwrap().outcome.unwrap();
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("timed out after 1s")),
        "{outcome:?}"
    );
    assert_eq!(outcome.signal, Some(9));
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_tampered_stored_payload_is_refused_before_anything_runs() {
    testkit::sqlite_only!("edits a row in the SQLite file");
    let h = Harness::start_with(|c| c.sweep_interval = Duration::from_millis(100)).await;
    let out = tempfile::tempdir().unwrap();
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\n{}audience = \"x\"\n",
            recording_command(out.path(), "true")
        ),
    )
    .await;
    let (altered, _) = h.pending_with(&action_body(json!({"limit": 1}))).await;
    let (resealed, _) = h.pending_with(&action_body(json!({"limit": 2}))).await;
    let (dir, http) = h.stop().await;
    // One ciphertext damaged; one replaced by a well-sealed *different* payload (someone with
    // the key): the AEAD catches the first, the digest the second.
    let db = dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (sealed,): (String,) = sqlx::query_as("SELECT submission FROM requests WHERE id = ?")
        .bind(&altered)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut bytes = sealed.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    sqlx::query("UPDATE requests SET submission = ? WHERE id = ?")
        .bind(String::from_utf8(bytes).unwrap())
        .bind(&altered)
        .execute(&pool)
        .await
        .unwrap();
    let vault =
        countersign::vault::Vault::load_or_create(&dir.path().join("keys/payload.key")).unwrap();
    let forged = json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "weekly report", "payload": {"limit": 100000},
    });
    sqlx::query("UPDATE requests SET submission = ? WHERE id = ?")
        .bind(vault.seal(&resealed, &serde_json::to_vec(&forged).unwrap()))
        .bind(&resealed)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let h = Harness::resume(dir, http).await;
    for (id, why) in [
        (&altered, "cannot be opened"),
        (&resealed, "is not the approved digest"),
    ] {
        let r = h
            .reviewer(BOB)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap();
        assert_eq!(r.state, api::State::Approved);
        assert_refused_before_running(&h, id, why).await;
    }
    assert!(!out.path().join("runs").exists(), "the command never ran");
    let entries = h.ledger_synced().await;
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["event"] == "execution_refused")
            .count(),
        2
    );
}

/// Someone with write access to the database file (not to the payload key) replaces a sealed
/// submission by its plain JSON — here the very same content, so only the missing seal can
/// tell: it is refused like a value that fails authentication, and nothing runs.
#[tokio::test]
async fn an_unsealed_stored_payload_is_refused_like_a_failed_seal() {
    testkit::sqlite_only!("edits a row in the SQLite file");
    let h = Harness::start_with(|c| c.sweep_interval = Duration::from_millis(100)).await;
    let out = tempfile::tempdir().unwrap();
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\n{}audience = \"x\"\n",
            recording_command(out.path(), "true")
        ),
    )
    .await;
    let (id, _) = h.pending_with(&action_body(json!({"limit": 1}))).await;
    let (dir, http) = h.stop().await;
    let db = dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (sealed,): (String,) = sqlx::query_as("SELECT submission FROM requests WHERE id = ?")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let vault =
        countersign::vault::Vault::load_or_create(&dir.path().join("keys/payload.key")).unwrap();
    let plain = String::from_utf8(vault.open(&id, &sealed).unwrap().to_vec()).unwrap();
    assert!(plain.starts_with('{'), "the submission is JSON: {plain}");
    sqlx::query("UPDATE requests SET submission = ? WHERE id = ?")
        .bind(&plain)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let h = Harness::resume(dir, http).await;
    let r = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, api::State::Approved);
    assert_refused_before_running(&h, &id, "cannot be opened").await;
    assert!(!out.path().join("runs").exists(), "the command never ran");
}

#[tokio::test]
async fn an_approved_change_is_merged_into_the_base_branch() {
    let h = Harness::start().await;
    let change = serde_json::to_vec(&json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "document the on-call rota",
        "changes": [{"path": "policies/ONCALL.md", "content": "# On call\n\n- bob\n"}],
    }))
    .unwrap();
    let (id, _) = h.pending_with(&change).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let r = h
        .reviewer(CAROL)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, api::State::Approved);
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");
    let execution = status.execution.unwrap();
    assert_eq!(execution.executor, "merge");
    let repo = git2::Repository::open(h.repo_path()).unwrap();
    let main = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert!(
        execution
            .outcome
            .unwrap()
            .output
            .contains(&main.id().to_string())
    );
    assert!(
        main.message()
            .unwrap()
            .contains(&format!("Countersign-Request: {id}"))
    );
    let blob = main
        .tree()
        .unwrap()
        .get_path(Path::new("policies/ONCALL.md"))
        .unwrap()
        .to_object(&repo)
        .unwrap();
    assert_eq!(blob.as_blob().unwrap().content(), b"# On call\n\n- bob\n");
    assert_eq!(main.parent_count(), 1, "a squash commit");
}

#[tokio::test]
async fn the_raw_payload_is_kept_for_the_retention_then_erased() {
    let clock = Arc::new(ManualClock::starting_now());
    let h = Harness::start_with_clock(clock.clone(), |c| {
        c.execution.payload_retention = Duration::from_secs(3600);
        c.sweep_interval = Duration::from_millis(100);
        c.request_ttl = Duration::from_secs(600);
    })
    .await;
    let (kept, _) = h.pending_with(&action_body(json!({"limit": 3}))).await;
    h.reviewer(BOB)
        .review(&kept, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &kept).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");
    let erased = |id: String| {
        let agent = h.agent_a();
        async move {
            let status = agent.status(&id).await.unwrap();
            status.payload_erased_at.is_some()
        }
    };
    // Within the retention the payload stays: a request left pending expires (so a sweep ran
    // at the advanced time), and the payload is still there.
    let (probe, _) = h.pending_with(&action_body(json!({"limit": 9}))).await;
    clock.advance(Duration::from_secs(3590));
    h.wait_state(&h.agent_a(), &probe, api::State::Expired)
        .await;
    assert!(!erased(kept.clone()).await, "kept within its retention");
    // Once the clock passes the retention, the next sweep erases it.
    clock.advance(Duration::from_secs(20));
    wait_until(
        "the payload to be erased once its retention is over",
        Duration::from_secs(10),
        async || erased(kept.clone()).await,
    )
    .await;

    // Retention zero (the default): a denied request's payload goes with the next sweep.
    let h = h
        .restart_with(|c| c.sweep_interval = Duration::from_millis(100))
        .await;
    let (denied, _) = h.pending_with(&action_body(json!({"limit": 4}))).await;
    h.reviewer(ALICE)
        .review(&denied, Verdict::Deny, Some("no"))
        .await
        .unwrap();
    for id in [&denied, &kept] {
        let erased = h
            .agent_a()
            .wait_for(id, Duration::from_secs(10), |s| {
                s.payload_erased_at.is_some()
            })
            .await;
        assert!(erased.is_ok(), "{id} erased once its retention is over");
    }
    // The payload is the agent's own JSON (not an API document).
    let view = h.reviewer(BOB).show(&denied).await.unwrap();
    assert_eq!(view.payload["limit"], 4, "the masked copy stays");
}

#[tokio::test]
async fn a_credential_helper_exchanges_the_token_for_what_the_action_gets() {
    let h = Harness::start().await;
    let out = tempfile::tempdir().unwrap();
    let d = out.path().display();
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\n{}audience = \"{AUDIENCE}\"\n\
             credential_helper = {{ argv = [\"/bin/sh\", \"-c\", \"read t; printf %s \\\"$t\\\" > {d}/helper-got; echo cloud-cred-7f3a9c01d2\"] }}\n",
            recording_command(out.path(), "true")
        ),
    )
    .await;
    let (id, _) = h.pending_with(&action_body(json!({"limit": 2}))).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Succeeded, "{status:?}");
    // The helper got countersign's token on stdin ...
    let jwt = std::fs::read_to_string(out.path().join("helper-got")).unwrap();
    let (issuer, jwks) = issuer_keys(&h.http, &h.url).await;
    verify_independently(&jwt, &jwks, &issuer, AUDIENCE, &status.digest)
        .expect("the helper receives a valid countersign token");
    // ... and the action got what the helper printed, never shown or stored.
    let got = std::fs::read_to_string(out.path().join("token")).unwrap();
    assert_eq!(got, "cloud-cred-7f3a9c01d2");
    assert!(!format!("{status:?}").contains("cloud-cred-7f3a9c01d2"));
    let output = status.execution.unwrap().outcome.unwrap().output;
    assert!(output.contains("token=[credential]"), "{output}");

    // A failing helper fails the execution before the action runs; its message is masked.
    set_actions(
        &h,
        &format!(
            "[actions.\"db.export\"]\n{}audience = \"{AUDIENCE}\"\n\
             credential_helper = {{ argv = [\"/bin/sh\", \"-c\", \"read t; echo \\\"sts refused $t\\\" >&2; exit 3\"] }}\n",
            recording_command(out.path(), "true")
        ),
    )
    .await;
    let (id, _) = h.pending_with(&action_body(json!({"limit": 3}))).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Failed, "{status:?}");
    let error = status.execution.unwrap().outcome.unwrap().error.unwrap();
    assert!(
        error.contains("credential helper failed") && error.contains("sts refused [credential]"),
        "{error}"
    );
    assert_eq!(
        lines(&out.path().join("runs")).len(),
        1,
        "the action did not run"
    );
}

#[tokio::test]
async fn github_actions_are_refused_without_the_github_configuration() {
    let h = Harness::start().await;
    set_actions(
        &h,
        r#"
[actions."db.export"]
executor = { type = "github_workflow", workflow = "export.yml" }

[actions.deploy]
executor = { type = "command", argv = ["/bin/true"] }
github = { permissions = { contents = "read" } }
"#,
    )
    .await;
    let (workflow, _) = h.pending_with(&action_body(json!({"limit": 1}))).await;
    h.reviewer(BOB)
        .review(&workflow, Verdict::Approve, None)
        .await
        .unwrap();
    let deploy = serde_json::to_vec(&json!({
        "kind": "action", "action": "deploy", "resource": "staging/api",
        "environment": "staging", "justification": "ship it", "payload": {},
    }))
    .unwrap();
    // Deploying to staging is auto-approved.
    let answer = h.agent_a().submit(&deploy, None).await.unwrap();
    let credential = answer.id.as_str().to_owned();
    for (id, why) in [
        (
            &workflow,
            "the github_workflow executor needs the [github] configuration",
        ),
        (
            &credential,
            "action `deploy` declares a `github` credential, which needs the [github] configuration",
        ),
    ] {
        assert_refused_before_running(&h, id, why).await;
    }
}

#[tokio::test]
async fn callbacks_only_go_to_the_allowed_hosts() {
    let h = Harness::start_with(|c| {
        c.execution = countersign::execute::ExecutionFile {
            callback_hosts: vec!["*.agents.internal".into()],
            ..Default::default()
        }
        .resolve()
        .unwrap();
    })
    .await;
    let before = h.stored().await;
    let body = |url: &str| {
        serde_json::to_vec(&json!({
            "kind": "action", "action": "db.export", "resource": "prod/customers",
            "environment": "prod", "justification": "weekly report", "payload": {},
            "callback_url": url,
        }))
        .unwrap()
    };
    // The cloud metadata service, or any internal host, is not a place to POST outcomes to.
    let refused = h
        .agent_a()
        .submit(&body("http://169.254.169.254/latest/meta-data"), None)
        .await;
    let Err(ClientError::Api { status, body: e }) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!(
        (status.as_u16(), e.error.code.as_str()),
        (422, "callback_not_allowed")
    );
    assert!(e.error.message.contains("*.agents.internal"), "{e:?}");
    assert_eq!(
        h.stored().await,
        before,
        "a refused submission stores nothing"
    );
    h.agent_a()
        .submit(&body("https://bot.agents.internal/hook"), None)
        .await
        .expect("an allowed host is accepted");
}

/// A target that accepts connections and reads each request but never answers; counts the
/// requests that arrived in full (headers and body).
async fn start_silent_target() -> (Arc<std::sync::atomic::AtomicUsize>, String) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            held.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.ends_with(b"}") {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }));
        }
    });
    (received, url)
}

#[tokio::test]
async fn an_http_action_that_times_out_after_its_request_was_sent_has_an_unknown_outcome() {
    let h = Harness::start().await;
    let (received, target) = start_silent_target().await;
    // A port that was just free: nothing listens on it, so nothing can be sent.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    set_actions(
        &h,
        &format!(
            "[actions.\"iam.grant\"]\nexecutor = {{ type = \"http\", url = \"{target}/grant\", timeout = \"1s\" }}\naudience = \"iam\"\n\n\
             [actions.\"db.export\"]\nexecutor = {{ type = \"http\", url = \"http://127.0.0.1:{closed}/export\", timeout = \"1s\" }}\naudience = \"exports\"\n"
        ),
    )
    .await;
    let grant = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/admin",
        "environment": "prod", "justification": "on-call", "payload": {"role": "admin"},
    }))
    .unwrap();
    let (id, _) = h.pending_with(&grant).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    h.reviewer(CAROL)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &id).await;
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the target received the call"
    );
    assert_eq!(
        status.state,
        api::State::OutcomeUnknown,
        "sent but unanswered, and not idempotent: nobody knows whether it happened: {status:?}"
    );
    assert!(
        events_of(&h, &id)
            .await
            .contains(&"outcome_unknown".to_owned())
    );

    // Nothing could be sent at all: a clean failure.
    let export = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "weekly", "payload": {"n": 1},
    }))
    .unwrap();
    let (id, _) = h.pending_with(&export).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    let status = wait_done(&h, &id).await;
    assert_eq!(status.state, api::State::Failed, "{status:?}");
}

#[tokio::test]
async fn callbacks_to_internal_addresses_are_refused_unless_their_host_is_opted_in() {
    let h = Harness::start().await;
    let (callbacks, callback_url) = start_callbacks().await;
    let port = reqwest::Url::parse(&callback_url).unwrap().port().unwrap();
    let body = |url: &str| {
        serde_json::to_vec(&json!({
            "kind": "action", "action": "db.export", "resource": "prod/customers",
            "environment": "prod", "justification": "weekly report", "payload": {"u": url},
            "callback_url": url,
        }))
        .unwrap()
    };
    let before = h.stored().await;
    // Loopback, metadata, unspecified, private, link-local, shared, multicast — in every
    // spelling a URL parser accepts.
    for url in [
        format!("http://127.0.0.1:{port}/hooks/outcome"),
        "http://[::1]/x".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://0.0.0.0:{port}/x"),
        "http://2130706433/x".to_owned(),
        "http://0x7f.1/x".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        "http://10.1.2.3/x".to_owned(),
        "http://192.168.0.1/x".to_owned(),
        "http://172.16.5.4/x".to_owned(),
        "http://100.64.0.1/x".to_owned(),
        "http://[fe80::1]/x".to_owned(),
        "http://[fd00::1]/x".to_owned(),
        "http://224.0.0.1/x".to_owned(),
    ] {
        let refused = h.agent_a().submit(&body(&url), None).await;
        assert_eq!(
            refused.refusal(),
            (422, "callback_not_allowed".to_owned()),
            "{url}"
        );
    }
    assert_eq!(
        h.stored().await,
        before,
        "refused submissions store nothing"
    );

    // A name is checked where it resolves, when connecting: `localhost` passes intake but is
    // never called.
    let named = callback_url.replace("127.0.0.1", "localhost");
    let (id, _) = h.pending_with(&body(&named)).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    wait_done(&h, &id).await;
    let callback = wait_until("a callback attempt", Duration::from_secs(10), async || {
        let status = h.agent_a().status(&id).await.unwrap();
        status
            .execution
            .and_then(|e| e.callback)
            .filter(|c| c.attempts >= 1)
    })
    .await;
    assert_eq!(
        (callback.state, callback.attempts),
        (CallbackState::Failed, 1),
        "refused by policy: given up at once, never retried: {callback:?}"
    );
    assert!(
        callback
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("internal address")),
        "{callback:?}"
    );
    assert!(
        callbacks.received.lock().unwrap().is_empty(),
        "never called"
    );

    // Opted in, the same internal host is called.
    let h = h
        .restart_with(|c| {
            c.execution = countersign::execute::ExecutionFile {
                callback_hosts: vec!["localhost".into()],
                ..Default::default()
            }
            .resolve()
            .unwrap();
        })
        .await;
    let (id, _) = h.pending_with(&body(&format!("{named}&again=1"))).await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    wait_done(&h, &id).await;
    wait_until(
        "a callback to the opted-in host",
        Duration::from_secs(10),
        async || !callbacks.received.lock().unwrap().is_empty(),
    )
    .await;
    assert!(
        !callbacks.received.lock().unwrap().is_empty(),
        "opted in: called"
    );
}
