//! Running approved requests, exactly once. The execution loop claims each `approved` request
//! by moving it to `executing` with a fresh attempt id (one transaction with its event), and
//! only the winner of that compare-and-set runs it. Before running, the raw payload is opened
//! and its digest recomputed: anything but the approved digest is refused. The action gets a
//! just-in-time credential (optionally exchanged by a credential helper), runs through its
//! executor, and its masked outcome ends the attempt — with the callback to the agent and,
//! with retention zero, the erasure of the raw payload, in the same transaction.
//!
//! With `[github]`, a `github_workflow` action dispatches its workflow with an installation
//! token narrowed to `actions`, and an action declaring `github = {...}` gets an installation
//! token narrowed to that repository and those permissions instead of the JWT; each GitHub token
//! is recorded in the ledger before use and revoked when the attempt ends. Without `[github]`
//! both are refused before anything runs.
//!
//! After a crash, a request found `executing` was interrupted: an idempotent action is retried
//! once with the same idempotency key; any other becomes `outcome_unknown`, never re-run.

use super::Engine;
use crate::credentials::Grant;
use crate::execute::github_app::{Attempt as GitHubAttempt, WorkflowCall};
use crate::execute::github_credential::GitHubCredentialSpec;
use crate::execute::github_workflow::WorkflowSpec;
use crate::execute::{self, ExecutorSpec, Invocation, Outcome, helper::HelperSpec};
use crate::forge::ForgeError;
use crate::request::{AgentId, Kind, Submission};
use crate::store::execution::{Attempt, ExecutionRow, Finish};
use crate::store::{RequestRow, TransitionError};
use crate::time;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// An idempotent action is attempted at most this many times in all.
pub const MAX_ATTEMPTS: i64 = 2;
/// Transient forge errors while merging are retried within the attempt this many times.
const MERGE_TRIES: u32 = 3;

/// How an approved request is carried out, resolved from the action registry at the
/// request's pinned policy commit.
enum Plan {
    /// `http` or `command`.
    Run {
        spec: Box<ExecutorSpec>,
        credential: Credential,
    },
    /// `github_workflow` (with `[github]`).
    Workflow { spec: Box<WorkflowSpec> },
    /// `kind: change`: merge the review into the base branch.
    Merge,
}

/// What an `http` or `command` action gets as its credential.
enum Credential {
    /// countersign's JWT, optionally exchanged by a credential helper.
    Jwt {
        audience: String,
        helper: Option<HelperSpec>,
    },
    /// A GitHub installation token narrowed as the action declares (with `[github]`).
    GitHub(GitHubCredentialSpec),
}

struct Prepared {
    submission: Submission,
    agent: AgentId,
    plan: Plan,
    executor: &'static str,
    idempotent: bool,
    credential_ttl: Option<Duration>,
}

impl Engine {
    /// Claims one approved request and runs it, or refuses it before anything runs.
    pub(crate) async fn start(self: Arc<Self>, row: RequestRow) {
        let id = row.request_id();
        let prepared = match self.prepare(&row).await {
            Ok(p) => p,
            Err(reason) => return self.refuse(&row, &reason).await,
        };
        let attempt_id = ulid::Ulid::new().to_string();
        let begun = self
            .store
            .begin_execution(&Attempt {
                id: &id,
                attempt_id: &attempt_id,
                executor: prepared.executor,
                idempotent: prepared.idempotent,
                now_ms: self.clock.now_ms(),
            })
            .await;
        match begun {
            Ok(()) => self.run_attempt(&row, prepared, &attempt_id, 1).await,
            Err(TransitionError::Conflict(_)) => {}
            Err(e) => {
                tracing::error!(request.id = %id, error = %e, "could not start the execution")
            }
        }
    }

