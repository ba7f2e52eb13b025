//! The local clone of the GitOps repository (`<data_dir>/github/<owner>/<name>.git`, bare):
//! review commits are built here on top of the fetched base branch and pushed as
//! `countersign/<id>`; policy and templates are read here at a pinned commit. Only the refs
//! countersign needs are fetched (the base branch, one review branch at a time). The audit
//! ledger is committed into this clone and published from it (`git/ledger.rs`).

use super::auth::Token;
use super::transport::{self, HttpContext};
use crate::forge::ForgeError;
use crate::forge::content::{self, ReviewContent};
use git2::{FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// In a git error: GitHub refused the token (see `transport.rs`).
pub const UNAUTHORIZED: &str = "over HTTP answered 401";

pub struct Mirror {
    repo: Arc<Mutex<Repository>>,
    path: PathBuf,
    /// The URL given to libgit2 (http(s) prefixed for our transport).
    remote_url: String,
    base_branch: String,
    http: reqwest::Client,
}

/// The review commit on the remote.
#[derive(Debug)]
pub struct Pushed {
    pub head: Oid,
    /// The rendered description (the pull request body).
    pub description: String,
    /// The branch was on the remote already (pushed before a crash).
    pub existed: bool,
}

impl Mirror {
    /// Opens the clone at `path`, creating an empty bare repository on first use.
    pub fn open(
        path: &Path,
        git_url: &str,
        base_branch: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        transport::register()?;
        let repo = match Repository::open_bare(path) {
            Ok(repo) => repo,
            Err(_) if !path.exists() => {
                crate::support::secrets::create_private_dir(
                    path.parent().unwrap_or(Path::new(".")),
                )?;
                Repository::init_bare(path)?
            }
            Err(e) => anyhow::bail!(
                "cannot open the GitHub clone {}: {}",
                path.display(),
                e.message()
            ),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "git/2.0 (countersign/",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            repo: Arc::new(Mutex::new(repo)),
            path: path.to_path_buf(),
            remote_url: transport::remote_url(git_url),
            base_branch: base_branch.to_owned(),
            http,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same clone, for work that should not wait behind this one's
    /// operations (the ledger's pushes).
    pub fn reopen(&self) -> anyhow::Result<Self> {
        Ok(Self {
            repo: Arc::new(Mutex::new(Repository::open_bare(&self.path)?)),
            path: self.path.clone(),
            remote_url: self.remote_url.clone(),
            base_branch: self.base_branch.clone(),
            http: self.http.clone(),
        })
    }

    /// Whether git needs a token (http(s) remotes do; `file://` in tests does not).
    pub fn needs_token(&self) -> bool {
        self.remote_url.starts_with(transport::PREFIX)
    }

    /// Runs `f` on a blocking thread with the repository and a connected-remote helper.
    async fn run<T: Send + 'static>(
        &self,
        token: Option<Token>,
        f: impl FnOnce(&Git<'_>) -> Result<T, git2::Error> + Send + 'static,
    ) -> Result<T, ForgeError> {
        self.run_until(token, None, f).await
    }

    /// [`Mirror::run`] whose HTTP requests give up at `deadline`.
    async fn run_until<T: Send + 'static>(
        &self,
        token: Option<Token>,
        deadline: Option<tokio::time::Instant>,
        f: impl FnOnce(&Git<'_>) -> Result<T, git2::Error> + Send + 'static,
    ) -> Result<T, ForgeError> {
        let repo = self.repo.clone();
        let ctx = HttpContext {
            client: self.http.clone(),
            runtime: tokio::runtime::Handle::current(),
            token,
            deadline,
        };
        let remote_url = self.remote_url.clone();
        let base = self.base_branch.clone();
        tokio::task::spawn_blocking(move || {
            let repo = repo.lock().expect("clone lock");
            transport::with_context(ctx, || {
                f(&Git {
                    repo: &repo,
                    remote_url: &remote_url,
                    base: &base,
                })
            })
        })
        .await
        .map_err(|e| ForgeError::Transient(format!("git task failed: {e}")))?
        .map_err(|e| ForgeError::Transient(format!("git: {}", e.message())))
    }

    /// Fetches the base branch and the review branch if it was pushed already (a crash after
    /// the push); otherwise builds the review commit on the base branch's head and pushes it.
    pub async fn push_review(
        &self,
        token: Option<Token>,
        content: ReviewContent,
    ) -> Result<Pushed, ForgeError> {
        self.run(token, move |git| {
            let tracking = format!("refs/remotes/origin/{}", content.branch);
            git.fetch(&[
                &git.base_refspec(),
                &format!("+refs/heads/{}:{tracking}", content.branch),
            ])?;
            let repo = git.repo;
            if let Ok(existing) = repo.find_reference(&tracking) {
                let head = existing.peel_to_commit()?;
                let path = content.description_path();
                let description =
                    content::template_in_tree(repo, &head.tree()?, &path).unwrap_or_default();
                return Ok(Pushed {
                    head: head.id(),
                    description,
                    existed: true,
                });
            }
            let parent = repo
                .find_reference(&git.base_tracking())?
                .peel_to_commit()?;
            let built = content::build_commit(repo, &parent, &content)?;
            let local = format!("refs/heads/{}", content.branch);
            repo.reference(&local, built.id, true, "countersign: review commit")?;
            git.push(&format!("{local}:{local}"))?;
            repo.reference(&tracking, built.id, true, "countersign: pushed")?;
            Ok(Pushed {
                head: built.id,
                description: built.description,
                existed: false,
            })
        })
        .await
    }

    /// Text files under `dir` at `commit`, fetching the base branch (then the commit itself)
    /// when the commit is not here yet.
    pub async fn read_files(
        &self,
        token: Option<Token>,
        commit: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, String>, ForgeError> {
        let oid = Oid::from_str(commit)
            .map_err(|_| ForgeError::Permanent("not a commit id".to_owned()))?;
        let dir = dir.to_owned();
        self.run(token, move |git| {
            if git.repo.find_commit(oid).is_err() {
                git.fetch(&[&git.base_refspec()])?;
                if git.repo.find_commit(oid).is_err() {
                    git.fetch(&[&oid.to_string()])?;
                }
            }
            content::read_files(git.repo, oid, &dir)
        })
        .await
    }

    /// Fetches the base branch and returns its head.
    #[cfg(test)]
    pub async fn fetch_base(&self, token: Option<Token>) -> Result<String, ForgeError> {
        self.run(token, |git| {
            git.fetch(&[&git.base_refspec()])?;
            Ok(git
                .repo
                .find_reference(&git.base_tracking())?
                .peel_to_commit()?
                .id()
                .to_string())
        })
        .await
    }
}

/// The repository and remote inside one blocking operation.
struct Git<'a> {
    repo: &'a Repository,
    remote_url: &'a str,
    base: &'a str,
}

impl Git<'_> {
    fn base_tracking(&self) -> String {
        format!("refs/remotes/origin/{}", self.base)
    }

    fn base_refspec(&self) -> String {
        format!("+refs/heads/{}:{}", self.base, self.base_tracking())
    }

    /// Refspecs naming refs the remote does not have are skipped, and tracking refs whose
    /// remote ref is gone are pruned.
    fn fetch(&self, refspecs: &[&str]) -> Result<(), git2::Error> {
        let mut remote = self.repo.remote_anonymous(self.remote_url)?;
        let mut options = FetchOptions::new();
        options.prune(git2::FetchPrune::On);
        options.download_tags(git2::AutotagOption::None);
        remote.fetch(refspecs, Some(&mut options), None)
    }

    /// Pushes one refspec without force; a rejected update is an error.
    fn push(&self, refspec: &str) -> Result<(), git2::Error> {
        self.push_negotiated(refspec, |_| Ok(()))
    }

    /// [`Git::push`], showing the updates to `negotiate` once the remote's refs are known and
    /// before anything is sent: an error from it aborts the push.
    fn push_negotiated(
        &self,
        refspec: &str,
        negotiate: impl FnMut(&[git2::PushUpdate<'_>]) -> Result<(), git2::Error>,
    ) -> Result<(), git2::Error> {
        let mut remote = self.repo.remote_anonymous(self.remote_url)?;
        let rejected = std::cell::RefCell::new(None::<String>);
        {
            let mut callbacks = RemoteCallbacks::new();
            callbacks.push_negotiation(negotiate);
            callbacks.push_update_reference(|_refname, status| {
                if let Some(message) = status {
                    *rejected.borrow_mut() = Some(message.to_owned());
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            remote.push(&[refspec], Some(&mut options))?;
        }
        match rejected.into_inner() {
            Some(message) => Err(git2::Error::from_str(&format!(
                "push rejected by the remote: {message}"
            ))),
            None => Ok(()),
        }
    }
}

mod ledger;
#[cfg(test)]
mod tests;
