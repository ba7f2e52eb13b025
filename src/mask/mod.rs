//! Masking of request data before it leaves countersign: git records, review text, status
//! answers, logs and the audit trail see the shape and intent of a request, never raw customer
//! data or credentials. [`detect`] finds PII and secrets in text in one pass; [`Masker`] applies
//! it to JSON at any depth (key-name hints, JSON embedded in strings, numbers), reports
//! structured findings (type, JSON pointer, byte span, detector — never the raw value) and,
//! optionally, replaces values with stable keyed pseudonyms (`<email:7f3a9c>`).

pub mod detect;
pub mod names;
mod phone;

pub use detect::{DEFAULT_HINTS, DEFAULT_PHONE_REGIONS, Detector, Finding, Kind};
pub use names::DEFAULT_NAME_KEYS;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// What a secret-hinted value becomes: fixed length, so nothing about it leaks.
pub const SECRET_MASK: &str = "********";

/// One masked value: where it was, what it was, which detector found it. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonFinding {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 6901 pointer to the value (a key that had to be masked is reported at its object).
    pub pointer: String,
    /// Byte span inside the string value, when only part of it was masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
    pub detector: &'static str,
}

/// A masked JSON document and what was masked in it.
#[derive(Debug, Clone)]
pub struct MaskedJson {
    pub value: Value,
    pub findings: Vec<JsonFinding>,
}

/// A request's payload and justification, masked, with findings relative to the request
/// (`/payload/...`, `/justification`).
#[derive(Debug, Clone)]
pub struct MaskedRequest {
    pub payload: Value,
    pub justification: String,
    pub findings: Vec<JsonFinding>,
    /// "2 emails, 1 secret field masked".
    pub summary: String,
}

/// Applies the detectors to text and JSON. Cheap to share (`Arc`).
pub struct Masker {
    detector: Detector,
    pseudonym_key: Option<Zeroizing<Vec<u8>>>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker {
            detector: Detector::new(DEFAULT_HINTS),
            pseudonym_key: None,
        }
    }
}

impl Masker {
    /// `hints`: secret key names (`None` = built-in list); `pseudonym_key`: when set, masked
    /// values become `<type:hmac6>` pseudonyms, equal for equal values within a deployment.
    pub fn new(hints: Option<&[String]>, pseudonym_key: Option<Vec<u8>>) -> Masker {
        let detector = match hints {
            Some(h) => Detector::new(&h.iter().map(String::as_str).collect::<Vec<_>>()),
            None => Detector::new(DEFAULT_HINTS),
        };
        Masker {
            detector,
            pseudonym_key: pseudonym_key.map(Zeroizing::new),
        }
    }

    /// Name-like keys (`None` = [`DEFAULT_NAME_KEYS`]) and phone regions (`None` = `US`).
    pub fn with_detector_options(
        mut self,
        name_keys: Option<&[String]>,
        phone_regions: Option<&[String]>,
    ) -> Result<Masker, String> {
        if let Some(keys) = name_keys {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.detector = self.detector.with_name_keys(&keys);
        }
        if let Some(regions) = phone_regions {
            let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
            self.detector = self.detector.with_phone_regions(&regions)?;
        }
        Ok(self)
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The replacement for one raw value of `kind`.
    fn replacement(&self, kind: Kind, raw: &str) -> String {
        match &self.pseudonym_key {
            Some(key) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                mac.update(kind.as_str().as_bytes());
                mac.update(b"\0");
                mac.update(raw.as_bytes());
                let tag = hex::encode(&mac.finalize().into_bytes()[..3]);
                format!("<{}:{tag}>", kind.as_str())
            }
            None if kind == Kind::SecretField => SECRET_MASK.to_owned(),
            None => detect::mask(kind, raw),
        }
    }

