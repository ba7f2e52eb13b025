//! The REST layer: every GitHub API call goes through [`Rest::send`], which
//! - bounds each attempt with the request timeout;
//! - respects primary and secondary rate limits (`retry-after`, `x-ratelimit-remaining` /
//!   `x-ratelimit-reset`, 403/429 bodies that mention a rate limit): it waits and retries, and
//!   while GitHub asks for a pause every call waits (or, when the pause is longer than
//!   [`RetryPolicy::max_inline_wait`], fails as transient so the engine retries the work later —
//!   nothing is dropped);
//! - retries 5xx answers and network errors with exponential backoff and jitter, up to
//!   [`RetryPolicy::max_attempts`], then reports [`ForgeError::Transient`];
//! - turns other 4xx answers into [`ForgeError::Permanent`] naming the status and the route
//!   template, never request data;
//! - counts every attempt in the Prometheus registry by route template and outcome, and in the
//!   per-operation counter ([`count_calls`]).

use crate::forge::ForgeError;
use crate::telemetry::Metrics;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::auth::Token;

/// Bodies larger than this are refused (GitHub's answers to our calls are far smaller).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Rate-limit pauses waited out inside one call, at most.
const MAX_RATE_LIMIT_WAITS: u32 = 5;

/// How patient the REST layer is. The defaults suit GitHub; tests shorten them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call for 5xx answers and network errors.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Wait after a secondary rate limit that names no time ("at least one minute", says
    /// GitHub), doubled when it repeats.
    pub secondary_wait: Duration,
    /// Longer pauses are not waited out inside a call: it fails as transient and the engine
    /// retries the work later.
    pub max_inline_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            secondary_wait: Duration::from_secs(60),
            max_inline_wait: Duration::from_secs(120),
        }
    }
}

/// One API call. `route` is the path template (`/repos/{owner}/{repo}/pulls`) used in
/// metrics and errors; `path` the real path and query.
pub struct Call<'a> {
    pub method: Method,
    pub route: &'static str,
    pub path: String,
    pub body: Option<serde_json::Value>,
    pub token: &'a Token,
    pub accept: &'static str,
    pub if_none_match: Option<String>,
    /// Sent at most once: a 5xx answer, a timeout or a network error is not retried (a call
    /// that starts something, like a workflow dispatch, may have done so). Rate limits are
    /// still waited out: GitHub did nothing then.
    pub once: bool,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, route: &'static str, path: String, token: &'a Token) -> Self {
        Self {
            method,
            route,
            path,
            body: None,
            token,
            accept: "application/vnd.github+json",
            if_none_match: None,
            once: false,
        }
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// `METHOD /template`: the label and the words used in errors.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.route)
    }
}

