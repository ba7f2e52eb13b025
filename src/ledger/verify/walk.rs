//! The history walk of `ledger verify`, one commit at a time: its signature, then every ledger
//! file it changed (only whole lines appended to the newest file, or new files after it), whose
//! appended lines go to the line checkers.

use super::content::{self, Segment};
use super::pool::Pool;
use super::tree::{self, Delta};
use super::{Broken, Change, Stop, commit_ref};
use crate::ledger::git::LEDGER_DIR;
use crate::ledger::sign::{AllowedSigners, SignatureError};
use git2::{Commit, ErrorCode, Oid, Repository};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The file lines are appended to, as of the commit being checked.
pub(super) struct Newest {
    segment: Arc<Segment>,
    blob: Oid,
    content: Arc<Vec<u8>>,
    lines: usize,
}

pub(super) struct Walk<'a> {
    pub repo: &'a Repository,
    pub keys: &'a AllowedSigners,
    pub pool: Pool,
    pub newest: Option<Newest>,
    pub files: usize,
    pub signers: BTreeMap<String, usize>,
    pub notes: Vec<String>,
}

/// Only plain, non-executable files belong under `ledger/`.
const REGULAR_FILE: i32 = 0o100644;

impl Walk<'_> {
    pub fn commit(&mut self, oid: Oid, root: bool) -> Result<(), Stop> {
        let commit = self.repo.find_commit(oid)?;
        let principal = self.signature(&commit)?;
        *self.signers.entry(principal).or_default() += 1;
        let parent = if root {
            None
        } else {
            Some(commit.parent(0)?.tree()?)
        };
        let mut deltas = Vec::new();
        tree::diff(
            self.repo,
            parent.as_ref(),
            Some(&commit.tree()?),
            "",
            &mut deltas,
        )?;
        let (mut ledger, others): (Vec<Delta>, Vec<Delta>) = deltas
            .into_iter()
            .partition(|d| d.path().split('/').next() == Some(LEDGER_DIR));
        if !root && !others.is_empty() {
            let paths: Vec<&str> = others.iter().map(Delta::path).collect();
            let note = format!("{} changed {}", commit_ref(&commit), paths.join(", "));
            self.notes.push(note);
        }
        ledger.sort_by(|a, b| a.path().cmp(b.path()));
        for delta in ledger {
            self.apply(&commit, delta)?;
        }
        Ok(())
    }

    /// The principal whose allowed key signed the commit.
    fn signature(&self, commit: &Commit<'_>) -> Result<String, Stop> {
        let (signature, signed) = match self.repo.extract_signature(&commit.id(), Some("gpgsig")) {
            Ok(found) => found,
            Err(e) if e.code() == ErrorCode::NotFound => {
                let commit = commit_ref(commit);
                return Err(Broken::Unsigned { commit }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let armored = signature.as_str().unwrap_or_default();
        match self.keys.verify(armored, &signed) {
            Ok(principal) => Ok(principal.to_owned()),
            Err(SignatureError::UnknownKey(fingerprint)) => Err(Broken::UnknownKey {
                commit: commit_ref(commit),
                fingerprint,
            }
            .into()),
            Err(problem) => Err(Broken::BadSignature {
                commit: commit_ref(commit),
                problem,
            }
            .into()),
        }
    }

    /// Checks one changed ledger file: only whole lines appended to the newest file, or a new
    /// file after it, and every appended line in the chain.
    fn apply(&mut self, commit: &Commit<'_>, delta: Delta) -> Result<(), Stop> {
        let broken = |change: Change| -> Stop {
            Broken::History {
                commit: commit_ref(commit),
                change,
            }
            .into()
        };
        let (path, id, old, mode) = match delta {
            Delta::Deleted { path } => return Err(broken(Change::Deleted { path })),
            Delta::Added { path, id, mode } => (path, id, None, mode),
            Delta::Modified {
                path,
                old,
                new,
                mode,
            } => (path, new, Some(old), mode),
        };
        if mode != REGULAR_FILE {
            let why = "not a plain file";
            return Err(broken(Change::NotSegment { path, why }));
        }
        let (day, named) = match content::segment_name(&path) {
            Ok((day, named)) => (day.to_owned(), named),
            Err(why) => return Err(broken(Change::NotSegment { path, why })),
        };
        let newest_path = self.newest.as_ref().map(|n| n.segment.path.clone());
        let bytes = Arc::new(self.repo.find_blob(id)?.content().to_vec());
        let (segment, lines_before, from) = match old {
            Some(old) => {
                let Some(newest) = self.newest.as_mut().filter(|n| n.segment.path == path) else {
                    // Say what happened to the older file: rewritten, or appended to.
                    let before = self.repo.find_blob(old)?.content().to_vec();
                    appended_only(&path, &before, &bytes).map_err(broken)?;
                    let newest = newest_path.unwrap_or_default();
                    return Err(broken(Change::OldFile { path, newest }));
                };
                if newest.blob != old {
                    let content = self.repo.find_blob(old)?.content().to_vec();
                    newest.lines = content.iter().filter(|b| **b == b'\n').count();
                    newest.content = Arc::new(content);
                }
                appended_only(&path, &newest.content, &bytes).map_err(broken)?;
                (
                    Arc::clone(&newest.segment),
                    newest.lines,
                    newest.content.len(),
                )
            }
            None => {
                if let Some(newest) = newest_path.filter(|n| *n >= path) {
                    return Err(broken(Change::Before { path, newest }));
                }
                if !bytes.ends_with(b"\n") {
                    return Err(broken(Change::Unterminated { path }));
                }
                self.files += 1;
                (Arc::new(Segment { path, day, named }), 0, 0)
            }
        };
        let appended = from..bytes.len();
        let lines = lines_before
            + bytes[appended.clone()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
        self.pool
            .submit(&segment, &bytes, appended, lines_before, commit.id())?;
        self.newest = Some(Newest {
            segment,
            blob: id,
            content: bytes,
            lines,
        });
        Ok(())
    }
}

/// Whether `new` is `old` with whole lines appended (`old` ends with a newline).
fn appended_only(path: &str, old: &[u8], new: &[u8]) -> Result<(), Change> {
    let path = path.to_owned();
    if new.starts_with(old) {
        return match new.ends_with(b"\n") {
            true => Ok(()),
            false => Err(Change::Unterminated { path }),
        };
    }
    let at = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let line = 1 + old[..at].iter().filter(|b| **b == b'\n').count();
    Err(match at == new.len() {
        true => Change::Truncated { path, line },
        false => Change::Rewrote { path, line },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_whole_lines_is_the_only_change_allowed() {
        let old = b"a\nb\nc\n";
        assert_eq!(appended_only("f", old, b"a\nb\nc\nd\n"), Ok(()));
        let rewrote = |line| {
            Err(Change::Rewrote {
                path: "f".into(),
                line,
            })
        };
        assert_eq!(appended_only("f", old, b"a\nB\nc\n"), rewrote(2));
        assert_eq!(appended_only("f", old, b"a\nc\n"), rewrote(2));
        assert_eq!(appended_only("f", old, b"b\na\nc\n"), rewrote(1));
        assert_eq!(
            appended_only("f", old, b"a\nb\n"),
            Err(Change::Truncated {
                path: "f".into(),
                line: 3
            })
        );
        assert_eq!(
            appended_only("f", old, b"a\nb\nc\nd"),
            Err(Change::Unterminated { path: "f".into() })
        );
    }
}
