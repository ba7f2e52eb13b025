//! Text people read: the one place that decides which characters are invisible or reorder
//! what surrounds them, and how they are shown instead.
//!
//! Bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE, U+2066–2069 isolates, U+200E/F marks,
//! …) make text read differently from what it says; zero-width and other default-ignorable
//! characters (U+200B, U+FEFF, U+2060, tag characters, …) hide text or split a word so a check
//! does not see it. Intake refuses them where a value names something (paths, identifiers);
//! everywhere a human reads agent- or reviewer-provided text (review descriptions, commit
//! messages, pull request comments, Slack and Teams messages) [`visible`] shows each one as
//! `<U+202E>`. The sets come from Unicode's own property tables (`Bidi_Control`,
//! `Default_Ignorable_Code_Point`, through `icu_properties`), plus control characters and the
//! line and paragraph separators; newline and tab are ordinary text. [`escape_markdown`]
//! shows text as written in Markdown (pull request descriptions, Teams cards).

use icu_properties::CodePointSetData;
use icu_properties::props::{BidiControl, DefaultIgnorableCodePoint};
use std::borrow::Cow;

/// Whether `c` is shown as `<U+XXXX>` rather than as itself.
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control() && c != '\n' && c != '\t';
    }
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || CodePointSetData::new::<BidiControl>().contains(c)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// The first invisible character of `text`, for intake's refusal ("contains U+202E").
pub fn first_invisible(text: &str) -> Option<char> {
    text.chars().find(|c| is_invisible(*c))
}

/// How an invisible character is written: `U+202E`.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// `text` with every invisible character replaced by `<U+XXXX>`; borrowed when there is none.
pub fn visible(text: &str) -> Cow<'_, str> {
    visible_as(text, "<", ">")
}

/// [`visible`] with other brackets, for markups where `<` means something (Slack's mrkdwn
/// takes `&lt;` and `&gt;`).
pub fn visible_as<'a>(text: &'a str, open: &str, close: &str) -> Cow<'a, str> {
    if first_invisible(text).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_invisible(c) {
            out.push_str(open);
            out.push_str(&code_point(c));
            out.push_str(close);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text with every invisible character inside its strings written as a `\uXXXX` escape:
/// the same value once parsed, and readable in a diff. (Outside strings JSON allows only ASCII
/// whitespace, so every such character is inside a string.)
pub fn visible_json(json: &str) -> Cow<'_, str> {
    if first_invisible(json).is_none() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        // ASCII controls are already escaped by any JSON serializer; newlines between tokens
        // must stay as they are.
        if is_invisible(c) && !c.is_ascii() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Markdown (CommonMark, GitHub's, Teams' Adaptive Card subset) that shows `text` as written:
/// every character that can start markup (emphasis, links, images, code, headings, HTML,
/// entities, table cells) is backslash-escaped, and so are list and heading markers at the
/// start of a line; `_` inside a word (`cr_01…`) is left alone, it never emphasises.
pub fn escape_markdown(text: &str) -> String {
    const MARKUP: &str = "\\`*[]()~<>#&!|";
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    let mut digits = false;
    for (i, &c) in chars.iter().enumerate() {
        let at_start = line_start || digits;
        // `_` inside a word (`cr_01…`, `db_export`) never emphasises.
        let inside_word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let escape = MARKUP.contains(c)
            || (c == '_' && !(inside_word(i.checked_sub(1)) && inside_word(Some(i + 1))))
            || (line_start && matches!(c, '-' | '+' | '=' | '{' | '}'))
            || (digits && matches!(c, '.' | ')'));
        if escape {
            out.push('\\');
        }
        out.push(c);
        match c {
            '\n' => (line_start, digits) = (true, false),
            ' ' | '\t' if line_start => {}
            '0'..='9' if at_start => (line_start, digits) = (false, true),
            _ => (line_start, digits) = (false, false),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_zero_width_characters_are_shown_by_code_point() {
        let tricky = "pay\u{202E}gnp.exe a\u{200B}b \u{2066}x\u{2069} \u{200E}\u{200F}\u{FEFF}\u{2060}\u{E0041}";
        let shown = visible(tricky);
        assert_eq!(
            shown,
            "pay<U+202E>gnp.exe a<U+200B>b <U+2066>x<U+2069> <U+200E><U+200F><U+FEFF><U+2060><U+E0041>"
        );
        assert!(first_invisible(&shown).is_none());
        assert_eq!(first_invisible("a\u{2067}b"), Some('\u{2067}'));
    }

    #[test]
    fn every_code_point_hfs_ignores_in_file_names_is_invisible() {
        // git's `next_hfs_char` (utf8.c): what HFS+ drops when comparing names, so `.g\u{200C}it`
        // is `.git` there. Intake relies on these being refused with the rest.
        let hfs_ignored = ('\u{200C}'..='\u{200F}')
            .chain('\u{202A}'..='\u{202E}')
            .chain('\u{206A}'..='\u{206F}')
            .chain(['\u{FEFF}']);
        for c in hfs_ignored {
            assert!(is_invisible(c), "{}", code_point(c));
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "weekly report\n\tindented",
            "naïve café ünïcödé 日本語 עברית العربية",
            "masks ******** and j***@e******.com",
        ] {
            assert!(matches!(visible(text), Cow::Borrowed(_)), "{text}");
        }
        assert_eq!(visible("bell\u{7}"), "bell<U+0007>");
        assert_eq!(visible("line\u{2028}sep"), "line<U+2028>sep");
    }

    #[test]
    fn json_keeps_its_value_and_shows_escapes() {
        let value = serde_json::json!({ "why": "a\u{202E}b", "tag": "\u{E0041}" });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let shown = visible_json(&text);
        assert!(shown.contains("a\\u202eb"), "{shown}");
        assert!(shown.contains("\\udb40\\udc41"), "{shown}");
        assert!(first_invisible(&shown).is_none());
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
    }
}
