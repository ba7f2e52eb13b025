//! Review sync: opens a review on the forge for every received request and shows every decision
//! there, with retries (the engine does each step; this job decides when).

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the job looks for work when nothing woke it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Opens due reviews and publishes due decisions, woken by intake and decisions.
pub struct ReviewSync {
    engine: Arc<Engine>,
}

impl ReviewSync {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        while !*shutdown.borrow() {
            let worked = match engine.forge_pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "forge worker pass failed");
                    0
                }
            };
            if worked == 0 {
                tokio::select! {
                    _ = engine.review_wake().notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
