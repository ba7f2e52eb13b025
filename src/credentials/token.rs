//! What a token says: the [`Grant`] the engine asks for, the [`Claims`] signed into the JWT and
//! the [`Issued`] token handed back (the only place the token itself exists).

use crate::request::{AgentId, Digest, RequestId};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zeroize::Zeroizing;

/// What the engine asks a token for: an approved request's binding and the audience of the
/// action's configuration.
#[derive(Debug, Clone)]
pub struct Grant {
    pub agent: AgentId,
    /// Who will accept the token (`aud`), e.g. `sts.amazonaws.com` or `https://vault.example`.
    pub audience: String,
    /// `None` = the default, 5 minutes. More than 1 hour, or zero, is refused.
    pub ttl: Option<Duration>,
    pub request_id: RequestId,
    pub digest: Digest,
    pub action: String,
    pub resource: String,
    pub environment: String,
    /// The reviewers whose approvals counted.
    pub approvers: Vec<String>,
}

impl Grant {
    /// The scope recorded in the ledger and answered by introspection:
    /// `<action>:<environment>:<resource>`.
    pub fn scope(&self) -> String {
        scope(&self.action, &self.environment, &self.resource)
    }
}

pub(super) fn scope(action: &str, environment: &str, resource: &str) -> String {
    format!("{action}:{environment}:{resource}")
}

/// The claims of every countersign token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// `agent:<id>`.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A ULID.
    pub jti: String,
    pub request_id: String,
    /// `sha256:<hex>` of the approved content.
    pub digest: String,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub approvers: Vec<String>,
}

/// A signed token. The token is zeroized on drop and never shown by `Debug`; hand it to the
/// action and forget it. Nothing else in countersign keeps it.
pub struct Issued {
    pub token: Zeroizing<String>,
    pub jti: String,
    pub audience: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The key that signed it.
    pub kid: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("jti", &self.jti)
            .field("audience", &self.audience)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("kid", &self.kid)
            .finish()
    }
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("credential_ttl must be positive")]
    TtlNotPositive,
    #[error("credential_ttl is {0:?}; at most 1 hour is allowed")]
    TtlTooLong(Duration),
    #[error("the audience must be 1-512 visible ASCII characters")]
    BadAudience,
    #[error("cannot sign the token: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    #[error("cannot record the token: {0:#}")]
    Store(#[from] anyhow::Error),
}
