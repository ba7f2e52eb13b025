//! Who talks to countersign: registered agents (with their signing keys), human reviewers and
//! token clients (both known by the SHA-256 of their bearer token).

use super::AgentId;
use super::signature::AgentKey;

/// A registered agent, with its keys loaded.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: AgentId,
    pub owners: Vec<String>,
    pub keys: Vec<AgentKey>,
}

/// A configured reviewer: a name and the SHA-256 of their token.
#[derive(Debug, Clone)]
pub struct Reviewer {
    pub name: String,
    pub token_sha256: [u8; 32],
    pub email: Option<String>,
}

/// A configured token client: a name and the SHA-256 of its bearer token.
#[derive(Debug, Clone)]
pub struct TokenClient {
    pub name: String,
    pub token_sha256: [u8; 32],
}
