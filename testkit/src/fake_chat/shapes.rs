//! Request parsing and shape checks of the fake chat server: Slack Web API parameters (JSON,
//! form or query), Slack blocks and message metadata, Teams Adaptive Card messages.

use super::State;
use axum::http::{HeaderMap, Method, Uri, header};
use serde_json::{Map, Value};

pub(super) fn auth(s: &State, headers: &HeaderMap) -> Result<(), &'static str> {
    let value = headers.get(header::AUTHORIZATION).ok_or("not_authed")?;
    match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
        Some(token) if token == s.token => Ok(()),
        _ => Err("invalid_auth"),
    }
}

fn media_type(headers: &HeaderMap) -> String {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Query parameters, then the JSON or form body on top.
pub(super) fn api_params(
    verb: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    json_only: bool,
) -> Result<Map<String, Value>, &'static str> {
    let media = media_type(headers);
    if json_only && (verb != Method::POST || media != "application/json") {
        return Err("invalid_form_data");
    }
    let mut params = uri.query().map(form_pairs).unwrap_or_default();
    if body.is_empty() || verb == Method::GET {
        return Ok(params);
    }
    match media.as_str() {
        "application/json" => match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(_) => return Err("json_not_object"),
            Err(_) => return Err("invalid_json"),
        },
        "application/x-www-form-urlencoded" => {
            params.extend(form_pairs(&String::from_utf8_lossy(body)));
        }
        _ => return Err("invalid_form_data"),
    }
    Ok(params)
}

fn form_pairs(s: &str) -> Map<String, Value> {
    let pairs = s.split('&').filter(|p| !p.is_empty());
    pairs
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), Value::String(percent_decode(v)))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// A parameter as a string whether it came as a JSON string, number or bool.
pub(super) fn param_string(p: &Map<String, Value>, key: &str) -> Option<String> {
    p.get(key).map(|v| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    })
}

pub(super) fn truthy(p: &Map<String, Value>, key: &str) -> bool {
    matches!(param_string(p, key).as_deref(), Some("true" | "1"))
}

/// `(seconds, microseconds)` of a Slack ts such as `1763700000.000100` (or `0`, `1763700000`).
pub(super) fn ts_key(ts: &str) -> (u64, u64) {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let frac = format!("{frac:0<6}");
    (
        secs.parse().unwrap_or(0),
        frac.get(..6).and_then(|f| f.parse().ok()).unwrap_or(0),
    )
}

/// Block Kit's limits, as Slack enforces them (`invalid_blocks` for any block over one).
pub(super) mod limits {
    pub const TEXT: usize = 40_000;
    pub const BLOCKS: usize = 50;
    pub const SECTION_TEXT: usize = 3_000;
    pub const SECTION_FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2_000;
    pub const HEADER_TEXT: usize = 150;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const CONTEXT_TEXT: usize = 2_000;
    pub const ACTIONS_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const URL: usize = 3_000;
    /// Teams Workflows webhooks: the whole message.
    pub const TEAMS_MESSAGE_BYTES: usize = 28 * 1024;
}

/// A message's `text`: Slack refuses one over 40,000 characters with `msg_too_long`.
pub(super) fn check_text(text: &str) -> Result<(), &'static str> {
    if text.chars().count() > limits::TEXT {
        return Err("msg_too_long");
    }
    Ok(())
}

fn chars(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

/// A text object: `{"type": "plain_text"|"mrkdwn", "text": …}` within `max` characters.
fn text_object(v: Option<&Value>, max: usize) -> Result<(), &'static str> {
    let Some(v) = v else { return Ok(()) };
    let kind = v.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("plain_text" | "mrkdwn"))
        || !v.get("text").is_some_and(Value::is_string)
    {
        return Err("invalid_blocks");
    }
    if chars(v.get("text")) > max {
        return Err("invalid_blocks");
    }
    Ok(())
}

fn list<'a>(block: &'a Value, key: &str, max: usize) -> Result<&'a [Value], &'static str> {
    match block.get(key) {
        None => Ok(&[]),
        Some(v) => v
            .as_array()
            .filter(|l| l.len() <= max)
            .map(Vec::as_slice)
            .ok_or("invalid_blocks"),
    }
}

