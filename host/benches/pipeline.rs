//! End to end on the local broker (`tests/kafka/broker start`): three
//! `wasmpipe run` processes on a 3-partition topic, with the identity plugin
//! and with `--passthrough` (no wasm), in both delivery modes.
//!
//! - throughput: draining a backlog of `WASMPIPE_BENCH_RECORDS` (default
//!   1,000,000) records of 100 B with three headers, from the first output
//!   to the last (read back `read_committed`);
//! - latency: at a steady 10,000 records/s for 10 s, once every process
//!   owns its partition (as its /metrics shows), from the input record's
//!   create time to its output being read back (p50, p99), leaving out the
//!   first second;
//! - CPU time of the three processes, and of the broker, per record
//!   drained (user + system, from /proc, from the first output to the
//!   last), which the broker and the reader sharing the cores do not blur:
//!   the pipeline's own cost;
//! - peak RSS of each process (plugins loaded from a warm compile cache).
//!
//! `cargo bench -p wasmpipe --bench pipeline` prints a Markdown table.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn brokers() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn client(extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers());
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn create(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(&[]).create().unwrap();
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
    for r in block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("is the broker up? tests/kafka/broker start")
    {
        r.unwrap();
    }
}

/// Produces `count` records at `rate` per second (0: as fast as possible).
fn produce(topic: &str, count: usize, rate: u64) {
    let producer: BaseProducer = client(&[("linger.ms", "5"), ("batch.num.messages", "10000")])
        .create()
        .unwrap();
    let value = [b'v'; 100];
    let start = Instant::now();
    for i in 0..count {
        if let Some(micros) = (i as u64 * 1_000_000).checked_div(rate) {
            let due = start + Duration::from_micros(micros);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let key = format!("key-{}", i % 1000);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "trace-id",
                value: Some("0af7651916cd43dd8448eb211c80319c"),
            })
            .insert(Header {
                key: "source",
                value: Some("bench"),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/octet-stream"),
            });
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .timestamp(now_ms());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// A free port on the loopback, for a process's ops endpoints.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/metrics` of the process serving on `port`.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Waits until each process owns exactly one partition (its lag gauge),
/// so the measurement does not include the group forming.
fn wait_assigned(ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ports.iter().all(|&p| {
        metrics(p)
            .lines()
            .filter(|l| l.starts_with("wasmpipe_consumer_lag{"))
            .count()
            == 1
    }) {
        assert!(Instant::now() < deadline, "the group did not settle");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(name: &str, input: &str, output: &str, args: &[&str], port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "run",
            "--brokers",
            &brokers(),
            "--group",
            &format!("bench-{output}"),
        ])
        .args([
            "--input-topic",
            input,
            "--output-topic",
            output,
            "--on-error",
            "skip",
        ])
        .args(["--transactional-id", &format!("{output}-{name}")])
        .args(args)
        .args(["--ops-addr", &format!("127.0.0.1:{port}")])
        .args(["--kafka", "consumer.statistics.interval.ms=500"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn peak_rss_mib(p: &Child) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.id())).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15, in clock ticks (100 a second).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The local broker's processes.
fn broker_pids() -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", "kafka.Kafka"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn stop(mut procs: Vec<Child>) {
    for p in &procs {
        let _ = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status();
    }
    for p in &mut procs {
        let _ = p.wait();
    }
}

/// Reads `count` records of `topic`; returns (first, last) arrival times and
/// each record's latency from its timestamp, in ms.
fn read(topic: &str, count: usize, mut on_first: impl FnMut()) -> (Instant, Instant, Vec<i64>) {
    let consumer: BaseConsumer = client(&[
        ("group.id", &format!("reader-{topic}")),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
    ])
    .create()
    .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut latencies = Vec::with_capacity(count);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < count {
        assert!(
            Instant::now() < deadline,
            "{topic}: only {} of {count} records arrived",
            latencies.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            first.get_or_insert_with(|| {
                on_first();
                Instant::now()
            });
            latencies.push(now_ms() - m.timestamp().to_millis().unwrap_or(0));
        }
    }
    (first.unwrap(), Instant::now(), latencies)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let records: usize = std::env::var("WASMPIPE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let backlog = format!("bench-in-{stamp}");
    create(&backlog);
    produce(&backlog, records, 0);

    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        wasmpipe_test_guests::FLAT_IDENTITY,
        plugins.path().join("identity.wasm"),
    )
    .unwrap();
    let dir = plugins.path().to_str().unwrap().to_owned();
    // As on Kubernetes after the first start: the compile cache (an emptyDir
    // there) already holds the plugin, so processes load it instead of
    // compiling it.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_owned();
    let warmed = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "--cache-dir",
            &cache_dir,
            "plugin",
            "check",
            &format!("{dir}/identity.wasm"),
        ])
        .output()
        .unwrap();
    assert!(warmed.status.success());
    let contenders: [(&str, &str, Vec<&str>); 4] = [
        ("passthrough", "at-least-once", vec!["--passthrough"]),
        (
            "identity (wasm)",
            "at-least-once",
            vec!["--plugin-dir", &dir, "--cache-dir", &cache_dir],
        ),
        ("passthrough", "exactly-once", vec!["--passthrough"]),
        (
            "identity (wasm)",
            "exactly-once",
            vec!["--plugin-dir", &dir, "--cache-dir", &cache_dir],
        ),
    ];

    println!(
        "| pipeline | delivery | records/s (3 processes) | wasmpipe CPU per record | broker CPU per record | records/s per wasmpipe core | p50 latency | p99 latency | peak RSS per process |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (name, delivery, extra)) in contenders.iter().enumerate() {
        let mut args = vec!["--delivery", delivery];
        args.extend(extra.iter().copied());

        let output = format!("bench-out-{stamp}-{i}");
        create(&output);
        let brokers = broker_pids();
        let broker_cpu = || brokers.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
        let procs: Vec<Child> = (0..3)
            .map(|p| spawn(&format!("t{p}"), &backlog, &output, &args, free_port()))
            .collect();
        let pipeline_cpu = || procs.iter().map(|p| cpu_seconds(p.id())).sum::<f64>();
        // CPU from the first output on: starting up (loading plugins,
        // joining the group) is not the cost of a record.
        let mut before = (0.0, 0.0);
        let (first, last, _) = read(&output, records, || before = (pipeline_cpu(), broker_cpu()));
        let throughput = records as f64 / (last - first).as_secs_f64();
        let rss = procs.iter().map(peak_rss_mib).fold(0.0, f64::max);
        let cpu_us = (pipeline_cpu() - before.0) * 1e6 / records as f64;
        let broker_us = (broker_cpu() - before.1) * 1e6 / records as f64;
        stop(procs);

        let (input, output) = (
            format!("bench-lat-in-{stamp}-{i}"),
            format!("bench-lat-out-{stamp}-{i}"),
        );
        create(&input);
        create(&output);
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let procs: Vec<Child> = ports
            .iter()
            .enumerate()
            .map(|(p, &port)| spawn(&format!("l{p}"), &input, &output, &args, port))
            .collect();
        wait_assigned(&ports);
        let steady = 100_000;
        let feeder = {
            let input = input.clone();
            std::thread::spawn(move || produce(&input, steady, 10_000))
        };
        let (_, _, latencies) = read(&output, steady, || {});
        // The first second warms the connections up.
        let mut latencies = latencies[steady / 10..].to_vec();
        feeder.join().unwrap();
        stop(procs);
        latencies.sort_unstable();
        println!(
            "| {name} | {delivery} | {throughput:.0} | {cpu_us:.2} µs | {broker_us:.2} µs | {:.0} | {} ms | {} ms | {rss:.1} MiB |",
            1e6 / cpu_us,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
}
