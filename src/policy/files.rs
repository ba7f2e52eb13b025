//! The TOML files of `policies/`: `policy.toml` (settings per section or pattern),
//! `agents.toml` (each agent's allowed subjects and human owners) and `teams.toml` (local team
//! aliases). Errors carry `file:line:column` positions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// A policy file problem, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CheckError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl CheckError {
    pub fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(text, offset);
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn at_line(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// How much harm a request can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// Settings for a section or a pattern; unset fields fall back to the next level
/// (pattern → section → `[defaults]` → built-in).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub risk: Option<Risk>,
    pub auto_approve: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub expires_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub credential_ttl: Option<Duration>,
    /// Environments the section or pattern applies to; unset means all.
    pub environments: Option<Vec<String>>,
}

impl Settings {
    /// `self` with unset fields taken from `base`.
    pub fn over(&self, base: &Settings) -> Settings {
        Settings {
            risk: self.risk.or(base.risk),
            auto_approve: self.auto_approve.or(base.auto_approve),
            expires_after: self.expires_after.or(base.expires_after),
            credential_ttl: self.credential_ttl.or(base.credential_ttl),
            environments: self
                .environments
                .clone()
                .or_else(|| base.environments.clone()),
        }
    }
}

/// `policies/policy.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    #[serde(default)]
    pub defaults: Settings,
    #[serde(default)]
    pub sections: BTreeMap<Spanned<String>, Settings>,
    #[serde(default)]
    pub patterns: BTreeMap<Spanned<String>, Settings>,
}

/// One agent in `policies/agents.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    #[serde(default)]
    pub owners: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed: Vec<Spanned<String>>,
}

/// `policies/agents.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsToml {
    #[serde(default)]
    pub agents: BTreeMap<Spanned<String>, AgentEntry>,
}

/// `policies/teams.toml`: `[teams]` mapping `"org/team"` to members (`@user` or `user`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsToml {
    #[serde(default)]
    pub teams: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

/// Parses one TOML file; a syntax or shape error is reported at its position.
pub fn parse_toml<T: serde::de::DeserializeOwned + Default>(
    file: &str,
    text: Option<&str>,
) -> Result<T, CheckError> {
    let Some(text) = text else {
        return Ok(T::default());
    };
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        CheckError::at(file, text, offset, e.message().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn unknown_settings_are_errors_with_positions() {
        let text = "[sections.\"Data\"]\nrisk = \"high\"\nauto_aprove = true\n";
        let e = parse_toml::<PolicyToml>("policies/policy.toml", Some(text)).unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (3, "policies/policy.toml"));
        assert!(e.message.contains("auto_aprove"), "{e}");
        let e = parse_toml::<PolicyToml>("p", Some("[defaults]\nrisk = \"severe\"\n")).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn settings_fall_back_level_by_level() {
        let base = Settings {
            risk: Some(Risk::Medium),
            auto_approve: Some(false),
            ..Default::default()
        };
        let top = Settings {
            risk: Some(Risk::Low),
            ..Default::default()
        };
        let merged = top.over(&base);
        assert_eq!(
            (merged.risk, merged.auto_approve),
            (Some(Risk::Low), Some(false))
        );
    }
}