pub(super) fn check_blocks(blocks: Option<&Value>) -> Result<Option<Value>, &'static str> {
    let Some(blocks) = blocks else {
        return Ok(None);
    };
    let list_of_blocks = blocks
        .as_array()
        .filter(|l| l.len() <= limits::BLOCKS)
        .ok_or("invalid_blocks")?;
    for block in list_of_blocks {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .ok_or("invalid_blocks")?;
        match kind {
            "header" => text_object(block.get("text"), limits::HEADER_TEXT)?,
            "section" => {
                text_object(block.get("text"), limits::SECTION_TEXT)?;
                for field in list(block, "fields", limits::SECTION_FIELDS)? {
                    text_object(Some(field), limits::FIELD_TEXT)?;
                }
            }
            "context" => {
                for element in list(block, "elements", limits::CONTEXT_ELEMENTS)? {
                    if element.get("text").is_some() {
                        text_object(Some(element), limits::CONTEXT_TEXT)?;
                    }
                }
            }
            "actions" => {
                for element in list(block, "elements", limits::ACTIONS_ELEMENTS)? {
                    text_object(element.get("text"), limits::BUTTON_TEXT)?;
                    if chars(element.get("url")) > limits::URL {
                        return Err("invalid_blocks");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(blocks.clone()))
}

pub(super) fn check_metadata(metadata: Option<&Value>) -> Result<Option<Value>, &'static str> {
    let Some(md) = metadata else { return Ok(None) };
    let event_type = md.get("event_type").is_some_and(Value::is_string);
    let payload = md.get("event_payload").is_some_and(Value::is_object);
    if event_type && payload {
        Ok(Some(md.clone()))
    } else {
        Err("invalid_metadata_format")
    }
}

/// `{"type":"message","attachments":[{"contentType":"…adaptive","content":{AdaptiveCard}}]}`.
pub(super) fn check_card_message(v: &Value) -> Result<(), String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    if text(v, "type").as_deref() != Some("message") {
        return Err("'type' must be \"message\"".into());
    }
    let attachments = v.get("attachments").and_then(Value::as_array);
    let attachments = attachments
        .filter(|a| !a.is_empty())
        .ok_or("'attachments' is required")?;
    for (i, a) in attachments.iter().enumerate() {
        let at = format!("attachments[{i}]");
        if text(a, "contentType").as_deref() != Some("application/vnd.microsoft.card.adaptive") {
            return Err(format!(
                "{at}.contentType must be application/vnd.microsoft.card.adaptive"
            ));
        }
        let card = a.get("content").filter(|c| c.is_object());
        let card = card.ok_or_else(|| format!("{at}.content must be an object"))?;
        if text(card, "type").as_deref() != Some("AdaptiveCard") {
            return Err(format!("{at}.content.type must be AdaptiveCard"));
        }
        if !text(card, "version").is_some_and(|v| v.starts_with("1.")) {
            return Err(format!("{at}.content.version must be a 1.x string"));
        }
        let body = card.get("body").and_then(Value::as_array);
        let body = body.ok_or_else(|| format!("{at}.content.body must be an array"))?;
        if let Some(j) = body.iter().position(|e| text(e, "type").is_none()) {
            return Err(format!("{at}.content.body[{j}] needs a string 'type'"));
        }
        let Some(actions) = card.get("actions") else {
            continue;
        };
        let actions = actions
            .as_array()
            .ok_or_else(|| format!("{at}.content.actions"))?;
        for (j, action) in actions.iter().enumerate() {
            let kind = text(action, "type");
            let kind = kind.ok_or_else(|| format!("{at}.content.actions[{j}] needs a 'type'"))?;
            if kind == "Action.OpenUrl" && text(action, "url").is_none() {
                return Err(format!(
                    "{at}.content.actions[{j}]: Action.OpenUrl needs a 'url'"
                ));
            }
        }
    }
    Ok(())
}
