//! Compiled plugins on disk, so a restart loads in microseconds instead of
//! compiling again. Entries are keyed by the module's sha256 and the
//! engine's compatibility hash (wasmtime version, settings, CPU features).
//!
//! Deserializing a compiled artifact runs native code it describes, so the
//! cache only ever loads files this process's user wrote, from a directory
//! that no other user (and no ConfigMap or plugin) can write: a
//! subdirectory `wasmpipe-<uid>` of the directory given, created `0700` by
//! this process and checked to be its own before each load. The directory
//! given may belong to anyone — the kubelet makes an `emptyDir` root's,
//! mode `0777` (`2777` with an `fsGroup`).

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// Opens the cache in `dir`: its private subdirectory, created `0700`
    /// if absent.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> anyhow::Result<ArtifactCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the compile cache {}", dir.display()))?;
        let dir = dir.join(private_name());
        create_private(&dir)?;
        check_private(&dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ArtifactCache {
            dir,
            engine_key: hex::encode(&hasher.0.finalize()[..8]),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `wasm`, from the cache or compiled now.
    pub fn load_or_compile<E>(
        &self,
        engine: &wasmtime::Engine,
        sha256: &str,
        compile: impl FnOnce(&Path) -> Result<Component, E>,
    ) -> Result<Component, E> {
        let path = self.path(sha256);
        // Checked again at each load: the directory holding ours may be
        // writable by others, who could move ours away and put theirs.
        if path.exists() && self.still_private(&path) {
            // SAFETY: the file is in a directory only this user can write
            // (checked at open), named by the source's sha256 and this
            // engine's compatibility hash, and written by `store` below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compile cache entry")
                }
            }
        }
        let component = compile(&self.dir)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache; compiling in memory");
        }
        Ok(component)
    }

    /// Whether the cache directory and the entry `path` are still this
    /// user's alone; logs why not.
    fn still_private(&self, path: &Path) -> bool {
        let checked = check_private(&self.dir).and_then(|()| check_own_file(path));
        if let Err(e) = &checked {
            tracing::warn!(error = %format!("{e:#}"), "compile cache entry not loaded; compiling again");
        }
        checked.is_ok()
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    }
}

/// The private subdirectory's name: one per user sharing the directory.
fn private_name() -> String {
    #[cfg(unix)]
    return format!("wasmpipe-{}", geteuid());
    #[cfg(not(unix))]
    return "wasmpipe".into();
}

fn create_private(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| {
            format!(
                "creating the compile cache {}: give this process a writable directory (--cache-dir, WASMPIPE_CACHE_DIR), e.g. an emptyDir",
                dir.display()
            )
        }),
    }
}

#[cfg(unix)]
fn check_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // Not followed: a link another user put there is not ours.
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("reading the compile cache {}", dir.display()))?;
    let uid = geteuid();
    if !meta.is_dir() || meta.uid() != uid {
        bail!(
            "compile cache {} is not a directory of this process's user (uid {uid}; it is {} of uid {}): remove it, or give this process a directory of its own (--cache-dir, WASMPIPE_CACHE_DIR)",
            dir.display(),
            if meta.is_symlink() {
                "a symbolic link"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "a file"
            },
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "compile cache {} is open to other users and cannot be made private (chmod 700 it)",
                    dir.display()
                )
            },
        )?;
    }
    Ok(())
}

#[cfg(unix)]
unsafe extern "C" {
    /// POSIX `geteuid`: no preconditions, cannot fail.
    safe fn geteuid() -> u32;
}

/// A cache entry is a regular file of this process's user.
#[cfg(unix)]
fn check_own_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() || meta.uid() != geteuid() {
        bail!("{} is not a file this process's user wrote", path.display());
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn check_own_file(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only used to feed bytes into sha256")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
