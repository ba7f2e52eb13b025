//! One ledger entry: its JSON shape, its canonical hash and its link to the previous entry,
//! plus the one-line sentence that describes it in commit messages.
//!
//! An entry is a JSON object with `seq`, `timestamp` (RFC 3339, UTC), `request_id`, `event`,
//! `actor`, the event's own fields, `prev` (the previous entry's `hash`, or [`GENESIS`]) and
//! `hash`: `sha256:` + the SHA-256 of the RFC 8785 canonical JSON of the entry without `hash`.
//! Each line of a ledger file is the canonical JSON of the entry with its `hash`.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The `prev` of the first entry.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Top-level names every entry has; an event's fields never override them.
pub const RESERVED: [&str; 7] = [
    "seq",
    "timestamp",
    "request_id",
    "event",
    "actor",
    "prev",
    "hash",
];

/// An entry ready to be appended: numbered, chained and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: i64,
    /// The entry's timestamp in unix milliseconds (the file it goes to follows its UTC date).
    pub at_ms: i64,
    pub request_id: String,
    /// The previous entry's hash.
    pub prev: String,
    /// The canonical JSON line (without the newline).
    pub line: String,
    pub hash: String,
}

/// What an event contributes to its entry, before numbering and chaining.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub request_id: &'a str,
    pub event: &'a str,
    pub actor: &'a str,
    /// Already masked by the caller.
    pub fields: Map<String, Value>,
}

/// Numbers, chains and hashes an entry.
pub fn seal(seq: i64, at_ms: i64, draft: Draft<'_>, prev: &str) -> Sealed {
    let mut map = draft.fields;
    for key in RESERVED {
        map.remove(key);
    }
    map.insert("seq".into(), seq.into());
    map.insert("timestamp".into(), crate::time::rfc3339(at_ms).into());
    map.insert("request_id".into(), draft.request_id.into());
    map.insert("event".into(), draft.event.into());
    map.insert("actor".into(), draft.actor.into());
    map.insert("prev".into(), prev.into());
    let mut value = Value::Object(map);
    let hash = hash_of(&value);
    value["hash"] = Value::String(hash.clone());
    Sealed {
        seq,
        at_ms,
        request_id: draft.request_id.to_owned(),
        prev: prev.to_owned(),
        line: canonical(&value),
        hash,
    }
}

/// `sha256:<hex>` of the canonical JSON of `entry` (which must not hold `hash`).
pub fn hash_of(entry: &Value) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical(entry).as_bytes()))
    )
}

/// RFC 8785 canonical JSON text.
///
/// For the values ledger entries hold, serde_json's own compact output is already canonical:
/// its maps are sorted by key (no `preserve_order`), it escapes exactly what RFC 8785 escapes
/// (`"`, `\\`, control characters, with the same short forms and lowercase `\\u00xx`), and
/// prints integers up to 2^53 the same way. So that output is used when every key is ASCII
/// (byte order is then UTF-16 order) and every number such an integer, and this build of
/// serde_json is checked once to follow those rules; anything else takes the canonicalizer.
pub fn canonical(value: &Value) -> String {
    if plain_is_canonical(value) {
        serde_json::to_string(value).expect("JSON values always serialise")
    } else {
        serde_json_canonicalizer::to_string(value).expect("JSON values always serialise")
    }
}

/// Whether serde_json's compact output for `value` is its RFC 8785 form.
pub fn plain_is_canonical(value: &Value) -> bool {
    static SAME_RULES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SAME_RULES.get_or_init(same_rules) && plain_value(value)
}

fn plain_value(value: &Value) -> bool {
    const SAFE: u64 = 1 << 53;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => {
            n.as_u64().is_some_and(|u| u <= SAFE)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() <= SAFE)
        }
        Value::Array(items) => items.iter().all(plain_value),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && plain_value(v)),
    }
}

/// serde_json as built here sorts map keys and normalises numbers (no `preserve_order` or
/// `arbitrary_precision` feature turned on by another crate), so the shortcut holds.
fn same_rules() -> bool {
    let sample = r#"{"b":[-0,1.50,9007199254740993],"a":{"z":"\u00e9\n\u001f/","y":null}}"#;
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(sample) else {
        return false;
    };
    let plain = serde_json::to_vec(&map.get("a")).ok();
    let jcs = serde_json_canonicalizer::to_vec(&map.get("a")).ok();
    let sorted = serde_json::to_string(&map)
        .ok()
        .is_some_and(|s| s.starts_with("{\"a\""));
    let numbers =
        serde_json::to_string(&map["b"]).ok().as_deref() == Some("[-0.0,1.5,9007199254740993]");
    sorted && numbers && plain.is_some() && plain == jcs
}

