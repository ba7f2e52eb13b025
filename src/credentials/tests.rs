//! Unit tests of the issuer: lifetimes, claims, verification, rotation, single use.

use super::*;
use crate::config::Synchronous;
use crate::mask::Masker;
use crate::request::{AgentId, Digest, RequestId};
use serde_json::json;
use std::sync::Arc;

async fn issuer(dir: &Path) -> Issuer {
    let store = Store::open(
        &dir.join("countersign.db"),
        Synchronous::Normal,
        Arc::new(Masker::new(None, None)),
    )
    .await
    .unwrap();
    Issuer::open(&dir.join("keys/jwt"), "https://cs.example/", store).unwrap()
}

fn grant(ttl: Option<Duration>) -> Grant {
    Grant {
        agent: AgentId::parse("deploy-bot").unwrap(),
        audience: "https://vault.example".into(),
        ttl,
        request_id: RequestId::generate(),
        digest: Digest::of_bytes(b"content"),
        action: "db.export".into(),
        resource: "prod/customers".into(),
        environment: "prod".into(),
        approvers: vec!["alice".into(), "bob".into()],
    }
}

#[tokio::test]
async fn a_token_carries_its_binding_and_introspects_once_with_consume() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path()).await;
    let g = grant(None);
    let issued = issuer.issue(&g).await.unwrap();
    assert_eq!(
        issued.expires_at - issued.issued_at,
        300,
        "default 5 minutes"
    );
    assert!(!format!("{issued:?}").contains(issued.token.as_str()));
    let header = jsonwebtoken::decode_header(&issued.token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(issuer.current_kid().as_str()));
    let claims = issuer.verify(&issued.token).unwrap();
    assert_eq!(claims.iss, "https://cs.example");
    assert_eq!(claims.sub, "agent:deploy-bot");
    assert_eq!(claims.aud, "https://vault.example");
    assert_eq!(claims.jti, issued.jti);
    assert_eq!(claims.request_id, g.request_id.as_str());
    assert_eq!(claims.digest, g.digest.as_str());
    assert_eq!(claims.approvers, ["alice", "bob"]);
    assert!(ulid::Ulid::from_string(&claims.jti).is_ok());

    let first = issuer.introspect(&issued.token, false).await.unwrap();
    assert!(first.is_active());
    let body = first.answer();
    assert_eq!(body.scope.as_deref(), Some("db.export:prod:prod/customers"));
    assert_eq!(body.client_id.as_deref(), Some("deploy-bot"));
    assert_eq!(body.token_type.as_deref(), Some("Bearer"));
    assert!(
        issuer
            .introspect(&issued.token, true)
            .await
            .unwrap()
            .is_active()
    );
    let used = issuer.introspect(&issued.token, false).await.unwrap();
    assert_eq!(used, Introspection::Inactive);
    assert_eq!(
        serde_json::to_value(used.answer()).unwrap(),
        json!({ "active": false })
    );
    assert!(
        !issuer
            .introspect(&issued.token, true)
            .await
            .unwrap()
            .is_active()
    );
}

#[tokio::test]
async fn lifetimes_outside_zero_to_one_hour_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path()).await;
    assert!(matches!(
        issuer.issue(&grant(Some(Duration::ZERO))).await,
        Err(IssueError::TtlNotPositive)
    ));
    assert!(matches!(
        issuer
            .issue(&grant(Some(MAX_TTL + Duration::from_secs(1))))
            .await,
        Err(IssueError::TtlTooLong(_))
    ));
    let hour = issuer.issue(&grant(Some(MAX_TTL))).await.unwrap();
    assert_eq!(hour.expires_at - hour.issued_at, 3600);
    let mut g = grant(None);
    g.audience = "two words".into();
    assert!(matches!(
        issuer.issue(&g).await,
        Err(IssueError::BadAudience)
    ));
}

#[tokio::test]
async fn tampered_foreign_and_unrecorded_tokens_are_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path()).await;
    let issued = issuer.issue(&grant(None)).await.unwrap();
    // Change one claim: the signature no longer matches.
    let parts: Vec<&str> = issued.token.split('.').collect();
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let forged = String::from_utf8(claims)
        .unwrap()
        .replace("prod/customers", "prod/everything");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged),
        parts[2]
    );
    assert!(
        !issuer
            .introspect(&tampered, false)
            .await
            .unwrap()
            .is_active()
    );
    assert!(
        !issuer
            .introspect("not a token", false)
            .await
            .unwrap()
            .is_active()
    );
    // Another issuer's key (same kid format, different key) is not trusted.
    let other_dir = tempfile::tempdir().unwrap();
    let other = self::issuer(other_dir.path()).await;
    let foreign = other.issue(&grant(None)).await.unwrap();
    assert!(
        !issuer
            .introspect(&foreign.token, false)
            .await
            .unwrap()
            .is_active()
    );
    // The store never holds the token.
    issuer.store.close().await;
    let db = std::fs::read(dir.path().join("countersign.db")).unwrap();
    let wal = std::fs::read(dir.path().join("countersign.db-wal")).unwrap_or_default();
    let needle = parts[2].as_bytes();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_old_tokens_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path()).await;
    let old_kid = issuer.current_kid();
    let before = issuer.issue(&grant(None)).await.unwrap();
    let new_kid = issuer.rotate().unwrap();
    assert_ne!(old_kid, new_kid);
    let after = issuer.issue(&grant(None)).await.unwrap();
    assert_eq!(after.kid, new_kid);
    assert!(issuer.verify(&before.token).is_some());
    assert!(issuer.verify(&after.token).is_some());
    assert_eq!(issuer.jwks().keys.len(), 2);
}

#[test]
fn discovery_names_the_endpoints() {
    let d = discovery("https://cs.example/");
    assert_eq!(d.issuer, "https://cs.example");
    assert_eq!(d.jwks_uri, "https://cs.example/.well-known/jwks.json");
    assert_eq!(
        d.introspection_endpoint,
        "https://cs.example/v1/tokens/introspect"
    );
    assert_eq!(d.id_token_signing_alg_values_supported, ["EdDSA"]);
}

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
