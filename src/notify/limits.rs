//! Slack's and Teams' own limits, applied to a message as it is sent: after the template ran and
//! after escaping (`&` becomes `&amp;`, five characters for one), so whatever an agent wrote and
//! whatever a repository's template does, no field is longer than its platform accepts. Every
//! string is also passed through [`crate::text`] so an invisible or bidirectional character left
//! in the output is shown as `<U+202E>` (escaped for Slack's mrkdwn).
//!
//! Cuts never split a Slack entity (`&amp;`) or a Markdown escape (`\*`), and a cut inside a
//! Slack code block closes the block. A message still refused after this (an unknown limit, a
//! broken template) is replaced by a minimal one (`message::minimal_*`), never dropped.

use serde_json::Value;

/// Block Kit limits (api.slack.com/reference/block-kit).
pub mod slack {
    /// The message's `text` (Slack refuses longer with `msg_too_long`).
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
}

/// Teams Workflows webhooks refuse a message (card included) over 28 KB.
pub mod teams {
    pub const MESSAGE_BYTES: usize = 28 * 1024;
    /// Kept below [`MESSAGE_BYTES`] for what the webhook adds around the card.
    pub const BUDGET_BYTES: usize = 27 * 1024;
    /// A text block is cut no shorter than this while the card is made to fit.
    pub const MIN_TEXT: usize = 200;
}

/// Fits a rendered Slack message (Web API or webhook) to Block Kit's limits.
pub fn fit_slack(message: &mut Value) {
    if let Some(text) = message.get_mut("text") {
        fit_text(text, true, slack::TEXT);
    }
    let Some(blocks) = message.get_mut("blocks").and_then(Value::as_array_mut) else {
        return;
    };
    if blocks.len() > slack::BLOCKS {
        // The last block holds the link to the review: keep it.
        let last = blocks.pop();
        blocks.truncate(slack::BLOCKS - 1);
        blocks.extend(last);
    }
    for block in blocks {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "header" => fit_text_object(block.get_mut("text"), slack::HEADER_TEXT),
            "section" => {
                fit_text_object(block.get_mut("text"), slack::SECTION_TEXT);
                if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                    fields.truncate(slack::SECTION_FIELDS);
                    for f in fields {
                        fit_text_object(Some(f), slack::FIELD_TEXT);
                    }
                }
            }
            "context" => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(slack::CONTEXT_ELEMENTS);
                    for e in elements {
                        if e.get("text").is_some_and(Value::is_string) {
                            fit_text_object(Some(e), slack::CONTEXT_TEXT);
                        }
                    }
                }
            }
            "actions" => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(slack::ACTIONS_ELEMENTS);
                    for e in elements {
                        fit_text_object(e.get_mut("text"), slack::BUTTON_TEXT);
                    }
                }
            }
            _ => visible_strings(block, false),
        }
    }
}

/// Fits a Teams message to the Workflows webhook's size: every text block shown visibly, then
/// the longest text blocks halved until the message is within budget.
pub fn fit_teams(message: &mut Value) {
    visible_strings(message, false);
    for _ in 0..64 {
        if serde_json::to_vec(message).map_or(0, |v| v.len()) <= teams::BUDGET_BYTES {
            return;
        }
        let Some(longest) = longest_text_block(message) else {
            return;
        };
        let Some(text) = longest.as_str() else { return };
        let n = text.chars().count();
        if n <= teams::MIN_TEXT {
            return;
        }
        *longest = Value::String(cut_markdown(text, (n / 2).max(teams::MIN_TEXT)));
    }
}

