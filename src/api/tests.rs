//! Every document family round-trips: a realistic document, as the server sends it, parses into
//! its struct and serializes back to the same JSON (same fields, same nulls, same absences).

use super::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Parses `doc` as `T`, serializes it again and checks nothing was lost or added.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(doc: Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&typed).unwrap(), doc);
    let again: T = serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
    assert_eq!(again, typed);
    typed
}

const ID: &str = "cr_01JF3Q9W6M4T8Y2ZKX5R7B0C1D";
const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn status_doc() -> Value {
    json!({
        "id": ID,
        "agent": "deploy-bot",
        "kind": "action",
        "action": "db.export",
        "resource": "prod/customers",
        "environment": "prod",
        "state": "succeeded",
        "digest": DIGEST,
        "review": { "reference": "countersign/cr_01JF3Q9W6M4T8Y2ZKX5R7B0C1D", "url": null },
        "decisions": [
            { "reviewer": "bob", "decision": "approve", "reason": "scope matches the ticket",
              "digest": DIGEST, "at": "2026-12-07T10:01:02.003Z" },
            { "reviewer": "carol", "decision": "withdrawn", "reason": null,
              "digest": DIGEST, "at": "2026-12-07T10:02:00.000Z" },
        ],
        "created_at": "2026-12-07T10:00:00.000Z",
        "updated_at": "2026-12-07T10:03:00.000Z",
        "expires_at": "2026-12-08T10:00:00.000Z",
        "payload_erased_at": "2026-12-07T10:03:00.000Z",
        "policy": {
            "commit": "3b18e512dba79e4c8300dd08aeb37f8e728b8dad",
            "outcome": "needs_review",
            "risk": "high",
            "requirements": [{
                "section": "Data", "file": "policies/CODEOWNERS", "line": 4,
                "pattern": "actions/db.*/prod/**", "subjects": ["actions/db.export/prod/customers"],
                "owners": ["@alice", "@bob", "@org/dba"], "optional": false, "required": 1,
                "approved_by": ["bob"], "satisfied": true, "eligible": ["bob"],
                "excluded": [{ "name": "alice", "why": "owns the submitting agent" }],
                "unsatisfiable": false,
            }],
            "not_counted": [
                { "reviewer": "alice", "why": "owns the submitting agent", "at": "2026-12-07T10:00:30.000Z" },
            ],
        },
        "execution": {
            "executor": "http",
            "attempt_id": "01JF3QA1XYZ",
            "attempts": 1,
            "idempotent": true,
            "started_at": "2026-12-07T10:02:59.000Z",
            "finished_at": "2026-12-07T10:03:00.000Z",
            "outcome": {
                "success": true, "exit_status": null, "signal": null, "http_status": 200,
                "output": "{\"rows\":500}", "error": null, "started_at_ms": 1796637779000_i64,
                "duration_ms": 12, "credential": "01JF3QA2CRED",
            },
            "callback": { "state": "pending", "attempts": 2, "last_error": "connection refused" },
        },
    })
}

#[test]
fn submit_answers_round_trip() {
    let answer: SubmitAnswer = round_trip(json!({
        "id": ID,
        "state": "received",
        "digest": DIGEST,
        "status_url": format!("/v1/requests/{ID}"),
        "created_at": "2026-12-07T10:00:00.000Z",
        "expires_at": "2026-12-08T10:00:00.000Z",
        "policy": { "commit": "3b18e512", "outcome": "auto_approve", "risk": "low" },
    }));
    assert_eq!(answer.state, State::Received);
    // Answers stored before the policy engine have no `policy`; a repeat shows them as stored.
    let old: SubmitAnswer = round_trip(json!({
        "id": ID, "state": "received", "digest": DIGEST, "status_url": "/v1/requests/x",
        "created_at": "2026-12-07T10:00:00.000Z", "expires_at": "2026-12-08T10:00:00.000Z",
    }));
    assert!(old.policy.is_none());
}

#[test]
fn request_status_round_trips_with_every_part() {
    let status: RequestStatus = round_trip(status_doc());
    assert_eq!(status.state, State::Succeeded);
    assert_eq!(status.decisions[1].decision, DecisionKind::Withdrawn);
    let execution = status.execution.unwrap();
    assert_eq!(execution.callback.unwrap().state, CallbackState::Pending);
    assert!(!execution.outcome.unwrap().outcome_unknown);

    // A fresh request: no review yet, a forge retry, nothing optional present.
    let mut fresh = status_doc();
    let map = fresh.as_object_mut().unwrap();
    for absent in ["payload_erased_at", "policy", "execution"] {
        map.remove(absent);
    }
    map.insert("state".into(), json!("received"));
    map.insert("review".into(), Value::Null);
    map.insert("decisions".into(), json!([]));
    map.insert(
        "forge".into(),
        json!({ "attempts": 3, "last_error": null, "next_attempt_at": "2026-12-07T10:00:08.000Z" }),
    );
    let status: RequestStatus = round_trip(fresh);
    assert!(status.review.is_none() && status.policy.is_none());

    // An execution still running, and one whose call got no answer.
    let mut running = status_doc();
    running["state"] = json!("executing");
    running["execution"]["finished_at"] = Value::Null;
    running["execution"]["outcome"] = Value::Null;
    running["execution"]["callback"] = Value::Null;
    round_trip::<RequestStatus>(running);
    let mut unknown = status_doc();
    unknown["state"] = json!("outcome_unknown");
    let outcome = unknown["execution"]["outcome"].as_object_mut().unwrap();
    outcome.remove("credential");
    outcome.insert("outcome_unknown".into(), json!(true));
    outcome.insert("success".into(), json!(false));
    round_trip::<RequestStatus>(unknown);
}

