//! End to end on the local broker (`tests/kafka/broker start`): three
//! `wasmpipe run` processes on a 3-partition topic, with the identity plugin
//! and with `--passthrough` (no wasm), in both delivery modes.
//!
//! - throughput: draining a backlog of `WASMPIPE_BENCH_RECORDS` (default
//!   1,000,000) records of 100 B with three headers, from the moment the
//!   three processes' group has formed (each owning a partition) to the
//!   last output (read back `read_committed`); the median of
//!   `WASMPIPE_BENCH_REPEAT` (default 3) drains;
//! - latency: at a steady 10,000 records/s for 10 s, once every process
//!   owns its partition (as its /metrics shows), from the input record's
//!   create time to its output being read back (p50, p99), leaving out the
//!   first second;
//! - CPU time of the three processes, and of the broker, per record
//!   drained (user + system, from /proc, from the group's forming to the
//!   last output), which the broker and the reader sharing the cores do not blur:
//!   the pipeline's own cost;
//! - peak RSS of each process (plugins loaded from a warm compile cache).
//!
//! `WASMPIPE_KAFKA_GROUP_DELAY_MS=3000 tests/kafka/broker start` (the
//! processes join one group together, as a Deployment's pods mostly do),
//! then `cargo bench -p wasmpipe --bench pipeline` prints a Markdown table.

#[path = "support/kafka.rs"]
mod kafka;

use kafka::{
    broker_pids, brokers, cpu_seconds, create, delete, free_port, peak_rss_mib, percentile, read,
    stop, wait_stable,
};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Produces `count` records of 100 B at `rate` per second (0: as fast as
/// possible).
fn produce(topic: &str, count: usize, rate: u64) {
    kafka::produce_with(
        topic,
        count,
        rate,
        |i| format!("key-{}", i % 1000),
        |_| vec![b'v'; 100],
    );
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

/// One drain of the backlog by three processes.
struct Drained {
    throughput: f64,
    cpu_us: f64,
    broker_us: f64,
    rss: f64,
}

fn drain(args: &[&str], backlog: &str, output: &str, records: usize) -> Drained {
    create(output);
    let brokers = broker_pids();
    let broker_cpu = move || brokers.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let procs: Vec<Child> = (0..3)
        .map(|p| spawn(&format!("t{p}"), backlog, output, args, free_port()))
        .collect();
    let pids: Vec<u32> = procs.iter().map(|p| p.id()).collect();
    let pipeline_cpu = move || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    // Measured once the group has formed: starting up (loading
    // plugins, joining one after the other, each join pausing the
    // group) is not the cost of a record.
    let arrived = Arc::new(AtomicUsize::new(0));
    let formed = {
        let (group, arrived, pipeline_cpu, broker_cpu) = (
            format!("bench-{output}"),
            arrived.clone(),
            pipeline_cpu.clone(),
            broker_cpu.clone(),
        );
        std::thread::spawn(move || {
            let at = wait_stable(&group, 3);
            let counted = arrived.load(Ordering::SeqCst);
            (at, counted, (pipeline_cpu(), broker_cpu()))
        })
    };
    let (_, last, _) = read(
        output,
        records,
        || {},
        |_| {
            arrived.fetch_add(1, Ordering::SeqCst);
            false
        },
    );
    let (stable, counted, before) = formed.join().unwrap();
    assert!(
        counted * 2 < records,
        "the group formed after {counted} of {records} records were drained: start the broker with WASMPIPE_KAFKA_GROUP_DELAY_MS=3000 (as tests/bench/run does) so the three processes join together, or load more records"
    );
    let records = records - counted;
    let throughput = records as f64 / (last - stable).as_secs_f64();
    let rss = procs
        .iter()
        .map(|p| peak_rss_mib(p.id()))
        .fold(0.0, f64::max);
    let cpu_us = (pipeline_cpu() - before.0) * 1e6 / records as f64;
    let broker_us = (broker_cpu() - before.1) * 1e6 / records as f64;
    stop(procs);

    delete(&[output]);
    Drained {
        throughput,
        cpu_us,
        broker_us,
        rss,
    }
}

fn main() {
    let records: usize = std::env::var("WASMPIPE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let repeat: usize = std::env::var("WASMPIPE_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
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

        // The machine's two cores are shared with the broker and the
        // reader: one drain swings by tens of percent, so each contender
        // drains the backlog `repeat` times and the median is reported.
        let mut runs: Vec<Drained> = (0..repeat)
            .map(|r| {
                drain(
                    &args,
                    &backlog,
                    &format!("bench-out-{stamp}-{i}-{r}"),
                    records,
                )
            })
            .collect();
        let rss = runs.iter().map(|d| d.rss).fold(0.0, f64::max);
        runs.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
        let throughput = runs[runs.len() / 2].throughput;
        runs.sort_by(|a, b| a.cpu_us.total_cmp(&b.cpu_us));
        let (cpu_us, broker_us) = (runs[runs.len() / 2].cpu_us, runs[runs.len() / 2].broker_us);

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
        let (_, _, arrivals) = read(&output, steady, || {}, |_| false);
        // The first second warms the connections up.
        let mut latencies: Vec<i64> = arrivals[steady / 10..]
            .iter()
            .map(|a| a.latency_ms)
            .collect();
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