    /// Everything checked before an action may run: the payload opens, its digest is the
    /// approved one, the action is registered at the pinned policy commit.
    async fn prepare(&self, row: &RequestRow) -> Result<Prepared, String> {
        if row.payload_erased_at.is_some() {
            return Err("the raw payload was already erased".into());
        }
        let submission = self.submission_of(row).map_err(|_| {
            "the stored payload cannot be opened: it was altered, or its key is missing".to_owned()
        })?;
        let agent = AgentId::parse(&row.agent_id).ok_or("the stored agent id is invalid")?;
        let digest = submission.digest(&agent);
        if digest.as_str() != row.digest {
            return Err(format!(
                "the stored payload's digest {} is not the approved digest {}",
                digest, row.digest
            ));
        }
        let evaluation = row
            .evaluation()
            .map_err(|_| "the stored policy evaluation is unreadable".to_owned())?
            .ok_or("the request has no policy evaluation")?;
        let credential_ttl = evaluation.credential_ttl_secs.map(Duration::from_secs);
        if submission.kind == Kind::Change {
            return Ok(Prepared {
                submission,
                agent,
                plan: Plan::Merge,
                executor: "merge",
                idempotent: true,
                credential_ttl,
            });
        }
        let commit = &evaluation.policy_commit;
        let loaded = self
            .policy
            .at(self.forge.as_ref(), commit)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the policy at commit {}: {e:#}",
                    super::short(commit)
                )
            })?;
        let policy = loaded.policy.as_ref().map_err(|_| {
            format!(
                "the policy at commit {} does not compile",
                super::short(commit)
            )
        })?;
        let action = policy.action(&submission.action).ok_or_else(|| {
            format!(
                "action `{}` has no executor in policies/actions.toml at commit {}",
                submission.action,
                super::short(commit)
            )
        })?;
        let github = self.github_actions.is_some();
        if matches!(action.executor, ExecutorSpec::GithubWorkflow(_)) && !github {
            return Err("the github_workflow executor needs the [github] configuration".into());
        }
        if action.github.is_some() && !github {
            return Err(format!(
                "action `{}` declares a `github` credential, which needs the [github] configuration",
                action.name
            ));
        }
        let executor = action.executor.kind();
        let plan = match action.executor.clone() {
            ExecutorSpec::GithubWorkflow(w) => Plan::Workflow { spec: Box::new(w) },
            spec => Plan::Run {
                spec: Box::new(spec),
                credential: match &action.github {
                    Some(g) => Credential::GitHub(g.clone()),
                    None => Credential::Jwt {
                        audience: action.audience.clone().unwrap_or_default(),
                        helper: action.credential_helper.clone(),
                    },
                },
            },
        };
        Ok(Prepared {
            submission,
            agent,
            plan,
            executor,
            idempotent: action.idempotent,
            credential_ttl,
        })
    }

    /// Runs one attempt and records its outcome.
    async fn run_attempt(&self, row: &RequestRow, p: Prepared, attempt_id: &str, attempt: i64) {
        let id = row.request_id();
        let started = Instant::now();
        tracing::info!(request.id = %id, agent.id = %p.agent, attempt.id = attempt_id, attempt, execution.executor = p.executor, "execution started");
        let outcome = match &p.plan {
            Plan::Run { spec, credential } => self.run_executor(row, &p, spec, credential).await,
            Plan::Workflow { spec } => self.run_workflow(row, &p, spec).await,
            Plan::Merge => self.merge(row).await,
        };
        let duration_ms = time::duration_ms(started.elapsed());
        // Sent but unanswered: a non-idempotent action may have happened, so it is neither a
        // failure (the agent would retry it) nor a success.
        let unknown = !outcome.success && outcome.outcome_unknown && !p.idempotent;
        let (to, event) = if outcome.success {
            (super::State::Succeeded, "execution_succeeded")
        } else if unknown {
            (super::State::OutcomeUnknown, "outcome_unknown")
        } else {
            (super::State::Failed, "execution_failed")
        };
        let mut detail = outcome_fields(&outcome);
        detail["attempt_id"] = json!(attempt_id);
        detail["attempt"] = json!(attempt);
        detail["executor"] = json!(p.executor);
        if unknown {
            detail["reason"] = json!(
                "the call was sent but no answer came; the action is not idempotent, so it is not run again"
            );
        }
        let finished = self
            .finish(
                row,
                Some(&p.submission),
                Some(attempt_id),
                to,
                event,
                detail,
                Some(&outcome),
            )
            .await;
        match finished {
            Ok(()) if outcome.success => {
                tracing::info!(request.id = %id, attempt.id = attempt_id, duration_ms, "execution succeeded")
            }
            Ok(()) if unknown => {
                tracing::error!(request.id = %id, attempt.id = attempt_id, duration_ms, "an action was sent but not answered: its outcome is unknown; check the target before retrying")
            }
            Ok(()) => {
                tracing::warn!(request.id = %id, attempt.id = attempt_id, duration_ms, process.exit_status = outcome.exit_status, http.status = outcome.http_status, "execution failed")
            }
            Err(e) => {
                tracing::error!(request.id = %id, attempt.id = attempt_id, error = %e, "could not record the outcome of an execution; it will be outcome_unknown at the next start")
            }
        }
    }

    async fn run_executor(
        &self,
        row: &RequestRow,
        p: &Prepared,
        spec: &ExecutorSpec,
        credential: &Credential,
    ) -> Outcome {
        let started_at = self.clock.now_ms();
        let github = self.github_actions.as_deref();
        let minter = github.map(|g| g.minter(self.attempt_of(row)));
        let (token, credential_id, minted) = match credential {
            Credential::Jwt { audience, helper } => {
                match self.jwt_credential(row, p, audience, helper.as_ref()).await {
                    Ok((token, jti)) => (token, jti, None),
                    Err(e) => return Outcome::failed(started_at, e),
                }
            }
            Credential::GitHub(g) => {
                let (Some(github), Some(minter)) = (github, &minter) else {
                    return Outcome::failed(
                        started_at,
                        "a `github` credential needs the [github] configuration".into(),
                    );
                };
                let repository = g.repository.clone().unwrap_or_else(|| github.repository());
                match minter.mint(&g.permissions(), &repository).await {
                    Ok(m) => (
                        Zeroizing::new(m.token.expose().to_owned()),
                        m.id.clone(),
                        Some(m),
                    ),
                    Err(e) => return Outcome::failed(started_at, e),
                }
            }
        };
        let fields = fields_of(row, p);
        let invocation = Invocation {
            request_id: &row.id,
            payload: &p.submission.payload,
            token: &token,
            fields: &fields,
        };
        let mut outcome = execute::run(spec, &invocation, &self.masker).await;
        if let (Some(minter), Some(m)) = (&minter, &minted) {
            minter.revoke(m).await;
        }
        outcome.credential = Some(credential_id);
        outcome
    }

    /// countersign's JWT for the request (recorded before it is returned), or what the
    /// credential helper exchanged it for; with the token's `jti`.
    async fn jwt_credential(
        &self,
        row: &RequestRow,
        p: &Prepared,
        audience: &str,
        helper: Option<&HelperSpec>,
    ) -> Result<(Zeroizing<String>, String), String> {
        let approvers = self
            .store
            .reviews(&row.request_id())
            .await
            .map(|r| crate::store::approvers(&r, &row.digest))
            .unwrap_or_default();
        let grant = Grant {
            agent: p.agent.clone(),
            audience: audience.to_owned(),
            ttl: p.credential_ttl,
            request_id: row.request_id(),
            digest: super::views::stored_digest(row),
            action: p.submission.action.clone(),
            resource: p.submission.resource.clone(),
            environment: p.submission.environment.clone(),
            approvers,
        };
        let issued = self
            .credentials
            .issue(&grant)
            .await
            .map_err(|e| format!("no credential: {e}"))?;
        let credential: Zeroizing<String> = match helper {
            None => issued.token.clone(),
            Some(h) => execute::helper::run(h, &issued.token, &self.masker).await?,
        };
        Ok((credential, issued.jti.clone()))
    }

    /// The `github_workflow` executor: dispatch (and maybe follow) the workflow with narrowed
    /// tokens minted and recorded for this attempt.
    async fn run_workflow(&self, row: &RequestRow, p: &Prepared, spec: &WorkflowSpec) -> Outcome {
        let Some(github) = self.github_actions.as_deref() else {
            return Outcome::failed(
                self.clock.now_ms(),
                "the github_workflow executor needs the [github] configuration".into(),
            );
        };
        let minter = github.minter(self.attempt_of(row));
        let fields = fields_of(row, p);
        let call = WorkflowCall {
            fields: &fields,
            payload: &p.submission.payload,
            masker: &self.masker,
        };
        github
            .run_workflow(spec, minter.as_ref(), &row.id, call)
            .await
    }

    /// The GitHub side's view of an attempt of `row` (tokens are recorded in the store).
    fn attempt_of<'a>(&'a self, row: &'a RequestRow) -> GitHubAttempt<'a> {
        GitHubAttempt {
            store: &self.store,
            request_id: &row.id,
            agent_id: &row.agent_id,
        }
    }

    /// The executor of `kind: change`: merges the review on the forge.
    async fn merge(&self, row: &RequestRow) -> Outcome {
        let started_at = self.clock.now_ms();
        let Some(review) = row.review_ref.as_deref() else {
            return Outcome::failed(started_at, "the request has no review to merge".into());
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match self.forge.merge_review(review, &row.request_id()).await {
                Ok(commit) => {
                    let mut o = Outcome::failed(started_at, String::new());
                    o.success = true;
                    o.error = None;
                    o.output = format!("merged as {commit}");
                    return o;
                }
                Err(ForgeError::Transient(e)) if tries < MERGE_TRIES => {
                    tracing::warn!(request.id = %row.id, error = %e, "merge failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(e) => return Outcome::failed(started_at, format!("merge failed: {e}")),
            }
        }
    }

    /// `approved → failed` without running anything; an alert for the operators.
    async fn refuse(&self, row: &RequestRow, reason: &str) {
        let id = row.request_id();
        tracing::error!(request.id = %id, agent.id = %row.agent_id, reason, "execution refused");
        let submission = self.submission_of(row).ok();
        let detail = json!({ "reason": reason });
        let result = self
            .finish(
                row,
                submission.as_ref(),
                None,
                super::State::Failed,
                "execution_refused",
                detail,
                None,
            )
            .await;
        match result {
            Ok(()) | Err(TransitionError::Conflict(_)) => {}
            Err(e) => {
                tracing::error!(request.id = %id, error = %e, "could not record a refused execution")
            }
        }
    }

    /// Records the end of an execution (or a refusal): outcome, callback, erasure. Without the
    /// submission (it could not be opened) there is no callback to make and nothing to erase.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        row: &RequestRow,
        submission: Option<&Submission>,
        attempt_id: Option<&str>,
        to: super::State,
        event: &str,
        detail: Value,
        outcome: Option<&Outcome>,
    ) -> Result<(), TransitionError> {
        let now = self.clock.now_ms();
        let id = row.request_id();
        let outcome_json = outcome.map(|o| json!(o));
        let callback = submission.and_then(|s| s.callback_url.as_ref()).map(|url| {
            let body = crate::api::CallbackBody {
                id: id.clone(),
                state: to,
                digest: row.digest.clone(),
                event: event.to_owned(),
                reason: detail
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                outcome: outcome.map(super::views::execution_outcome),
                at: time::rfc3339(now),
            };
            let body = serde_json::to_string(&body).expect("a callback body serializes");
            (url.clone(), body)
        });
        let erase_with = submission
            .filter(|_| self.execution.payload_retention.is_zero())
            .map(|s| self.masked_copy(row, s));
        self.store
            .finish_execution(Finish {
                id: &id,
                attempt_id,
                to,
                event,
                detail,
                outcome: outcome_json.clone(),
                callback,
                erase_with,
                now_ms: now,
            })
            .await?;
        self.callback_wake.notify_one();
        self.wake.notify_one();
        Ok(())
    }

    /// What replaces the raw submission once it is erased: the masked payload and
    /// justification (and the changed paths), sealed like the original.
    pub(super) fn masked_copy(&self, row: &RequestRow, submission: &Submission) -> String {
        let masked = self
            .masker
            .mask_request(&submission.payload, &submission.justification);
        let copy = Submission {
            payload: masked.payload,
            justification: masked.justification,
            changes: submission
                .changes
                .iter()
                .map(|c| crate::request::FileChange {
                    path: c.path.clone(),
                    content: String::new(),
                })
                .collect(),
            callback_url: None,
            ..submission.clone()
        };
        let json = serde_json::to_vec(&copy).expect("a submission serialises");
        self.vault.seal(&row.id, &json)
    }

    /// Recovers executions whose process stopped (see `ExecutionStore::executing`): at
    /// start-up, and with replicas periodically, since another replica may have died. Those
    /// in `running` (this process runs them) are left alone; an idempotent action is tried
    /// again (its id joins `running` while it runs), any other is `outcome_unknown`. Another
    /// replica recovering the same execution at once is not an error: one of them wins.
    pub(crate) async fn recover_executions(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        permits: &Arc<Semaphore>,
        running: &Arc<Mutex<HashSet<String>>>,
    ) -> anyhow::Result<()> {
        for (row, exec) in self.store.executing().await? {
            let id = row.request_id();
            if running.lock().expect("running").contains(&row.id) {
                continue;
            }
            match self.recover_one(row, exec, tasks, permits, running).await {
                Ok(()) | Err(TransitionError::Conflict(_)) => {}
                Err(e) => return Err(anyhow::Error::new(e).context(format!("recovering {id}"))),
            }
        }
        Ok(())
    }

    async fn recover_one(
        self: &Arc<Self>,
        row: RequestRow,
        exec: ExecutionRow,
        tasks: &mut JoinSet<()>,
        permits: &Arc<Semaphore>,
        running: &Arc<Mutex<HashSet<String>>>,
    ) -> Result<(), TransitionError> {
        let id = row.request_id();
        if exec.idempotent != 0 && exec.attempts < MAX_ATTEMPTS {
            let attempt_id = ulid::Ulid::new().to_string();
            let attempt = self
                .store
                .retry_execution(&id, &exec.attempt_id, &attempt_id, self.clock.now_ms())
                .await?;
            tracing::warn!(request.id = %id, attempt.id = %attempt_id, attempt, "retrying an idempotent action interrupted by a stopped process");
            let engine = self.clone();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(anyhow::Error::new)?;
            running.lock().expect("running").insert(row.id.clone());
            let running = running.clone();
            tasks.spawn(async move {
                match engine.prepare(&row).await {
                    Ok(p) => engine.run_attempt(&row, p, &attempt_id, attempt).await,
                    Err(reason) => engine.fail_attempt(&row, &attempt_id, &reason).await,
                }
                running.lock().expect("running").remove(&row.id);
                drop(permit);
            });
            return Ok(());
        }
        tracing::error!(request.id = %id, attempt.id = %exec.attempt_id, execution.executor = %exec.executor, "an action was interrupted by a stopped process: its outcome is unknown; check the target before retrying");
        let submission = self.submission_of(&row).ok();
        let detail = json!({
            "attempt_id": exec.attempt_id,
            "attempt": exec.attempts,
            "executor": exec.executor,
            "reason": if exec.idempotent != 0 {
                "countersign stopped during the last allowed attempt"
            } else {
                "countersign stopped while the action ran; it is not idempotent, so it is not run again"
            },
        });
        self.finish(
            &row,
            submission.as_ref(),
            Some(&exec.attempt_id),
            super::State::OutcomeUnknown,
            "outcome_unknown",
            detail,
            None,
        )
        .await
    }

    /// A retried attempt whose checks failed (e.g. the payload was altered meanwhile).
    async fn fail_attempt(&self, row: &RequestRow, attempt_id: &str, reason: &str) {
        tracing::error!(request.id = %row.id, reason, "execution refused");
        let o = Outcome::failed(self.clock.now_ms(), reason.to_owned());
        let mut detail = outcome_fields(&o);
        detail["attempt_id"] = json!(attempt_id);
        let finished = self
            .finish(
                row,
                None,
                Some(attempt_id),
                super::State::Failed,
                "execution_failed",
                detail,
                Some(&o),
            )
            .await;
        if let Err(e) = finished {
            tracing::error!(request.id = %row.id, error = %e, "could not record a failed execution");
        }
    }

    /// Erases the raw payloads of requests finished longer ago than the retention.
    pub(crate) async fn erase_due(&self, now: i64) -> anyhow::Result<()> {
        let cutoff = now - time::duration_ms(self.execution.payload_retention);
        for row in self.store.due_for_erasure(cutoff, 100).await? {
            let id = row.request_id();
            let copy = match self.submission_of(&row) {
                Ok(s) => self.masked_copy(&row, &s),
                Err(_) => self.vault.seal(&row.id, &unreadable_copy(&row)),
            };
            self.store.erase_payload(&id, &copy, now).await?;
            tracing::info!(request.id = %id, "raw payload erased");
        }
        Ok(())
    }
}

/// The request fields templates may use: action, resource, environment, agent, request_id.
fn fields_of(row: &RequestRow, p: &Prepared) -> BTreeMap<String, String> {
    [
        ("action", &p.submission.action),
        ("resource", &p.submission.resource),
        ("environment", &p.submission.environment),
        ("agent", &row.agent_id),
        ("request_id", &row.id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect()
}

/// The event fields of an outcome (for the ledger): no output, only what happened.
fn outcome_fields(o: &Outcome) -> Value {
    json!({
        "success": o.success,
        "exit_status": o.exit_status,
        "signal": o.signal,
        "http_status": o.http_status,
        "error": o.error,
        "duration_ms": o.duration_ms,
        "credential_jti": o.credential,
        "outcome_unknown": o.outcome_unknown,
        "output_bytes": o.output.len(),
    })
}

/// The stand-in for a submission that cannot be opened any more.
fn unreadable_copy(row: &RequestRow) -> Vec<u8> {
    let s = json!({
        "kind": row.kind,
        "action": row.action,
        "resource": row.resource,
        "environment": row.environment,
        "justification": "[unavailable: the stored payload could not be opened]",
        "payload": {},
    });
    s.to_string().into_bytes()
}
