//! What each example plugin costs to ship and run: compile time, load time
//! from the precompiled cache, instantiate time (with `init`), size raw and
//! compressed, and the peak RSS of a `wasmpipe plugin test` process running
//! it over 10,000 records of 1 KiB. Prints a Markdown table.
//!
//! `cargo bench -p wasmpipe --bench plugins`

#[path = "support/timing.rs"]
mod timing;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use timing::time;
use wasmpipe::runtime::{Limits, Runtime, RuntimeOptions, read_plugin_file};
use wasmpipe_test_guests as guests;

/// A plugin's config pairs.
type Config = &'static [(&'static str, &'static str)];

fn main() {
    // `cargo bench` passes --bench; any other argument is not ours.
    let plugins: [(&str, &str, Config); 5] = [
        ("identity", guests::FLAT_IDENTITY, &[]),
        ("redact", guests::FLAT_REDACT, &[("mask", "user.email")]),
        (
            "filter",
            guests::FLAT_FILTER,
            &[("path", "n"), ("op", "exists")],
        ),
        (
            "route",
            guests::FLAT_ROUTE,
            &[("path", "region"), ("route.eu", "orders-eu")],
        ),
        ("reshape", guests::FLAT_RESHAPE, &[("key_from", "user.id")]),
    ];
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("records.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for i in 0..10_000 {
        let pad = "x".repeat(900);
        let value = format!(
            r#"{{"user":{{"id":{i},"email":"u{i}@example.com"}},"region":"eu","n":{i},"pad":"{pad}"}}"#
        );
        writeln!(file, "{}", serde_json::json!({"key": i.to_string(), "value": value, "headers": [["a", "1"], ["b", "2"], ["c", "3"]]})).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();

    let uncached = Runtime::new(RuntimeOptions::default()).unwrap();
    let cached = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    })
    .unwrap();

    println!(
        "| plugin | .wasm | gzip | zstd | compile | load (cached) | instantiate + init | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, path, config) in plugins {
        let source = read_plugin_file(Path::new(path)).unwrap();
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let compile = time(5, || uncached.compile(&source).unwrap());
        cached.compile(&source).unwrap();
        let load = time(50, || cached.compile(&source).unwrap());
        let plugin = cached
            .load(&source, config.clone(), Limits::default())
            .unwrap();
        let instantiate = time(200, || plugin.instantiate().unwrap());
        let gzip = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&source.wasm).unwrap();
            enc.finish().unwrap().len()
        };
        let zstd = zstd::bulk::compress(&source.wasm, 19).unwrap().len();

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        cmd.args([
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
            "plugin",
            "test",
            path,
            "--input",
            input.to_str().unwrap(),
        ]);
        for (k, v) in &config {
            cmd.args(["--config", &format!("{k}={v}")]);
        }
        let out = cmd.env("RUST_LOG", "warn").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rss = stderr
            .split("peak RSS ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("?")
            .to_owned();
        assert!(out.status.success(), "{name}: {stderr}");

        println!(
            "| {name} | {:.1} KB | {:.1} KB | {:.1} KB | {:.1} ms | {:.0} µs | {:.1} µs | {rss} |",
            source.wasm.len() as f64 / 1e3,
            gzip as f64 / 1e3,
            zstd as f64 / 1e3,
            compile.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e6,
            instantiate.as_secs_f64() * 1e6,
        );
    }
}
