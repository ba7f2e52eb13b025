//! The request state machine: intake, reviews, expiry, and the background work that opens
//! reviews on the forge and shows decisions there. All state lives in the [`Store`]; this module
//! decides which transitions happen and in what order.

mod audit;
mod callback;
mod execution;
mod policy_source;
mod review;
mod review_inbox;
mod views;
mod worker;

/// The lifecycle lives with the request (`crate::request::State`); re-exported for the layers above.
pub use crate::request::State;
pub use policy_source::{LoadedPolicy, PolicySource};
pub use review::{ReviewDecision, ReviewError, ReviewerIdentity};
pub use review_inbox::{Delivery, MERGED_WITHOUT_APPROVAL};
pub(crate) use review_inbox::{Retry, backoff as inbox_backoff};

use crate::api::{PolicySummary, SubmitAnswer};
use crate::execute::github_app::GitHubActions;
use crate::forge::{Forge, ReviewHost, TeamDirectory};
use crate::mask::Masker;
use crate::policy::Outcome;
use crate::request::identity::{Agent, Reviewer};
use crate::request::{AgentId, RequestId, Submission};
use crate::store::{InsertOutcome, NewRequest, Store};
use crate::support::clock::Clock;
use crate::time;
use crate::vault::Vault;
use anyhow::Context as _;
use audit::policy_decision_fields;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

/// Shared engine handle.
pub struct Engine {
    store: Store,
    forge: Arc<dyn Forge>,
    agents: HashMap<AgentId, Agent>,
    reviewers: Vec<Reviewer>,
    request_ttl: Duration,
    timestamp_skew: Duration,
    sweep_interval: Duration,
    wake: Notify,
    policy: PolicySource,
    vault: Vault,
    masker: Arc<Masker>,
    /// Signs the just-in-time credentials of approved requests.
    credentials: Arc<crate::credentials::Issuer>,
    execution: crate::execute::ExecutionConfig,
    /// Wakes the execution loop (a request was approved).
    exec_wake: Notify,
    /// Wakes the callback loop (an outcome is waiting to be told).
    callback_wake: Notify,
    /// "Now" for the request lifecycle (a manual clock in tests).
    clock: Arc<dyn Clock>,
    /// Where people decide on the forge itself (GitHub), if they do.
    review_host: Option<Arc<dyn ReviewHost>>,
    /// Wakes the review inbox (a forge event was queued).
    inbox_wake: Notify,
    /// Team membership the forge knows (GitHub organisation teams), if any.
    teams: Option<Arc<dyn TeamDirectory>>,
    /// Narrowed GitHub tokens and workflow dispatch for actions (with `[github]`).
    github_actions: Option<Arc<dyn GitHubActions>>,
}

/// What the engine works through: storage, the forge and its optional capabilities, the
/// payload vault, the masker and the credential issuer (built by the composition root).
pub struct Ports {
    pub store: Store,
    pub forge: Arc<dyn Forge>,
    /// A forge where people decide on the forge itself (GitHub reviews and comments).
    pub review_host: Option<Arc<dyn ReviewHost>>,
    /// Team membership for `@org/team` owners not listed in `policies/teams.toml`.
    pub teams: Option<Arc<dyn TeamDirectory>>,
    /// The `github_workflow` executor and `github` credentials.
    pub github_actions: Option<Arc<dyn GitHubActions>>,
    pub vault: Vault,
    pub masker: Arc<Masker>,
    pub credentials: Arc<crate::credentials::Issuer>,
}

/// The agent's view of a signed, verified submission.
pub struct Intake<'a> {
    pub agent: &'a AgentId,
    pub submission: Submission,
    pub signature: &'a str,
    pub timestamp: i64,
    pub idempotency_key: Option<&'a str>,
}

