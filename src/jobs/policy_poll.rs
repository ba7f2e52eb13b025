//! The policy poll: follows the base branch, so a merged policy change is in force within
//! [`POLICY_POLL`].

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the base branch is checked for policy changes.
pub const POLICY_POLL: Duration = Duration::from_secs(1);

/// Re-reads the policy when the base branch moves.
pub struct PolicyPoll {
    engine: Arc<Engine>,
}

impl PolicyPoll {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Follows the base branch: a merged policy change is in force within [`POLICY_POLL`].
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        while !*shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(POLICY_POLL) => {}
                _ = shutdown.changed() => {}
            }
            if let Err(e) = engine.refresh_policy().await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not check the base branch for policy changes"
                );
            }
        }
    }
}
