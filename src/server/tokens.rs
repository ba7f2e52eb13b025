//! countersign as an OIDC issuer over HTTP: the discovery document and the JWKS (public,
//! cacheable for 5 minutes) and `POST /v1/tokens/introspect` (RFC 7662, for configured token
//! clients). Tokens are read from the form body and never logged or echoed.

use super::AppState;
use super::body::read_limited;
use super::error::ApiError;
use crate::config::TokenClient;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Body};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Limit of an introspection body: a token and two small parameters.
const INTROSPECT_LIMIT: usize = 16 * 1024;

fn cacheable(body: impl serde::Serialize) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=300"),
        )],
        Json(body),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration`.
pub async fn openid_configuration(State(app): State<AppState>) -> Response {
    cacheable(app.engine.credentials().discovery())
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(app): State<AppState>) -> Response {
    cacheable(app.engine.credentials().jwks())
}

/// The token client behind `Authorization: Bearer <token>`, compared in constant time.
fn verify_client<'a>(
    clients: &'a [TokenClient],
    headers: &HeaderMap,
) -> Result<&'a TokenClient, ApiError> {
    let token = super::auth::bearer_token(headers, "token client token")?;
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for c in clients {
        if bool::from(c.token_sha256.ct_eq(&hash)) && found.is_none() {
            found = Some(c);
        }
    }
    found.ok_or_else(|| {
        ApiError::unauthorized("invalid_token", "the token client token is not recognised")
    })
}

fn bad_request(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// The parameters of an introspection call.
struct Params {
    token: Zeroizing<String>,
    consume: bool,
}

fn parse_form(body: &[u8]) -> Result<Params, ApiError> {
    let mut token = None;
    let mut hint_seen = false;
    let mut consume = None;
    for (name, value) in form_urlencoded::parse(body) {
        let value = Zeroizing::new(value.into_owned());
        let repeated = match name.as_ref() {
            "token" => token.replace(value).is_some(),
            // Only one kind of token exists; the hint changes nothing.
            "token_type_hint" => std::mem::replace(&mut hint_seen, true),
            "consume" => {
                let flag = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_request("`consume` must be \"true\" or \"false\"")),
                };
                consume.replace(flag).is_some()
            }
            _ => false, // RFC 7662: unknown parameters are ignored
        };
        if repeated {
            return Err(bad_request("a parameter is repeated"));
        }
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_request("the `token` parameter is required"))?;
    Ok(Params {
        token,
        consume: consume.unwrap_or(false),
    })
}

fn require_form(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/x-www-form-urlencoded",
        ))
    }
}

/// `POST /v1/tokens/introspect`: `token`, optional `token_type_hint`, and the extension
/// `consume=true`, which marks an active token used (single use).
pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match introspect_inner(&app, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            let bearer = e.status == StatusCode::UNAUTHORIZED;
            let mut response = e.into_response();
            if bearer {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"countersign\""),
                );
            }
            response
        }
    }
}

async fn introspect_inner(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = verify_client(&app.token_clients, headers)?;
    require_form(headers)?;
    let body = Zeroizing::new(
        read_limited(headers, body, INTROSPECT_LIMIT)
            .await?
            .to_vec(),
    );
    let params = parse_form(&body)?;
    let answer = app
        .engine
        .credentials()
        .introspect(&params.token, params.consume)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::debug!(token_client.name = %client.name, introspection.active = answer.is_active(), introspection.consume = params.consume, "token introspected");
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(answer.answer()),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parameters() {
        let p = parse_form(b"token=a.b.c&token_type_hint=access_token&consume=true").unwrap();
        assert_eq!(p.token.as_str(), "a.b.c");
        assert!(p.consume);
        assert!(!parse_form(b"token=x&other=1").unwrap().consume);
        assert_eq!(parse_form(b"consume=true").err().unwrap().status, 400);
        assert_eq!(parse_form(b"token=").err().unwrap().status, 400);
        assert_eq!(parse_form(b"token=a&token=b").err().unwrap().status, 400);
        assert_eq!(
            parse_form(b"token=a&consume=yes").err().unwrap().status,
            400
        );
    }
}
