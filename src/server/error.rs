//! API errors: a status code and an [`crate::api::ErrorBody`] (`{"error": {"code", "message"}}`).
//! Messages are written by countersign and never echo submitted values or secrets.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such request")
    }

    /// An internal failure: logged where it happens, answered without details; a database
    /// that cannot be reached right now is `503 store_unavailable` with `Retry-After` (a
    /// submission retried with the same `Idempotency-Key` cannot be stored twice).
    pub fn internal(error: &anyhow::Error) -> Self {
        if crate::store::unavailable(error) {
            tracing::warn!(error = format!("{error:#}"), "the database is unavailable");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the database is unavailable; retry later",
            );
        }
        tracing::error!(error = format!("{error:#}"), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::api::ErrorBody::new(self.code, self.message);
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Countersign-HMAC-SHA256"),
            );
        }
        response
    }
}
