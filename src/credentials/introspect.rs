//! Token introspection (RFC 7662): is this token one countersign issued, signed by a key of the
//! ring, for this issuer, within its lifetime, recorded and not used? With `consume`, the first
//! such call also marks it used (single use), atomically; later calls answer inactive.

use super::token::{Claims, scope};
use super::{Issuer, LEEWAY_SECS};
use crate::api::IntrospectionAnswer;
use jsonwebtoken::{Algorithm, Validation};

/// The answer: `{"active": false}` and nothing else, or the active token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    Inactive,
    Active(Box<Claims>),
}

impl Introspection {
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active(_))
    }

    /// The RFC 7662 response body.
    pub fn answer(&self) -> IntrospectionAnswer {
        let Self::Active(c) = self else {
            return IntrospectionAnswer::default();
        };
        IntrospectionAnswer {
            active: true,
            scope: Some(scope(&c.action, &c.environment, &c.resource)),
            client_id: Some(c.sub.strip_prefix("agent:").unwrap_or(&c.sub).to_owned()),
            token_type: Some("Bearer".to_owned()),
            sub: Some(c.sub.clone()),
            aud: Some(c.aud.clone()),
            iss: Some(c.iss.clone()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            jti: Some(c.jti.clone()),
            request_id: Some(c.request_id.clone()),
            digest: Some(c.digest.clone()),
            action: Some(c.action.clone()),
            resource: Some(c.resource.clone()),
            environment: Some(c.environment.clone()),
            approvers: Some(c.approvers.clone()),
        }
    }
}

impl Issuer {
    /// Checks the signature (any key of the ring), `exp`/`nbf` (with 5 s leeway), `iss`, and
    /// that the `jti` is recorded for this binding and not used. With `consume`, marks it used.
    /// Only a failing store is an error; anything wrong with the token is `Inactive`.
    pub async fn introspect(&self, token: &str, consume: bool) -> anyhow::Result<Introspection> {
        let Some(claims) = self.verify(token) else {
            return Ok(Introspection::Inactive);
        };
        let Some(row) = self.store.credential(&claims.jti).await? else {
            return Ok(Introspection::Inactive);
        };
        let now_ms = crate::time::now_ms();
        let bound = row.request_id == claims.request_id
            && row.audience == claims.aud
            && claims.sub == format!("agent:{}", row.agent_id)
            && row.used_at.is_none()
            && row.expires_at + (LEEWAY_SECS as i64) * 1000 > now_ms;
        if !bound {
            return Ok(Introspection::Inactive);
        }
        if consume && !self.store.consume_credential(&claims.jti, now_ms).await? {
            // Another call used it first (or it just expired).
            return Ok(Introspection::Inactive);
        }
        if consume {
            tracing::info!(request.id = %claims.request_id, credential.id = %claims.jti, "credential used");
        }
        Ok(Introspection::Active(Box::new(claims)))
    }

    /// The claims of a token this issuer signed and that is within its lifetime; `None` for
    /// anything else (the reason is not told: introspection answers only "inactive").
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA {
            return None;
        }
        let kid = header.kid?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false; // any audience: the caller compares it to its own
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub", "aud", "jti"]);
        let ring = self.read();
        let key = ring.find(&kid)?;
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding(), &validation).ok()?;
        Some(data.claims)
    }
}
