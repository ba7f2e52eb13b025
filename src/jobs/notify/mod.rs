//! The notifier: routes each queued event to the configured Slack and Teams destinations and
//! delivers it with retries (see `crate::notify` for what is promised).

mod context;

use crate::engine::Engine;
use crate::notify::message::{self, Context, Templates};
use crate::notify::send::{self, SlackBot};
use crate::notify::{NotifyConfig, NotifyStatus, SendError, Target, TargetKind, limits};
use crate::store::notify::{DeliveryRow, OutboxRow, Thread};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// How often the notifier looks for work when idle.
const POLL: Duration = Duration::from_millis(200);
/// The longest wait between attempts (also caps `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Events older than this when first routed (queued while no destination was configured, or
/// while countersign was down for long) are not announced.
const STALE: Duration = Duration::from_secs(24 * 3600);
/// Settled deliveries and their events are kept this long.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Notifier {
    engine: Arc<Engine>,
    config: NotifyConfig,
    http: reqwest::Client,
    templates: Mutex<Templates>,
    status: Arc<NotifyStatus>,
}

/// What one attempt achieved.
enum Outcome {
    /// Delivered; the Slack message it posted, if any.
    Delivered(Option<String>),
    /// Nothing to send to this destination.
    Skipped(&'static str),
}

impl Notifier {
    pub fn new(engine: Arc<Engine>, config: NotifyConfig) -> Notifier {
        Notifier {
            engine,
            config,
            http: send::client(),
            templates: Mutex::new(Templates::builtin()),
            status: Arc::default(),
        }
    }

    pub fn status(&self) -> Arc<NotifyStatus> {
        self.status.clone()
    }

