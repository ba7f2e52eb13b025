//! The embedded forge: a plain git repository. A review is a branch `countersign/<id>` with one
//! commit adding the masked request record `requests/<yyyy>/<mm>/<id>.json` and its rendered
//! description (`.md`) — plus, for `change` requests, the proposed files — on top of the base
//! branch. Decisions are attached to that commit as git notes under `refs/notes/countersign`.
//! Templates are read from the base branch's `templates/`, falling back to built-in copies.
//! git2 stays inside this module.

use super::content::{
    self, BUILTIN_COMMIT_TEMPLATE, BUILTIN_PR_TEMPLATE, COMMIT_TEMPLATE, PR_TEMPLATE,
    ReviewContent, bot,
};
use super::{Decision, Forge, ForgeError, ReviewRef, ReviewRequest};
use crate::request::RequestId;
use anyhow::Context as _;
use git2::{Oid, Repository};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Files committed on the base branch of a newly created repository.
const SEED_FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# GitOps repository\n\nManaged by countersign: requests live on `countersign/*` branches, decisions in `refs/notes/countersign`.\n",
    ),
    (
        "policies/CODEOWNERS",
        include_str!("../../policies/CODEOWNERS"),
    ),
    (
        "policies/README.md",
        include_str!("../../policies/README.md"),
    ),
    (
        "policies/policy.toml",
        include_str!("../../policies/policy.toml"),
    ),
    (
        "policies/agents.toml",
        include_str!("../../policies/agents.toml"),
    ),
    (
        "policies/teams.toml",
        include_str!("../../policies/teams.toml"),
    ),
    (
        "policies/actions.toml",
        include_str!("../../policies/actions.toml"),
    ),
    (PR_TEMPLATE, BUILTIN_PR_TEMPLATE),
    (COMMIT_TEMPLATE, BUILTIN_COMMIT_TEMPLATE),
    // The chat templates notifications render (the same files the notifier builds in).
    (
        "templates/slack_message.json.j2",
        include_str!("../../templates/slack_message.json.j2"),
    ),
    (
        "templates/teams_card.json.j2",
        include_str!("../../templates/teams_card.json.j2"),
    ),
];

const NOTES_REF: &str = "refs/notes/countersign";
/// Lock files older than this in a repository we did not create are considered abandoned.
const STALE_LOCK_AGE: Duration = Duration::from_secs(600);

pub struct LocalForge {
    repo: Arc<Mutex<Repository>>,
    path: PathBuf,
    base_branch: String,
    public_url: String,
}

