//! The audit ledger's remote on GitHub ([`GitHubForge::ledger_remote`]): the ledger branch of
//! the local clone pushed to the GitOps repository over HTTPS, **fast-forward only**, with an
//! installation token narrowed to this repository and `contents: write` (cached until five
//! minutes before it expires, so a push costs no token request).
//!
//! The push is checked twice before anything is sent: in libgit2's push negotiation (once the
//! remote's refs are known) countersign refuses unless GitHub's branch is absent, at the tip
//! already, or one of the local branch's own commits; libgit2 then refuses a non-fast-forward
//! itself (the refspec has no `+`), and GitHub's receive-pack refuses an update whose old value
//! is no longer current. When GitHub's branch has commits countersign does not have, they are
//! fetched into `refs/remotes/origin/<branch>` only to describe them (how many, on top of which
//! of countersign's commits); nothing is built on them.

use super::super::transport::RETRY_AFTER;
use super::{Git, Mirror, UNAUTHORIZED};
use crate::forge::ForgeError;
use crate::forge::github::auth::{Access, InstallationToken, Permissions, Token};
use crate::forge::github::{GitHubClient, GitHubForge};
use crate::ledger::{LedgerRemote, PushError, Pushed};
use git2::Oid;
use std::cell::Cell;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// What a ledger push found on the remote.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LedgerPush {
    UpToDate,
    /// `from`: the remote branch's previous commit (`None`: created).
    FastForward {
        from: Option<Oid>,
    },
    Diverged {
        remote: Oid,
        base: Option<Oid>,
        foreign: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Verdict {
    UpToDate,
    Create,
    FastForward(Oid),
    Diverged(Oid),
}

/// The negotiation stopped a push that must not (or need not) happen.
const STOPPED: &str = "countersign stopped the ledger push";

impl Mirror {
    /// Makes the remote's `branch` point at `tip` if it is absent or an ancestor of `tip`.
    pub(super) async fn push_ledger(
        &self,
        token: Option<Token>,
        branch: &str,
        tip: Oid,
        deadline: Instant,
    ) -> Result<LedgerPush, ForgeError> {
        let branch = branch.to_owned();
        self.run_until(token, Some(deadline), move |git| {
            let dst = format!("refs/heads/{branch}");
            let verdict = Cell::new(None::<Verdict>);
            let pushed = git.push_negotiated(&format!("{tip}:{dst}"), |updates| {
                let Some(update) = updates
                    .iter()
                    .find(|u| u.dst_refname() == Some(dst.as_str()))
                else {
                    return Ok(());
                };
                let remote = update.src();
                let v = if remote == tip {
                    Verdict::UpToDate
                } else if remote.is_zero() {
                    Verdict::Create
                } else if git.repo.find_commit(remote).is_ok()
                    && git.repo.graph_descendant_of(tip, remote)?
                {
                    Verdict::FastForward(remote)
                } else {
                    Verdict::Diverged(remote)
                };
                verdict.set(Some(v));
                match v {
                    Verdict::UpToDate | Verdict::Diverged(_) => Err(git2::Error::from_str(STOPPED)),
                    Verdict::Create | Verdict::FastForward(_) => Ok(()),
                }
            });
            match (verdict.get(), pushed) {
                (Some(Verdict::UpToDate), _) => Ok(LedgerPush::UpToDate),
                (Some(Verdict::Diverged(remote)), _) => Ok(git.diverged(&branch, tip, remote)),
                (Some(Verdict::Create), Ok(())) => Ok(LedgerPush::FastForward { from: None }),
                (Some(Verdict::FastForward(from)), Ok(())) => {
                    Ok(LedgerPush::FastForward { from: Some(from) })
                }
                (_, Err(e)) => Err(e),
                (None, Ok(())) => Err(git2::Error::from_str("the push did not name the branch")),
            }
        })
        .await
    }

    /// Fetches the remote's `branch` into `refs/remotes/origin/<branch>`; its commit, or
    /// `None` when the remote has no such branch.
    pub(super) async fn fetch_ledger(
        &self,
        token: Option<Token>,
        branch: &str,
        deadline: Instant,
    ) -> Result<Option<Oid>, ForgeError> {
        let branch = branch.to_owned();
        self.run_until(token, Some(deadline), move |git| {
            let tracking = tracking(&branch);
            git.fetch(&[&format!("+refs/heads/{branch}:{tracking}")])?;
            match git.repo.find_reference(&tracking) {
                Ok(r) => Ok(Some(r.peel_to_commit()?.id())),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

fn tracking(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

impl Git<'_> {
    /// Describes a remote branch that is not on the local one's history: fetched (if its
    /// commit is unknown here) only to count its foreign commits and find the newest commit
    /// both share. A failed fetch leaves those unknown.
    fn diverged(&self, branch: &str, tip: Oid, remote: Oid) -> LedgerPush {
        if self.repo.find_commit(remote).is_err() {
            let tracking = tracking(branch);
            if let Err(e) = self.fetch(&[&format!("+refs/heads/{branch}:{tracking}")]) {
                tracing::debug!(error = %e.message(), "cannot fetch the diverged ledger branch");
            }
        }
        if self.repo.find_commit(remote).is_err() {
            return LedgerPush::Diverged {
                remote,
                base: None,
                foreign: None,
            };
        }
        let base = self.repo.merge_base(tip, remote).ok();
        let foreign = (|| {
            let mut walk = self.repo.revwalk()?;
            walk.push(remote)?;
            walk.hide(tip)?;
            Ok::<_, git2::Error>(walk.take(100_000).count())
        })()
        .ok();
        LedgerPush::Diverged {
            remote,
            base,
            foreign,
        }
    }
}

/// The ledger branch published to the GitHub repository.
struct GitHubLedger {
    client: Arc<GitHubClient>,
    /// Its own handle on the clone: pushes never wait behind review work, nor it behind them.
    mirror: Mirror,
    branch: String,
    token: tokio::sync::Mutex<Option<InstallationToken>>,
}

impl GitHubForge {
    /// Where the ledger writer publishes `branch` of the clone ([`GitHubForge::repo_path`]):
    /// this GitHub repository, fast-forward only.
    pub fn ledger_remote(&self, branch: &str) -> anyhow::Result<Arc<dyn LedgerRemote>> {
        Ok(Arc::new(GitHubLedger {
            client: self.client.clone(),
            mirror: self.mirror.reopen()?,
            branch: branch.to_owned(),
            token: tokio::sync::Mutex::new(None),
        }))
    }
}

impl GitHubLedger {
    /// A token for git: narrowed to this repository and `contents: write` (the installation
    /// token when GitHub refuses to narrow it), cached until shortly before it expires.
    async fn token(&self) -> Result<Option<Token>, ForgeError> {
        if !self.mirror.needs_token() {
            return Ok(None);
        }
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.fresh(SystemTime::now())) {
            return Ok(Some(t.token.clone()));
        }
        let permissions = Permissions::new()
            .with("contents", Access::Write)
            .expect("a valid permission name");
        let token = match self
            .client
            .token_for(&permissions, self.client.repo())
            .await
        {
            Ok(t) => t,
            Err(ForgeError::Permanent(m)) => {
                tracing::warn!(error = %m, "no narrowed token for the ledger push; using the installation token");
                self.client.installation_token().await?
            }
            Err(e) => return Err(e),
        };
        *cached = Some(token.clone());
        Ok(Some(token.token))
    }

    /// Runs `op` with the token; when git answers 401 (the token was revoked), once more with
    /// a new one.
    async fn with_token<T, F, Fut>(&self, op: F) -> Result<T, PushError>
    where
        F: Fn(Option<Token>) -> Fut,
        Fut: Future<Output = Result<T, ForgeError>>,
    {
        let token = self.token().await.map_err(failed)?;
        match op(token).await {
            Err(ForgeError::Transient(m)) if m.contains(UNAUTHORIZED) => {
                *self.token.lock().await = None;
                let token = self.token().await.map_err(failed)?;
                op(token).await.map_err(failed)
            }
            other => other.map_err(failed),
        }
    }
}

/// A failed push, retried later: after the wait GitHub asked for, if it was rate-limited.
fn failed(e: ForgeError) -> PushError {
    let message = e.to_string();
    let asked = message
        .split_once(RETRY_AFTER)
        .and_then(|(_, rest)| rest.split(' ').next()?.parse::<u64>().ok());
    match asked {
        Some(secs) => PushError::RateLimited {
            message,
            retry_after: std::time::Duration::from_secs(secs),
        },
        None => PushError::Failed(message),
    }
}

#[async_trait::async_trait]
impl LedgerRemote for GitHubLedger {
    fn describe(&self) -> String {
        format!("{}/{} on GitHub", self.client.owner(), self.client.repo())
    }

    async fn push(&self, tip: &str, deadline: Instant) -> Result<Pushed, PushError> {
        let tip = Oid::from_str(tip)
            .map_err(|_| PushError::Failed(format!("`{tip}` is not a commit id")))?;
        let pushed = self
            .with_token(|token| self.mirror.push_ledger(token, &self.branch, tip, deadline))
            .await?;
        match pushed {
            LedgerPush::UpToDate => Ok(Pushed::UpToDate),
            LedgerPush::FastForward { from } => Ok(Pushed::FastForward {
                from: from.map(|o| o.to_string()),
            }),
            LedgerPush::Diverged {
                remote,
                base,
                foreign,
            } => Err(PushError::Diverged {
                remote: remote.to_string(),
                base: base.map(|o| o.to_string()),
                foreign,
            }),
        }
    }

    async fn fetch(&self, deadline: Instant) -> Result<Option<String>, PushError> {
        let fetched = self
            .with_token(|token| self.mirror.fetch_ledger(token, &self.branch, deadline))
            .await?;
        Ok(fetched.map(|o| o.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Repository;
    use std::path::Path;
    use std::time::Duration;

    const BRANCH: &str = "countersign/ledger";
    const REF: &str = "refs/heads/countersign/ledger";

    /// A commit on `REF` of `repo` on top of its tip.
    fn commit(repo: &Path, text: &str) -> Oid {
        let repo = Repository::open_bare(repo).unwrap();
        let parent = repo
            .find_reference(REF)
            .ok()
            .map(|r| r.peel_to_commit().unwrap());
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert(
            "file",
            repo.blob(text.as_bytes()).unwrap(),
            git2::FileMode::Blob,
        );
        let base = match &parent {
            Some(p) => p.tree().unwrap(),
            None => repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap(),
        };
        let tree = repo
            .find_tree(update.create_updated(&repo, &base).unwrap())
            .unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some(REF), &sig, &sig, text, &tree, &parents)
            .unwrap()
    }

    fn head(repo: &Path) -> Option<Oid> {
        let repo = Repository::open_bare(repo).unwrap();
        repo.find_reference(REF).ok().map(|r| r.target().unwrap())
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn pushes_fast_forward_only_and_describes_a_divergence() {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin.git");
        Repository::init_bare(&origin).unwrap();
        let clone = dir.path().join("clone.git");
        let url = origin.to_str().unwrap();
        let mirror = Mirror::open(&clone, url, "main", Duration::from_secs(5)).unwrap();
        assert!(!mirror.needs_token());
        let mirror = mirror.reopen().unwrap();
        assert_eq!(
            mirror.fetch_ledger(None, BRANCH, later()).await.unwrap(),
            None
        );

        // Created, then up to date, then fast-forwarded over several commits at once.
        let one = commit(&clone, "one");
        let pushed = mirror
            .push_ledger(None, BRANCH, one, later())
            .await
            .unwrap();
        assert_eq!(pushed, LedgerPush::FastForward { from: None });
        assert_eq!(head(&origin), Some(one));
        let pushed = mirror
            .push_ledger(None, BRANCH, one, later())
            .await
            .unwrap();
        assert_eq!(pushed, LedgerPush::UpToDate);
        commit(&clone, "two");
        let three = commit(&clone, "three");
        let pushed = mirror
            .push_ledger(None, BRANCH, three, later())
            .await
            .unwrap();
        assert_eq!(pushed, LedgerPush::FastForward { from: Some(one) });
        assert_eq!(head(&origin), Some(three));

        // A commit on the origin countersign does not have: never overwritten, described.
        let foreign = commit(&origin, "foreign");
        let four = commit(&clone, "four");
        let expected = LedgerPush::Diverged {
            remote: foreign,
            base: Some(three),
            foreign: Some(1),
        };
        let pushed = mirror
            .push_ledger(None, BRANCH, four, later())
            .await
            .unwrap();
        assert_eq!(pushed, expected);
        assert_eq!(head(&origin), Some(foreign));
        // Known locally now (fetched to describe it): still refused.
        let pushed = mirror
            .push_ledger(None, BRANCH, four, later())
            .await
            .unwrap();
        assert_eq!(pushed, expected);
        assert_eq!(head(&origin), Some(foreign));
        // The local branch never took it in.
        assert_eq!(head(&clone), Some(four));

        // Once the origin is back on countersign's history, everything is caught up.
        Repository::open_bare(&origin)
            .unwrap()
            .reference(REF, three, true, "reset")
            .unwrap();
        let pushed = mirror
            .push_ledger(None, BRANCH, four, later())
            .await
            .unwrap();
        assert_eq!(pushed, LedgerPush::FastForward { from: Some(three) });
        assert_eq!(head(&origin), Some(four));

        // A fresh clone finds the published branch.
        let other = Mirror::open(
            &dir.path().join("other.git"),
            url,
            "main",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            other.fetch_ledger(None, BRANCH, later()).await.unwrap(),
            Some(four)
        );
    }

    /// A server that accepts connections and never answers.
    async fn silent_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("http://{addr}/acme/gitops.git")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_gives_up_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let url = silent_server().await;
        // The per-read timeout is far longer than the deadline.
        let mirror = Mirror::open(
            &dir.path().join("clone.git"),
            &url,
            "main",
            Duration::from_secs(60),
        )
        .unwrap();
        let tip = commit(&dir.path().join("clone.git"), "one");
        let started = std::time::Instant::now();
        let deadline = Instant::now() + Duration::from_millis(300);
        let e = mirror
            .push_ledger(Some(Token::new("t".into())), BRANCH, tip, deadline)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
