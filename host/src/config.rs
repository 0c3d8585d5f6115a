//! The pipeline's configuration: what `wasmpipe run` reads from flags and
//! environment, and the pipeline file naming the plugin chain.

pub use crate::format::FormatConfig as FormatSection;
use crate::kafka::{Delivery, KafkaConfig};
use crate::runtime::{Chain, Limits, Runtime};
use anyhow::{Context as _, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod checks;
pub use checks::{MAX_PLUGIN_OUTPUT, default_name, topic_name_error};

/// What happens to a record a plugin fails on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Send it to the dead-letter topic with headers saying why.
    Dlq,
    /// Drop it, counted and logged.
    Skip,
    /// Stop the pipeline with an error naming the record.
    Halt,
}

/// What happens to a record that fails, with what that needs: `OnError`
/// as [`RunConfig::validate`] settles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Written to `topic` with headers saying why.
    DeadLetter { topic: String },
    /// Dropped, counted and logged.
    Skip,
    /// The pipeline stops with an error naming the record.
    Halt,
}

/// A [`RunConfig`] that [`RunConfig::validate`] accepted, with what it
/// settled: what the app and the pipeline run with. Read its settings
/// through `Deref`.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    config: RunConfig,
    on_failure: OnFailure,
}

impl ValidConfig {
    pub fn on_failure(&self) -> &OnFailure {
        &self.on_failure
    }

    /// Takes the pipeline file's `format:` section, which stands for the
    /// format flags.
    pub fn set_format(&mut self, format: crate::format::FormatConfig) {
        self.config.formats.config = format;
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = RunConfig;

    fn deref(&self) -> &RunConfig {
        &self.config
    }
}

/// Everything `wasmpipe run` needs, as given; [`RunConfig::validate`]
/// makes it a [`ValidConfig`].
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub kafka: KafkaConfig,
    pub group: String,
    pub input_topics: Vec<String>,
    pub output_topic: String,
    pub plugin_dir: PathBuf,
    /// The pipeline file; by default `pipeline.yaml`, `.yml` or `.toml` in
    /// the plugin directory, if there is one.
    pub pipeline_file: Option<PathBuf>,
    pub delivery: Delivery,
    pub on_error: OnError,
    pub dlq_topic: Option<String>,
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    /// How often offsets (or transactions) are committed.
    pub commit_interval: Duration,
    pub limits: Limits,
    /// How long shutdown may take to finish, flush and commit.
    pub grace: Duration,
    /// The producer's transactional id (exactly-once).
    pub transactional_id: String,
    /// Where plugins' keyed state is kept on disk (a cache of the
    /// changelog topics: losing it costs a full restore, nothing else).
    pub state_dir: PathBuf,
    /// Record formats and the schema registry.
    pub formats: crate::format::Formats,
}

/// The pipeline file: the plugin chain, in order, with each plugin's config.
///
/// ```yaml
/// plugins:
///   - file: redact.wasm
///     config: { mask: user.email }
///   - file: route.wasm
///     config: { path: region, route.eu: orders-eu }
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Never empty: a file reading `plugins:` alone is refused by name.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub plugins: Vec<PluginSpec>,
    /// Record formats, in place of the format flags (read at start).
    #[serde(default)]
    pub format: Option<crate::format::FormatConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// The plugin's file, relative to the plugin directory.
    pub file: String,
    /// Its name in logs and dead letters (default: the file's stem).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, Scalar>,
    /// Where a stateful plugin's state lives (its changelog topic).
    #[serde(default)]
    pub state: crate::state::changelog::ChangelogSpec,
}

/// `plugins:` with nothing after it reads as an empty list, refused with
/// the fix by [`PipelineFile::check`] rather than as a type error.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PluginSpec>, D::Error> {
    Ok(Option::<Vec<PluginSpec>>::deserialize(d)?.unwrap_or_default())
}

