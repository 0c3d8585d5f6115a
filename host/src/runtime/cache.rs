//! Compiled plugins on disk, so a restart loads in microseconds instead of
//! compiling again. Entries are keyed by the module's sha256 and the
//! engine's compatibility hash (wasmtime version, settings, CPU features).
//!
//! Deserializing a compiled artifact runs native code it describes, so the
//! cache only ever loads files this process wrote, from a directory that no
//! other user (and no ConfigMap or plugin) can write.

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
    /// Opens (creating it `0700`) the cache directory `dir`.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> anyhow::Result<ArtifactCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the compile cache {}", dir.display()))?;
        check_private(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key: hex::encode(&hasher.0.finalize()[..8]),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `wasm`, from the cache or compiled now.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<Component> {
        let path = self.path(sha256);
        if path.exists() {
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
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache; compiling in memory");
        }
        Ok(component)
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

#[cfg(unix)]
fn check_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    let uid = geteuid();
    if meta.uid() != uid {
        bail!(
            "compile cache {} belongs to uid {}, not to this process (uid {uid}): use a directory of its own, e.g. an emptyDir",
            dir.display(),
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

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> anyhow::Result<()> {
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
