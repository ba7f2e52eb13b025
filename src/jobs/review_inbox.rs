//! The review inbox (with a forge where people decide, such as GitHub): applies the forge's
//! events (reviews, comments, pushes, merges) in the order they arrived and reconciles pending
//! reviews with the forge every `reconcile_interval`, backing off while the forge fails.

use crate::engine::Engine;
use crate::engine::{Retry, inbox_backoff as backoff};
use crate::time;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const IDLE_POLL: Duration = Duration::from_secs(1);
/// Applied deliveries are kept this long (for duplicate detection).
const INBOX_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// The forge's inbox and reconciliation loop.
pub struct ReviewInbox {
    engine: Arc<Engine>,
}

impl ReviewInbox {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Applies queued deliveries in order and reconciles periodically, until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        let Some(host) = engine.review_host().cloned() else {
            return;
        };
        let host = host.as_ref();
        if let Err(e) = host.prepare().await {
            tracing::warn!(error = %e, "cannot read the forge's repository and installation ids yet; deliveries are checked when applied");
        }
        let mut next_reconcile = Instant::now();
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let mut delay = IDLE_POLL;
            match engine.apply_inbox(host).await {
                Ok(()) => failures = 0,
                Err(Retry::Later(e)) => {
                    failures += 1;
                    delay = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not apply a forge delivery; will retry");
                }
            }
            if failures == 0 && Instant::now() >= next_reconcile {
                match engine.reconcile(host).await {
                    Ok(n) => {
                        tracing::info!(requests = n, "reconciled pending reviews with the forge");
                        next_reconcile = Instant::now() + host.reconcile_interval();
                    }
                    Err(Retry::Later(e)) => {
                        tracing::warn!(error = %e, "reconciliation with the forge failed; will retry");
                        next_reconcile = Instant::now() + backoff(2);
                    }
                }
                let _ = engine
                    .store()
                    .github_prune(engine.clock().now_ms() - time::duration_ms(INBOX_RETENTION))
                    .await;
            }
            tokio::select! {
                _ = engine.inbox_wake().notified(), if failures == 0 => {}
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