impl LocalForge {
    /// Opens an existing repository (which must have `base_branch`), or, with `create`, creates
    /// a bare repository seeded with the example `policies/` and `templates/`. With `fsync`,
    /// libgit2 flushes objects and refs to disk, so reviews also survive a power loss.
    pub fn open(
        path: &Path,
        base_branch: &str,
        create: bool,
        public_url: &str,
        fsync: bool,
    ) -> anyhow::Result<Self> {
        if fsync {
            enable_fsync();
        }
        let repo = match Repository::open(path) {
            Ok(repo) => repo,
            Err(_) if create && !path.exists() => init_seeded(path, base_branch)
                .with_context(|| format!("cannot create the git repository {}", path.display()))?,
            Err(e) => {
                anyhow::bail!(
                    "cannot open git repository {}: {}",
                    path.display(),
                    e.message()
                );
            }
        };
        // A `kill -9` in the middle of a ref update leaves its lock file behind, which would
        // block that ref forever. Our own repository has no other writers; in a repository we
        // were given, only old locks are removed.
        let min_age = if create {
            Duration::ZERO
        } else {
            STALE_LOCK_AGE
        };
        remove_stale_locks(repo.path(), min_age);
        repo.find_branch(base_branch, git2::BranchType::Local)
            .map_err(|_| {
                anyhow::anyhow!(
                    "git repository {} has no branch `{base_branch}`",
                    path.display()
                )
            })?;
        Ok(Self {
            repo: Arc::new(Mutex::new(repo)),
            path: path.to_path_buf(),
            base_branch: base_branch.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits `files` (path → content) on top of `branch` as the bot: for operators seeding a
    /// repository and for tests. Returns the new commit id.
    pub fn commit_files(
        &self,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> anyhow::Result<String> {
        let repo = self.repo.lock().expect("repository lock");
        let parent = repo
            .find_branch(branch, git2::BranchType::Local)?
            .get()
            .peel_to_commit()?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, content) in files {
            update.upsert(*path, repo.blob(content.as_bytes())?, git2::FileMode::Blob);
        }
        let tree = repo.find_tree(update.create_updated(&repo, &parent.tree()?)?)?;
        let sig = bot()?;
        let id = repo.commit(
            Some(&format!("refs/heads/{branch}")),
            &sig,
            &sig,
            message,
            &tree,
            &[&parent],
        )?;
        Ok(id.to_string())
    }

    /// Paths the review commit adds or changes, for the demo and tests.
    pub fn review_files(&self, reference: &str) -> anyhow::Result<Vec<String>> {
        let repo = self.repo.lock().expect("repository lock");
        let commit = repo
            .revparse_single(&format!("refs/heads/{reference}"))?
            .peel_to_commit()?;
        let parent_tree = commit.parent(0)?.tree()?;
        let diff = repo.diff_tree_to_tree(Some(&parent_tree), Some(&commit.tree()?), None)?;
        Ok(diff
            .deltas()
            .filter_map(|d| d.new_file().path().map(|p| p.display().to_string()))
            .collect())
    }

    /// The decision note on a review branch's head, if any.
    pub fn decision_note(&self, reference: &str) -> anyhow::Result<Option<String>> {
        let repo = self.repo.lock().expect("repository lock");
        let head = repo
            .revparse_single(&format!("refs/heads/{reference}"))?
            .peel_to_commit()?
            .id();
        Ok(repo
            .find_note(Some(NOTES_REF), head)
            .ok()
            .and_then(|n| n.message().map(str::to_owned)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, git2::Error> + Send + 'static,
    ) -> Result<T, ForgeError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            let repo = repo.lock().expect("repository lock");
            f(&repo)
        })
        .await
        .map_err(|e| ForgeError::Transient(format!("git task failed: {e}")))?
        .map_err(classify)
    }
}

/// Every local git failure is worth retrying: a missing branch, a lock or a full disk are fixed
/// by an operator without countersign's help, and the engine backs off exponentially.
fn classify(e: git2::Error) -> ForgeError {
    ForgeError::Transient(format!("git: {}", e.message()))
}

fn enable_fsync() {
    // SAFETY: GIT_OPT_ENABLE_FSYNC_GITDIR takes one int argument; libgit2 is initialised first,
    // and the option is a process-wide flag that is safe to set at any time.
    unsafe {
        libgit2_sys::init();
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as libc_int,
            1 as libc_int,
        );
    }
}

#[allow(non_camel_case_types)]
type libc_int = std::ffi::c_int;

/// Removes the lock files an interrupted countersign left on the refs only countersign writes
/// (its review branches `countersign/*`, its notes and the ledger branch), whatever their age.
/// Only for a caller holding the data directory lock ([`crate::store::DataDirLock`]): then no
/// other countersign can be writing those refs, and a lock on them is a leftover of a run that
/// was killed. Locks on other refs keep the age rule of [`LocalForge::open`].
pub fn remove_own_stale_locks(repo_path: &Path, ledger_branch: &str) {
    let Ok(repo) = Repository::open(repo_path) else {
        return;
    };
    let git_dir = repo.path().to_path_buf();
    let ledger_ref = format!("refs/heads/{ledger_branch}");
    for lock in lock_files(&git_dir) {
        let Some(refname) = lock
            .strip_prefix(&git_dir)
            .ok()
            .and_then(|p| p.to_str())
            .and_then(|p| p.strip_suffix(".lock"))
        else {
            continue;
        };
        let own = refname.starts_with("refs/heads/countersign/")
            || refname == NOTES_REF
            || refname == ledger_ref;
        if own && std::fs::remove_file(&lock).is_ok() {
            tracing::warn!(git.lock = %lock.display(), "removed a git lock left by an interrupted countersign");
        }
    }
}

/// Lock files under `refs/`, and `packed-refs.lock`.
fn lock_files(git_dir: &Path) -> Vec<PathBuf> {
    let mut stack = vec![git_dir.join("refs")];
    let mut candidates = vec![git_dir.join("packed-refs.lock")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                candidates.push(path);
            }
        }
    }
    candidates
}

fn remove_stale_locks(git_dir: &Path, min_age: Duration) {
    for lock in lock_files(git_dir) {
        let age = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a >= min_age) && std::fs::remove_file(&lock).is_ok() {
            tracing::warn!(git.lock = %lock.display(), "removed a stale git lock left by an interrupted run");
        }
    }
}

