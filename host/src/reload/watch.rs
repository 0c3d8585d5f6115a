//! Watching the plugin directory and building each new set off the hot
//! path. Any filesystem event is only a hint: after a quiet moment the
//! directory is read whole ([`read_snapshot`]); a set whose hash is the
//! running one's is ignored; a new set is built (compiled, instantiated,
//! `init` run) on the background's blocking pool and handed to the pipeline, which swaps it in
//! at a batch boundary. A set that fails to read or build is refused, logged
//! with the file and the reason, and counted; the running set stays.

use super::snapshot::{Snapshot, read_snapshot};
use crate::background::Background;
use crate::ops::Telemetry;
use crate::ops::events::SetRefused;
use crate::runtime::Chain;
use notify::{RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::timeout;

/// A built set, waiting for the pipeline to take it.
pub struct Loaded {
    pub version: u64,
    pub sha256: String,
    pub chain: Chain,
}

/// A plugin of the running set.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub sha256: String,
    /// The keys of its config; values may be secrets and are not shown.
    pub config_keys: Vec<String>,
}

impl Status {
    /// The status of `chain` as loaded at start (version 1).
    pub fn of(sha256: &str, chain: &Chain) -> Status {
        let mut status = Status::default();
        status.set(sha256, chain);
        status
    }

    fn set(&mut self, sha256: &str, chain: &Chain) {
        self.version += 1;
        self.sha256 = sha256.to_owned();
        self.plugins = chain
            .plugins
            .iter()
            .map(|p| PluginStatus {
                name: p.name.clone(),
                sha256: p.sha256.clone(),
                config_keys: p.config.iter().map(|(k, _)| k.clone()).collect(),
            })
            .collect();
        self.loaded_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_error = None;
    }
}

/// What is running, for logs and the ops endpoints.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Status {
    /// 1 for the set loaded at start, one more per reload.
    pub version: u64,
    pub sha256: String,
    pub plugins: Vec<PluginStatus>,
    /// When the running set was built, in milliseconds since the epoch.
    pub loaded_at_ms: u64,
    pub reloads: u64,
    /// Sets refused (unreadable, invalid, failing to load).
    pub failures: u64,
    pub last_error: Option<String>,
}

/// Between the reloader and the pipeline.
#[derive(Default)]
pub struct Updates {
    next: Mutex<Option<Loaded>>,
    /// Whether `next` holds a set: the pipeline asks once a record, so the
    /// usual answer costs a load, not a lock.
    pending: AtomicBool,
    status: Mutex<Status>,
}

impl Updates {
    /// The set to swap in, if a new one was built since the last call.
    pub fn take(&self) -> Option<Loaded> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        lock(&self.next).take()
    }

    fn offer(&self, loaded: Loaded) {
        *lock(&self.next) = Some(loaded);
        self.pending.store(true, Ordering::Release);
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    fn loaded(&self, sha256: &str, chain: &Chain, reload: bool) -> u64 {
        let mut status = lock(&self.status);
        status.reloads += u64::from(reload);
        status.set(sha256, chain);
        status.version
    }

    fn failed(&self, error: String) {
        let mut status = lock(&self.status);
        status.failures += 1;
        status.last_error = Some(error);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the reloader waits.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    /// Quiet time after an event before the directory is read.
    pub debounce: Duration,
    /// A full read this often, in case an event was lost.
    pub rescan: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            rescan: Duration::from_secs(30),
        }
    }
}

/// Builds a chain from a snapshot (compile, instantiate, `init`).
pub type Build = dyn Fn(&Snapshot) -> anyhow::Result<Chain> + Send + Sync;

/// What the reloader watches, and the set running when it starts.
pub struct Watch<'a> {
    pub dir: &'a Path,
    /// A pipeline file, if one is used (it may live outside `dir`).
    pub pipeline: Option<&'a Path>,
    pub running: &'a Snapshot,
    pub chain: &'a Chain,
}

/// The watch; stops when dropped, or with the background it runs on.
pub struct Reloader {
    updates: Arc<Updates>,
    _watcher: notify::RecommendedWatcher,
}

