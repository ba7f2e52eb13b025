//! The documents a real server sends parse into the typed [`crate::api`] structs without loss:
//! a request is submitted, refused to its agent's owner, approved and executed on a server on
//! a loopback port, and every answer on the way (raw JSON) must equal its typed re-serialization.

use crate::api::{
    Discovery, ErrorBody, Health, Jwks, Readiness, RequestStatus, ReviewAnswer, ReviewView, State,
    SubmitAnswer, Verdict,
};
use crate::app::Server;
use crate::cli::client::{AgentClient, ClientError, ReviewerClient};
use crate::config::ServerConfig;
use crate::request::AgentId;
use crate::request::identity::{Agent, Reviewer};
use crate::request::signature::{self, AgentKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

const AGENT_KEY: &str = "an-agent-key-of-at-least-thirty-two-bytes";
const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

/// A server answer as it came: status code and JSON body.
struct Answer {
    status: reqwest::StatusCode,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status(),
        body: response.json().await.unwrap(),
    }
}

/// The raw calls the typed clients make, to see the JSON itself: signed as the agent, or
/// with a reviewer's bearer token.
struct Raw {
    http: reqwest::Client,
    url: String,
}

impl Raw {
    async fn signed(&self, method: &str, path: &str, body: &[u8], key: Option<&str>) -> Answer {
        let ts = crate::time::now_secs();
        let agent_key = AgentKey::new(AGENT_KEY.as_bytes().to_vec()).unwrap();
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header(signature::HEADER_AGENT, "demo-agent")
            .header(signature::HEADER_TIMESTAMP, ts.to_string())
            .header(
                signature::HEADER_SIGNATURE,
                signature::sign(&agent_key, ts, method, path, body),
            )
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn submit(&self, body: &Value, key: &str) -> Answer {
        let body = serde_json::to_vec(body).unwrap();
        self.signed("POST", "/v1/requests", &body, Some(key)).await
    }

    async fn status(&self, id: &str) -> Answer {
        self.signed("GET", &format!("/v1/requests/{id}"), b"", None)
            .await
    }

    async fn reviewer(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn review(&self, token: &str, id: &str, reason: Option<&str>) -> Answer {
        let body = json!({ "decision": "approve", "reason": reason });
        let path = format!("/v1/requests/{id}/reviews");
        self.reviewer(token, "POST", &path, Some(body)).await
    }

    async fn show(&self, token: &str, id: &str) -> Answer {
        let path = format!("/v1/requests/{id}/review");
        self.reviewer(token, "GET", &path, None).await
    }
}

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
    answer(reqwest::get(url).await.unwrap()).await
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
    let raw = Raw {
        http: reqwest::Client::new(),
        url: url.clone(),
    };

    let body = json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "Churn analysis for ann@example.com",
        "payload": { "table": "customers", "where": { "email": "ann@example.com" } },
    });
    let submitted = raw.submit(&body, "k-1").await;
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
    let refusal = raw.review(ALICE, &id, None).await;
    let error: ErrorBody = serde_json::from_value(refusal.body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&error).unwrap(), refusal.body);

    // The reviewer's view: the status plus the masked content.
    let view: ReviewView = lossless(&raw.show(BOB, &id).await);
    assert_eq!(view.request.policy.as_ref().unwrap().not_counted.len(), 2);
    assert!(!view.justification.contains("ann@example.com"));
    let approved: ReviewAnswer = lossless(&raw.review(BOB, &id, Some("fine")).await);
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
    let executed = raw.status(&id).await;
    let status: RequestStatus = lossless(&executed);
    assert_eq!(status.decisions.len(), 1);
    assert_eq!(
        keys(&executed.body),
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
        keys(&executed.body["policy"]),
        BTreeSet::from(["commit", "outcome", "risk", "requirements", "not_counted"])
    );
    assert_eq!(
        keys(&executed.body["execution"]),
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
    assert!(executed.body["execution"]["callback"].is_null());
    assert_eq!(
        keys(&executed.body["execution"]["outcome"]),
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
    let again = raw.submit(&body, "k-1").await;
    assert_eq!(again.body, submitted.body);

    // Probes and the issuer's documents.
    lossless::<Health>(&get(&format!("{url}/healthz")).await);
    let ready: Readiness = lossless(&get(&format!("{url}/readyz")).await);
    assert!(ready.ledger.ok && ready.ledger.push.is_none());
    lossless::<Discovery>(&get(&format!("{url}/.well-known/openid-configuration")).await);
    lossless::<Jwks>(&get(&format!("{url}/.well-known/jwks.json")).await);
    server.stop().await.unwrap();
}
