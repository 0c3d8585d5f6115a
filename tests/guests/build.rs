//! Compiles every plugin under `plugins/` to a wasm32-wasip2 component, once
//! against the flat world and once (the SDK's `typed` feature) against the
//! typed world, with a nested cargo using its own target directory.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins built in both worlds through the SDK: (package, artifact).
const SDK_PLUGINS: &[(&str, &str)] = &[
    ("plugin-identity", "identity"),
    ("plugin-redact", "redact"),
    ("plugin-filter", "filter"),
    ("plugin-route", "route"),
    ("plugin-reshape", "reshape"),
    ("plugin-misbehave", "misbehave"),
    ("plugin-count", "count"),
    ("plugin-dedup", "dedup"),
    ("plugin-window-sum", "window_sum"),
    ("plugin-tally", "tally"),
];

/// Test guests that are not SDK plugins, built once.
const OTHER_GUESTS: &[(&str, &str)] = &[
    ("plugin-wrong-world", "wrong-world"),
    ("plugin-forbidden-import", "forbidden_import"),
];

fn main() {
    // Read at run time: a target directory shared by two checkouts reuses
    // this script's binary, so a path compiled into it could be the other's.
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../..");
    for dir in ["plugins", "sdk/rust", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut code = String::new();
    let flat = build(
        &root,
        &out.join("flat"),
        SDK_PLUGINS.iter().chain(OTHER_GUESTS),
        None,
    );
    let typed = build(
        &root,
        &out.join("typed"),
        SDK_PLUGINS,
        Some("wasmpipe-sdk/typed"),
    );
    for (world, dir) in [("FLAT", &flat), ("TYPED", &typed)] {
        let names = if world == "FLAT" {
            SDK_PLUGINS.iter().chain(OTHER_GUESTS).collect::<Vec<_>>()
        } else {
            SDK_PLUGINS.iter().collect()
        };
        for (_, artifact) in names {
            let path = dir.join(format!("{artifact}.wasm"));
            assert!(path.exists(), "cargo built no {}", path.display());
            let ident = artifact.replace('-', "_").to_uppercase();
            writeln!(
                code,
                "pub const {world}_{ident}: &str = {:?};",
                path.display().to_string()
            )
            .unwrap();
        }
    }
    std::fs::write(out.join("guests.rs"), code).expect("OUT_DIR is writable");
}

fn build<'a>(
    root: &Path,
    target_dir: &Path,
    packages: impl IntoIterator<Item = &'a (&'a str, &'a str)>,
    features: Option<&str>,
) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for (package, _) in packages {
        cmd.args(["-p", package]);
    }
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the
    // host, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the test guests");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed (cargo's errors are above); \
         if the target is missing: rustup target add wasm32-wasip2"
    );
    target_dir.join("wasm32-wasip2/release")
}
