//! Bundles every language's SDK (and the WIT package) into the binary, so
//! that `wasmpipe plugin new` writes a project that builds without a
//! wasmpipe checkout and without SDK packages in any registry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Build output no SDK ships.
const SKIPPED: &[&str] = &["node_modules", "__pycache__", "target", "package-lock.json"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_owned();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut files = Vec::new();
    for dir in ["wit", "sdk/rust", "sdk/python", "sdk/js", "sdk/go", "sdk/c"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
        walk(&root, &root.join(dir), &mut files);
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    files.sort();
    let mut code = String::from("&[\n");
    for (relative, path) in &files {
        let source = if relative.starts_with("sdk/rust") && relative.ends_with("/Cargo.toml") {
            // Outside the workspace, the crates' manifests stand alone.
            let standalone = out.join(relative.replace('/', "-"));
            std::fs::write(&standalone, standalone_manifest(&root, path)).unwrap();
            standalone
        } else {
            path.clone()
        };
        let executable = is_executable(path);
        writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?}), {executable}),",
            source.display().to_string()
        )
        .unwrap();
    }
    code.push(']');
    std::fs::write(out.join("sdks.rs"), code).unwrap();
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if SKIPPED.contains(&name.as_str())
            || name.starts_with('.')
            || name.ends_with(".wasm")
            || name.ends_with(".egg-info")
        {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.push((relative, path));
        }
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// A Rust SDK crate's manifest with what it inherits from the workspace
/// written out.
fn standalone_manifest(root: &Path, manifest: &Path) -> String {
    let read = |p: &Path| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let workspace = read(&root.join("Cargo.toml"));
    let workspace = workspace["workspace"].as_table().unwrap();
    let mut crate_ = read(manifest);
    let package = crate_["package"].as_table_mut().unwrap();
    for (key, value) in package.iter_mut() {
        if is_inherited(value) {
            *value = workspace["package"][key.as_str()].clone();
        }
    }
    let dependencies = workspace["dependencies"].as_table().unwrap();
    let inherit = |deps: &mut toml::Table| {
        for (name, spec) in deps.iter_mut() {
            if is_inherited(spec) {
                let mut full = match &dependencies[name.as_str()] {
                    toml::Value::String(v) => {
                        toml::Table::from_iter([("version".to_owned(), v.clone().into())])
                    }
                    other => other.as_table().unwrap().clone(),
                };
                for (k, v) in spec.as_table().unwrap() {
                    if k != "workspace" {
                        full.insert(k.clone(), v.clone());
                    }
                }
                *spec = toml::Value::Table(full);
            }
        }
    };
    for (key, value) in crate_.iter_mut() {
        match key.as_str() {
            "dependencies" | "dev-dependencies" | "build-dependencies" => {
                inherit(value.as_table_mut().unwrap())
            }
            "target" => {
                for (_, target) in value.as_table_mut().unwrap().iter_mut() {
                    for (kind, deps) in target.as_table_mut().unwrap().iter_mut() {
                        if kind.ends_with("dependencies") {
                            inherit(deps.as_table_mut().unwrap());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    toml::to_string(&crate_).unwrap()
}

fn is_inherited(value: &toml::Value) -> bool {
    value
        .as_table()
        .is_some_and(|t| t.get("workspace").and_then(toml::Value::as_bool) == Some(true))
}
