//! A ConfigMap mirrored into a local directory. The kubelet brings a
//! ConfigMap update to a mounted volume one sync period later (about a
//! minute); watching the object through the API sees it at once. What
//! arrives is written in the kubelet's own layout (`..data` swapped
//! atomically), so the reloader reads the mirror exactly as it reads a
//! mounted volume, and a half-written set is never visible.

use super::explain;
use crate::background::Background;
use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The files a ConfigMap holds: `data` as UTF-8 text, `binaryData` as
/// bytes, sorted by name.
pub fn files_of(cm: &ConfigMap) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, text) in cm.data.iter().flatten() {
        files.push((name.clone(), text.clone().into_bytes()));
    }
    for (name, bytes) in cm.binary_data.iter().flatten() {
        files.push((name.clone(), bytes.0.clone()));
    }
    files.sort();
    files
}

/// `wasmpipe run --watch-configmap`: keeps a directory equal to one
/// ConfigMap until dropped.
pub struct ConfigMapMirror {
    stop: CancellationToken,
}

impl ConfigMapMirror {
    /// Reads ConfigMap `name` (in `namespace`, or the client's default)
    /// with the pod's ServiceAccount and writes it into `dir` before
    /// returning, then follows every change as a task of `background`.
    /// `dir` must be empty or a mirror written before (an `emptyDir`, in a
    /// pod).
    pub fn start(
        background: &Background,
        namespace: Option<String>,
        name: String,
        dir: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::start_with(background, super::default_client, namespace, name, dir)
    }

    /// [`ConfigMapMirror::start`] with the client `connect` makes (tests
    /// pass a scripted API server), on the background's runtime.
    pub fn start_with<C, F>(
        background: &Background,
        connect: C,
        namespace: Option<String>,
        name: String,
        dir: PathBuf,
    ) -> anyhow::Result<Self>
    where
        C: FnOnce() -> F,
        F: Future<Output = anyhow::Result<Client>>,
    {
        let mirror = background.block_on(first(connect, namespace, &name, &dir))?;
        let stop = background.spawn(|stop| async move {
            tokio::select! {
                () = mirror.follow() => {}
                () = stop.cancelled() => {}
            }
        });
        Ok(Self { stop })
    }
}

impl Drop for ConfigMapMirror {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The mirror after its first write.
struct Mirror {
    api: Api<ConfigMap>,
    what: String,
    name: String,
    dir: PathBuf,
    /// sha256 of the files last written.
    written: String,
}

/// Connects, reads the ConfigMap once and writes it.
async fn first<C, F>(
    connect: C,
    namespace: Option<String>,
    name: &str,
    dir: &Path,
) -> anyhow::Result<Mirror>
where
    C: FnOnce() -> F,
    F: Future<Output = anyhow::Result<Client>>,
{
    let client = connect().await?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    let what = format!("ConfigMap {namespace}/{name}");
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let cm = api
        .get(name)
        .await
        .map_err(|e| explain(e, &what, "get, list and watch"))?;
    let mut mirror = Mirror {
        api,
        what,
        name: name.to_owned(),
        dir: dir.to_owned(),
        written: String::new(),
    };
    mirror.write(&cm)?;
    Ok(mirror)
}

impl Mirror {
    /// Writes `cm` unless its files are the ones written last.
    fn write(&mut self, cm: &ConfigMap) -> anyhow::Result<()> {
        let files = files_of(cm);
        let mut hash = Sha256::new();
        for (name, bytes) in &files {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(Sha256::digest(bytes));
        }
        let sha256 = hex::encode(hash.finalize());
        if sha256 == self.written {
            return Ok(());
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        crate::reload::kubelet_update(&self.dir, &refs)
            .with_context(|| format!("writing {} into {}", self.what, self.dir.display()))?;
        tracing::info!(configmap = %self.what, resource_version = cm.metadata.resource_version.as_deref().unwrap_or(""), files = files.len(), dir = %self.dir.display(), "configmap mirrored");
        self.written = sha256;
        Ok(())
    }

    /// Follows the ConfigMap until the task is dropped. The watch is
    /// restarted with backoff when it fails (API server restarts, expired
    /// resource versions); a deleted ConfigMap leaves the last set running.
    async fn follow(mut self) {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut events = watcher(self.api.clone(), config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                    if let Err(e) = self.write(&cm) {
                        tracing::error!(error = %format!("{e:#}"), "configmap: the update could not be mirrored; the running plugin set stays");
                    }
                }
                Ok(watcher::Event::Delete(_)) => {
                    tracing::warn!(configmap = %self.what, "configmap deleted; the running plugin set stays until it is created again");
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(e) => {
                    tracing::warn!(configmap = %self.what, error = %e, "configmap watch failed; retrying with backoff");
                }
            }
        }
    }
}
