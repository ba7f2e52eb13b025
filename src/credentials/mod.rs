//! countersign as a token issuer: short-lived JWTs (EdDSA) for the actions of approved requests,
//! which cloud IAM (web-identity federation), Vault's JWT auth or an internal service can trust
//! through the OIDC discovery document and the JWKS. `keys.rs` holds the signing key ring,
//! `token.rs` what a token says, `introspect.rs` the RFC 7662 check (with single use). Tokens
//! are never stored or logged: the store and the ledger keep only their `jti`, audience, scope
//! and expiry.

mod introspect;
mod keys;
mod token;

pub use introspect::Introspection;
pub use keys::{KeyRing, SigningKey};
pub use token::{Claims, Grant, IssueError, Issued};

use crate::api::{Discovery, Jwks};
use crate::store::Store;
use crate::store::credentials::NewCredential;
use jsonwebtoken::{Algorithm, Header};
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

/// Token lifetime when the policy sets none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest lifetime a token may have.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// Clock skew tolerated on `exp` and `nbf` when introspecting.
pub const LEEWAY_SECS: u64 = 5;

/// Issues, publishes and introspects tokens. Shared by the engine and the HTTP routes.
pub struct Issuer {
    ring: RwLock<KeyRing>,
    /// `iss`: the server's public URL.
    issuer: String,
    store: Store,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Loads (or creates) the key ring in `keys_dir`; `issuer` is the public URL (`iss`).
    pub fn open(keys_dir: &Path, issuer: &str, store: Store) -> anyhow::Result<Self> {
        Ok(Self::new(KeyRing::load_or_create(keys_dir)?, issuer, store))
    }

    pub fn new(ring: KeyRing, issuer: &str, store: Store) -> Self {
        Self {
            ring: RwLock::new(ring),
            issuer: issuer.trim_end_matches('/').to_owned(),
            store,
        }
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.ring.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs a token for `grant` with the newest key and records its `jti` (with a
    /// `credential_issued` ledger entry) before returning it.
    pub async fn issue(&self, grant: &Grant) -> Result<Issued, IssueError> {
        let ttl = grant.ttl.unwrap_or(DEFAULT_TTL);
        if ttl.is_zero() {
            return Err(IssueError::TtlNotPositive);
        }
        if ttl > MAX_TTL {
            return Err(IssueError::TtlTooLong(ttl));
        }
        let audience = &grant.audience;
        if audience.is_empty()
            || audience.len() > 512
            || !audience.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(IssueError::BadAudience);
        }
        let now_ms = crate::time::now_ms();
        let iat = now_ms.div_euclid(1000);
        // Whole seconds, rounded up: a 1.5 s ttl never yields a token living 1 s.
        let exp = iat + ttl.as_secs() as i64 + i64::from(ttl.subsec_nanos() > 0);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!("agent:{}", grant.agent),
            aud: audience.clone(),
            iat,
            nbf: iat,
            exp,
            jti: ulid::Ulid::new().to_string(),
            request_id: grant.request_id.as_str().to_owned(),
            digest: grant.digest.as_str().to_owned(),
            action: grant.action.clone(),
            resource: grant.resource.clone(),
            environment: grant.environment.clone(),
            approvers: grant.approvers.clone(),
        };
        let (token, kid) = {
            let ring = self.read();
            let key = ring.current();
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(key.kid().to_owned());
            header.typ = Some("JWT".into());
            let token = jsonwebtoken::encode(&header, &claims, key.encoding())?;
            (zeroize::Zeroizing::new(token), key.kid().to_owned())
        };
        self.store
            .record_credential(&NewCredential {
                jti: &claims.jti,
                request_id: &claims.request_id,
                agent_id: grant.agent.as_str(),
                audience,
                scope: &grant.scope(),
                issued_at_ms: now_ms,
                expires_at_ms: exp * 1000,
            })
            .await?;
        tracing::info!(request.id = %claims.request_id, credential.id = %claims.jti, credential.audience = %audience, jwt.kid = %kid, credential.expires_at_unix = exp, "credential issued");
        Ok(Issued {
            token,
            jti: claims.jti,
            audience: claims.aud,
            issued_at: iat,
            expires_at: exp,
            kid,
        })
    }

    /// Adds a new signing key (see [`KeyRing::rotate`]); returns its id.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let kid = self.write().rotate()?;
        tracing::info!(jwt.kid = %kid, "JWT signing key rotated");
        Ok(kid)
    }

    /// Retires keys replaced at or before `cutoff_ms` (see [`KeyRing::retire_before`]).
    pub fn retire_before(&self, cutoff_ms: i64) -> anyhow::Result<Vec<String>> {
        self.write().retire_before(cutoff_ms)
    }

    /// The id of the key signing new tokens.
    pub fn current_kid(&self) -> String {
        self.read().current().kid().to_owned()
    }

    /// `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        self.read().jwks()
    }

    /// `GET /.well-known/openid-configuration`.
    pub fn discovery(&self) -> Discovery {
        discovery(&self.issuer)
    }
}

/// The OIDC discovery document of an issuer at `public_url`.
pub fn discovery(public_url: &str) -> Discovery {
    let base = public_url.trim_end_matches('/');
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect();
    Discovery {
        issuer: base.to_owned(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/v1/tokens/introspect"),
        introspection_endpoint_auth_methods_supported: names(&["bearer"]),
        id_token_signing_alg_values_supported: names(&["EdDSA"]),
        subject_types_supported: names(&["public"]),
        response_types_supported: names(&["id_token"]),
        claims_supported: names(&[
            "iss",
            "sub",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "request_id",
            "digest",
            "action",
            "resource",
            "environment",
            "approvers",
        ]),
    }
}

#[cfg(test)]
mod tests;
