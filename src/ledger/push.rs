//! Publishing the ledger branch: with a forge that hosts the repository elsewhere (GitHub), the
//! writer commits into the local clone and this task pushes the branch there, so auditors see
//! it where they browse the repository.
//!
//! - The push only ever **fast-forwards** the published branch to a commit of the local
//!   branch: no force, no rebase, no merge. A published branch that is behind (a push was lost,
//!   countersign was killed between a commit and its push) is caught up by the next push.
//! - A published branch holding commits countersign does not have (someone else wrote to it, a
//!   second instance, a restored backup) is **never overwritten and never built upon**:
//!   re-applying countersign's entries on top would put foreign content into the signed,
//!   hash-chained history countersign vouches for (and foreign entries would force renumbering
//!   and re-hashing countersign's own, a rewrite). The push fails closed: readiness and the
//!   logs name the foreign tip, the writer keeps committing locally (nothing is lost), and the
//!   push is retried with backoff until an operator has put the published branch back on
//!   countersign's history (`docs/LEDGER.md`).
//! - Pushes are batched: each wakes on a commit (or a retry) and sends the local tip, however
//!   many commits arrived meanwhile; nothing is sent while the published branch is known to
//!   be at the local tip. One push is attempted at start-up, to catch up.
//! - Each attempt is bounded by [`PushSettings::timeout`]; failures (network, 5xx, rate limits,
//!   timeouts, refusals) are retried with exponential backoff and jitter, forever, and not
//!   before a rate limit's `retry-after`.

use super::git::LedgerRepo;
use super::status::LedgerStatus;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the ledger branch is published (the GitHub forge implements it).
#[async_trait::async_trait]
pub trait LedgerRemote: Send + Sync + 'static {
    /// For logs and readiness: `acme/gitops on GitHub`.
    fn describe(&self) -> String;

    /// Moves the published branch to `tip` (a commit of the local branch) if that is a
    /// fast-forward, giving up at `deadline`. Never forces.
    async fn push(&self, tip: &str, deadline: Instant) -> Result<Pushed, PushError>;

    /// The published branch's commit, fetched into the local repository (`None`: there is no
    /// published branch). Read each time the writer opens.
    async fn fetch(&self, deadline: Instant) -> Result<Option<String>, PushError>;
}

/// What a successful push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The published branch was at `tip` already.
    UpToDate,
    /// The published branch moved to `tip` from `from` (`None`: it was created).
    FastForward { from: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The published branch has commits the local branch does not have.
    #[error(
        "the published ledger branch is at {remote}, which is not in countersign's ledger \
         history{}: refusing to overwrite or build on it (countersign keeps committing locally; \
         see docs/LEDGER.md to resolve it)",
        describe_divergence(.base, .foreign)
    )]
    Diverged {
        remote: String,
        /// The newest commit of countersign's history the published branch still holds.
        base: Option<String>,
        /// How many commits the published branch has that countersign does not.
        foreign: Option<usize>,
    },
    /// The remote asked to wait before trying again.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// Anything else worth retrying: network errors, timeouts, 5xx answers, refusals.
    #[error("{0}")]
    Failed(String),
}

fn describe_divergence(base: &Option<String>, foreign: &Option<usize>) -> String {
    match (base, foreign) {
        (Some(b), Some(n)) => format!(" ({n} foreign commit(s) on top of countersign's {b})"),
        (Some(b), None) => format!(" (it forked from countersign's {b})"),
        (None, Some(n)) => format!(" ({n} foreign commit(s), nothing in common)"),
        (None, None) => String::new(),
    }
}

/// How patient pushes are.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// One attempt, from the token to the remote's answer.
    pub timeout: Duration,
    /// The first retry delay; doubled per failure, with jitter.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// How long the last push at shutdown may take.
const LAST_PUSH: Duration = Duration::from_secs(10);

/// The outcomes pushes are counted by (`countersign_ledger_pushes_total{outcome}`).
pub const OUTCOMES: [&str; 6] = [
    "ok",
    "up_to_date",
    "error",
    "timeout",
    "rate_limited",
    "diverged",
];
/// A rate limit's wait is honoured up to this long.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);

/// What the pusher has done, for readiness and metrics.
#[derive(Debug)]
pub struct PushStatus {
    /// Where it pushes (`acme/gitops on GitHub`).
    pub remote: String,
    /// The last entry on the published branch as far as countersign knows (-1: unknown yet).
    pub pushed_seq: AtomicI64,
    /// Commits of the local branch the published branch does not have (-1: unknown yet).
    pub pending_commits: AtomicI64,
    /// When a push last succeeded (unix ms; 0: not yet).
    pub last_success_ms: AtomicI64,
    /// Attempts by outcome, in [`OUTCOMES`] order.
    attempts: [AtomicU64; OUTCOMES.len()],
    /// Why the last attempt failed (cleared by a successful one).
    error: Mutex<Option<PushError>>,
}

