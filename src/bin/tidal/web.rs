//! `tidal run --web-addr`: the launcher's REST API and the dashboard built on it.
//!
//! The launcher outlives the job's processes (it restarts them), so it is the job's face: it
//! knows the job's state, its restarts and their causes, and the processes' ids; what the job
//! itself knows — the graph, every worker's metrics, checkpoints — it asks process 0 for over
//! loopback (process 0 serves it on the `--metrics-addr` the launcher gives the job). Reads
//! change nothing. Actions (trigger a savepoint, stop with a savepoint, cancel) answer only when
//! the launcher was started with `--web-actions`; they are the signals a user could send by hand
//! (SIGUSR1 and SIGUSR2 to process 0, SIGTERM to all). When the job has a cluster secret, an
//! action must also carry `Authorization: Bearer TOKEN`, the token `tidal token` derives from
//! the secret (the secret itself is never sent).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /` | the dashboard (one page, no assets from the network) |
//! | `GET /api/overview` | state, processes, uptime, restarts, whether actions are on |
//! | `GET /api/graph` | the job graph |
//! | `GET /api/metrics` | the graph, every worker's metrics, checkpoints (process 0's view) |
//! | `GET /api/checkpoints` | completed and failed counts, the latest completed ones with paths |
//! | `GET /api/exceptions` | every restart: when and why |
//! | `POST /api/savepoints` | trigger a savepoint (see `/api/checkpoints` for its path) |
//! | `POST /api/stop` | take a savepoint, then stop the job |
//! | `POST /api/cancel` | stop the job without a savepoint and end the launcher |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The dashboard page, embedded in the binary (the one process 0 serves too).
const DASHBOARD: &str = tidal::engine::metrics::DASHBOARD;

/// What the launcher knows of the job, updated by its supervision loop.
#[derive(Debug, Default)]
pub struct JobState {
    /// `STARTING`, `RUNNING`, `RESTARTING`, `FINISHED`, `FAILED` or `CANCELLED`.
    pub state: &'static str,
    /// When the launcher started and when the current attempt did (ms since the epoch).
    pub started_ms: i64,
    pub attempt_started_ms: i64,
    /// Every restart: when (ms since the epoch) and its cause.
    pub restarts: Vec<(i64, String)>,
    /// The running processes' ids, by process index.
    pub pids: Vec<u32>,
}

/// The server's view: the launcher's state, process 0's metrics address, the cancel flag the
/// supervision loop watches, and whether actions are allowed.
#[derive(Clone)]
pub struct Web {
    pub state: Arc<Mutex<JobState>>,
    pub metrics_addr: String,
    pub cancel: Arc<AtomicBool>,
    pub actions: bool,
    pub processes: usize,
    /// With a cluster secret: the token actions must carry (`Authorization: Bearer TOKEN`).
    pub token: Option<String>,
}

/// Binds `addr` (an error naming it when it cannot) and serves on a thread of its own.
pub fn serve(addr: &str, web: Web) -> Result<SocketAddr, String> {
    let app = Router::new()
        .route("/", get(dashboard))
        .route("/api/overview", get(overview))
        .route("/api/graph", get(graph))
        .route("/api/metrics", get(metrics))
        .route("/api/checkpoints", get(checkpoints))
        .route("/api/exceptions", get(exceptions))
        .route("/api/savepoints", post(savepoint))
        .route("/api/stop", post(stop))
        .route("/api/cancel", post(cancel))
        .with_state(web);
    tidal::engine::metrics::server::serve_router(addr, "--web-addr", app).map_err(|e| e.to_string())
}

async fn dashboard() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DASHBOARD,
    )
}

async fn overview(State(web): State<Web>) -> impl IntoResponse {
    let now = tidal::engine::now_millis();
    let job = from_process_0(&web.metrics_addr, "/api/metrics").await;
    let s = web.state.lock().unwrap_or_else(|p| p.into_inner());
    axum::Json(json!({
        "state": s.state,
        "processes": web.processes,
        "workers": job.as_ref().and_then(|j| j["workers"].as_array().map(Vec::len)).unwrap_or(0),
        "pids": s.pids,
        "started_ms": s.started_ms,
        "uptime_ms": now - s.started_ms,
        "attempt_uptime_ms": now - s.attempt_started_ms,
        "restarts": s.restarts.len(),
        "actions": web.actions,
    }))
}

