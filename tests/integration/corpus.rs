//! The labelled corpus generator of the testkit (used by the accuracy test and the masking
//! benchmark): labels point at valid values, and a seed always gives the same text.

use countersign::mask::Kind;
use testkit::corpus::{generate, luhn_ok};

/// ISO 13616: moving the first four characters to the end and reading letters as 10..35 leaves
/// remainder 1 modulo 97.
fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|&c| c != b' ').collect();
    let (head, tail) = compact.split_at(4);
    let remainder = tail.iter().chain(head).try_fold(0u32, |r, &c| match c {
        b'0'..=b'9' => Some((r * 10 + u32::from(c - b'0')) % 97),
        b'A'..=b'Z' => Some((r * 100 + u32::from(c - b'A') + 10) % 97),
        _ => None,
    });
    (15..=34).contains(&compact.len()) && remainder == Some(1)
}

#[test]
fn labels_point_at_their_values_and_generators_are_valid() {
    let c = generate(7, 64 * 1024, 0.3);
    assert!(c.secrets.len() > 100 && c.decoys.len() > 50);
    for (kind, span) in &c.secrets {
        assert!(!c.text[span.clone()].is_empty(), "{kind:?}");
    }
    for (kind, span) in &c.secrets {
        let v = &c.text[span.clone()];
        match kind {
            Kind::Card => assert!(luhn_ok(&v.replace(' ', "")), "{v}"),
            Kind::Iban => assert!(iban_ok(v), "{v}"),
            _ => {}
        }
    }
    assert_eq!(
        generate(7, 4096, 0.3).text,
        generate(7, 4096, 0.3).text,
        "deterministic"
    );
}
