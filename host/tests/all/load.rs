//! Files that are not plugins of our world are refused at load with a
//! message naming the file and the fix; compressed plugins load; the
//! compile cache is used and survives a corrupt entry.

use crate::runtime;
use std::path::Path;
use wasmpipe::runtime::{
    Limits, LoadError, PluginSource, Runtime, RuntimeOptions, read_plugin_file,
};
use wasmpipe_test_guests::{FLAT_FORBIDDEN_IMPORT, FLAT_IDENTITY, FLAT_WRONG_WORLD};

fn load_bytes(name: &str, wasm: Vec<u8>) -> Result<(), LoadError> {
    // The compile cache is keyed by this: it must be the bytes' own hash.
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    let source = PluginSource {
        name: name.into(),
        path: format!("{name}.wasm").into(),
        sha256: sha256.clone(),
        wasm_sha256: sha256,
        file_bytes: wasm.len(),
        wasm,
        script: None,
    };
    runtime()
        .load(&source, vec![], Limits::default())
        .map(|_| ())
}

#[test]
fn a_wasi_command_is_the_wrong_world() {
    let source = read_plugin_file(Path::new(FLAT_WRONG_WORLD)).unwrap();
    let err = runtime()
        .load(&source, vec![], Limits::default())
        .unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("exports neither wasmpipe:transform/flat-transform nor typed-transform"),
        "{msg}"
    );
    assert!(msg.contains("wasi:cli/run@0.2"), "{msg}");
    assert!(msg.contains("a plugin is a library (`cdylib`)"), "{msg}");
}

#[test]
fn a_core_module_is_refused_with_the_fix() {
    let err = load_bytes(
        "core",
        wat::parse_str("(module (func (export \"transform\")))").unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cargo build --target wasm32-wasip2")
    );
}

#[test]
fn an_import_the_host_does_not_offer_is_named() {
    let source = read_plugin_file(Path::new(FLAT_FORBIDDEN_IMPORT)).unwrap();
    let err = runtime()
        .load(&source, vec![], Limits::default())
        .unwrap_err();
    let LoadError::UnsupportedImport { import, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(import, "test:exfiltrate/network");
    assert!(err.to_string().starts_with("plugin "));
}

#[test]
fn text_and_truncated_files_are_refused() {
    let err = load_bytes("notes", b"hello, not wasm".to_vec()).unwrap_err();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err:?}");
    let whole = std::fs::read(FLAT_IDENTITY).unwrap();
    let err = load_bytes("truncated", whole[..whole.len() / 2].to_vec()).unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("plugin truncated.wasm: does not compile:"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_version_is_told_to_rebuild() {
    let wat = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (instance $e (export "init" (func $f)))
        (export "wasmpipe:transform/flat-transform@0.3.0" (instance $e)))"#;
    let err = load_bytes("future", wat::parse_str(wat).unwrap()).unwrap_err();
    assert!(matches!(err, LoadError::WrongVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("built against wasmpipe:transform/flat-transform@0.3.0; this host implements wasmpipe:transform@0.2.0 (and runs plugins built for 0.1.0)"), "{err}");
}

#[test]
fn compressed_plugins_load_like_plain_ones() {
    let wasm = std::fs::read(FLAT_IDENTITY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("identity.wasm.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &wasm).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let zst = dir.path().join("identity.wasm.zst");
    std::fs::write(&zst, zstd::bulk::compress(&wasm, 3).unwrap()).unwrap();
    for path in [gz, zst] {
        let source = read_plugin_file(&path).unwrap();
        assert_eq!(source.name, "identity");
        assert_eq!(source.wasm, wasm);
        assert!(source.file_bytes < wasm.len());
        runtime().load(&source, vec![], Limits::default()).unwrap();
    }
    let bad = dir.path().join("bad.wasm.zst");
    std::fs::write(&bad, b"not zstd").unwrap();
    assert!(
        read_plugin_file(&bad)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("plugin {}", bad.display()))
    );
}

#[test]
fn the_compile_cache_is_reused_and_a_corrupt_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rt = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let source = read_plugin_file(Path::new(FLAT_IDENTITY)).unwrap();
    rt.load(&source, vec![], Limits::default()).unwrap();
    // The cache lives in a subdirectory private to this user.
    let private = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        private
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("wasmpipe-")
    );
    let entries: Vec<_> = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&source.sha256)
    );
    let modified = std::fs::metadata(entry).unwrap().modified().unwrap();
    rt.load(&source, vec![], Limits::default()).unwrap();
    assert_eq!(
        std::fs::metadata(entry).unwrap().modified().unwrap(),
        modified,
        "loaded from the cache, not rewritten"
    );

    std::fs::write(entry, b"garbage").unwrap();
    rt.load(&source, vec![], Limits::default()).unwrap();
    assert!(
        std::fs::read(entry).unwrap().len() > 1000,
        "the corrupt entry was replaced"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o077,
            0
        );
    }
}
