//! `countersign ledger verify`: checks a ledger branch from its first commit to its tip and
//! reports the first broken point precisely.
//!
//! The first-parent history is walked from the root (a merge is an error: the ledger is
//! linear). Every commit must carry an SSH signature by an allowed key (given, or published in
//! the branch's first commit: trust on first commit). Against its parent, a commit may only
//! append whole lines to the newest ledger file or add newer files; files outside `ledger/`
//! may change (the report notes it). The lines each commit appends are checked as it appends
//! them, in commit order, which is also path order: so every line of the tip is checked once,
//! in `seq` order, and a bad line is blamed on the commit that wrote it. Each blob version is
//! read once (libgit2 checks that it hashes to its id), and only the newest file's content is
//! kept between commits. Lines are checked on worker threads while the walk reads on; their
//! results are linked into the chain in order, so the first broken point is the same as a
//! single-threaded walk would find.
//!
//! Modules: `walk` (one commit), `tree` (what it changed), `pool` (the workers), `content`
//! (the chain), `fast` (one line), `broken` (what is reported).

mod broken;
mod content;
mod fast;
mod pool;
mod tree;
mod walk;

pub use broken::{Broken, Change, CommitRef, Place, Problem};

use crate::ledger::git::{ALLOWED_SIGNERS, Head, LEDGER_DIR};
use crate::ledger::sign::AllowedSigners;
use anyhow::Context as _;
use content::Chain;
use git2::{Commit, ErrorCode, ObjectType, Oid, Repository, Tree};
use pool::Pool;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use walk::Walk;

