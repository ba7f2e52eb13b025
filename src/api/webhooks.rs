//! The answer to GitHub's deliveries at `POST /webhooks/github`.

use serde::{Deserialize, Serialize};

/// `200` to a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAnswer {
    pub status: WebhookStatus,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Handed to the engine.
    Accepted,
    /// An event countersign does not use, or about another repository or installation.
    Ignored,
}
