//! The HTTP API (axum): agent intake and status, reviewer decisions, health, readiness and
//! metrics; plus [`Server`], which assembles store, forge and engine and runs them.

mod auth;
mod body;
mod error;
mod intake;
mod reviews;
mod tokens;
mod webhooks;

#[cfg(test)]
mod api_tests;

pub use error::ApiError;

use crate::api::{Check, Health, LedgerReadiness, Liveness, Readiness, ReadyStatus};
use crate::config::{ServerConfig, Synchronous};
use crate::credentials::Issuer;
use crate::engine::Engine;
use crate::forge::github::WebhookSecret;
use crate::forge::{Forge, GitHubForge, LocalForge};
use crate::ledger::{LedgerStatus, LedgerWriter, PushSettings, Signer};
use crate::mask::Masker;
use crate::notify::{Notifier, NotifyStatus};
use crate::store::{DataDirLock, Store};
use crate::telemetry::{HttpLabels, Metrics, RouteLabels};
use crate::vault::Vault;
use anyhow::Context as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub ledger: Arc<LedgerStatus>,
    /// `None` when no notification destination is configured.
    pub notify: Option<Arc<NotifyStatus>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// Services allowed to introspect tokens.
    pub token_clients: Arc<[crate::config::TokenClient]>,
    /// Secrets GitHub deliveries are signed with; `None` when GitHub is not configured
    /// (`POST /webhooks/github` answers 404).
    pub github_webhook_secrets: Option<Arc<[WebhookSecret]>>,
}

/// The router with every route and the metrics middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/requests", post(intake::submit))
        .route("/v1/requests/{id}", get(intake::status))
        .route("/v1/requests/{id}/reviews", post(reviews::submit_review))
        .route("/v1/requests/{id}/review", get(reviews::show_review))
        .route(
            "/.well-known/openid-configuration",
            get(tokens::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route("/v1/tokens/introspect", post(tokens::introspect))
        .route("/webhooks/github", post(webhooks::github))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    app.metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    tracing::debug!(http.route = %route, http.method = %method, http.status = status, duration_ms = elapsed.as_millis() as u64, "http request");
    response
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: Liveness::Ok,
    })
}

async fn readyz(State(app): State<AppState>) -> Response {
    let database = app
        .engine
        .store()
        .ping()
        .await
        .map_err(|e| format!("{e:#}"));
    let forge = app.engine.forge().health().await.map_err(|e| e.to_string());
    let check = |r: Result<(), String>| Check {
        ok: r.is_ok(),
        error: r.err(),
    };
    let ledger = ledger_state(&app).await;
    let ready = database.is_ok() && forge.is_ok() && ledger.ok;
    let (status, ready) = if ready {
        (StatusCode::OK, ReadyStatus::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyStatus::NotReady)
    };
    let body = Readiness {
        status: ready,
        database: check(database),
        repository: check(forge),
        ledger,
    };
    (status, Json(body)).into_response()
}

/// How far the ledger writer got, and whether it is failing; with a remote, how far the
/// published branch lags and why a push fails.
async fn ledger_state(app: &AppState) -> LedgerReadiness {
    let committed = app
        .ledger
        .committed_seq
        .load(std::sync::atomic::Ordering::Relaxed);
    let last = app
        .engine
        .store()
        .ledger_last_seq()
        .await
        .unwrap_or(committed);
    let error = app.ledger.error();
    let push = app.ledger.push.get().map(|p| p.readiness(committed));
    LedgerReadiness {
        ok: error.is_none() && push.as_ref().is_none_or(|p| p.ok),
        committed_seq: committed,
        pending: last - committed,
        error,
        push,
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    if let Ok(last) = app.engine.store().ledger_last_seq().await {
        app.metrics.observe_ledger(&app.ledger, last);
    }
    if let (Some(status), Ok(counts)) = (&app.notify, app.engine.store().notify_counts().await) {
        app.metrics.observe_notify(status, counts);
    }
    if let Ok((requests, callbacks)) = app.engine.store().state_counts().await {
        app.metrics.observe_states(&requests, &callbacks);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A running server: its address, engine and a handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    forge: ServerForge,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    background: JoinHandle<()>,
    ledger_shutdown: watch::Sender<bool>,
    ledger: JoinHandle<()>,
    notifier: Option<JoinHandle<()>>,
    /// Released when the server is dropped (after [`Server::stop`] closed the store).
    _dir_lock: DataDirLock,
}

impl Server {
    /// Opens the store and repository (creating the embedded ones if needed), binds the listener
    /// and starts serving and the background workers.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Self> {
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
        let store =
            Store::open(&config.database_path(), config.synchronous, masker.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let metrics = Arc::new(Metrics::new());
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
        let signer = Signer::load_or_create(&config.ledger_key_path(), &config.ledger_signer)?;
        // With GitHub, the ledger committed in the clone is published to the repository.
        let ledger_remote = match &forge {
            ServerForge::GitHub(f) => Some((
                f.ledger_remote(&config.ledger_branch)?,
                PushSettings::default(),
            )),
            ServerForge::Local(_) => None,
        };
        let ledger = LedgerWriter::open_with_remote(
            store.clone(),
            &ledger_repo,
            &config.ledger_branch,
            signer,
            ledger_remote,
        )
        .await
        .context("cannot start the audit ledger")?;
        let ledger_status = ledger.status();
        let vault = match &config.payload_key {
            Some(hex_key) => Vault::from_hex(hex_key)?,
            None => Vault::load_or_create(&config.data_dir.join("keys").join("payload.key"))?,
        }
        .with_previous(&config.previous_payload_keys)?;
        let credentials = Arc::new(
            Issuer::open(&config.jwt_keys_dir(), &public_url, store.clone())
                .context("cannot load the JWT signing keys")?,
        );
        let engine = Engine::new(
            store,
            forge.as_dyn(),
            config.into(),
            vault,
            masker,
            credentials,
        );
        if let (ServerForge::GitHub(f), Some(g)) = (&forge, &config.github) {
            engine.attach_github(f.client().clone(), g.reconcile_interval);
        }
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
            metrics,
            max_body_bytes: config.max_body_bytes,
            token_clients: config.token_clients.clone().into(),
            github_webhook_secrets: config
                .github
                .as_ref()
                .map(|g| g.webhook_secrets.clone().into()),
        };
        let (shutdown, rx) = watch::channel(false);
        let mut http_rx = rx.clone();
        let app = router(state);
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        let notifier = notifier.map(|n| tokio::spawn(n.run(rx.clone())));
        let background = tokio::spawn(engine.clone().run_background(rx));
        // The ledger writer stops last, after the engine's final writes.
        let (ledger_shutdown, ledger_rx) = watch::channel(false);
        let ledger = tokio::spawn(ledger.run(ledger_rx));
        match &config.github {
            Some(g) => {
                tracing::info!(listen = %addr, data_dir = %config.data_dir.display(), github.repository = %g.repository(), github.api_url = %g.api_url, "countersign serving")
            }
            None => {
                tracing::info!(listen = %addr, data_dir = %config.data_dir.display(), repo = %config.repo_path().display(), "countersign serving")
            }
        }
        Ok(Self {
            addr,
            engine,
            forge,
            shutdown,
            http,
            background,
            ledger_shutdown,
            ledger,
            notifier,
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
        self.background.await.context("background task panicked")?;
        if let Some(notifier) = self.notifier {
            notifier.await.context("notifier task panicked")?;
        }
        let _ = self.ledger_shutdown.send(true);
        self.ledger.await.context("ledger task panicked")?;
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
