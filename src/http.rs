//! The HTTP API and live dashboard: a mountable axum [`Router`] over a [`Runwarden`] handle.
//!
//! ```no_run
//! # async fn demo(rw: runwarden::Runwarden) -> Result<(), Box<dyn std::error::Error>> {
//! use runwarden::http::{HttpOptions, router};
//!
//! let api = router(rw, HttpOptions::default());
//! // Mount it under any prefix of your own server:
//! let app = axum::Router::new().nest("/admin/runs", api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Every error is one JSON shape, `{error_code, detail, timestamp}`, with stable codes. The
//! OpenAPI document is served at `GET /openapi.json`.

/// The axum version the router is built with, for mounting it.
pub use axum;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, patch, post, put};

use crate::Runwarden;

mod auth;
mod errors;
mod openapi;
mod options;
mod prometheus;
mod runs;
mod service;
mod sse;
mod state;

pub use openapi::openapi_document;
pub use options::{HttpOptions, ParamLimits};

use auth::authenticate;
use errors::not_found_route;
use openapi::openapi;
use runs::{
    cancel_run, cancel_runs, download_log, get_run, get_workflow, list_runs, rerun_run, rerun_runs,
    run_logs, start_run, start_runs,
};
use service::{
    dashboard, health, kinds, metrics, pause_queue, prune, queues, resume_queue, schedules,
    set_kind_rate, set_queue_limits, stats,
};
use sse::{all_events, run_events};
use state::Api;

/// Why [`serve`] would not start.
#[derive(Debug)]
pub enum ServeError {
    /// A non-loopback address without tokens, and `allow_open_non_loopback` unset.
    OpenNonLoopback(SocketAddr),
    /// Binding failed.
    Bind(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::OpenNonLoopback(a) => write!(
                f,
                "refusing to serve without authentication on non-loopback address {a}; \
                 configure a token or set allow_open_non_loopback"
            ),
            ServeError::Bind(e) => write!(f, "cannot bind: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Binds `addr` and serves the API (and dashboard) at its root, after checking that a
/// non-loopback address has authentication. Returns the bound address and the server task.
///
/// # Errors
/// [`ServeError::OpenNonLoopback`], or [`ServeError::Bind`].
pub async fn serve(
    addr: SocketAddr,
    rw: Runwarden,
    options: HttpOptions,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServeError> {
    if !addr.ip().is_loopback() && options.tokens.is_empty() && !options.allow_open_non_loopback {
        return Err(ServeError::OpenNonLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(ServeError::Bind)?;
    let bound = listener.local_addr().map_err(ServeError::Bind)?;
    let app = router(rw, options);
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((bound, task))
}

/// The API's router. Mount it with `Router::nest` under any prefix.
pub fn router(rw: Runwarden, options: HttpOptions) -> Router {
    let max_body = options.max_body_bytes;
    let max_batch_body = options.max_batch_body_bytes;
    let api = Api {
        rw,
        options: Arc::new(options),
        started: Instant::now(),
    };
    let protected = Router::new()
        .route("/runs", post(start_run).get(list_runs))
        .route(
            "/runs/batch",
            post(start_runs).layer(DefaultBodyLimit::max(max_batch_body)),
        )
        .route("/runs/cancel", post(cancel_runs))
        .route("/runs/rerun", post(rerun_runs))
        .route("/runs/{id}/rerun", post(rerun_run))
        .route("/workflows/{id}", get(get_workflow))
        .route("/runs/{id}", get(get_run).delete(cancel_run))
        .route("/runs/{id}/logs", get(run_logs))
        .route("/runs/{id}/logs/download", get(download_log))
        .route("/runs/{id}/events", get(run_events))
        .route("/events", get(all_events))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/maintenance/prune", post(prune))
        .route("/queues", get(queues))
        .route("/schedules", get(schedules))
        .route("/kinds", get(kinds))
        .route("/queues/{name}/pause", post(pause_queue))
        .route("/queues/{name}/resume", post(resume_queue))
        .route("/queues/{name}/limits", patch(set_queue_limits))
        .route("/kinds/{kind}/rate", put(set_kind_rate))
        .route_layer(middleware::from_fn_with_state(api.clone(), authenticate));
    Router::new()
        .route("/", get(dashboard))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found_route)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(api)
}
