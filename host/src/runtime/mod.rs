//! The sandbox: wasmtime, the WASI it offers plugins, limits, and the chain
//! of plugins a batch runs through. The only module that knows wasmtime;
//! it never sees Kafka.

mod bindings;
mod cache;
mod chain;
mod compile;
mod error;
mod instance;
mod keyed;
mod load;
mod state;

pub use bindings::{FLAT_EXPORTS, STATE_IMPORT, TYPED_EXPORTS, WIT_VERSION, WIT_VERSIONS};
pub use chain::{
    Admit, Chain, ChainHeaders, ChainInstance, ChainOutput, ChainRecord, RecordFailure,
};
pub use compile::{CompileBudget, SUBCOMMAND as COMPILE_SUBCOMMAND};
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
    /// Compile plugins in a child process under this budget; `None`
    /// compiles in this process, unbounded.
    pub compile_budget: Option<CompileBudget>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_stack_bytes: 512 << 10,
            perf_map: false,
            compile_budget: None,
        }
    }
}

impl RuntimeOptions {
    /// The engine settings: every compiled artifact depends on them.
    fn engine_config(&self) -> wasmtime::Config {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(self.max_stack_bytes)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if self.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        config
    }

    /// The arguments that give a compiler process these engine settings
    /// (see [`compile_child`]).
    fn engine_args(&self) -> Vec<String> {
        let mut args = vec![
            "--max-stack-bytes".to_owned(),
            self.max_stack_bytes.to_string(),
        ];
        if self.perf_map {
            args.push("--perf-map".into());
        }
        args
    }
}

/// The compiler process's side (`wasmpipe __compile-plugin INPUT OUTPUT
/// [--max-stack-bytes N] [--perf-map]`): compiles the component in INPUT
/// with the engine settings the runtime that started it has.
pub fn compile_child(args: &[String]) -> anyhow::Result<()> {
    let mut options = RuntimeOptions::default();
    let mut files = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--max-stack-bytes" => {
                options.max_stack_bytes = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("--max-stack-bytes needs a number")?;
            }
            "--perf-map" => options.perf_map = true,
            file => files.push(PathBuf::from(file)),
        }
    }
    let [input, output] = files.as_slice() else {
        anyhow::bail!(
            "usage: wasmpipe {COMPILE_SUBCOMMAND} INPUT OUTPUT [--max-stack-bytes N] [--perf-map]"
        );
    };
    compile::run_child(&options.engine_config(), input, output)
}

/// One wasmtime engine, its linker, the epoch ticker and the artifact cache.
/// Shared by every plugin and worker of the process.
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: wasmtime::component::Linker<state::HostState>,
    cache: Option<cache::ArtifactCache>,
    compile_budget: Option<CompileBudget>,
    engine_args: Vec<String>,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Arc<Runtime>> {
        let engine = wasmtime::Engine::new(&options.engine_config())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("configuring the wasm engine")?;
        let linker = state::linker(&engine).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(cache::ArtifactCache::open(dir, &engine)?),
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
            engine_args: options.engine_args(),
            compile_budget: options.compile_budget,
            stop_ticker,
        }))
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Compiles `wasm`: in a child process under the compile budget, if
    /// there is one, working in `dir` (private to this user) or a private
    /// temporary directory.
    fn compile_wasm(
        &self,
        wasm: &[u8],
        dir: Option<&std::path::Path>,
    ) -> Result<wasmtime::component::Component, compile::CompileError> {
        let Some(budget) = &self.compile_budget else {
            return wasmtime::component::Component::new(&self.engine, wasm)
                .map_err(|e| compile::CompileError::Failed(format!("{e:#}")));
        };
        let temp;
        let dir = match dir {
            Some(d) => d,
            None => {
                temp = tempfile::tempdir().map_err(|e| {
                    compile::CompileError::Failed(format!(
                        "creating a directory to compile in: {e}"
                    ))
                })?;
                temp.path()
            }
        };
        compile::in_child(&self.engine, budget, &self.engine_args, wasm, dir)
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
