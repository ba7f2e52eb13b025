//! The hints listener (PostgreSQL): turns other replicas' wake-up hints into local wake-ups:
//! an accepted request wakes review sync, a lease given up wakes a waiting follower. Jobs poll
//! as well, so while the listener is down (reconnecting) work is only slower.

use crate::engine::Engine;
use crate::store::{Hint, PgStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How long the listener waits before connecting again after an error.
const RETRY: Duration = Duration::from_secs(1);

pub struct HintsListener {
    pub store: PgStore,
    pub engine: Arc<Engine>,
    /// Signalled on [`Hint::Lease`].
    pub lease_released: Arc<Notify>,
}

impl HintsListener {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let mut hints = match self.store.hints().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot listen for other replicas' hints; polling only");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    hint = hints.next() => match hint {
                        Ok(Hint::Review) => self.engine.review_wake().notify_one(),
                        Ok(Hint::Lease) => self.lease_released.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "lost the hints connection; reconnecting");
                            break;
                        }
                    },
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
}
