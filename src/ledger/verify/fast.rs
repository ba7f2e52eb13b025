//! A faster `entry::check_line` for verifying many lines, exactly as strict: it accepts a line
//! only if `check_line` would, and on any doubt it asks `check_line` for the verdict.
//!
//! `check_line` serialises the entry twice (without `hash` to hash it, with `hash` to compare
//! with the line). Once the line is known to be the canonical form of the entry, the canonical
//! form without `hash` is the same text with the top-level `"hash":…` member (and one comma)
//! cut out, because RFC 8785 writes an object as its members sorted by name, each serialised on
//! its own. So one serialisation is enough, and the hash is taken over the line's own bytes.
//!
//! That serialisation is `entry::canonical`, which uses serde_json's compact output when it
//! provably equals RFC 8785 for the entry.

use crate::ledger::entry::{self, LineError};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::ops::Range;

/// The fields the chain needs from a line that checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Fields {
    pub seq: i64,
    pub prev: String,
    pub hash: String,
    pub timestamp: String,
}

/// Same verdict as `entry::check_line`.
pub(super) fn check(line: &str) -> Result<Fields, LineError> {
    match quick(line) {
        Some(fields) => Ok(fields),
        None => entry::check_line(line).map(|c| Fields {
            seq: c.seq,
            prev: c.prev,
            hash: c.hash,
            timestamp: c.timestamp,
        }),
    }
}

/// The fields if the line is an entry in canonical form whose hash matches; `None` otherwise.
fn quick(line: &str) -> Option<Fields> {
    let map: Map<String, Value> = serde_json::from_str(line).ok()?;
    let seq = map.get("seq")?.as_i64()?;
    for key in ["request_id", "event", "actor"] {
        map.get(key)?.as_str()?;
    }
    map.get("hash")?.as_str()?;
    map.get("prev")?.as_str()?;
    map.get("timestamp")?.as_str()?;
    let value = Value::Object(map);
    if entry::canonical(&value).as_bytes() != line.as_bytes() {
        return None;
    }
    let Value::Object(mut map) = value else {
        return None;
    };
    let cut = hash_member(line.as_bytes())?;
    let mut hasher = Sha256::new();
    hasher.update(&line.as_bytes()[..cut.start]);
    hasher.update(&line.as_bytes()[cut.end..]);
    let mut hex = [0u8; 64];
    hex::encode_to_slice(hasher.finalize(), &mut hex).ok()?;
    let mut take = |key: &str| match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let hash = take("hash")?;
    if hash.strip_prefix("sha256:")?.as_bytes() != hex {
        return None;
    }
    Some(Fields {
        seq,
        prev: take("prev")?,
        hash,
        timestamp: take("timestamp")?,
    })
}

/// In a canonical JSON object, the bytes of its top-level `"hash":…` member and one comma.
fn hash_member(b: &[u8]) -> Option<Range<usize>> {
    const KEY: &[u8] = b"\"hash\":";
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut found = None;
    for (i, &c) in b.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => {
                // A member name starts right after `{` or `,` of the top-level object.
                let at_name = depth == 1 && i > 0 && matches!(b[i - 1], b'{' | b',');
                if at_name && found.is_none() && b[i..].starts_with(KEY) {
                    found = Some(i);
                }
                in_string = true;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => {
                if let Some(start) = found {
                    return Some(start..i + 1);
                }
            }
            _ => {}
        }
    }
    // The last member: cut the comma before it (the object has other members).
    let start = found?;
    (b[start - 1] == b',' && b.last() == Some(&b'}')).then(|| start - 1..b.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{Draft, GENESIS, seal};
    use serde_json::json;

    fn line(fields: Value) -> String {
        let Value::Object(fields) = fields else {
            panic!()
        };
        let draft = Draft {
            request_id: "cr_01JD00000000000000000000AA",
            event: "approved",
            actor: "alice",
            fields,
        };
        seal(7, 1_763_700_000_000, draft, GENESIS).line
    }

    fn same_verdict(text: &str) {
        let slow = entry::check_line(text).map(|c| (c.seq, c.prev, c.hash, c.timestamp));
        let fast = check(text).map(|f| (f.seq, f.prev, f.hash, f.timestamp));
        assert_eq!(fast, slow, "{text}");
    }

    #[test]
    fn agrees_with_check_line() {
        let nested = line(
            json!({"approvers": ["alice", "bob"], "z": {"hash": "x", "a": [1, {"hash": 2}]},
                                 "note": "a \"hash\":\"quoted\", {tricky} [one]\\"}),
        );
        let numbers = line(
            json!({"n": [0, -5, 9_007_199_254_740_992_u64, 9_007_199_254_740_993_u64, 1.5, 2.0, 1e21],
                                  "\u{e000}": 1, "\u{10000}": 2, "é": "ü\u{2028}\u{1f}\u{7f}"}),
        );
        let plain = line(json!({}));
        let hash_of_plain = plain.split("\"hash\":").nth(1).unwrap()[1..72].to_owned();
        let value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert!(
            entry::plain_is_canonical(&value(&nested)) && entry::plain_is_canonical(&value(&plain))
        );
        assert!(!entry::plain_is_canonical(&value(&numbers)));
        for good in [&nested, &numbers, &plain] {
            same_verdict(good);
            assert!(
                quick(good).is_some(),
                "the fast path takes valid lines: {good}"
            );
        }
        let edits = [
            nested.replace("\"bob\"]", "\"mallory\"]"),
            numbers.replace("[0,", "[-0,"),
            numbers.replace("[0,", "[0.0,"),
            numbers.replace("-5,", "-5.0,"),
            numbers.replace(",2,", ",2.0,"),
            numbers.replace("1e+21", "1e21"),
            numbers.replace("\\u001f", "\\u001F"),
            numbers.replace("ü", "\\u00fc"),
            nested.replacen(':', ": ", 1),
            nested.replace("\"seq\":7", "\"seq\":7.0"),
            nested.replace("\"hash\":\"sha256:", "\"hash\":\"sha256:0"),
            nested.replace("\"hash\":\"sha256:", "\"hash_\":\"sha256:"),
            plain.replace(&hash_of_plain, &"0".repeat(64)),
            format!("{plain} "),
            "[1]".to_owned(),
            "{}".to_owned(),
            "".to_owned(),
            "{\"hash\":\"sha256:00\"}".to_owned(),
        ];
        for bad in &edits {
            same_verdict(bad);
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_only_the_top_level_hash_member() {
        let text = r#"{"a":{"hash":"x"},"b":"\"hash\":","hash":"h","z":1}"#;
        let cut = hash_member(text.as_bytes()).unwrap();
        assert_eq!(&text[cut.clone()], r#""hash":"h","#);
        let last = r#"{"a":1,"hash":"h"}"#;
        assert_eq!(
            &last[hash_member(last.as_bytes()).unwrap()],
            r#","hash":"h""#
        );
        assert_eq!(hash_member(br#"{"a":{"hash":"x"}}"#), None);
    }

    proptest::proptest! {
        #[test]
        fn any_one_character_edit_gets_the_same_verdict(at in 0usize..400, c in 0x20u8..0x7f, insert: bool) {
            let valid = line(json!({"approvers": ["alice"], "n": 1.5, "z": {"hash": "x"}}));
            let mut bytes = valid.into_bytes();
            let at = at % bytes.len();
            if insert {
                bytes.insert(at, c);
            } else {
                bytes[at] = c;
            }
            same_verdict(&String::from_utf8(bytes).unwrap());
        }
    }
}
