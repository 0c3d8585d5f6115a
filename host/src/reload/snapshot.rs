//! One consistent read of the plugin directory.

use crate::config::{PipelineFile, PluginSpec, pipeline_file};
use crate::runtime::{PluginSource, read_plugin_file};
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The link a ConfigMap volume swaps atomically.
const DATA_LINK: &str = "..data";

/// How often a read is retried when the directory changed under it.
const ATTEMPTS: usize = 5;

/// The plugin set as read from one version of the directory.
#[derive(Debug)]
pub struct Snapshot {
    /// Where the files were read from: the target of `..data` on a
    /// ConfigMap volume, the directory itself otherwise.
    pub root: PathBuf,
    /// The chain, in order, with each plugin's bytes.
    pub plugins: Vec<(PluginSpec, PluginSource)>,
    /// sha256 of what the chain means: each plugin's name, module hash and
    /// config, in order. Re-laying out identical files does not change it;
    /// changing one config value does.
    pub sha256: String,
    /// The pipeline file's `format:` section.
    pub format: Option<crate::config::FormatSection>,
}

/// Reads the pipeline file (`pipeline`, or the one in `dir`) and every
/// plugin it names from one version of `dir`. When a ConfigMap update
/// replaces the files mid-read, the read starts again from the new version.
pub fn read_snapshot(dir: &Path, pipeline: Option<&Path>) -> anyhow::Result<Snapshot> {
    read_snapshot_with(dir, pipeline, &mut || {})
}

