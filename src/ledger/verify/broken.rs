//! What `ledger verify` reports when the ledger is not intact: the first broken point, named
//! precisely (commit, file, line, seq) so an auditor can go and look at it with git.

use crate::ledger::entry::LineError;
use crate::ledger::sign::SignatureError;
use std::fmt;

/// A commit as reports name it: `commit 1a2b3c4 ("subject")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRef {
    /// The full object id.
    pub id: String,
    /// The first line of the message.
    pub subject: String,
}

impl CommitRef {
    /// The abbreviated id (7 hex digits), as `git log --oneline` shows it.
    pub fn short(&self) -> &str {
        self.id.get(..7).unwrap_or(&self.id)
    }
}

impl fmt::Display for CommitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 72;
        let subject = match self.subject.char_indices().nth(MAX) {
            Some((at, _)) => format!("{}…", &self.subject[..at]),
            None => self.subject.clone(),
        };
        write!(f, "commit {} ({subject:?})", self.short())
    }
}

/// The first point where the ledger is not intact.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("{commit} is a merge commit: the ledger branch must be linear")]
    Merge { commit: CommitRef },
    #[error("{commit} is not signed")]
    Unsigned { commit: CommitRef },
    #[error("{commit} is signed by an unknown key {fingerprint}")]
    UnknownKey {
        commit: CommitRef,
        fingerprint: String,
    },
    #[error("{commit} has a bad signature: {problem}")]
    BadSignature {
        commit: CommitRef,
        problem: SignatureError,
    },
    /// Trust on first commit, but the first commit publishes no usable keys.
    #[error("{commit} (the first commit) publishes no usable allowed_signers: {problem}")]
    NoTrust { commit: CommitRef, problem: String },
    #[error("{commit} {change}")]
    History { commit: CommitRef, change: Change },
    /// A git object whose content does not hash to its id: the repository was edited on disk.
    #[error("{commit} holds an object altered on disk ({detail})")]
    Corrupt { commit: CommitRef, detail: String },
    #[error("{at}: {problem}")]
    Entry { at: Place, problem: Problem },
}

/// A change a commit may not make to the ledger files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Change {
    #[error("deleted {path}")]
    Deleted { path: String },
    #[error("changed line {line} of {path}")]
    Rewrote { path: String, line: usize },
    #[error("removed line {line} of {path}")]
    Truncated { path: String, line: usize },
    #[error("left {path} without a final newline")]
    Unterminated { path: String },
    #[error("wrote {path}, which is not a ledger segment ({why})")]
    NotSegment { path: String, why: &'static str },
    #[error("appended to {path}, which is not the newest file ({newest})")]
    OldFile { path: String, newest: String },
    #[error("added {path}, which sorts before the newest file {newest}")]
    Before { path: String, newest: String },
}

/// A line of a ledger file, and the commit that added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// The line's `seq`, when it could be read.
    pub seq: Option<i64>,
    pub commit: Option<CommitRef>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} of {}", self.line, self.path)?;
        match (self.seq, &self.commit) {
            (Some(seq), Some(c)) => write!(f, " (seq {seq}, added by {c})"),
            (Some(seq), None) => write!(f, " (seq {seq})"),
            (None, Some(c)) => write!(f, " (added by {c})"),
            (None, None) => Ok(()),
        }
    }
}

/// What is wrong with an entry, on its own or in the chain.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("the line is not UTF-8")]
    NotUtf8,
    #[error("the ledger starts at seq {seq}, not 1")]
    FirstSeq { seq: i64 },
    #[error("seq jumps from {from} to {to}")]
    SeqJump { from: i64, to: i64 },
    #[error("prev is {stated}, but the entry before has hash {expected}")]
    Chain { stated: String, expected: String },
    #[error("the file is named after seq {named}, but its first entry is seq {seq}")]
    FileName { named: i64, seq: i64 },
    #[error("timestamp {timestamp} is not in the file's day {day}")]
    Day { timestamp: String, day: String },
    #[error("timestamp `{timestamp}` is not RFC 3339 UTC with milliseconds")]
    Timestamp { timestamp: String },
    #[error("timestamp {timestamp} is before the previous entry's {previous}")]
    Backwards { timestamp: String, previous: String },
    #[error("the file holds more than {max} entries")]
    TooMany { max: usize },
}