    /// Masks free text; findings refer to byte spans of the input.
    pub fn mask_text(&self, text: &str) -> (String, Vec<Finding>) {
        let findings = self.detector.find(text);
        if findings.is_empty() {
            return (text.to_owned(), findings);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in &findings {
            out.push_str(&text[last..f.start]);
            let raw = &text[f.start..f.end];
            match &self.pseudonym_key {
                // The format-preserving mask is written in place (no string per finding).
                None if f.kind != Kind::SecretField => detect::mask_into(f.kind, raw, &mut out),
                _ => out.push_str(&self.replacement(f.kind, raw)),
            }
            last = f.end;
        }
        out.push_str(&text[last..]);
        (out, findings)
    }

    /// Masked text only.
    pub fn text(&self, text: &str) -> String {
        self.mask_text(text).0
    }

    /// Masks what a request carries for humans: its payload and justification.
    pub fn mask_request(&self, payload: &Value, justification: &str) -> MaskedRequest {
        let mut pointer = String::from("/payload");
        let mut findings = Vec::new();
        let payload = self.walk(payload, &mut pointer, &mut findings);
        let (justification, found) = self.mask_text(justification);
        findings.extend(
            found
                .into_iter()
                .map(|f| finding(f.kind, "/justification", Some([f.start, f.end]), f.detector)),
        );
        let summary = summary(findings.iter().map(|f| f.kind));
        MaskedRequest {
            payload,
            justification,
            findings,
            summary,
        }
    }

    /// Masks a JSON document at any depth.
    pub fn mask_json(&self, value: &Value) -> MaskedJson {
        let mut findings = Vec::new();
        let value = self.walk(value, &mut String::new(), &mut findings);
        MaskedJson { value, findings }
    }

    fn walk(&self, value: &Value, pointer: &mut String, findings: &mut Vec<JsonFinding>) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    let masked = if self.detector.is_secret_key(key) && !child.is_null() {
                        let raw = child.to_string();
                        findings.push(finding(Kind::SecretField, pointer, None, "key-hint"));
                        Value::String(self.replacement(Kind::SecretField, &raw))
                    } else if let (Some(bare), Value::String(s)) =
                        (self.detector.name_key(key), child)
                        && !s.is_empty()
                        && (!bare || names::looks_like_person_name(s))
                    {
                        findings.push(finding(Kind::Name, pointer, None, "key-hint:name"));
                        Value::String(self.replacement(Kind::Name, s))
                    } else if let (true, Value::String(s)) =
                        (self.detector.is_address_key(key), child)
                        && !s.is_empty()
                    {
                        findings.push(finding(Kind::Address, pointer, None, "key-hint:address"));
                        Value::String(self.replacement(Kind::Address, s))
                    } else if let (true, Value::String(s)) =
                        (self.detector.is_birth_date_key(key), child)
                    {
                        findings.push(finding(
                            Kind::DateOfBirth,
                            pointer,
                            None,
                            "key-hint:birth-date",
                        ));
                        Value::String(self.replacement(Kind::DateOfBirth, s))
                    } else {
                        self.walk(child, pointer, findings)
                    };
                    pointer.truncate(len);
                    // Keys are data too (an e-mail used as a key): mask them, keeping them unique.
                    let (mut masked_key, key_findings) = self.mask_text(key);
                    if !key_findings.is_empty() {
                        for f in key_findings {
                            findings.push(finding(f.kind, pointer, None, f.detector));
                        }
                        let base = masked_key.clone();
                        let mut n = 2;
                        while out.contains_key(&masked_key) {
                            masked_key = format!("{base}#{n}");
                            n += 1;
                        }
                    }
                    out.insert(masked_key, masked);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let len = pointer.len();
                        pointer.push('/');
                        pointer.push_str(&i.to_string());
                        let masked = self.walk(item, pointer, findings);
                        pointer.truncate(len);
                        masked
                    })
                    .collect(),
            ),
            Value::String(s) => {
                let trimmed = s.trim_start();
                if (trimmed.starts_with('{') || trimmed.starts_with('['))
                    && let Ok(inner @ (Value::Object(_) | Value::Array(_))) =
                        serde_json::from_str::<Value>(s)
                {
                    let before = findings.len();
                    let masked = self.walk(&inner, pointer, findings);
                    if findings.len() > before {
                        return Value::String(masked.to_string());
                    }
                    return value.clone();
                }
                let (masked, found) = self.mask_text(s);
                if found.is_empty() {
                    return value.clone();
                }
                for f in found {
                    findings.push(finding(f.kind, pointer, Some([f.start, f.end]), f.detector));
                }
                Value::String(masked)
            }
            Value::Number(n) => {
                let text = n.to_string();
                let (masked, found) = self.mask_text(&text);
                if found.is_empty() {
                    return value.clone();
                }
                for f in found {
                    findings.push(finding(f.kind, pointer, None, f.detector));
                }
                Value::String(masked)
            }
            Value::Bool(_) | Value::Null => value.clone(),
        }
    }
}

