//! Parsing and validation of a submission body. Errors name the field and the rule broken but
//! never echo a submitted value, so nothing sensitive can leak through an error message.

use super::{FileChange, Kind, Submission};
use serde_json::{Map, Value};

const MAX_CHANGES: usize = 1000;
const MAX_PATH_BYTES: usize = 1024;
const MAX_JUSTIFICATION_CHARS: usize = 4000;
const FIELDS: &[&str] = &[
    "kind",
    "action",
    "resource",
    "environment",
    "justification",
    "payload",
    "changes",
    "callback_url",
];

/// A rejected submission: `Malformed` maps to 400, `Invalid` to 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

fn malformed(msg: impl Into<String>) -> SubmissionError {
    SubmissionError::Malformed(msg.into())
}

fn invalid(msg: impl Into<String>) -> SubmissionError {
    SubmissionError::Invalid(msg.into())
}

/// Describes an unknown field without echoing it: a field name is chosen by the caller and may
/// itself be a secret pasted in the wrong place. Only a near miss of an allowed name (a typo)
/// is answered with the allowed name it resembles.
fn unknown_field(name: &str, allowed: &[&str], context: &str) -> SubmissionError {
    let suggestion = allowed
        .iter()
        .map(|a| (strsim::levenshtein(&name.to_ascii_lowercase(), a), *a))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match suggestion {
        Some((_, field)) => malformed(format!("unknown field{context}; did you mean `{field}`?")),
        None => malformed(format!(
            "unknown field{context} (its name is not shown); allowed fields: {}",
            allowed.join(", ")
        )),
    }
}

fn required_string(obj: &Map<String, Value>, field: &str) -> Result<String, SubmissionError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(malformed(format!("missing field `{field}`"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(malformed(format!("field `{field}` must be a string"))),
    }
}

/// Parses and validates a submission body.
pub fn parse_submission(body: &[u8]) -> Result<Submission, SubmissionError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(malformed("body must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(unknown_field(unknown, FIELDS, ""));
    }
    let kind_raw = required_string(&obj, "kind")?;
    let action = required_string(&obj, "action")?;
    let resource = required_string(&obj, "resource")?;
    let environment = required_string(&obj, "environment")?;
    let justification = required_string(&obj, "justification")?;
    let payload = obj.get("payload").cloned().unwrap_or(Value::Null);
    let changes = parse_changes(obj.get("changes"))?;
    let callback_url = match obj.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed("field `callback_url` must be a string")),
    };

    let kind = Kind::parse(&kind_raw)
        .ok_or_else(|| invalid("field `kind` must be \"action\" or \"change\""))?;
    check_name("action", &action, ACTION_MAX, is_action_byte)?;
    check_name("environment", &environment, 64, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
    })?;
    check_resource(&resource)?;
    let justification_len = justification.trim().chars().count();
    if justification_len == 0 {
        return Err(invalid("field `justification` must not be empty"));
    }
    if justification_len > MAX_JUSTIFICATION_CHARS {
        return Err(invalid(format!(
            "field `justification` is longer than {MAX_JUSTIFICATION_CHARS} characters"
        )));
    }
    if justification
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid("field `justification` contains control characters"));
    }
    match kind {
        Kind::Action if !changes.is_empty() => {
            return Err(invalid(
                "field `changes` is only allowed for kind \"change\"",
            ));
        }
        Kind::Change if changes.is_empty() => {
            return Err(invalid(
                "kind \"change\" needs at least one entry in `changes`",
            ));
        }
        Kind::Change if !payload.is_null() => {
            return Err(invalid(
                "field `payload` is only allowed for kind \"action\"",
            ));
        }
        _ => {}
    }
    if let Some(url) = &callback_url {
        check_callback(url)?;
    }
    Ok(Submission {
        kind,
        action,
        resource,
        environment,
        justification,
        payload,
        changes,
        callback_url,
    })
}

const ACTION_MAX: usize = 128;

fn is_action_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Whether `name` is an action name a request may carry (also checked for the registry).
pub fn is_valid_action_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= ACTION_MAX && name.bytes().all(is_action_byte)
}