fn longest_text_block(v: &mut Value) -> Option<&mut Value> {
    fn walk<'a>(v: &'a mut Value, best: &mut Option<(usize, &'a mut Value)>) {
        match v {
            Value::Object(map) => {
                let is_text_block = map.get("type").and_then(Value::as_str) == Some("TextBlock");
                for (key, child) in map.iter_mut() {
                    if is_text_block && key == "text" {
                        let n = child.as_str().map_or(0, |s| s.chars().count());
                        if best.as_ref().is_none_or(|(m, _)| n > *m) {
                            *best = Some((n, child));
                        }
                    } else {
                        walk(child, best);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, best)),
            _ => {}
        }
    }
    let mut best = None;
    walk(v, &mut best);
    best.map(|(_, v)| v)
}

/// A Block Kit text object (`{"type": "mrkdwn"|"plain_text", "text": …}`).
fn fit_text_object(object: Option<&mut Value>, max: usize) {
    let Some(object) = object else { return };
    let mrkdwn = object.get("type").and_then(Value::as_str) == Some("mrkdwn");
    if let Some(text) = object.get_mut("text") {
        fit_text(text, mrkdwn, max);
    }
}

fn fit_text(text: &mut Value, mrkdwn: bool, max: usize) {
    let Some(s) = text.as_str() else { return };
    let shown = if mrkdwn {
        crate::text::visible_as(s, "&lt;", "&gt;")
    } else {
        crate::text::visible(s)
    };
    let fitted = match (mrkdwn, shown.chars().count() > max) {
        (_, false) => shown.into_owned(),
        (true, true) => cut_mrkdwn(&shown, max),
        (false, true) => cut_plain(&shown, max),
    };
    if fitted != s {
        *text = Value::String(fitted);
    }
}

/// Every string in `v` shown visibly (`mrkdwn`: with `&lt;…&gt;`).
fn visible_strings(v: &mut Value, mrkdwn: bool) {
    match v {
        Value::String(s) => {
            let shown = if mrkdwn {
                crate::text::visible_as(s, "&lt;", "&gt;")
            } else {
                crate::text::visible(s)
            };
            if let std::borrow::Cow::Owned(shown) = shown {
                *s = shown;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| visible_strings(i, mrkdwn)),
        Value::Object(map) => map.values_mut().for_each(|i| visible_strings(i, mrkdwn)),
        _ => {}
    }
}

/// At most `max` characters of plain text, `…` when cut.
pub fn cut_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` characters of Slack mrkdwn: not inside an entity (`&amp;`), and a code block
/// left open by the cut is closed.
pub fn cut_mrkdwn(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    const CLOSE: &str = "…\n```";
    let cut = |n: usize| {
        let mut out: String = text.chars().take(n).collect();
        // An entity is at most `&quot;`: a `&` among the last few characters with no `;`
        // after it starts one the cut split.
        if let Some(amp) = out.rfind('&')
            && out.len() - amp < 8
            && !out[amp..].contains(';')
        {
            out.truncate(amp);
        }
        out
    };
    let open_fence = |s: &str| s.matches("```").count() % 2 == 1;
    let mut out = cut(max.saturating_sub(1));
    if open_fence(&out) {
        out = cut(max.saturating_sub(CLOSE.chars().count()));
    }
    if open_fence(&out) {
        out.push_str(CLOSE);
    } else {
        out.push('…');
    }
    out
}

/// At most `max` characters of Markdown, never ending in half an escape (`\`).
pub fn cut_markdown(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    let trailing = out.len() - out.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        out.pop();
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_section_full_of_entities_is_cut_after_escaping_without_splitting_one() {
        let escaped = "&amp;".repeat(2000);
        let mut msg = json!({"text": "t", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*Payload*\n```{escaped}```")}},
        ]});
        fit_slack(&mut msg);
        let text = msg["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= slack::SECTION_TEXT,
            "{}",
            text.len()
        );
        assert!(
            text.ends_with("&amp;…\n```"),
            "{}",
            &text[text.len() - 20..]
        );
        assert_eq!(text.matches("```").count(), 2, "the code block is closed");
    }

    #[test]
    fn every_slack_field_is_bounded_and_invisible_characters_are_shown() {
        let long = "x".repeat(5000);
        let field = json!({"type": "mrkdwn", "text": long});
        let mut msg = json!({
            "text": "y".repeat(50_000),
            "blocks": (0..60).map(|i| if i == 0 {
                json!({"type": "header", "text": {"type": "plain_text", "text": long}})
            } else if i == 1 {
                json!({"type": "section", "fields": vec![field.clone(); 12]})
            } else if i == 2 {
                json!({"type": "context", "elements": vec![json!({"type": "mrkdwn", "text": "a\u{202E}b"}); 12]})
            } else if i == 59 {
                json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": long}, "url": "https://x"}]})
            } else {
                json!({"type": "divider"})
            }).collect::<Vec<_>>(),
        });
        fit_slack(&mut msg);
        assert_eq!(msg["text"].as_str().unwrap().chars().count(), slack::TEXT);
        let blocks = msg["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), slack::BLOCKS);
        assert_eq!(blocks[49]["type"], "actions", "the link is kept");
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            slack::HEADER_TEXT
        );
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), slack::SECTION_FIELDS);
        assert!(
            fields
                .iter()
                .all(|f| f["text"].as_str().unwrap().chars().count() <= slack::FIELD_TEXT)
        );
        let context = blocks[2]["elements"].as_array().unwrap();
        assert_eq!(context.len(), slack::CONTEXT_ELEMENTS);
        assert_eq!(context[0]["text"], "a&lt;U+202E&gt;b");
        let button = blocks[49]["elements"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(button.chars().count(), slack::BUTTON_TEXT);
    }

    #[test]
    fn a_teams_card_is_shrunk_to_the_webhook_size() {
        let long = "\\*".repeat(20_000);
        let mut msg = json!({"type": "message", "attachments": [{"content": {"type": "AdaptiveCard", "body": [
            {"type": "TextBlock", "text": long},
            {"type": "TextBlock", "text": "short \u{200B}"},
        ]}}]});
        fit_teams(&mut msg);
        assert!(serde_json::to_vec(&msg).unwrap().len() <= teams::BUDGET_BYTES);
        let body = &msg["attachments"][0]["content"]["body"];
        let cut = body[0]["text"].as_str().unwrap();
        assert!(
            cut.ends_with("\\*…"),
            "no half escape: {}",
            &cut[cut.len() - 8..]
        );
        assert_eq!(body[1]["text"], "short <U+200B>");
    }
}
