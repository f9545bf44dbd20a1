//! The HTTP server of process 0 (`--metrics-addr`): the dashboard on `/` (without the
//! launcher's restarts and actions), `/metrics` in Prometheus's text format and
//! `/api/graph` and `/api/metrics` (everything: graph, every worker's metrics, checkpoints) as
//! JSON. It only reads the process's [`JobMetrics`](super::JobMetrics): nothing it
//! serves changes the job.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::SharedMetrics;
use crate::error::{Error, Result};

/// Binds `addr` (an error naming it when it cannot) and serves on a thread of its own until the
/// process ends. Returns the address bound (the port chosen when `addr` asked for port 0).
pub(crate) fn serve(addr: &str, metrics: SharedMetrics) -> Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/graph", get(graph))
        .route("/api/metrics", get(everything))
        .route("/api/overview", get(overview))
        .route("/api/checkpoints", get(checkpoints))
        .route("/api/exceptions", get(exceptions))
        .route("/", get(dashboard))
        .with_state(metrics);
    serve_router(addr, "--metrics-addr", app)
}

/// Binds `addr` (an error naming `flag` and the address when it cannot) and serves `app` on a
/// thread of its own (a one-thread tokio runtime) until the process ends; returns the address
/// bound (the port chosen when `addr` asked for port 0). The launcher serves its REST API with it.
pub fn serve_router(addr: &str, flag: &str, app: Router) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::config(format!(
            "{flag} {addr}: cannot listen there ({e}); give a free HOST:PORT (port 0 picks one)"
        ))
    })?;
    let bound = listener
        .set_nonblocking(true)
        .and_then(|()| listener.local_addr())
        .map_err(|e| Error::external(format!("server on {addr} ({flag}): {e}")))?;
    let name = flag.to_string();
    std::thread::Builder::new()
        .name("tidal-http".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(listener, app).await
                    })
                });
            if let Err(e) = served {
                crate::warn(format_args!("tidal: the server of {name} stopped: {e}"));
            }
        })
        .map_err(|e| Error::external(format!("starting the server of {flag}: {e}")))?;
    Ok(bound)
}

async fn prometheus(State(metrics): State<SharedMetrics>) -> impl IntoResponse {
    let text = {
        let m = metrics.lock().unwrap_or_else(|p| p.into_inner());
        super::prometheus::render(&m, crate::time::now_millis())
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn graph(State(metrics): State<SharedMetrics>) -> impl IntoResponse {
    let graph = {
        let m = metrics.lock().unwrap_or_else(|p| p.into_inner());
        m.graph.clone().unwrap_or_default()
    };
    axum::Json(graph)
}

async fn everything(State(metrics): State<SharedMetrics>) -> impl IntoResponse {
    let json = metrics.lock().unwrap_or_else(|p| p.into_inner()).to_json();
    axum::Json(json)
}

async fn dashboard() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        super::DASHBOARD,
    )
}

async fn overview(State(metrics): State<SharedMetrics>) -> impl IntoResponse {
    let json = metrics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .overview_json();
    axum::Json(json)
}

async fn checkpoints(State(metrics): State<SharedMetrics>) -> impl IntoResponse {
    let json = serde_json::to_value(
        &metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .checkpoints,
    )
    .unwrap_or_default();
    axum::Json(json)
}

/// Process 0 does not see restarts (the launcher does): none.
async fn exceptions() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "restarts": [] }))
}
