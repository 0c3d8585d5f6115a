//! End to end on the local broker (`tests/kafka/broker start`): three
//! `wasmpipe run` processes on a 3-partition topic, with the identity plugin
//! and with `--passthrough` (no wasm), in both delivery modes.
//!
//! - throughput: draining a backlog of `WASMPIPE_BENCH_RECORDS` (default
//!   3,000,000) records of 100 B with three headers, from the moment the
//!   three processes' group has formed (each owning a partition) to the
//!   last output (read back `read_committed`); the median of
//!   `WASMPIPE_BENCH_REPEAT` (default 5) drains, wasm and pass-through
//!   taking turns, with the median ratio of each turn's pair;
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
//! `WASMPIPE_BENCH_ONLY` (a substring of "pipeline delivery", e.g.
//! "identity (wasm) at-least-once") runs only the contenders it matches;
//! `WASMPIPE_BENCH_PROCESSES` drains with fewer processes (1 or 2: some
//! own several partitions; latency is always measured with three);
//! `WASMPIPE_BENCH_ARGS` adds arguments to every `wasmpipe run` (e.g.
//! "--batch-records 128");
//! `WASMPIPE_BENCH_PERF` (a directory) profiles the three processes with
//! `perf record -g` during each drain, wasm functions named.
//!
//! `WASMPIPE_BENCH_FORMATS=1` (with `tests/registry/registry start`, its
//! URL in `WASMPIPE_REGISTRY_URL`) adds the record-format pair, at least
//! once: the identity plugin over a backlog of Avro records (a 9-field
//! record of about 110 B, framed with its registry id), read as raw bytes
//! and read as Avro (decoded to JSON for the plugin, encoded again with the
//! output subject's schema), in paired turns as above.
//!
//! `WASMPIPE_BROKER_GROUP_DELAY_MS=3000 tests/kafka/broker start` (the
//! processes join one group together, as a Deployment's pods mostly do),
//! then `cargo bench -p wasmpipe --bench pipeline` prints a Markdown table.

#[path = "support/avro.rs"]
mod avro;
#[path = "support/kafka.rs"]
mod kafka;