    /// Runs until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let worked = match self.pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "notifier pass failed");
                    0
                }
            };
            if worked == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Routes new events and makes every attempt that is due; returns how many.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let store = self.engine.store();
        let now = self.engine.clock().now_ms();
        let unrouted = store.notify_unrouted(100).await?;
        for row in &unrouted {
            let targets = if now - row.at > crate::time::duration_ms(STALE) {
                vec![]
            } else {
                self.route(row).await?
            };
            store.notify_route(row, &targets, now).await?;
        }
        if unrouted.is_empty() && rand::random_range(0..1000) == 0 {
            store
                .notify_prune(now - crate::time::duration_ms(KEEP))
                .await?;
        }
        let due = store.notify_due(self.engine.clock().now_ms(), 50).await?;
        if !due.is_empty() {
            // Read once per pass: the base branch's templates serve every delivery in it.
            let templates = self.templates().await;
            for d in &due {
                self.deliver(d, &templates).await?;
            }
        }
        Ok(unrouted.len() + due.len())
    }

    /// The destinations an event goes to: those whose sections, risks and environments match
    /// the request; progress (an approval counted) only where it can go in a thread.
    async fn route(&self, row: &OutboxRow) -> anyhow::Result<Vec<String>> {
        let Some(id) = crate::request::RequestId::parse(&row.request_id) else {
            return Ok(vec![]);
        };
        let Some(request) = self.engine.store().get_request(&id).await? else {
            return Ok(vec![]);
        };
        let eval = request.evaluation()?;
        let risk = eval.as_ref().map_or("", |e| e.risk.as_str());
        let sections: Vec<String> = eval
            .iter()
            .flat_map(|e| e.requirements.iter())
            .filter(|r| !r.optional)
            .map(|r| r.section.to_string())
            .collect();
        Ok(self
            .config
            .targets
            .iter()
            .filter(|t| {
                let r = &t.route;
                (r.sections.is_empty() || r.sections.iter().any(|s| sections.contains(s)))
                    && (r.risks.is_empty() || r.risks.iter().any(|x| x == risk))
                    && (r.environments.is_empty() || r.environments.contains(&request.environment))
            })
            .filter(|t| {
                row.event != "approval_recorded" || matches!(t.kind, TargetKind::SlackBot { .. })
            })
            .map(|t| t.name.clone())
            .collect())
    }

    async fn deliver(&self, d: &DeliveryRow, templates: &Templates) -> anyhow::Result<()> {
        let store = self.engine.store();
        let now = self.engine.clock().now_ms();
        let Some(target) = self.config.targets.iter().find(|t| t.name == d.target) else {
            let why = "destination no longer configured";
            return store
                .notify_settled(d, "skipped", None, Some(why), now)
                .await;
        };
        let result = self.attempt(target, d, templates).await;
        let now = self.engine.clock().now_ms();
        let attempts = d.attempts + 1;
        let fields = (d.request_id.as_str(), d.event.as_str(), d.target.as_str());
        match result {
            Ok(Outcome::Delivered(message)) => {
                self.status.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    request.id = fields.0,
                    notify.event = fields.1,
                    notify.destination = fields.2,
                    attempts,
                    "notification delivered"
                );
                store
                    .notify_settled(d, "delivered", message.as_deref(), None, now)
                    .await
            }
            Ok(Outcome::Skipped(why)) => {
                store
                    .notify_settled(d, "skipped", None, Some(why), now)
                    .await
            }
            Err(e) => {
                let error = e.to_string();
                let give_up = matches!(e, SendError::Permanent(_) | SendError::Refused(_))
                    || attempts >= i64::from(self.config.max_attempts);
                if give_up {
                    self.status.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(request.id = fields.0, notify.event = fields.1, notify.destination = fields.2, attempts, error = %error, "notification given up");
                    return store
                        .notify_settled(d, "failed", None, Some(&error), now)
                        .await;
                }
                self.status.retried.fetch_add(1, Ordering::Relaxed);
                let wait = match e {
                    SendError::RateLimited(wait) => wait.min(MAX_BACKOFF),
                    _ => backoff(attempts),
                };
                tracing::warn!(request.id = fields.0, notify.event = fields.1, notify.destination = fields.2, attempts, error = %error, retry_in_ms = wait.as_millis() as u64, "notification attempt failed");
                store
                    .notify_retry(d, now + crate::time::duration_ms(wait), &error, now)
                    .await
            }
        }
    }

    /// One attempt; the attempt is counted (and the delivery marked in doubt) before anything
    /// is sent. `d` is the row as it was before: `d.in_flight` says whether an earlier attempt
    /// was interrupted.
    async fn attempt(
        &self,
        target: &Target,
        d: &DeliveryRow,
        templates: &Templates,
    ) -> Result<Outcome, SendError> {
        let local = |e: anyhow::Error| SendError::Transient(format!("{e:#}"));
        let store = self.engine.store();
        store
            .notify_sending(d, self.engine.clock().now_ms())
            .await
            .map_err(local)?;
        let ctx = self.context(target, d).await.map_err(local)?;
        if ctx.review_url.is_empty() {
            // Expired before its review opened: nothing to look at, nobody to ask.
            return Ok(Outcome::Skipped("the request has no review to link to"));
        }
        match &target.kind {
            TargetKind::SlackWebhook { url } => {
                let (rich, minimal) = (templates.slack(&ctx), message::minimal_slack(&ctx));
                self.rich_or_minimal(d, rich, minimal, |m| async move {
                    send::slack_webhook(&self.http, url, &m).await
                })
                .await?;
                Ok(Outcome::Delivered(None))
            }
            TargetKind::TeamsWebhook { url } => {
                let (rich, minimal) = (templates.teams(&ctx), message::minimal_teams(&ctx));
                self.rich_or_minimal(d, rich, minimal, |m| async move {
                    send::teams_webhook(&self.http, url, &m).await
                })
                .await?;
                Ok(Outcome::Delivered(None))
            }
            TargetKind::SlackBot {
                token,
                channel,
                api_base,
            } => {
                let bot = SlackBot {
                    http: &self.http,
                    api_base,
                    token,
                    channel,
                };
                self.slack_bot(&bot, d, &ctx, templates).await
            }
        }
    }

    /// Sends `rich`; if the destination refuses its content, sends `minimal` instead (logged and
    /// counted), so the announcement and its updates still reach the channel.
    async fn rich_or_minimal<T, F, Fut>(
        &self,
        d: &DeliveryRow,
        rich: serde_json::Value,
        minimal: serde_json::Value,
        send: F,
    ) -> Result<T, SendError>
    where
        F: Fn(serde_json::Value) -> Fut,
        Fut: std::future::Future<Output = Result<T, SendError>>,
    {
        match send(rich).await {
            Err(SendError::Refused(why)) => {
                tracing::warn!(request.id = %d.request_id, notify.event = %d.event, notify.destination = %d.target, error = %why, "destination refused the message; sending the minimal one");
                let sent = send(minimal).await?;
                self.status.minimal.fetch_add(1, Ordering::Relaxed);
                Ok(sent)
            }
            other => other,
        }
    }

    /// Announces, updates in place and replies in the thread on a Slack bot destination.
    async fn slack_bot(
        &self,
        bot: &SlackBot<'_>,
        d: &DeliveryRow,
        ctx: &Context,
        templates: &Templates,
    ) -> Result<Outcome, SendError> {
        let local = |e: anyhow::Error| SendError::Transient(format!("{e:#}"));
        let store = self.engine.store();
        let delivery = format!("{}:{}", d.outbox_id, d.target);
        let delivery = delivery.as_str();
        let thread = store
            .notify_thread(&d.request_id, &d.target)
            .await
            .map_err(local)?;
        let remember = |ts: String| async move {
            let thread = Thread {
                channel: bot.channel.to_owned(),
                ts: ts.clone(),
            };
            store
                .notify_set_thread(&d.request_id, &d.target, &thread)
                .await
                .map_err(local)?;
            Ok::<_, SendError>(Outcome::Delivered(Some(ts)))
        };
        let Some(thread) = thread else {
            if d.event == "approval_recorded" {
                return Ok(Outcome::Skipped("the request was never announced here"));
            }
            // The announcement (or, if it never made it, the current state as a new message).
            if d.in_flight != 0
                && let Some(ts) = bot.find(delivery, None).await?
            {
                return remember(ts).await;
            }
            let (rich, minimal) = (templates.slack(ctx), message::minimal_slack(ctx));
            let ts = self
                .rich_or_minimal(d, rich, minimal, |m| async move {
                    bot.post(&m, None, delivery).await
                })
                .await?;
            return remember(ts).await;
        };
        if d.event == "review_opened" {
            return Ok(Outcome::Delivered(Some(thread.ts)));
        }
        if d.in_flight != 0
            && let Some(ts) = bot.find(delivery, Some(&thread.ts)).await?
        {
            return Ok(Outcome::Delivered(Some(ts)));
        }
        let root = thread.ts.as_str();
        if d.event != "approval_recorded" {
            let (rich, minimal) = (templates.slack(ctx), message::minimal_slack(ctx));
            self.rich_or_minimal(
                d,
                rich,
                minimal,
                |m| async move { bot.update(root, &m).await },
            )
            .await?;
        }
        let mut reply = serde_json::json!({ "text": message::reply_text(ctx) });
        limits::fit_slack(&mut reply);
        let minimal = serde_json::json!({ "text": message::minimal_slack(ctx)["text"] });
        let ts = self
            .rich_or_minimal(d, reply, minimal, |m| async move {
                bot.post(&m, Some(root), delivery).await
            })
            .await?;
        Ok(Outcome::Delivered(Some(ts)))
    }

    async fn context(&self, target: &Target, d: &DeliveryRow) -> anyhow::Result<Context> {
        let id = crate::request::RequestId::parse(&d.request_id)
            .ok_or_else(|| anyhow::anyhow!("stored request id is invalid"))?;
        let row = self
            .engine
            .store()
            .get_request(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("request not found"))?;
        let mut ctx = context::context(&self.engine, &row, d).await?;
        if matches!(ctx.risk.as_str(), "high" | "critical") && d.event == "review_opened" {
            ctx.mention = target.mention.clone();
        }
        // A person merged the change past countersign: loud, whatever the risk.
        if d.event == "denied"
            && ctx
                .decision
                .as_deref()
                .is_some_and(|t| t.contains(crate::engine::MERGED_WITHOUT_APPROVAL))
        {
            ctx.headline = "Merged without approval".to_owned();
            ctx.mention = target.mention.clone();
        }
        Ok(ctx)
    }

    /// The base branch's templates, re-read when the branch moves.
    async fn templates(&self) -> Templates {
        let forge = self.engine.forge();
        let mut cached = self.templates.lock().await;
        let Ok(commit) = forge.base_commit().await else {
            return cached.clone();
        };
        if cached.commit.as_deref() != Some(commit.as_str()) {
            match forge.read_files(&commit, "templates").await {
                Ok(files) => *cached = Templates::from_files(&commit, &files),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read templates from the base branch; using the last ones")
                }
            }
        }
        cached.clone()
    }
}

/// 1 s, 2 s, 4 s, … capped at 5 minutes, with ±20 % jitter.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let base = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
    base.mul_f64(rand::random_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < Duration::from_millis(1300));
        assert!(backoff(3) >= Duration::from_millis(3200));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