#[test]
fn review_documents_round_trip() {
    let request: ReviewRequest =
        round_trip(json!({ "decision": "deny", "reason": "not this week" }));
    assert_eq!(request.decision, Verdict::Deny);
    round_trip::<ReviewRequest>(json!({ "decision": "approve", "reason": null }));
    let answer: ReviewAnswer = round_trip(json!({
        "id": ID, "state": "approved", "decision": "approve", "reviewer": "bob",
    }));
    assert_eq!(answer.state, State::Approved);

    let mut view = status_doc();
    let extra = json!({
        "justification": "Quarterly churn analysis for <EMAIL_1>",
        "masking": {
            "summary": "1 email masked",
            "findings": [
                { "type": "email", "pointer": "/justification", "span": [32, 47], "detector": "email" },
                { "type": "secret", "pointer": "/payload/token", "detector": "key_name" },
            ],
        },
        "payload": { "table": "customers", "where": { "email": "<EMAIL_2>" }, "limit": 500 },
        "changes": [{ "path": "deploy/app.yaml", "bytes": 1234 }],
    });
    for (k, v) in extra.as_object().unwrap() {
        view[k] = v.clone();
    }
    let view: ReviewView = round_trip(view);
    assert_eq!(view.request.agent, "deploy-bot");
    assert_eq!(view.masking.findings[1].span, None);
}

#[test]
fn callback_bodies_round_trip() {
    let mut body = json!({
        "id": ID, "state": "failed", "digest": DIGEST, "event": "execution_failed",
        "reason": null, "outcome": status_doc()["execution"]["outcome"].clone(),
        "at": "2026-12-07T10:03:00.000Z",
    });
    round_trip::<CallbackBody>(body.clone());
    body["reason"] = json!("countersign stopped while the action ran");
    body["outcome"] = Value::Null;
    round_trip::<CallbackBody>(body);
}

#[test]
fn error_bodies_round_trip() {
    let body: ErrorBody = round_trip(json!({
        "error": { "code": "not_found", "message": "no such request" },
    }));
    assert_eq!(body, ErrorBody::new("not_found", "no such request"));
}

#[test]
fn health_documents_round_trip() {
    round_trip::<Health>(json!({ "status": "ok" }));
    round_trip::<Readiness>(json!({
        "status": "ready",
        "database": { "ok": true },
        "repository": { "ok": true },
        "ledger": { "ok": true, "committed_seq": 42, "pending": 0 },
        "replica": { "name": "web-1-4242", "role": "leader" },
    }));
    let sick: Readiness = round_trip(json!({
        "status": "not_ready",
        "database": { "ok": true },
        "repository": { "ok": false, "error": "cannot open the repository" },
        "ledger": {
            "ok": false, "committed_seq": 42, "pending": 3,
            "push": {
                "ok": false, "remote": "https://github.com/acme/ops", "pushed_seq": 40,
                "lag_entries": 2, "pending_commits": 1, "last_pushed_at": null,
                "error": "the published ledger branch diverged",
                "diverged": { "remote_commit": "abc123", "base_commit": null, "foreign_commits": 2 },
            },
        },
        "replica": { "name": "replica-b", "role": "follower", "lease_epoch": 7 },
    }));
    assert_eq!(sick.status, ReadyStatus::NotReady);
    round_trip::<Readiness>(json!({
        "status": "ready", "database": { "ok": true }, "repository": { "ok": true },
        "ledger": { "ok": true, "committed_seq": 0, "pending": 0, "push": {
            "ok": true, "remote": "origin", "pushed_seq": null, "lag_entries": null,
            "pending_commits": null, "last_pushed_at": "2026-12-07T10:00:00.000Z",
        }},
        "replica": { "name": "replica-a", "role": "leader", "lease_epoch": 3 },
    }));
}

#[test]
fn token_documents_round_trip() {
    round_trip::<Discovery>(json!({
        "issuer": "https://cs.example",
        "jwks_uri": "https://cs.example/.well-known/jwks.json",
        "introspection_endpoint": "https://cs.example/v1/tokens/introspect",
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["iss", "sub", "aud"],
    }));
    round_trip::<Jwks>(json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "kid": "cs-01JF3Q", "alg": "EdDSA", "use": "sig",
    }]}));
    let inactive: IntrospectionAnswer = round_trip(json!({ "active": false }));
    assert_eq!(inactive, IntrospectionAnswer::default());
    round_trip::<IntrospectionAnswer>(json!({
        "active": true, "scope": "db.export:prod:prod/customers", "client_id": "deploy-bot",
        "token_type": "Bearer", "sub": "agent:deploy-bot", "aud": "https://exports.example",
        "iss": "https://cs.example", "exp": 1796638080, "iat": 1796637780, "nbf": 1796637780,
        "jti": "01JF3QA2CRED", "request_id": ID, "digest": DIGEST, "action": "db.export",
        "resource": "prod/customers", "environment": "prod", "approvers": ["bob"],
    }));
}

#[test]
fn webhook_answers_round_trip() {
    let a: WebhookAnswer = round_trip(json!({ "status": "ignored" }));
    assert_eq!(a.status, WebhookStatus::Ignored);
    round_trip::<WebhookAnswer>(json!({ "status": "accepted" }));
}

#[test]
fn closed_sets_refuse_unknown_values() {
    let mut doc = status_doc();
    doc["state"] = json!("half_done");
    assert!(serde_json::from_value::<RequestStatus>(doc).is_err());
    assert!(serde_json::from_value::<ReviewRequest>(json!({ "decision": "maybe" })).is_err());
}