async fn graph(State(web): State<Web>) -> Response {
    match from_process_0(&web.metrics_addr, "/api/graph").await {
        Some(graph) => axum::Json(graph).into_response(),
        None => unavailable(),
    }
}

async fn metrics(State(web): State<Web>) -> Response {
    match from_process_0(&web.metrics_addr, "/api/metrics").await {
        Some(m) => axum::Json(m).into_response(),
        None => unavailable(),
    }
}

async fn checkpoints(State(web): State<Web>) -> Response {
    match from_process_0(&web.metrics_addr, "/api/metrics").await {
        Some(m) => axum::Json(m["checkpoints"].clone()).into_response(),
        None => unavailable(),
    }
}

async fn exceptions(State(web): State<Web>) -> impl IntoResponse {
    let s = web.state.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<Value> = s
        .restarts
        .iter()
        .map(|(at, cause)| json!({ "at_ms": at, "cause": cause }))
        .collect();
    axum::Json(json!({ "restarts": list }))
}

async fn savepoint(State(web): State<Web>, headers: HeaderMap) -> Response {
    act(&web, &headers, "trigger a savepoint", |pids| {
        signal(pids.first().copied(), nix::sys::signal::Signal::SIGUSR1)
    })
}

async fn stop(State(web): State<Web>, headers: HeaderMap) -> Response {
    act(&web, &headers, "stop the job with a savepoint", |pids| {
        signal(pids.first().copied(), nix::sys::signal::Signal::SIGUSR2)
    })
}

async fn cancel(State(web): State<Web>, headers: HeaderMap) -> Response {
    let cancel = Arc::clone(&web.cancel);
    act(&web, &headers, "cancel the job", move |_| {
        cancel.store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// Runs an action when actions are allowed, the request carries the token (with a cluster
/// secret) and the job runs: 202 with what was done, 403 when actions are off, 401 without the
/// right token, 409 when no process runs, 500 when the signal could not be sent.
fn act(
    web: &Web,
    headers: &HeaderMap,
    what: &str,
    action: impl FnOnce(&[u32]) -> Result<(), String>,
) -> Response {
    if !web.actions {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": format!("cannot {what}: actions are off; start `tidal run` with --web-actions to allow them")
            })),
        )
            .into_response();
    }
    if let Some(token) = &web.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            tidal::engine::warn(format_args!(
                "tidal: refused a REST request to {what}: no valid token"
            ));
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({
                    "error": format!("cannot {what}: the job has a cluster secret; send `Authorization: Bearer TOKEN` with the token `tidal token --cluster-secret-file FILE` prints")
                })),
            )
                .into_response();
        }
    }
    let pids = {
        let s = web.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.state != "RUNNING" {
            return (
                StatusCode::CONFLICT,
                axum::Json(json!({ "error": format!("cannot {what}: the job is {}", s.state) })),
            )
                .into_response();
        }
        s.pids.clone()
    };
    match action(&pids) {
        Ok(()) => {
            tidal::engine::say(format_args!("tidal: asked through the REST API to {what}"));
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "requested": what })),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": format!("cannot {what}: {e}") })),
        )
            .into_response(),
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn signal(pid: Option<u32>, signal: nix::sys::signal::Signal) -> Result<(), String> {
    let pid = pid.ok_or("process 0 is not running")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
        .map_err(|e| format!("signal to process 0 (pid {pid}): {e}"))
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": "process 0 of the job does not answer (starting, restarting or ended)" })),
    )
        .into_response()
}

/// GETs `path` from process 0's metrics server on loopback and parses the JSON body; `None`
/// when it does not answer (the job is starting, restarting or has ended). HTTP/1.0, so the
/// answer comes whole, without chunks, and the connection closes after it.
async fn from_process_0(addr: &str, path: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), fetch)
        .await
        .ok()
        .flatten()
}
