//! What every store backend provides, one trait per part of the state: requests and their
//! reviews and events, executions and callbacks, the forge's review inbox, the audit ledger's
//! outbox, the notification outbox and issued credentials. [`Storage`] is all of them; the
//! engine and the jobs hold a [`super::Store`] (a shared `dyn Storage`). Every state change is
//! one transaction with its event and ledger entry, whatever the backend.
//!
//! Implementations: SQLite ([`super::SqliteStore`], the embedded default) and PostgreSQL
//! ([`super::PgStore`]).

use super::credentials::{CredentialRow, NewCredential, NewGitHubCredential};
use super::execution::{Attempt, CallbackRow, ExecutionRow, Finish};
use super::github::InboxRow;
use super::notify::{DeliveryRow, OutboxRow, Thread};
use super::{
    EventRow, InsertOutcome, NewRequest, NewReview, RequestRow, ReviewRow, TransitionError,
};
use crate::ledger::entry::Sealed;
use crate::request::{RequestId, State};
use serde_json::{Map, Value};

#[async_trait::async_trait]
pub trait RequestStore: Send + Sync {
    /// Where the data lives, for messages (the database file, or the server and database).
    fn location(&self) -> String;

    /// Whether the store can be read and written: a read, then a small write committed to
    /// disk (a full disk or a read-only file fails it; once space or write access is back it
    /// passes again, on a fresh connection if the old one was discarded).
    async fn ping(&self) -> anyhow::Result<()>;

    /// Stores an accepted request, its `received` event, its signature and idempotency key
    /// atomically, or reports why it must not be stored. Concurrent calls are group-committed:
    /// one transaction (one WAL commit, one fsync with `full`) for every call waiting at that
    /// moment; a refused call leaves nothing in it. Returns once the commit is durable.
    async fn insert_request(&self, new: NewRequest) -> anyhow::Result<InsertOutcome>;

    async fn get_request(&self, id: &RequestId) -> anyhow::Result<Option<RequestRow>>;

    async fn reviews(&self, id: &RequestId) -> anyhow::Result<Vec<ReviewRow>>;

    async fn events(&self, id: &RequestId) -> anyhow::Result<Vec<EventRow>>;

