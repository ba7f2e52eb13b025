//! Attack as a test: canary values in a payload — and the just-in-time credential the approved
//! action gets — must never reach the git repository (any ref or object), the logs (at debug
//! level, JSON), the database files (raw payloads are sealed), or any HTTP answer — for
//! accepted and refused calls, and for an action that prints its payload and token.

use countersign::api::{State, Verdict};
use countersign::cli::client::{AgentClient, ReviewerClient};
use serde_json::json;
use std::time::Duration;
use testkit::*;

const CANARIES: [&str; 3] = [
    "CANARY-pw-5f1e2d",
    "canary.person@example.org",
    "AKIACANARY7777777777",
];

#[tokio::test]
async fn payload_canaries_never_reach_git_logs_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent-a.key"), KEY_A_NEW).unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nlog_format = \"json\"\nlog_level = \"debug\"\n\n\
             [[agents]]\nid = \"agent-a\"\nkeys = [{{ file = \"agent-a.key\" }}]\n\n\
             [[reviewers]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
            countersign::cli::keys::token_sha256(BOB)
        ),
    )
    .unwrap();
    // db.export prints its payload and its token, and keeps a copy of the token for this test.
    let token_file = dir.path().join("token-seen-by-the-action");
    seed_repo(&dir.path().join("data"))
        .commit_files(
            "main",
            &[(
                "policies/actions.toml",
                &format!(
                    "[actions.\"db.export\"]\nexecutor = {{ type = \"command\", argv = [\"/bin/sh\", \"-c\", \"cat; printf %s \\\"$COUNTERSIGN_TOKEN\\\" > {}; echo token=$COUNTERSIGN_TOKEN >&2\"] }}\naudience = \"exports\"\n",
                    token_file.display()
                ),
            )],
            "an action that prints what it gets",
        )
        .unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Binary::spawn_logging(
        &["--config", "countersign.toml", "serve"],
        dir.path(),
        log.into(),
    );
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let reviewer = ReviewerClient::new(&server.url, BOB);
    let mut answers = Vec::new();

    let payload = json!({
        "password": CANARIES[0],
        "contact": { "email": CANARIES[1] },
        "keys": [CANARIES[2]],
        "limit": 10,
    });
    // Each answer as JSON text: the typed documents serialize to exactly what was sent (see
    // `src/server/api_tests.rs`).
    fn text(doc: &impl serde::Serialize) -> String {
        serde_json::to_string(doc).unwrap()
    }
    let accepted = agent
        .submit(&action_body(payload.clone()), Some("canary-1"))
        .await
        .unwrap();
    let id = accepted.id.as_str().to_owned();
    answers.push(text(&accepted));
    let retried = agent
        .submit(&action_body(payload.clone()), Some("canary-1"))
        .await
        .unwrap();
    answers.push(text(&retried));
    let pending = agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    answers.push(text(&pending));
    answers.push(text(&reviewer.show(&id).await.unwrap()));
    let approved = reviewer.review(&id, Verdict::Approve, None).await.unwrap();
    answers.push(text(&approved));
    let done = agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::Succeeded
        })
        .await
        .unwrap();
    answers.push(text(&done));

    // Refused calls carrying the canaries: wrong key, type errors, semantic errors.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/requests", server.url);
    let bodies = [
        action_body(payload.clone()),
        format!(r#"{{"kind":"action","action":"a","resource":"r","environment":"p","justification":["{}"]}}"#, CANARIES[0]).into_bytes(),
        format!(r#"{{"kind":"{}","action":"a","resource":"r","environment":"p","justification":"j"}}"#, CANARIES[1]).into_bytes(),
        format!(r#"{{"kind":"action","action":"{}/x","resource":"r","environment":"p","justification":"j"}}"#, CANARIES[2]).into_bytes(),
        format!(r#"{{"kind":"action","{}":1}}"#, CANARIES[0]).into_bytes(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let signing_key = if i == 0 { KEY_B } else { KEY_A_NEW };
        let headers = signed_headers("agent-a", signing_key, now(), "POST", "/v1/requests", body);
        let req = headers
            .iter()
            .fold(http.post(&url), |r, (k, v)| r.header(*k, v));
        let resp = req.body(body.clone()).send().await.unwrap();
        assert!(resp.status().is_client_error(), "body {i} must be refused");
        answers.push(resp.text().await.unwrap());
    }
    // Let the worker publish the decision before the server is stopped.
    let repo_path = dir.path().join("data/repo.git");
    wait_until("the decision note", Duration::from_secs(20), async || {
        git2::Repository::open(&repo_path)
            .unwrap()
            .find_reference("refs/notes/countersign")
            .is_ok()
    })
    .await;
    // And the ledger writer commit the decision, so the ledger branch is searched too.
    wait_until(
        "the decision on the ledger branch",
        Duration::from_secs(20),
        async || {
            ledger_entries(&repo_path)
                .iter()
                .any(|e| e["request_id"] == id.as_str() && e["event"] == "approved")
        },
    )
    .await;
    server.kill_9();

    let token = std::fs::read_to_string(&token_file).expect("the action ran and got a token");
    assert!(token.starts_with("eyJ"), "a JWT: {token}");
    let output = answers
        .iter()
        .find(|a| a.contains("\"execution\""))
        .unwrap();
    assert!(
        output.contains("token=[credential]"),
        "the action's output is kept, its token replaced: {output}"
    );
    let secrets: Vec<&str> = CANARIES.iter().copied().chain([token.as_str()]).collect();
    for canary in secrets.iter().copied() {
        for answer in &answers {
            assert!(
                !answer.contains(canary),
                "an HTTP answer leaked {canary}: {answer}"
            );
        }
        let logs = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            logs.contains(&id),
            "the log should mention the request (sanity check)"
        );
        assert!(!logs.contains(canary), "the log leaked {canary}");
    }
    // The database (and its WAL) holds raw payloads only sealed.
    for file in ["countersign.db", "countersign.db-wal"] {
        let path = dir.path().join("data").join(file);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for canary in &secrets {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{file} holds {canary} in plain text"
            );
        }
    }
    let repo = git2::Repository::open(&repo_path).unwrap();
    let odb = repo.odb().unwrap();
    let mut objects = 0;
    odb.foreach(|oid| {
        let object = odb.read(*oid).unwrap();
        let data = String::from_utf8_lossy(object.data());
        for canary in &secrets {
            assert!(!data.contains(canary), "git object {oid} leaked {canary}");
        }
        objects += 1;
        true
    })
    .unwrap();
    assert!(objects > 5, "the scan must have seen the review objects");
    for r in repo.references().unwrap() {
        let name = r.unwrap().name().unwrap().to_owned();
        assert!(secrets.iter().all(|c| !name.contains(c)), "{name}");
    }
}