/// Result of a submission.
pub enum SubmitOutcome {
    /// Stored; the body of the 202 answer.
    Accepted(SubmitAnswer),
    /// An idempotent retry: the original answer.
    Repeated(SubmitAnswer),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("this signature was already used; sign every call afresh")]
    Replay,
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The request is outside the agent's allowed subjects (`policies/agents.toml`).
    #[error("{0}")]
    OutOfScope(String),
    /// The policy refuses the request (deny by default).
    #[error("{0}")]
    PolicyDenied(String),
    /// No executor is registered for the action (`policies/actions.toml`).
    #[error("{0}")]
    UnregisteredAction(String),
    /// The `callback_url`'s host is not in `[execution] callback_hosts`.
    #[error("{0}")]
    CallbackNotAllowed(String),
    /// The policy on the base branch cannot be used: fail closed.
    #[error("{0}")]
    PolicyUnavailable(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What the engine needs of the configuration (the composition root builds it from the
/// server's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub agents: Vec<Agent>,
    pub reviewers: Vec<Reviewer>,
    pub request_ttl: std::time::Duration,
    pub timestamp_skew: std::time::Duration,
    pub sweep_interval: std::time::Duration,
    pub execution: crate::execute::ExecutionConfig,
    /// "Now" for the request lifecycle: the system clock, or a manual one in tests.
    pub clock: Arc<dyn Clock>,
}

impl Engine {
    pub fn new(ports: Ports, config: Settings) -> Arc<Self> {
        let policy = PolicySource::default();
        // `@org/team` owners missing from teams.toml are asked of the forge.
        policy.set_remote_teams(ports.teams.is_some());
        Arc::new(Self {
            store: ports.store,
            forge: ports.forge,
            agents: config
                .agents
                .into_iter()
                .map(|a| (a.id.clone(), a))
                .collect(),
            reviewers: config.reviewers,
            request_ttl: config.request_ttl,
            timestamp_skew: config.timestamp_skew,
            sweep_interval: config.sweep_interval,
            wake: Notify::new(),
            policy,
            vault: ports.vault,
            masker: ports.masker,
            credentials: ports.credentials,
            execution: config.execution,
            exec_wake: Notify::new(),
            callback_wake: Notify::new(),
            clock: config.clock,
            review_host: ports.review_host,
            inbox_wake: Notify::new(),
            teams: ports.teams,
            github_actions: ports.github_actions,
        })
    }

    /// The token issuer: `engine.credentials().issue(&grant)` signs a credential for an
    /// approved request (see [`crate::credentials`]).
    pub fn credentials(&self) -> &Arc<crate::credentials::Issuer> {
        &self.credentials
    }

    /// "Now" for the request lifecycle.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The forge where people decide on reviews themselves, if any (the review inbox job).
    pub(crate) fn review_host(&self) -> Option<&Arc<dyn ReviewHost>> {
        self.review_host.as_ref()
    }

    /// Signalled when a forge event was queued.
    pub(crate) fn inbox_wake(&self) -> &Notify {
        &self.inbox_wake
    }

    /// The execution settings (the executions and callbacks jobs).
    pub(crate) fn execution(&self) -> &crate::execute::ExecutionConfig {
        &self.execution
    }

    /// Signalled when a request was received or decided: reviews to open or update.
    pub(crate) fn review_wake(&self) -> &Notify {
        &self.wake
    }

    /// Signalled when a request was approved: something to execute.
    pub(crate) fn execution_wake(&self) -> &Notify {
        &self.exec_wake
    }

    /// Signalled when an outcome is waiting to be told to its agent.
    pub(crate) fn callback_wake(&self) -> &Notify {
        &self.callback_wake
    }

    /// How often the sweeper runs.
    pub(crate) fn sweep_interval(&self) -> Duration {
        self.sweep_interval
    }

    pub fn forge(&self) -> &Arc<dyn Forge> {
        &self.forge
    }

    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn masker(&self) -> &Arc<Masker> {
        &self.masker
    }

    /// The raw submission of a stored request (sealed at rest; only the engine opens it). Only a
    /// sealed value opens: anything else in the column (plain JSON written into the database
    /// file) is refused like a value that fails authentication.
    pub(crate) fn submission_of(
        &self,
        row: &crate::store::RequestRow,
    ) -> anyhow::Result<Submission> {
        let plain = self.vault.open(&row.id, &row.submission)?;
        serde_json::from_slice(&plain).context("stored submission is unreadable")
    }

    /// The policy in force (the base branch's, as of the last refresh).
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.policy.current()
    }

    /// Reloads the policy if the base branch moved. Also runs every second in the background.
    pub async fn refresh_policy(&self) -> anyhow::Result<()> {
        self.policy.refresh(self.forge.as_ref()).await
    }

    pub fn timestamp_skew(&self) -> Duration {
        self.timestamp_skew
    }

    /// Finds the reviewer holding `token`, comparing hashes in constant time.
    pub fn reviewer_for_token(&self, token: &str) -> Option<&Reviewer> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for r in &self.reviewers {
            if bool::from(r.token_sha256.ct_eq(&hash)) && found.is_none() {
                found = Some(r);
            }
        }
        found
    }

    /// Stores a verified submission durably; the review is opened in the background.
    pub async fn submit(&self, intake: Intake<'_>) -> Result<SubmitOutcome, SubmitError> {
        let loaded = self.policy.current();
        let policy = loaded.policy.as_ref().map_err(|problems| {
            SubmitError::PolicyUnavailable(format!(
                "the policy on the base branch (commit {}) is invalid ({} problem(s)); \
                 requests are refused until it is fixed (see `countersign policy check`)",
                short(&loaded.commit),
                problems.len()
            ))
        })?;
        let subjects = crate::policy::subjects(&intake.submission);
        let id = RequestId::generate();
        if let Err(why) = policy.check_scope(intake.agent.as_str(), &subjects) {
            self.record_refusal(&intake, &id, "out_of_scope", &why, &loaded.commit)
                .await;
            return Err(SubmitError::OutOfScope(why));
        }
        let evaluation = policy.evaluate(
            intake.agent.as_str(),
            &intake.submission.environment,
            &subjects,
        );
        if evaluation.outcome == Outcome::Deny {
            let why = evaluation.reason.clone().unwrap_or_default();
            self.record_refusal(&intake, &id, "policy_denied", &why, &loaded.commit)
                .await;
            return Err(SubmitError::PolicyDenied(why));
        }
        let action = &intake.submission.action;
        if intake.submission.kind == crate::request::Kind::Action && policy.action(action).is_none()
        {
            let why = format!(
                "action `{action}` has no executor registered in policies/actions.toml (commit {})",
                short(&loaded.commit)
            );
            self.record_refusal(&intake, &id, "unregistered_action", &why, &loaded.commit)
                .await;
            return Err(SubmitError::UnregisteredAction(why));
        }
        if let Some(url) = &intake.submission.callback_url {
            match &self.execution.callback_hosts {
                Some(hosts) if !hosts.allows(url) => {
                    return Err(SubmitError::CallbackNotAllowed(format!(
                        "field `callback_url` must point at one of the hosts this server calls back: {}",
                        hosts.patterns().join(", ")
                    )));
                }
                Some(_) => {}
                // Literal addresses now; names where they resolve, at every delivery.
                None => {
                    if let Some(why) = reqwest::Url::parse(url)
                        .ok()
                        .and_then(|u| crate::execute::destination::literal_refusal(&u))
                    {
                        return Err(SubmitError::CallbackNotAllowed(format!(
                            "field `callback_url` must not point at an internal address: {why}; \
                             an operator may opt a host in with [execution] callback_hosts"
                        )));
                    }
                }
            }
        }
        let now = self.clock.now_ms();
        let ttl = evaluation
            .expires_after_secs
            .map(Duration::from_secs)
            .unwrap_or(self.request_ttl);
        let expires_at = now.saturating_add(time::duration_ms(ttl));
        let digest = intake.submission.digest(intake.agent);
        let fingerprint = intake.submission.fingerprint(intake.agent);
        let response = SubmitAnswer {
            id: id.clone(),
            state: State::Received,
            digest: digest.as_str().to_owned(),
            status_url: format!("/v1/requests/{id}"),
            created_at: time::rfc3339(now),
            expires_at: time::rfc3339(expires_at),
            policy: Some(PolicySummary {
                commit: evaluation.policy_commit.clone(),
                outcome: views::policy_outcome(evaluation.outcome),
                risk: views::risk(evaluation.risk),
            }),
        };
        // A signature stays usable while `|now - ts| <= skew` in whole seconds, i.e. until the
        // end of second `ts + skew`; remember it at least that long.
        let skew_ms = time::duration_ms(self.timestamp_skew) + 1000;
        let outcome = self
            .store
            .insert_request(NewRequest {
                id: id.clone(),
                agent: intake.agent.clone(),
                kind: intake.submission.kind.as_str(),
                action: intake.submission.action.clone(),
                resource: intake.submission.resource.clone(),
                environment: intake.submission.environment.clone(),
                digest: digest.clone(),
                submission_json: self.vault.seal(
                    id.as_str(),
                    &serde_json::to_vec(&intake.submission).map_err(anyhow::Error::from)?,
                ),
                now_ms: now,
                expires_at,
                signature: intake.signature.to_owned(),
                signature_expires_at: intake
                    .timestamp
                    .saturating_mul(1000)
                    .saturating_add(skew_ms),
                idempotency: intake.idempotency_key.map(|k| (k.to_owned(), fingerprint)),
                response: serde_json::to_string(&response).map_err(anyhow::Error::from)?,
                received: self.received_fields(&intake, &digest),
                policy_decision: policy_decision_fields(&evaluation),
                policy_commit: evaluation.policy_commit.clone(),
                evaluation_json: serde_json::to_string(&evaluation).map_err(anyhow::Error::from)?,
            })
            .await?;
        match outcome {
            InsertOutcome::Inserted => {
                tracing::info!(request.id = %id, agent.id = %intake.agent, request.digest = %digest, "request received");
                self.wake.notify_one();
                Ok(SubmitOutcome::Accepted(response))
            }
            InsertOutcome::Repeat(original) => Ok(SubmitOutcome::Repeated(
                serde_json::from_value(original)
                    .context("the stored answer to this Idempotency-Key is unreadable")?,
            )),
            InsertOutcome::KeyReused => Err(SubmitError::IdempotencyKeyReused),
            InsertOutcome::Replay => Err(SubmitError::Replay),
        }
    }

    /// Runs the expiry sweep immediately (used when a late review notices an expired request).
    pub(crate) async fn expire_now(&self, now: i64) {
        match self.store.expire_due(now).await {
            Ok(ids) if !ids.is_empty() => {
                for id in &ids {
                    tracing::info!(request.id = %id, "request expired");
                }
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }
}

/// The first 12 characters of a commit id, for messages.
pub(crate) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
