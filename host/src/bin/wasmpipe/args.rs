//! The command line's arguments and environment, as clap parses them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmpipe::config::OnError;
use wasmpipe::format::registry::RegistryConfig;
use wasmpipe::format::{CacheLimits, Format, FormatConfig, Formats, OutputSchema, SubjectStrategy};
use wasmpipe::kafka::{Delivery, KafkaConfig};
use wasmpipe::runtime::Limits;
use wasmpipe::scaffold::Lang;

#[derive(Parser)]
#[command(
    name = "wasmpipe",
    version,
    about = "Run sandboxed WebAssembly transforms on Kafka streams"
)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "WASMPIPE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    /// Directory for compiled plugins, private to this process (an emptyDir
    /// on Kubernetes). Without it plugins are compiled in memory.
    #[arg(long, global = true, env = "WASMPIPE_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// How long compiling one plugin may take (a compiler process, killed
    /// past it): a hostile module cannot stall a load or a reload.
    #[arg(long, global = true, env = "WASMPIPE_COMPILE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) compile_timeout: Duration,
    /// Address space the compiler process of one plugin may use, in MiB.
    #[arg(
        long,
        global = true,
        env = "WASMPIPE_COMPILE_MEMORY_MIB",
        default_value_t = 8192
    )]
    pub(crate) compile_memory_mib: u64,
    /// Write /tmp/perf-PID.map so `perf report` names the plugins' wasm
    /// functions (for profiling; off by default).
    #[arg(long, global = true, env = "WASMPIPE_PERF_MAP")]
    pub(crate) perf_map: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// The compiler process a runtime starts for each plugin it compiles.
    #[command(name = "__compile-plugin", hide = true)]
    CompilePlugin {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the pipeline: consume, transform with the plugin chain, produce,
    /// commit. Every flag has an environment variable behind it.
    Run(Box<RunArgs>),
    /// Check, test and create plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Ship plugins in a ConfigMap: each is checked as `plugin check` does,
    /// the largest are zstd-compressed until the set fits 1 MiB, and the
    /// ConfigMap is server-side applied (field manager "wasmpipe").
    Deploy {
        /// The plugins; without --pipeline they are chained in this order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The ConfigMap the Deployment mounts (wasmpipe-plugins in k8s/).
        #[arg(long)]
        configmap: String,
        /// Its namespace; the kubeconfig's by default.
        #[arg(long, env = "WASMPIPE_NAMESPACE")]
        namespace: Option<String>,
        /// The pipeline file (order and config of the plugins); written
        /// from the order of FILES when not given.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Print the ConfigMap instead of applying it.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Set a Deployment's replicas to its input topic's partition count
    /// (one pod per partition) through the scale subresource.
    Scale {
        #[arg(long)]
        deployment: String,
        #[arg(long)]
        topic: String,
        #[arg(long, env = "WASMPIPE_NAMESPACE")]
        namespace: Option<String>,
        /// Fewer replicas than partitions (some pods then own several);
        /// more is refused.
        #[arg(long)]
        replicas: Option<usize>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Create the pipeline's topics and set the Deployment's replicas to
    /// the input's partitions.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Keep every Deployment annotated `wasmpipe.dev/topic: TOPIC` at one
    /// replica per partition of TOPIC; several copies elect a leader
    /// through a Lease.
    Operator {
        #[arg(long, env = "WASMPIPE_NAMESPACE")]
        namespace: Option<String>,
        /// This copy's name in the Lease (the pod name).
        #[arg(long, env = "HOSTNAME")]
        identity: String,
        #[arg(long, default_value = "wasmpipe-operator")]
        lease: String,
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        lease_duration: Duration,
        /// How often partitions and replicas are compared.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        resync: Duration,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

/// Where Kafka is and how to reach it.
#[derive(Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "WASMPIPE_BROKERS")]
    pub(crate) brokers: String,
    /// A librdkafka property (repeatable), e.g. security.protocol=SASL_SSL;
    /// prefix it with consumer. or producer. to set it on one client only.
    /// Also read from WASMPIPE_KAFKA_<NAME> variables: WASMPIPE_KAFKA_SASL_MECHANISM=PLAIN
    /// sets sasl.mechanism.
    /// Split in `config`, not by clap: clap's error would print the value.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    pub(crate) kafka: Vec<String>,
    /// Authenticate to Amazon MSK with IAM (its port 9098): SASL/OAUTHBEARER
    /// tokens signed with the AWS credentials of the pod's service account
    /// (IRSA or EKS Pod Identity) or of the environment. Sets
    /// security.protocol=SASL_SSL and sasl.mechanism=OAUTHBEARER.
    #[arg(long, env = "WASMPIPE_AWS_MSK_IAM")]
    pub(crate) aws_msk_iam: bool,
    /// The MSK cluster's region, for --aws-msk-iam [default: AWS_REGION].
    #[arg(long, env = "WASMPIPE_AWS_REGION", requires = "aws_msk_iam")]
    pub(crate) aws_region: Option<String>,
}

impl KafkaArgs {
    pub(crate) fn config(self) -> anyhow::Result<KafkaConfig> {
        let mut properties = kafka_env()?;
        for (i, arg) in self.kafka.iter().enumerate() {
            // Not shown: a mistyped property may be a password.
            let pair = parse_pair(arg).map_err(|_| {
                anyhow::anyhow!(
                    "--kafka argument {} is not KEY=VALUE (not shown, it may hold a secret): write each property as --kafka name=value",
                    i + 1
                )
            })?;
            properties.push(pair);
        }
        let token_source = if self.aws_msk_iam {
            let iam = wasmpipe::aws::MskIam::new(self.aws_region)?;
            tracing::info!(
                region = iam.region(),
                "authenticating to Kafka with MSK IAM"
            );
            Some(Arc::new(iam) as Arc<dyn wasmpipe::kafka::TokenSource>)
        } else {
            None
        };
        Ok(KafkaConfig {
            brokers: self.brokers,
            properties,
            token_source,
        })
    }
}

#[derive(Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create the input, output and dead-letter topics (idempotently: one
    /// that exists as asked is left alone), then, with --deployment, set
    /// the Deployment's replicas to the input's partitions. Reads the same
    /// WASMPIPE_* variables as `run`, so a Job can share its settings.
    Create {
        /// The input topic(s), one pod per partition: created with
        /// exactly --partitions (repeat, or separate with commas).
        #[arg(
            long = "input-topic",
            env = "WASMPIPE_INPUT_TOPIC",
            value_delimiter = ',',
            required = true
        )]
        input_topics: Vec<String>,
        /// The output topic (created with --partitions, or left as it is).
        #[arg(long, env = "WASMPIPE_OUTPUT_TOPIC")]
        output_topic: Option<String>,
        /// The dead-letter topic (likewise).
        #[arg(long, env = "WASMPIPE_DLQ_TOPIC")]
        dlq_topic: Option<String>,
        /// Partitions of each topic created: the Deployment's replicas.
        #[arg(long, env = "WASMPIPE_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..))]
        partitions: u32,
        /// Replication factor; the brokers' default if not given.
        #[arg(long, env = "WASMPIPE_REPLICATION")]
        replication: Option<i32>,
        /// A topic config set on the topics this creates (repeatable),
        /// e.g. retention.ms=604800000.
        #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_pair)]
        topic_configs: Vec<(String, String)>,
        /// Add partitions to an input topic that has fewer (keys then move
        /// to other partitions); refused without it.
        #[arg(long)]
        grow: bool,
        /// The Deployment whose replicas follow the input's partitions.
        #[arg(long, env = "WASMPIPE_DEPLOYMENT")]
        deployment: Option<String>,
        #[arg(long, env = "WASMPIPE_NAMESPACE")]
        namespace: Option<String>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// Check that a file is a wasmpipe plugin that would load: its world and
    /// version, imports and exports, size, sha256 and ConfigMap fit.
    Check {
        /// The plugin: .wasm, .wasm.gz or .wasm.zst.
        file: PathBuf,
        /// Config passed to the plugin's init (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_pair)]
        config: Vec<(String, String)>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a plugin over JSON-lines records, with the production runtime.
    Test {
        /// The plugin: .wasm, .wasm.gz or .wasm.zst.
        file: PathBuf,
        /// Config passed to the plugin's init (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_pair)]
        config: Vec<(String, String)>,
        /// Records to read, one JSON object a line (default: stdin).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Expected output lines; exit non-zero and show a diff when they differ.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Most records in one batch.
        #[arg(long, default_value_t = 256)]
        batch_records: usize,
        /// Most bytes of keys, values and headers in one batch.
        #[arg(long, default_value_t = 256 << 10)]
        batch_bytes: usize,
        /// Topic of input records whose line names none.
        #[arg(long, default_value = "input")]
        topic: String,
        /// The input records' value format, as `run` takes it; records
        /// are decoded and outputs encoded as in a pipeline. A value given
        /// as JSON text is first encoded with the first --schema; one given
        /// as value_b64 is read as wire-format bytes.
        #[arg(long, value_enum, default_value = "raw")]
        value_format: Format,
        /// The input records' key format.
        #[arg(long, value_enum, default_value = "raw")]
        key_format: Format,
        /// The outputs' value format (default: --value-format).
        #[arg(long, value_enum)]
        output_value_format: Option<Format>,
        /// The outputs' key format (default: --key-format).
        #[arg(long, value_enum)]
        output_key_format: Option<Format>,
        /// A schema as the registry would hold it, with its id: ID=FILE
        /// (.avsc, .proto, .json). Repeat it: outputs are encoded with the last.
        #[arg(long = "schema", value_name = "ID=FILE")]
        schemas: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Create a plugin project that builds and passes its own test.
    New {
        /// The plugin's name, e.g. mask-emails.
        name: String,
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to the language's SDK (sdk/rust, sdk/python, sdk/js, sdk/c of a
        /// wasmpipe checkout); found automatically above --dir, else the SDK this
        /// binary carries is written into the project (under wasmpipe/).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// Consumer group; every replica of the pipeline uses the same.
    #[arg(long, env = "WASMPIPE_GROUP")]
    pub(crate) group: String,
    /// Topic(s) to consume (repeat, or separate with commas).
    #[arg(
        long = "input-topic",
        env = "WASMPIPE_INPUT_TOPIC",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) input_topics: Vec<String>,
    /// Where outputs go unless a plugin routes them elsewhere.
    #[arg(long, env = "WASMPIPE_OUTPUT_TOPIC")]
    pub(crate) output_topic: String,
    /// Directory of plugins (*.wasm, *.wasm.gz, *.wasm.zst) and, optionally,
    /// pipeline.yaml / pipeline.toml naming the chain.
    #[arg(
        long,
        env = "WASMPIPE_PLUGIN_DIR",
        required_unless_present = "passthrough"
    )]
    pub(crate) plugin_dir: Option<PathBuf>,
    /// Run no plugin: records are produced as they were read. The native
    /// floor of the pipeline, for measuring.
    #[arg(long)]
    pub(crate) passthrough: bool,
    /// Do not watch the plugin directory: the set loaded at start runs
    /// until exit.
    #[arg(long, env = "WASMPIPE_NO_RELOAD")]
    pub(crate) no_reload: bool,
    /// How often the plugin directory is read whole, in case a change
    /// event was lost.
    #[arg(long, env = "WASMPIPE_RELOAD_RESCAN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) reload_rescan: Duration,
    /// Watch this ConfigMap through the Kubernetes API and mirror it into
    /// --plugin-dir (an empty, writable directory such as an emptyDir): a
    /// reload within a second of a change instead of one kubelet sync
    /// period. Needs get, list and watch on that ConfigMap.
    #[arg(long, env = "WASMPIPE_WATCH_CONFIGMAP", conflicts_with_all = ["no_reload", "passthrough"], requires = "plugin_dir")]
    pub(crate) watch_configmap: Option<String>,
    /// The ConfigMap's namespace; the pod's own by default. Read only with
    /// --watch-configmap (the manifests set it on every pod).
    #[arg(long, env = "WASMPIPE_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Where /metrics, /healthz, /readyz and /plugins are served
    /// (host:port; port 0 picks a free one), or "off".
    #[arg(long, env = "WASMPIPE_OPS_ADDR", default_value = "0.0.0.0:8080")]
    pub(crate) ops_addr: String,
    /// /healthz fails when the poll loop has not gone round for this long
    /// (waits on Kafka with their own timeouts excepted).
    #[arg(long, env = "WASMPIPE_LIVENESS_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) liveness_timeout: Duration,
    /// The pipeline file, if not in the plugin directory.
    #[arg(long, env = "WASMPIPE_PIPELINE")]
    pub(crate) pipeline: Option<PathBuf>,
    #[arg(
        long,
        env = "WASMPIPE_DELIVERY",
        value_enum,
        default_value = "at-least-once"
    )]
    pub(crate) delivery: Delivery,
    /// What to do with a record a plugin fails on.
    #[arg(long, env = "WASMPIPE_ON_ERROR", value_enum, default_value = "dlq")]
    pub(crate) on_error: OnError,
    /// The dead-letter topic (with --on-error dlq).
    #[arg(long, env = "WASMPIPE_DLQ_TOPIC")]
    pub(crate) dlq_topic: Option<String>,
    /// Most records in one batch.
    #[arg(long, env = "WASMPIPE_BATCH_RECORDS", default_value_t = 256)]
    pub(crate) batch_records: usize,
    /// Most bytes of keys, values and headers in one batch.
    #[arg(long, env = "WASMPIPE_BATCH_BYTES", default_value_t = 256 << 10)]
    pub(crate) batch_bytes: usize,
    /// How long a batch may wait to fill up.
    #[arg(long, env = "WASMPIPE_LINGER", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub(crate) linger: Duration,
    /// How often offsets (exactly-once: transactions) are committed.
    #[arg(long, env = "WASMPIPE_COMMIT_INTERVAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub(crate) commit_interval: Duration,
    /// Time allowed on SIGTERM to finish, deliver and commit.
    #[arg(long, env = "WASMPIPE_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_grace: Duration,
    /// The producer's transactional id (exactly-once); default
    /// GROUP-HOSTNAME, unique per pod.
    #[arg(long, env = "WASMPIPE_TRANSACTIONAL_ID")]
    pub(crate) transactional_id: Option<String>,
    /// Where plugins' keyed state is kept on disk, one directory per
    /// process (in Kubernetes, an emptyDir); default TMPDIR/wasmpipe-state/TRANSACTIONAL-ID.
    /// Only a cache: the state is in the changelog topics.
    #[arg(long, env = "WASMPIPE_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) formats: FormatArgs,
}

