//! `POST /webhooks/github`: GitHub's deliveries. The body (at most 25 MiB) must carry a valid
//! `X-Hub-Signature-256` for one of the configured secrets, or the answer is 401 and nothing
//! happens. The event is parsed and handed, in the forge's common words, to [`crate::engine::Engine::forge_event`]; unknown
//! events, and events about another repository or installation of the App (counted in
//! `countersign_github_webhooks_ignored_total`), are acknowledged and ignored.

use super::AppState;
use super::body::read_limited;
use super::error::ApiError;
use crate::api::{WebhookAnswer, WebhookStatus};
use crate::engine::Delivery;
use crate::forge::github::{GitHubEvent, SignatureError, parse_event, verify_signature};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};

/// GitHub caps deliveries at 25 MB; anything larger is refused.
pub const MAX_WEBHOOK_BYTES: usize = 25 * 1024 * 1024;

pub async fn github(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let Some(secrets) = app.github_webhook_secrets.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "GitHub is not configured on this server",
        ));
    };
    let body = read_limited(&headers, body, MAX_WEBHOOK_BYTES).await?;
    let signature = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    verify_signature(&secrets, signature, &body).map_err(|e| {
        let code = match e {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed => "malformed_signature",
            SignatureError::Mismatch => "bad_signature",
        };
        ApiError::unauthorized(code, e.to_string())
    })?;
    let event = header_text(&headers, "x-github-event").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_event",
            "the X-GitHub-Event header is missing",
        )
    })?;
    let delivery = header_text(&headers, "x-github-delivery").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_delivery",
            "the X-GitHub-Delivery header is missing",
        )
    })?;
    let payload = json_payload(&headers, &body)?;
    let event = parse_event(&event, &payload)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_event", e.to_string()))?;
    let unknown = matches!(event, GitHubEvent::Unknown { .. });
    let outcome = app
        .engine
        .forge_event(&delivery, event.review_event())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let status = match outcome {
        Delivery::Foreign(why) => {
            app.metrics.count_github_webhook_ignored(why.as_str());
            WebhookStatus::Ignored
        }
        _ if unknown => WebhookStatus::Ignored,
        _ => WebhookStatus::Accepted,
    };
    Ok(Json(WebhookAnswer { status }))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
}

/// The JSON of a delivery: the body, or its `payload` field when the webhook is configured
/// with `application/x-www-form-urlencoded`.
fn json_payload(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body.to_vec());
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned().into_bytes())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_event",
                "a form-encoded delivery needs a `payload` field",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ServerConfig, Synchronous};
    use crate::forge::github::webhook::sign;
    use crate::forge::{Forge, LocalForge};
    use crate::mask::Masker;
    use crate::store::Store;
    use serde_json::{Value, json};
    use std::sync::Arc;

    const SECRETS: [&[u8]; 2] = [b"current-secret", b"previous-secret"];

    /// The router with a local forge and two webhook secrets, served on a loopback port.
    async fn serve(dir: &std::path::Path) -> String {
        let config = ServerConfig::embedded(dir.to_path_buf());
        let masker = Arc::new(Masker::new(None, None));
        let store = Store::open(&config.database_path(), Synchronous::Normal, masker.clone())
            .await
            .unwrap();
        let forge = LocalForge::open(&config.repo_path(), "main", true, "http://x", false).unwrap();
        let credentials = Arc::new(
            crate::credentials::Issuer::open(&config.jwt_keys_dir(), "http://x", store.clone())
                .unwrap(),
        );
        let vault = crate::vault::Vault::from_hex(&"ab".repeat(32)).unwrap();
        let ports = crate::engine::Ports {
            store,
            forge: Arc::new(forge) as Arc<dyn Forge>,
            review_host: None,
            teams: None,
            github_actions: None,
            vault,
            masker,
            credentials,
        };
        let engine = crate::engine::Engine::new(ports, (&config).into());
        let state = AppState {
            engine,
            ledger: Arc::default(),
            notify: None,
            metrics: Arc::default(),
            max_body_bytes: 1024,
            token_clients: Arc::new([]),
            github_webhook_secrets: Some(
                SECRETS
                    .iter()
                    .map(|s| crate::forge::github::WebhookSecret::new(s.to_vec()))
                    .collect(),
            ),
            replica: "test".into(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, super::super::router(state)).await });
        format!("http://{addr}/webhooks/github")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/github/webhooks/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    async fn deliver(
        url: &str,
        event: &str,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .body(body);
        if let Some(s) = signature {
            request = request.header("x-hub-signature-256", s);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn deliveries_are_verified_parsed_and_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve(dir.path()).await;
        let body = fixture("pull_request_review.submitted");

        // Signed with either secret: accepted.
        for secret in SECRETS {
            let (status, answer) = deliver(
                &url,
                "pull_request_review",
                body.clone(),
                Some(sign(secret, &body)),
            )
            .await;
            assert_eq!((status, &answer["status"]), (200, &json!("accepted")));
        }
        // Unknown events are acknowledged and ignored.
        let ping = br#"{"action":"created","starred_at":null,"sender":{"login":"x"}}"#.to_vec();
        let (status, answer) =
            deliver(&url, "star", ping.clone(), Some(sign(SECRETS[0], &ping))).await;
        assert_eq!((status, &answer["status"]), (200, &json!("ignored")));

        // Unsigned, badly signed, wrongly prefixed: 401 with a body naming the problem.
        for (signature, code) in [
            (None, "missing_signature"),
            (Some(sign(b"wrong", &body)), "bad_signature"),
            (
                Some(sign(SECRETS[0], &body).replace("sha256=", "sha1=")),
                "malformed_signature",
            ),
        ] {
            let (status, answer) =
                deliver(&url, "pull_request_review", body.clone(), signature).await;
            assert_eq!(status, 401);
            assert_eq!(answer["error"]["code"], code, "{answer}");
        }

        // A signed body that is not what GitHub sends for a known event.
        let broken = br#"{"action":"submitted"}"#.to_vec();
        let (status, answer) = deliver(
            &url,
            "pull_request_review",
            broken.clone(),
            Some(sign(SECRETS[0], &broken)),
        )
        .await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("malformed_event"))
        );

        // Over 25 MiB: 413, whatever the signature.
        let huge = vec![b' '; MAX_WEBHOOK_BYTES + 1];
        let (status, _) = deliver(&url, "ping", huge, None).await;
        assert_eq!(status, 413);
    }
}
