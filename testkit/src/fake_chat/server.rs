//! The fake chat server's routes: the Slack Web API methods, the Slack and Teams incoming
//! webhooks, and failure injection in front of them all.

use super::shapes::*;
use super::{Failure, Message, Shared, State, WebhookPost, lock};
use axum::body::Bytes;
use axum::extract::{Path, State as Ax};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/{method}", any(slack_api))
        .route("/webhook/slack/{*id}", post(slack_webhook))
        .route("/webhook/teams/{*id}", post(teams_webhook))
        .with_state(state)
}

fn record(st: &Shared, route: &str, headers: &HeaderMap, body: &[u8]) {
    let mut s = lock(st);
    *s.calls.entry(route.to_owned()).or_default() += 1;
    s.bodies.push(String::from_utf8_lossy(body).into_owned());
    for (name, value) in headers {
        let line = format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        s.headers.push(line);
    }
}

async fn injected(st: &Shared, route: &str) -> Option<Response> {
    let failure = {
        let mut s = lock(st);
        let at = s
            .failures
            .iter()
            .position(|(r, _)| r.as_deref().is_none_or(|r| r == route))?;
        s.failures.remove(at)?.1
    };
    let slack = |status, code: &str| (status, Json(json!({ "ok": false, "error": code })));
    Some(match failure {
        Failure::Slow(pause) => {
            tokio::time::sleep(pause).await;
            return None;
        }
        Failure::RateLimited { retry_after_secs } => {
            let retry = [(header::RETRY_AFTER, retry_after_secs.to_string())];
            (retry, slack(StatusCode::TOO_MANY_REQUESTS, "ratelimited")).into_response()
        }
        Failure::ServerError => {
            slack(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response()
        }
        Failure::SlackError(code) if route == "webhook/slack" => {
            let status = match code {
                "no_service" | "channel_not_found" => StatusCode::NOT_FOUND,
                "channel_is_archived" => StatusCode::GONE,
                "action_prohibited" | "posting_to_general_channel_denied" | "invalid_token" => {
                    StatusCode::FORBIDDEN
                }
                _ => StatusCode::BAD_REQUEST,
            };
            (status, code).into_response()
        }
        Failure::SlackError(code) if route == "webhook/teams" => teams_error(code.to_owned()),
        Failure::SlackError(code) => slack(StatusCode::OK, code).into_response(),
    })
}

async fn slack_api(
    Ax(st): Ax<Shared>,
    Path(method): Path<String>,
    verb: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&st, &method, &headers, &body);
    if let Some(failed) = injected(&st, &method).await {
        return failed;
    }
    let json_only = matches!(method.as_str(), "chat.postMessage" | "chat.update");
    let params = api_params(&verb, &uri, &headers, &body, json_only);
    let (result, hold) = {
        let mut s = lock(&st);
        let result = auth(&s, &headers)
            .and(params)
            .and_then(|p| match method.as_str() {
                "chat.postMessage" => post_message(&mut s, &p),
                "chat.update" => update(&mut s, &p),
                "conversations.history" => history(&s, &p),
                "conversations.replies" => replies(&s, &p),
                _ => Err("unknown_method"),
            });
        let holds = result.is_ok() && method == "chat.postMessage";
        (result, if holds { s.holds.pop_front() } else { None })
    };
    if let Some(hold) = hold {
        hold.wait().await;
    }
    Json(result.unwrap_or_else(|code| json!({ "ok": false, "error": code }))).into_response()
}

fn post_message(s: &mut State, p: &Map<String, Value>) -> Result<Value, &'static str> {
    let channel = s.channel(p)?;
    let text = str_param(p, "text").ok_or("no_text")?.to_owned();
    check_text(&text)?;
    let blocks = check_blocks(p.get("blocks"))?;
    let metadata = check_metadata(p.get("metadata"))?;
    let thread_ts = match str_param(p, "thread_ts").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => {
            let target = &s.messages[s.find(&channel, t).ok_or("thread_not_found")?];
            Some(target.thread_ts.clone().unwrap_or_else(|| t.to_owned()))
        }
    };
    let ts = s.next_ts();
    let message = Message {
        ts: ts.clone(),
        channel: channel.clone(),
        text,
        blocks,
        metadata,
        thread_ts,
        versions: Vec::new(),
        updated: 0,
    };
    let answer =
        json!({ "ok": true, "channel": channel, "ts": ts, "message": message.to_api(true, 0) });
    s.messages.push(message);
    Ok(answer)
}