/// What is wrong with a ledger line on its own (the chain is checked by the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("not a JSON object")]
    NotJson,
    #[error("field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("hash mismatch: the line says {stated}, its content hashes to {computed}")]
    Hash { stated: String, computed: String },
    #[error("the line is not in canonical form (RFC 8785)")]
    NotCanonical,
}

/// A line that is internally consistent: its `hash` matches its content.
#[derive(Debug, Clone)]
pub struct Checked {
    pub seq: i64,
    pub prev: String,
    pub hash: String,
    pub timestamp: String,
    pub request_id: String,
    pub event: String,
    /// The whole entry, `hash` included.
    pub entry: Map<String, Value>,
}

/// Parses a line and checks its hash and canonical form.
pub fn check_line(line: &str) -> Result<Checked, LineError> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line) else {
        return Err(LineError::NotJson);
    };
    let text = |map: &Map<String, Value>, key: &'static str| {
        map.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(LineError::Field(key))
    };
    let seq = map
        .get("seq")
        .and_then(Value::as_i64)
        .ok_or(LineError::Field("seq"))?;
    let stated = text(&map, "hash")?;
    let prev = text(&map, "prev")?;
    let timestamp = text(&map, "timestamp")?;
    let request_id = text(&map, "request_id")?;
    let event = text(&map, "event")?;
    text(&map, "actor")?;
    let hash_value = map.remove("hash").expect("checked above");
    let without = Value::Object(map);
    let computed = hash_of(&without);
    if computed != stated {
        return Err(LineError::Hash { stated, computed });
    }
    let Value::Object(mut map) = without else {
        unreachable!()
    };
    map.insert("hash".into(), hash_value);
    let entry = Value::Object(map);
    if canonical(&entry) != line {
        return Err(LineError::NotCanonical);
    }
    let Value::Object(entry) = entry else {
        unreachable!()
    };
    Ok(Checked {
        seq,
        prev,
        hash: stated,
        timestamp,
        request_id,
        event,
        entry,
    })
}

