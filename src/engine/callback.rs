//! Telling the agent: the outcome of its request is POSTed to its `callback_url`, signed with
//! the agent's own HMAC scheme (`X-Countersign-Timestamp`, `X-Countersign-Signature` over
//! `v1:<ts>:POST:<path?query>:<body>` with the agent's first key), so the agent verifies it
//! exactly as countersign verifies the agent. Deliveries come from the `callbacks` outbox
//! (written with the outcome), are retried with exponential backoff and jitter, and given up
//! after `callback_max_attempts`. A 2xx answer is a delivery.
//!
//! Unless `[execution] callback_hosts` opts hosts in, a callback only goes to public addresses
//! (see [`crate::execute::destination`]): literal internal IPs are refused and names are
//! resolved through a resolver that drops internal addresses, on every delivery.

use super::Engine;
use crate::execute::destination;
use crate::request::signature::{self, HEADER_AGENT, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::store::execution::CallbackRow;
use crate::time;
use std::time::Duration;

const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How a delivery refused by policy (an internal destination) begins: given up at once.
const REFUSED: &str = "refused: ";
/// Names the request a callback is about.
pub const HEADER_REQUEST: &str = "X-Countersign-Request";

/// Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s … ≤ 5 min, plus up to 25 % jitter.
fn backoff(attempts: i64) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.clamp(0, 16)).min(MAX_BACKOFF);
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

impl Engine {
    /// Makes one delivery attempt of a due callback and records its result.
    pub(crate) async fn deliver(&self, client: &reqwest::Client, c: CallbackRow) {
        let attempt = c.attempts + 1;
        let result = self.send_callback(client, &c).await;
        let now = self.clock.now_ms();
        let (state, next, error) = match result {
            Ok(()) => ("delivered", now, None),
            // Refused by policy (an internal destination): retrying cannot change that.
            Err(e) if e.starts_with(REFUSED) => {
                tracing::error!(request.id = %c.request_id, attempts = attempt, error = %e, "callback to the agent refused: its destination is internal; opt the host in with [execution] callback_hosts");
                ("failed", now, Some(e))
            }
            Err(e) if attempt >= i64::from(self.execution.callback_max_attempts) => {
                tracing::error!(request.id = %c.request_id, attempts = attempt, error = %e, "callback to the agent given up");
                ("failed", now, Some(e))
            }
            Err(e) => {
                let delay = backoff(c.attempts);
                tracing::warn!(request.id = %c.request_id, attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "callback to the agent failed; will retry");
                ("pending", now + time::duration_ms(delay), Some(e))
            }
        };
        if state == "delivered" {
            tracing::info!(request.id = %c.request_id, attempt, "callback delivered to the agent");
        }
        if let Err(e) = self
            .store
            .callback_attempted(c.id, state, next, error.as_deref(), now)
            .await
        {
            tracing::error!(request.id = %c.request_id, error = %e, "could not record a callback attempt");
        }
    }

    /// One POST. The error text names what went wrong, never the body.
    async fn send_callback(&self, client: &reqwest::Client, c: &CallbackRow) -> Result<(), String> {
        let url =
            reqwest::Url::parse(&c.url).map_err(|_| "the callback URL is invalid".to_owned())?;
        // The allow-list may have changed since the request was accepted.
        match &self.execution.callback_hosts {
            Some(hosts) if !hosts.allows(&c.url) => {
                return Err("the callback host is no longer in execution.callback_hosts".to_owned());
            }
            Some(_) => {}
            None => {
                if let Some(why) = destination::literal_refusal(&url) {
                    return Err(format!("{REFUSED}{why}"));
                }
            }
        }
        let id = crate::request::RequestId::parse(&c.request_id).ok_or("bad request id")?;
        let row = self
            .store
            .get_request(&id)
            .await
            .map_err(|e| format!("cannot read the request: {e}"))?
            .ok_or("the request is gone")?;
        let agent = crate::request::AgentId::parse(&row.agent_id)
            .and_then(|a| self.agents.get(&a))
            .ok_or("the agent is no longer configured: nothing to sign with")?;
        let key = agent
            .keys
            .first()
            .ok_or("the agent has no key to sign with")?;
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let ts = time::now_secs();
        let sig = signature::sign(key, ts, "POST", &path, c.body.as_bytes());
        let answer = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_AGENT, agent.id.as_str())
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_REQUEST, &c.request_id)
            .body(c.body.clone())
            .send()
            .await
            .map_err(|e| {
                if let Some(internal) = destination::internal_only(&e) {
                    format!("{REFUSED}{internal}")
                } else if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the request failed".to_owned()
                }
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", status.as_u16()))
        }
    }
}
