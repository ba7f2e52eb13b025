//! What intake contributes to the audit ledger: the fields of a request's `received` and
//! `policy_decision` entries, and the `intake_refused` entry of a signed submission the policy
//! refused. Everything here is masked again by the store before it is hashed.

use super::{Engine, Intake};
use crate::policy::Evaluation;
use crate::request::{Digest, RequestId};
use crate::time;
use serde_json::{Map, Value, json};

impl Engine {
    /// Who asked for what, where and why (masked), and a summary of what the payload held.
    pub(super) fn received_fields(
        &self,
        intake: &Intake<'_>,
        digest: &Digest,
    ) -> Map<String, Value> {
        let s = &intake.submission;
        let masked = self.masker.mask_request(&s.payload, &s.justification);
        let changes: Vec<Value> = s
            .changes
            .iter()
            .map(|c| json!({ "path": c.path, "bytes": c.content.len() }))
            .collect();
        let fields = json!({
            "agent": intake.agent.as_str(),
            "kind": s.kind.as_str(),
            "action": s.action,
            "resource": s.resource,
            "environment": s.environment,
            "justification": masked.justification,
            "digest": digest.as_str(),
            "payload_summary": payload_summary(&s.payload, &masked.summary),
            "changes": changes,
        });
        into_map(fields)
    }

    /// Records, for the audit trail, a signed submission the policy refused. The signature is
    /// remembered like an accepted one's, so a replay adds nothing. Failing to record is logged
    /// and never changes the answer (the submission is refused either way).
    pub(super) async fn record_refusal(
        &self,
        intake: &Intake<'_>,
        id: &RequestId,
        reason: &str,
        message: &str,
        policy_commit: &str,
    ) {
        let s = &intake.submission;
        let fields = into_map(json!({
            "agent": intake.agent.as_str(),
            "kind": s.kind.as_str(),
            "action": s.action,
            "resource": s.resource,
            "environment": s.environment,
            "reason": reason,
            "message": message,
            "policy_commit": policy_commit,
        }));
        let skew_ms = time::duration_ms(self.timestamp_skew) + 1000;
        let expires = intake
            .timestamp
            .saturating_mul(1000)
            .saturating_add(skew_ms);
        let recorded = self
            .store
            .record_intake_refusal(
                id,
                intake.agent.as_str(),
                intake.signature,
                expires,
                self.clock.now_ms(),
                fields,
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(request.id = %id, agent.id = %intake.agent, error = %format!("{e:#}"), "could not record a refused submission in the ledger");
        }
    }
}

/// The policy's verdict: commit, outcome, risk and who must approve.
pub(super) fn policy_decision_fields(eval: &Evaluation) -> Map<String, Value> {
    let requirements: Vec<Value> = eval
        .requirements
        .iter()
        .map(|r| {
            json!({
                "section": r.section,
                "file": r.file,
                "line": r.line,
                "owners": r.owners,
                "required": r.required,
                "optional": r.optional,
            })
        })
        .collect();
    into_map(json!({
        "policy_commit": eval.policy_commit,
        "outcome": eval.outcome,
        "risk": eval.risk,
        "requirements": requirements,
    }))
}

/// "object with 3 keys; 1 email, 1 secret field masked": shape and findings, never values.
fn payload_summary(payload: &Value, masked: &str) -> String {
    let shape = match payload {
        Value::Object(m) => format!("object with {} keys", m.len()),
        Value::Array(a) => format!("array of {}", a.len()),
        Value::Null => "empty".to_owned(),
        _ => "scalar".to_owned(),
    };
    if masked.is_empty() {
        shape
    } else {
        format!("{shape}; {masked}")
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
