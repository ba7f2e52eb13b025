//! `[notify]` in `countersign.toml`: where notifications go (Slack incoming webhooks, Slack bot
//! tokens, Microsoft Teams webhooks), which requests each destination receives, and how hard
//! delivery tries. Secrets (webhook URLs, tokens) come from env or files only and are never
//! shown: their `Debug` prints only the destination name.

use crate::support::secrets::{ConfigError, KeySource, bad, read_secret};
use serde::Deserialize;
use zeroize::Zeroizing;

/// Default number of attempts before a notification is given up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// Attempts per notification before giving up (an error in logs and metrics).
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub slack: Vec<SlackFile>,
    #[serde(default)]
    pub teams: Vec<TeamsFile>,
}

/// `[[notify.slack]]`: an incoming webhook, or a bot token with a channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackFile {
    pub name: String,
    pub webhook_url: Option<KeySource>,
    pub bot_token: Option<KeySource>,
    /// Channel id for the bot (`C0123…`).
    pub channel: Option<String>,
    /// Slack's Web API base [default: https://slack.com/api].
    pub api_base: Option<String>,
    /// Mentioned (e.g. `<!subteam^S0123>`) on high and critical risk requests.
    pub mention: Option<String>,
    #[serde(flatten)]
    pub route: RouteFile,
}

/// `[[notify.teams]]`: a Teams (Workflows) incoming webhook.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsFile {
    pub name: String,
    pub webhook_url: KeySource,
    #[serde(flatten)]
    pub route: RouteFile,
}

/// Which requests a destination receives; an empty list matches everything.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RouteFile {
    /// CODEOWNERS sections (any of the request's required sections).
    #[serde(default)]
    pub sections: Vec<String>,
    /// Risk levels: low, medium, high, critical.
    #[serde(default)]
    pub risks: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A validated destination.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub route: RouteFile,
    pub mention: Option<String>,
}

#[derive(Clone)]
pub enum TargetKind {
    SlackWebhook {
        url: Zeroizing<String>,
    },
    SlackBot {
        token: Zeroizing<String>,
        channel: String,
        api_base: String,
    },
    TeamsWebhook {
        url: Zeroizing<String>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            TargetKind::SlackWebhook { .. } => "slack webhook",
            TargetKind::SlackBot { .. } => "slack bot",
            TargetKind::TeamsWebhook { .. } => "teams webhook",
        };
        write!(f, "Target({} {kind})", self.name)
    }
}

/// The validated `[notify]` section.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub targets: Vec<Target>,
    pub max_attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            targets: vec![],
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

const RISKS: [&str; 4] = ["low", "medium", "high", "critical"];

impl NotifyFile {
    pub fn resolve(&self) -> Result<NotifyConfig, ConfigError> {
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=100).contains(&max_attempts) {
            return Err(bad("notify.max_attempts", "must be between 1 and 100"));
        }
        let mut targets = Vec::new();
        for (i, s) in self.slack.iter().enumerate() {
            let field = format!("notify.slack[{i}]");
            let kind = match (&s.webhook_url, &s.bot_token) {
                (Some(url), None) => {
                    if s.channel.is_some() || s.api_base.is_some() {
                        return Err(bad(field, "`channel` and `api_base` go with `bot_token`"));
                    }
                    TargetKind::SlackWebhook {
                        url: secret_url(url, &format!("{field}.webhook_url"))?,
                    }
                }
                (None, Some(token)) => {
                    let token = secret_text(token, &format!("{field}.bot_token"))?;
                    let channel = s
                        .channel
                        .clone()
                        .filter(|c| !c.trim().is_empty())
                        .ok_or_else(|| {
                            bad(format!("{field}.channel"), "a bot token needs a channel id")
                        })?;
                    let api_base = s
                        .api_base
                        .clone()
                        .unwrap_or_else(|| "https://slack.com/api".to_owned());
                    check_url(&api_base, &format!("{field}.api_base"))?;
                    TargetKind::SlackBot {
                        token,
                        channel,
                        api_base: api_base.trim_end_matches('/').to_owned(),
                    }
                }
                _ => {
                    return Err(bad(
                        field,
                        "give exactly one of `webhook_url` or `bot_token`",
                    ));
                }
            };
            targets.push(target(&s.name, kind, &s.route, s.mention.clone(), &field)?);
        }
        for (i, t) in self.teams.iter().enumerate() {
            let field = format!("notify.teams[{i}]");
            let kind = TargetKind::TeamsWebhook {
                url: secret_url(&t.webhook_url, &format!("{field}.webhook_url"))?,
            };
            targets.push(target(&t.name, kind, &t.route, None, &field)?);
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.name == t.name) {
                return Err(bad(format!("notify: `{}`", t.name), "names must be unique"));
            }
        }
        Ok(NotifyConfig {
            targets,
            max_attempts,
        })
    }
}

