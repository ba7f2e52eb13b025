//! Logs and metrics. Logs are `tracing` events with structured fields (`request.id`,
//! `agent.id`, `duration_ms`) in text or JSON; metrics are Prometheus counters and histograms
//! served at `/metrics`. Neither ever carries a secret or a payload.

use crate::support::secrets::{ConfigError, bad};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(bad("log_format", "must be \"text\" or \"json\"")),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` refines `level` when set.
pub fn init_tracing(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .map_err(|e| anyhow::anyhow!("invalid configuration: `log_level`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
    // A second initialisation (tests, the demo inside a process that already logs) is harmless.
    let _ = result;
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitHubCallLabels {
    /// `METHOD /path/{template}`.
    pub route: String,
    /// ok, client_error, server_error, rate_limited, network_error, timeout.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// The metrics countersign exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub intake: Family<OutcomeLabels, Counter>,
    pub reviews: Family<OutcomeLabels, Counter>,
    ledger_committed_seq: Gauge,
    ledger_pending: Gauge,
    ledger_commits: Counter,
    ledger_entries: Counter,
    ledger_failures: Counter,
    ledger_pushes: Family<OutcomeLabels, Counter>,
    ledger_push_pending: Gauge,
    ledger_pushed_seq: Gauge,
    /// 1 on the leading replica, 0 on the others.
    pub leader: Gauge,
    /// The epoch of the `leader` lease this replica holds (0: a follower, or SQLite).
    pub lease_epoch: Gauge,
    notify: Family<OutcomeLabels, Counter>,
    notify_pending: Gauge,
    requests: Family<StateLabels, Gauge>,
    callbacks: Family<StateLabels, Gauge>,
    github_calls: Family<GitHubCallLabels, Counter>,
    github_review_open_calls: Histogram,
    github_webhooks_ignored: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("countersign");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        let intake = Family::<OutcomeLabels, Counter>::default();
        let reviews = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        registry.register(
            "intake_requests",
            "Change request submissions by outcome",
            intake.clone(),
        );
        registry.register("reviews", "Review submissions by outcome", reviews.clone());
        let metrics = Self {
            registry,
            http_requests,
            http_duration,
            intake,
            reviews,
            ledger_committed_seq: Gauge::default(),
            ledger_pending: Gauge::default(),
            ledger_commits: Counter::default(),
            ledger_entries: Counter::default(),
            ledger_failures: Counter::default(),
            ledger_pushes: Family::default(),
            ledger_push_pending: Gauge::default(),
            ledger_pushed_seq: Gauge::default(),
            leader: Gauge::default(),
            lease_epoch: Gauge::default(),
            notify: Family::default(),
            notify_pending: Gauge::default(),
            requests: Family::default(),
            callbacks: Family::default(),
            github_calls: Family::default(),
            github_review_open_calls: Histogram::new([2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0]),
            github_webhooks_ignored: Family::default(),
        };
        let mut registry = metrics.registry;
        registry.register(
            "ledger_committed_seq",
            "The last ledger entry on the ledger branch",
            metrics.ledger_committed_seq.clone(),
        );
        registry.register(
            "ledger_pending_entries",
            "Ledger entries in the database not yet on the ledger branch",
            metrics.ledger_pending.clone(),
        );
        registry.register(
            "ledger_commits",
            "Commits made to the ledger branch",
            metrics.ledger_commits.clone(),
        );
        registry.register(
            "ledger_entries",
            "Entries committed to the ledger branch",
            metrics.ledger_entries.clone(),
        );
        registry.register(
            "ledger_failures",
            "Failed attempts to write the ledger branch",
            metrics.ledger_failures.clone(),
        );
        registry.register(
            "ledger_pushes",
            "Attempts to publish the ledger branch to the forge, by outcome (ok, up_to_date, \
             error, timeout, rate_limited, diverged)",
            metrics.ledger_pushes.clone(),
        );
        registry.register(
            "ledger_push_pending_commits",
            "Ledger commits not yet on the forge's ledger branch (-1: not known yet)",
            metrics.ledger_push_pending.clone(),
        );
        registry.register(
            "ledger_pushed_seq",
            "The last ledger entry on the forge's ledger branch (-1: not known yet)",
            metrics.ledger_pushed_seq.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica leads (runs the work that has one writer), 0 otherwise",
            metrics.leader.clone(),
        );
        registry.register(
            "lease_epoch",
            "The epoch of the leader lease this replica holds (PostgreSQL; 0 on followers and SQLite)",
            metrics.lease_epoch.clone(),
        );
        registry.register(
            "notifications",
            "Notification attempts by outcome: delivered, retried, failed (given up), minimal (the destination refused the message; a minimal one was sent)",
            metrics.notify.clone(),
        );
        registry.register(
            "notifications_pending",
            "Notification deliveries waiting to be sent",
            metrics.notify_pending.clone(),
        );
        registry.register(
            "requests",
            "Requests by state (executing, succeeded, failed, outcome_unknown, ...)",
            metrics.requests.clone(),
        );
        registry.register(
            "callbacks",
            "Outcome callbacks to agents by state (pending, delivered, failed)",
            metrics.callbacks.clone(),
        );
        registry.register(
            "github_api_calls",
            "GitHub REST API calls (every attempt) by route template and outcome",
            metrics.github_calls.clone(),
        );
        registry.register(
            "github_review_open_calls",
            "GitHub REST API calls made to open one review",
            metrics.github_review_open_calls.clone(),
        );
        registry.register(
            "github_webhooks_ignored",
            "GitHub deliveries about another repository or installation, acknowledged and ignored",
            metrics.github_webhooks_ignored.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Sets the per-state gauges from the store's counts.
    pub fn observe_states(&self, requests: &[(String, i64)], callbacks: &[(String, i64)]) {
        for (family, counts) in [(&self.requests, requests), (&self.callbacks, callbacks)] {
            for (state, n) in counts {
                family
                    .get_or_create(&StateLabels {
                        state: state.clone(),
                    })
                    .set(*n);
            }
        }
    }

    /// One GitHub REST attempt.
    pub fn count_github_call(&self, route: &str, outcome: &str) {
        self.github_calls
            .get_or_create(&GitHubCallLabels {
                route: route.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A GitHub delivery ignored because it is not about countersign's repository
    /// (`foreign_repository`, `foreign_installation`).
    pub fn count_github_webhook_ignored(&self, reason: &str) {
        self.github_webhooks_ignored
            .get_or_create(&OutcomeLabels {
                outcome: reason.to_owned(),
            })
            .inc();
    }

    /// The REST calls one review opening took.
    pub fn observe_github_review_open(&self, calls: u32) {
        self.github_review_open_calls.observe(f64::from(calls));
    }

    /// Brings the notification metrics up to date with the notifier's counters.
    pub fn observe_notify(
        &self,
        status: &crate::notify::NotifyStatus,
        (pending, _failed): (i64, i64),
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        self.notify_pending.set(pending);
        for (outcome, total) in [
            ("delivered", status.delivered.load(Relaxed)),
            ("retried", status.retried.load(Relaxed)),
            ("failed", status.failed.load(Relaxed)),
            ("minimal", status.minimal.load(Relaxed)),
        ] {
            let counter = self.notify.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Brings the ledger metrics up to date with the writer's status.
    pub fn observe_ledger(&self, status: &crate::ledger::LedgerStatus, db_last_seq: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let committed = status.committed_seq.load(Relaxed);
        self.ledger_committed_seq.set(committed);
        self.ledger_pending.set((db_last_seq - committed).max(0));
        for (counter, total) in [
            (&self.ledger_commits, status.commits.load(Relaxed)),
            (&self.ledger_entries, status.entries.load(Relaxed)),
            (&self.ledger_failures, status.failures.load(Relaxed)),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        if let Some(push) = status.push.get() {
            for (outcome, total) in push.attempts() {
                let counter = self.ledger_pushes.get_or_create(&OutcomeLabels {
                    outcome: outcome.to_owned(),
                });
                counter.inc_by(total.saturating_sub(counter.get()));
            }
            self.ledger_push_pending
                .set(push.pending_commits.load(Relaxed));
            self.ledger_pushed_seq.set(push.pushed_seq.load(Relaxed));
        }
    }

    pub fn count_intake(&self, outcome: &str) {
        self.intake
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn count_review(&self, outcome: &str) {
        self.reviews
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
