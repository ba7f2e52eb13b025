//! Accuracy of the masking engine on the labelled corpus: at least 99 % of labelled sensitive
//! values masked, at most 1 % of look-alike decoys altered, and no labelled value left in the
//! masked text.

use countersign::mask::corpus::{KINDS, generate};
use countersign::mask::{Kind, Masker};
use std::collections::BTreeMap;

#[test]
fn recall_and_false_alarms_on_the_labelled_corpus() {
    let corpus = generate(42, 2 * 1024 * 1024, 0.06);
    let masker = Masker::default();
    let findings = masker.detector().find(&corpus.text);
    let covered = |span: &std::ops::Range<usize>| {
        findings
            .iter()
            .any(|f| f.start <= span.start && f.end >= span.end)
    };
    let overlaps = |span: &std::ops::Range<usize>| {
        findings
            .iter()
            .any(|f| f.start < span.end && span.start < f.end)
    };

    let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (kind, span) in &corpus.secrets {
        let e = per_kind.entry(kind.as_str()).or_default();
        e.1 += 1;
        if covered(span) {
            e.0 += 1;
        }
    }
    let mut report = String::new();
    for (kind, (found, total)) in &per_kind {
        report.push_str(&format!("{kind}: {found}/{total}\n"));
    }
    let found: usize = per_kind.values().map(|v| v.0).sum();
    let total: usize = per_kind.values().map(|v| v.1).sum();
    let recall = found as f64 / total as f64;
    assert_eq!(
        per_kind.len(),
        KINDS.len(),
        "every kind is in the corpus:\n{report}"
    );
    assert!(recall >= 0.99, "recall {recall:.4} < 0.99\n{report}");

    let mut altered: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (name, span) in &corpus.decoys {
        let e = altered.entry(name).or_default();
        e.1 += 1;
        if overlaps(span) {
            e.0 += 1;
        }
    }
    let hit: usize = altered.values().map(|v| v.0).sum();
    let decoys: usize = altered.values().map(|v| v.1).sum();
    let rate = hit as f64 / decoys as f64;
    assert!(rate <= 0.01, "decoys altered {rate:.4} > 0.01: {altered:?}");

    // The masked text never contains a labelled value.
    let (masked, _) = masker.mask_text(&corpus.text);
    for (kind, span) in corpus.secrets.iter().filter(|(_, s)| covered(s)) {
        let raw = &corpus.text[span.clone()];
        if raw.len() >= 8 && *kind != Kind::Ipv6 {
            assert!(!masked.contains(raw), "{kind:?} value survived masking");
        }
    }
    eprintln!(
        "recall {recall:.4} ({found}/{total}), decoys altered {rate:.4} ({hit}/{decoys})\n{report}"
    );
}
