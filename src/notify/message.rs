//! What a notification says: the request's context (masked: the masking engine runs over the
//! justification, payload and reasons first) rendered with minijinja from the GitOps
//! repository's `templates/slack_message.json.j2` and `templates/teams_card.json.j2` on the
//! base branch, falling back to the built-in copies (with a warning) when one is missing,
//! broken or does not render valid JSON.
//!
//! Agent- and reviewer-provided text is shown as text: invisible and bidirectional characters
//! as `<U+202E>` ([`crate::text::visible`]), then escaped for the platform's markup by the
//! templates' filters (`slack` for Slack's mrkdwn, `slack_code` inside a Slack code block,
//! `teams` for the Markdown subset of Teams' Adaptive Cards), then bounded by the platform's
//! limits after escaping ([`super::limits`]). A destination that still refuses a message gets
//! [`minimal_slack`] / [`minimal_teams`] instead.

use serde::Serialize;
use serde_json::Value;

pub const SLACK_TEMPLATE: &str = "templates/slack_message.json.j2";
pub const TEAMS_TEMPLATE: &str = "templates/teams_card.json.j2";
pub const BUILTIN_SLACK: &str = include_str!("../../templates/slack_message.json.j2");
pub const BUILTIN_TEAMS: &str = include_str!("../../templates/teams_card.json.j2");

/// Everything a template can use.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub request_id: String,
    pub event: String,
    pub actor: String,
    pub state: String,
    /// "Approval needed", "Approved", "Denied", …
    pub headline: String,
    pub agent: String,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub risk: String,
    pub justification: String,
    pub payload_summary: String,
    pub payload_preview: String,
    /// One line per requirement: "1 of @acme/data (Exports, CODEOWNERS line 3)".
    pub approvals: Vec<String>,
    pub expires_at: String,
    pub review_url: String,
    pub review_label: String,
    /// The decision in a sentence, once there is one ("Approved by @bob").
    pub decision: Option<String>,
    /// The destination's mention for high and critical risk.
    pub mention: Option<String>,
}

/// A text as shown in a message: invisible and direction-changing characters made visible.
pub fn shown(text: &str) -> String {
    crate::text::visible(text).into_owned()
}

/// The thread reply for an event (Slack bot destinations).
pub fn reply_text(ctx: &Context) -> String {
    let text = match ctx.event.as_str() {
        "approval_recorded" => format!("Approval by @{} counted", shown(&ctx.actor)),
        "review_opened" => format!("Review opened: {}", ctx.review_url),
        _ => ctx
            .decision
            .clone()
            .unwrap_or_else(|| format!("{} ({})", ctx.event, ctx.state)),
    };
    escape_slack(&text)
}

/// The templates to render with: from the base branch, or the built-in copies.
#[derive(Debug, Clone)]
pub struct Templates {
    pub slack: String,
    pub teams: String,
    /// The base commit they were read at (`None`: built-in).
    pub commit: Option<String>,
}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {
            slack: BUILTIN_SLACK.to_owned(),
            teams: BUILTIN_TEAMS.to_owned(),
            commit: None,
        }
    }

    /// The base branch's templates at `commit` (each missing one replaced by the built-in).
    pub fn from_files(commit: &str, files: &std::collections::BTreeMap<String, String>) -> Self {
        let pick = |path: &str, builtin: &str| match files.get(path) {
            Some(text) => text.clone(),
            None => {
                tracing::warn!(
                    template.path = path,
                    "template missing from the base branch; using the built-in one"
                );
                builtin.to_owned()
            }
        };
        Templates {
            slack: pick(SLACK_TEMPLATE, BUILTIN_SLACK),
            teams: pick(TEAMS_TEMPLATE, BUILTIN_TEAMS),
            commit: Some(commit.to_owned()),
        }
    }

    /// The Slack message, within Block Kit's limits.
    pub fn slack(&self, ctx: &Context) -> Value {
        let mut message = render_or_builtin(&self.slack, BUILTIN_SLACK, SLACK_TEMPLATE, ctx);
        super::limits::fit_slack(&mut message);
        message
    }

    /// The Teams message, within the Workflows webhook's size.
    pub fn teams(&self, ctx: &Context) -> Value {
        let mut message = render_or_builtin(&self.teams, BUILTIN_TEAMS, TEAMS_TEMPLATE, ctx);
        super::limits::fit_teams(&mut message);
        message
    }
}

