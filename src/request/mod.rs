//! Change requests as agents submit them: identifiers, the parsed and validated submission, and its
//! canonical digest. Signature checking lives in [`signature`].

pub mod identity;
pub mod signature;
mod state;
mod validate;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::fmt;

pub use state::State;
pub use validate::{SubmissionError, is_valid_action_name, parse_submission};

/// Identifier of a registered agent (`[A-Za-z0-9._-]`, 1–64 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// Validates an agent id; returns `None` if it is empty, too long or has other characters.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sortable request identifier: `cr_` followed by a ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    pub fn generate() -> Self {
        Self(format!("cr_{}", ulid::Ulid::new()))
    }

    /// Accepts only well-formed ids, so path parameters can never smuggle anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("cr_")?;
        ulid::Ulid::from_string(rest).ok()?;
        Some(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Creation time encoded in the ULID (unix milliseconds).
    pub fn timestamp_ms(&self) -> i64 {
        ulid::Ulid::from_string(&self.0[3..])
            .map(|u| u.timestamp_ms() as i64)
            .unwrap_or(0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `sha256:<hex>` digest of a request's canonical JSON (RFC 8785).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Wraps a stored digest string.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An imperative operation with a JSON payload.
    Action,
    /// Proposed file edits to the GitOps repository.
    Change,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::Change => "change",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "action" => Some(Kind::Action),
            "change" => Some(Kind::Change),
            _ => None,
        }
    }
}

/// One proposed file edit of a `change` request. `Debug` shows the path and size only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub content: String,
}

impl std::fmt::Debug for FileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileChange({}, {} bytes)", self.path, self.content.len())
    }
}

/// A validated submission, exactly as the agent sent it (raw payload included). Its `Debug`
/// output leaves out the justification, payload and file contents, so a stray `?submission` in
/// a log line can never print them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub kind: Kind,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub justification: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub changes: Vec<FileChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("kind", &self.kind)
            .field("action", &self.action)
            .field("resource", &self.resource)
            .field("environment", &self.environment)
            .field("justification", &"<redacted>")
            .field("payload", &"<redacted>")
            .field(
                "changes",
                &self.changes.iter().map(|c| &c.path).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Submission {
    /// The canonical digest that binds approvals to exactly this content: RFC 8785 JSON of the
    /// agent, kind, action, resource, environment, payload and changes.
    pub fn digest(&self, agent: &AgentId) -> Digest {
        let subject = serde_json::json!({
            "agent": agent.as_str(),
            "kind": self.kind.as_str(),
            "action": self.action,
            "resource": self.resource,
            "environment": self.environment,
            "payload": self.payload,
            "changes": self.changes,
        });
        let canonical = serde_json_canonicalizer::to_vec(&subject)
            .expect("a serde_json::Value always canonicalises");
        Digest::of_bytes(&canonical)
    }

    /// Fingerprint of the whole submission (justification and callback included), used to tell
    /// an idempotent retry from a different request reusing the same idempotency key.
    pub fn fingerprint(&self, agent: &AgentId) -> Digest {
        let value = serde_json::json!({ "agent": agent.as_str(), "submission": self });
        let canonical = serde_json_canonicalizer::to_vec(&value)
            .expect("a serde_json::Value always canonicalises");
        Digest::of_bytes(&canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(payload: Value) -> Submission {
        Submission {
            kind: Kind::Action,
            action: "db.export".into(),
            resource: "prod/customers".into(),
            environment: "prod".into(),
            justification: "weekly report".into(),
            payload,
            changes: vec![],
            callback_url: None,
        }
    }

    #[test]
    fn digest_ignores_key_order_and_number_spelling() {
        let agent = AgentId::parse("exporter").unwrap();
        let a = sample(json!({"b": 1, "a": [1.0, "x"]}));
        let b: Value = serde_json::from_str(r#"{"a":[1,"x"],"b":1.0}"#).unwrap();
        assert_eq!(a.digest(&agent), sample(b).digest(&agent));
    }

    #[test]
    fn digest_binds_agent_payload_and_environment() {
        let agent = AgentId::parse("exporter").unwrap();
        let other = AgentId::parse("other").unwrap();
        let base = sample(json!({"limit": 10}));
        assert_ne!(base.digest(&agent), base.digest(&other));
        assert_ne!(
            base.digest(&agent),
            sample(json!({"limit": 11})).digest(&agent)
        );
        let mut staging = base.clone();
        staging.environment = "staging".into();
        assert_ne!(base.digest(&agent), staging.digest(&agent));
        // The justification is context, not content: rewording it keeps the digest.
        let mut reworded = base.clone();
        reworded.justification = "monthly".into();
        assert_eq!(base.digest(&agent), reworded.digest(&agent));
        assert_ne!(base.fingerprint(&agent), reworded.fingerprint(&agent));
    }

    #[test]
    fn digest_matches_rfc8785_reference() {
        let agent = AgentId::parse("a").unwrap();
        let s = sample(json!({"z": 1e3, "y": "\u{20ac}"}));
        let expected = r#"{"action":"db.export","agent":"a","changes":[],"environment":"prod","kind":"action","payload":{"y":"€","z":1000},"resource":"prod/customers"}"#;
        assert_eq!(s.digest(&agent), Digest::of_bytes(expected.as_bytes()));
    }

    #[test]
    fn debug_output_never_shows_payload_or_justification() {
        let mut s = sample(json!({"password": "hunter2"}));
        s.justification = "for ann@example.com".into();
        let text = format!("{s:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("ann@"),
            "{text}"
        );
        assert!(text.contains("db.export"));
    }

    #[test]
    fn ids_are_prefixed_and_sortable() {
        let a = RequestId::generate();
        assert!(a.as_str().starts_with("cr_"));
        assert!(RequestId::parse(a.as_str()).is_some());
        assert!(RequestId::parse("cr_../../etc").is_none());
        assert!(RequestId::parse("01J0000000000000000000000").is_none());
        assert!(AgentId::parse("deploy-bot.v2").is_some());
        assert!(AgentId::parse("bad/agent").is_none());
        assert!(AgentId::parse("").is_none());
    }
}