fn check_name(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), SubmissionError> {
    if value.is_empty() {
        return Err(invalid(format!("field `{field}` must not be empty")));
    }
    if value.len() > max {
        return Err(invalid(format!(
            "field `{field}` is longer than {max} bytes"
        )));
    }
    if !value.bytes().all(allowed) {
        return Err(invalid(format!(
            "field `{field}` may only contain letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Resources are slash-separated names (`prod/customers`); they become policy subjects, so no
/// empty, `.` or `..` segments and no leading slash.
fn check_resource(resource: &str) -> Result<(), SubmissionError> {
    if resource.is_empty() {
        return Err(invalid("field `resource` must not be empty"));
    }
    if resource.len() > 256 {
        return Err(invalid("field `resource` is longer than 256 bytes"));
    }
    let bad_char = |b: u8| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@'))
    };
    if resource.bytes().any(bad_char) {
        return Err(invalid(
            "field `resource` may only contain letters, digits and . _ - / : @",
        ));
    }
    if resource
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(invalid(
            "field `resource` must be slash-separated names without empty, '.' or '..' segments",
        ));
    }
    Ok(())
}

fn parse_changes(value: Option<&Value>) -> Result<Vec<FileChange>, SubmissionError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(malformed("field `changes` must be an array")),
    };
    if items.len() > MAX_CHANGES {
        return Err(invalid(format!(
            "field `changes` has more than {MAX_CHANGES} entries"
        )));
    }
    let mut out: Vec<FileChange> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(malformed(format!("`changes[{i}]` must be an object")));
        };
        if let Some(unknown) = obj.keys().find(|k| *k != "path" && *k != "content") {
            return Err(unknown_field(
                unknown,
                &["path", "content"],
                &format!(" in `changes[{i}]`"),
            ));
        }
        let path = required_string(obj, "path").map_err(|e| prefix(e, i))?;
        let content = required_string(obj, "content").map_err(|e| prefix(e, i))?;
        check_path(&path).map_err(|msg| invalid(format!("`changes[{i}].path` {msg}")))?;
        if out.iter().any(|c| c.path == path) {
            return Err(invalid(format!(
                "`changes[{i}].path` repeats an earlier path"
            )));
        }
        out.push(FileChange { path, content });
    }
    Ok(out)
}

fn prefix(e: SubmissionError, i: usize) -> SubmissionError {
    match e {
        SubmissionError::Malformed(m) => malformed(format!("in `changes[{i}]`: {m}")),
        SubmissionError::Invalid(m) => invalid(format!("in `changes[{i}]`: {m}")),
    }
}

/// A repository path must stay inside the repository (relative, no `..`), name what it shows
/// (no invisible or bidirectional characters) and be one git itself accepts.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("is too long".into());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err("must be a relative path with '/' separators (path traversal refused)".into());
    }
    if path.chars().any(|c| c.is_control()) {
        return Err("contains control characters".into());
    }
    if let Some(c) = crate::text::first_invisible(path) {
        return Err(format!(
            "contains {}, an invisible or bidirectional control character",
            crate::text::code_point(c)
        ));
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." {
            return Err("has an empty or '.' segment".into());
        }
        if seg == ".." {
            return Err("contains '..' (path traversal refused)".into());
        }
        if seg.eq_ignore_ascii_case(".git") {
            return Err("must not touch .git".into());
        }
    }
    if !git_accepts(path) {
        return Err(
            "is a path git refuses (a disguised `.git` such as `.git.`, `.git ` or `git~1`)".into(),
        );
    }
    Ok(())
}

/// Whether git would take `path` into a tree: libgit2's own check, run by adding the path to an
/// in-memory index (no repository, so `core.protectNTFS` is on, as in git since 2.24). The
/// HFS+ variants (`.git` with ignorable code points such as U+200C inside) never get here:
/// [`crate::text::first_invisible`] refuses every code point HFS+ ignores.
fn git_accepts(path: &str) -> bool {
    let Ok(mut index) = git2::Index::new() else {
        return false;
    };
    let entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: git2::Oid::zero(),
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    };
    index.add(&entry).is_ok()
}

