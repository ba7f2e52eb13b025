//! Asserting on refusals with the API's typed error body ([`ErrorBody`]) instead of indexing
//! JSON: [`Refused::refusal`] for a typed client call the server refused, [`error_code`] for
//! the body of a raw call (`Harness::raw`) and [`error_detail`] for its message too.

use countersign::api::{ErrorBody, ErrorDetail};
use countersign::cli::client::ClientError;
use serde_json::Value;
use std::fmt::Debug;

/// A client call's result that should be a refusal.
pub trait Refused {
    /// The HTTP status and error code of the refusal; panics if the call succeeded, the server
    /// was not reached, or it answered something else than an [`ErrorBody`].
    fn refusal(self) -> (u16, String);
    /// Like [`Refused::refusal`], with the whole error (its code and message).
    fn refusal_detail(self) -> (u16, ErrorDetail);
}

impl<T: Debug> Refused for Result<T, ClientError> {
    #[track_caller]
    fn refusal(self) -> (u16, String) {
        let (status, error) = self.refusal_detail();
        (status, error.code)
    }

    #[track_caller]
    fn refusal_detail(self) -> (u16, ErrorDetail) {
        match self {
            Err(ClientError::Api { status, body }) => (status.as_u16(), body.error),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// The error of a raw answer's body, parsed as the API's [`ErrorBody`].
#[track_caller]
pub fn error_detail(body: &Value) -> ErrorDetail {
    match serde_json::from_value::<ErrorBody>(body.clone()) {
        Ok(e) => e.error,
        Err(e) => panic!("not an error body ({e}): {body}"),
    }
}

/// The error code of a raw answer's body (see [`error_detail`]).
#[track_caller]
pub fn error_code(body: &Value) -> String {
    error_detail(body).code
}
