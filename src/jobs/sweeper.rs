//! The sweeper: every `sweep_interval`, expires requests past their deadline, forgets old
//! signatures and idempotency keys, and erases raw payloads due for erasure.

use crate::engine::Engine;
use crate::time;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long an `Idempotency-Key` keeps returning the original answer.
pub const IDEMPOTENCY_KEY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Expiry and retention.
pub struct Sweeper {
    engine: Arc<Engine>,
}

impl Sweeper {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        while !*shutdown.borrow() {
            let now = engine.clock().now_ms();
            engine.expire_now(now).await;
            if let Err(e) = engine.store().prune_signatures(now).await {
                tracing::error!(error = %e, "pruning old signatures failed");
            }
            if let Err(e) = engine.erase_due(now).await {
                tracing::error!(error = format!("{e:#}"), "erasing raw payloads failed");
            }
            let keep_keys = time::duration_ms(IDEMPOTENCY_KEY_RETENTION);
            if let Err(e) = engine.store().prune_idempotency_keys(now - keep_keys).await {
                tracing::error!(error = %e, "pruning old idempotency keys failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(engine.sweep_interval()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
