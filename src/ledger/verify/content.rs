//! The content checks of `ledger verify`: every line on its own (`entry::check_line`'s verdict:
//! canonical JSON whose `hash` matches, plus the writer's timestamp form), and the chain, in
//! order (`seq` without gaps, `prev` links, file names, UTC days, at most 500 lines a file,
//! timestamps that never go back).

use super::broken::Problem;
use super::fast::{self, Fields};
use crate::ledger::entry::GENESIS;
use crate::ledger::git::{LEDGER_DIR, SEGMENT_ENTRIES};

/// `(day as yyyy/mm/dd, seq in the file name)` of `ledger/yyyy/mm/dd/<12 digits>.jsonl`.
pub(super) fn segment_name(path: &str) -> Result<(&str, i64), &'static str> {
    const SHAPE: &str = "not ledger/yyyy/mm/dd/<12-digit seq>.jsonl";
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let rest = path
        .strip_prefix(LEDGER_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(SHAPE)?;
    let (day, file) = rest.rsplit_once('/').ok_or(SHAPE)?;
    let parts: Vec<&str> = day.split('/').collect();
    let day_ok = matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2)
        && parts.iter().all(|p| digits(p));
    let named = file.strip_suffix(".jsonl").ok_or(SHAPE)?;
    if !day_ok || named.len() != 12 || !digits(named) {
        return Err(SHAPE);
    }
    Ok((day, named.parse().map_err(|_| SHAPE)?))
}

/// The last entry checked.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub seq: i64,
    pub hash: String,
    timestamp: String,
}

/// The chain across files: feed it the appended lines in commit order.
#[derive(Debug, Default)]
pub(super) struct Chain {
    pub last: Option<Link>,
    pub entries: u64,
}

/// A segment lines are appended to.
#[derive(Debug)]
pub(super) struct Segment {
    pub path: String,
    /// `yyyy/mm/dd`, from the path.
    pub day: String,
    /// The seq in the file name.
    pub named: i64,
}

impl Chain {
    /// Links an entry that checked on its own, as line `n` (0-based) of `seg`.
    pub fn link(&mut self, f: Fields, n: usize, seg: &Segment) -> Result<(), Problem> {
        if n >= SEGMENT_ENTRIES {
            let max = SEGMENT_ENTRIES;
            return Err(Problem::TooMany { max });
        }
        if let Some(problem) = self.link_problem(&f, n, seg) {
            return Err(problem);
        }
        self.last = Some(Link {
            seq: f.seq,
            hash: f.hash,
            timestamp: f.timestamp,
        });
        self.entries += 1;
        Ok(())
    }

    /// What is wrong with an entry that checked on its own, as line `n` (0-based) of `seg`.
    fn link_problem(&self, f: &Fields, n: usize, seg: &Segment) -> Option<Problem> {
        let linked = match &self.last {
            None if f.seq != 1 => Some(Problem::FirstSeq { seq: f.seq }),
            None if f.prev != GENESIS => Some(Problem::Chain {
                stated: f.prev.clone(),
                expected: GENESIS.to_owned(),
            }),
            None => None,
            Some(l) if f.seq != l.seq + 1 => Some(Problem::SeqJump {
                from: l.seq,
                to: f.seq,
            }),
            Some(l) if f.prev != l.hash => Some(Problem::Chain {
                stated: f.prev.clone(),
                expected: l.hash.clone(),
            }),
            Some(l) if f.timestamp < l.timestamp => Some(Problem::Backwards {
                timestamp: f.timestamp.clone(),
                previous: l.timestamp.clone(),
            }),
            Some(_) => None,
        };
        linked
            .or_else(|| {
                (n == 0 && f.seq != seg.named).then_some(Problem::FileName {
                    named: seg.named,
                    seq: f.seq,
                })
            })
            .or_else(|| {
                (!same_day(&f.timestamp, &seg.day)).then(|| Problem::Day {
                    timestamp: f.timestamp.clone(),
                    day: seg.day.to_owned(),
                })
            })
    }
}

/// Checks a line on its own; a line that fails comes with its `seq` if it can be read.
pub(super) fn check(line: &[u8]) -> Result<Fields, (Problem, Option<i64>)> {
    check_one(line).map_err(|problem| (problem, seq_of(line)))
}

fn check_one(line: &[u8]) -> Result<Fields, Problem> {
    let text = std::str::from_utf8(line).map_err(|_| Problem::NotUtf8)?;
    let fields = fast::check(text)?;
    if !valid_timestamp(&fields.timestamp) {
        return Err(Problem::Timestamp {
            timestamp: fields.timestamp,
        });
    }
    Ok(fields)
}

/// Exactly the writer's form, `2026-11-21T10:15:02.311Z`, and a real instant (so that
/// comparing the text compares the instants).
fn valid_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b[19] == b'.'
        && b[23] == b'Z'
        && b[20..23].iter().all(u8::is_ascii_digit)
        && humantime::parse_rfc3339(t).is_ok()
}

/// Whether `2026-11-21T…` lies in `2026/11/21`.
fn same_day(timestamp: &str, day: &str) -> bool {
    let (t, d) = (timestamp.as_bytes(), day.as_bytes());
    t[..4] == d[..4] && t[5..7] == d[5..7] && t[8..10] == d[8..10]
}

/// The `seq` of a line that did not check, if it can be read at all.
fn seq_of(line: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_follow_the_layout() {
        assert_eq!(
            segment_name("ledger/2026/11/21/000000000101.jsonl"),
            Ok(("2026/11/21", 101))
        );
        for bad in [
            "ledger/2026/11/21/101.jsonl",
            "ledger/2026/11/000000000101.jsonl",
            "ledger/2026/11/21/000000000101.json",
            "ledger/2026/11/2a/000000000101.jsonl",
            "ledger/x/2026/11/21/000000000101.jsonl",
            "other/2026/11/21/000000000101.jsonl",
        ] {
            assert!(segment_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_the_writers_form() {
        assert!(valid_timestamp("2026-11-21T10:15:02.311Z"));
        assert!(!valid_timestamp("2026-11-21T10:15:02Z"));
        assert!(!valid_timestamp("2026-11-21T10:15:02.311+00"));
        assert!(!valid_timestamp("2026-13-21T10:15:02.311Z"));
        assert!(same_day("2026-11-21T10:15:02.311Z", "2026/11/21"));
        assert!(!same_day("2026-11-22T00:00:00.000Z", "2026/11/21"));
    }
}
