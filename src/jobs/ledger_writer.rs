//! The single ledger writer: copies entries from the database outbox to the ledger branch in
//! `seq` order, everything waiting at that moment in one signed commit. The branch itself says
//! how far it got, so a crash between the database and git loses and duplicates nothing: the
//! writer resumes after the branch's last entry. Before writing it checks that the branch's
//! last entry is the database's entry of that `seq` (same hash); a branch rewritten or shared
//! with another database stops the writer (fail closed) and marks it unhealthy.
//!
//! With a remote (the GitHub forge), the published branch is read first (a lost clone, or a
//! replica that was not the leader for a while, continues the published ledger), and the
//! writer runs a [`Pusher`] beside it that publishes every commit (`push.rs`).

use crate::ledger::LedgerStatus;
use crate::ledger::git::{Head, LedgerRepo};
use crate::ledger::push::{LedgerRemote, PushGate, PushSettings, Pusher};
use crate::ledger::sign::Signer;
use crate::store::Store;
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The most entries one commit takes.
pub const MAX_BATCH: i64 = 5000;
/// How long the writer waits after a pass that did not fill a commit: entries arriving
/// meanwhile go into the next commit together. Bounds how long an entry waits for git, and
/// how many commits (each several new files in the repository) a busy server makes: at most
/// ten a second unless a backlog fills whole commits.
pub const POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct LedgerWriter {
    repo: Arc<Mutex<LedgerRepo>>,
    store: Store,
    status: Arc<LedgerStatus>,
    /// The branch commit whose last entry was found equal to the database's.
    checked: Mutex<Option<String>>,
    pusher: Option<Pusher>,
}

/// Where the ledger writer writes: opened at start with one replica, and each time this
/// replica becomes the leader with several (the branch may have moved on meanwhile).
pub struct LedgerSource {
    pub store: Store,
    pub repo_path: PathBuf,
    pub branch: String,
    /// The OpenSSH key signing ledger commits, and its allowed-signers principal.
    pub key_file: PathBuf,
    pub signer: String,
    /// With the GitHub forge: where the branch is published, and how patiently.
    pub remote: Option<(Arc<dyn LedgerRemote>, PushSettings)>,
    /// Shared by every writer opened from this source (readiness and metrics read it).
    pub status: Arc<LedgerStatus>,
}

impl LedgerSource {
    /// Opens the ledger branch (creating it, with the signing key published, if needed) and
    /// checks that it agrees with the database. With a remote, the published branch is read
    /// first: a missing local branch continues it, and a local branch that it is ahead of (or
    /// went another way from: another replica led meanwhile) follows it, if it verifies.
    /// With replicas, `gate` checks before every push that this replica still leads.
    pub async fn open(&self, gate: Option<Arc<dyn PushGate>>) -> anyhow::Result<LedgerWriter> {
        let signer = Signer::load_or_create(&self.key_file, &self.signer)?;
        let (path, branch) = (self.repo_path.clone(), self.branch.clone());
        let mut repo =
            tokio::task::spawn_blocking(move || LedgerRepo::open(&path, &branch, signer))
                .await
                .context("ledger task panicked")??;
        if let Some((remote, settings)) = &self.remote {
            repo = follow_published(repo, remote.as_ref(), settings).await?;
        }
        let repo = tokio::task::spawn_blocking(move || -> anyhow::Result<LedgerRepo> {
            repo.ensure_started()?;
            Ok(repo)
        })
        .await
        .context("ledger task panicked")??;
        let repo = Arc::new(Mutex::new(repo));
        let pusher = self.remote.clone().map(|(remote, settings)| Pusher {
            repo: repo.clone(),
            status: self.status.clone(),
            remote,
            settings,
            gate,
        });
        if let Some(p) = &pusher {
            p.install();
        }
        let writer = LedgerWriter {
            repo,
            store: self.store.clone(),
            status: self.status.clone(),
            checked: Mutex::new(None),
            pusher,
        };
        writer.check_head().await?;
        Ok(writer)
    }
}

/// Brings the local branch to the published one where that is ahead (see
/// [`LedgerSource::open`]). Without a local branch the published one must be readable; with
/// one, an unreachable remote only delays publishing (the pusher retries and reports).
async fn follow_published(
    mut repo: LedgerRepo,
    remote: &dyn LedgerRemote,
    settings: &PushSettings,
) -> anyhow::Result<LedgerRepo> {
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let fetched = match remote.fetch(deadline).await {
        Ok(fetched) => fetched,
        Err(e) if repo.tip().is_some() => {
            tracing::warn!(ledger.remote = %remote.describe(), error = %e, "cannot read the published ledger branch; continuing the local one");
            return Ok(repo);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "the ledger branch is not in the local clone, and the published one on {} \
                 cannot be read",
                remote.describe()
            )));
        }
    };
    let Some(commit) = fetched else {
        return Ok(repo);
    };
    let (repo, moved) = tokio::task::spawn_blocking(move || {
        let moved = repo.follow(&commit)?;
        anyhow::Ok((repo, moved))
    })
    .await
    .context("ledger task panicked")??;
    if moved {
        tracing::info!(ledger.remote = %remote.describe(), ledger.seq = repo.head().map_or(0, |h| h.seq), "continuing the published ledger branch");
    }
    Ok(repo)
}

