//! `wasmpipe deploy`: a checked plugin set fitted into one ConfigMap and
//! server-side applied. Server-side, because client-side apply keeps the
//! whole object in an annotation that Kubernetes refuses above 256 KiB.

use super::{CONFIGMAP_LIMIT, explain};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The field manager wasmpipe applies as.
pub const FIELD_MANAGER: &str = "wasmpipe";

/// One file of the set: its name in the ConfigMap and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Why a set does not fit one ConfigMap.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin set is {total} bytes with every plugin zstd-compressed ({listing}); a ConfigMap holds {CONFIGMAP_LIMIT}: split the chain across two deployments, make the plugins smaller (opt-level \"s\", strip, LTO), or ship them in the image or a volume instead"
)]
pub struct TooLarge {
    pub total: usize,
    pub listing: String,
}

/// Fits `plugins` and the pipeline file into one ConfigMap: files that fit
/// are kept as they are; otherwise the largest plugins are zstd-compressed
/// (`NAME.wasm.zst`, which a pipeline entry `file: NAME.wasm` finds) one by
/// one until the set fits. Returns the files, pipeline file included.
pub fn fit(plugins: Vec<File>, pipeline: Option<File>) -> Result<Vec<File>, TooLarge> {
    let mut files = plugins;
    let size = |files: &[File]| {
        files.iter().map(|f| f.bytes.len()).sum::<usize>()
            + pipeline.as_ref().map_or(0, |p| p.bytes.len())
    };
    while size(&files) > CONFIGMAP_LIMIT {
        let largest = files
            .iter_mut()
            .filter(|f| f.name.ends_with(".wasm"))
            .max_by_key(|f| f.bytes.len());
        let Some(f) = largest else {
            let listing = files
                .iter()
                .map(|f| format!("{} {} bytes", f.name, f.bytes.len()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(TooLarge {
                total: size(&files),
                listing,
            });
        };
        // Level 19: a deploy compresses once, every pod decompresses fast.
        let compressed = zstd::bulk::compress(&f.bytes, 19).unwrap_or_else(|_| f.bytes.clone());
        tracing::info!(plugin = %f.name, raw = f.bytes.len(), zstd = compressed.len(), "compressing to fit the ConfigMap");
        f.name.push_str(".zst");
        f.bytes = compressed;
    }
    files.extend(pipeline);
    Ok(files)
}

/// The ConfigMap holding `files`: `.yaml`/`.toml` as text, the rest as
/// `binaryData`.
pub fn configmap(name: &str, namespace: &str, files: &[File]) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for f in files {
        match String::from_utf8(f.bytes.clone()) {
            Ok(text) if f.name.ends_with(".yaml") || f.name.ends_with(".toml") => {
                data.insert(f.name.clone(), text);
            }
            _ => {
                binary.insert(f.name.clone(), ByteString(f.bytes.clone()));
            }
        }
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                FIELD_MANAGER.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: (!data.is_empty()).then_some(data),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..ConfigMap::default()
    }
}

/// Server-side applies `cm` as field manager `wasmpipe`, taking over fields
/// another manager set (the set deployed is the set that runs). Files a
/// previous deploy added and this one lacks are removed.
pub async fn apply(client: Client, cm: &ConfigMap) -> anyhow::Result<ConfigMap> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let namespace = cm.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(cm))
        .await
        .map_err(|e| {
            explain(
                e,
                &format!("applying ConfigMap {namespace}/{name}"),
                "get, create and patch on configmaps",
            )
        })
}
