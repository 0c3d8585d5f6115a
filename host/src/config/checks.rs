//! What a configuration must satisfy before anything starts: each refusal
//! names the setting (flag and environment variable, or the pipeline file)
//! and the fix, so a mistake never runs as silent harm.

use super::{OnError, OnFailure, PipelineFile, PluginSpec, RunConfig, ValidConfig};
use crate::runtime::Limits;
use anyhow::bail;
use std::path::Path;
use std::time::Duration;

/// Most records in one batch: far above any batch that pays (the default
/// is 256), low enough that a typo of a few zeros is caught.
pub const MAX_BATCH_RECORDS: usize = 1_000_000;

/// Most bytes in one batch: 1 GiB. A batch closes once it holds
/// `--batch-bytes`, so the record that crosses the bound still goes in;
/// the batch's layout addresses at most 2 GiB (31-bit offsets), and 1 GiB
/// leaves the other half for that last record. It is also below the most
/// one consumer fetch may carry (librdkafka's `fetch.max.bytes` ceiling,
/// 2147483135 bytes).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// Longest a batch may wait to fill up.
pub const MAX_LINGER: Duration = Duration::from_secs(3600);

/// Smallest plugin memory: one wasm page.
pub const WASM_PAGE: usize = 64 << 10;

/// Largest plugin memory: all a 32-bit wasm memory can address.
pub const MAX_PLUGIN_MEMORY: usize = 4 << 30;

/// Most bytes one batch's outputs may hold: the flat layout addresses
/// 2 GiB (bit 31 of a span marks bytes kept from the input).
pub const MAX_PLUGIN_OUTPUT: usize = (2 << 30) - (1 << 20);

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// Why `name` is not a topic name Kafka accepts, if it is not.
pub fn topic_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("'{name}' is reserved"));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Some(format!(
            "it is {} characters long, more than {MAX_TOPIC_LEN}",
            name.chars().count()
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("it has the character {c:?}"))
}

/// Refuses a topic name Kafka would refuse, naming where it was set.
fn check_topic(setting: &str, name: &str) -> anyhow::Result<()> {
    match topic_name_error(name) {
        Some(why) => bail!(
            "{setting}: '{name}' is not a Kafka topic name ({why}): use 1 to {MAX_TOPIC_LEN} characters of a-z, A-Z, 0-9, '.', '_' and '-', other than '.' and '..'"
        ),
        None => Ok(()),
    }
}

