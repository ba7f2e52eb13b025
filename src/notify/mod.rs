//! Slack and Microsoft Teams notifications. Events people are told about (a review opened, an
//! approval counted, the decision) are queued in the database in the transaction of the event
//! (`store::notify`); the notifier job (`crate::jobs::notify`) routes each to the configured destinations and delivers
//! it with retries: exponential backoff, `429` + `Retry-After` honoured, given up after
//! `max_attempts` with an error in logs and metrics. Delivery never blocks a decision.
//! Messages are fitted to each platform's limits after escaping (`limits`); a destination that
//! still refuses a message's content gets a minimal one (id, agent, action, risk, link) instead,
//! so nothing an agent writes can keep its request, or its updates, out of a channel.
//!
//! On a Slack bot destination the announcement is updated in place as the request moves on and
//! later events go in its thread; every message carries its delivery id as Slack metadata, so an
//! attempt interrupted between Slack's posting and countersign recording it is found again
//! instead of posted twice. Webhook destinations cannot be read back: an interrupted attempt
//! is sent again (at least once).

pub mod config;
pub mod limits;
pub mod message;
pub mod send;

pub use config::{NotifyConfig, NotifyFile, Target, TargetKind};
pub use send::SendError;

use std::sync::atomic::AtomicU64;

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct NotifyStatus {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    /// Messages refused by their destination and replaced by the minimal one.
    pub minimal: AtomicU64,
}
