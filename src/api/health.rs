//! Probes: `GET /healthz` (the process answers) and `GET /readyz` (the database, the forge's
//! repository and the audit ledger work; `503` with the same document when not).

use serde::{Deserialize, Serialize};

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: Liveness,
}

/// Always `ok`: answering is the whole check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Ok,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// `ready` (200) when every check is ok, `not_ready` (503) otherwise.
    pub status: ReadyStatus,
    pub database: Check,
    /// The forge's repository (the local git repository, or GitHub).
    pub repository: Check,
    pub ledger: LedgerReadiness,
    /// Which replica answered, and its part in the work.
    pub replica: ReplicaReadiness,
}

/// The replica that answered `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReadiness {
    /// `--replica-name` (host name and process id by default).
    pub name: String,
    pub role: Role,
    /// The epoch of the `leader` lease it holds (PostgreSQL, leader only); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<i64>,
}

/// A replica's part: the leader runs the work that has one writer (the ledger, the review
/// inbox, review sync, expiry); followers serve the API and share executions, callbacks and
/// notifications. With SQLite the one process leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// One dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    /// Why not; absent when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How far the ledger writer got, and whether it is failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReadiness {
    /// False when writing or (with a remote) pushing fails.
    pub ok: bool,
    /// The last event committed to the ledger branch.
    pub committed_seq: i64,
    /// Events recorded but not committed yet.
    pub pending: i64,
    /// The writer's last failure; absent when it works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Publishing to the remote; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReadiness>,
}

/// Publishing the ledger branch to the remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReadiness {
    pub ok: bool,
    /// Where it is published (no credentials).
    pub remote: String,
    /// The last event on the published branch; `null` until known.
    pub pushed_seq: Option<i64>,
    /// Committed events not published yet; `null` until known.
    pub lag_entries: Option<i64>,
    /// Local commits the published branch lacks; `null` until known.
    pub pending_commits: Option<i64>,
    /// `null` before the first successful push.
    pub last_pushed_at: Option<String>,
    /// The last push failure; absent when pushing works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The published branch has history countersign's does not; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
}

/// A published ledger branch that went its own way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub remote_commit: String,
    /// The newest commit of countersign's history the published branch still holds.
    pub base_commit: Option<String>,
    /// How many commits the published branch has that countersign does not.
    pub foreign_commits: Option<usize>,
}
