//! `[execution]`: how approved requests are run — how many at once, how long the raw payload
//! is kept after the request is finished, how callbacks to agents are retried, and how long a
//! shutdown waits for running actions.

use crate::support::secrets::{ConfigError, bad};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionFile {
    /// How long the raw payload is kept once the request is finished [default: 0s, erased at
    /// once; a masked copy stays for the status and the review].
    #[serde(default, with = "humantime_serde")]
    pub payload_retention: Option<Duration>,
    /// Actions running at the same time [default: 8].
    pub max_concurrent: Option<usize>,
    /// Deliveries of the outcome to an agent's `callback_url` before giving up [default: 10].
    pub callback_max_attempts: Option<u32>,
    /// Timeout of one callback delivery [default: 10s].
    #[serde(default, with = "humantime_serde")]
    pub callback_timeout: Option<Duration>,
    /// How long a shutdown waits for running actions [default: 30s]; an action still running
    /// then is stopped and its outcome becomes `outcome_unknown` at the next start.
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// Hosts a `callback_url` may point at (globs over the host name, e.g.
    /// `"*.agents.internal"`); submissions with another host are refused. Listed hosts are
    /// opted in by the operator and may be internal. Empty = any host, but only at a public
    /// address: loopback, private, link-local, unspecified, multicast and other
    /// special-purpose destinations are refused (checked where the name resolves, when
    /// connecting).
    #[serde(default)]
    pub callback_hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    pub payload_retention: Duration,
    pub max_concurrent: usize,
    pub callback_max_attempts: u32,
    pub callback_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `None` = any host at a public address.
    pub callback_hosts: Option<CallbackHosts>,
}

/// The hosts callbacks may go to.
#[derive(Debug, Clone)]
pub struct CallbackHosts {
    patterns: Vec<String>,
    set: globset::GlobSet,
}

impl CallbackHosts {
    /// Whether `url`'s host is allowed.
    pub fn allows(&self, url: &str) -> bool {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|h| {
                self.set
                    .is_match(h.trim_start_matches('[').trim_end_matches(']'))
            })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            payload_retention: Duration::ZERO,
            max_concurrent: 8,
            callback_max_attempts: 10,
            callback_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            callback_hosts: None,
        }
    }
}

fn callback_hosts(patterns: &[String]) -> Result<Option<CallbackHosts>, ConfigError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = globset::GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        let glob = globset::GlobBuilder::new(&p.to_ascii_lowercase())
            .literal_separator(true)
            .build()
            .map_err(|e| {
                bad(
                    format!("execution.callback_hosts[{i}]"),
                    e.kind().to_string(),
                )
            })?;
        builder.add(glob);
    }
    let set = builder
        .build()
        .map_err(|e| bad("execution.callback_hosts", e.to_string()))?;
    Ok(Some(CallbackHosts {
        patterns: patterns.to_vec(),
        set,
    }))
}

const MAX_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

impl ExecutionFile {
    pub fn resolve(&self) -> Result<ExecutionConfig, ConfigError> {
        let d = ExecutionConfig::default();
        let c = ExecutionConfig {
            payload_retention: self.payload_retention.unwrap_or(d.payload_retention),
            max_concurrent: self.max_concurrent.unwrap_or(d.max_concurrent),
            callback_max_attempts: self
                .callback_max_attempts
                .unwrap_or(d.callback_max_attempts),
            callback_timeout: self.callback_timeout.unwrap_or(d.callback_timeout),
            shutdown_grace: self.shutdown_grace.unwrap_or(d.shutdown_grace),
            callback_hosts: callback_hosts(&self.callback_hosts)?,
        };
        if c.payload_retention > MAX_RETENTION {
            return Err(bad(
                "execution.payload_retention",
                "must be at most 365 days",
            ));
        }
        if !(1..=256).contains(&c.max_concurrent) {
            return Err(bad("execution.max_concurrent", "must be between 1 and 256"));
        }
        if !(1..=100).contains(&c.callback_max_attempts) {
            return Err(bad(
                "execution.callback_max_attempts",
                "must be between 1 and 100",
            ));
        }
        if c.callback_timeout < Duration::from_secs(1)
            || c.callback_timeout > Duration::from_secs(300)
        {
            return Err(bad(
                "execution.callback_timeout",
                "must be between 1s and 5m",
            ));
        }
        if c.shutdown_grace > Duration::from_secs(3600) {
            return Err(bad("execution.shutdown_grace", "must be at most 1h"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_hosts_are_globs_over_the_host() {
        let file = ExecutionFile {
            callback_hosts: vec!["*.agents.internal".into(), "127.0.0.1".into()],
            ..Default::default()
        };
        let hosts = file.resolve().unwrap().callback_hosts.unwrap();
        assert!(hosts.allows("https://bot.agents.internal/hook?x=1"));
        assert!(hosts.allows("http://127.0.0.1:9000/done"));
        assert!(!hosts.allows("http://169.254.169.254/latest/meta-data"));
        assert!(!hosts.allows("https://agents.internal.evil.example/"));
        assert!(!hosts.allows("not a url"));
        assert!(
            ExecutionFile::default()
                .resolve()
                .unwrap()
                .callback_hosts
                .is_none()
        );
        let bad = ExecutionFile {
            callback_hosts: vec!["[".into()],
            ..Default::default()
        };
        assert!(
            bad.resolve()
                .unwrap_err()
                .to_string()
                .contains("callback_hosts[0]")
        );
    }
}
