//! `wasmpipe run`, wired: the plugin set (read from the plugin directory,
//! or from a ConfigMap mirrored into it), the reloader, the ops endpoints
//! and the pipeline, stopped together. The binary parses flags and calls
//! [`run`]; tests call it the same way.

use crate::background::Background;
use crate::config::{ValidConfig, load_snapshot};
use crate::k8s::ConfigMapMirror;
use crate::ops::{Endpoints, OpsServer, Telemetry};
use crate::reload::{Reloader, Snapshot, Status, Updates, Watch, WatchOptions, read_snapshot};
use crate::runtime::{Chain, Runtime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Everything `wasmpipe run` needs beyond the pipeline's own settings.
pub struct App {
    /// The pipeline: Kafka, topics, delivery, the plugin directory, limits.
    pub config: ValidConfig,
    /// Run no plugin: records are copied through.
    pub passthrough: bool,
    /// Keep the set loaded at start.
    pub no_reload: bool,
    /// How often the plugin directory is read whole regardless of events.
    pub reload_rescan: Duration,
    /// Mirror this ConfigMap (in `namespace`, or the pod's own) into the
    /// plugin directory.
    pub watch_configmap: Option<String>,
    pub namespace: Option<String>,
    /// Where the ops endpoints listen; `None` serves none.
    pub ops_addr: Option<SocketAddr>,
    /// `/healthz` fails once the poll loop has not gone round for this long.
    pub liveness_timeout: Duration,
}

/// Runs the pipeline until `shutdown` is set (then drains within the
/// config's grace) or it fails; the mirror, reloader and ops server stop
/// with it.
pub fn run(app: App, runtime: Arc<Runtime>, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let App { config, .. } = &app;
    // The ops listener, the ConfigMap mirror, the reloader and the
    // shutdown watchdog, stopped together when this returns.
    let background = Background::new()?;
    watchdog(&background, shutdown.clone(), config.grace);
    let telemetry = Arc::new(Telemetry::default());
    // Kept for the whole run: it feeds the reloader.
    let mut _mirror = None;
    let (chain, reloader, start_sha256, start_format) = if app.passthrough {
        (Chain::default(), None, String::new(), None)
    } else {
        let dir = &config.plugin_dir;
        if let Some(name) = app.watch_configmap.clone() {
            _mirror = Some(ConfigMapMirror::start(
                &background,
                app.namespace.clone(),
                name,
                dir.clone(),
            )?);
        }
        let snapshot = read_snapshot(dir, config.pipeline_file.as_deref())?;
        let chain = load_snapshot(&runtime, &snapshot, config.limits)?;
        let reloader = if app.no_reload {
            None
        } else {
            Some(reloader(
                &app,
                &background,
                runtime,
                &snapshot,
                &chain,
                &telemetry,
            )?)
        };
        (chain, reloader, snapshot.sha256, snapshot.format)
    };
    for p in &chain.plugins {
        tracing::info!(plugin = %p.name, sha256 = %p.sha256, world = p.world().as_str(), "plugin loaded");
    }
    let updates = reloader.as_ref().map(Reloader::updates);
    let _ops = match app.ops_addr {
        Some(addr) => {
            let at_start = Status::of(&start_sha256, &chain);
            Some(ops_server(
                &background,
                addr,
                &telemetry,
                updates.clone(),
                at_start,
                app.liveness_timeout,
            )?)
        }
        None => None,
    };
    let mut config = app.config;
    // The pipeline file's formats stand for the flags, from the start.
    if let Some(format) = start_format {
        config.set_format(format);
    }
    crate::pipeline::run(config, chain, updates, shutdown, telemetry)
}

/// Watches the plugin directory and builds each new set off the hot path.
fn reloader(
    app: &App,
    background: &Background,
    runtime: Arc<Runtime>,
    snapshot: &Snapshot,
    chain: &Chain,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<Reloader> {
    let limits = app.config.limits;
    let format = snapshot.format.clone();
    let build = Box::new(move |s: &Snapshot| {
        if s.format != format {
            anyhow::bail!(
                "the pipeline file's format section changed ({:?} to {:?}); formats are read at \
                 start: restart the pipeline to apply it (kubectl rollout restart deployment/NAME)",
                format,
                s.format
            );
        }
        let chain = load_snapshot(&runtime, s, limits)?;
        // Runs every plugin's `init` before the set is accepted.
        chain.instantiate()?;
        Ok(chain)
    });
    let options = WatchOptions {
        rescan: app.reload_rescan,
        ..WatchOptions::default()
    };
    let watch = Watch {
        dir: &app.config.plugin_dir,
        pipeline: app.config.pipeline_file.as_deref(),
        running: snapshot,
        chain,
    };
    Reloader::start(background, watch, build, options, telemetry.clone())
}

/// Serves the ops endpoints from the pipeline's telemetry and the
/// reloader's status (or the set loaded at start, without hot reload).
fn ops_server(
    background: &Background,
    addr: SocketAddr,
    telemetry: &Arc<Telemetry>,
    updates: Option<Arc<Updates>>,
    at_start: Status,
    liveness: Duration,
) -> anyhow::Result<OpsServer> {
    let status = move || {
        updates
            .as_ref()
            .map_or_else(|| at_start.clone(), |u| u.status())
    };
    let (c1, c2, c3) = (telemetry.clone(), telemetry.clone(), telemetry.clone());
    OpsServer::start(
        addr,
        Endpoints {
            metrics: Box::new(move || c1.metrics.encode()),
            live: Box::new(move || c2.health.check_live(liveness)),
            ready: Box::new(move || c3.health.is_ready()),
            plugins: Box::new(move || serde_json::to_value(status()).unwrap_or_default()),
        },
        background,
    )
}

/// Bounds shutdown: once `shutdown` is set, the run has its grace (plus a
/// little for leaving the group) to finish; then the process exits
/// non-zero, and what it had not committed is read again by the next
/// owner of its partitions. Ends with the run.
fn watchdog(background: &Background, shutdown: Arc<AtomicBool>, grace: Duration) {
    background.spawn(move |stop| async move {
        let stuck = async {
            while !shutdown.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(grace + LEAVE_GROUP).await;
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = stuck => {
                tracing::error!("shutdown took longer than --shutdown-grace ({grace:?}); exiting now, uncommitted work will be read again");
                std::process::exit(2);
            }
        }
    });
}

/// Time allowed past the grace to leave the consumer group.
const LEAVE_GROUP: Duration = Duration::from_secs(5);
