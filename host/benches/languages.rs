//! The redact plugin in each language and form: what it costs to ship
//! (size raw and zstd, whether it fits a ConfigMap), to compile, to
//! instantiate, to reload with a new version, and how many records a second
//! it moves through the runtime. Prints a Markdown table.
//!
//! `tests/polyglot/run` builds the Python, JavaScript, Go and C forms into WASMPIPE_POLYGLOT
//! (default ~/.cache/wasmpipe/polyglot); then
//! `cargo bench -p wasmpipe --bench languages`.

#[path = "support/timing.rs"]
mod timing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timing::time;
use wasmpipe::jsonl;
use wasmpipe::k8s::CONFIGMAP_LIMIT;
use wasmpipe::record::Batch;
use wasmpipe::runtime::{Chain, Limits, Runtime, RuntimeOptions, read_plugin_file};

fn polyglot() -> PathBuf {
    std::env::var_os("WASMPIPE_POLYGLOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/wasmpipe/polyglot")
        })
}

/// Batches of 256 records cycling through the conformance suite's records
/// that redact passes (the ones it rejects are left out).
fn batches(records: usize) -> Vec<Batch> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/redact");
    let text = std::fs::read_to_string(root.join("basic.input.jsonl")).unwrap()
        + &std::fs::read_to_string(root.join("edge.input.jsonl")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("not JSON") && !l.contains("NaN") && !l.contains("trailing"))
        .filter(|l| !l.contains(r#""key":"empty""#) && !l.contains("value_b64"))
        .collect();
    let mut out = Vec::new();
    let mut batch = Batch::default();
    for i in 0..records {
        jsonl::push_line(&mut batch, lines[i % lines.len()], "in", i as i64).unwrap();
        if batch.len() == 256 {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

fn main() {
    let dir = polyglot();
    // SAFETY of the set_var below: the bench is single-threaded here.
    unsafe { std::env::set_var("WASMPIPE_SCRIPT_RUNTIMES", &dir) };
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let forms: [(&str, PathBuf); 7] = [
        (
            "Rust (`.wasm`)",
            PathBuf::from(wasmpipe_test_guests::FLAT_REDACT),
        ),
        ("Python, compiled (`.wasm`)", dir.join("redact-python.wasm")),
        (
            "Python, script (`.py`)",
            plugins.join("python/redact/redact.py"),
        ),
        ("JavaScript, compiled (`.wasm`)", dir.join("redact-js.wasm")),
        (
            "JavaScript, script (`.js`)",
            plugins.join("js/redact/redact.js"),
        ),
        ("Go (`.wasm`)", dir.join("redact-go.wasm")),
        ("C (`.wasm`)", dir.join("redact-c.wasm")),
    ];
    for (name, path) in &forms {
        assert!(
            path.is_file(),
            "{name}: {} is missing: run tests/polyglot/run first",
            path.display()
        );
    }
    let config = vec![
        ("mask".to_owned(), "user.email".to_owned()),
        ("drop".to_owned(), "card.number".to_owned()),
    ];
    let input = batches(20_000);
    let records: usize = input.iter().map(Batch::len).sum();

    println!(
        "| language, form | shipped | zstd | fits a ConfigMap | compile | instantiate + init | reload | records/s |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    for (name, path) in forms {
        let source = read_plugin_file(&path).unwrap();
        let shipped: Vec<u8> = match &source.script {
            Some(s) => s.text.clone().into_bytes(),
            None => source.wasm.clone(),
        };
        let zstd = zstd::bulk::compress(&shipped, 19).unwrap().len();
        let fits = if shipped.len() <= CONFIGMAP_LIMIT {
            "yes"
        } else if zstd <= CONFIGMAP_LIMIT {
            "as .wasm.zst"
        } else {
            "no"
        };

        // Compile with no cache: what the first pod to see the file pays.
        let uncached = Runtime::new(RuntimeOptions::default()).unwrap();
        let compile = time(3, || uncached.compile(&source).unwrap());

        let cache = tempfile::tempdir().unwrap();
        let cached: Arc<Runtime> = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.path().to_owned()),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let plugin = cached
            .load(&source, config.clone(), Limits::default())
            .unwrap();
        let instantiate = time(20, || plugin.instantiate().unwrap());

        // A new version of the file, to a runtime that ran the old one: a
        // component is compiled anew (its bytes changed); a script reuses
        // its compiled interpreter and re-runs init with the new source.
        let reload = match &source.script {
            Some(s) => time(10, || {
                let mut next = read_plugin_file(&path).unwrap();
                next.script.as_mut().unwrap().text = format!("{}\n\n", s.text);
                let p = cached
                    .load(&next, config.clone(), Limits::default())
                    .unwrap();
                p.instantiate().unwrap()
            }),
            None => compile + instantiate,
        };

        let mut chain = Chain {
            plugins: vec![plugin],
        }
        .instantiate()
        .unwrap();
        let started = Instant::now();
        let mut out = 0;
        for b in &input {
            let o = chain.run(b);
            assert!(o.failures.is_empty(), "{name}: {:?}", o.failures.first());
            out += o.records().count();
        }
        let elapsed = started.elapsed();
        assert_eq!(out, records);

        let ms = |d: Duration| {
            if d < Duration::from_millis(1) {
                format!("{:.0} µs", d.as_secs_f64() * 1e6)
            } else {
                format!("{:.1} ms", d.as_secs_f64() * 1e3)
            }
        };
        let size = |n: usize| {
            if n >= 1_000_000 {
                format!("{:.1} MB", n as f64 / 1e6)
            } else {
                format!("{:.1} KB", n as f64 / 1e3)
            }
        };
        println!(
            "| {name} | {} | {} | {fits} | {} | {} | {} | {:.0} |",
            size(shipped.len()),
            size(zstd),
            ms(compile),
            ms(instantiate),
            ms(reload),
            records as f64 / elapsed.as_secs_f64(),
        );
    }
}