    /// Requests whose review still has to be opened and whose retry time has come.
    async fn due_for_review(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<RequestRow>>;

    /// Decided requests whose decision the forge has not shown yet.
    async fn due_for_publication(&self, now_ms: i64, limit: i64)
    -> anyhow::Result<Vec<RequestRow>>;

    /// `received → pending_review` with the review reference; with `auto_approved_by` (the
    /// policy commit that allows it) the request goes on to `approved` in the same transaction,
    /// recorded as approved by policy.
    async fn review_opened(
        &self,
        id: &RequestId,
        review: &crate::forge::ReviewRef,
        now_ms: i64,
        auto_approved_by: Option<&str>,
    ) -> Result<State, TransitionError>;

    /// Records where the review of an already decided request lives, so its outcome can still
    /// be shown there. Never changes the state.
    async fn attach_review(
        &self,
        id: &RequestId,
        review_ref: &str,
        review_url: &str,
    ) -> anyhow::Result<()>;

    /// Records a failed forge attempt and when to try again. `error` must carry no request data.
    async fn forge_failed(
        &self,
        id: &RequestId,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> anyhow::Result<()>;

    /// Marks the decision shown, if the request is still in the `state` that was published: a
    /// request that moved on meanwhile (an execution finished) is published again.
    async fn decision_published(&self, id: &RequestId, state: State) -> anyhow::Result<()>;

    /// Records a review on a `pending_review` request and lets `decide` (given every review of
    /// the request, this one included) say whether the request now moves to another state —
    /// all in one transaction, so concurrent approvals are counted against each other.
    /// Fails with a conflict if the request is no longer pending (or its time is up).
    async fn record_review(
        &self,
        id: &RequestId,
        review: NewReview<'_>,
        now_ms: i64,
        decide: &(dyn for<'r> Fn(&'r [ReviewRow]) -> Option<State> + Send + Sync),
    ) -> Result<State, TransitionError>;

    /// Records a refused approval attempt as an event (for the audit trail); no state change.
    async fn record_refusal(
        &self,
        id: &RequestId,
        reviewer: &str,
        why: &str,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    /// Moves every undecided request whose time is up to `expired`; returns their ids.
    async fn expire_due(&self, now_ms: i64) -> anyhow::Result<Vec<RequestId>>;

    /// Forgets signatures that can no longer pass the timestamp window.
    async fn prune_signatures(&self, now_ms: i64) -> anyhow::Result<u64>;

    /// Forgets idempotency keys created before `before_ms`.
    async fn prune_idempotency_keys(&self, before_ms: i64) -> anyhow::Result<u64>;

    /// Row counts of every table, for readiness output and tests.
    async fn table_counts(&self) -> anyhow::Result<Vec<(&'static str, i64)>>;

    /// Closes the readers first: the writer, closing last, checkpoints the write-ahead log
    /// into the database file and removes it (a read-only connection cannot).
    async fn close(&self);
}

#[async_trait::async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Approved requests nobody has started yet.
    async fn approved_unstarted(&self, limit: i64) -> anyhow::Result<Vec<RequestRow>>;

    /// Requests left in `executing` by a process that stopped: with one process (SQLite),
    /// every one (asked at start, before anything runs again); with replicas (PostgreSQL),
    /// those whose claim lapsed (the replica running them stopped renewing it).
    async fn executing(&self) -> anyhow::Result<Vec<(RequestRow, ExecutionRow)>>;

    /// How long an execution's claim lasts without renewal, where several replicas share the
    /// store (`None`: one process, which recovers interrupted executions only at start).
    fn execution_claim(&self) -> Option<std::time::Duration>;

    /// Renews this replica's claims on the executions of `ids` it is running (see
    /// [`ExecutionStore::execution_claim`]; nothing to do with one process).
    async fn renew_execution_claims(&self, ids: &[String]) -> anyhow::Result<()>;

    async fn execution(&self, id: &RequestId) -> anyhow::Result<Option<ExecutionRow>>;

    /// `approved → executing`: the attempt id is durable before anything runs. Only one caller
    /// can win this for a request (compare-and-set on the state).
    async fn begin_execution(&self, a: &Attempt<'_>) -> Result<(), TransitionError>;

    /// `executing → executing` with a new attempt id: an idempotent action interrupted by a
    /// crash is tried again (with the same idempotency key, the request id).
    async fn retry_execution(
        &self,
        id: &RequestId,
        previous: &str,
        attempt_id: &str,
        now_ms: i64,
    ) -> Result<i64, TransitionError>;

    /// Ends an execution (or refuses one that never started): state, event, outcome, the
    /// callback to the agent and, with retention zero, the erasure — one transaction. The
    /// decision is published on the forge again so the review shows the outcome.
    async fn finish_execution(&self, f: Finish<'_>) -> Result<(), TransitionError>;

    /// Finished requests whose raw submission is still kept and whose retention has passed.
    async fn due_for_erasure(
        &self,
        finished_before_ms: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RequestRow>>;

    /// Replaces the raw submission by its sealed masked copy.
    async fn erase_payload(
        &self,
        id: &RequestId,
        sealed_masked: &str,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    async fn due_callbacks(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<CallbackRow>>;

    /// Records a delivery attempt: delivered, given up, or to retry at `next_ms`.
    async fn callback_attempted(
        &self,
        id: i64,
        state: &str,
        next_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    /// Requests by state and callbacks by state (every known state listed, zero included).
    async fn state_counts(&self) -> anyhow::Result<(Vec<(String, i64)>, Vec<(String, i64)>)>;

    /// The callback of a request, for the status document: `(state, attempts, last_error)`.
    async fn callback_status(
        &self,
        id: &RequestId,
    ) -> anyhow::Result<Option<(String, i64, Option<String>)>>;
}

#[async_trait::async_trait]
pub trait ReviewInboxStore: Send + Sync {
    /// Queues a verified delivery; `false` if this delivery id was seen before.
    async fn github_enqueue(
        &self,
        delivery_id: &str,
        event: &str,
        pull: Option<u64>,
        now_ms: i64,
    ) -> anyhow::Result<bool>;

    /// The oldest unapplied deliveries.
    async fn github_pending(&self, limit: i64) -> anyhow::Result<Vec<InboxRow>>;

    async fn github_processed(&self, seq: i64, outcome: &str, now_ms: i64) -> anyhow::Result<()>;

    /// Forgets applied deliveries older than `before_ms` (GitHub redelivers for a few days).
    async fn github_prune(&self, before_ms: i64) -> anyhow::Result<u64>;

    /// The request whose review is pull request `number`.
    async fn request_by_review(&self, reference: &str) -> anyhow::Result<Option<RequestRow>>;

    /// Requests still waiting for a decision on their review.
    async fn pending_reviews(&self) -> anyhow::Result<Vec<RequestRow>>;

    /// Withdraws the recorded approvals of `reviewer` (or of everyone) on a pending request:
    /// they stop counting, and an `approval_withdrawn` event says why. Returns how many.
    async fn withdraw_approvals(
        &self,
        id: &RequestId,
        reviewer: Option<&str>,
        why: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<u64, TransitionError>;

    /// `pending_review → cancelled` (the review was closed by a person, not countersign).
    async fn cancel(
        &self,
        id: &RequestId,
        actor: &str,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), TransitionError>;

    /// Shows the request's current decision on its review again (e.g. a closed pull request
    /// of a decided request was reopened).
    async fn republish(&self, id: &RequestId) -> anyhow::Result<()>;
}

#[async_trait::async_trait]
pub trait LedgerStore: Send + Sync {
    /// Entries after `seq`, in order, at most `limit`.
    async fn ledger_after(&self, seq: i64, limit: i64) -> anyhow::Result<Vec<Sealed>>;

    /// The hash of entry `seq`, if the database has it.
    async fn ledger_hash(&self, seq: i64) -> anyhow::Result<Option<String>>;

    /// The newest entry's `seq` (0 when the ledger is empty).
    async fn ledger_last_seq(&self) -> anyhow::Result<i64>;

    /// Every entry of one request, in order (the status timeline and tests).
    async fn ledger_of(&self, request_id: &str) -> anyhow::Result<Vec<Sealed>>;

    /// Records a signed submission the policy refused: its signature (so a replay records
    /// nothing) and an `intake_refused` entry. Returns false for a replay.
    async fn record_intake_refusal(
        &self,
        id: &crate::request::RequestId,
        agent: &str,
        signature: &str,
        signature_expires_at: i64,
        at: i64,
        fields: Map<String, Value>,
    ) -> anyhow::Result<bool>;
}

#[async_trait::async_trait]
pub trait NotifyStore: Send + Sync {
    /// Outbox rows not yet routed, oldest first.
    async fn notify_unrouted(&self, limit: i64) -> anyhow::Result<Vec<OutboxRow>>;

    /// Creates the deliveries of an outbox row (one per destination) and marks it routed.
    async fn notify_route(
        &self,
        row: &OutboxRow,
        targets: &[String],
        now_ms: i64,
    ) -> anyhow::Result<()>;

    /// Deliveries whose time has come, oldest first, each only once every earlier delivery of
    /// the same request to the same destination is settled (the announcement before updates).
    async fn notify_due(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<DeliveryRow>>;

    /// Records that an attempt is about to send (durably, before it does): after a crash the
    /// delivery is known to be in doubt.
    async fn notify_sending(&self, d: &DeliveryRow, now_ms: i64) -> anyhow::Result<()>;

    /// The delivery is settled: `delivered`, `failed` (given up) or `skipped` (nothing to send).
    async fn notify_settled(
        &self,
        d: &DeliveryRow,
        state: &str,
        message_ref: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    /// The attempt failed; try again at `next_attempt_at`. `error` must hold no secret.
    async fn notify_retry(
        &self,
        d: &DeliveryRow,
        next_attempt_at: i64,
        error: &str,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    async fn notify_thread(&self, request_id: &str, target: &str)
    -> anyhow::Result<Option<Thread>>;

    async fn notify_set_thread(
        &self,
        request_id: &str,
        target: &str,
        thread: &Thread,
    ) -> anyhow::Result<()>;

    /// Forgets settled deliveries (and fully settled events) last touched before `before_ms`.
    async fn notify_prune(&self, before_ms: i64) -> anyhow::Result<()>;

    /// Deliveries waiting, and given up, for readiness and metrics.
    async fn notify_counts(&self) -> anyhow::Result<(i64, i64)>;
}

#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// Records an issued token and its ledger entry in one transaction.
    async fn record_credential(&self, c: &NewCredential<'_>) -> anyhow::Result<()>;

    /// Records a GitHub installation token countersign minted for a request (narrowed to one
    /// repository and `permissions`): a `credential_issued` ledger entry with
    /// `kind = "github_installation_token"`, the token's id (countersign's, a ULID), repository,
    /// permissions and expiry. Never the token. GitHub tokens are not introspectable here, so
    /// there is no `credentials` row.
    async fn record_github_credential(&self, c: &NewGitHubCredential<'_>) -> anyhow::Result<()>;

    /// The recorded token `jti`, if any.
    async fn credential(&self, jti: &str) -> anyhow::Result<Option<CredentialRow>>;

    /// Marks the token used, once: true only for the call that did it (and only while it is
    /// unexpired). Writes a `credential_used` ledger entry in the same transaction.
    async fn consume_credential(&self, jti: &str, now_ms: i64) -> anyhow::Result<bool>;
}

/// Everything a store provides.
pub trait Storage:
    RequestStore + ExecutionStore + ReviewInboxStore + LedgerStore + NotifyStore + CredentialStore
{
}

impl<T> Storage for T where
    T: RequestStore
        + ExecutionStore
        + ReviewInboxStore
        + LedgerStore
        + NotifyStore
        + CredentialStore
{
}
