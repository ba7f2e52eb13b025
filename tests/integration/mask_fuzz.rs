//! Property test of the masker: for arbitrary text (multibyte included) with planted sensitive
//! values, masking never panics, every finding lies on char boundaries, and no planted value
//! survives in the output.

use countersign::mask::Masker;
use proptest::prelude::*;

fn planted() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{3,8}\\.[a-z]{2,6}@example\\.(com|org|net)",
        "ghp_[A-Za-z0-9]{36}",
        "sk_live_[A-Za-z0-9]{24}",
        "xoxb-[0-9]{11}-[0-9]{12}-[A-Za-z0-9]{24}",
        "AIza[A-Za-z0-9_-]{35}",
        "AKIA[A-Z2-7]{16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_never_leaks_a_planted_value(
        before in "\\PC{0,60}",
        secret in planted(),
        after in "\\PC{0,60}",
        separator in prop_oneof![Just(" "), Just("\n"), Just(": "), Just("=\""), Just(", ")],
    ) {
        let masker = Masker::default();
        let text = format!("{before}{separator}{secret} {after}");
        let (masked, findings) = masker.mask_text(&text);
        for f in &findings {
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            prop_assert!(f.start < f.end && f.end <= text.len());
        }
        prop_assert!(!masked.contains(&secret), "{secret} survived in {masked:?}");
    }

    #[test]
    fn arbitrary_input_never_panics(text in "\\PC{0,400}") {
        let masker = Masker::default();
        let (_, findings) = masker.mask_text(&text);
        for f in &findings {
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let _ = masker.mask_json(&serde_json::Value::String(text));
    }
}
