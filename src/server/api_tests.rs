//! The documents a real server sends parse into the typed [`crate::api`] structs without loss:
//! a request is submitted, refused to its agent's owner, approved and executed on a server on
//! a loopback port, and every answer on the way (raw JSON) must equal its typed re-serialization.

use crate::api::{
    Discovery, ErrorBody, Health, Jwks, Readiness, RequestStatus, ReviewAnswer, ReviewView, State,
    SubmitAnswer, Verdict,
};
use crate::app::Server;
use crate::cli::client::{AgentClient, Answer, ClientError, ReviewerClient};
use crate::config::ServerConfig;
use crate::request::AgentId;
use crate::request::identity::{Agent, Reviewer};
use crate::request::signature::AgentKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

const AGENT_KEY: &str = "an-agent-key-of-at-least-thirty-two-bytes";
const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

/// Parses a 2xx answer as `T` and checks that serializing it again gives the same JSON.
fn lossless<T: Serialize + DeserializeOwned>(answer: &Answer) -> T {
    assert!(
        answer.status.is_success(),
        "{}: {}",
        answer.status,
        answer.body
    );
    let typed: T = serde_json::from_value(answer.body.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&typed).unwrap(), answer.body);
    typed
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

async fn get(url: &str) -> Answer {
    let response = reqwest::get(url).await.unwrap();
    Answer {
        status: response.status(),
        body: response.json().await.unwrap(),
    }
}

#[tokio::test]
async fn a_real_request_documents_round_trip_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::embedded(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.agents.push(Agent {
        id: AgentId::parse("demo-agent").unwrap(),
        owners: vec!["alice".into()],
        keys: vec![AgentKey::new(AGENT_KEY.as_bytes().to_vec()).unwrap()],
    });
    for (name, token) in [("alice", ALICE), ("bob", BOB)] {
        config.reviewers.push(Reviewer {
            name: name.into(),
            token_sha256: Sha256::digest(token.as_bytes()).into(),
            email: None,
        });
    }
    let server = Server::start(&config).await.unwrap();
    server
        .local_forge()
        .commit_files(
            "main",
            &[(
                "policies/actions.toml",
                "[actions.\"db.export\"]\nexecutor = { type = \"command\", argv = [\"/bin/sh\", \"-c\", \"echo exported\"] }\naudience = \"exports\"\n",
            )],
            "test: db.export runs a command",
        )
        .unwrap();
    server.engine.refresh_policy().await.unwrap();
    let url = server.url();
    let agent = AgentClient::new(&url, "demo-agent", AgentKey::new(AGENT_KEY.into()).unwrap());
    let alice = ReviewerClient::new(&url, ALICE);
    let bob = ReviewerClient::new(&url, BOB);

    let body = json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "Churn analysis for ann@example.com",
        "payload": { "table": "customers", "where": { "email": "ann@example.com" } },
    });
    let submitted = agent
        .submit_value(&serde_json::to_vec(&body).unwrap(), Some("k-1"))
        .await
        .unwrap();
    let answer: SubmitAnswer = lossless(&submitted);
    assert_eq!(answer.state, State::Received);
    let id = answer.id.as_str().to_owned();

    // Refusals come back as typed error bodies.
    let missing = agent
        .status("cr_01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(reqwest::StatusCode::NOT_FOUND), Some("not_found"))
    );
    agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    let refused = alice.review(&id, Verdict::Approve, None).await.unwrap_err();
    let ClientError::Api {
        status,
        body: error,
    } = refused
    else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!(status, 403);
    assert_eq!(error.error.code, "self_approval_forbidden");
    let raw = alice.review_value(&id, "approve", None).await.unwrap();
    let error: ErrorBody = serde_json::from_value(raw.body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&error).unwrap(), raw.body);

    // The reviewer's view: the status plus the masked content.
    let view: ReviewView = lossless(&bob.show_value(&id).await.unwrap());
    assert_eq!(view.request.policy.as_ref().unwrap().not_counted.len(), 2);
    assert!(!view.justification.contains("ann@example.com"));
    let approved: ReviewAnswer = lossless(
        &bob.review_value(&id, "approve", Some("fine"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (approved.state, approved.decision),
        (State::Approved, Verdict::Approve)
    );

    // The status of the executed request: every part present, the same field names as ever.
    agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::Succeeded
        })
        .await
        .unwrap();
    let raw = agent.status_value(&id).await.unwrap();
    let status: RequestStatus = lossless(&raw);
    assert_eq!(status.decisions.len(), 1);
    assert_eq!(
        keys(&raw.body),
        BTreeSet::from([
            "id",
            "agent",
            "kind",
            "action",
            "resource",
            "environment",
            "state",
            "digest",
            "review",
            "decisions",
            "created_at",
            "updated_at",
            "expires_at",
            "payload_erased_at",
            "policy",
            "execution",
        ])
    );
    assert_eq!(
        keys(&raw.body["policy"]),
        BTreeSet::from(["commit", "outcome", "risk", "requirements", "not_counted"])
    );
    assert_eq!(
        keys(&raw.body["execution"]),
        BTreeSet::from([
            "executor",
            "attempt_id",
            "attempts",
            "idempotent",
            "started_at",
            "finished_at",
            "outcome",
            "callback",
        ])
    );
    assert!(raw.body["execution"]["callback"].is_null());
    assert_eq!(
        keys(&raw.body["execution"]["outcome"]),
        BTreeSet::from([
            "success",
            "exit_status",
            "signal",
            "http_status",
            "output",
            "error",
            "started_at_ms",
            "duration_ms",
            "credential",
        ])
    );
    // An idempotent retry answers the stored original.
    let again = agent
        .submit_value(&serde_json::to_vec(&body).unwrap(), Some("k-1"))
        .await
        .unwrap();
    assert_eq!(again.body, submitted.body);

    // Probes and the issuer's documents.
    lossless::<Health>(&get(&format!("{url}/healthz")).await);
    let ready: Readiness = lossless(&get(&format!("{url}/readyz")).await);
    assert!(ready.ledger.ok && ready.ledger.push.is_none());
    lossless::<Discovery>(&get(&format!("{url}/.well-known/openid-configuration")).await);
    lossless::<Jwks>(&get(&format!("{url}/.well-known/jwks.json")).await);
    server.stop().await.unwrap();
}
