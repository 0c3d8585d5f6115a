//! The `wasmpipe` command line: parses arguments, sets up logging and calls
//! the library.

mod args;

use anyhow::Context as _;
use args::{Cli, Command, PluginCommand, TopicsCommand};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use wasmpipe::app::App;
use wasmpipe::config::RunConfig;
use wasmpipe::format::FormatConfig;
use wasmpipe::harness::{self, LocalFormats, TestOptions};
use wasmpipe::k8s;
use wasmpipe::runtime::{CompileBudget, Limits, Runtime, RuntimeOptions};
use wasmpipe::scaffold::{self, SdkSource};

/// jemalloc for the whole process, librdkafka's C allocations included
/// (its `malloc` and `free` replace glibc's). Each consumed record is
/// allocated by one of librdkafka's threads and freed by the pipeline's:
/// with glibc's arenas capped at two to bound memory, the pipeline spent up
/// to twice the CPU per record in malloc and free (docs/performance.md,
/// "The produce path, the commit and the allocator").
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (`MALLOC_CONF` in the environment adds to them and
/// wins): one arena, each thread allocating from its own cache in front of
/// it; the default, four arenas per CPU, kept ~10% more memory for no
/// speed measured.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

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

fn main() -> ExitCode {
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

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
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
            let transactional_id = args
                .transactional_id
                .unwrap_or_else(|| format!("{}-{host}", args.group));
            let config = RunConfig {
                kafka: args.kafka.config()?,
                state_dir: args.state_dir.unwrap_or_else(|| {
                    std::env::temp_dir()
                        .join("wasmpipe-state")
                        .join(&transactional_id)
                }),
                transactional_id,
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
                limits: args.limits.try_into()?,
                grace: args.shutdown_grace,
                formats: args.formats.formats(),
            }
            .validate()?;
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
                limits.try_into()?,
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
        Command::Topics(TopicsCommand::Create {
            input_topics,
            output_topic,
            dlq_topic,
            partitions,
            replication,
            topic_configs,
            grow,
            deployment,
            namespace,
            kafka,
        }) => {
            use wasmpipe::kafka::admin::{TopicSpec, ensure_topics};
            let partitions = partitions as usize;
            let spec = |name: &String, exact: bool| TopicSpec {
                name: name.clone(),
                partitions,
                replication,
                configs: topic_configs.clone(),
                exact,
            };
            let specs: Vec<TopicSpec> = input_topics
                .iter()
                .map(|t| spec(t, true))
                .chain(
                    output_topic
                        .iter()
                        .chain(&dlq_topic)
                        .map(|t| spec(t, false)),
                )
                .collect();
            let kafka = kafka.config()?;
            let ensured = k8s::block_on(async {
                Ok(ensure_topics(&kafka, &specs, grow, METADATA_TIMEOUT).await?)
            })?;
            for (spec, done) in specs.iter().zip(&ensured) {
                println!("topic '{}': {done}", spec.name);
            }
            if let Some(deployment) = deployment {
                let wanted = ensured[0].partitions();
                k8s::block_on(async {
                    let client = k8s::default_client().await?;
                    let ns = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
                    let before = k8s::scale::set_replicas(client, &ns, &deployment, wanted).await?;
                    println!("deployment {ns}/{deployment}: {before} -> {wanted} replicas");
                    Ok(())
                })?;
            }
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
            let report = harness::check(&runtime()?, &file, config, limits.try_into()?)?;
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
            value_format,
            key_format,
            output_value_format,
            output_key_format,
            schemas,
            limits,
        }) => {
            let opts = TestOptions {
                plugin: file,
                config,
                input,
                expect,
                limits: limits.try_into()?,
                batch_records: batch_records.max(1),
                batch_bytes,
                topic,
                formats: LocalFormats {
                    config: FormatConfig {
                        key: key_format,
                        value: value_format,
                        output_key: output_key_format,
                        output_value: output_value_format,
                        ..Default::default()
                    },
                    schemas,
                },
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
