//! The `wasmpipe` command line: parses arguments, sets up logging and calls
//! the library.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wasmpipe::harness::{self, TestOptions};
use wasmpipe::runtime::{Limits, Runtime, RuntimeOptions};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check, test and create plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
        /// Path to the Rust SDK (sdk/rust of a wasmpipe checkout); found
        /// automatically above --dir, else the published crate is used.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
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
            memory_bytes: a.plugin_memory_mib << 20,
            deadline: a.plugin_deadline,
            output_bytes: a.plugin_output_mib << 20,
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = || {
        Runtime::new(RuntimeOptions {
            cache_dir: cli.cache_dir.clone(),
            ..RuntimeOptions::default()
        })
    };
    match cli.command {
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
                ),
            };
            let root = scaffold::scaffold(&name, lang, &dir, &sdk)?;
            println!("created {}", root.display());
            println!(
                "  cd {} && cargo test && cargo build --target wasm32-wasip2 --release",
                root.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
