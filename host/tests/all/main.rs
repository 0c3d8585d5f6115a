//! Integration tests of the runtime and the CLI against real wasm
//! components built from `plugins/` (see `tests/guests`).

mod changelog;
mod chaos;
mod cli;
mod cluster;
mod conformance;
mod consumer;
mod failover;
mod formats;
mod hostile;
mod hostile_records;
mod k8s;
mod kafka;
mod load;
mod msk_iam;
mod ops;
mod reload;
mod sandbox;
mod script;
mod startup;
mod state_crash;
mod state_memory;
mod state_pipeline;
mod state_plugins;
mod zombies;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasmpipe::jsonl;
use wasmpipe::record::Batch;
use wasmpipe::runtime::{
    Chain, ChainOutput, Limits, Plugin, Runtime, RuntimeOptions, read_plugin_file,
};

/// Held by the tests that run several processes or brokers at once, so
/// they do not compete for the machine's cores with each other.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// One runtime for the whole test binary, with a compile cache so each
/// component is compiled once. The cache lives in cargo's target dir and
/// is reused by later runs: it is keyed by the component's hash and the
/// engine, so a stale entry is never loaded.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
            Runtime::new(RuntimeOptions {
                cache_dir: Some(dir),
                ..RuntimeOptions::default()
            })
            .unwrap()
        })
        .clone()
}

pub fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn load(path: &str, pairs: &[(&str, &str)], limits: Limits) -> Arc<Plugin> {
    let source = read_plugin_file(&PathBuf::from(path)).unwrap();
    runtime().load(&source, config(pairs), limits).unwrap()
}

/// A batch from JSON lines (offsets count from 0).
pub fn batch(lines: &[&str]) -> Batch {
    let mut b = Batch::default();
    for (i, l) in lines.iter().enumerate() {
        jsonl::push_line(&mut b, l, "in", i as i64).unwrap();
    }
    b
}

/// A batch of records whose values are `values`.
pub fn values_batch(values: &[&str]) -> Batch {
    let lines: Vec<String> = values
        .iter()
        .map(|v| serde_json::json!({ "value": v }).to_string())
        .collect();
    batch(&lines.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Output records as JSON lines (with `topic` where routed).
pub fn lines(out: &ChainOutput) -> Vec<String> {
    out.records()
        .map(|r| jsonl::output_line(r.key, r.value, r.headers.iter(), r.timestamp, r.topic))
        .collect()
}

/// Output values as text.
pub fn values(out: &ChainOutput) -> Vec<String> {
    out.records()
        .map(|r| String::from_utf8_lossy(r.value.unwrap_or(b"<null>")).into_owned())
        .collect()
}

/// The input record each output came from.
pub fn origins(out: &ChainOutput) -> Vec<u32> {
    out.records().map(|r| r.origin).collect()
}

/// Runs `input` through a chain of `plugins` once.
pub fn run(plugins: Vec<Arc<Plugin>>, input: &Batch) -> ChainOutput<'static> {
    Chain { plugins }
        .instantiate()
        .unwrap()
        .run(input)
        .into_owned()
}