fn check_callback(url: &str) -> Result<(), SubmissionError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| invalid("field `callback_url` is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            "field `callback_url` must be an http(s) URL with a host",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("field `callback_url` must not carry credentials"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"kind":"action","action":"db.export","resource":"prod/customers","environment":"prod","justification":"report"{extra}}}"#
        )
        .into_bytes()
    }

    fn change(path: &str) -> Vec<u8> {
        format!(
            r#"{{"kind":"change","action":"apply","resource":"gitops","environment":"prod","justification":"bump","changes":[{{"path":"{path}","content":"x"}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn accepts_a_valid_action() {
        let s = parse_submission(&body(r#","payload":{"limit":5}"#)).unwrap();
        assert_eq!(s.kind, Kind::Action);
        assert_eq!(s.payload["limit"], 5);
    }

    #[test]
    fn malformed_and_missing_are_400() {
        assert!(matches!(
            parse_submission(b"{"),
            Err(SubmissionError::Malformed(_))
        ));
        assert!(matches!(
            parse_submission(b"[]"),
            Err(SubmissionError::Malformed(_))
        ));
        let e = parse_submission(br#"{"kind":"action"}"#).unwrap_err();
        assert_eq!(
            e,
            SubmissionError::Malformed("missing field `action`".into())
        );
        let e = parse_submission(&body(r#","paylod":{}"#)).unwrap_err();
        assert_eq!(
            e,
            SubmissionError::Malformed("unknown field; did you mean `payload`?".into())
        );
        let e = parse_submission(&body(r#","sk_live_51HxSecret":1"#)).unwrap_err();
        assert!(!e.to_string().contains("sk_live"), "{e}");
        assert!(
            e.to_string().contains("allowed fields: kind, action"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_are_422_and_never_echo_values() {
        let e = parse_submission(&body("").replace_kind("delete"));
        assert!(matches!(e, Err(SubmissionError::Invalid(m)) if !m.contains("delete")));
        let e = parse_submission(br#"{"kind":"action","action":"","resource":"r","environment":"p","justification":"j"}"#);
        assert!(matches!(e, Err(SubmissionError::Invalid(m)) if m.contains("`action`")));
        let e = parse_submission(&body(
            r#","callback_url":"https://user:s3cret@x.example/cb""#,
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn path_traversal_is_refused() {
        for p in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            ".git/config",
            "a\\\\b",
            "C:/x",
            "./a",
        ] {
            assert!(
                matches!(
                    parse_submission(&change(p)),
                    Err(SubmissionError::Invalid(_))
                ),
                "{p} should be refused"
            );
        }
        assert!(parse_submission(&change("deploy/app/values.yaml")).is_ok());
    }

    #[test]
    fn paths_git_refuses_are_refused_naming_the_path() {
        for p in [
            "deploy/.git./x",
            "deploy/.git /x",
            "deploy/git~1/x",
            ".GIT/x",
            "deploy/.Git/config",
            "deploy/.git . ./x",
            "deploy/GIT~1. /x",
            "deploy/.git::$INDEX_ALLOCATION/x",
        ] {
            match parse_submission(&change(p)) {
                Err(SubmissionError::Invalid(m)) => {
                    assert!(m.contains("`changes[0].path`"), "{p}: {m}")
                }
                other => panic!("{p} should be refused: {other:?}"),
            }
        }
        for p in [
            "deploy/.gitignore",
            "deploy/.github/x",
            "deploy/git/x",
            "deploy/a.git/x",
            "x/gitx~1/y",
        ] {
            assert!(
                parse_submission(&change(p)).is_ok(),
                "{p} is an ordinary path"
            );
        }
    }

    #[test]
    fn invisible_and_bidi_characters_in_paths_are_refused_by_code_point() {
        for (p, c) in [
            ("deploy/\\u202eexe.yaml", "U+202E"),
            ("deploy/a\\u200bb.yaml", "U+200B"),
            ("deploy/.g\\u200cit/x", "U+200C"),
            ("deploy/\\u2066x\\u2069.yaml", "U+2066"),
            ("deploy/\\ufeffx", "U+FEFF"),
        ] {
            match parse_submission(&change(p)) {
                Err(SubmissionError::Invalid(m)) => {
                    assert!(m.contains("`changes[0].path`") && m.contains(c), "{p}: {m}")
                }
                other => panic!("{p} should be refused: {other:?}"),
            }
        }
    }

    trait ReplaceKind {
        fn replace_kind(self, kind: &str) -> Vec<u8>;
    }
    impl ReplaceKind for Vec<u8> {
        fn replace_kind(self, kind: &str) -> Vec<u8> {
            String::from_utf8(self)
                .unwrap()
                .replace("\"kind\":\"action\"", &format!("\"kind\":\"{kind}\""))
                .into_bytes()
        }
    }
}