/// An answer that was not retried: 2xx, 3xx or a 4xx that is not a rate limit.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// 2xx/304 passes; anything else becomes a permanent error naming status and route.
    pub fn ok(self, label: &str) -> Result<Reply, ForgeError> {
        if self.status.is_success() || self.status == StatusCode::NOT_MODIFIED {
            Ok(self)
        } else {
            Err(client_error(self.status, label))
        }
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, label: &str) -> Result<T, ForgeError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ForgeError::Transient(format!(
                "unreadable GitHub answer to {label} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }
}

/// A 4xx answer as an error: the status, the route and a hint; never GitHub's message, which
/// may quote what was sent.
pub fn client_error(status: StatusCode, label: &str) -> ForgeError {
    let hint = match status.as_u16() {
        401 => ": check github.app_id and github.private_key",
        403 => ": the GitHub App lacks a permission for this",
        404 => ": not found (is the GitHub App installed on the repository?)",
        409 => ": conflict",
        422 => ": GitHub refused the content",
        _ => "",
    };
    ForgeError::Permanent(format!("GitHub answered {status} to {label}{hint}"))
}

tokio::task_local! {
    static CALLS: Cell<u32>;
}

/// Runs `f`, returning how many REST attempts it made (retries included).
pub async fn count_calls<T>(f: impl Future<Output = T>) -> (T, u32) {
    CALLS
        .scope(Cell::new(0), async {
            let out = f.await;
            (out, CALLS.with(Cell::get))
        })
        .await
}

pub struct Rest {
    http: reqwest::Client,
    api_url: String,
    timeout: Duration,
    policy: RetryPolicy,
    metrics: Option<Arc<Metrics>>,
    /// GitHub asked every call to wait until then.
    paused_until: Mutex<Option<Instant>>,
}

/// What to do after one attempt.
#[derive(Debug, PartialEq)]
enum Next {
    Done,
    /// 5xx or network error: back off and try again (counts as an attempt).
    Retry,
    /// Rate limited: pause every call this long.
    Pause(Duration),
}

impl Rest {
    pub fn new(
        api_url: &str,
        timeout: Duration,
        policy: RetryPolicy,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            timeout,
            policy,
            metrics,
            paused_until: Mutex::new(None),
        })
    }

    /// Sends the call, retrying as the module describes. A returned [`Reply`] is final: 2xx,
    /// 3xx or a 4xx that is not a rate limit (see [`Reply::ok`]).
    pub async fn send(&self, call: &Call<'_>) -> Result<Reply, ForgeError> {
        let label = call.label();
        // Failed attempts (5xx, network); rate-limited ones are counted apart.
        let mut attempts = 0;
        let mut rate_waits = 0;
        loop {
            self.wait_for_pause(&label).await?;
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
            let result = tokio::time::timeout(self.timeout, self.attempt(call)).await;
            let (outcome, next, reply) = match result {
                Err(_) => ("timeout", Next::Retry, None),
                Ok(Err(e)) => {
                    tracing::debug!(github.route = %label, error = %without_url(&e), "GitHub call failed");
                    ("network_error", Next::Retry, None)
                }
                Ok(Ok(reply)) => {
                    let next = decide(
                        reply.status,
                        &reply.headers,
                        &reply.body,
                        unix_now(),
                        &self.policy,
                        rate_waits,
                    );
                    let outcome = match (&next, reply.status.as_u16()) {
                        (Next::Pause(_), _) => "rate_limited",
                        (_, 500..) => "server_error",
                        (_, 400..) => "client_error",
                        _ => "ok",
                    };
                    (outcome, next, Some(reply))
                }
            };
            self.count(&label, outcome);
            if let Some(reply) = &reply {
                self.note_remaining(&reply.headers);
            }
            match next {
                Next::Done => return Ok(reply.expect("a decided reply")),
                Next::Pause(wait) => {
                    rate_waits += 1;
                    tracing::warn!(github.route = %label, wait_ms = wait.as_millis() as u64, "GitHub rate limit; pausing API calls");
                    self.pause(wait);
                    if rate_waits > MAX_RATE_LIMIT_WAITS {
                        return Err(ForgeError::Transient(format!(
                            "GitHub kept rate limiting {label}"
                        )));
                    }
                }
                Next::Retry => {
                    attempts += 1;
                    if call.once || attempts >= self.policy.max_attempts {
                        let what = match reply {
                            Some(r) => format!("GitHub answered {}", r.status),
                            None => format!("GitHub unreachable ({outcome})"),
                        };
                        return Err(ForgeError::Transient(format!(
                            "{what} to {label} after {attempts} attempts"
                        )));
                    }
                    let delay = backoff(attempts, &self.policy, rand::random_range(0.0..1.0));
                    tracing::debug!(github.route = %label, attempts, retry_in_ms = delay.as_millis() as u64, outcome, "retrying GitHub call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Reply, reqwest::Error> {
        let url = format!("{}{}", self.api_url, call.path);
        let mut auth = HeaderValue::try_from(format!("Bearer {}", call.token.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, call.accept)
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(etag) = &call.if_none_match {
            request = request.header(IF_NONE_MATCH, etag.as_str());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let mut response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Waits while GitHub asked for a pause, or fails when the pause is too long to wait out.
    async fn wait_for_pause(&self, label: &str) -> Result<(), ForgeError> {
        let until = *self.paused_until.lock().expect("pause lock");
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.policy.max_inline_wait {
            return Err(ForgeError::Transient(format!(
                "GitHub rate limit: API calls paused for {}s more ({label} not sent)",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// A successful answer that used up the primary limit pauses the next calls until reset.
    fn note_remaining(&self, headers: &HeaderMap) {
        if header_u64(headers, "x-ratelimit-remaining") == Some(0)
            && let Some(reset) = header_u64(headers, "x-ratelimit-reset")
        {
            self.pause(Duration::from_secs(reset.saturating_sub(unix_now()) + 1));
        }
    }

    fn count(&self, label: &str, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.count_github_call(label, outcome);
        }
    }
}

/// reqwest's errors name the URL; only the kind is logged.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_redirect() {
        "redirect"
    } else {
        "request"
    };
    kind.to_owned()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The decision for one answer. `rate_waits` pauses were already taken during this call.
fn decide(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: u64,
    policy: &RetryPolicy,
    rate_waits: u32,
) -> Next {
    if let Some(wait) = rate_limit_wait(status, headers, body, now_unix, policy, rate_waits) {
        return Next::Pause(wait);
    }
    if status.is_server_error() {
        Next::Retry
    } else {
        Next::Done
    }
}

/// How long GitHub asks us to wait, if this answer is a rate limit (see GitHub's "Rate limits
/// for the REST API"): `retry-after` first; `x-ratelimit-remaining: 0` waits until
/// `x-ratelimit-reset`; a 403/429 whose body mentions a rate limit waits
/// [`RetryPolicy::secondary_wait`], doubling when it repeats.
pub(super) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: u64,
    policy: &RetryPolicy,
    rate_waits: u32,
) -> Option<Duration> {
    if !matches!(status.as_u16(), 403 | 429) {
        return None;
    }
    if let Some(secs) = header_u64(headers, "retry-after") {
        return Some(Duration::from_secs(secs.max(1)));
    }
    if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = header_u64(headers, "x-ratelimit-reset").unwrap_or(now_unix + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now_unix) + 1));
    }
    let mentions_limit = String::from_utf8_lossy(&body[..body.len().min(4096)])
        .to_ascii_lowercase()
        .contains("rate limit");
    if status == StatusCode::TOO_MANY_REQUESTS || mentions_limit {
        return Some(policy.secondary_wait * 2u32.saturating_pow(rate_waits.min(4)));
    }
    None
}

/// Exponential backoff with equal jitter: half the doubled delay plus up to the other half.
/// `attempts` ≥ 1 failed attempts so far; `jitter` in [0, 1).
pub(super) fn backoff(attempts: u32, policy: &RetryPolicy, jitter: f64) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(16)))
        .min(policy.max_delay);
    exp / 2 + (exp / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
