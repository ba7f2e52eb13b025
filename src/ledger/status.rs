//! What the ledger writer and pusher have done, for readiness and metrics (the writer itself
//! is a job: `crate::jobs::ledger_writer`).

use super::push::PushStatus;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Mutex, OnceLock};

/// What the writer has done, for readiness and metrics.
#[derive(Debug, Default)]
pub struct LedgerStatus {
    /// The last `seq` on the ledger branch.
    pub committed_seq: AtomicI64,
    pub commits: AtomicU64,
    pub entries: AtomicU64,
    pub failures: AtomicU64,
    /// Why the last pass failed (cleared by a successful one).
    pub error: Mutex<Option<String>>,
    /// Signalled after each commit (the pusher waits on it).
    pub committed: tokio::sync::Notify,
    /// The pusher's status, when the branch is published to a remote.
    pub push: OnceLock<PushStatus>,
}

impl LedgerStatus {
    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("status lock").clone()
    }

    pub(crate) fn set_error(&self, e: Option<String>) {
        *self.error.lock().expect("status lock") = e;
    }
}
