//! The `wasmpipe` command line: parses arguments, sets up logging and calls
//! the library.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use wasmpipe::app::App;
use wasmpipe::config::{OnError, RunConfig};
use wasmpipe::harness::{self, TestOptions};
use wasmpipe::k8s;
use wasmpipe::kafka::{Delivery, KafkaConfig};
use wasmpipe::runtime::{CompileBudget, Limits, Runtime, RuntimeOptions};
use wasmpipe::scaffold::{self, Lang, SdkSource};

#[derive(Parser)]
#[command(
    name = "wasmpipe",
    version,
    about = "Run sandboxed WebAssembly transforms on Kafka streams"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "WASMPIPE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Directory for compiled plugins, private to this process (an emptyDir
    /// on Kubernetes). Without it plugins are compiled in memory.
    #[arg(long, global = true, env = "WASMPIPE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// How long compiling one plugin may take (a compiler process, killed
    /// past it): a hostile module cannot stall a load or a reload.
    #[arg(long, global = true, env = "WASMPIPE_COMPILE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    compile_timeout: Duration,
    /// Address space the compiler process of one plugin may use, in MiB.
    #[arg(
        long,
        global = true,
        env = "WASMPIPE_COMPILE_MEMORY_MIB",
        default_value_t = 8192
    )]
    compile_memory_mib: u64,
    /// Write /tmp/perf-PID.map so `perf report` names the plugins' wasm
    /// functions (for profiling; off by default).
    #[arg(long, global = true, env = "WASMPIPE_PERF_MAP")]
    perf_map: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "WASMPIPE_BROKERS")]
    brokers: String,
    /// A librdkafka property (repeatable), e.g. security.protocol=SASL_SSL;
    /// prefix it with consumer. or producer. to set it on one client only.
    /// Also read from WASMPIPE_KAFKA_<NAME> variables: WASMPIPE_KAFKA_SASL_MECHANISM=PLAIN
    /// sets sasl.mechanism.
    /// Split in `config`, not by clap: clap's error would print the value.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// Authenticate to Amazon MSK with IAM (its port 9098): SASL/OAUTHBEARER
    /// tokens signed with the AWS credentials of the pod's service account
    /// (IRSA or EKS Pod Identity) or of the environment. Sets
    /// security.protocol=SASL_SSL and sasl.mechanism=OAUTHBEARER.
    #[arg(long, env = "WASMPIPE_AWS_MSK_IAM")]
    aws_msk_iam: bool,
    /// The MSK cluster's region, for --aws-msk-iam [default: AWS_REGION].
    #[arg(long, env = "WASMPIPE_AWS_REGION", requires = "aws_msk_iam")]
    aws_region: Option<String>,
}

