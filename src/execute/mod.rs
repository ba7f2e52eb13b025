//! Executors: how an approved action is carried out. A [`command`] runs a program with a clean
//! environment in its own process group, the raw payload on stdin and the just-in-time
//! credential in one variable; an [`http`] call sends the payload as JSON with the credential
//! as a bearer token and the request id as `Idempotency-Key`. Specs (`crate::actions::spec`) come from TOML.
//! A [`github_workflow`] dispatches a GitHub Actions workflow with a narrowed installation token;
//! [`github_credential`] is the narrowed token an `http` or `command` action may get instead of
//! countersign's JWT; the engine reaches both through the [`github_app::GitHubActions`] trait.
//! Either way the result is an [`Outcome`] fit to store and show: output masked, the credential
//! replaced by `[credential]`, at most [`OUTPUT_LIMIT`] bytes.

pub mod command;
pub mod destination;
pub mod github_app;
pub mod github_credential;
pub mod github_workflow;
pub mod helper;
pub mod http;
pub mod output;
pub mod settings;

pub use crate::actions::spec::{CommandSpec, ExecutorSpec, HttpSpec, SpecError};
pub use output::{CREDENTIAL_MASK, OUTPUT_LIMIT, TRUNCATED};
pub use settings::{ExecutionConfig, ExecutionFile};

use crate::mask::Masker;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One execution of an approved request.
pub struct Invocation<'a> {
    /// The request id; also the `Idempotency-Key` and `COUNTERSIGN_REQUEST_ID`.
    pub request_id: &'a str,
    /// The raw (decrypted) payload.
    pub payload: &'a serde_json::Value,
    /// The just-in-time credential: never logged, never in an `Outcome`.
    pub token: &'a str,
    /// Request fields for templates: action, resource, environment, agent, request_id.
    pub fields: &'a BTreeMap<String, String>,
}

impl fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("request_id", &self.request_id)
            .field("payload", &"<redacted>")
            .field("token", &"<redacted>")
            .field("fields", &self.fields)
            .finish()
    }
}

/// What an execution did, masked and size-limited: safe to store and show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub success: bool,
    /// A command's exit code (when it exited).
    pub exit_status: Option<i32>,
    /// The signal that ended a command (when one did).
    pub signal: Option<i32>,
    /// An HTTP call's response status.
    pub http_status: Option<u16>,
    /// Masked output (stdout, then stderr after a `[stderr]` line; or the response body).
    pub output: String,
    /// Masked; e.g. "timed out after 5s (process group killed)".
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    /// The `jti` of the credential the action was given (set by the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The call was sent (or may have been) but no answer came: the target may have acted.
    /// Only a failure before anything was sent (no connection) is a clean failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
}

impl Outcome {
    /// A failure before anything ran or was sent.
    pub(crate) fn failed(started_at_ms: i64, error: String) -> Outcome {
        Outcome {
            success: false,
            exit_status: None,
            signal: None,
            http_status: None,
            output: String::new(),
            error: Some(error),
            started_at_ms,
            duration_ms: (crate::time::now_ms() - started_at_ms).max(0),
            credential: None,
            outcome_unknown: false,
        }
    }
}

/// Runs an invocation with whichever executor the spec names. The spec should have been
/// validated when it was loaded; an invalid one fails here without running anything.
pub async fn run(spec: &ExecutorSpec, inv: &Invocation<'_>, masker: &Masker) -> Outcome {
    match spec {
        ExecutorSpec::Command(c) => command::run(c, inv, masker).await,
        ExecutorSpec::Http(h) => http::run(h, inv, masker).await,
        ExecutorSpec::GithubWorkflow(_) => Outcome::failed(
            crate::time::now_ms(),
            "the github_workflow executor runs through the GitHub client (see `github_workflow::run`)"
                .to_owned(),
        ),
    }
}
