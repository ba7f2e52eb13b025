//! The reviewer's documents: the decision sent to `POST /v1/requests/{id}/reviews` and its
//! answer, and the masked request shown by `GET /v1/requests/{id}/review`.

use super::{RequestId, RequestStatus, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }
}

/// Body of `POST /v1/requests/{id}/reviews`. No other field is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub decision: Verdict,
    /// Required to deny (it is sent back to the agent); at most 4000 characters. May be `null`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `200` to `POST /v1/requests/{id}/reviews`: the decision was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewAnswer {
    pub id: RequestId,
    /// The request's state after the decision (`approved` once every requirement is met).
    pub state: State,
    pub decision: Verdict,
    /// The configured name of the reviewer whose token was used.
    pub reviewer: String,
}

/// `GET /v1/requests/{id}/review`: the request as a reviewer sees it. Every field of the
/// agent's [`RequestStatus`], plus the masked content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewView {
    #[serde(flatten)]
    pub request: RequestStatus,
    /// The agent's justification, masked.
    pub justification: String,
    /// What the masking found and replaced.
    pub masking: Masking,
    /// The agent's payload (any JSON), masked.
    pub payload: Value,
    /// The files a change request edits (content not shown).
    pub changes: Vec<ChangedFile>,
}

/// What the masking did to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masking {
    /// E.g. "2 emails, 1 secret field masked".
    pub summary: String,
    pub findings: Vec<MaskFinding>,
}

/// One masked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskFinding {
    /// What was found (`email`, `secret`, `card`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 6901 pointer into the request (`/payload/...`, `/justification`).
    pub pointer: String,
    /// Byte span inside the string value, when only part of it was masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
    /// The detector that found it.
    pub detector: String,
}

/// A file a change request edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    /// Size of the new content.
    pub bytes: usize,
}
