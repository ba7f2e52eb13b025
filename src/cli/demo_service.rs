//! The demo's "exports service": a loopback HTTP service standing in for the system an
//! approved action changes. It trusts countersign only through its published keys: it fetches
//! the JWKS, verifies the bearer token (EdDSA, issuer, audience, expiry) and checks that the
//! token is bound to the request it was sent for, then answers what it did.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use serde_json::{Value, json};
use std::sync::Arc;

pub const AUDIENCE: &str = "https://exports.demo.internal";

struct Service {
    countersign: String,
    http: reqwest::Client,
}

/// Starts the service; returns its base URL.
pub async fn start(countersign: &str) -> anyhow::Result<String> {
    let service = Arc::new(Service {
        countersign: countersign.to_owned(),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .route("/export", axum::routing::post(export))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn export(
    State(s): State<Arc<Service>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    match verify(&s, &headers).await {
        Ok(claims) => {
            let rows = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|p| p["limit"].as_u64())
                .unwrap_or(0)
                .min(42);
            let answer = json!({
                "exported_rows": rows,
                "token_checked": {
                    "aud": claims["aud"], "sub": claims["sub"], "request_id": claims["request_id"],
                    "digest": claims["digest"], "approvers": claims["approvers"],
                    "lifetime_s": claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
                },
                "idempotency_key": headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
            });
            (StatusCode::OK, answer.to_string())
        }
        Err(why) => (StatusCode::UNAUTHORIZED, why),
    }
}

async fn verify(s: &Service, headers: &HeaderMap) -> Result<Value, String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer token")?;
    let jwks: JwkSet = s
        .http
        .get(format!("{}/.well-known/jwks.json", s.countersign))
        .send()
        .await
        .map_err(|_| "issuer unreachable")?
        .json()
        .await
        .map_err(|_| "bad JWKS")?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT")?;
    let jwk = jwks
        .find(header.kid.as_deref().unwrap_or(""))
        .ok_or("unknown signing key")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "unusable key")?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[s.countersign.as_str()]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| format!("token refused: {e}"))?;
    let request = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if data.claims["request_id"] != request {
        return Err("the token is bound to another request".into());
    }
    Ok(data.claims)
}
