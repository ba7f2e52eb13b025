//! Durable state in SQLite (sqlx, WAL): requests, their events, reviews, seen signatures and
//! idempotency keys. Every state change is one transaction together with its event row.
//! Writes go through a single connection (SQLite has one writer anyway), reads through a pool.

use crate::mask::Masker;
use crate::request::State;
use crate::request::{AgentId, Digest, Kind, RequestId};
use anyhow::Context as _;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod backend;
mod columns;
pub mod credentials;
mod dir_lock;
pub mod execution;
pub mod github;
mod intake;
mod ledger;
pub mod migrate;
pub mod notify;
mod postgres;
mod writer;

pub use backend::{
    CredentialStore, ExecutionStore, LedgerStore, NotifyStore, RequestStore, ReviewInboxStore,
    Storage,
};
pub use dir_lock::DataDirLock;
pub use postgres::{Fence, FenceError, Held, Hint, Hints, PgStore, default_replica_name};

/// SQLite durability: `normal` survives any process crash (kill -9); `full` also survives power
/// loss at the cost of an fsync per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

pub use crate::support::secrets::create_private_dir;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The store the engine and the jobs share: any backend, behind [`Storage`].
#[derive(Clone)]
pub struct Store(Arc<dyn Storage>);

impl Store {
    /// The embedded default: SQLite at `path` (see [`SqliteStore::open`]).
    pub async fn open(
        path: &Path,
        synchronous: Synchronous,
        masker: Arc<Masker>,
    ) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(
            SqliteStore::open(path, synchronous, masker).await?,
        )))
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Self(Arc::new(store))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// The SQLite store (the embedded default).
#[derive(Clone)]
pub struct SqliteStore {
    /// The database file.
    path: Arc<Path>,
    writer: SqlitePool,
    reader: SqlitePool,
    intake: tokio::sync::mpsc::Sender<intake::Job>,
    /// Runs over every ledger entry before it is hashed.
    masker: Arc<Masker>,
}

/// A stored request.
#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: String,
    pub agent_id: String,
    pub kind: Kind,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub digest: String,
    pub submission: String,
    pub state: State,
    pub review_ref: Option<String>,
    pub review_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub forge_attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub policy_commit: Option<String>,
    pub evaluation: Option<String>,
    /// When the raw submission was replaced by its masked copy.
    pub payload_erased_at: Option<i64>,
    /// The commit countersign pushed for the review.
    pub review_head: Option<String>,
}

impl RequestRow {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn request_id(&self) -> RequestId {
        RequestId::parse(&self.id).expect("stored ids are valid")
    }