fn target(
    name: &str,
    kind: TargetKind,
    route: &RouteFile,
    mention: Option<String>,
    field: &str,
) -> Result<Target, ConfigError> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok_name {
        return Err(bad(
            format!("{field}.name"),
            "must be 1-64 letters, digits, `-`, `_` or `.`",
        ));
    }
    if let Some(r) = route.risks.iter().find(|r| !RISKS.contains(&r.as_str())) {
        return Err(bad(
            format!("{field}.risks"),
            format!("`{r}` is not one of low, medium, high, critical"),
        ));
    }
    Ok(Target {
        name: name.to_owned(),
        kind,
        route: route.clone(),
        mention,
    })
}

fn secret_text(src: &KeySource, field: &str) -> Result<Zeroizing<String>, ConfigError> {
    let bytes = Zeroizing::new(read_secret(src, field)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(field.to_owned(), "is not UTF-8"))?;
    if text.is_empty() {
        return Err(bad(field.to_owned(), "is empty"));
    }
    Ok(Zeroizing::new(text.to_owned()))
}

/// A webhook URL is a secret; the error never shows it.
fn secret_url(src: &KeySource, field: &str) -> Result<Zeroizing<String>, ConfigError> {
    let url = secret_text(src, field)?;
    check_url(&url, field)?;
    Ok(url)
}

fn check_url(url: &str, field: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(bad(field.to_owned(), "must be an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<NotifyConfig, String> {
        let file: NotifyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        file.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn destinations_resolve_and_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("hook");
        std::fs::write(&hook, "https://hooks.slack.com/services/T0/B0/SECRETPART\n").unwrap();
        let ok = resolve(&format!(
            "max_attempts = 3\n[[slack]]\nname = \"ops\"\nwebhook_url = {{ file = {:?} }}\nrisks = [\"high\"]\n",
            hook.display().to_string()
        ))
        .unwrap();
        assert_eq!(ok.max_attempts, 3);
        assert_eq!(ok.targets[0].route.risks, ["high"]);
        assert!(
            !format!("{ok:?}").contains("SECRETPART"),
            "Debug hides the URL"
        );
        let hook = format!("{{ file = {:?} }}", hook.display().to_string());
        for (text, field) in [
            (
                format!("[[slack]]\nname = \"a\"\nbot_token = {hook}\n"),
                "notify.slack[0].channel",
            ),
            (
                format!("[[slack]]\nname = \"a\"\nbot_token = {hook}\nwebhook_url = {hook}\n"),
                "notify.slack[0]",
            ),
            (
                format!("[[slack]]\nname = \"a\"\nwebhook_url = {hook}\nrisks = [\"huge\"]\n"),
                "notify.slack[0].risks",
            ),
            (
                format!("[[teams]]\nname = \"a b\"\nwebhook_url = {hook}\n"),
                "notify.teams[0].name",
            ),
            (
                format!(
                    "[[teams]]\nname = \"a\"\nwebhook_url = {hook}\n[[slack]]\nname = \"a\"\nwebhook_url = {hook}\n"
                ),
                "notify: `a`",
            ),
            ("max_attempts = 0\n".to_owned(), "notify.max_attempts"),
            (
                "[[teams]]\nname = \"a\"\nwebhook_url = { env = \"COUNTERSIGN_TEST_UNSET_VAR\" }\n"
                    .to_owned(),
                "notify.teams[0].webhook_url",
            ),
        ] {
            let e = resolve(&text).unwrap_err();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
            assert!(!e.contains("SECRETPART"), "{e}");
        }
        let typo =
            format!("[[slack]]\nname = \"a\"\nwebhook_url = {hook}\nenvironment = [\"prod\"]\n");
        let e = resolve(&typo).unwrap_err();
        assert!(e.contains("environment"), "unknown keys are refused: {e}");
    }
}
