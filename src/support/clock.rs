//! Time as the engine and its jobs see it: instants of the request lifecycle (received,
//! expires, decided, retried) come from a [`Clock`], so tests can drive expiry and retries
//! with a [`ManualClock`] instead of waiting. Signatures and credentials that others check
//! against their own clocks use the system time directly (`crate::time`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::time::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at the system's current time.
    pub fn starting_now() -> Self {
        Self(AtomicI64::new(crate::time::now_ms()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(crate::time::duration_ms(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let start = clock.now_ms();
        assert_eq!(clock.now_ms(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now_ms(), start + 90_000);
        assert!((SystemClock.now_ms() - start).abs() < 60_000);
    }
}