fn update(s: &mut State, p: &Map<String, Value>) -> Result<Value, &'static str> {
    let channel = s.channel(p)?;
    let at = str_param(p, "ts")
        .and_then(|ts| s.find(&channel, ts))
        .ok_or("message_not_found")?;
    let text = str_param(p, "text").ok_or("no_text")?.to_owned();
    check_text(&text)?;
    let blocks = check_blocks(p.get("blocks"))?;
    let metadata = check_metadata(p.get("metadata"))?;
    let m = &mut s.messages[at];
    m.versions.push(m.content());
    m.text = text;
    if let Some(blocks) = blocks {
        // Like Slack: no `blocks` keeps the old ones, an empty list removes them.
        m.blocks = blocks
            .as_array()
            .is_some_and(|l| !l.is_empty())
            .then_some(blocks);
    }
    if metadata.is_some() {
        m.metadata = metadata;
    }
    m.updated += 1;
    Ok(json!({ "ok": true, "channel": channel, "ts": m.ts, "text": m.text }))
}

fn history(s: &State, p: &Map<String, Value>) -> Result<Value, &'static str> {
    let channel = s.channel(p)?;
    let with_metadata = truthy(p, "include_all_metadata");
    let oldest = param_string(p, "oldest").map(|t| ts_key(&t));
    let latest = param_string(p, "latest").map(|t| ts_key(&t));
    let limit = param_string(p, "limit").and_then(|l| l.parse::<usize>().ok());
    let limit = limit.filter(|l| *l > 0).unwrap_or(100).min(999);
    let in_range = |m: &&Message| {
        let key = ts_key(&m.ts);
        oldest.is_none_or(|o| key > o) && latest.is_none_or(|l| key < l)
    };
    let matching: Vec<Value> = (s.messages.iter().rev())
        .filter(|m| m.channel == channel && m.thread_ts.is_none())
        .filter(in_range)
        .map(|m| m.to_api(with_metadata, s.reply_count(m)))
        .collect();
    let has_more = matching.len() > limit;
    let messages = &matching[..matching.len().min(limit)];
    Ok(json!({ "ok": true, "messages": messages, "has_more": has_more }))
}

fn replies(s: &State, p: &Map<String, Value>) -> Result<Value, &'static str> {
    let channel = s.channel(p)?;
    let ts = str_param(p, "ts").ok_or("thread_not_found")?;
    let at = s.find(&channel, ts).ok_or("thread_not_found")?;
    let root = s.messages[at]
        .thread_ts
        .clone()
        .unwrap_or_else(|| ts.to_owned());
    let with_metadata = truthy(p, "include_all_metadata");
    let in_thread = |m: &&Message| {
        m.channel == channel && (m.ts == root || m.thread_ts.as_deref() == Some(&root))
    };
    let messages: Vec<Value> = (s.messages.iter().filter(in_thread))
        .map(|m| m.to_api(with_metadata, s.reply_count(m)))
        .collect();
    Ok(json!({ "ok": true, "messages": messages, "has_more": false }))
}

async fn slack_webhook(
    Ax(st): Ax<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "webhook/slack";
    record(&st, ROUTE, &headers, &body);
    if let Some(failed) = injected(&st, ROUTE).await {
        return failed;
    }
    let hold = {
        let mut s = lock(&st);
        if s.disabled_webhooks.contains(&id) {
            return (StatusCode::NOT_FOUND, "no_service").into_response();
        }
        let payload = serde_json::from_slice::<Value>(&body).ok();
        let Some(payload) = payload.filter(|v| v.get("text").is_some_and(Value::is_string)) else {
            return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
        };
        if let Err(code) = check_text(payload["text"].as_str().unwrap_or_default()) {
            return (StatusCode::BAD_REQUEST, code).into_response();
        }
        if check_blocks(payload.get("blocks")).is_err() {
            return (StatusCode::BAD_REQUEST, "invalid_blocks").into_response();
        }
        s.webhook_posts.push(WebhookPost {
            kind: "slack",
            id,
            body: payload,
        });
        s.holds.pop_front()
    };
    if let Some(hold) = hold {
        hold.wait().await;
    }
    (StatusCode::OK, "ok").into_response()
}

fn teams_error(message: String) -> Response {
    let body = json!({ "error": { "code": "BadRequest", "message": message } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn teams_webhook(
    Ax(st): Ax<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "webhook/teams";
    record(&st, ROUTE, &headers, &body);
    if let Some(failed) = injected(&st, ROUTE).await {
        return failed;
    }
    let hold = {
        let mut s = lock(&st);
        if s.disabled_webhooks.contains(&id) {
            let body = json!({ "error": { "code": "NotFound", "message": "no such workflow" } });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
        if body.len() > limits::TEAMS_MESSAGE_BYTES {
            let body = json!({ "error": { "code": "RequestEntityTooLarge", "message": "the message is larger than 28 KB" } });
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
        }
        let payload = match serde_json::from_slice::<Value>(&body) {
            Ok(payload) => payload,
            Err(e) => return teams_error(format!("invalid JSON: {e}")),
        };
        if let Err(message) = check_card_message(&payload) {
            return teams_error(message);
        }
        s.webhook_posts.push(WebhookPost {
            kind: "teams",
            id,
            body: payload,
        });
        s.holds.pop_front()
    };
    if let Some(hold) = hold {
        hold.wait().await;
    }
    StatusCode::ACCEPTED.into_response()
}
