//! Callbacks: tells agents the outcome of their requests at their `callback_url`, signed, with
//! retries; only public addresses unless `[execution] callback_hosts` says otherwise.

use crate::engine::Engine;
use crate::execute::destination;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: i64 = 16;
/// How often the job looks for due callbacks when nothing woke it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The callback delivery loop.
pub struct Callbacks {
    engine: Arc<Engine>,
}

impl Callbacks {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        let mut builder = reqwest::Client::builder()
            .timeout(engine.execution().callback_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if engine.execution().callback_hosts.is_none() {
            // Any host, but only where it resolves to public addresses, checked when
            // connecting; no proxy, which would connect on our behalf unchecked.
            builder = builder
                .dns_resolver(Arc::new(destination::PublicOnly))
                .no_proxy();
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the callback HTTP client; callbacks are not delivered");
                return;
            }
        };
        while !*shutdown.borrow() {
            let due = match engine
                .store()
                .due_callbacks(engine.clock().now_ms(), BATCH)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "could not list due callbacks");
                    vec![]
                }
            };
            let n = due.len();
            let mut sends = tokio::task::JoinSet::new();
            for c in due {
                let engine = engine.clone();
                let client = client.clone();
                sends.spawn(async move { engine.deliver(&client, c).await });
            }
            while sends.join_next().await.is_some() {}
            if n == 0 {
                tokio::select! {
                    _ = engine.callback_wake().notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
