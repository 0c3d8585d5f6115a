//! `wasmpipe deploy`: a checked plugin set fitted into one ConfigMap and
//! server-side applied. Server-side, because client-side apply keeps the
//! whole object in an annotation that Kubernetes refuses above 256 KiB.

use super::{CONFIGMAP_LIMIT, explain};
use crate::config::PipelineFile;
use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// What `wasmpipe deploy` ships: every file in `files`, each passed to
/// `check` with the config the pipeline file gives it (a caller's check
/// loads it as `plugin check` does; an error stops the deploy), and the
/// pipeline file — `pipeline`, or one written from the order of `files` —
/// fitted into one ConfigMap.
pub fn plan(
    files: &[PathBuf],
    pipeline: Option<&Path>,
    mut check: impl FnMut(&Path, Vec<(String, String)>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<File>> {
    let (parsed, text) = match pipeline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the pipeline file {}", path.display()))?;
            (Some(PipelineFile::parse(path, &text)?), text)
        }
        None => {
            let mut text = String::from("plugins:\n");
            for f in files {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                text.push_str(&format!("  - file: {name}\n"));
            }
            (None, text)
        }
    };
    let mut plugins = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", path.display()))?
            .to_owned();
        check(path, config_for(parsed.as_ref(), &name))?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        plugins.push(File { name, bytes });
    }
    let pipeline_name = match pipeline.and_then(Path::extension) {
        Some(e) if e == "toml" => "pipeline.toml",
        _ => "pipeline.yaml",
    };
    let pipeline = File {
        name: pipeline_name.to_owned(),
        bytes: text.into_bytes(),
    };
    Ok(fit(plugins, Some(pipeline))?)
}

/// The config the pipeline file gives the plugin in file `name`: an entry
/// `file: NAME.wasm` also names `NAME.wasm.zst` and `NAME.wasm.gz`.
pub fn config_for(pipeline: Option<&PipelineFile>, name: &str) -> Vec<(String, String)> {
    let stem = name.strip_suffix(".zst").or(name.strip_suffix(".gz"));
    pipeline
        .iter()
        .flat_map(|p| p.plugins.iter())
        .filter(|spec| spec.file == name || stem == Some(spec.file.as_str()))
        .flat_map(|spec| spec.config.iter().map(|(k, v)| (k.clone(), v.to_string())))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_the_config_of_its_entry_compressed_or_not() {
        let yaml = "plugins:\n  - file: redact.wasm\n    config: { mask: a.b, n: 3 }\n  - file: route.wasm\n    config: { path: region }\n";
        let p = PipelineFile::parse(Path::new("pipeline.yaml"), yaml).unwrap();
        let want = vec![
            ("mask".to_owned(), "a.b".to_owned()),
            ("n".to_owned(), "3".to_owned()),
        ];
        for name in ["redact.wasm", "redact.wasm.zst", "redact.wasm.gz"] {
            assert_eq!(config_for(Some(&p), name), want, "{name}");
        }
        assert!(config_for(Some(&p), "redact.wasm.bz2").is_empty());
        assert!(config_for(Some(&p), "other.wasm").is_empty());
        assert!(config_for(None, "redact.wasm").is_empty());
    }

    #[test]
    fn without_a_pipeline_file_one_is_written_in_the_order_given_and_each_plugin_checked() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = ["b.wasm", "a.wasm"]
            .iter()
            .map(|n| {
                let path = dir.path().join(n);
                std::fs::write(&path, n.as_bytes()).unwrap();
                path
            })
            .collect();
        let mut checked = Vec::new();
        let planned = plan(&files, None, |path, config| {
            checked.push((path.to_owned(), config));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            checked,
            vec![(files[0].clone(), vec![]), (files[1].clone(), vec![])]
        );
        let names: Vec<&str> = planned.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b.wasm", "a.wasm", "pipeline.yaml"]);
        assert_eq!(
            planned[2].bytes,
            b"plugins:\n  - file: b.wasm\n  - file: a.wasm\n"
        );
        let refused = plan(&files, None, |_, _| anyhow::bail!("does not load"));
        assert_eq!(refused.unwrap_err().to_string(), "does not load");
    }
}