/// [`read_snapshot`], calling `between` once after resolving `..data` and
/// before reading (tests use it to swap the directory mid-read).
fn read_snapshot_with(
    dir: &Path,
    pipeline: Option<&Path>,
    between: &mut dyn FnMut(),
) -> anyhow::Result<Snapshot> {
    let mut attempt = 1;
    loop {
        let root = resolve(dir)?;
        if attempt == 1 {
            between();
        }
        match read_from(dir, &root, pipeline) {
            Ok(snapshot) => return Ok(snapshot),
            Err(e) if attempt < ATTEMPTS && resolve(dir).ok().as_ref() != Some(&root) => {
                tracing::debug!(error = %format!("{e:#}"), "the plugin directory changed while being read; reading it again");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The directory holding this version's files.
fn resolve(dir: &Path) -> anyhow::Result<PathBuf> {
    let link = dir.join(DATA_LINK);
    if link.symlink_metadata().is_ok() {
        return std::fs::canonicalize(&link)
            .with_context(|| format!("resolving {}", link.display()));
    }
    Ok(dir.to_owned())
}

fn read_from(dir: &Path, root: &Path, pipeline: Option<&Path>) -> anyhow::Result<Snapshot> {
    // A pipeline file inside the plugin directory is read from the same
    // version as the plugins.
    let given = pipeline.map(|p| match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if parent == dir => root.join(name),
        _ => p.to_owned(),
    });
    let file = match pipeline_file(root, given.as_deref()) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the pipeline file {}", path.display()))?;
            PipelineFile::parse(&path, &text)?
        }
        None => PipelineFile::from_dir(root)?,
    };
    let mut hash = Sha256::new();
    hash.update(format!("format\0{:?}\n", file.format));
    let mut plugins = Vec::new();
    for spec in file.plugins {
        let mut source = read_plugin_file(&plugin_path(root, &spec.file)?)?;
        if let Some(name) = &spec.name {
            source.name = name.clone();
        }
        hash.update(format!("{}\0{}\0", source.name, source.sha256));
        for (k, v) in &spec.config {
            hash.update(format!("{k}\0{v}\0"));
        }
        // Where its state lives: a changed changelog is a new set.
        let state = &spec.state;
        hash.update(format!(
            "state\0{}\0{}\0",
            state.changelog.as_deref().unwrap_or(""),
            state.generation
        ));
        hash.update(b"\n");
        plugins.push((spec, source));
    }
    Ok(Snapshot {
        root: root.to_owned(),
        plugins,
        sha256: hex::encode(hash.finalize()),
        format: file.format,
    })
}

/// Where a pipeline entry's file is: `file` itself, or, when only a
/// compressed copy exists (`wasmpipe deploy` compresses what would not fit
/// a ConfigMap), `file.zst` or `file.gz`. A pipeline file names only files
/// inside the plugin directory: a relative path without `..`, resolving
/// (through any symbolic link) to a place inside it.
fn plugin_path(root: &Path, file: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(file);
    let plain_components = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if file.is_empty() || !plain_components {
        anyhow::bail!(
            "pipeline entry '{file}': a plugin file is named relative to the plugin directory {} (no absolute path, no '..'); put the file in that directory",
            root.display()
        );
    }
    let plain = root.join(relative);
    let path = if plain.exists() || !file.ends_with(".wasm") {
        plain
    } else {
        [".zst", ".gz"]
            .iter()
            .map(|ext| root.join(format!("{file}{ext}")))
            .find(|p| p.exists())
            .unwrap_or(plain)
    };
    if let (Ok(real), Ok(real_root)) = (std::fs::canonicalize(&path), std::fs::canonicalize(root))
        && !real.starts_with(&real_root)
    {
        anyhow::bail!(
            "pipeline entry '{file}': {} leads outside the plugin directory {} (to {}); a pipeline names only files inside it",
            path.display(),
            root.display(),
            real.display()
        );
    }
    Ok(path)
}

/// Writes `files` into `dir` the way the kubelet updates a ConfigMap
/// volume: a new timestamped directory, `..data_tmp` pointing at it renamed
/// over `..data` (the one atomic step), a symlink per visible file through
/// `..data`, links to files no longer in the set removed, the old version
/// deleted. `--watch-configmap` mirrors a ConfigMap with it; tests use it
/// to play the kubelet. `dir` must be empty or written by this function
/// before: a regular file among the visible names is refused.
pub fn kubelet_update(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    for (name, _) in files {
        if name.is_empty() || name.starts_with("..") || name.contains('/') || *name == "." {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("'{name}' cannot be a file of the plugin directory"),
            ));
        }
        let visible = dir.join(name);
        if let Ok(meta) = visible.symlink_metadata()
            && !meta.file_type().is_symlink()
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} is a regular file; the directory must be empty or hold only what was mirrored into it",
                    visible.display()
                ),
            ));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let version = format!(
        "..{}.{:09}.{}",
        now.as_secs(),
        now.subsec_nanos(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    std::fs::create_dir(dir.join(&version))?;
    for (name, bytes) in files {
        std::fs::write(dir.join(&version).join(name), bytes)?;
    }
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let tmp = dir.join("..data_tmp");
    if tmp.symlink_metadata().is_ok() {
        // Left by an update that was interrupted.
        std::fs::remove_file(&tmp)?;
    }
    symlink(&version, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    for (name, _) in files {
        let visible = dir.join(name);
        if visible.symlink_metadata().is_err() {
            symlink(Path::new(DATA_LINK).join(name), visible)?;
        }
    }
    // Links of files the new version no longer has.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") || files.iter().any(|(f, _)| *f == name) {
            continue;
        }
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(DATA_LINK)) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in module: not a component, but reading does not check that.
    fn module(version: u8) -> Vec<u8> {
        vec![0, b'a', b's', b'm', version]
    }

    fn pipeline(config: &str) -> Vec<u8> {
        format!("plugins:\n  - file: a.wasm\n    config: {{ mark: {config} }}\n  - file: b.wasm\n")
            .into_bytes()
    }

    #[test]
    fn a_configmap_volume_is_read_through_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline("v1");
        kubelet_update(
            dir.path(),
            &[
                ("a.wasm", &module(1)),
                ("b.wasm", &module(2)),
                ("pipeline.yaml", &p),
            ],
        )
        .unwrap();
        let s = read_snapshot(dir.path(), None).unwrap();
        assert_eq!(
            s.root,
            std::fs::canonicalize(dir.path().join("..data")).unwrap()
        );
        let names: Vec<&str> = s.plugins.iter().map(|(_, p)| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.plugins[0].1.wasm, module(1));
        assert_eq!(s.plugins[0].0.config["mark"].to_string(), "v1");
    }

    #[test]
    fn the_hash_follows_meaning_not_layout() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (module(1), module(2));
        let v1 = pipeline("v1");
        let set = |p: &[u8]| {
            kubelet_update(
                dir.path(),
                &[("a.wasm", &a), ("b.wasm", &b), ("pipeline.yaml", p)],
            )
            .unwrap();
            read_snapshot(dir.path(), None).unwrap().sha256
        };
        let first = set(&v1);
        assert_eq!(set(&v1), first, "the same files in a new directory");
        let reformatted = String::from_utf8(v1.clone())
            .unwrap()
            .replace("{ mark: v1 }", "{mark:   v1}");
        assert_eq!(
            set(reformatted.as_bytes()),
            first,
            "only the YAML's layout changed"
        );
        assert_ne!(set(&pipeline("v2")), first, "a config value changed");
        kubelet_update(
            dir.path(),
            &[
                ("a.wasm", &module(9)),
                ("b.wasm", &b),
                ("pipeline.yaml", &v1),
            ],
        )
        .unwrap();
        assert_ne!(
            read_snapshot(dir.path(), None).unwrap().sha256,
            first,
            "a module changed"
        );
    }

    #[test]
    fn an_update_during_the_read_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = pipeline("v1");
        kubelet_update(
            dir.path(),
            &[
                ("a.wasm", &module(1)),
                ("b.wasm", &module(1)),
                ("pipeline.yaml", &p1),
            ],
        )
        .unwrap();
        // The update lands after `..data` was resolved and deletes the
        // directory the read was about to use.
        let p2 = pipeline("v2");
        let s = read_snapshot_with(dir.path(), None, &mut || {
            kubelet_update(
                dir.path(),
                &[
                    ("a.wasm", &module(2)),
                    ("b.wasm", &module(2)),
                    ("pipeline.yaml", &p2),
                ],
            )
            .unwrap()
        })
        .unwrap();
        assert!(
            s.plugins.iter().all(|(_, p)| p.wasm == module(2)),
            "no mix of versions"
        );
        assert_eq!(s.plugins[0].0.config["mark"].to_string(), "v2");
    }

    #[test]
    fn an_entry_finds_its_compressed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = module(1);
        let zst = zstd::bulk::compress(&wasm, 3).unwrap();
        kubelet_update(
            dir.path(),
            &[
                ("a.wasm.zst", &zst),
                ("pipeline.yaml", b"plugins:\n  - file: a.wasm\n"),
            ],
        )
        .unwrap();
        let s = read_snapshot(dir.path(), None).unwrap();
        assert_eq!(s.plugins[0].1.wasm, wasm);
        assert_eq!(s.plugins[0].1.name, "a");
    }

    /// A pipeline file names only files inside the plugin directory, and
    /// only regular files: not a path out of it, not a device or a FIFO
    /// (reading one would hang the reload).
    #[test]
    fn a_pipeline_names_only_regular_files_inside_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.wasm"), module(1)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.wasm"), dir.path().join("link.wasm"))
            .unwrap();
        let fifo = dir.path().join("fifo.wasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other inputs.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let absolute = outside.path().join("x.wasm");
        let cases = [
            (absolute.to_str().unwrap(), "no absolute path, no '..'"),
            ("../x.wasm", "no absolute path, no '..'"),
            ("sub/../../x.wasm", "no absolute path, no '..'"),
            ("link.wasm", "leads outside the plugin directory"),
            ("/dev/zero", "no absolute path, no '..'"),
            (
                "fifo.wasm",
                "not a regular file (a directory, device, FIFO or socket)",
            ),
        ];
        for (file, expected) in cases {
            std::fs::write(
                dir.path().join("pipeline.yaml"),
                format!("plugins:\n  - file: '{file}'\n"),
            )
            .unwrap();
            let err = format!("{:#}", read_snapshot(dir.path(), None).unwrap_err());
            assert!(err.contains(expected), "{file}: {err}");
            assert!(err.contains(file.trim_start_matches("/")), "{file}: {err}");
        }
    }

    #[test]
    fn a_plain_directory_works_and_a_missing_module_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.wasm"), module(2)).unwrap();
        std::fs::write(dir.path().join("a.wasm"), module(1)).unwrap();
        let s = read_snapshot(dir.path(), None).unwrap();
        assert_eq!(s.root, dir.path());
        assert_eq!(
            s.plugins.len(),
            2,
            "every *.wasm by name without a pipeline file"
        );
        std::fs::write(
            dir.path().join("pipeline.yaml"),
            "plugins:\n  - file: c.wasm\n",
        )
        .unwrap();
        let err = format!("{:#}", read_snapshot(dir.path(), None).unwrap_err());
        assert!(err.contains("c.wasm"), "{err}");
    }
}
