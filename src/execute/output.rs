//! What an executor captured, made fit to store and show: bounded capture (keep a little more
//! than the limit, drain the rest), the credential replaced by `[credential]`, the rest masked
//! with the [`Masker`], and the result cut to [`OUTPUT_LIMIT`] with a `[truncated]` marker.

use crate::mask::Masker;

/// At most this many bytes of output are kept in an `Outcome`.
pub const OUTPUT_LIMIT: usize = 16 * 1024;
/// Appended when output was cut.
pub const TRUNCATED: &str = "\n[truncated]";
/// What the credential becomes wherever it appears.
pub const CREDENTIAL_MASK: &str = "[credential]";
/// Captured beyond the limit so that masking sees whole values near the cut.
pub(crate) const MARGIN: usize = 4 * 1024;
/// How many raw bytes a capture keeps.
pub(crate) const CAPTURE_LIMIT: usize = OUTPUT_LIMIT + MARGIN;

/// Raw bytes of one stream: the first [`CAPTURE_LIMIT`] bytes and whether there was more.
#[derive(Debug, Default, Clone)]
pub(crate) struct Capture {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

impl Capture {
    /// Keeps what fits, notes the rest.
    pub fn push(&mut self, chunk: &[u8]) {
        let room = CAPTURE_LIMIT.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Credential-free, masked text. When the capture was cut, the last (possibly partial)
    /// word is dropped first, so no prefix of a secret survives unmasked.
    pub fn clean(&self, masker: &Masker, token: &str) -> (String, bool) {
        let mut bytes = self.bytes.as_slice();
        if self.truncated {
            bytes = cut_partial_tail(bytes);
        }
        let text = String::from_utf8_lossy(bytes);
        let text = if token.is_empty() {
            text.into_owned()
        } else {
            let mut t = text.replace(token, CREDENTIAL_MASK);
            if self.truncated {
                strip_token_prefix(&mut t, token);
            }
            t
        };
        (masker.text(&text), self.truncated)
    }
}

/// Drops everything after the last whitespace in the final [`MARGIN`] bytes (or the whole
/// margin when there is none).
fn cut_partial_tail(bytes: &[u8]) -> &[u8] {
    let floor = bytes.len().saturating_sub(MARGIN);
    match bytes[floor..].iter().rposition(u8::is_ascii_whitespace) {
        Some(i) => &bytes[..floor + i + 1],
        None => &bytes[..floor],
    }
}

/// Removes a trailing prefix of the token (a token cut by the capture limit); prefixes shorter
/// than four bytes say nothing about it and are left alone.
fn strip_token_prefix(text: &mut String, token: &str) {
    for len in (4..token.len()).rev() {
        if token.is_char_boundary(len) && text.ends_with(&token[..len]) {
            text.truncate(text.len() - len);
            return;
        }
    }
}

/// Joins cleaned stdout and stderr and cuts the result to [`OUTPUT_LIMIT`].
pub(crate) fn finish(parts: &[(&str, String, bool)]) -> String {
    let mut out = String::new();
    let mut truncated = false;
    for (label, text, cut) in parts {
        truncated |= cut;
        if text.is_empty() {
            continue;
        }
        if !label.is_empty() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(label);
            out.push('\n');
        }
        out.push_str(text);
    }
    limit(out, truncated)
}

/// Cuts text to [`OUTPUT_LIMIT`] bytes (marker included) at a character boundary.
pub(crate) fn limit(mut text: String, truncated: bool) -> String {
    if !truncated && text.len() <= OUTPUT_LIMIT {
        return text;
    }
    let mut end = text.len().min(OUTPUT_LIMIT - TRUNCATED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TRUNCATED);
    text
}

/// Error text made safe to store: credential replaced, masked.
pub(crate) fn clean_error(masker: &Masker, token: &str, text: &str) -> String {
    let text = if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, CREDENTIAL_MASK)
    };
    limit(masker.text(&text), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

    #[test]
    fn small_output_is_kept_and_token_replaced() {
        let mut c = Capture::default();
        c.push(format!("token={TOKEN} done\n").as_bytes());
        let (text, cut) = c.clean(&Masker::default(), TOKEN);
        assert!(!cut);
        assert_eq!(text, "token=[credential] done\n");
    }

    #[test]
    fn capture_is_bounded_and_cut_token_prefix_is_dropped() {
        let mut c = Capture::default();
        let filler = "a".repeat(CAPTURE_LIMIT - 10);
        c.push(filler.as_bytes());
        c.push(format!(" {TOKEN}").as_bytes());
        assert_eq!(c.bytes.len(), CAPTURE_LIMIT);
        assert!(c.truncated);
        let (text, cut) = c.clean(&Masker::default(), TOKEN);
        assert!(cut);
        assert!(!text.contains(&TOKEN[..8]), "a token prefix survived");
        let out = finish(&[("", text, cut)]);
        assert!(out.len() <= OUTPUT_LIMIT);
        assert!(out.ends_with(TRUNCATED));
    }

    #[test]
    fn strip_token_prefix_removes_only_a_trailing_prefix() {
        let mut t = format!("x {}", &TOKEN[..5]);
        strip_token_prefix(&mut t, TOKEN);
        assert_eq!(t, "x ");
        let mut t = "nothing here".to_owned();
        strip_token_prefix(&mut t, TOKEN);
        assert_eq!(t, "nothing here");
    }

    #[test]
    fn limit_respects_char_boundaries() {
        let text = "é".repeat(OUTPUT_LIMIT);
        let out = limit(text, false);
        assert!(out.len() <= OUTPUT_LIMIT);
        assert!(out.ends_with(TRUNCATED));
    }

    #[test]
    fn finish_labels_streams() {
        let out = finish(&[
            ("", "out".to_owned(), false),
            ("[stderr]", "err".to_owned(), false),
        ]);
        assert_eq!(out, "out\n[stderr]\nerr");
        assert_eq!(
            finish(&[
                ("", String::new(), false),
                ("[stderr]", String::new(), false)
            ]),
            ""
        );
    }
}