impl PushStatus {
    fn new(remote: String) -> Self {
        Self {
            remote,
            pushed_seq: AtomicI64::new(-1),
            pending_commits: AtomicI64::new(-1),
            last_success_ms: AtomicI64::new(0),
            attempts: Default::default(),
            error: Mutex::new(None),
        }
    }

    /// Attempts so far, by outcome.
    pub fn attempts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        OUTCOMES
            .iter()
            .zip(&self.attempts)
            .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
    }

    pub fn error(&self) -> Option<PushError> {
        self.error.lock().expect("status lock").clone()
    }

    fn count(&self, outcome: &str) {
        let at = OUTCOMES.iter().position(|o| *o == outcome).expect("known");
        self.attempts[at].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the error; true when it differs from the previous one (worth a log line).
    fn set_error(&self, e: Option<PushError>) -> bool {
        let mut current = self.error.lock().expect("status lock");
        let changed =
            current.as_ref().map(ToString::to_string) != e.as_ref().map(ToString::to_string);
        *current = e;
        changed
    }

    /// For `/readyz`.
    pub fn readiness(&self, committed_seq: i64) -> crate::api::PushReadiness {
        let pushed = self.pushed_seq.load(Ordering::Relaxed);
        let pending = self.pending_commits.load(Ordering::Relaxed);
        let known = |n: i64| (n >= 0).then_some(n);
        let last = self.last_success_ms.load(Ordering::Relaxed);
        let error = self.error();
        crate::api::PushReadiness {
            ok: error.is_none(),
            remote: self.remote.clone(),
            pushed_seq: known(pushed),
            lag_entries: known(pushed).map(|p| (committed_seq - p).max(0)),
            pending_commits: known(pending),
            last_pushed_at: (last > 0).then(|| crate::time::rfc3339(last)),
            error: error.as_ref().map(|e| e.to_string()),
            diverged: match error {
                Some(PushError::Diverged {
                    remote,
                    base,
                    foreign,
                }) => Some(crate::api::Divergence {
                    remote_commit: remote,
                    base_commit: base,
                    foreign_commits: foreign,
                }),
                _ => None,
            },
        }
    }
}

/// The task pushing the local ledger branch.
pub struct Pusher {
    pub repo: Arc<Mutex<LedgerRepo>>,
    pub status: Arc<LedgerStatus>,
    pub remote: Arc<dyn LedgerRemote>,
    pub settings: PushSettings,
    /// Asked right before every push (with replicas: still the leader?).
    pub gate: Option<Arc<dyn PushGate>>,
}

/// Whether this process may still publish the ledger, asked right before each push: with
/// replicas, whether it still holds the leader lease (checked in the database), so a leader
/// that lost the lease while it was paused or cut off does not push over its successor.
#[async_trait::async_trait]
pub trait PushGate: Send + Sync {
    /// `Err(why)`: do not push now.
    async fn may_push(&self) -> Result<(), String>;
}

/// The published branch as countersign last saw it.
#[derive(Default)]
struct Known {
    /// The newest of countersign's commits it holds (`None`: none, or not known yet).
    commit: Option<String>,
    /// Whether `commit` is the published tip (false after a divergence: it is the base).
    exact: bool,
    /// Whether the remote has answered at all since start.
    answered: bool,
}

impl Pusher {
    /// Registers the push status with the writer's (so readiness and metrics see it).
    pub fn install(&self) {
        let _ = self
            .status
            .push
            .set(PushStatus::new(self.remote.describe()));
    }

    fn push_status(&self) -> &PushStatus {
        self.status.push.get().expect("installed before running")
    }

    /// Pushes at start, after every commit, and with backoff after failures, until `finish`
    /// turns true (after the writer's last commit): then one last attempt if anything is left.
    pub async fn run(self, mut finish: watch::Receiver<bool>) {
        let mut known = Known::default();
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        loop {
            let finishing = *finish.borrow();
            let tip = self.observe(&known).await;
            let due = tip.is_some() && !(known.exact && known.commit == tip);
            let allowed = retry_at.is_none_or(|at| at <= Instant::now());
            if let Some(tip) = tip.filter(|_| due && (allowed || finishing)) {
                let timeout = if finishing {
                    self.settings.timeout.min(LAST_PUSH)
                } else {
                    self.settings.timeout
                };
                // A push in flight when the writer finishes gets [`LAST_PUSH`] more, at most.
                let stopping = async {
                    let _ = finish.wait_for(|f| *f).await;
                    tokio::time::sleep(LAST_PUSH).await;
                };
                let result = tokio::select! {
                    r = self.attempt(&tip, timeout, &mut known) => r,
                    _ = stopping, if !finishing => {
                        tracing::warn!(ledger.remote = %self.push_status().remote, "ledger push still running at shutdown; abandoned, it is retried at the next start");
                        return;
                    }
                };
                match result {
                    Ok(()) => {
                        failures = 0;
                        retry_at = None;
                    }
                    Err(asked) => {
                        failures += 1;
                        let wait = self.backoff(failures).max(asked.min(MAX_RATE_LIMIT_WAIT));
                        retry_at = Some(Instant::now() + wait);
                    }
                }
                self.observe(&known).await;
            }
            if finishing {
                let status = self.push_status();
                let pending = status.pending_commits.load(Ordering::Relaxed);
                if pending != 0 {
                    tracing::warn!(ledger.pending_commits = pending, ledger.remote = %status.remote, "ledger commits not yet published; they are pushed at the next start");
                }
                return;
            }
            tokio::select! {
                _ = self.status.committed.notified() => {}
                _ = sleep_until(retry_at) => {}
                // The writer is gone without finishing (its replica stopped leading): stop.
                r = finish.wait_for(|f| *f) => if r.is_err() { return },
            }
        }
    }

