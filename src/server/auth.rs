//! Authentication of callers: agents sign every call (see [`crate::request::signature`]);
//! reviewers present a bearer token whose SHA-256 is configured.

use super::error::ApiError;
use crate::config::Reviewer;
use crate::engine::Engine;
use crate::request::AgentId;
use crate::request::signature::{self, HEADER_AGENT, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::time;
use axum::http::{HeaderMap, header};

/// A verified agent call.
pub struct SignedCall {
    pub agent: AgentId,
    pub signature: String,
    pub timestamp: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies an agent's signature over `v1:<ts>:<METHOD>:<path?query>:<body>` and the
/// timestamp window. Timestamps outside the window get 401 `timestamp_out_of_window`.
pub fn verify_agent(
    engine: &Engine,
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<SignedCall, ApiError> {
    let (Some(agent), Some(ts), Some(sig)) = (
        header(headers, HEADER_AGENT),
        header(headers, HEADER_TIMESTAMP),
        header(headers, HEADER_SIGNATURE),
    ) else {
        return Err(ApiError::unauthorized(
            "missing_signature",
            "X-Countersign-Agent, X-Countersign-Timestamp and X-Countersign-Signature headers are required",
        ));
    };
    let registered = AgentId::parse(agent).and_then(|id| engine.agent(&id));
    let Some(registered) = registered else {
        return Err(ApiError::unauthorized(
            "unknown_agent",
            "the agent in X-Countersign-Agent is not registered",
        ));
    };
    let Some(timestamp) = signature::parse_timestamp(ts) else {
        return Err(ApiError::unauthorized(
            "invalid_timestamp",
            "X-Countersign-Timestamp must be unix seconds",
        ));
    };
    match signature::verify(&registered.keys, sig, ts, method, path_and_query, body) {
        Ok(_) => {}
        Err(signature::SignatureError::Malformed) => {
            return Err(ApiError::unauthorized(
                "bad_signature",
                signature::SignatureError::Malformed.to_string(),
            ));
        }
        Err(signature::SignatureError::Mismatch) => {
            return Err(ApiError::unauthorized(
                "bad_signature",
                "signature does not match; sign `v1:<timestamp>:<METHOD>:<path with query>:<body>` with the agent key",
            ));
        }
    }
    let skew = engine.timestamp_skew().as_secs() as i64;
    let now = time::now_secs();
    if (now - timestamp).abs() > skew {
        return Err(ApiError::unauthorized(
            "timestamp_out_of_window",
            format!(
                "X-Countersign-Timestamp is more than {skew} seconds away from the server clock"
            ),
        ));
    }
    Ok(SignedCall {
        agent: registered.id.clone(),
        signature: sig.to_ascii_lowercase(),
        timestamp,
    })
}

/// The token of `Authorization: Bearer <token>`; `401 missing_token` naming `what` otherwise.
pub fn bearer_token<'h>(headers: &'h HeaderMap, what: &str) -> Result<&'h str, ApiError> {
    header(headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                format!("Authorization: Bearer <{what}> is required"),
            )
        })
}

/// Finds the reviewer behind `Authorization: Bearer <token>`.
pub fn verify_reviewer<'a>(
    engine: &'a Engine,
    headers: &HeaderMap,
) -> Result<&'a Reviewer, ApiError> {
    let token = bearer_token(headers, "reviewer token")?;
    engine.reviewer_for_token(token).ok_or_else(|| {
        ApiError::unauthorized("invalid_token", "the reviewer token is not recognised")
    })
}