impl Reloader {
    /// Watches for sets other than the running one, as a task of
    /// `background`; builds run on its blocking pool. Refused sets are
    /// reported to `telemetry`.
    pub fn start(
        background: &Background,
        watch: Watch<'_>,
        build: Box<Build>,
        options: WatchOptions,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<Reloader> {
        let updates = Arc::new(Updates::default());
        updates.loaded(&watch.running.sha256, watch.chain, false);
        let (tx, mut rx) = unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = tx.send(());
                }
            })?;
        let mut watch_path = |path: &Path| -> anyhow::Result<()> {
            watcher
                .watch(path, RecursiveMode::NonRecursive)
                .map_err(|e| anyhow::anyhow!("watching {}: {e}", path.display()))
        };
        watch_path(watch.dir)?;
        let outside = watch
            .pipeline
            .and_then(Path::parent)
            .filter(|p| *p != watch.dir && !p.as_os_str().is_empty());
        if let Some(parent) = outside {
            watch_path(parent)?;
        }
        let read = Arc::new(Read {
            dir: watch.dir.to_owned(),
            pipeline: watch.pipeline.map(Path::to_owned),
            build,
        });
        let shared = updates.clone();
        let mut current = watch.running.sha256.clone();
        background.spawn(move |stop| async move {
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    event = timeout(options.rescan, rx.recv()) => match event {
                        Ok(Some(())) => {
                            while let Ok(Some(())) = timeout(options.debounce, rx.recv()).await {}
                        }
                        Ok(None) => return,
                        Err(_rescan) => {}
                    },
                }
                let (read, running) = (read.clone(), current.clone());
                let job = tokio::task::spawn_blocking(move || read.new_set(&running));
                let built = tokio::select! {
                    _ = stop.cancelled() => return,
                    built = job => built.unwrap_or_else(|e| Err(anyhow::anyhow!("building the set panicked: {e}"))),
                };
                match built {
                    Ok(None) => last_error = None,
                    Ok(Some((snapshot, chain))) => {
                        let version = shared.loaded(&snapshot.sha256, &chain, true);
                        for p in &chain.plugins {
                            tracing::info!(version, plugin = %p.name, sha256 = %p.sha256, "reload: plugin built");
                        }
                        tracing::info!(version, sha256 = %snapshot.sha256, dir = %snapshot.root.display(), "reload: new plugin set ready; swapping at the next batch boundary");
                        current = snapshot.sha256.clone();
                        shared.offer(Loaded {
                            version,
                            sha256: snapshot.sha256,
                            chain,
                        });
                        last_error = None;
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        // A broken set is reported once, not at every rescan.
                        if last_error.as_deref() != Some(&message) {
                            telemetry.emit(SetRefused { error: &message });
                            shared.failed(message.clone());
                            last_error = Some(message);
                        }
                    }
                }
            }
        });
        Ok(Reloader {
            updates,
            _watcher: watcher,
        })
    }

    pub fn updates(&self) -> Arc<Updates> {
        self.updates.clone()
    }
}

/// Reads the watched directory and builds what is new in it.
struct Read {
    dir: PathBuf,
    pipeline: Option<PathBuf>,
    build: Box<Build>,
}