/// Record formats and the schema registry (a pipeline file's `format:`
/// section stands for the format flags).
#[derive(Args)]
pub(crate) struct FormatArgs {
    /// The input records' value format; plugins see raw bytes, or JSON for
    /// every other format.
    #[arg(long, env = "WASMPIPE_VALUE_FORMAT", value_enum, default_value = "raw")]
    pub(crate) value_format: Format,
    /// The input records' key format.
    #[arg(long, env = "WASMPIPE_KEY_FORMAT", value_enum, default_value = "raw")]
    pub(crate) key_format: Format,
    /// The outputs' value format (default: --value-format).
    #[arg(long, env = "WASMPIPE_OUTPUT_VALUE_FORMAT", value_enum)]
    pub(crate) output_value_format: Option<Format>,
    /// The outputs' key format (default: --key-format).
    #[arg(long, env = "WASMPIPE_OUTPUT_KEY_FORMAT", value_enum)]
    pub(crate) output_key_format: Option<Format>,
    /// How an output's subject is named: TOPIC-value, the record's full
    /// name, or TOPIC-RECORDNAME.
    #[arg(
        long,
        env = "WASMPIPE_SUBJECT_STRATEGY",
        value_enum,
        default_value = "topic"
    )]
    pub(crate) subject_strategy: SubjectStrategy,
    /// Which schema encodes an output: latest (the subject's latest
    /// version), input (the input's schema while the output fits it), or
    /// a version number of the subject.
    #[arg(long, env = "WASMPIPE_OUTPUT_SCHEMA", default_value = "latest")]
    pub(crate) output_schema: OutputSchema,
    /// The schema registry's Confluent-compatible API (Confluent Cloud or
    /// Platform, Apicurio's /apis/ccompat/v7, Karapace, Redpanda).
    #[arg(long, env = "WASMPIPE_REGISTRY_URL")]
    pub(crate) registry_url: Option<String>,
    /// KEY:SECRET for the registry's basic authentication.
    #[arg(long, env = "WASMPIPE_REGISTRY_USER_INFO", hide_env_values = true)]
    pub(crate) registry_user_info: Option<String>,
    /// A bearer token for the registry.
    #[arg(long, env = "WASMPIPE_REGISTRY_BEARER_TOKEN", hide_env_values = true)]
    pub(crate) registry_bearer_token: Option<String>,
    /// PEM certificates to trust for the registry instead of the public roots.
    #[arg(long, env = "WASMPIPE_REGISTRY_CA")]
    pub(crate) registry_ca: Option<PathBuf>,
    /// How long a failing registry request is retried (the pipeline waits)
    /// before its records are dead-lettered as registry_unavailable.
    #[arg(long, env = "WASMPIPE_REGISTRY_RETRY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) registry_retry: Duration,
    /// Most schemas kept in memory.
    #[arg(long, env = "WASMPIPE_REGISTRY_CACHE_SCHEMAS", default_value_t = 1000)]
    pub(crate) registry_cache_schemas: usize,
    /// How long a subject's latest version is used before it is looked up again.
    #[arg(long, env = "WASMPIPE_REGISTRY_LATEST_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) registry_latest_ttl: Duration,
}

