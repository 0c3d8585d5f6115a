//! The ops listener: `/metrics`, `/healthz`, `/readyz`, `/plugins`.

use crate::background::Background;
use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What each endpoint serves, read at request time.
pub struct Endpoints {
    /// The Prometheus exposition (OpenMetrics text).
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// `Err(why)` when the process should be restarted.
    pub live: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// Whether the pod should receive traffic (here: count as available).
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// The running plugin set.
    pub plugins: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
}

/// The listener, a task of the [`Background`], until it stops or this is
/// dropped.
pub struct OpsServer {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl OpsServer {
    /// Binds `addr` (port 0: any free port) and serves `endpoints`.
    pub fn start(
        addr: SocketAddr,
        endpoints: Endpoints,
        background: &Background,
    ) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!("binding the ops listener to {addr}: is the port taken? choose another with --ops-addr")
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/plugins", get(plugins))
            .with_state(Arc::new(endpoints));
        let listener = {
            let _entered = background.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let stop = background.spawn(|stop| async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the ops listener stopped");
            }
        });
        tracing::info!(%addr, "ops endpoints: /metrics /healthz /readyz /plugins");
        Ok(Self { addr, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Shared = State<Arc<Endpoints>>;

async fn metrics(State(e): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        (e.metrics)(),
    )
        .into_response()
}

async fn healthz(State(e): Shared) -> Response {
    match (e.live)() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(e): Shared) -> Response {
    if (e.ready)() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: plugins not loaded or not subscribed to the group yet, or stopping\n",
        )
            .into_response()
    }
}

async fn plugins(State(e): Shared) -> Response {
    axum::Json((e.plugins)()).into_response()
}