fn show(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

impl RunConfig {
    /// Checks what flags alone cannot, naming the setting and the fix, and
    /// settles what depends on several settings.
    pub fn validate(self) -> anyhow::Result<ValidConfig> {
        let on_failure = self.check_topics()?;
        self.check_batching()?;
        self.check_limits()?;
        if !self.plugin_dir.is_dir() {
            bail!(
                "--plugin-dir (WASMPIPE_PLUGIN_DIR) {} is not a directory: name the directory holding the plugins",
                self.plugin_dir.display()
            );
        }
        Ok(ValidConfig {
            config: self,
            on_failure,
        })
    }

    /// The topics, and the failure policy they allow.
    fn check_topics(&self) -> anyhow::Result<OnFailure> {
        if self.input_topics.is_empty() {
            bail!("no input topic: set --input-topic (WASMPIPE_INPUT_TOPIC)");
        }
        for topic in &self.input_topics {
            check_topic("--input-topic (WASMPIPE_INPUT_TOPIC)", topic)?;
        }
        check_topic("--output-topic (WASMPIPE_OUTPUT_TOPIC)", &self.output_topic)?;
        let dlq = self.dlq_topic.as_deref().filter(|t| !t.is_empty());
        let on_failure = match (self.on_error, dlq) {
            (OnError::Dlq, Some(topic)) => OnFailure::DeadLetter {
                topic: topic.to_owned(),
            },
            (OnError::Dlq, None) => bail!(
                "--on-error dlq needs a dead-letter topic: set --dlq-topic (WASMPIPE_DLQ_TOPIC), or choose --on-error skip|halt"
            ),
            (OnError::Skip, _) => OnFailure::Skip,
            (OnError::Halt, _) => OnFailure::Halt,
        };
        if self.input_topics.contains(&self.output_topic) {
            bail!(
                "--output-topic (WASMPIPE_OUTPUT_TOPIC) '{}' is also an input topic: records would loop; choose an output topic that --input-topic (WASMPIPE_INPUT_TOPIC) does not name",
                self.output_topic
            );
        }
        if let Some(dlq) = dlq {
            check_topic("--dlq-topic (WASMPIPE_DLQ_TOPIC)", dlq)?;
            if self.input_topics.iter().any(|t| t == dlq) {
                bail!(
                    "--dlq-topic (WASMPIPE_DLQ_TOPIC) '{dlq}' is also an input topic: dead letters would be read and fail again; give dead letters a topic of their own"
                );
            }
            if dlq == self.output_topic {
                bail!(
                    "--dlq-topic (WASMPIPE_DLQ_TOPIC) '{dlq}' is also the output topic (--output-topic, WASMPIPE_OUTPUT_TOPIC): dead letters would mix with good records; give dead letters a topic of their own"
                );
            }
        }
        Ok(on_failure)
    }

    fn check_batching(&self) -> anyhow::Result<()> {
        if self.batch_records == 0 {
            bail!("--batch-records (WASMPIPE_BATCH_RECORDS) is 0: set at least 1 (default 256)");
        }
        if self.batch_records > MAX_BATCH_RECORDS {
            bail!(
                "--batch-records (WASMPIPE_BATCH_RECORDS) {} is more than {MAX_BATCH_RECORDS}: set at most that (default 256)",
                self.batch_records
            );
        }
        if self.batch_bytes == 0 {
            bail!(
                "--batch-bytes (WASMPIPE_BATCH_BYTES) is 0: set at least 1 (default 262144, 256 KiB)"
            );
        }
        if self.batch_bytes > MAX_BATCH_BYTES {
            bail!(
                "--batch-bytes (WASMPIPE_BATCH_BYTES) {} is more than {MAX_BATCH_BYTES} (1 GiB), what one batch can hold: set at most that (default 262144, 256 KiB)",
                self.batch_bytes
            );
        }
        if self.linger > MAX_LINGER {
            bail!(
                "--linger (WASMPIPE_LINGER) {} is longer than {}: set at most that (default 5ms)",
                show(self.linger),
                show(MAX_LINGER)
            );
        }
        if self.commit_interval.is_zero() {
            bail!(
                "--commit-interval (WASMPIPE_COMMIT_INTERVAL) is 0: set how often to commit, e.g. 200ms (the default)"
            );
        }
        if self.grace.is_zero() {
            bail!(
                "--shutdown-grace (WASMPIPE_SHUTDOWN_GRACE) is 0: allow time to finish, deliver and commit, e.g. 20s (the default)"
            );
        }
        Ok(())
    }

    fn check_limits(&self) -> anyhow::Result<()> {
        self.limits.check()
    }
}

impl Limits {
    /// Checks the plugin limits, naming the flag and the fix: for `run`
    /// and for every command that runs a plugin (`plugin check`, `plugin
    /// test`, `deploy`).
    pub fn check(&self) -> anyhow::Result<()> {
        let limits = self;
        if limits.memory_bytes < WASM_PAGE {
            bail!(
                "--plugin-memory-mib (WASMPIPE_PLUGIN_MEMORY_MIB) is 0: a plugin needs at least one wasm page (64 KiB); set 1 or more (default 64)"
            );
        }
        if limits.memory_bytes > MAX_PLUGIN_MEMORY {
            bail!(
                "--plugin-memory-mib (WASMPIPE_PLUGIN_MEMORY_MIB) {} is more than a wasm memory can address (4096 MiB): set at most 4096 (default 64)",
                limits.memory_bytes >> 20
            );
        }
        if limits.deadline.is_zero() {
            bail!(
                "--plugin-deadline (WASMPIPE_PLUGIN_DEADLINE) is 0: allow a batch some CPU time, e.g. 1s (the default)"
            );
        }
        if limits.output_bytes == 0 {
            bail!(
                "--plugin-output-mib (WASMPIPE_PLUGIN_OUTPUT_MIB) is 0: no batch could have an output; set 1 or more (default 16)"
            );
        }
        if limits.output_bytes > MAX_PLUGIN_OUTPUT {
            bail!(
                "--plugin-output-mib (WASMPIPE_PLUGIN_OUTPUT_MIB) {} is more than one batch's outputs can hold (2047 MiB): set at most 2047 (default 16)",
                limits.output_bytes >> 20
            );
        }
        Ok(())
    }
}

/// A plugin's name when its entry gives none: the file name without its
/// directory and its `.wasm`, `.wasm.gz`, `.wasm.zst`, `.py` or `.js`
/// ending, as the runtime names it.
pub fn default_name(file: &str) -> &str {
    let name = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    crate::plugin_file::PluginFile::parse(name).map_or(name, |f| f.stem())
}

impl PluginSpec {
    /// Its name in logs, metrics and dead letters.
    pub fn plugin_name(&self) -> &str {
        self.name
            .as_deref()
            .unwrap_or_else(|| default_name(&self.file))
    }
}

impl PipelineFile {
    /// Refuses a chain that would run nothing or whose plugins could not
    /// be told apart.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        if self.plugins.is_empty() {
            bail!(
                "pipeline file {}: the plugins list is empty: list at least one plugin (- file: NAME.wasm), or run with --passthrough to run none",
                path.display()
            );
        }
        for (i, spec) in self.plugins.iter().enumerate() {
            let name = spec.plugin_name();
            if let Some(j) = self.plugins[..i]
                .iter()
                .position(|s| s.plugin_name() == name)
            {
                bail!(
                    "pipeline file {}: plugins {} and {} are both named '{name}': dead letters and metrics could not tell them apart; give one a different `name:`",
                    path.display(),
                    j + 1,
                    i + 1
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{Delivery, KafkaConfig};
    use crate::runtime::Limits;

    fn config() -> RunConfig {
        RunConfig {
            kafka: KafkaConfig::default(),
            group: "g".into(),
            input_topics: vec!["orders".into()],
            output_topic: "orders-clean".into(),
            plugin_dir: std::env::temp_dir(),
            pipeline_file: None,
            delivery: Delivery::AtLeastOnce,
            on_error: OnError::Dlq,
            dlq_topic: Some("orders-dlq".into()),
            batch_records: 256,
            batch_bytes: 256 << 10,
            linger: Duration::from_millis(5),
            commit_interval: Duration::from_millis(200),
            limits: Limits::default(),
            grace: Duration::from_secs(20),
            transactional_id: "t".into(),
            state_dir: "state".into(),
            formats: Default::default(),
        }
    }

    fn refused(change: impl FnOnce(&mut RunConfig)) -> String {
        let mut c = config();
        change(&mut c);
        format!("{:#}", c.validate().unwrap_err())
    }

    #[test]
    fn the_defaults_pass_and_settle_the_failure_policy() {
        let valid = config().validate().unwrap();
        assert_eq!(
            valid.on_failure(),
            &OnFailure::DeadLetter {
                topic: "orders-dlq".into()
            }
        );
        let mut c = config();
        c.on_error = OnError::Skip;
        c.dlq_topic = None;
        assert_eq!(c.validate().unwrap().on_failure(), &OnFailure::Skip);
        let mut c = config();
        c.on_error = OnError::Halt;
        assert_eq!(c.validate().unwrap().on_failure(), &OnFailure::Halt);
    }

    #[test]
    fn a_dead_letter_topic_that_is_an_input_or_the_output_is_refused() {
        assert_eq!(
            refused(|c| c.dlq_topic = Some("orders-clean".into())),
            "--dlq-topic (WASMPIPE_DLQ_TOPIC) 'orders-clean' is also the output topic (--output-topic, WASMPIPE_OUTPUT_TOPIC): dead letters would mix with good records; give dead letters a topic of their own"
        );
        assert_eq!(
            refused(|c| {
                c.input_topics.push("more".into());
                c.dlq_topic = Some("more".into());
            }),
            "--dlq-topic (WASMPIPE_DLQ_TOPIC) 'more' is also an input topic: dead letters would be read and fail again; give dead letters a topic of their own"
        );
        // Unused with skip, but still a mistake.
        assert!(
            refused(|c| {
                c.on_error = OnError::Skip;
                c.dlq_topic = Some("orders".into());
            })
            .starts_with("--dlq-topic (WASMPIPE_DLQ_TOPIC) 'orders' is also an input topic")
        );
        assert_eq!(
            refused(|c| c.dlq_topic = Some(String::new())),
            "--on-error dlq needs a dead-letter topic: set --dlq-topic (WASMPIPE_DLQ_TOPIC), or choose --on-error skip|halt"
        );
        assert_eq!(
            refused(|c| c.output_topic = "orders".into()),
            "--output-topic (WASMPIPE_OUTPUT_TOPIC) 'orders' is also an input topic: records would loop; choose an output topic that --input-topic (WASMPIPE_INPUT_TOPIC) does not name"
        );
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert_eq!(topic_name_error("orders.v2_eu-1"), None);
        assert_eq!(topic_name_error(&"a".repeat(249)), None);
        assert_eq!(
            topic_name_error(&"a".repeat(250)).as_deref(),
            Some("it is 250 characters long, more than 249")
        );
        assert_eq!(topic_name_error("").as_deref(), Some("it is empty"));
        assert_eq!(topic_name_error("..").as_deref(), Some("'..' is reserved"));
        assert_eq!(
            topic_name_error("orders eu").as_deref(),
            Some("it has the character ' '")
        );
        assert_eq!(
            topic_name_error("ordérs").as_deref(),
            Some("it has the character 'é'")
        );
        assert_eq!(
            refused(|c| c.input_topics.push(".".into())),
            "--input-topic (WASMPIPE_INPUT_TOPIC): '.' is not a Kafka topic name ('.' is reserved): use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', other than '.' and '..'"
        );
        assert!(
            refused(|c| c.output_topic = "out/put".into()).starts_with(
                "--output-topic (WASMPIPE_OUTPUT_TOPIC): 'out/put' is not a Kafka topic name (it has the character '/')"
            )
        );
        assert!(
            refused(|c| c.dlq_topic = Some("dead letters".into())).starts_with(
                "--dlq-topic (WASMPIPE_DLQ_TOPIC): 'dead letters' is not a Kafka topic name (it has the character ' ')"
            )
        );
    }

    #[test]
    fn zero_and_absurd_batching_is_refused_naming_the_flag() {
        assert_eq!(
            refused(|c| c.commit_interval = Duration::ZERO),
            "--commit-interval (WASMPIPE_COMMIT_INTERVAL) is 0: set how often to commit, e.g. 200ms (the default)"
        );
        assert_eq!(
            refused(|c| c.batch_records = 0),
            "--batch-records (WASMPIPE_BATCH_RECORDS) is 0: set at least 1 (default 256)"
        );
        assert_eq!(
            refused(|c| c.batch_records = MAX_BATCH_RECORDS + 1),
            "--batch-records (WASMPIPE_BATCH_RECORDS) 1000001 is more than 1000000: set at most that (default 256)"
        );
        assert!(
            refused(|c| c.batch_bytes = 0)
                .starts_with("--batch-bytes (WASMPIPE_BATCH_BYTES) is 0: set at least 1")
        );
        assert_eq!(
            refused(|c| c.batch_bytes = 3 << 30),
            "--batch-bytes (WASMPIPE_BATCH_BYTES) 3221225472 is more than 1073741824 (1 GiB), what one batch can hold: set at most that (default 262144, 256 KiB)"
        );
        assert_eq!(
            refused(|c| c.linger = Duration::from_secs(7200)),
            "--linger (WASMPIPE_LINGER) 2h is longer than 1h: set at most that (default 5ms)"
        );
        assert_eq!(
            refused(|c| c.grace = Duration::ZERO),
            "--shutdown-grace (WASMPIPE_SHUTDOWN_GRACE) is 0: allow time to finish, deliver and commit, e.g. 20s (the default)"
        );
        let mut c = config();
        (c.batch_records, c.batch_bytes, c.linger) =
            (MAX_BATCH_RECORDS, MAX_BATCH_BYTES, MAX_LINGER);
        c.validate().unwrap();
    }

    #[test]
    fn zero_and_absurd_plugin_limits_are_refused_naming_the_flag() {
        assert_eq!(
            refused(|c| c.limits.memory_bytes = 0),
            "--plugin-memory-mib (WASMPIPE_PLUGIN_MEMORY_MIB) is 0: a plugin needs at least one wasm page (64 KiB); set 1 or more (default 64)"
        );
        assert_eq!(
            refused(|c| c.limits.memory_bytes = 8 << 30),
            "--plugin-memory-mib (WASMPIPE_PLUGIN_MEMORY_MIB) 8192 is more than a wasm memory can address (4096 MiB): set at most 4096 (default 64)"
        );
        assert_eq!(
            refused(|c| c.limits.deadline = Duration::ZERO),
            "--plugin-deadline (WASMPIPE_PLUGIN_DEADLINE) is 0: allow a batch some CPU time, e.g. 1s (the default)"
        );
        assert_eq!(
            refused(|c| c.limits.output_bytes = 0),
            "--plugin-output-mib (WASMPIPE_PLUGIN_OUTPUT_MIB) is 0: no batch could have an output; set 1 or more (default 16)"
        );
        assert_eq!(
            refused(|c| c.limits.output_bytes = 2048 << 20),
            "--plugin-output-mib (WASMPIPE_PLUGIN_OUTPUT_MIB) 2048 is more than one batch's outputs can hold (2047 MiB): set at most 2047 (default 16)"
        );
    }

    fn parse(text: &str) -> anyhow::Result<PipelineFile> {
        PipelineFile::parse(Path::new("p.yaml"), text)
    }

    #[test]
    fn an_empty_plugin_list_is_refused_with_the_fix() {
        let want = "pipeline file p.yaml: the plugins list is empty: list at least one plugin (- file: NAME.wasm), or run with --passthrough to run none";
        for text in ["plugins: []\n", "plugins:\n"] {
            assert_eq!(format!("{:#}", parse(text).unwrap_err()), want, "{text}");
        }
        let toml = PipelineFile::parse(Path::new("p.toml"), "plugins = []\n").unwrap_err();
        assert_eq!(format!("{toml:#}"), want.replace("p.yaml", "p.toml"));
    }

    #[test]
    fn two_plugins_of_one_name_are_refused() {
        let err = parse("plugins:\n  - file: a.wasm\n  - file: b.wasm\n  - file: x/a.wasm.zst\n")
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "pipeline file p.yaml: plugins 1 and 3 are both named 'a': dead letters and metrics could not tell them apart; give one a different `name:`"
        );
        let err = parse("plugins:\n  - file: a.wasm\n  - file: b.py\n    name: a\n").unwrap_err();
        assert!(format!("{err:#}").contains("plugins 1 and 2 are both named 'a'"));
        // The same file twice is fine once named apart.
        parse("plugins:\n  - file: a.wasm\n  - file: a.wasm\n    name: a-again\n").unwrap();
    }

    #[test]
    fn default_names_are_the_runtimes() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["plain.wasm", "packed.wasm.zst", "other.bin"] {
            let path = dir.path().join(file);
            let bytes = if file.ends_with(".zst") {
                zstd::encode_all(&b"\0asm"[..], 1).unwrap()
            } else {
                b"\0asm".to_vec()
            };
            std::fs::write(&path, bytes).unwrap();
            let source = crate::runtime::read_plugin_file(&path).unwrap();
            assert_eq!(default_name(file), source.name, "{file}");
        }
        assert_eq!(default_name("sub/dir/tag.py"), "tag");
        assert_eq!(default_name("route.js"), "route");
        assert_eq!(default_name("r.wasm.gz"), "r");
    }
}