impl FormatArgs {
    pub(crate) fn formats(self) -> Formats {
        Formats {
            config: FormatConfig {
                key: self.key_format,
                value: self.value_format,
                output_key: self.output_key_format,
                output_value: self.output_value_format,
                subject: self.subject_strategy,
                schema: self.output_schema,
            },
            registry: self.registry_url.map(|url| RegistryConfig {
                url,
                user_info: self.registry_user_info,
                bearer_token: self.registry_bearer_token,
                ca_file: self.registry_ca,
                retry: self.registry_retry,
            }),
            cache: CacheLimits {
                schemas: self.registry_cache_schemas,
                latest_ttl: self.registry_latest_ttl,
            },
        }
    }
}

/// librdkafka properties from `WASMPIPE_KAFKA_*` variables.
/// A variable whose name is no librdkafka property is refused by name,
/// with its value unshown (it may be a misspelt secret).
pub(crate) fn kafka_env() -> anyhow::Result<Vec<(String, String)>> {
    let mut props = Vec::new();
    for (var, value) in std::env::vars() {
        let Some(name) = var.strip_prefix("WASMPIPE_KAFKA_") else {
            continue;
        };
        let name = name.to_ascii_lowercase().replace('_', ".");
        if !wasmpipe::kafka::is_known_property(&name) {
            anyhow::bail!(
                "{var} sets the Kafka client property '{name}', which librdkafka does not have: every WASMPIPE_KAFKA_* variable is passed to the Kafka client; unset {var} or fix its name (the properties are listed in librdkafka's CONFIGURATION.md)"
            );
        }
        props.push((name, value));
    }
    props.sort();
    Ok(props)
}