impl KafkaArgs {
    fn config(self) -> anyhow::Result<KafkaConfig> {
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
enum PluginCommand {
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
        /// wasmpipe checkout); found automatically above --dir, else the published
        /// package is used.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group; every replica of the pipeline uses the same.
    #[arg(long, env = "WASMPIPE_GROUP")]
    group: String,
    /// Topic(s) to consume (repeat, or separate with commas).
    #[arg(
        long = "input-topic",
        env = "WASMPIPE_INPUT_TOPIC",
        value_delimiter = ',',
        required = true
    )]
    input_topics: Vec<String>,
    /// Where outputs go unless a plugin routes them elsewhere.
    #[arg(long, env = "WASMPIPE_OUTPUT_TOPIC")]
    output_topic: String,
    /// Directory of plugins (*.wasm, *.wasm.gz, *.wasm.zst) and, optionally,
    /// pipeline.yaml / pipeline.toml naming the chain.
    #[arg(
        long,
        env = "WASMPIPE_PLUGIN_DIR",
        required_unless_present = "passthrough"
    )]
    plugin_dir: Option<PathBuf>,
    /// Run no plugin: records are produced as they were read. The native
    /// floor of the pipeline, for measuring.
    #[arg(long)]
    passthrough: bool,
    /// Do not watch the plugin directory: the set loaded at start runs
    /// until exit.
    #[arg(long, env = "WASMPIPE_NO_RELOAD")]
    no_reload: bool,
    /// How often the plugin directory is read whole, in case a change
    /// event was lost.
    #[arg(long, env = "WASMPIPE_RELOAD_RESCAN", default_value = "30s", value_parser = humantime::parse_duration)]
    reload_rescan: Duration,
    /// Watch this ConfigMap through the Kubernetes API and mirror it into
    /// --plugin-dir (an empty, writable directory such as an emptyDir): a
    /// reload within a second of a change instead of one kubelet sync
    /// period. Needs get, list and watch on that ConfigMap.
    #[arg(long, env = "WASMPIPE_WATCH_CONFIGMAP", conflicts_with_all = ["no_reload", "passthrough"], requires = "plugin_dir")]
    watch_configmap: Option<String>,
    /// The ConfigMap's namespace; the pod's own by default. Read only with
    /// --watch-configmap (the manifests set it on every pod).
    #[arg(long, env = "WASMPIPE_NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics, /healthz, /readyz and /plugins are served
    /// (host:port; port 0 picks a free one), or "off".
    #[arg(long, env = "WASMPIPE_OPS_ADDR", default_value = "0.0.0.0:8080")]
    ops_addr: String,
    /// /healthz fails when the poll loop has not gone round for this long
    /// (waits on Kafka with their own timeouts excepted).
    #[arg(long, env = "WASMPIPE_LIVENESS_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    liveness_timeout: Duration,
    /// The pipeline file, if not in the plugin directory.
    #[arg(long, env = "WASMPIPE_PIPELINE")]
    pipeline: Option<PathBuf>,
    #[arg(
        long,
        env = "WASMPIPE_DELIVERY",
        value_enum,
        default_value = "at-least-once"
    )]
    delivery: Delivery,
    /// What to do with a record a plugin fails on.
    #[arg(long, env = "WASMPIPE_ON_ERROR", value_enum, default_value = "dlq")]
    on_error: OnError,
    /// The dead-letter topic (with --on-error dlq).
    #[arg(long, env = "WASMPIPE_DLQ_TOPIC")]
    dlq_topic: Option<String>,
    /// Most records in one batch.
    #[arg(long, env = "WASMPIPE_BATCH_RECORDS", default_value_t = 256)]
    batch_records: usize,
    /// Most bytes of keys, values and headers in one batch.
    #[arg(long, env = "WASMPIPE_BATCH_BYTES", default_value_t = 256 << 10)]
    batch_bytes: usize,
    /// How long a batch may wait to fill up.
    #[arg(long, env = "WASMPIPE_LINGER", default_value = "5ms", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// How often offsets (exactly-once: transactions) are committed.
    #[arg(long, env = "WASMPIPE_COMMIT_INTERVAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    commit_interval: Duration,
    /// Time allowed on SIGTERM to finish, deliver and commit.
    #[arg(long, env = "WASMPIPE_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// The producer's transactional id (exactly-once); default
    /// GROUP-HOSTNAME, unique per pod.
    #[arg(long, env = "WASMPIPE_TRANSACTIONAL_ID")]
    transactional_id: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Bounds shutdown: once `shutdown` is set, the process has `grace` (plus
/// a little for leaving the group) to finish; then it exits non-zero, and
/// whatever it had not committed is processed again by the next owner.
fn watchdog(shutdown: Arc<AtomicBool>, grace: Duration) {
    std::thread::spawn(move || {
        while !shutdown.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(grace + Duration::from_secs(5));
        eprintln!(
            "wasmpipe: shutdown took longer than --shutdown-grace ({grace:?}); exiting now, uncommitted work will be read again"
        );
        std::process::exit(2);
    });
}

/// How long a metadata request to Kafka may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// `wasmpipe deploy`: checks every plugin with the config the pipeline
/// file gives it, fits the set into one ConfigMap, prints or applies it.
fn deploy(
    runtime: &Arc<Runtime>,
    files: &[PathBuf],
    configmap: String,
    namespace: Option<String>,
    pipeline: Option<PathBuf>,
    dry_run: bool,
    limits: Limits,
) -> anyhow::Result<()> {
    use wasmpipe::k8s::deploy::{apply, configmap as build, plan};
    let files = plan(files, pipeline.as_deref(), |path, config| {
        let report = harness::check(runtime, path, config, limits)?;
        if !report.loads() {
            report.render(&mut std::io::stderr().lock())?;
            anyhow::bail!(
                "{} fails its check (above); nothing was deployed",
                path.display()
            );
        }
        Ok(())
    })?;
    if dry_run {
        let cm = build(
            &configmap,
            namespace.as_deref().unwrap_or("default"),
            &files,
        );
        print!("{}", serde_yaml::to_string(&cm)?);
        return Ok(());
    }
    k8s::block_on(async {
        let client = k8s::default_client().await?;
        let ns = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
        let applied = apply(client, &build(&configmap, &ns, &files)).await?;
        let version = applied.metadata.resource_version.unwrap_or_default();
        println!("configmap {ns}/{configmap} applied (resourceVersion {version}):");
        for f in &files {
            println!("  {} {} bytes", f.name, f.bytes.len());
        }
        Ok(())
    })
}

/// librdkafka properties from `WASMPIPE_KAFKA_*` variables.
/// A variable whose name is no librdkafka property is refused by name,
/// with its value unshown (it may be a misspelt secret).
fn kafka_env() -> anyhow::Result<Vec<(String, String)>> {
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
struct LimitArgs {
    /// Linear memory cap per plugin instance, in MiB.
    #[arg(long, env = "WASMPIPE_PLUGIN_MEMORY_MIB", default_value_t = 64)]
    plugin_memory_mib: usize,
    /// CPU time one batch may take in a plugin, e.g. 500ms or 2s.
    #[arg(long, env = "WASMPIPE_PLUGIN_DEADLINE", default_value = "1s", value_parser = humantime::parse_duration)]
    plugin_deadline: Duration,
    /// Most bytes a plugin may return for one batch, in MiB.
    #[arg(long, env = "WASMPIPE_PLUGIN_OUTPUT_MIB", default_value_t = 16)]
    plugin_output_mib: usize,
}

impl From<LimitArgs> for Limits {
    fn from(a: LimitArgs) -> Limits {
        Limits {
            // Saturating: a huge value is refused by name, not wrapped.
            memory_bytes: a.plugin_memory_mib.saturating_mul(1 << 20),
            deadline: a.plugin_deadline,
            output_bytes: a.plugin_output_mib.saturating_mul(1 << 20),
        }
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmpipe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives threads that allocate at the same time arenas of their own,
/// up to eight per core, and keeps what they free for reuse: librdkafka's
/// broker threads, the poll loop, the reloader and the ops server then
/// hold 15–25 MiB more at peak than two arenas do, with no throughput
/// measured in return (README, "End to end on a local broker"). An
/// explicit `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: runs first in `main`, before any other thread exists;
        // mallopt only changes a tuning parameter of the allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: logs piped to a file or a collector
    // (kubectl logs, CloudWatch, Loki) carry no escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let compile_budget = std::env::current_exe().ok().map(|exe| CompileBudget {
        exe,
        time: cli.compile_timeout,
        memory_bytes: cli.compile_memory_mib.saturating_mul(1 << 20),
    });
    let runtime = || {
        Runtime::new(RuntimeOptions {
            cache_dir: cli.cache_dir.clone(),
            perf_map: cli.perf_map,
            compile_budget: compile_budget.clone(),
            ..RuntimeOptions::default()
        })
    };
    match cli.command {
        Command::CompilePlugin { args } => {
            wasmpipe::runtime::compile_child(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let args = *args;
            let host =
                std::env::var("HOSTNAME").unwrap_or_else(|_| format!("pid{}", std::process::id()));
            let config = RunConfig {
                kafka: args.kafka.config()?,
                transactional_id: args
                    .transactional_id
                    .unwrap_or_else(|| format!("{}-{host}", args.group)),
                group: args.group,
                input_topics: args.input_topics,
                output_topic: args.output_topic,
                plugin_dir: args.plugin_dir.unwrap_or_else(|| PathBuf::from(".")),
                pipeline_file: args.pipeline,
                delivery: args.delivery,
                on_error: args.on_error,
                dlq_topic: args.dlq_topic,
                batch_records: args.batch_records,
                batch_bytes: args.batch_bytes,
                linger: args.linger,
                commit_interval: args.commit_interval,
                limits: args.limits.into(),
                grace: args.shutdown_grace,
            };
            // Refused before anything starts (app::run checks again, for
            // callers of the library).
            config.validate()?;
            let ops_addr = match args.ops_addr.as_str() {
                "off" => None,
                addr => Some(addr.parse().with_context(|| {
                    format!("--ops-addr '{addr}': expected host:port such as 0.0.0.0:8080, or off")
                })?),
            };
            // Registered first: a SIGTERM while plugins load still ends in a
            // clean stop.
            let shutdown = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                // A second signal while draining exits at once.
                signal_hook::flag::register_conditional_shutdown(signal, 1, shutdown.clone())?;
                signal_hook::flag::register(signal, shutdown.clone())?;
            }
            watchdog(shutdown.clone(), config.grace);
            let app = App {
                config,
                passthrough: args.passthrough,
                no_reload: args.no_reload,
                reload_rescan: args.reload_rescan,
                watch_configmap: args.watch_configmap,
                namespace: args.namespace,
                ops_addr,
                liveness_timeout: args.liveness_timeout,
            };
            wasmpipe::app::run(app, runtime()?, shutdown)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            files,
            configmap,
            namespace,
            pipeline,
            dry_run,
            limits,
        } => {
            deploy(
                &runtime()?,
                &files,
                configmap,
                namespace,
                pipeline,
                dry_run,
                limits.into(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scale {
            deployment,
            topic,
            namespace,
            replicas,
            kafka,
        } => {
            let partitions =
                wasmpipe::kafka::partition_count(&kafka.config()?, &topic, METADATA_TIMEOUT)?;
            let wanted = wasmpipe::k8s::scale::replicas_for(&topic, partitions, replicas)?;
            k8s::block_on(async {
                let client = k8s::default_client().await?;
                let ns = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
                let before = k8s::scale::set_replicas(client, &ns, &deployment, wanted).await?;
                println!(
                    "deployment {ns}/{deployment}: {before} -> {wanted} replicas (topic '{topic}' has {partitions} partitions)"
                );
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator {
            namespace,
            identity,
            lease,
            lease_duration,
            resync,
            kafka,
        } => {
            let kafka = kafka.config()?;
            let partitions: k8s::operator::Partitions = Arc::new(move |topic: &str| {
                wasmpipe::kafka::partition_count(&kafka, topic, METADATA_TIMEOUT)
            });
            k8s::block_on(async move {
                let client = k8s::default_client().await?;
                let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
                let options = k8s::operator::Options {
                    namespace,
                    identity,
                    lease,
                    lease_duration,
                    resync,
                };
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let stop = async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                };
                k8s::operator::run(client, options, partitions, stop).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Check {
            file,
            config,
            json,
            limits,
        }) => {
            let report = harness::check(&runtime()?, &file, config, limits.into())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.render(&mut std::io::stdout().lock())?;
            }
            Ok(if report.loads() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Plugin(PluginCommand::Test {
            file,
            config,
            input,
            expect,
            batch_records,
            batch_bytes,
            topic,
            limits,
        }) => {
            let opts = TestOptions {
                plugin: file,
                config,
                input,
                expect,
                limits: limits.into(),
                batch_records: batch_records.max(1),
                batch_bytes,
                topic,
            };
            let summary = harness::test(
                &runtime()?,
                &opts,
                &mut std::io::stdin().lock(),
                &mut std::io::BufWriter::new(std::io::stdout().lock()),
                &mut std::io::stderr().lock(),
            )?;
            Ok(if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        }) => {
            let sdk = match sdk {
                Some(p) => SdkSource::Path(
                    std::fs::canonicalize(&p).with_context(|| format!("--sdk {}", p.display()))?,
                ),
                None => SdkSource::discover(
                    &std::fs::canonicalize(&dir)
                        .with_context(|| format!("--dir {}", dir.display()))?,
                    lang,
                ),
            };
            let (root, next) = scaffold::scaffold(&name, lang, &dir, &sdk)?;
            println!("created {}; then, in it:", root.display());
            for line in next.lines() {
                println!("  {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
