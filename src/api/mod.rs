//! The HTTP API's documents, typed: what every route accepts and answers, shared by the server
//! (which builds them), the CLI client (which parses them) and the tests. Pure data: serde only,
//! no I/O; the JSON on the wire is exactly what these structs serialize to.
//!
//! | Route | Answer |
//! |---|---|
//! | `POST /v1/requests` | [`SubmitAnswer`] (202) |
//! | `GET /v1/requests/{id}` | [`RequestStatus`] |
//! | `POST /v1/requests/{id}/reviews` | [`ReviewAnswer`] (body: [`ReviewRequest`]) |
//! | `GET /v1/requests/{id}/review` | [`ReviewView`] |
//! | `GET /.well-known/openid-configuration` | [`Discovery`] |
//! | `GET /.well-known/jwks.json` | [`Jwks`] |
//! | `POST /v1/tokens/introspect` | [`IntrospectionAnswer`] |
//! | `POST /webhooks/github` | [`WebhookAnswer`] |
//! | `GET /healthz` | [`Health`] |
//! | `GET /readyz` | [`Readiness`] (200 or 503) |
//! | any refusal | [`ErrorBody`] |
//!
//! `GET /metrics` answers Prometheus text, not JSON. What countersign POSTs to an agent's
//! `callback_url` is a [`CallbackBody`].

mod callbacks;
mod errors;
mod health;
mod requests;
mod reviews;
mod tokens;
mod webhooks;

pub use crate::request::{Kind, RequestId, State};
pub use callbacks::CallbackBody;
pub use errors::{ErrorBody, ErrorDetail};
pub use health::{
    Check, Divergence, Health, LedgerReadiness, Liveness, PushReadiness, Readiness, ReadyStatus,
    ReplicaReadiness, Role,
};
pub use requests::{
    CallbackState, CallbackStatus, Decision, DecisionKind, Excluded, Execution, ExecutionOutcome,
    ForgeRetry, NotCounted, PolicyOutcome, PolicyProgress, PolicySummary, RequestStatus,
    RequirementProgress, ReviewLink, Risk, SubmitAnswer,
};
pub use reviews::{
    ChangedFile, MaskFinding, Masking, ReviewAnswer, ReviewRequest, ReviewView, Verdict,
};
pub use tokens::{Discovery, IntrospectionAnswer, Jwk, Jwks};
pub use webhooks::{WebhookAnswer, WebhookStatus};

#[cfg(test)]
mod tests;
