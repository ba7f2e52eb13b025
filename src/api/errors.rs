//! The body of every refusal: `{"error": {"code", "message"}}`. Callers branch on `code`;
//! `message` is written by countersign for people and never echoes submitted values or secrets.

use serde::{Deserialize, Serialize};

/// Any non-2xx answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, snake_case (`not_found`, `bad_signature`, `policy_denied`, ...).
    pub code: String,
    /// One sentence for a person.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