    /// The policy evaluation stored at intake (`None` for requests stored before the policy
    /// engine, which can therefore never be approved).
    pub fn evaluation(&self) -> anyhow::Result<Option<crate::policy::Evaluation>> {
        self.evaluation
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("stored policy evaluation is unreadable")
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct ReviewRow {
    pub reviewer: String,
    /// `approve`, `deny`, `withdrawn` (an approval dismissed or made stale), or `duplicate`
    /// (a second standing approval recorded before migration 0008; never counted).
    pub decision: String,
    pub reason: Option<String>,
    pub digest: String,
    pub at: i64,
    /// Teams (`org/team`) the reviewer was in when the decision was recorded (JSON array).
    pub teams: Option<String>,
}

impl ReviewRow {
    pub fn teams(&self) -> Vec<String> {
        self.teams
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
}

/// The distinct reviewers whose approvals of `digest` are recorded, in order.
pub fn approvers(reviews: &[ReviewRow], digest: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in reviews
        .iter()
        .filter(|r| r.decision == "approve" && r.digest == digest)
    {
        if !names.contains(&r.reviewer) {
            names.push(r.reviewer.clone());
        }
    }
    names
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub request_id: String,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub actor: String,
    pub detail: String,
    pub at: i64,
}

/// A request about to be stored, with everything intake checked.
pub struct NewRequest {
    pub id: RequestId,
    pub agent: AgentId,
    pub kind: &'static str,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub digest: Digest,
    /// The validated submission as JSON, sealed by the vault (never stored in plain text).
    pub submission_json: String,
    pub now_ms: i64,
    pub expires_at: i64,
    pub signature: String,
    pub signature_expires_at: i64,
    /// `(Idempotency-Key, fingerprint)`.
    pub idempotency: Option<(String, Digest)>,
    /// The response body to replay for an idempotent retry (JSON text).
    pub response: String,
    /// The `received` event's detail (masked justification, payload summary, …).
    pub received: serde_json::Map<String, Value>,
    /// The `policy_decision` event's detail (policy commit, outcome, requirements).
    pub policy_decision: serde_json::Map<String, Value>,
    pub policy_commit: String,
    /// The policy evaluation as JSON.
    pub evaluation_json: String,
}

/// What happened to a submission at the store.
#[derive(Debug)]
pub enum InsertOutcome {
    Inserted,
    /// The same idempotency key and content were seen before: the original response.
    Repeat(Value),
    /// The idempotency key was used before for different content.
    KeyReused,
    /// This exact signature was already used.
    Replay,
}

/// A state change that lost a race: the request was no longer in the expected state.
#[derive(Debug, thiserror::Error)]
#[error("request is {actual}, not {expected}")]
pub struct StateConflict {
    pub expected: State,
    pub actual: State,
}

/// A review to record with its transition.
pub struct NewReview<'a> {
    pub reviewer: &'a str,
    /// Teams the reviewer is in (resolved by the forge), if any.
    pub teams: &'a [String],
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub digest: &'a str,
    /// Extra context for the event (e.g. which requirements the approval counted for).
    pub detail: Option<&'a Value>,
}

/// The tables `table_counts` reports (`countersign` status output and tests).
const COUNTED_TABLES: [&str; 6] = [
    "requests",
    "events",
    "reviews",
    "seen_signatures",
    "idempotency_keys",
    "ledger",
];

/// The detail of a review's event: the decision, and with the approval that decides the
/// request, every approver of its digest.
fn review_detail(review: &NewReview<'_>, to: Option<State>, all: &[ReviewRow]) -> Value {
    let mut detail = serde_json::json!({
        "decision": review.decision,
        "reason": review.reason,
        "digest": review.digest,
        "counted": true,
    });
    if let Some(Value::Object(extra)) = review.detail {
        for (k, v) in extra {
            detail[k] = v.clone();
        }
    }
    if to == Some(State::Approved) {
        let mut approvers: Vec<&str> = Vec::new();
        for r in all {
            if r.decision == "approve"
                && r.digest == review.digest
                && !approvers.contains(&r.reviewer.as_str())
            {
                approvers.push(&r.reviewer);
            }
        }
        detail["approvers"] = serde_json::json!(approvers);
    }
    detail
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `e` says the database cannot be reached right now (no connection within the pool's
/// wait, a connection lost, the server shutting down or starting): the caller may retry
/// later, and nothing was stored.
pub fn unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .any(|e| match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            // PostgreSQL: connection exceptions (class 08), shutting down or starting (57P01-03).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        })
}

#[async_trait::async_trait]
impl RequestStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .context("cannot read the database")?;
        writer::probe(&self.writer)
            .await
            .context("cannot write the database")?;
        Ok(())
    }

    async fn insert_request(&self, new: NewRequest) -> anyhow::Result<InsertOutcome> {
        // Masked here, on the caller's task, so the single intake writer only numbers and
        // chains the entries.
        let ledger = intake::ledger_fields(&self.masker, &new);
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.intake
            .send(intake::Job { new, ledger, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the intake writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the intake writer dropped a request"))?
    }

    async fn get_request(&self, id: &RequestId) -> anyhow::Result<Option<RequestRow>> {
        Ok(sqlx::query_as("SELECT * FROM requests WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn reviews(&self, id: &RequestId) -> anyhow::Result<Vec<ReviewRow>> {
        Ok(sqlx::query_as(
            "SELECT reviewer, decision, reason, digest, at, teams FROM reviews WHERE request_id = ? ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await?)
    }

    async fn events(&self, id: &RequestId) -> anyhow::Result<Vec<EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM events WHERE request_id = ? ORDER BY seq")
                .bind(id.as_str())
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn due_for_review(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'received' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn due_for_publication(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE decision_published = 0 AND review_ref IS NOT NULL \
             AND state NOT IN ('received', 'pending_review') AND next_attempt_at <= ? \
             ORDER BY updated_at LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn review_opened(
        &self,
        id: &RequestId,
        review: &crate::forge::ReviewRef,
        now_ms: i64,
        auto_approved_by: Option<&str>,
    ) -> Result<State, TransitionError> {
        let (review_ref, review_url) = (review.reference.as_str(), review.url.as_str());
        let to = if auto_approved_by.is_some() {
            State::Approved
        } else {
            State::PendingReview
        };
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE requests SET state = ?, review_ref = ?, review_url = ?, review_head = ?, \
             updated_at = ?, last_error = NULL, next_attempt_at = 0, forge_attempts = 0 \
             WHERE id = ? AND state = 'received'",
        )
        .bind(to.as_str())
        .bind(review_ref)
        .bind(review_url)
        .bind(&review.head)
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(conflict(&mut tx, id, State::Received).await);
        }
        let detail = serde_json::json!({ "review_ref": review_ref, "review_url": review_url });
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "review_opened",
            Some(State::Received),
            Some(State::PendingReview),
            "countersign",
            &detail,
            now_ms,
        )
        .await?;
        if let Some(commit) = auto_approved_by {
            let detail = serde_json::json!({ "decision": "auto_approve", "policy_commit": commit });
            insert_event(
                &mut tx,
                &self.masker,
                id.as_str(),
                "approved",
                Some(State::PendingReview),
                Some(State::Approved),
                "policy",
                &detail,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(to)
    }

    async fn attach_review(
        &self,
        id: &RequestId,
        review_ref: &str,
        review_url: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE requests SET review_ref = ?, review_url = ? WHERE id = ? AND review_ref IS NULL")
            .bind(review_ref)
            .bind(review_url)
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn forge_failed(
        &self,
        id: &RequestId,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE requests SET forge_attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?")
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn decision_published(&self, id: &RequestId, state: State) -> anyhow::Result<()> {
        sqlx::query("UPDATE requests SET decision_published = 1, forge_attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = ? AND state = ?")
            .bind(id.as_str())
            .bind(state.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn record_review(
        &self,
        id: &RequestId,
        review: NewReview<'_>,
        now_ms: i64,
        decide: &(dyn for<'r> Fn(&'r [ReviewRow]) -> Option<State> + Send + Sync),
    ) -> Result<State, TransitionError> {
        let mut tx = self.writer.begin().await?;
        let current: Option<(State, i64)> =
            sqlx::query_as("SELECT state, expires_at FROM requests WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => return Err(TransitionError::NotFound),
            Some((actual, expires_at))
                if actual != State::PendingReview || expires_at <= now_ms =>
            {
                return Err(StateConflict {
                    expected: State::PendingReview,
                    actual,
                }
                .into());
            }
            Some(_) => {}
        }
        // "Already approved" is decided here, inside the write transaction, so concurrent
        // approvals from one reviewer are judged against each other; the unique index on
        // standing approvals backs it up.
        if review.decision == "approve" {
            let standing: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM reviews WHERE request_id = ? AND reviewer = ? AND digest = ? AND decision = 'approve'",
            )
            .bind(id.as_str())
            .bind(review.reviewer)
            .bind(review.digest)
            .fetch_optional(&mut *tx)
            .await?;
            if standing.is_some() {
                return Err(TransitionError::AlreadyApproved);
            }
        }
        let teams = (!review.teams.is_empty()).then(|| serde_json::json!(review.teams).to_string());
        sqlx::query("INSERT INTO reviews (request_id, reviewer, decision, reason, digest, at, teams) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(review.reviewer)
            .bind(review.decision)
            .bind(review.reason)
            .bind(review.digest)
            .bind(now_ms)
            .bind(teams)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    TransitionError::AlreadyApproved
                } else {
                    e.into()
                }
            })?;
        let all: Vec<ReviewRow> = sqlx::query_as(
            "SELECT reviewer, decision, reason, digest, at, teams FROM reviews WHERE request_id = ? ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let to = decide(&all);
        let detail = review_detail(&review, to, &all);
        let kind = match to {
            Some(to) => {
                sqlx::query("UPDATE requests SET state = ?, updated_at = ?, next_attempt_at = 0 WHERE id = ?")
                    .bind(to.as_str())
                    .bind(now_ms)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                to.as_str()
            }
            None => "approval_recorded",
        };
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            kind,
            Some(State::PendingReview),
            Some(to.unwrap_or(State::PendingReview)),
            review.reviewer,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(to.unwrap_or(State::PendingReview))
    }

    async fn record_refusal(
        &self,
        id: &RequestId,
        reviewer: &str,
        why: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.writer.begin().await?;
        let detail = serde_json::json!({ "decision": "approve", "counted": false, "refused": why });
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "approval_refused",
            None,
            None,
            reviewer,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expire_due(&self, now_ms: i64) -> anyhow::Result<Vec<RequestId>> {
        let mut tx = self.writer.begin().await?;
        let due: Vec<(String, State)> = sqlx::query_as(
            "SELECT id, state FROM requests WHERE state IN ('received', 'pending_review') AND expires_at <= ? LIMIT 500",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        for (id, from) in &due {
            sqlx::query("UPDATE requests SET state = 'expired', updated_at = ?, next_attempt_at = 0 WHERE id = ?")
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let detail = serde_json::json!({ "reason": "no decision before the request expired" });
            insert_event(
                &mut tx,
                &self.masker,
                id,
                "expired",
                Some(*from),
                Some(State::Expired),
                "countersign",
                &detail,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(due
            .iter()
            .filter_map(|(id, _)| RequestId::parse(id))
            .collect())
    }

    async fn prune_signatures(&self, now_ms: i64) -> anyhow::Result<u64> {
        let r = sqlx::query("DELETE FROM seen_signatures WHERE expires_at < ?")
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }

    async fn prune_idempotency_keys(&self, before_ms: i64) -> anyhow::Result<u64> {
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }

    async fn table_counts(&self) -> anyhow::Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for table in COUNTED_TABLES {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.reader)
                .await?;
            out.push((table, n));
        }
        Ok(out)
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies migrations. `masker` runs over every
    /// ledger entry.
    pub async fn open(
        path: &Path,
        synchronous: Synchronous,
        masker: Arc<Masker>,
    ) -> anyhow::Result<Self> {
        let sync = match synchronous {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Statement journals in memory: a temporary file per transaction costs an open()
            // and an unlink().
            .pragma("temp_store", "memory");
        let health = Arc::new(writer::Health::default());
        let writer = match writer::pool_options(&health)
            .connect_with(options.clone())
            .await
        {
            Ok(writer) => writer,
            Err(e) if is_damage(&e) => return Err(damaged(path, &[e.to_string()])),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open database {}", path.display()));
            }
        };
        check_integrity(&writer, path).await?;
        MIGRATOR
            .run(&writer)
            .await
            .context("database migration failed")?;
        let backfilled = ledger::backfill(&writer, &masker)
            .await
            .context("cannot write the ledger entries of earlier events")?;
        if backfilled > 0 {
            tracing::info!(
                entries = backfilled,
                "ledger entries written for events recorded before the ledger existed"
            );
        }
        let reader = writer::reader_pool_options(&health)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("cannot open database {} for reading", path.display()))?;
        let intake = intake::spawn_writer(writer.clone());
        Ok(Self {
            path: path.into(),
            writer,
            reader,
            intake,
            masker,
        })
    }
}

/// SQLite's `quick_check` (every page and record is well formed; index contents are not
/// compared with their tables, which keeps it to one pass over the file), reporting at most a
/// few problems. A damaged database is refused at start rather than served until every
/// background pass fails on it.
async fn check_integrity(writer: &SqlitePool, path: &Path) -> anyhow::Result<()> {
    let problems: Vec<String> = match sqlx::query_as::<_, (String,)>("PRAGMA quick_check(5)")
        .fetch_all(writer)
        .await
    {
        Ok(rows) if rows.len() == 1 && rows[0].0 == "ok" => return Ok(()),
        Ok(rows) => rows.into_iter().map(|(line,)| line).collect(),
        Err(e) if is_damage(&e) => vec![e.to_string()],
        Err(e) => {
            return Err(e).with_context(|| format!("cannot check the database {}", path.display()));
        }
    };
    Err(damaged(path, &problems))
}

/// SQLite found the file malformed (`SQLITE_CORRUPT`) or not a database (`SQLITE_NOTADB`).
fn is_damage(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 11 | 26))
}

fn damaged(path: &Path, problems: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "the database {} is damaged (SQLite reports: {}); countersign will not run on it. Stop \
         countersign, restore the database file from a backup (together with its -wal file, if \
         there is one) and start again",
        path.display(),
        problems.join("; ")
    )
}

/// A transition that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Conflict(#[from] StateConflict),
    #[error("request not found")]
    NotFound,
    /// The reviewer already has a standing approval of this digest (see `record_review`).
    #[error("this reviewer has already approved this request")]
    AlreadyApproved,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TransitionError {
    fn from(e: sqlx::Error) -> Self {
        TransitionError::Store(e.into())
    }
}

async fn conflict(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &RequestId,
    expected: State,
) -> TransitionError {
    let row: Result<Option<(State,)>, _> =
        sqlx::query_as("SELECT state FROM requests WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await;
    match row {
        Ok(Some((actual,))) => StateConflict { expected, actual }.into(),
        Ok(None) => TransitionError::NotFound,
        Err(e) => e.into(),
    }
}

/// Records an event and its ledger entry (the event's detail, plus the states it moved
/// between, is the entry's fields).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    masker: &Masker,
    request_id: &str,
    kind: &str,
    from: Option<State>,
    to: Option<State>,
    actor: &str,
    detail: &Value,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO events (request_id, kind, from_state, to_state, actor, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(request_id)
        .bind(kind)
        .bind(from.map(State::as_str))
        .bind(to.map(State::as_str))
        .bind(actor)
        .bind(detail.to_string())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    notify::enqueue(tx, request_id, kind, actor, at).await?;
    let fields = ledger::event_fields(detail, from, to);
    ledger::append(tx, masker, request_id, kind, actor, at, fields).await
}

#[cfg(test)]
mod unavailable_tests {
    use super::unavailable;

    #[test]
    fn an_unreachable_database_is_told_apart_from_other_failures_whatever_the_context() {
        let lost = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("storing the request");
        assert!(unavailable(&lost));
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(unavailable(&anyhow::Error::new(sqlx::Error::Io(cut))));
        let missing = anyhow::Error::new(sqlx::Error::RowNotFound).context("reading");
        assert!(!unavailable(&missing));
        assert!(!unavailable(&anyhow::anyhow!(
            "the policy does not compile"
        )));
    }
}
