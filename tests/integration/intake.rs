//! Signed intake against the real server on loopback: what is accepted, what is refused with
//! which error, and that a refused call stores nothing.

use countersign::api::{Readiness, State, SubmitAnswer};
use serde_json::json;
use testkit::*;

const PATH: &str = "/v1/requests";

type Headers = Vec<(&'static str, String)>;

#[tokio::test]
async fn a_signed_request_is_accepted_durably_with_digest_and_location() {
    let h = Harness::start().await;
    let body = action_body(json!({"table": "orders", "limit": 5}));
    let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
    let resp = h.http.post(format!("{}{PATH}", h.url)).body(body.clone());
    let resp = headers
        .iter()
        .fold(resp, |r, (k, v)| r.header(*k, v))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let answer: SubmitAnswer = resp.json().await.unwrap();
    let id = answer.id.as_str();
    assert!(id.starts_with("cr_"), "{answer:?}");
    assert_eq!(location, format!("/v1/requests/{id}"));
    assert_eq!(answer.state, State::Received);
    assert!(answer.digest.starts_with("sha256:"));
    // The digest is the canonical one: the same content with keys reordered digests the same.
    let reordered = br#"{"payload":{"limit":5,"table":"orders"},"environment":"prod","resource":"prod/customers","action":"db.export","kind":"action","justification":"other words"}"#;
    let again = h.agent_a().submit(reordered, None).await.unwrap();
    assert_eq!(again.digest, answer.digest);
    assert_ne!(again.id, answer.id);
    let (rows, _) = h.stored().await;
    assert!(rows.contains(&("requests", 2)), "{rows:?}");
}

#[tokio::test]
async fn bad_missing_and_foreign_signatures_get_401_and_store_nothing() {
    let h = Harness::start().await;
    let body = action_body(json!({"limit": 1}));
    let ts = now();
    let cases: Vec<(&str, Headers, &str)> = vec![
        (
            "wrong key",
            signed_headers("agent-a", KEY_B, ts, "POST", PATH, &body),
            "bad_signature",
        ),
        (
            "unknown agent",
            signed_headers("agent-z", KEY_A_NEW, ts, "POST", PATH, &body),
            "unknown_agent",
        ),
        (
            "signed for another path",
            signed_headers("agent-a", KEY_A_NEW, ts, "POST", "/v1/requestz", &body),
            "bad_signature",
        ),
        (
            "signed as GET",
            signed_headers("agent-a", KEY_A_NEW, ts, "GET", PATH, &body),
            "bad_signature",
        ),
        (
            "signed other body",
            signed_headers("agent-a", KEY_A_NEW, ts, "POST", PATH, b"{}"),
            "bad_signature",
        ),
        (
            "no signature",
            signed_headers("agent-a", KEY_A_NEW, ts, "POST", PATH, &body)[..3].to_vec(),
            "missing_signature",
        ),
        (
            "no headers",
            vec![("content-type", "application/json".into())],
            "missing_signature",
        ),
    ];
    for (name, headers, code) in cases {
        let (status, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(error_code(&answer), code, "{name}: {answer}");
    }
    let mut garbled = signed_headers("agent-a", KEY_A_NEW, ts, "POST", PATH, &body);
    garbled[3].1 = "sha256=not-hex".into();
    let (status, answer) = h.raw("POST", PATH, &garbled, body.clone()).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (401, "bad_signature")
    );
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn both_keys_work_during_rotation_and_the_old_one_stops_after() {
    let h = Harness::start().await;
    for k in [KEY_A_OLD, KEY_A_NEW] {
        let body = action_body(json!({"key": k.len()}));
        let (status, answer) = h
            .raw(
                "POST",
                PATH,
                &signed_headers("agent-a", k, now(), "POST", PATH, &body),
                body,
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    // Rotation completed: only the new key is configured.
    let h = h
        .restart_with(|c| {
            c.agents[0].keys.remove(0);
        })
        .await;
    let body = action_body(json!({"after": "rotation"}));
    let (status, answer) = h
        .raw(
            "POST",
            PATH,
            &signed_headers("agent-a", KEY_A_OLD, now(), "POST", PATH, &body),
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (401, "bad_signature")
    );
    let (status, _) = h
        .raw(
            "POST",
            PATH,
            &signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body),
            body,
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_replayed_signature_gets_409_even_after_a_restart() {
    let h = Harness::start().await;
    let body = action_body(json!({"limit": 9}));
    let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
    assert_eq!(h.raw("POST", PATH, &headers, body.clone()).await.0, 202);
    let (status, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (409, "replayed_signature")
    );
    let h = h.restart_with(|_| {}).await;
    let (status, _) = h.raw("POST", PATH, &headers, body).await;
    assert_eq!(status, 409, "replay protection must survive a restart");
    let (rows, _) = h.stored().await;
    assert!(rows.contains(&("requests", 1)), "{rows:?}");
}

#[tokio::test]
async fn timestamps_outside_the_window_get_401() {
    let h = Harness::start().await;
    let body = action_body(json!({}));
    for skew in [-301, 301, -100_000] {
        let headers = signed_headers("agent-a", KEY_A_NEW, now() + skew, "POST", PATH, &body);
        let (status, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
        assert_eq!(
            (status, error_code(&answer).as_str()),
            (401, "timestamp_out_of_window"),
            "skew {skew}"
        );
    }
    let mut headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
    headers[2].1 = "yesterday".into();
    let (status, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (401, "invalid_timestamp")
    );
    assert_nothing_stored(&h).await;
    for skew in [-250, 250] {
        let headers = signed_headers("agent-a", KEY_A_NEW, now() + skew, "POST", PATH, &body);
        assert_eq!(
            h.raw("POST", PATH, &headers, body.clone()).await.0,
            202,
            "skew {skew} is inside the window"
        );
    }
}

#[tokio::test]
async fn oversize_bodies_get_413_declared_or_streamed() {
    let h = Harness::start().await;
    let big = action_body(json!({"blob": "x".repeat(1024 * 1024)}));
    let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &big);
    let (status, answer) = h.raw("POST", PATH, &headers, big.clone()).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (413, "payload_too_large")
    );
    // Without a Content-Length (chunked), the limit still holds while reading.
    assert_eq!(chunked_post(&h, &headers, &big).await, 413);
    assert_nothing_stored(&h).await;
}

/// Sends a chunked POST over a plain TCP connection and returns the status code.
async fn chunked_post(h: &Harness, headers: &[(&str, String)], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = h.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server may answer and close before the whole body is sent
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn malformed_unknown_and_wrongly_typed_bodies_are_refused_precisely() {
    let h = Harness::start().await;
    let canary = "CANARY-7f3a9c-s3cr3t";
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (b"{\"kind\": \"action\",".to_vec(), 400, "malformed_request", "not valid JSON"),
        (br#"{"kind":"action"}"#.to_vec(), 400, "malformed_request", "missing field `action`"),
        (format!(r#"{{"kind":"action","action":"a","resource":"r","environment":"p","justification":{{"x":"{canary}"}}}}"#).into_bytes(), 400, "malformed_request", "`justification` must be a string"),
        (br#"{"kind":"delete","action":"a","resource":"r","environment":"p","justification":"j"}"#.to_vec(), 422, "invalid_request", "`kind`"),
        (br#"{"kind":"action","action":"","resource":"r","environment":"p","justification":"j"}"#.to_vec(), 422, "invalid_request", "`action`"),
        (br#"{"kind":"change","action":"apply","resource":"r","environment":"p","justification":"j","changes":[{"path":"../../etc/passwd","content":"x"}]}"#.to_vec(), 422, "invalid_request", "path traversal"),
        (br#"{"kind":"change","action":"apply","resource":"r","environment":"p","justification":"j","changes":[{"path":"/etc/passwd","content":"x"}]}"#.to_vec(), 422, "invalid_request", "path traversal"),
        (format!(r#"{{"kind":"action","action":"a","resource":"r","environment":"p","justification":"j","callback_url":"https://u:{canary}@h/"}}"#).into_bytes(), 422, "invalid_request", "credentials"),
    ];
    for (body, status, code, needle) in cases {
        let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
        let (got, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
        let text = answer.to_string();
        assert_eq!(got, status, "{}: {text}", String::from_utf8_lossy(&body));
        let error = error_detail(&answer);
        assert_eq!(error.code, code, "{text}");
        assert!(error.message.contains(needle), "{text}");
        assert!(
            !text.contains(canary),
            "error echoed a submitted value: {text}"
        );
    }
    // Wrong content type: 415 before anything else.
    let body = action_body(json!({}));
    let mut headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
    headers[0].1 = "text/plain".into();
    let (status, answer) = h.raw("POST", PATH, &headers, body).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (415, "unsupported_media_type")
    );
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_original_answer_and_stores_once() {
    let h = Harness::start().await;
    let agent = h.agent_a();
    let body = action_body(json!({"limit": 3}));
    let first = agent.submit(&body, Some("retry-42")).await.unwrap();
    // A retry is signed afresh (new timestamp) and may come much later.
    let second = agent.submit(&body, Some("retry-42")).await.unwrap();
    assert_eq!(second, first);
    // The exact same signed bytes resent by a network layer are also an idempotent retry.
    let body43 = action_body(json!({"limit": 43}));
    let mut with_key = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body43);
    with_key.push(("idempotency-key", "retry-43".into()));
    let (status, original) = h.raw("POST", PATH, &with_key, body43.clone()).await;
    assert_eq!(status, 202, "{original}");
    let (status, replayed) = h.raw("POST", PATH, &with_key, body43).await;
    assert_eq!((status, &replayed), (202, &original));
    // Same key, different content: refused.
    let other = agent
        .submit(&action_body(json!({"limit": 4})), Some("retry-42"))
        .await;
    assert_eq!(other.refusal(), (422, "idempotency_key_reused".to_owned()));
    // Keys are per agent: agent-b may use the same key for its own request.
    let b = h.agent_b().submit(&body, Some("retry-42")).await.unwrap();
    assert_ne!(b.id, first.id);
    let (rows, _) = h.stored().await;
    assert!(rows.contains(&("requests", 3)), "{rows:?}");
    assert!(rows.contains(&("idempotency_keys", 3)), "{rows:?}");
}

#[tokio::test]
async fn status_is_visible_only_to_the_submitting_agent() {
    let h = Harness::start().await;
    let id = h.submit_ok().await;
    let mine = h.wait_state(&h.agent_a(), &id, State::PendingReview).await;
    assert_eq!(mine.id.as_str(), id);
    assert_eq!(mine.agent, "agent-a");
    assert!(
        mine.review
            .as_ref()
            .unwrap()
            .reference
            .starts_with("countersign/cr_")
    );
    // On the wire on purpose: the typed status has no `payload` field, so only the raw
    // document can show that none is sent.
    let path = format!("/v1/requests/{id}");
    let signed = signed_headers("agent-a", KEY_A_NEW, now(), "GET", &path, b"");
    let (status, raw) = h.raw("GET", &path, &signed, vec![]).await;
    assert_eq!(status, 200, "{raw}");
    assert!(
        raw.get("payload").is_none(),
        "status never echoes the raw payload"
    );
    let theirs = h.agent_b().status(&id).await;
    assert_eq!(theirs.refusal().0, 404);
    let missing = h.agent_a().status("cr_01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!(missing.refusal().0, 404);
    let path = format!("/v1/requests/{id}");
    let (status, _) = h.raw("GET", &path, &[], vec![]).await;
    assert_eq!(status, 401, "unsigned status calls are refused");
    let wrong_path = signed_headers(
        "agent-a",
        KEY_A_NEW,
        now(),
        "GET",
        "/v1/requests/cr_other",
        b"",
    );
    assert_eq!(h.raw("GET", &path, &wrong_path, vec![]).await.0, 401);
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let h = Harness::start().await;
    h.submit_ok().await;
    let bad = action_body(json!({}));
    h.raw(
        "POST",
        PATH,
        &signed_headers("agent-a", KEY_B, now(), "POST", PATH, &bad),
        bad.clone(),
    )
    .await;
    assert_eq!(h.raw("GET", "/healthz", &[], vec![]).await.0, 200);
    let (status, ready) = h.raw("GET", "/readyz", &[], vec![]).await;
    assert_eq!(status, 200, "{ready}");
    let ready: Readiness = serde_json::from_value(ready).unwrap();
    assert!(ready.database.ok && ready.repository.ok, "{ready:?}");
    let (_, metrics) = h.raw("GET", "/metrics", &[], vec![]).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("countersign_intake_requests_total{outcome=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("countersign_intake_requests_total{outcome=\"bad_signature\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("countersign_http_request_duration_seconds_bucket"),
        "{text}"
    );
    let (status, answer) = h.raw("GET", "/nowhere", &[], vec![]).await;
    assert_eq!((status, error_code(&answer).as_str()), (404, "not_found"));
}

async fn assert_nothing_stored(h: &Harness) {
    let (rows, refs) = h.stored().await;
    for (table, n) in &rows {
        assert_eq!(
            *n, 0,
            "table {table} has rows after rejected calls: {rows:?}"
        );
    }
    assert_eq!(refs, 1, "only the base branch may exist in git");
}

#[tokio::test]
async fn a_burst_of_replays_and_retries_stores_each_request_once_without_hurting_neighbours() {
    let h = Harness::start().await;
    let replayed = action_body(json!({"burst": "same bytes"}));
    let same = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &replayed);
    let keyed = action_body(json!({"burst": "same key"}));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (h_url, http) = (h.url.clone(), h.http.clone());
        let (replayed, same, keyed) = (replayed.clone(), same.clone(), keyed.clone());
        tasks.spawn(async move {
            let (kind, body, headers) = match i % 3 {
                0 => ("replay", replayed, same),
                1 => {
                    let mut headers =
                        signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &keyed);
                    headers.push(("idempotency-key", "burst-key".into()));
                    // Distinct signatures: vary the timestamp inside the window.
                    headers[2].1 = (now() - i as i64).to_string();
                    headers[3].1 = countersign::request::signature::sign(
                        &key(KEY_A_NEW),
                        now() - i as i64,
                        "POST",
                        PATH,
                        &keyed,
                    );
                    ("keyed", keyed, headers)
                }
                _ => {
                    let body = action_body(json!({ "burst": i }));
                    (
                        "distinct",
                        body.clone(),
                        signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body),
                    )
                }
            };
            let req = headers
                .iter()
                .fold(http.post(format!("{h_url}{PATH}")), |r, (k, v)| {
                    r.header(*k, v)
                });
            let resp = req.body(body).send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            // An accepted one answers a `SubmitAnswer`; a refused one an `ErrorBody`.
            let id = serde_json::from_slice::<SubmitAnswer>(&bytes)
                .ok()
                .map(|a| a.id.as_str().to_owned());
            (kind, status, id)
        });
    }
    let mut by_kind: std::collections::HashMap<&str, Vec<(u16, Option<String>)>> =
        Default::default();
    while let Some(r) = tasks.join_next().await {
        let (kind, status, id) = r.unwrap();
        by_kind.entry(kind).or_default().push((status, id));
    }
    let replays = &by_kind["replay"];
    assert_eq!(
        replays.iter().filter(|(s, _)| *s == 202).count(),
        1,
        "{replays:?}"
    );
    assert_eq!(
        replays.iter().filter(|(s, _)| *s == 409).count(),
        19,
        "{replays:?}"
    );
    let keyed = &by_kind["keyed"];
    assert!(keyed.iter().all(|(s, _)| *s == 202), "{keyed:?}");
    let ids: std::collections::HashSet<_> = keyed.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every retry with one key answers with the same request: {keyed:?}"
    );
    assert!(by_kind["distinct"].iter().all(|(s, _)| *s == 202));
    let (rows, _) = h.stored().await;
    assert!(rows.contains(&("requests", 1 + 1 + 20)), "{rows:?}");
}

/// A `change` request (agent-a may propose changes under `policies/`).
fn change_body(path: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "bump", "changes": [{"path": path, "content": "x"}],
    }))
    .unwrap()
}

#[tokio::test]
async fn bidi_and_zero_width_characters_in_a_path_or_identifier_get_422_naming_the_field() {
    let h = Harness::start().await;
    let action = |field: &str, value: &str| {
        let mut body: serde_json::Value =
            serde_json::from_slice(&action_body(json!({"limit": 1}))).unwrap();
        body[field] = json!(value);
        serde_json::to_vec(&body).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str, Option<&str>)> = vec![
        (
            change_body("policies/\u{202E}lmay.exe"),
            "`changes[0].path`",
            Some("U+202E"),
        ),
        (
            change_body("policies/a\u{200B}pp/values.yaml"),
            "`changes[0].path`",
            Some("U+200B"),
        ),
        (
            change_body("policies/\u{2066}app\u{2069}/x"),
            "`changes[0].path`",
            Some("U+2066"),
        ),
        (
            change_body("policies/\u{200E}x"),
            "`changes[0].path`",
            Some("U+200E"),
        ),
        (
            change_body("policies/\u{FEFF}x"),
            "`changes[0].path`",
            Some("U+FEFF"),
        ),
        (action("action", "db.\u{202E}tropxe"), "`action`", None),
        (
            action("resource", "prod/\u{200B}customers"),
            "`resource`",
            None,
        ),
        (action("environment", "pr\u{200F}od"), "`environment`", None),
    ];
    for (body, field, code_point) in cases {
        let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
        let (status, answer) = h.raw("POST", PATH, &headers, body.clone()).await;
        assert_eq!(status, 422, "{answer}");
        let error = error_detail(&answer);
        let message = &error.message;
        assert_eq!(error.code, "invalid_request", "{answer}");
        assert!(message.contains(field), "{field}: {answer}");
        if let Some(c) = code_point {
            assert!(message.contains(c), "{c}: {answer}");
        }
    }
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn change_paths_git_refuses_get_422_naming_the_path_and_store_nothing() {
    let h = Harness::start().await;
    for path in [
        "policies/.git./x",
        "policies/.git /x",
        "policies/git~1/x",
        "policies/.GIT/x",
        "policies/.gIt/hooks/post-checkout",
        "policies/GIT~1 ./x",
        "policies/.git.../config",
    ] {
        let body = change_body(path);
        let headers = signed_headers("agent-a", KEY_A_NEW, now(), "POST", PATH, &body);
        let (status, answer) = h.raw("POST", PATH, &headers, body).await;
        assert_eq!(status, 422, "{path}: {answer}");
        let message = error_detail(&answer).message;
        assert!(message.contains("`changes[0].path`"), "{path}: {answer}");
    }
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn a_justification_with_a_bidi_override_is_shown_by_code_point_in_review_text_commit_and_chat()
 {
    use countersign::notify::{NotifyConfig, Target, TargetKind};
    use testkit::fake_chat::FakeChat;
    let fake = FakeChat::start().await;
    let hook = |name: &str, kind: TargetKind| Target {
        name: name.into(),
        kind,
        route: Default::default(),
        mention: None,
    };
    let targets = vec![
        hook(
            "slack",
            TargetKind::SlackWebhook {
                url: zeroize::Zeroizing::new(fake.slack_webhook_url("slack")),
            },
        ),
        hook(
            "teams",
            TargetKind::TeamsWebhook {
                url: zeroize::Zeroizing::new(fake.teams_webhook_url("teams")),
            },
        ),
    ];
    let h = Harness::start_with(|c| {
        c.notify = NotifyConfig {
            targets,
            max_attempts: 5,
        }
    })
    .await;
    // Reads "export of the weekly table" but is stored reversed after the override.
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod",
        "justification": "export of the \u{202E}elbat ylkeew\u{202C} and a\u{200B}b",
        "payload": {"note": "x\u{2066}y\u{2069}"},
    }))
    .unwrap();
    let (id, status) = h.pending_with(&body).await;
    let reference = status.review.unwrap().reference;
    let repo = git2::Repository::open(h.repo_path()).unwrap();
    let commit = repo
        .find_reference(&format!("refs/heads/{reference}"))
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let tree = commit.tree().unwrap();
    let file = |suffix: &str| {
        let mut found = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
            if e.name().is_some_and(|n| n == format!("{id}{suffix}")) {
                found = Some(format!("{dir}{}", e.name().unwrap()));
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
        let path = found.unwrap_or_else(|| panic!("no {suffix} file for {id}"));
        let entry = tree.get_path(std::path::Path::new(&path)).unwrap();
        let blob = repo.find_blob(entry.id()).unwrap();
        String::from_utf8(blob.content().to_vec()).unwrap()
    };
    let description = file(".md");
    let message = commit.message().unwrap().to_owned();
    for (what, text) in [("review text", &description), ("commit message", &message)] {
        assert!(
            text.contains("export of the <U+202E>elbat ylkeew<U+202C> and a<U+200B>b"),
            "{what}: {text}"
        );
        assert!(
            countersign::text::first_invisible(text).is_none(),
            "{what} holds an invisible character: {text:?}"
        );
    }
    assert!(description.contains("x<U+2066>y<U+2069>"), "{description}");
    // The record keeps the exact value, written as escapes.
    let record = file(".json");
    assert!(record.contains("\\u202e"), "{record}");
    let parsed: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert!(
        parsed["justification"]
            .as_str()
            .unwrap()
            .contains('\u{202E}')
    );

    let arrived = fake
        .wait_for(
            |s| s.webhook_posts("slack").len() == 1 && s.webhook_posts("teams").len() == 1,
            std::time::Duration::from_secs(20),
        )
        .await;
    assert!(arrived, "the chat messages");
    for kind in ["slack", "teams"] {
        let text = fake.webhook_posts(kind)[0].1.to_string();
        assert!(
            !text.contains('\u{202E}') && !text.contains('\u{200B}') && !text.contains('\u{2066}'),
            "{kind}: {text}"
        );
    }
    let slack = fake.webhook_posts("slack")[0].1.to_string();
    assert!(slack.contains("&lt;U+202E&gt;elbat"), "{slack}");
    assert!(slack.contains("x&lt;U+2066&gt;y"), "{slack}");
    let teams = fake.webhook_posts("teams")[0].1.to_string();
    assert!(teams.contains(r"\\<U+202E\\>elbat"), "{teams}");
}