/// The one line a minimal message says: what is asked, by whom, how risky, and its id.
fn minimal_line(ctx: &Context, escape: fn(&str) -> String) -> String {
    format!(
        "{}: {} on {} ({}) requested by {}, risk {}. Request {}",
        escape(&ctx.headline),
        escape(&ctx.action),
        escape(&ctx.resource),
        escape(&ctx.environment),
        escape(&ctx.agent),
        escape(&ctx.risk),
        escape(&ctx.request_id),
    )
}

/// What a Slack destination gets when it refuses the rendered message: nothing from the
/// request's free text, only its id, agent, action, risk and the link.
pub fn minimal_slack(ctx: &Context) -> Value {
    let line = minimal_line(ctx, escape_slack);
    let url_is_plain = !ctx.review_url.is_empty()
        && !ctx
            .review_url
            .contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '|'));
    let link = if url_is_plain {
        format!("<{}|{}>", ctx.review_url, escape_slack(&ctx.review_label))
    } else {
        escape_slack(&ctx.review_url)
    };
    let mut message = serde_json::json!({
        "text": line,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!("{line}\n{link}")}}],
    });
    super::limits::fit_slack(&mut message);
    message
}

/// What a Teams destination gets when it refuses the rendered card.
pub fn minimal_teams(ctx: &Context) -> Value {
    let mut message = serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "wrap": true, "text": minimal_line(ctx, escape_teams)}],
                "actions": [{"type": "Action.OpenUrl", "title": ctx.review_label, "url": ctx.review_url}],
            },
        }],
    });
    super::limits::fit_teams(&mut message);
    message
}

fn render_or_builtin(source: &str, builtin: &str, path: &str, ctx: &Context) -> Value {
    match render(source, ctx) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(template.path = path, error = %e, "template is broken; using the built-in one");
            render(builtin, ctx).unwrap_or_else(|_| {
                serde_json::json!({ "text": format!("countersign request {}", ctx.request_id) })
            })
        }
    }
}