fn finding(
    kind: Kind,
    pointer: &str,
    span: Option<[usize; 2]>,
    detector: &'static str,
) -> JsonFinding {
    JsonFinding {
        kind: kind.as_str(),
        pointer: pointer.to_owned(),
        span,
        detector,
    }
}

/// "3 emails, 1 card, 2 secret fields masked" (or "nothing masked").
pub fn summary<'a>(kinds: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds {
        *counts.entry(k).or_default() += 1;
    }
    if counts.is_empty() {
        return "nothing masked".to_owned();
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(kind, n)| {
            let name = kind.replace('_', " ");
            match (n, name.as_str()) {
                (1, _) => format!("1 {name}"),
                (_, "ssn") => format!("{n} SSNs"),
                (_, n_ip) if n_ip.starts_with("ip") => {
                    format!("{n} {} addresses", name.to_uppercase())
                }
                (_, _) if name.ends_with('s') => format!("{n} {name}es"),
                _ => format!("{n} {name}s"),
            }
        })
        .collect();
    format!("{} masked", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_at_any_depth_with_hints_embedded_json_and_keys() {
        let m = Masker::default();
        let raw = json!({
            "user": {"email": "ann@example.com", "apiKey": {"nested": "anything"}},
            "list": ["x", "bob@example.org"],
            "blob": "{\"password\":\"hunter2\",\"ok\":1}",
            "carol@example.net": true,
            "limit": 5,
        });
        let masked = m.mask_json(&raw);
        let text = masked.value.to_string();
        for secret in [
            "ann@example.com",
            "anything",
            "bob@example.org",
            "hunter2",
            "carol@example.net",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(masked.value["limit"], 5);
        assert_eq!(masked.value["user"]["apiKey"], SECRET_MASK);
        let pointers: Vec<&str> = masked.findings.iter().map(|f| f.pointer.as_str()).collect();
        assert!(pointers.contains(&"/user/apiKey"), "{pointers:?}");
        assert!(pointers.contains(&"/list/1"), "{pointers:?}");
        assert!(pointers.contains(&"/blob/password"), "{pointers:?}");
        let report = serde_json::to_string(&masked.findings).unwrap();
        assert!(
            !report.contains("hunter2") && !report.contains("ann@"),
            "{report}"
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_the_value() {
        let m = Masker::new(None, Some(b"deployment-key".to_vec()));
        let a = m.text("from ann@example.com");
        let b = m.text("to ann@example.com");
        let tag = a.split_whitespace().last().unwrap();
        assert!(tag.starts_with("<email:") && b.ends_with(tag), "{a} / {b}");
        let other = Masker::new(None, Some(b"other-key".to_vec()));
        assert_ne!(other.text("ann@example.com"), tag);
    }

    #[test]
    fn a_request_is_masked_with_pointers_relative_to_it() {
        let m = Masker::default();
        let r = m.mask_request(
            &json!({"to": "ann@example.com"}),
            "ask bob@example.org first",
        );
        assert!(!r.justification.contains("bob@example.org"));
        let pointers: Vec<&str> = r.findings.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(pointers, ["/payload/to", "/justification"]);
        assert_eq!(r.summary, "2 emails masked");
    }

    #[test]
    fn summaries_count_by_type() {
        assert_eq!(
            summary(["email", "email", "card", "secret_field"]),
            "1 card, 2 emails, 1 secret field masked"
        );
        assert_eq!(summary([]), "nothing masked");
    }
}