impl LedgerWriter {
    pub fn status(&self) -> Arc<LedgerStatus> {
        self.status.clone()
    }

    /// The branch's last entry, after checking the database has the same entry at that `seq`.
    async fn check_head(&self) -> anyhow::Result<Option<Head>> {
        let head = self.repo.lock().expect("ledger lock").head().cloned();
        let Some(head) = head else {
            self.status.committed_seq.store(0, Ordering::Relaxed);
            return Ok(None);
        };
        let known = self.checked.lock().expect("ledger lock").clone();
        if known.as_deref() != Some(head.commit.as_str()) {
            match self.store.ledger_hash(head.seq).await? {
                Some(hash) if hash == head.hash => {}
                Some(_) => anyhow::bail!(
                    "the ledger branch's entry {} differs from the database's: the branch was \
                     rewritten, or belongs to another countersign database; refusing to write \
                     (check it with `countersign ledger verify`)",
                    head.seq
                ),
                None => {
                    let last = self.store.ledger_last_seq().await?;
                    if last == 0 {
                        anyhow::bail!(
                            "the database {} has no history, but the ledger branch already holds \
                             {} entries: the database was deleted, emptied or replaced by a new \
                             one. Stop countersign and restore the database from a backup; if \
                             the history is to be abandoned on purpose, configure another ledger \
                             branch",
                            self.store.location(),
                            head.seq
                        )
                    }
                    anyhow::bail!(
                        "the ledger branch ends at entry {}, but the database {} only at entry \
                         {last}: the database was restored from an older copy, or belongs to \
                         another countersign; refusing to write (restore the latest backup of \
                         the database, or use another ledger branch)",
                        head.seq,
                        self.store.location()
                    )
                }
            }
            *self.checked.lock().expect("ledger lock") = Some(head.commit.clone());
        }
        self.status.committed_seq.store(head.seq, Ordering::Relaxed);
        Ok(Some(head))
    }

    /// Commits what is waiting (at most [`MAX_BATCH`] entries); returns how many.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let after = self.check_head().await?.map_or(0, |h| h.seq);
        let entries = self.store.ledger_after(after, MAX_BATCH).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let repo = self.repo.clone();
        let n = entries.len();
        let (first, last) = (entries[0].seq, entries[n - 1].seq);
        let commit =
            tokio::task::spawn_blocking(move || repo.lock().expect("ledger lock").append(&entries))
                .await
                .context("ledger task panicked")??;
        *self.checked.lock().expect("ledger lock") = Some(commit.clone());
        self.status.committed_seq.store(last, Ordering::Relaxed);
        self.status.commits.fetch_add(1, Ordering::Relaxed);
        self.status.committed.notify_one();
        self.status.entries.fetch_add(n as u64, Ordering::Relaxed);
        tracing::debug!(
            ledger.first_seq = first,
            ledger.last_seq = last,
            ledger.commit = %commit,
            duration_ms = started.elapsed().as_millis() as u64,
            "ledger entries committed"
        );
        Ok(n)
    }

    /// Commits entries until everything in the database is on the branch.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.pass().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs until shutdown, then commits what is left (and, with a remote, pushes it). Failures
    /// are logged once per distinct error and retried with exponential backoff; entries wait in
    /// the database meanwhile.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        let Some(pusher) = self.pusher.take() else {
            return self.write(shutdown).await;
        };
        let (finish, finishing) = watch::channel(false);
        // Aborted with this task: a replica that stopped leading must not push any more.
        let mut pushing = AbortOnDrop(tokio::spawn(pusher.run(finishing)));
        self.write(shutdown).await;
        let _ = finish.send(true);
        if let Err(e) = (&mut pushing.0).await {
            tracing::error!(error = %e, "ledger pusher panicked");
        }
    }

    async fn write(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::ZERO;
        while !*shutdown.borrow() {
            let wait = match self.pass().await {
                Ok(n) => {
                    if backoff > Duration::ZERO {
                        tracing::info!("ledger writer recovered");
                        self.status.set_error(None);
                    }
                    backoff = Duration::ZERO;
                    if n as i64 >= MAX_BATCH {
                        Duration::ZERO
                    } else {
                        POLL
                    }
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    if self.status.error().as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, "ledger writer failed; entries wait in the database");
                        self.status.set_error(Some(message));
                    }
                    backoff = (backoff * 2).clamp(POLL, MAX_BACKOFF);
                    backoff
                }
            };
            if wait > Duration::ZERO {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        if self.status.error().is_none()
            && let Err(e) = self.catch_up().await
        {
            tracing::error!(error = %format!("{e:#}"), "ledger writer could not finish at shutdown; entries wait in the database");
        }
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
