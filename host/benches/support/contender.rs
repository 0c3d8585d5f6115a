//! The contenders of `contenders.rs` and how each is started: with the
//! same client settings, commit cadence and error handling.
//!
//! - wasmpipe: `wasmpipe run` as a user runs it, failures dead-lettered
//!   (`--on-error dlq`), committing every 100 ms;
//! - the rdkafka loop (`rdkafka_loop.rs`): wasmpipe's own client settings,
//!   taken from the library;
//! - Kafka Streams: the Java client's equivalents of those settings
//!   ([`streams_settings`]), `commit.interval.ms` 100 in both modes (its
//!   default is 30 s at-least-once), failures branched to the same DLQ,
//!   and a warm-up drain in the same JVM before the measured one.
//!
//! Every contender gets the same producer compression
//! (`WASMPIPE_BENCH_COMPRESSION`).
#![allow(dead_code)] // contenders.rs and stateful.rs each run their own

use super::kafka::{self, Profile, brokers};
use std::process::{Child, Command, Stdio};

pub const MASK: &str = "user.email";
pub const DROP: &str = "card.number";

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Transform {
    Identity,
    Redact,
    Passthrough,
    /// The running count per key (`plugins/count`, Kafka Streams' `count()`).
    Count,
    /// One-minute tumbling-window sums, final results only
    /// (`plugins/window-sum`, Kafka Streams' `windowedBy(...).aggregate`).
    WindowSum,
}

impl Transform {
    /// Its plugin in [`Setup::plugins`], and the Kafka Streams topology's name.
    pub fn name(self) -> &'static str {
        match self {
            Transform::Identity | Transform::Passthrough => "identity",
            Transform::Redact => "redact",
            Transform::Count => "count",
            Transform::WindowSum => "window-sum",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Wasmpipe,
    Streams,
    RdkafkaLoop,
}

#[derive(Clone, Debug)]
pub struct Contender {
    pub name: String,
    pub kind: Kind,
    pub transform: Transform,
    pub exactly_once: bool,
    /// Processes (Kafka Streams: stream threads in one JVM).
    pub procs: usize,
    /// Kafka Streams: the JVM's `-Xmx`, or its default (a quarter of RAM).
    pub heap: Option<String>,
}

pub struct Setup {
    pub plugins: std::collections::HashMap<&'static str, (String, String)>, // transform -> (dir, cache)
    pub streams_cp: Option<String>,
    pub stamp: u64,
    /// The producers' `compression.type`.
    pub compression: String,
    /// Kafka Streams' warm-up: a topic and how many of its records to
    /// drain before the measured run.
    pub warmup: Option<(String, usize)>,
}

/// Kafka Streams' settings matching wasmpipe's librdkafka ones
/// (`KafkaConfig::producer_config` and `consumer_config`): idempotent
/// `acks=all`, `linger.ms` 5, librdkafka's 1,000,000-byte batches, 4 MiB
/// fetches of at most 1 MiB per partition, and commits every 100 ms.
pub fn streams_settings(compression: &str) -> Vec<String> {
    [
        ("producer.compression.type", compression),
        ("producer.acks", "all"),
        ("producer.enable.idempotence", "true"),
        ("producer.linger.ms", "5"),
        ("producer.batch.size", "1000000"),
        ("consumer.fetch.max.bytes", "4194304"),
        ("consumer.max.partition.fetch.bytes", "1048576"),
        ("commit.interval.ms", "100"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect()
}

impl Contender {
    /// The name with its settings, as the table shows it.
    pub fn label(&self) -> String {
        match &self.heap {
            Some(h) => format!("{} -Xmx{h}", self.name),
            None => self.name.clone(),
        }
    }

    /// A name for its topics.
    pub fn slug(&self) -> String {
        format!("{} {} {}", self.label(), self.delivery(), self.procs)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    }

    /// The consumer group its processes (or stream threads) join.
    pub fn group(&self, output: &str, run: &str) -> String {
        match self.kind {
            Kind::Streams => format!("app-{output}-{run}"),
            _ => format!("g-{output}"),
        }
    }

    pub fn delivery(&self) -> &'static str {
        if self.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        }
    }

    pub fn spawn(&self, setup: &Setup, input: &str, output: &str, run: &str) -> Vec<Child> {
        let dlq = format!("{output}-dlq");
        let compression = format!("producer.compression.type={}", setup.compression);
        match self.kind {
            Kind::Wasmpipe => (0..self.procs)
                .map(|p| {
                    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
                    c.args(["run", "--brokers", &brokers()])
                        .args(["--group", &self.group(output, run)])
                        .args(["--input-topic", input, "--output-topic", output])
                        .args(["--on-error", "dlq", "--dlq-topic", &dlq])
                        .args(["--delivery", self.delivery()])
                        .args(["--commit-interval", "100ms"])
                        .args(["--kafka", &compression])
                        .args(["--transactional-id", &format!("{output}-{p}")])
                        .args(["--ops-addr", &format!("127.0.0.1:{}", kafka::free_port())]);
                    if Profile::wanted() {
                        c.arg("--perf-map");
                    }
                    match self.transform {
                        Transform::Passthrough => {
                            c.arg("--passthrough");
                        }
                        t => {
                            let (dir, cache) = &setup.plugins[t.name()];
                            c.args(["--plugin-dir", dir, "--cache-dir", cache]);
                        }
                    }
                    quiet(c)
                })
                .collect(),
            Kind::Streams => {
                let mut c = Command::new("java");
                if let Some(h) = &self.heap {
                    c.arg(format!("-Xmx{h}"));
                }
                c.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                    .args(["-cp", setup.streams_cp.as_deref().unwrap()])
                    .arg("wasmpipe.bench.Contender")
                    .args([&brokers(), input, output, &dlq])
                    .arg(self.transform.name())
                    .arg(if self.exactly_once {
                        "exactly_once_v2"
                    } else {
                        "at_least_once"
                    })
                    .args([
                        &self.procs.to_string(),
                        &self.group(output, run),
                        MASK,
                        DROP,
                    ])
                    .args(streams_settings(&setup.compression));
                if let Some((topic, count)) = &setup.warmup {
                    c.arg(format!("warmup={topic}:{count}"));
                }
                vec![quiet(c)]
            }
            Kind::RdkafkaLoop => (0..self.procs)
                .map(|p| {
                    let mut c = Command::new(std::env::current_exe().unwrap());
                    c.args(["rdkafka-loop", input, output, &self.group(output, run)])
                        .args([self.delivery(), &format!("{output}-{p}"), &compression]);
                    quiet(c)
                })
                .collect(),
        }
    }
}

fn quiet(mut c: Command) -> Child {
    c.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}
