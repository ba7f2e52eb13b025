//! The agent's documents: the answer to a submission (`POST /v1/requests`, for actions and
//! proposed changes alike) and the request's status (`GET /v1/requests/{id}`) with its review,
//! decisions, policy progress, forge retries and execution. Times are RFC 3339 strings in UTC
//! with milliseconds.

use super::{Kind, RequestId, State};
use serde::{Deserialize, Serialize};

/// How much harm a request can do (the policy's `risk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

/// What the policy decided at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOutcome {
    NeedsReview,
    AutoApprove,
    Deny,
}

/// `202 Accepted` to `POST /v1/requests` (also repeated verbatim to an idempotent retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitAnswer {
    pub id: RequestId,
    /// Always `received`.
    pub state: State,
    /// `sha256:<hex>` of the canonical submission; approvals are bound to it.
    pub digest: String,
    /// Path of the status document, also sent as `Location`.
    pub status_url: String,
    pub created_at: String,
    /// When the request expires unless decided.
    pub expires_at: String,
    /// Absent only in answers stored before the policy engine existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySummary>,
}

/// The policy's verdict at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The base-branch commit the policy was read from.
    pub commit: String,
    pub outcome: PolicyOutcome,
    pub risk: Risk,
}

/// `GET /v1/requests/{id}`: the request as its agent sees it (and the first part of a
/// reviewer's [`super::ReviewView`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStatus {
    pub id: RequestId,
    /// The submitting agent.
    pub agent: String,
    pub kind: Kind,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub state: State,
    /// `sha256:<hex>` of the canonical submission.
    pub digest: String,
    /// Where the review is; `null` until it is opened.
    pub review: Option<ReviewLink>,
    /// Every recorded decision, oldest first.
    pub decisions: Vec<Decision>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    /// When the raw payload was replaced by its masked copy; absent while it is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_erased_at: Option<String>,
    /// The policy evaluation and who still has to approve; absent for requests stored before
    /// the policy engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyProgress>,
    /// Why the review is not open yet; present only while `received` after a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<ForgeRetry>,
    /// What ran and how it ended; absent until execution starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
}

/// The review on the forge (a branch and merge request, or a GitHub pull request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewLink {
    /// The forge's name for it (a branch, `#12`, ...).
    pub reference: String,
    /// Where a person opens it; `null` when the forge has no web page.
    pub url: Option<String>,
}

/// What a recorded decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Deny,
    /// An approval dismissed or made stale.
    Withdrawn,
    /// A second standing approval recorded by an old version; never counted.
    Duplicate,
}

/// One reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub reviewer: String,
    pub decision: DecisionKind,
    /// `null` when none was given (a denial always has one).
    pub reason: Option<String>,
    /// The digest the reviewer decided on.
    pub digest: String,
    pub at: String,
}

/// The policy evaluation stored at intake, and how far the approvals got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyProgress {
    pub commit: String,
    pub outcome: PolicyOutcome,
    pub risk: Risk,
    /// One entry per matched CODEOWNERS rule.
    pub requirements: Vec<RequirementProgress>,
    /// Approvals that were refused (self-approval, the agent's owner, not an owner, ...).
    pub not_counted: Vec<NotCounted>,
}

/// Progress of one approval requirement (a matched CODEOWNERS line in one section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementProgress {
    pub section: String,
    /// The CODEOWNERS file and line that matched.
    pub file: String,
    pub line: usize,
    pub pattern: String,
    /// The request's subjects the pattern matched.
    pub subjects: Vec<String>,
    /// Owners as written (`@alice`, `@org/team`, `a@example.com`).
    pub owners: Vec<String>,
    /// An optional section: never blocks.
    pub optional: bool,
    /// Approvals needed from distinct humans.
    pub required: u32,
    /// Distinct humans whose approval counts here.
    pub approved_by: Vec<String>,
    pub satisfied: bool,
    /// Owners who can approve (after exclusions).
    pub eligible: Vec<String>,
    /// Owners who cannot, and why.
    pub excluded: Vec<Excluded>,
    /// Fewer eligible owners than required approvals: this can never be satisfied.
    pub unsatisfiable: bool,
}

/// An owner whose approval cannot count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    pub name: String,
    /// E.g. "owns the submitting agent".
    pub why: String,
}

/// An approval that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCounted {
    pub reviewer: String,
    /// Why it was refused; `null` if the record does not say.
    pub why: Option<String>,
    pub at: String,
}

/// Opening the review failed; it is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeRetry {
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: String,
}

/// The execution of an approved action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The executor type (`command`, `http`, ...).
    pub executor: String,
    /// The attempt's id (also the idempotency key sent to the target).
    pub attempt_id: String,
    pub attempts: i64,
    /// Whether the action may be retried after a crash.
    pub idempotent: bool,
    pub started_at: String,
    /// `null` while it runs.
    pub finished_at: Option<String>,
    /// `null` while it runs (or when it was refused before running).
    pub outcome: Option<ExecutionOutcome>,
    /// The callback to the agent; `null` without a `callback_url`.
    pub callback: Option<CallbackStatus>,
}

/// What an execution did, masked and size-limited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionOutcome {
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
    /// The `jti` of the credential the action was given; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The call was sent (or may have been) but no answer came: the target may have acted.
    /// Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
}

/// Where the callback to the agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Not delivered yet; retried with backoff.
    Pending,
    Delivered,
    /// Given up (too many attempts, or an internal destination).
    Failed,
}

/// The callback to the agent's `callback_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackStatus {
    pub state: CallbackState,
    pub attempts: i64,
    /// The last failure (no body, only what went wrong).
    pub last_error: Option<String>,
}

impl CallbackState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl DecisionKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "deny" => Some(Self::Deny),
            "withdrawn" => Some(Self::Withdrawn),
            "duplicate" => Some(Self::Duplicate),
            _ => None,
        }
    }
}
