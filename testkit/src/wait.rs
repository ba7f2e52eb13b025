//! Waiting on a condition instead of sleeping: [`wait_until`] polls a check until it holds and,
//! on timeout, fails the test naming what it waited for. Every wait in a test scenario goes
//! through it (or through a helper built on it, such as `Harness::settle`).

use std::time::{Duration, Instant};

/// What a check answers: `true`/`false`, or `Some(value)` once there is something to return.
pub trait Check {
    type Value;
    fn done(self) -> Option<Self::Value>;
}

impl Check for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Polls `check` (first at once, then every few milliseconds, backing off to 50 ms) until it
/// answers `true` or `Some(value)`, and returns that value; panics with "timed out after
/// {timeout} waiting for {what}" when `timeout` passes first.
pub async fn wait_until<C: Check>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    match poll(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// [`wait_until`] without the panic: `None` when `timeout` passes first (for a caller that
/// says more about what it saw).
pub async fn poll<C: Check>(
    timeout: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Option<C::Value> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = check().await.done() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