impl Read {
    /// The set in the directory and its chain, unless it is `running`.
    fn new_set(&self, running: &str) -> anyhow::Result<Option<(Snapshot, Chain)>> {
        let snapshot = read_snapshot(&self.dir, self.pipeline.as_deref())?;
        if snapshot.sha256 == running {
            return Ok(None);
        }
        let chain = (self.build)(&snapshot)?;
        Ok(Some((snapshot, chain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::kubelet_update;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn module(n: u8) -> Vec<u8> {
        vec![0, b'a', b's', b'm', n]
    }

    /// A build that accepts any readable set, counting the builds.
    fn counting(builds: Arc<AtomicUsize>) -> Box<Build> {
        Box::new(move |_| {
            builds.fetch_add(1, Ordering::Relaxed);
            Ok(Chain {
                plugins: Vec::new(),
            })
        })
    }

    /// A reloader over `dir` as it is now, counting its builds in `builds`.
    fn start(
        background: &Background,
        dir: &Path,
        builds: &Arc<AtomicUsize>,
        options: WatchOptions,
        telemetry: Arc<Telemetry>,
    ) -> Reloader {
        let first = read_snapshot(dir, None).unwrap();
        let watch = Watch {
            dir,
            pipeline: None,
            running: &first,
            chain: &Chain::default(),
        };
        Reloader::start(
            background,
            watch,
            counting(builds.clone()),
            options,
            telemetry,
        )
        .unwrap()
    }

    fn wait(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_event_storm_ends_in_the_last_set_built_few_times() {
        let dir = tempfile::tempdir().unwrap();
        kubelet_update(dir.path(), &[("a.wasm", &module(0))]).unwrap();
        let builds = Arc::new(AtomicUsize::new(0));
        let background = Background::new().unwrap();
        let reloader = start(
            &background,
            dir.path(),
            &builds,
            WatchOptions::default(),
            Arc::default(),
        );
        for n in 1..=50 {
            kubelet_update(dir.path(), &[("a.wasm", &module(n))]).unwrap();
        }
        let last = read_snapshot(dir.path(), None).unwrap().sha256;
        let updates = reloader.updates();
        wait("the last set", || updates.status().sha256 == last);
        let taken = updates.take().expect("a set to swap in");
        assert_eq!(taken.sha256, last, "only the newest set is handed over");
        assert!(updates.take().is_none());
        let n = builds.load(Ordering::Relaxed);
        assert!((1..10).contains(&n), "debounced: {n} builds for 50 updates");
        assert_eq!(updates.status().failures, 0);
    }

    #[test]
    fn an_identical_set_is_not_a_reload_and_a_broken_one_is_refused_once() {
        let dir = tempfile::tempdir().unwrap();
        kubelet_update(dir.path(), &[("a.wasm", &module(1))]).unwrap();
        let builds = Arc::new(AtomicUsize::new(0));
        let options = WatchOptions {
            debounce: Duration::from_millis(20),
            rescan: Duration::from_millis(50),
        };
        let background = Background::new().unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let reloader = start(&background, dir.path(), &builds, options, telemetry.clone());
        let updates = reloader.updates();
        // The same bytes in a new directory: nothing to build.
        kubelet_update(dir.path(), &[("a.wasm", &module(1))]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(builds.load(Ordering::Relaxed), 0);
        assert_eq!(updates.status().version, 1);
        // A pipeline file naming a missing module: refused, once, though
        // the directory is read again at every rescan.
        kubelet_update(
            dir.path(),
            &[
                ("a.wasm", &module(1)),
                ("pipeline.yaml", b"plugins:\n  - file: gone.wasm\n"),
            ],
        )
        .unwrap();
        wait("the refusal", || updates.status().failures == 1);
        std::thread::sleep(Duration::from_millis(300));
        let status = updates.status();
        assert_eq!(status.failures, 1);
        assert!(status.last_error.unwrap().contains("gone.wasm"));
        assert_eq!(status.version, 1, "the running set stays");
        assert!(updates.take().is_none());
        assert_eq!(telemetry.metrics.total("reloads"), 1, "counted once");
    }

    #[test]
    fn the_watch_stops_with_its_background() {
        let dir = tempfile::tempdir().unwrap();
        kubelet_update(dir.path(), &[("a.wasm", &module(1))]).unwrap();
        let builds = Arc::new(AtomicUsize::new(0));
        let background = Background::new().unwrap();
        let reloader = start(
            &background,
            dir.path(),
            &builds,
            WatchOptions::default(),
            Arc::default(),
        );
        let started = std::time::Instant::now();
        drop(background);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stopped at once"
        );
        kubelet_update(dir.path(), &[("a.wasm", &module(2))]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            builds.load(Ordering::Relaxed),
            0,
            "nothing built after the stop"
        );
        assert_eq!(reloader.updates().status().version, 1);
    }
}