/// A config value: written as a string, number or boolean.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl PipelineFile {
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<PipelineFile> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parsed = match ext {
            "toml" => toml::from_str(text).map_err(anyhow::Error::from),
            "yaml" | "yml" => serde_yaml::from_str(text).map_err(anyhow::Error::from),
            _ => bail!(
                "pipeline file {}: name it .yaml, .yml or .toml",
                path.display()
            ),
        };
        let file: PipelineFile =
            parsed.with_context(|| format!("pipeline file {}", path.display()))?;
        file.check(path)?;
        Ok(file)
    }

    /// The default chain: every plugin file in `dir`, by name, no config.
    pub fn from_dir(dir: &Path) -> anyhow::Result<PipelineFile> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the plugin directory {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| crate::plugin_file::PluginFile::parse(n).is_some())
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "no plugin in {}: put *.wasm (or *.py, *.js script) files there or a pipeline file naming them",
                dir.display()
            );
        }
        Ok(PipelineFile {
            plugins: files
                .into_iter()
                .map(|file| PluginSpec {
                    file,
                    name: None,
                    config: BTreeMap::new(),
                    state: Default::default(),
                })
                .collect(),
            format: None,
        })
    }
}

/// Finds the pipeline file: the one given, or one in the plugin directory.
pub fn pipeline_file(dir: &Path, given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_owned).or_else(|| {
        ["pipeline.yaml", "pipeline.yml", "pipeline.toml"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    })
}

/// Loads the chain the plugin directory and pipeline file describe, all
/// from one version of the directory.
pub fn load_chain(
    runtime: &Arc<Runtime>,
    dir: &Path,
    pipeline: Option<&Path>,
    limits: Limits,
) -> anyhow::Result<Chain> {
    load_snapshot(
        runtime,
        &crate::reload::read_snapshot(dir, pipeline)?,
        limits,
    )
}

/// Compiles (or loads from the cache) every plugin of a snapshot.
pub fn load_snapshot(
    runtime: &Arc<Runtime>,
    snapshot: &crate::reload::Snapshot,
    limits: Limits,
) -> anyhow::Result<Chain> {
    let mut plugins = Vec::new();
    for (spec, source) in &snapshot.plugins {
        let config = spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let plugin = runtime.load(source, config, limits)?;
        plugins.push(plugin.with_state(spec.state.clone()));
    }
    Ok(Chain { plugins })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_toml_pipeline_files_read_the_same() {
        let yaml = "plugins:\n  - file: redact.wasm\n    config: { mask: user.email, depth: 3 }\n  - file: route.wasm\n    name: router\n";
        let toml = "[[plugins]]\nfile = \"redact.wasm\"\nconfig = { mask = \"user.email\", depth = 3 }\n[[plugins]]\nfile = \"route.wasm\"\nname = \"router\"\n";
        let a = PipelineFile::parse(Path::new("p.yaml"), yaml).unwrap();
        let b = PipelineFile::parse(Path::new("p.toml"), toml).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.plugins[0].config["depth"].to_string(), "3");
        assert_eq!(a.plugins[1].name.as_deref(), Some("router"));
    }

    #[test]
    fn the_format_section_reads_formats_strategies_and_versions() {
        use crate::format::{Format, FormatConfig, OutputSchema, SubjectStrategy};
        let yaml = "plugins:\n  - file: a.wasm\nformat:\n  value: avro\n  key: json\n  output_value: json-schema\n  subject: topic-record\n  schema: 3\n";
        let file = PipelineFile::parse(Path::new("p.yaml"), yaml).unwrap();
        assert_eq!(
            file.format,
            Some(FormatConfig {
                key: Format::Json,
                value: Format::Avro,
                output_key: None,
                output_value: Some(Format::JsonSchema),
                subject: SubjectStrategy::TopicRecord,
                schema: OutputSchema::Version(3),
            })
        );
        let toml = "format = { value = \"protobuf\", schema = \"input\" }\n[[plugins]]\nfile = \"a.wasm\"\n";
        let file = PipelineFile::parse(Path::new("p.toml"), toml).unwrap();
        let format = file.format.unwrap();
        assert_eq!(
            (format.value, format.schema),
            (Format::Protobuf, OutputSchema::Input)
        );
        let err = PipelineFile::parse(
            Path::new("p.yaml"),
            "plugins:\n  - file: a.wasm\nformat:\n  value: avro2\n",
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("unknown variant `avro2`") && msg.contains("json-schema"),
            "{msg}"
        );
        let err = PipelineFile::parse(
            Path::new("p.yaml"),
            "plugins:\n  - file: a.wasm\nformat:\n  schema: newest\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("write latest, input or a version number"),
            "{err:#}"
        );
    }

    #[test]
    fn typos_in_the_pipeline_file_are_named() {
        let err = PipelineFile::parse(
            Path::new("p.yaml"),
            "plugins:\n  - file: a.wasm\n    confg: {}\n",
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("pipeline file p.yaml") && msg.contains("unknown field `confg`"),
            "{msg}"
        );
    }
}