fn init_seeded(path: &Path, base_branch: &str) -> Result<Repository, git2::Error> {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head(base_branch).mkpath(true);
    let repo = Repository::init_opts(path, &opts)?;
    {
        let empty = repo.treebuilder(None)?.write()?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (file, content) in SEED_FILES {
            let blob = repo.blob(content.as_bytes())?;
            update.upsert(*file, blob, git2::FileMode::Blob);
        }
        let tree_id = update.create_updated(&repo, &repo.find_tree(empty)?)?;
        let tree = repo.find_tree(tree_id)?;
        let sig = bot()?;
        repo.commit(
            Some(&format!("refs/heads/{base_branch}")),
            &sig,
            &sig,
            "Initial GitOps repository: example policies and templates",
            &tree,
            &[],
        )?;
    }
    Ok(repo)
}

#[async_trait::async_trait]
impl Forge for LocalForge {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn open_review(&self, request: &ReviewRequest<'_>) -> Result<ReviewRef, ForgeError> {
        let content = ReviewContent::prepare(request, "local");
        let base = self.base_branch.clone();
        let url = format!("{}/v1/requests/{}/review", self.public_url, request.id);
        let branch = content.branch.clone();
        let head = self
            .blocking(move |repo| {
                // Idempotent: a crash after the branch was written leaves it in place.
                if let Ok(existing) = repo.find_branch(&content.branch, git2::BranchType::Local) {
                    return Ok(existing.get().peel_to_commit()?.id());
                }
                let parent = repo
                    .find_branch(&base, git2::BranchType::Local)?
                    .get()
                    .peel_to_commit()?;
                let commit = content::build_commit(repo, &parent, &content)?.id;
                repo.branch(&content.branch, &repo.find_commit(commit)?, false)?;
                Ok(commit)
            })
            .await?;
        Ok(ReviewRef {
            reference: branch,
            head: head.to_string(),
            url,
        })
    }

    async fn publish_decision(
        &self,
        review: &str,
        decision: &Decision<'_>,
    ) -> Result<(), ForgeError> {
        let mut note = format!(
            "countersign: {} by {}\nRequest: {}\nDigest: {}\n",
            decision.state, decision.actor, decision.id, decision.digest
        );
        if let Some(reason) = decision.reason {
            note.push_str(&format!("Reason: {reason}\n"));
        }
        let branch = review.to_owned();
        self.blocking(move |repo| {
            let head: Oid = repo
                .find_branch(&branch, git2::BranchType::Local)?
                .get()
                .peel_to_commit()?
                .id();
            let sig = bot()?;
            // The note keeps every decision shown on the review (approved, then the outcome),
            // each once.
            let existing = repo
                .find_note(Some(NOTES_REF), head)
                .ok()
                .and_then(|n| n.message().map(str::to_owned))
                .unwrap_or_default();
            if existing.contains(&note) {
                return Ok(());
            }
            let text = if existing.is_empty() {
                note
            } else {
                format!("{existing}\n{note}")
            };
            repo.note(&sig, &sig, Some(NOTES_REF), head, &text, true)?;
            Ok(())
        })
        .await
    }

    async fn merge_review(&self, review: &str, id: &RequestId) -> Result<String, ForgeError> {
        let base = self.base_branch.clone();
        let branch = review.to_owned();
        let id = id.as_str().to_owned();
        let merged = self
            .blocking(move |repo| {
                let message = format!("Apply {id} (approved change)");
                super::local_merge::squash(repo, &base, &branch, &id, &message, &bot()?)
            })
            .await?;
        Ok(merged.to_string())
    }

    async fn base_commit(&self) -> Result<String, ForgeError> {
        let base = self.base_branch.clone();
        self.blocking(move |repo| {
            let commit = repo
                .find_branch(&base, git2::BranchType::Local)?
                .get()
                .peel_to_commit()?;
            Ok(commit.id().to_string())
        })
        .await
    }

    async fn read_files(
        &self,
        commit: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, String>, ForgeError> {
        let (commit, dir) = (commit.to_owned(), dir.to_owned());
        self.blocking(move |repo| content::read_files(repo, Oid::from_str(&commit)?, &dir))
            .await
    }

    async fn health(&self) -> Result<(), ForgeError> {
        let base = self.base_branch.clone();
        self.blocking(move |repo| repo.find_branch(&base, git2::BranchType::Local).map(|_| ()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_locks_are_removed_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let heads = dir.path().join("refs/heads/countersign");
        std::fs::create_dir_all(&heads).unwrap();
        let lock = heads.join("cr_x.lock");
        std::fs::write(&lock, "").unwrap();
        remove_stale_locks(dir.path(), Duration::from_secs(3600));
        assert!(
            lock.exists(),
            "a fresh lock in a foreign repository is left alone"
        );
        remove_stale_locks(dir.path(), Duration::ZERO);
        assert!(!lock.exists());
    }
}