/// What an intact ledger holds, and what it was checked against.
#[derive(Debug, Clone)]
pub struct Report {
    pub entries: u64,
    pub files: usize,
    pub commits: usize,
    /// The last entry, and the tip commit it was verified at (`None`: no entries yet).
    pub head: Option<Head>,
    /// The branch's tip commit.
    pub tip: String,
    pub trust: Trust,
    /// Who signed the commits, and how many each.
    pub signers: Vec<SignerUse>,
    /// Changes outside `ledger/` (e.g. a key added to `allowed_signers`).
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

/// Where the keys that signatures were checked against came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Given by the caller (an allowed-signers file obtained out of band).
    Given,
    /// The `allowed_signers` of the branch's first commit (trust on first commit).
    FirstCommit(CommitRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerUse {
    pub principal: String,
    pub commits: usize,
}

/// Checks the ledger on `branch` of the repository at `repo_path`: `Ok(Err(_))` names the
/// first broken point; `Err(_)` means it could not be read at all (no repository, no branch,
/// a damaged git object).
pub fn verify(
    repo_path: &Path,
    branch: &str,
    allowed: Option<&AllowedSigners>,
) -> anyhow::Result<Result<Report, Broken>> {
    let repo = open(repo_path)?;
    let tip = branch_tip(&repo, branch)?;
    verify_in(&repo, tip, allowed)
}

/// [`verify`] of the history ending at `tip` (a commit that need not be on a branch: the
/// writer checks a fetched copy of the branch before adopting it).
pub fn verify_commit(
    repo_path: &Path,
    tip: Oid,
    allowed: Option<&AllowedSigners>,
) -> anyhow::Result<Result<Report, Broken>> {
    verify_in(&open(repo_path)?, tip, allowed)
}

fn verify_in(
    repo: &Repository,
    tip: Oid,
    allowed: Option<&AllowedSigners>,
) -> anyhow::Result<Result<Report, Broken>> {
    let started = Instant::now();
    match walk(repo, tip, allowed) {
        Ok(mut report) => {
            report.elapsed = started.elapsed();
            Ok(Ok(report))
        }
        Err(Stop::Broken(b)) => Ok(Err(*b)),
        Err(Stop::Unreadable(e)) => Err(e),
        Err(Stop::Altered(detail)) => Err(anyhow::anyhow!("damaged git object: {detail}")),
    }
}

/// What [`for_each_line`] calls with each line: `(path, line number, line)`.
pub type LineVisitor<'a> = dyn FnMut(&str, usize, &[u8]) -> anyhow::Result<()> + 'a;

/// Calls `visit(path, line number, line)` for every line of every ledger file at `rev` (a
/// branch name or a commit id), in path order. Nothing is verified.
pub fn for_each_line(
    repo_path: &Path,
    rev: &str,
    visit: &mut LineVisitor<'_>,
) -> anyhow::Result<()> {
    let repo = open(repo_path)?;
    let tip = match branch_tip(&repo, rev) {
        Ok(tip) => tip,
        Err(e) => match Oid::from_str(rev) {
            Ok(oid) if rev.len() == 40 => oid,
            _ => return Err(e),
        },
    };
    let root = repo.find_commit(tip)?.tree()?;
    let Some(entry) = root.get_name(LEDGER_DIR) else {
        return Ok(());
    };
    let ledger = repo.find_tree(entry.id())?;
    visit_tree(&repo, &ledger, LEDGER_DIR, visit)
}

fn visit_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    prefix: &str,
    visit: &mut LineVisitor<'_>,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = tree.iter().collect();
    entries.sort_by(|a, b| a.name_bytes().cmp(b.name_bytes()));
    for e in entries {
        let path = format!("{prefix}/{}", String::from_utf8_lossy(e.name_bytes()));
        match e.kind() {
            Some(ObjectType::Tree) => visit_tree(repo, &repo.find_tree(e.id())?, &path, visit)?,
            Some(ObjectType::Blob) if content::segment_name(&path).is_ok() => {
                let blob = repo.find_blob(e.id())?;
                for (n, line) in blob.content().split(|b| *b == b'\n').enumerate() {
                    if !line.is_empty() {
                        visit(&path, n + 1, line)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn open(repo_path: &Path) -> anyhow::Result<Repository> {
    Repository::open(repo_path)
        .with_context(|| format!("cannot open git repository {}", repo_path.display()))
}

fn branch_tip(repo: &Repository, branch: &str) -> anyhow::Result<Oid> {
    let refname = format!("refs/heads/{branch}");
    let reference = repo.find_reference(&refname).map_err(|e| match e.code() {
        ErrorCode::NotFound | ErrorCode::InvalidSpec => {
            anyhow::anyhow!("no branch `{branch}` in {}", repo.path().display())
        }
        _ => anyhow::Error::new(e).context(format!("cannot read branch `{branch}`")),
    })?;
    Ok(reference
        .peel_to_commit()
        .with_context(|| format!("branch `{branch}` does not point at a commit"))?
        .id())
}

/// Why the walk stopped early.
enum Stop {
    Broken(Box<Broken>),
    /// An object's content does not match its id (named by the caller, who knows the commit).
    Altered(String),
    Unreadable(anyhow::Error),
}

impl Stop {
    /// An altered object, blamed on the commit being read.
    fn blame(self, commit: impl FnOnce() -> CommitRef) -> Stop {
        match self {
            Stop::Altered(detail) => Broken::Corrupt {
                commit: commit(),
                detail,
            }
            .into(),
            other => other,
        }
    }
}

impl From<Broken> for Stop {
    fn from(b: Broken) -> Stop {
        Stop::Broken(Box::new(b))
    }
}

impl From<Box<Broken>> for Stop {
    fn from(b: Box<Broken>) -> Stop {
        Stop::Broken(b)
    }
}

impl From<git2::Error> for Stop {
    fn from(e: git2::Error) -> Stop {
        match e.code() {
            ErrorCode::HashsumMismatch => Stop::Altered(e.message().to_owned()),
            _ => Stop::Unreadable(anyhow::Error::new(e).context("cannot read the ledger branch")),
        }
    }
}

fn commit_ref(commit: &Commit<'_>) -> CommitRef {
    CommitRef {
        id: commit.id().to_string(),
        subject: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
    }
}

/// The branch's first-parent history, root first.
fn history(repo: &Repository, tip: Oid) -> Result<Vec<Oid>, Stop> {
    let mut commits = Vec::new();
    let mut merge = None;
    let mut at = tip;
    loop {
        let unnamed = || CommitRef {
            id: at.to_string(),
            subject: String::new(),
        };
        let commit = repo
            .find_commit(at)
            .map_err(|e| Stop::from(e).blame(unnamed))?;
        commits.push(at);
        if commit.parent_count() > 1 {
            merge = Some(commit_ref(&commit)); // the oldest one wins
        }
        match commit.parent_id(0) {
            Ok(parent) => at = parent,
            Err(_) => break,
        }
    }
    if let Some(commit) = merge {
        return Err(Broken::Merge { commit }.into());
    }
    commits.reverse();
    Ok(commits)
}

/// The keys published in the first commit.
fn first_commit_keys(repo: &Repository, root: Oid) -> Result<(AllowedSigners, CommitRef), Stop> {
    let commit = repo.find_commit(root)?;
    let cref = commit_ref(&commit);
    let no_trust = |problem: String| Broken::NoTrust {
        commit: cref.clone(),
        problem,
    };
    let Some(entry) = commit.tree()?.get_name(ALLOWED_SIGNERS).map(|e| e.id()) else {
        return Err(no_trust(format!("it has no {ALLOWED_SIGNERS} file")).into());
    };
    let blob = repo.find_blob(entry)?;
    let text = std::str::from_utf8(blob.content())
        .map_err(|_| no_trust(format!("{ALLOWED_SIGNERS} is not UTF-8")))?;
    let keys = AllowedSigners::parse(text).map_err(|e| no_trust(format!("{e:#}")))?;
    if keys.is_empty() {
        return Err(no_trust(format!("{ALLOWED_SIGNERS} lists no key")).into());
    }
    Ok((keys, cref))
}

fn walk(repo: &Repository, tip: Oid, allowed: Option<&AllowedSigners>) -> Result<Report, Stop> {
    let name = |oid: Oid| match repo.find_commit(oid) {
        Ok(c) => commit_ref(&c),
        Err(_) => CommitRef {
            id: oid.to_string(),
            subject: String::new(),
        },
    };
    let commits = history(repo, tip)?;
    let (keys, trust) = match allowed {
        Some(keys) => (keys.clone(), Trust::Given),
        None => {
            let (keys, root) =
                first_commit_keys(repo, commits[0]).map_err(|e| e.blame(|| name(commits[0])))?;
            (keys, Trust::FirstCommit(root))
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut chain = Chain::default();
    let walk = std::thread::scope(|scope| {
        let mut walk = Walk {
            repo,
            keys: &keys,
            pool: Pool::start(scope, workers),
            newest: None,
            files: 0,
            signers: BTreeMap::new(),
            notes: Vec::new(),
        };
        for (i, oid) in commits.iter().enumerate() {
            let walked = walk
                .commit(*oid, i == 0)
                .map_err(|e| e.blame(|| name(*oid)));
            // Lines appended before a broken commit come first in the report.
            walk.pool.link(&mut chain, walked.is_err(), &name)?;
            walked?;
        }
        walk.pool.link(&mut chain, true, &name)?;
        Ok::<_, Stop>((walk.files, walk.signers, walk.notes))
    })?;
    let (files, signers, notes) = walk;
    let head = chain.last.as_ref().map(|l| Head {
        seq: l.seq,
        hash: l.hash.clone(),
        commit: tip.to_string(),
    });
    Ok(Report {
        entries: chain.entries,
        files,
        commits: commits.len(),
        head,
        tip: tip.to_string(),
        trust,
        signers: (signers.into_iter())
            .map(|(principal, commits)| SignerUse { principal, commits })
            .collect(),
        notes,
        elapsed: Duration::ZERO,
    })
}
