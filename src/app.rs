//! The composition root: [`Server::start`] builds every part from the configuration (store,
//! forge, ledger, vault, credentials, masking, engine, notifier), serves the HTTP API and starts
//! the background jobs; [`Server::stop`] stops them in order. Nothing else wires parts together.

use crate::config::{ServerConfig, Synchronous};
use crate::credentials::Issuer;
use crate::engine::{Engine, Ports};
use crate::execute::github_app::GitHubApp;
use crate::forge::github::GitHubReviews;
use crate::forge::{Forge, GitHubForge, LocalForge};
use crate::jobs::leadership::SharedKeys;
use crate::jobs::{Jobs, Leadership, LedgerSource, Mode, Notifier, Parts};
use crate::ledger::{PushSettings, Signer};
use crate::mask::Masker;
use crate::server::AppState;
use crate::store::{DataDirLock, PgStore, Store};
use crate::support::clock::{Clock, SystemClock};
use crate::telemetry::Metrics;
use crate::vault::Vault;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server: its address, engine and a handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    forge: ServerForge,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    jobs: Jobs,
    metrics: Arc<Metrics>,
    /// Released when the server is dropped (after [`Server::stop`] closed the store).
    _dir_lock: DataDirLock,
}

impl Server {
    /// Opens the store and repository (creating the embedded ones if needed), binds the listener
    /// and starts serving and the background workers.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Self> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Server::start`] with the request lifecycle on `clock` (tests pass a
    /// [`crate::support::clock::ManualClock`] to drive expiry and retries).
    pub async fn start_with_clock(
        config: &ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // Owners decide who may never approve: a typo must not pass silently.
        for agent in &config.agents {
            for owner in &agent.owners {
                crate::policy::owners::parse(owner).map_err(|why| {
                    anyhow::anyhow!("agent `{}`: invalid owner `{owner}`: {why}", agent.id)
                })?;
            }
        }
        crate::store::create_private_dir(&config.data_dir)?;
        // Before anything is opened: from here on, nothing else writes this data directory.
        let dir_lock = DataDirLock::acquire(&config.data_dir)?;
        let masker = Arc::new(
            Masker::new(config.mask_hints.as_deref(), config.pseudonym_key.clone())
                .with_detector_options(
                    config.mask_name_keys.as_deref(),
                    config.mask_phone_regions.as_deref(),
                )
                .map_err(anyhow::Error::msg)?,
        );
        let replica = config
            .replica_name
            .clone()
            .unwrap_or_else(crate::store::default_replica_name);
        let metrics = Arc::new(Metrics::new());
        // SQLite: this process leads. PostgreSQL: the replicas share the work, the leader
        // lease decides who runs what has one writer (`crate::jobs`). With the local forge,
        // whose repository is this replica's own, only one replica may run.
        let mode = match config.github {
            Some(_) => Mode::Shared,
            None => Mode::Exclusive,
        };
        let (store, pg) = match &config.database_url {
            None => (
                Store::open(&config.database_path(), config.synchronous, masker.clone()).await?,
                None,
            ),
            Some(url) => {
                let pg = PgStore::open_with_lease(url.expose(), masker.clone(), config.lease_ttl)
                    .await?
                    .named(&replica);
                (Store::from(pg.clone()), Some(pg))
            }
        };
        if pg.is_none() {
            metrics.leader.set(1);
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let (forge, ledger_repo) = match &config.github {
            Some(github) => {
                let forge = Arc::new(
                    GitHubForge::new(github, &config.data_dir, Some(metrics.clone()))?
                        .with_public_url(&public_url),
                );
                let repo = forge.repo_path().to_path_buf();
                (ServerForge::GitHub(forge), repo)
            }
            None => (
                ServerForge::Local(Arc::new(LocalForge::open(
                    &config.repo_path(),
                    &config.base_branch,
                    config.repo.is_none(),
                    &public_url,
                    config.synchronous == Synchronous::Full,
                )?)),
                config.repo_path(),
            ),
        };
        // A `kill -9` during a ref update leaves its lock behind; with the data directory
        // locked, those on countersign's own refs can only be such leftovers.
        crate::forge::remove_own_stale_locks(&ledger_repo, &config.ledger_branch);
        // With GitHub, the ledger committed in the clone is published to the repository.
        let ledger_remote = match &forge {
            ServerForge::GitHub(f) => Some((
                f.ledger_remote(&config.ledger_branch)?,
                PushSettings::default(),
            )),
            ServerForge::Local(_) => None,
        };
        let ledger = LedgerSource {
            store: store.clone(),
            repo_path: ledger_repo,
            branch: config.ledger_branch.clone(),
            key_file: config.ledger_key_path(),
            signer: config.ledger_signer.clone(),
            remote: ledger_remote,
            status: Arc::default(),
        };
        // The signing key is made (or found unreadable) now, whichever replica leads.
        let ledger_key =
            Signer::load_or_create(&config.ledger_key_path(), &config.ledger_signer)?.fingerprint();
        let opened_ledger = match pg {
            None => Some(
                ledger
                    .open(None)
                    .await
                    .context("cannot start the audit ledger")?,
            ),
            Some(_) => None,
        };
        let ledger_status = ledger.status.clone();
        let vault = match &config.payload_key {
            Some(hex_key) => Vault::from_hex(hex_key)?,
            None => Vault::load_or_create(&config.data_dir.join("keys").join("payload.key"))?,
        }
        .with_previous(&config.previous_payload_keys)?;
        let credentials = Arc::new(
            Issuer::open(&config.jwt_keys_dir(), &public_url, store.clone())
                .context("cannot load the JWT signing keys")?,
        );
        let leadership = match pg {
            None => None,
            Some(pg) => {
                let mut jwt: Vec<String> =
                    credentials.jwks().keys.into_iter().map(|k| k.kid).collect();
                jwt.sort();
                let keys = SharedKeys {
                    payload: vault.key_id().to_owned(),
                    payload_previous: vault.previous_key_ids(),
                    jwt,
                    pseudonym: config.pseudonym_key.as_deref().map(key_fingerprint),
                    ledger: ledger_key,
                };
                let leadership =
                    Leadership::new(pg.clone(), config.lease_ttl, mode, metrics.clone(), &keys)
                        .await?;
                Some((pg, leadership))
            }
        };
        let settings = crate::engine::Settings {
            clock,
            ..config.into()
        };
        let mut ports = Ports {
            store,
            forge: forge.as_dyn(),
            review_host: None,
            teams: None,
            github_actions: None,
            vault,
            masker,
            credentials,
        };
        if let (ServerForge::GitHub(f), Some(g)) = (&forge, &config.github) {
            let reviews = Arc::new(GitHubReviews::new(f.client().clone(), g.reconcile_interval));
            ports.review_host = Some(reviews.clone());
            ports.teams = Some(reviews);
            ports.github_actions = Some(Arc::new(GitHubApp::new(f.client().clone())));
        }
        let engine = Engine::new(ports, settings);
        engine
            .refresh_policy()
            .await
            .context("cannot read the policy from the base branch")?;
        let notifier = (!config.notify.targets.is_empty())
            .then(|| Notifier::new(engine.clone(), config.notify.clone()));
        let state = AppState {
            engine: engine.clone(),
            ledger: ledger_status,
            notify: notifier.as_ref().map(Notifier::status),
            metrics: metrics.clone(),
            max_body_bytes: config.max_body_bytes,
            token_clients: config.token_clients.clone().into(),
            github_webhook_secrets: config
                .github
                .as_ref()
                .map(|g| g.webhook_secrets.clone().into()),
            replica: replica.into(),
        };
        let state_metrics = metrics;
        let (shutdown, mut http_rx) = watch::channel(false);
        let app = crate::server::router(state);
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        let jobs = Jobs::start(Parts {
            engine: engine.clone(),
            notifier,
            ledger,
            opened_ledger,
            leadership,
        });
        match &config.github {
            Some(g) => {
                tracing::info!(config.listen = %addr, config.data_dir = %config.data_dir.display(), github.repository = %g.repository(), github.api_url = %g.api_url, "countersign serving")
            }
            None => {
                tracing::info!(config.listen = %addr, config.data_dir = %config.data_dir.display(), config.repo = %config.repo_path().display(), "countersign serving")
            }
        }
        Ok(Self {
            addr,
            engine,
            forge,
            shutdown,
            http,
            jobs,
            metrics: state_metrics,
            _dir_lock: dir_lock,
        })
    }

    /// The embedded forge. Panics when the server runs the GitHub forge (`[github]`).
    pub fn local_forge(&self) -> &Arc<LocalForge> {
        match &self.forge {
            ServerForge::Local(f) => f,
            ServerForge::GitHub(_) => panic!("this server uses the GitHub forge"),
        }
    }

    /// The GitHub forge, when `[github]` is configured.
    pub fn github_forge(&self) -> Option<&Arc<GitHubForge>> {
        match &self.forge {
            ServerForge::GitHub(f) => Some(f),
            ServerForge::Local(_) => None,
        }
    }

    /// Whether this replica leads now (with SQLite, always): it runs the ledger writer, the
    /// review inbox, review sync and the sweeper, and has recorded its `leader_elected` entry.
    pub fn leads(&self) -> bool {
        self.metrics.leader.get() == 1
    }

    /// Base URL of the running server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, finishes in-flight requests and background passes.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.http
            .await
            .context("http task panicked")?
            .context("http server failed")?;
        self.jobs.stop().await?;
        self.engine.store().close().await;
        Ok(())
    }

    /// Runs until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// The forge the server was built with.
enum ServerForge {
    Local(Arc<LocalForge>),
    GitHub(Arc<GitHubForge>),
}

impl ServerForge {
    fn as_dyn(&self) -> Arc<dyn Forge> {
        match self {
            ServerForge::Local(f) => f.clone(),
            ServerForge::GitHub(f) => f.clone(),
        }
    }
}

/// A fingerprint of a secret key that says nothing about it: a domain-separated SHA-256,
/// shortened.
fn key_fingerprint(key: &[u8]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"countersign shared key fingerprint\0");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
