//! Agent routes: `POST /v1/requests` (signed intake) and `GET /v1/requests/{id}` (status).

use super::AppState;
use super::auth::verify_agent;
use super::body::{read_limited, require_json};
use super::error::ApiError;
use crate::api::RequestStatus;
use crate::engine::{Intake, SubmitError, SubmitOutcome};
use crate::request::{RequestId, SubmissionError, parse_submission};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /v1/requests`.
pub async fn submit(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match submit_inner(&app, &method, &uri, &headers, body).await {
        Ok((outcome, response)) => {
            app.metrics.count_intake(outcome);
            response
        }
        Err(e) => {
            app.metrics.count_intake(e.code);
            tracing::info!(
                outcome = e.code,
                http.status = e.status.as_u16(),
                "request refused"
            );
            e.into_response()
        }
    }
}

async fn submit_inner(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(&'static str, Response), ApiError> {
    require_json(headers)?;
    let bytes = read_limited(headers, body, app.max_body_bytes).await?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let call = verify_agent(&app.engine, headers, method.as_str(), path, &bytes)?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b))
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1-255 visible ASCII characters",
                    )
                })?,
        ),
    };
    let submission = parse_submission(&bytes).map_err(|e| match e {
        SubmissionError::Malformed(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", m)
        }
        SubmissionError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m)
        }
    })?;
    let outcome = app
        .engine
        .submit(Intake {
            agent: &call.agent,
            submission,
            signature: &call.signature,
            timestamp: call.timestamp,
            idempotency_key,
        })
        .await
        .map_err(|e| match e {
            SubmitError::Replay => {
                ApiError::new(StatusCode::CONFLICT, "replayed_signature", e.to_string())
            }
            SubmitError::IdempotencyKeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            SubmitError::OutOfScope(m) => ApiError::new(StatusCode::FORBIDDEN, "out_of_scope", m),
            SubmitError::UnregisteredAction(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unregistered_action", m)
            }
            SubmitError::CallbackNotAllowed(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "callback_not_allowed", m)
            }
            SubmitError::PolicyDenied(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "policy_denied", m)
            }
            SubmitError::PolicyUnavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "policy_unavailable", m)
            }
            SubmitError::Store(e) => ApiError::internal(&e),
        })?;
    let (label, body, repeated) = match outcome {
        SubmitOutcome::Accepted(body) => ("accepted", body, false),
        SubmitOutcome::Repeated(body) => ("idempotent_repeat", body, true),
    };
    let mut response = (StatusCode::ACCEPTED, Json(&body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&body.status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if repeated {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((label, response))
}

/// `GET /v1/requests/{id}`: visible only to the submitting agent (others get 404).
pub async fn status(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<RequestStatus>, ApiError> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let call = verify_agent(&app.engine, &headers, method.as_str(), path, b"")?;
    let id = RequestId::parse(&id).ok_or_else(ApiError::not_found)?;
    match app.engine.status(&id, &call.agent).await {
        Ok(Some(doc)) => Ok(Json(doc)),
        Ok(None) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}
