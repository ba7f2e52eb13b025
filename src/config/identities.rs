//! `[[agents]]`, `[[reviewers]]` and `[[token_clients]]`: the identities countersign knows,
//! read from the configuration file into `request::identity` values, each checked with an
//! error naming its field (keys from the environment or files only, tokens as SHA-256).

use crate::request::AgentId;
use crate::request::identity::{Agent, Reviewer, TokenClient};
use crate::request::signature::AgentKey;
use crate::support::secrets::{ConfigError, KeySource, bad, read_secret};
use serde::Deserialize;

/// `[[agents]]`: an agent, its human owners and its signing keys (from env or files only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub id: String,
    #[serde(default)]
    pub owners: Vec<String>,
    pub keys: Vec<KeySource>,
}

/// `[[reviewers]]`: a human reviewer and the SHA-256 of their bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerEntry {
    pub name: String,
    pub token_sha256: String,
    /// Matches e-mail owners in `policies/CODEOWNERS`.
    pub email: Option<String>,
}

/// `[[token_clients]]`: a service that introspects countersign's tokens, and the SHA-256 of
/// its bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClientEntry {
    pub name: String,
    pub token_sha256: String,
}

pub(super) fn load_agents(entries: &[AgentEntry]) -> Result<Vec<Agent>, ConfigError> {
    let mut agents: Vec<Agent> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("agents[{i}]");
        let id = AgentId::parse(&e.id).ok_or_else(|| {
            bad(
                format!("{field}.id"),
                "must be 1-64 letters, digits, '.', '_' or '-'",
            )
        })?;
        if agents.iter().any(|a| a.id == id) {
            return Err(bad(
                format!("{field}.id"),
                format!("agent `{id}` is declared twice"),
            ));
        }
        if e.keys.is_empty() {
            return Err(bad(format!("{field}.keys"), "at least one key is required"));
        }
        for (o, owner) in e.owners.iter().enumerate() {
            crate::policy::owners::parse(owner).map_err(|why| {
                bad(
                    format!("{field}.owners[{o}]"),
                    format!("agent `{id}`: invalid owner `{owner}`: {why}"),
                )
            })?;
        }
        let mut keys = Vec::new();
        for (k, src) in e.keys.iter().enumerate() {
            let kf = format!("{field}.keys[{k}]");
            let bytes = read_secret(src, &kf)?;
            keys.push(AgentKey::new(bytes).map_err(|e| bad(&kf, e.to_string()))?);
        }
        agents.push(Agent {
            id,
            owners: e.owners.clone(),
            keys,
        });
    }
    Ok(agents)
}

pub(super) fn load_reviewers(entries: &[ReviewerEntry]) -> Result<Vec<Reviewer>, ConfigError> {
    let mut out: Vec<Reviewer> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("reviewers[{i}]");
        if AgentId::parse(&e.name).is_none() {
            return Err(bad(
                format!("{field}.name"),
                "must be 1-64 letters, digits, '.', '_' or '-'",
            ));
        }
        if out.iter().any(|r| r.name == e.name) {
            return Err(bad(format!("{field}.name"), "reviewer declared twice"));
        }
        let hash = parse_sha256(&e.token_sha256, &field)?;
        if let Some(email) = &e.email
            && (email.matches('@').count() != 1 || email.starts_with('@'))
        {
            return Err(bad(format!("{field}.email"), "must be an e-mail address"));
        }
        out.push(Reviewer {
            name: e.name.clone(),
            token_sha256: hash,
            email: e.email.as_ref().map(|e| e.to_ascii_lowercase()),
        });
    }
    Ok(out)
}

fn parse_sha256(text: &str, field: &str) -> Result<[u8; 32], ConfigError> {
    hex::decode(text)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad(format!("{field}.token_sha256"), "must be 64 hex digits"))
}

pub(super) fn load_token_clients(
    entries: &[TokenClientEntry],
) -> Result<Vec<TokenClient>, ConfigError> {
    let mut out: Vec<TokenClient> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("token_clients[{i}]");
        if AgentId::parse(&e.name).is_none() {
            return Err(bad(
                format!("{field}.name"),
                "must be 1-64 letters, digits, '.', '_' or '-'",
            ));
        }
        if out.iter().any(|c| c.name == e.name) {
            return Err(bad(format!("{field}.name"), "token client declared twice"));
        }
        out.push(TokenClient {
            name: e.name.clone(),
            token_sha256: parse_sha256(&e.token_sha256, &field)?,
        });
    }
    Ok(out)
}
