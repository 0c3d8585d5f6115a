//! The sandbox: wasmtime, the WASI it offers plugins, limits, and the chain
//! of plugins a batch runs through. The only module that knows wasmtime;
//! it never sees Kafka.

mod bindings;
mod cache;
mod chain;
mod error;
mod instance;
mod load;
mod state;

pub use bindings::{FLAT_EXPORT, TYPED_EXPORT, WIT_VERSION};
pub use chain::{Chain, ChainHeaders, ChainInstance, ChainOutput, ChainRecord, RecordFailure};
pub use error::{Failure, FailureKind, LoadError};
pub use instance::PluginInstance;
pub use load::{Inspection, Plugin, PluginSource, Script, World, read_plugin_file};

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to each plugin instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the plugin's linear memory.
    pub memory_bytes: usize,
    /// CPU time allowed for one call (a batch, or `init`).
    pub deadline: Duration,
    /// Cap on the bytes a plugin may return for one batch.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(1),
            output_bytes: 16 << 20,
        }
    }
}

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None` compiles in memory only.
    /// Must be a directory only this process can write.
    pub cache_dir: Option<PathBuf>,
    /// Wasm stack limit for every plugin.
    pub max_stack_bytes: usize,
    /// Tell `perf` the names of compiled wasm functions (a perf map file).
    pub perf_map: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_stack_bytes: 512 << 10,
            perf_map: false,
        }
    }
}

/// One wasmtime engine, its linker, the epoch ticker and the artifact cache.
/// Shared by every plugin and worker of the process.
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: wasmtime::component::Linker<state::HostState>,
    cache: Option<cache::ArtifactCache>,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Arc<Runtime>> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(options.max_stack_bytes)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if options.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("configuring the wasm engine")?;
        let linker = state::linker(&engine).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let cache = match options.cache_dir {
            Some(dir) => Some(cache::ArtifactCache::open(&dir, &engine)?),
            None => None,
        };
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (stop_ticker.clone(), engine.clone());
        std::thread::Builder::new()
            .name("wasmpipe-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .context("starting the epoch ticker thread")?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            stop_ticker,
        }))
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks that cover `deadline` (at least one).
fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}