/// Limits applied to each plugin.
#[derive(Args, Clone, Copy)]
pub(crate) struct LimitArgs {
    /// Linear memory cap per plugin instance, in MiB.
    #[arg(long, env = "WASMPIPE_PLUGIN_MEMORY_MIB", default_value_t = 64)]
    pub(crate) plugin_memory_mib: usize,
    /// CPU time one batch may take in a plugin, e.g. 500ms or 2s.
    #[arg(long, env = "WASMPIPE_PLUGIN_DEADLINE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) plugin_deadline: Duration,
    /// Most bytes a plugin may return for one batch, in MiB.
    #[arg(long, env = "WASMPIPE_PLUGIN_OUTPUT_MIB", default_value_t = 16)]
    pub(crate) plugin_output_mib: usize,
}

impl TryFrom<LimitArgs> for Limits {
    type Error = anyhow::Error;

    /// The limits, checked: every command that runs a plugin refuses an
    /// impossible one by its flag.
    fn try_from(a: LimitArgs) -> anyhow::Result<Limits> {
        let limits = Limits {
            // Saturating: a huge value is refused by name, not wrapped.
            memory_bytes: a.plugin_memory_mib.saturating_mul(1 << 20),
            deadline: a.plugin_deadline,
            output_bytes: a.plugin_output_mib.saturating_mul(1 << 20),
        };
        limits.check()?;
        Ok(limits)
    }
}

pub(crate) fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}
