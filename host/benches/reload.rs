//! Hot-reload latency: from a kubelet-style update of the plugin directory
//! (new timestamped directory, `..data` renamed over) to the first record
//! processed by the new set, per example plugin, with the compile cache
//! warm (the module was compiled before; only the set changed) and cold (a
//! module never seen: compiled on the reloader's thread). Also the work a
//! swap puts on the pipeline thread (a chain instance per partition, 3
//! partitions) next to one batch of 256 records. Prints a Markdown table.
//!
//! `cargo bench -p wasmpipe --bench reload`

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmpipe::background::Background;
use wasmpipe::config::load_snapshot;
use wasmpipe::record::Batch;
use wasmpipe::reload::{Reloader, Snapshot, Watch, WatchOptions, kubelet_update, read_snapshot};
use wasmpipe::runtime::{Chain, Limits, Runtime, RuntimeOptions};
use wasmpipe_test_guests as guests;

const SWAPS: usize = 30;

/// `wasm` with a custom section appended: the same plugin, another sha256,
/// so the compile cache has never seen it.
fn variant(wasm: &[u8], n: usize) -> Vec<u8> {
    let name = b"wasmpipe-bench";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = wasm.to_vec();
    out.extend_from_slice(&[0, size as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn batch(records: usize) -> Batch {
    let mut b = Batch::default();
    for i in 0..records {
        let line = serde_json::json!({
            "key": i.to_string(),
            "value": format!(r#"{{"user":{{"id":{i},"email":"u{i}@example.com"}},"region":"eu","n":{i}}}"#),
            "headers": [["a", "1"], ["b", "2"], ["c", "3"]],
        });
        wasmpipe::jsonl::push_line(&mut b, &line.to_string(), "in", i as i64).unwrap();
    }
    b
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Latencies of `SWAPS` updates, each to `module(i)`.
fn swaps(runtime: &Arc<Runtime>, config: &str, module: impl Fn(usize) -> Vec<u8>) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!("plugins:\n  - file: p.wasm\n    config: {{ {config} }}\n");
    kubelet_update(
        dir.path(),
        &[
            ("p.wasm", &module(0)),
            ("pipeline.yaml", pipeline.as_bytes()),
        ],
    )
    .unwrap();
    let first = read_snapshot(dir.path(), None).unwrap();
    let chain = load_snapshot(runtime, &first, Limits::default()).unwrap();
    let rt = runtime.clone();
    let build = Box::new(move |s: &Snapshot| {
        let chain = load_snapshot(&rt, s, Limits::default())?;
        chain.instantiate()?;
        Ok(chain)
    });
    let background = Background::new().unwrap();
    let watch = Watch {
        dir: dir.path(),
        pipeline: None,
        running: &first,
        chain: &chain,
    };
    let reloader = Reloader::start(
        &background,
        watch,
        build,
        WatchOptions::default(),
        Arc::default(),
    )
    .unwrap();
    let updates = reloader.updates();
    let one = batch(1);
    let mut out = Vec::new();
    for i in 1..=SWAPS {
        let start = Instant::now();
        kubelet_update(
            dir.path(),
            &[
                ("p.wasm", &module(i)),
                ("pipeline.yaml", pipeline.as_bytes()),
            ],
        )
        .unwrap();
        let loaded = loop {
            if let Some(l) = updates.take() {
                break l;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no reload");
            std::thread::sleep(Duration::from_millis(1));
        };
        let mut instance = loaded.chain.instantiate().unwrap();
        let result = instance.run(&one);
        assert!(result.failures.is_empty());
        out.push(start.elapsed());
    }
    out
}

fn main() {
    let plugins: [(&str, &str, &str); 5] = [
        ("identity", guests::FLAT_IDENTITY, ""),
        ("redact", guests::FLAT_REDACT, "mask: user.email"),
        ("filter", guests::FLAT_FILTER, "path: n, op: exists"),
        (
            "route",
            guests::FLAT_ROUTE,
            "path: region, route.eu: orders-eu",
        ),
        ("reshape", guests::FLAT_RESHAPE, "key_from: user.id"),
    ];
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    println!(
        "| plugin | warm p50 | warm p99 | cold p50 | cold p99 | swap on the pipeline thread (3 partitions) | one batch of 256 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, path, config) in plugins {
        let wasm = std::fs::read(path).unwrap();
        // Warm: two variants alternating; the first swap compiles the
        // second one and is left out.
        let (a, b) = (variant(&wasm, 0), variant(&wasm, 1));
        let mut warm = swaps(&runtime, config, |i| {
            if i % 2 == 0 { a.clone() } else { b.clone() }
        });
        warm.remove(0);
        let mut cold = swaps(&runtime, config, |i| variant(&wasm, 1000 + i));

        let chain: Chain = {
            let dir = tempfile::tempdir().unwrap();
            let pipeline = format!("plugins:\n  - file: p.wasm\n    config: {{ {config} }}\n");
            kubelet_update(
                dir.path(),
                &[("p.wasm", &wasm), ("pipeline.yaml", pipeline.as_bytes())],
            )
            .unwrap();
            load_snapshot(
                &runtime,
                &read_snapshot(dir.path(), None).unwrap(),
                Limits::default(),
            )
            .unwrap()
        };
        let mut swap: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..3 {
                    std::hint::black_box(chain.instantiate().unwrap());
                }
                t.elapsed()
            })
            .collect();
        let big = batch(256);
        let mut instance = chain.instantiate().unwrap();
        let mut run: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(instance.run(&big));
                t.elapsed()
            })
            .collect();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            ms(pct(&mut warm, 0.5)),
            ms(pct(&mut warm, 0.99)),
            ms(pct(&mut cold, 0.5)),
            ms(pct(&mut cold, 0.99)),
            us(pct(&mut swap, 0.5)),
            us(pct(&mut run, 0.5)),
        );
    }
}