    /// Exponential backoff with equal jitter: half the doubled delay plus up to the other half.
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .settings
            .min_backoff
            .saturating_mul(1 << failures.saturating_sub(1).min(20))
            .min(self.settings.max_backoff);
        let half = doubled / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// One push of `tip`; updates the status and logs. `Err` means retry later, not before
    /// the time given (a rate limit's).
    async fn attempt(
        &self,
        tip: &str,
        timeout: Duration,
        known: &mut Known,
    ) -> Result<(), Duration> {
        let status = self.push_status();
        let started = std::time::Instant::now();
        let deadline = Instant::now() + timeout;
        // The transport stops at the deadline; the outer bound only guards against a hang
        // outside it (the token request has its own timeouts).
        let grace = Duration::from_secs(5);
        let allowed = match &self.gate {
            Some(gate) => gate.may_push().await,
            None => Ok(()),
        };
        let result = match allowed {
            Err(why) => Err(PushError::Failed(format!("not pushed: {why}"))),
            Ok(()) => {
                match tokio::time::timeout_at(deadline + grace, self.remote.push(tip, deadline))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(PushError::Failed(format!(
                        "pushing the ledger branch timed out after {}",
                        humantime::format_duration(timeout)
                    ))),
                }
            }
        };
        let outcome = match &result {
            Ok(Pushed::UpToDate) => "up_to_date",
            Ok(Pushed::FastForward { .. }) => "ok",
            Err(PushError::Diverged { .. }) => "diverged",
            Err(PushError::RateLimited { .. }) => "rate_limited",
            Err(PushError::Failed(m)) if m.contains("timeout") || m.contains("timed out") => {
                "timeout"
            }
            Err(PushError::Failed(_)) => "error",
        };
        status.count(outcome);
        match result {
            Ok(pushed) => {
                *known = Known {
                    commit: Some(tip.to_owned()),
                    exact: true,
                    answered: true,
                };
                status
                    .last_success_ms
                    .store(crate::time::now_ms(), Ordering::Relaxed);
                if status.set_error(None) {
                    tracing::info!(ledger.remote = %status.remote, ledger.commit = %tip, "ledger branch published again");
                }
                if let Pushed::FastForward { from } = pushed {
                    tracing::debug!(ledger.remote = %status.remote, ledger.from_commit = from.as_deref().unwrap_or("(new branch)"), ledger.commit = %tip, duration_ms = started.elapsed().as_millis() as u64, "ledger branch pushed");
                }
                Ok(())
            }
            Err(e) => {
                let asked = match &e {
                    PushError::RateLimited { retry_after, .. } => *retry_after,
                    _ => Duration::ZERO,
                };
                if let PushError::Diverged { base, .. } = &e {
                    *known = Known {
                        commit: base.clone(),
                        exact: false,
                        answered: true,
                    };
                }
                let message = e.to_string();
                if status.set_error(Some(e)) {
                    tracing::error!(ledger.remote = %status.remote, error = %message, "cannot publish the ledger branch; entries stay committed locally and the push is retried");
                }
                Err(asked)
            }
        }
    }

    /// Reads the local tip and refreshes what the status says about the published branch.
    async fn observe(&self, known: &Known) -> Option<String> {
        let repo = self.repo.clone();
        let base = known.commit.clone();
        let read = tokio::task::spawn_blocking(move || {
            let repo = repo.lock().expect("ledger lock");
            let tip = repo.tip();
            let pending = repo.commits_after(base.as_deref(), 100_000)?;
            let seq = match &base {
                Some(b) => repo.entry_at(b)?.map_or(0, |h| h.seq),
                None => 0,
            };
            anyhow::Ok((tip, pending, seq))
        })
        .await;
        let status = self.push_status();
        match read {
            Ok(Ok((tip, pending, seq))) => {
                if known.answered {
                    status
                        .pending_commits
                        .store(pending as i64, Ordering::Relaxed);
                    status.pushed_seq.store(seq, Ordering::Relaxed);
                }
                tip
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the local ledger branch");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "ledger task panicked");
                None
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
