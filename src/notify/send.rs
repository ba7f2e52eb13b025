//! Sending to Slack and Teams over HTTP (reqwest stays here): Slack incoming webhooks, Slack's
//! Web API with a bot token (`chat.postMessage`, `chat.update`, and `conversations.history` /
//! `conversations.replies` to find a message an interrupted attempt already posted), and Teams
//! Workflows webhooks. Answers become [`SendError`]s a caller can act on: a rate limit with
//! its delay, a transient failure worth retrying, a refusal of this message's content (another
//! message may pass), or a permanent failure. Errors never carry a URL
//! (webhook URLs are secrets), a token or message content.

use serde_json::{Value, json};
use std::time::Duration;

/// Every call is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Assumed when a 429 comes without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The Slack metadata event type countersign's messages carry.
pub const METADATA_EVENT: &str = "countersign_notification";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Duration),
    #[error("{0}")]
    Transient(String),
    /// The destination refused this message's content (Slack's `invalid_blocks`,
    /// `msg_too_long`, a webhook's `400`/`413`): retrying it cannot help, a simpler one may pass.
    #[error("message refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Permanent(String),
}

/// Slack Web API errors about the message itself.
const SLACK_REFUSED: &[&str] = &[
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "invalid_attachments",
    "too_many_attachments",
    "markdown_text_conflict",
];

/// A webhook's `400 Bad Request` or `413 Payload Too Large` is about the message.
fn refused_by_webhook(e: SendError) -> SendError {
    match e {
        SendError::Permanent(status)
            if status.starts_with("HTTP 400") || status.starts_with("HTTP 413") =>
        {
            SendError::Refused(status)
        }
        e => e,
    }
}

/// Slack Web API errors that retrying cannot fix.
const SLACK_PERMANENT: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "thread_not_found",
    "invalid_arguments",
    "invalid_metadata_format",
];

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with a timeout always builds")
}

fn network(e: reqwest::Error) -> SendError {
    // Without the URL: a webhook URL is a secret.
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        format!("request failed: {e}")
    };
    SendError::Transient(what)
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// Status-level classification shared by every endpoint; `Ok` for a 2xx response.
fn by_status(response: &reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.as_u16() == 429 {
        Err(SendError::RateLimited(retry_after(response)))
    } else if status.is_server_error() || status.as_u16() == 408 {
        Err(SendError::Transient(format!("HTTP {}", status.as_u16())))
    } else {
        Err(SendError::Permanent(format!("HTTP {}", status.as_u16())))
    }
}

/// A short, safe error code from an answer body (Slack's `invalid_payload`, …).
fn code_of(body: &str) -> String {
    body.chars()
        .take(64)
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .collect()
}

/// Posts to a Slack incoming webhook (`text`, `blocks`). Slack answers `ok`.
pub async fn slack_webhook(
    http: &reqwest::Client,
    url: &str,
    message: &Value,
) -> Result<(), SendError> {
    let response = http.post(url).json(message).send().await.map_err(network)?;
    match by_status(&response) {
        Ok(()) => Ok(()),
        Err(SendError::Permanent(status)) => {
            let body = response.text().await.unwrap_or_default();
            let e = SendError::Permanent(format!("{status} {}", code_of(&body)));
            Err(refused_by_webhook(e))
        }
        Err(e) => Err(e),
    }
}

/// Posts to a Teams (Workflows) incoming webhook.
pub async fn teams_webhook(
    http: &reqwest::Client,
    url: &str,
    message: &Value,
) -> Result<(), SendError> {
    let response = http.post(url).json(message).send().await.map_err(network)?;
    by_status(&response).map_err(refused_by_webhook)
}

enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, String)]),
}

/// Slack's Web API with a bot token.
pub struct SlackBot<'a> {
    pub http: &'a reqwest::Client,
    pub api_base: &'a str,
    pub token: &'a str,
    pub channel: &'a str,
}

impl SlackBot<'_> {
    /// Write methods take JSON; read methods (`conversations.*`) take form parameters.
    async fn call(&self, method: &str, body: Body<'_>) -> Result<Value, SendError> {
        let url = format!("{}/{method}", self.api_base);
        let request = self.http.post(url).bearer_auth(self.token);
        let request = match body {
            Body::Json(json) => request.json(json),
            Body::Form(form) => request.form(form),
        };
        let response = request.send().await.map_err(network)?;
        by_status(&response)?;
        let wait = retry_after(&response);
        let answer: Value = response
            .json()
            .await
            .map_err(|_| SendError::Transient(format!("{method}: unreadable answer")))?;
        if answer["ok"] == true {
            return Ok(answer);
        }
        let code = code_of(answer["error"].as_str().unwrap_or("unknown_error"));
        if code == "ratelimited" {
            Err(SendError::RateLimited(wait))
        } else if SLACK_REFUSED.contains(&code.as_str()) {
            Err(SendError::Refused(format!("{method}: {code}")))
        } else if SLACK_PERMANENT.contains(&code.as_str()) {
            Err(SendError::Permanent(format!("{method}: {code}")))
        } else {
            Err(SendError::Transient(format!("{method}: {code}")))
        }
    }

    /// Posts a message (in a thread with `thread_ts`) tagged with `delivery`; returns its ts.
    pub async fn post(
        &self,
        message: &Value,
        thread_ts: Option<&str>,
        delivery: &str,
    ) -> Result<String, SendError> {
        let mut body = message.clone();
        body["channel"] = json!(self.channel);
        body["unfurl_links"] = json!(false);
        body["metadata"] = json!({
            "event_type": METADATA_EVENT,
            "event_payload": { "delivery": delivery },
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let answer = self.call("chat.postMessage", Body::Json(&body)).await?;
        answer["ts"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SendError::Transient("chat.postMessage: no ts in the answer".into()))
    }

    /// Replaces the text and blocks of the message `ts`.
    pub async fn update(&self, ts: &str, message: &Value) -> Result<(), SendError> {
        let mut body = message.clone();
        body["channel"] = json!(self.channel);
        body["ts"] = json!(ts);
        self.call("chat.update", Body::Json(&body)).await.map(drop)
    }

    /// The ts of a message tagged with `delivery` among the newest 200 of the channel (or of
    /// the thread `thread_ts`): what an interrupted attempt may have posted moments ago. Slack's
    /// clock, not ours, dates messages, so no time window is assumed.
    pub async fn find(
        &self,
        delivery: &str,
        thread_ts: Option<&str>,
    ) -> Result<Option<String>, SendError> {
        let mut form = vec![
            ("channel", self.channel.to_owned()),
            ("include_all_metadata", "true".to_owned()),
            ("limit", "200".to_owned()),
        ];
        let method = match thread_ts {
            Some(ts) => {
                form.push(("ts", ts.to_owned()));
                "conversations.replies"
            }
            None => "conversations.history",
        };
        let answer = self.call(method, Body::Form(&form)).await?;
        let found = answer["messages"].as_array().and_then(|messages| {
            messages.iter().find(|m| {
                m["metadata"]["event_type"] == METADATA_EVENT
                    && m["metadata"]["event_payload"]["delivery"] == delivery
            })
        });
        Ok(found.and_then(|m| m["ts"].as_str()).map(str::to_owned))
    }
}