/// A readable sentence for `git log`, e.g. `cr_01J… approved by @alice and @bob (policy 3f2a1c9)`.
pub fn sentence(entry: &Map<String, Value>) -> String {
    let s = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
    let id = s("request_id");
    let actor = s("actor");
    let policy = short(s("policy_commit"));
    let people = |key: &str| -> String {
        let names: Vec<String> = entry
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|n| format!("@{n}"))
                    .collect()
            })
            .unwrap_or_default();
        match names.as_slice() {
            [] => "nobody".into(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    };
    match s("event") {
        "received" => format!(
            "{id} received from {actor}: {} {} in {}",
            s("action"),
            s("resource"),
            s("environment")
        ),
        "intake_refused" => format!("{id} refused at intake: {} ({actor})", s("reason")),
        "policy_decision" => format!("{id} policy decision: {} (policy {policy})", s("outcome")),
        "review_opened" => format!("{id} review opened at {}", s("review_ref")),
        "approval_recorded" => format!("{id} approval by @{actor} counted"),
        "approval_refused" => format!("{id} approval by @{actor} not counted: {}", s("refused")),
        "approved" if actor == "policy" => {
            format!("{id} approved by policy (policy {policy})")
        }
        "approved" => format!("{id} approved by {} (policy {policy})", people("approvers")),
        "denied" => format!("{id} denied by @{actor}"),
        "expired" => format!("{id} expired"),
        "leader_elected" => format!(
            "replica {actor} leads (lease {}, epoch {})",
            s("lease"),
            entry.get("epoch").and_then(Value::as_i64).unwrap_or(0)
        ),
        "cancelled" => format!("{id} cancelled by {actor}"),
        "approval_withdrawn" => format!("{id} approval withdrawn: {}", s("why")),
        "credential_issued" if s("kind") == "github_installation_token" => format!(
            "{id} GitHub token {} issued for {} until {}",
            s("id"),
            s("repository"),
            s("expires_at")
        ),
        "credential_issued" => format!(
            "{id} credential {} issued for {} ({}) until {}",
            s("jti"),
            s("audience"),
            s("scope"),
            s("expires_at")
        ),
        "credential_used" => format!("{id} credential {} used", s("jti")),
        "execution_started" => format!(
            "{id} execution started ({}, attempt {})",
            s("executor"),
            entry.get("attempt").cloned().unwrap_or_default()
        ),
        "execution_retried" => format!(
            "{id} execution retried after a restart (attempt {})",
            entry.get("attempt").cloned().unwrap_or_default()
        ),
        "execution_succeeded" => format!("{id} executed successfully ({})", s("executor")),
        "execution_failed" => format!("{id} execution failed ({})", s("executor")),
        "execution_refused" => format!("{id} execution refused: {}", s("reason")),
        "outcome_unknown" => format!(
            "{id} outcome unknown: interrupted during attempt {}",
            entry.get("attempt").cloned().unwrap_or_default()
        ),
        other => format!("{id} {other} ({actor})"),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(fields: Value) -> Draft<'static> {
        let Value::Object(fields) = fields else {
            panic!()
        };
        Draft {
            request_id: "cr_01JD00000000000000000000AA",
            event: "approved",
            actor: "alice",
            fields,
        }
    }

    #[test]
    fn sealed_lines_check_and_chain() {
        let a = seal(
            1,
            1_763_700_000_000,
            draft(json!({"approvers": ["alice", "bob"]})),
            GENESIS,
        );
        let b = seal(
            2,
            1_763_700_000_001,
            draft(json!({"seq": 99, "hash": "x"})),
            &a.hash,
        );
        let ca = check_line(&a.line).unwrap();
        let cb = check_line(&b.line).unwrap();
        assert_eq!((ca.seq, ca.prev.as_str()), (1, GENESIS));
        assert_eq!((cb.seq, cb.prev.as_str()), (2, a.hash.as_str()));
        assert_eq!(ca.timestamp, "2025-11-21T04:40:00.000Z");
        assert!(a.line.starts_with("{\"actor\":\"alice\",\"approvers\":"));
    }

    #[test]
    fn any_change_is_caught() {
        let a = seal(1, 0, draft(json!({"approvers": ["alice"]})), GENESIS);
        let edited = a.line.replace("alice\"]", "mallory\"]");
        assert!(matches!(check_line(&edited), Err(LineError::Hash { .. })));
        let spaced = a.line.replacen(':', ": ", 1);
        assert_eq!(check_line(&spaced).unwrap_err(), LineError::NotCanonical);
        assert_eq!(check_line("[1]").unwrap_err(), LineError::NotJson);
        let no_hash = a.line.replace("\"hash\":", "\"hash_\":");
        assert_eq!(check_line(&no_hash).unwrap_err(), LineError::Field("hash"));
    }

    #[test]
    fn the_fast_path_is_exactly_rfc_8785() {
        let samples = [
            json!({"b": 1, "a": [true, null, -7, 18446744073709551615u64], "c": {"z": "", "y": "x"}}),
            json!({"s": "quote \" backslash \\ slash / tab \t nl \n cr \r bs \u{8} ff \u{c} nul \u{0} us \u{1f} del \u{7f}"}),
            json!({"unicode": "é ü 日本 😀 \u{2028} \u{e000} \u{fffd}", "A": 0, "_": 1, "a": 2}),
            json!({"é": 1, "z": 2, "😀": 3, "\u{e000}": 4}),
            json!({"float": 1.5, "exp": 1e21, "neg": -0.0, "small": 5e-7}),
            json!([]),
            json!("plain"),
        ];
        for value in samples {
            let expected = serde_json_canonicalizer::to_string(&value).unwrap();
            assert_eq!(canonical(&value), expected, "{value}");
        }
    }

    #[test]
    fn the_shortcut_is_on_in_this_build() {
        assert!(same_rules());
    }

    #[test]
    fn sentences_read_like_the_audit_trail() {
        let a = seal(
            1,
            0,
            draft(json!({"approvers": ["alice", "bob"], "policy_commit": "3f2a1c9d00"})),
            GENESIS,
        );
        let c = check_line(&a.line).unwrap();
        assert_eq!(
            sentence(&c.entry),
            "cr_01JD00000000000000000000AA approved by @alice and @bob (policy 3f2a1c9)"
        );
    }
}