/// Renders a JSON template; the output must parse as JSON.
pub fn render(source: &str, ctx: &Context) -> anyhow::Result<Value> {
    let mut env = minijinja::Environment::new();
    env.add_filter("slack", |s: String| escape_slack(&s));
    env.add_filter("slack_code", |s: String| escape_slack_code(&s));
    env.add_filter("teams", |s: String| escape_teams(&s));
    env.add_filter("truncate_chars", |s: String, n: usize| truncate(&s, n));
    let text = env.render_str(source, ctx)?;
    Ok(serde_json::from_str(&text)?)
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` (so text cannot mention or link).
pub fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text inside a Slack code block (```…```): escaped like [`escape_slack`], and no run of
/// backticks that could close the block early (a space goes between two backticks).
pub fn escape_slack_code(text: &str) -> String {
    let escaped = escape_slack(text);
    let mut out = String::with_capacity(escaped.len());
    let mut previous = None;
    for c in escaped.chars() {
        if c == '`' && previous == Some('`') {
            out.push(' ');
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

/// Text for the Markdown subset of Teams' Adaptive Cards, shown as written
/// ([`crate::text::escape_markdown`]): `[click here](https://evil.example/x)` is not a link and
/// `********` stays eight asterisks.
pub fn escape_teams(text: &str) -> String {
    crate::text::escape_markdown(text)
}

/// At most `n` characters, with `…` when cut.
pub fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            request_id: "cr_01JD00000000000000000000AA".into(),
            event: "review_opened".into(),
            actor: "countersign".into(),
            state: "pending_review".into(),
            headline: "Approval needed".into(),
            agent: "deploy-bot".into(),
            action: "db.export".into(),
            resource: "prod/customers".into(),
            environment: "prod".into(),
            risk: "high".into(),
            justification: "weekly report <!channel> & \"quotes\"\nsecond line".into(),
            payload_summary: "1 email masked".into(),
            payload_preview: r#"{"to":"j***@e******.com"}"#.into(),
            approvals: vec!["1 of @acme/data (Exports, policies/CODEOWNERS line 3)".into()],
            expires_at: "2026-11-22T10:00:00.000Z".into(),
            review_url: "https://github.com/acme/gitops/pull/7".into(),
            review_label: "Review on GitHub".into(),
            decision: None,
            mention: Some("<!subteam^S0123>".into()),
        }
    }

    #[test]
    fn the_builtin_slack_message_is_block_kit_with_the_link_and_nothing_unescaped() {
        let msg = Templates::builtin().slack(&ctx());
        let blocks = msg["blocks"].as_array().unwrap();
        assert!(
            msg["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval needed: db.export")
        );
        let text = msg.to_string();
        assert!(
            !text.contains("<!channel>"),
            "agent text cannot mention: {text}"
        );
        assert!(text.contains("&lt;!channel&gt; &amp;"));
        assert!(
            text.contains("<!subteam^S0123>"),
            "the configured mention is kept"
        );
        let button = &blocks.last().unwrap()["elements"][0];
        assert_eq!(button["url"], "https://github.com/acme/gitops/pull/7");
        assert_eq!(button["text"]["text"], "Review on GitHub");
        for b in blocks {
            assert!(b["type"].is_string());
        }
        let mut decided = ctx();
        decided.decision = Some("Denied by @alice: not now".into());
        decided.mention = None;
        let text = Templates::builtin().slack(&decided).to_string();
        assert!(text.contains("Denied by @alice: not now") && !text.contains("subteam"));
    }

    #[test]
    fn the_builtin_teams_card_is_an_adaptive_card_with_the_link() {
        let msg = Templates::builtin().teams(&ctx());
        assert_eq!(msg["type"], "message");
        let card = &msg["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(
            card["content"]["actions"][0]["url"],
            "https://github.com/acme/gitops/pull/7"
        );
    }

    #[test]
    fn teams_markdown_is_escaped_so_agent_text_shows_as_written() {
        assert_eq!(
            escape_teams("[click here](https://evil.example/x) ******** _x_ ~y~ `z`"),
            r"\[click here\]\(https://evil.example/x\) \*\*\*\*\*\*\*\* \_x\_ \~y\~ \`z\`"
        );
        assert_eq!(
            escape_teams("- item\n+ item\n12. item\n# title\n---\nv1.2 a-b"),
            "\\- item\n\\+ item\n12\\. item\n\\# title\n\\---\nv1.2 a-b"
        );
        assert_eq!(escape_teams("&amp; <b>"), r"\&amp; \<b\>");
        assert_eq!(
            escape_teams("cr_01 db_export _x snake_"),
            r"cr_01 db_export \_x snake\_"
        );
    }

    #[test]
    fn slack_code_cannot_close_its_block() {
        assert_eq!(escape_slack_code("a```b`c <@U1>"), "a` ` `b`c &lt;@U1&gt;");
    }

    #[test]
    fn the_minimal_messages_carry_id_agent_action_risk_and_link_and_no_free_text() {
        let slack = minimal_slack(&ctx()).to_string();
        let teams = minimal_teams(&ctx()).to_string();
        for text in [&slack, &teams] {
            for needle in [
                "cr_01JD00000000000000000000AA",
                "deploy-bot",
                "db.export",
                "high",
                "https://github.com/acme/gitops/pull/7",
            ] {
                assert!(text.contains(needle), "{needle}: {text}");
            }
            assert!(
                !text.contains("weekly report") && !text.contains("j***"),
                "{text}"
            );
        }
        assert!(slack.contains("<https://github.com/acme/gitops/pull/7|Review on GitHub>"));
    }

    #[test]
    fn a_broken_template_falls_back_to_the_builtin() {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            SLACK_TEMPLATE.to_owned(),
            "{ not json {{ agent }}".to_owned(),
        );
        files.insert(TEAMS_TEMPLATE.to_owned(), "{% if %}".to_owned());
        let t = Templates::from_files("abc", &files);
        assert!(t.slack(&ctx())["blocks"].is_array());
        assert_eq!(t.teams(&ctx())["type"], "message");
        let mut custom = std::collections::BTreeMap::new();
        custom.insert(
            SLACK_TEMPLATE.to_owned(),
            r#"{"text": {{ ("custom " ~ agent) | tojson }}}"#.to_owned(),
        );
        let t = Templates::from_files("abc", &custom);
        assert_eq!(t.slack(&ctx())["text"], "custom deploy-bot");
    }
}
