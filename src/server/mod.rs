//! The HTTP API (axum): agent intake and status, reviewer decisions, health, readiness and
//! metrics, over [`AppState`]. The composition root that builds the state and runs the server is
//! `crate::app`.

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
use crate::engine::Engine;
use crate::forge::github::WebhookSecret;
use crate::ledger::LedgerStatus;
use crate::notify::NotifyStatus;
use crate::telemetry::{HttpLabels, Metrics, RouteLabels};
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Instant;

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
    /// This replica's name (`/readyz` shows it with the role the leadership job sets in
    /// the `leader` and `lease_epoch` gauges).
    pub replica: Arc<str>,
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

/// How long `/readyz` waits for the database: an unreachable one must make the replica
/// not ready within a probe's timeout, not after the connection pool gives up.
const DATABASE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

async fn readyz(State(app): State<AppState>) -> Response {
    let database = match tokio::time::timeout(DATABASE_CHECK, app.engine.store().ping()).await {
        Ok(answer) => answer.map_err(|e| format!("{e:#}")),
        Err(_) => Err(format!(
            "the {} did not answer within {} ms",
            app.engine.store().location(),
            DATABASE_CHECK.as_millis()
        )),
    };
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
        replica: replica_readiness(&app),
    };
    (status, Json(body)).into_response()
}

/// This replica's name, role and lease epoch, as the leadership job last set them.
fn replica_readiness(app: &AppState) -> crate::api::ReplicaReadiness {
    let epoch = app.metrics.lease_epoch.get();
    crate::api::ReplicaReadiness {
        name: app.replica.to_string(),
        role: if app.metrics.leader.get() == 1 {
            crate::api::Role::Leader
        } else {
            crate::api::Role::Follower
        },
        lease_epoch: (epoch > 0).then_some(epoch),
    }
}

/// How far the ledger writer got, and whether it is failing; with a remote, how far the
/// published branch lags and why a push fails.
async fn ledger_state(app: &AppState) -> LedgerReadiness {
    let committed = app
        .ledger
        .committed_seq
        .load(std::sync::atomic::Ordering::Relaxed);
    let last = tokio::time::timeout(DATABASE_CHECK, app.engine.store().ledger_last_seq())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(committed);
    // The ledger is the leader's work: a follower's writer is idle (or what is left of the
    // one it ran while it led), so it neither fails nor delays this replica's readiness.
    if app.metrics.leader.get() != 1 {
        return LedgerReadiness {
            ok: true,
            committed_seq: committed,
            pending: 0,
            error: None,
            push: None,
        };
    }
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