use kafka::{
    Profile, broker_pids, brokers, cpu_seconds, create, delete, free_port, peak_rss_mib,
    percentile, read, stop, wait_stable,
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
        .args(Profile::wanted().then_some("--perf-map"))
        .args(
            std::env::var("WASMPIPE_BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// How many `wasmpipe run` processes share the 3 partitions
/// (`WASMPIPE_BENCH_PROCESSES`, default 3: one each, as on Kubernetes).
fn processes() -> usize {
    std::env::var("WASMPIPE_BENCH_PROCESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// One drain of the backlog by the processes.
struct Drained {
    throughput: f64,
    cpu_us: f64,
    broker_us: f64,
    rss: f64,
}

fn drain(args: &[&str], backlog: &str, output: &str, records: usize, slug: &str) -> Drained {
    create(output);
    let brokers = broker_pids();
    let broker_cpu = move || brokers.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let procs: Vec<Child> = (0..processes())
        .map(|p| spawn(&format!("t{p}"), backlog, output, args, free_port()))
        .collect();
    let pids: Vec<u32> = procs.iter().map(|p| p.id()).collect();
    let pipeline_cpu = {
        let pids = pids.clone();
        move || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>()
    };
    // Measured once the group has formed: starting up (loading
    // plugins, joining one after the other, each join pausing the
    // group) is not the cost of a record.
    let arrived = Arc::new(AtomicUsize::new(0));
    let formed = {
        let (group, arrived, pipeline_cpu, broker_cpu, slug) = (
            format!("bench-{output}"),
            arrived.clone(),
            pipeline_cpu.clone(),
            broker_cpu.clone(),
            slug.to_owned(),
        );
        std::thread::spawn(move || {
            let at = wait_stable(&group, processes());
            let perf = Profile::start(&slug, &pids);
            let counted = arrived.load(Ordering::SeqCst);
            (at, counted, (pipeline_cpu(), broker_cpu()), perf)
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
    let (stable, counted, before, perf) = formed.join().unwrap();
    perf.finish();
    assert!(
        counted * 2 < records,
        "the group formed after {counted} of {records} records were drained: start the broker with WASMPIPE_BROKER_GROUP_DELAY_MS=3000 (as tests/bench/run does) so the three processes join together, or load more records"
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
        .unwrap_or(3_000_000);
    let repeat: usize = std::env::var("WASMPIPE_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
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
    let wasm = vec![
        "--plugin-dir",
        dir.as_str(),
        "--cache-dir",
        cache_dir.as_str(),
    ];
    let only = std::env::var("WASMPIPE_BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    let mut ratios: Vec<(&str, Vec<f64>)> = Vec::new();
    for delivery in ["at-least-once", "exactly-once"] {
        let pair: Vec<(&str, Vec<&str>)> = [
            ("passthrough", vec!["--passthrough"]),
            ("identity (wasm)", wasm.clone()),
        ]
        .into_iter()
        .filter(|(name, _)| format!("{name} {delivery}").contains(&only))
        .map(|(name, extra)| {
            let mut args = vec!["--delivery", delivery];
            args.extend(extra);
            (name, args)
        })
        .collect();
        // The machine's two cores are shared with the broker and the
        // reader: one drain swings by tens of percent. The contenders drain
        // the backlog in turns, `repeat` times each, the order alternating,
        // so that what drifts on the machine falls on both alike; medians
        // are reported, and the ratio of each turn's pair.
        let mut runs: Vec<Vec<Drained>> = pair.iter().map(|_| Vec::new()).collect();
        for r in 0..repeat {
            let mut order: Vec<usize> = (0..pair.len()).collect();
            if r % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (name, args) = &pair[i];
                let slug = format!("{}-{delivery}-{r}", name.split(' ').next().unwrap());
                let d = drain(
                    args,
                    &backlog,
                    &format!("bench-out-{stamp}-{slug}"),
                    records,
                    &slug,
                );
                eprintln!(
                    "{name} {delivery} #{r}: {:.0} records/s, {:.2} µs CPU/record, broker {:.2} µs, RSS {:.1} MiB",
                    d.throughput, d.cpu_us, d.broker_us, d.rss
                );
                runs[i].push(d);
            }
        }
        if runs.len() == 2 {
            let paired = runs[1]
                .iter()
                .zip(&runs[0])
                .map(|(w, p)| w.throughput / p.throughput)
                .collect();
            ratios.push((delivery, paired));
        }
        for ((name, args), runs) in pair.iter().zip(runs) {
            let (throughput, cpu_us, broker_us, rss) = medians(runs);
            let (p50, p99) = latency(args, &format!("{stamp}-{delivery}-{}", rows.len()));
            rows.push(format!(
                "| {name} | {delivery} | {throughput:.0} | {cpu_us:.2} µs | {broker_us:.2} µs | {:.0} | {p50} ms | {p99} ms | {rss:.1} MiB |",
                1e6 / cpu_us
            ));
        }
    }
    delete(&[&backlog]);
    if std::env::var("WASMPIPE_BENCH_FORMATS").is_ok_and(|v| v == "1") {
        formats(&wasm, records, repeat, stamp);
    }
    println!(
        "| pipeline | delivery | records/s ({} processes) | wasmpipe CPU per record | broker CPU per record | records/s per wasmpipe core | p50 latency | p99 latency | peak RSS per process |",
        processes()
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!();
    println!("| wasm / pass-through throughput | median of the turns | each turn |");
    println!("|---|---:|---|");
    for (delivery, mut paired) in ratios {
        let each: Vec<String> = paired
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        paired.sort_by(f64::total_cmp);
        println!(
            "| {delivery} | {:.0}% | {} |",
            paired[paired.len() / 2] * 100.0,
            each.join(" ")
        );
    }
}

/// Median throughput, CPU per record (with the broker's of the same drain)
/// and the highest peak RSS of `runs`.
fn medians(mut runs: Vec<Drained>) -> (f64, f64, f64, f64) {
    let rss = runs.iter().map(|d| d.rss).fold(0.0, f64::max);
    runs.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    let throughput = runs[runs.len() / 2].throughput;
    runs.sort_by(|a, b| a.cpu_us.total_cmp(&b.cpu_us));
    let mid = &runs[runs.len() / 2];
    (throughput, mid.cpu_us, mid.broker_us, rss)
}

/// p50 and p99 latency in ms at a steady 10,000 records/s.
fn latency(args: &[&str], slug: &str) -> (i64, i64) {
    let (input, output) = (
        format!("bench-lat-in-{slug}"),
        format!("bench-lat-out-{slug}"),
    );
    create(&input);
    create(&output);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let procs: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(p, &port)| spawn(&format!("l{p}"), &input, &output, args, port))
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
    delete(&[&input, &output]);
    latencies.sort_unstable();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

/// Registers `avro::USER` under `subject` in the registry; its id.
fn register(registry: &str, subject: &str) -> u32 {
    let body = serde_json::json!({ "schema": avro::USER });
    let mut answer = ureq::post(format!("{registry}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send_json(&body)
        .unwrap_or_else(|e| {
            panic!("registering {subject} at {registry}: {e} (tests/registry/registry start)")
        });
    let v: serde_json::Value = answer.body_mut().read_json().unwrap();
    v["id"].as_u64().unwrap() as u32
}

/// The format pair: identity over Avro records read as raw bytes, and
/// read (and written) as Avro.
fn formats(wasm: &[&str], records: usize, repeat: usize, stamp: u64) {
    use apache_avro::types::Value;
    let registry = std::env::var("WASMPIPE_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into());
    let backlog = format!("bench-avro-in-{stamp}");
    create(&backlog);
    let id = register(&registry, &format!("{backlog}-value"));
    let schema = apache_avro::Schema::parse_str(avro::USER).unwrap();
    let value = move |i: usize| {
        let user = Value::Record(vec![
            ("id".into(), Value::Long(i as i64)),
            ("name".into(), Value::String(format!("user-{i}"))),
            (
                "email".into(),
                Value::Union(1, Box::new(Value::String(format!("u{i}@example.com")))),
            ),
            ("country".into(), Value::String("DE".into())),
            ("amount".into(), Value::Double(i as f64 * 0.25)),
            ("active".into(), Value::Boolean(i.is_multiple_of(2))),
            (
                "tier".into(),
                Value::Enum((i % 2) as u32, ["FREE", "PRO"][i % 2].into()),
            ),
            (
                "tags".into(),
                Value::Map([("src".to_owned(), Value::String("web".into()))].into()),
            ),
            (
                "at".into(),
                Value::TimestampMillis(1_764_842_400_000 + i as i64),
            ),
        ]);
        let mut framed = vec![0];
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend(apache_avro::to_avro_datum(&schema, user).unwrap());
        framed
    };
    kafka::produce_with(&backlog, records, 0, |i| format!("key-{}", i % 1000), value);
    let avro: Vec<&str> = wasm
        .iter()
        .copied()
        .chain(["--value-format", "avro", "--registry-url", &registry])
        .collect();
    let pair = [
        ("identity, raw bytes", wasm.to_vec()),
        ("identity, Avro in and out", avro),
    ];
    let mut runs: Vec<Vec<Drained>> = vec![Vec::new(), Vec::new()];
    for r in 0..repeat {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (name, args) = &pair[i];
            let slug = format!("avro-{i}-{r}");
            let output = format!("bench-avro-out-{stamp}-{slug}");
            if i == 1 {
                register(&registry, &format!("{output}-value"));
            }
            let mut args = args.clone();
            args.extend(["--delivery", "at-least-once"]);
            let d = drain(&args, &backlog, &output, records, &slug);
            eprintln!(
                "{name} #{r}: {:.0} records/s, {:.2} µs CPU/record, RSS {:.1} MiB",
                d.throughput, d.cpu_us, d.rss
            );
            runs[i].push(d);
        }
    }
    delete(&[&backlog]);
    let mut paired: Vec<f64> = runs[1]
        .iter()
        .zip(&runs[0])
        .map(|(a, r)| a.throughput / r.throughput)
        .collect();
    println!(
        "| format pair, at-least-once | records/s ({} processes) | wasmpipe CPU per record | peak RSS per process |",
        processes()
    );
    println!("|---|---:|---:|---:|");
    for ((name, _), runs) in pair.iter().zip(runs) {
        let (throughput, cpu_us, _, rss) = medians(runs);
        println!("| {name} | {throughput:.0} | {cpu_us:.2} µs | {rss:.1} MiB |");
    }
    let each: Vec<String> = paired
        .iter()
        .map(|r| format!("{:.0}%", r * 100.0))
        .collect();
    paired.sort_by(f64::total_cmp);
    println!();
    println!(
        "Avro / raw throughput: median of the turns {:.0}% (each turn: {})",
        paired[paired.len() / 2] * 100.0,
        each.join(" ")
    );
    println!();
}
