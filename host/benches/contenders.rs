//! wasmpipe against Kafka Streams and against the client's own limit, on
//! the local broker. Run by `tests/bench/run`, which starts the broker,
//! builds the Kafka Streams contender and plots what this writes.
//!
//! A 3-partition topic is loaded with `WASMPIPE_BENCH_RECORDS` (default
//! 1,000,000) JSON records, 100 B and 1 KiB values alternating, three
//! headers each. Every contender drains it from the beginning:
//!
//! - `wasmpipe run` with the identity and the redact plugin and with
//!   `--passthrough` (no wasm), at-least-once and exactly-once;
//! - the Kafka Streams application of `tests/bench/streams` (identity, and
//!   redact with Jackson), `at_least_once` and `exactly_once_v2`, warmed up
//!   by a drain of 200,000 other records in the same JVM first;
//! - a plain rdkafka consume→produce loop (`support/rdkafka_loop.rs`),
//!   at-least-once and with transactions.
//!
//! Each is given the same client settings, commit cadence (100 ms) and
//! error handling (`support/contender.rs`), and runs with 1, 2 and 3
//! processes (Kafka Streams: stream threads in one JVM); Kafka Streams
//! with the most processes also with each `-Xmx` of `WASMPIPE_BENCH_HEAPS`
//! (G1, the JVM's default collector). Every drain is repeated `WASMPIPE_BENCH_REPEAT` (default 5)
//! times, the contenders' order reversed every other round; the JSON
//! holds every run, and the median.
//!
//! Throughput is the records read back (`read_committed`) from the moment
//! the contender's group has formed (all its members, each with partitions)
//! to the last, over that time; CPU is the contender's processes' user +
//! system time over that span, per record; RSS the sum of their peaks
//! (VmHWM). Each output is checked: every input key exactly once, and for a
//! sample the value against `wasmpipe plugin test` (redact) or the input
//! (identity). Then, for each contender with three processes, at a steady
//! rate of half the slowest one's median throughput, end-to-end latency
//! (input create time to output read back) p50, p99 and p99.9, once the
//! contender's group has formed and every partition has answered a probe.
//!
//! Environment: `WASMPIPE_BENCH_STREAMS_CP` (the contender's classpath;
//! without it Kafka Streams is left out), `WASMPIPE_BENCH_OUT` (the JSON
//! results, default `bench-results.json`), `WASMPIPE_BENCH_ONLY`
//! (substrings of the names of the contenders to run, comma-separated), `WASMPIPE_BENCH_PROCS`
//! (default `1,2,3`), `WASMPIPE_BENCH_HEAPS` (default `256m,512m,1g`, and
//! the JVM's own default is always run), `WASMPIPE_BENCH_COMPRESSION`
//! (`lz4`, the default, or `none`), `WASMPIPE_BENCH_LATENCY` (`0` skips
//! the latency runs), `WASMPIPE_BENCH_PERF` (a directory: while each
//! contender drains, `perf record -a -g` profiles the whole machine into
//! `SLUG.perf.data` there, wasm functions named through `--perf-map`).

// The rdkafka loop (this binary's `rdkafka-loop` mode) runs with the
// allocator the `wasmpipe` binary runs with, so that the two differ in
// their loops alone.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "support/contender.rs"]
mod contender;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/rdkafka_loop.rs"]
mod rdkafka_loop;

use contender::{Contender, DROP, Kind, MASK, Setup, Transform};
use kafka::{
    Profile, client, cpu_seconds, create, now_ms, peak_rss_mib, percentile, read, stop, wait_stable,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys whose output values are compared.
const SAMPLE: usize = 200;

fn value(i: usize) -> Vec<u8> {
    let doc = format!(
        r#"{{"user":{{"name":"Ann Lee","email":"ann{i}@example.com"}},"card":{{"number":"4111111111111111"}},"seq":{i}"#
    );
    let target: usize = if i.is_multiple_of(2) { 100 } else { 1024 };
    let pad = target.saturating_sub(doc.len() + 12);
    format!(r#"{doc},"note":"{}"}}"#, "x".repeat(pad)).into_bytes()
}

fn key(i: usize) -> String {
    format!("seq-{i}")
}

/// What `wasmpipe plugin test` makes of the sample records: the reference
/// the redact contenders' outputs must equal.
fn expected_redact(setup: &Setup) -> HashMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sample.jsonl");
    let lines: Vec<String> = (0..SAMPLE)
        .map(|i| json!({"key": key(i), "value": String::from_utf8(value(i)).unwrap()}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (plugins, cache) = &setup.plugins["redact"];
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["--cache-dir", cache, "plugin", "test"])
        .arg(format!("{plugins}/redact.wasm"))
        .args([
            "--config",
            &format!("mask={MASK}"),
            "--config",
            &format!("drop={DROP}"),
        ])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect()
}

fn is_sample(key: &[u8]) -> bool {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix("seq-"))
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n < SAMPLE)
}

/// Drains the backlog; returns throughput, CPU µs per record, peak RSS.
fn drain(
    c: &Contender,
    setup: &Setup,
    backlog: &str,
    records: usize,
    expected: &HashMap<String, Vec<u8>>,
    round: usize,
) -> (f64, f64, f64) {
    // Topics and groups of their own per round: a group's commits from an
    // earlier round would start it at the end.
    let output = format!("bench-out-{}-{}-{round}", setup.stamp, c.slug());
    create(&output);
    create(&format!("{output}-dlq"));
    let procs = c.spawn(setup, backlog, &output, "drain");
    let pids: Vec<u32> = procs.iter().map(|p| p.id()).collect();
    let cpu = move || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    // The clock starts once the group has formed: what arrived before is
    // left out of the rate and its CPU time of the cost.
    let arrived = Arc::new(AtomicUsize::new(0));
    let start = {
        let (group, members, arrived, cpu) = (
            c.group(&output, "drain"),
            c.procs,
            arrived.clone(),
            cpu.clone(),
        );
        let slug = c.slug();
        std::thread::spawn(move || {
            let at = wait_stable(&group, members);
            let perf = Profile::start(&slug, &[]);
            (at, arrived.load(Ordering::SeqCst), cpu(), perf)
        })
    };
    let (_, last, got) = read(
        &output,
        records,
        || {},
        |k| {
            arrived.fetch_add(1, Ordering::SeqCst);
            is_sample(k)
        },
    );
    let (stable, before, cpu_before, perf) = start.join().unwrap();
    let spent = cpu() - cpu_before;
    perf.finish();
    let rss: f64 = procs.iter().map(|p| peak_rss_mib(p.id())).sum();
    stop(procs);
    kafka::delete(&[&output, &format!("{output}-dlq")]);
    let measured = records - before;
    assert!(
        measured * 2 > records,
        "{}: the group formed after half the backlog was drained ({before} of {records}): load more records",
        c.name
    );

    let keys: HashSet<&str> = got.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys.len(), records, "{}: every input key once", c.name);
    for a in got.iter().filter(|a| a.value.is_some()) {
        let i: usize = a.key["seq-".len()..].parse().unwrap();
        let want = match c.transform {
            Transform::Redact => expected[&a.key].clone(),
            _ => value(i),
        };
        assert_eq!(
            a.value.as_deref(),
            Some(&want[..]),
            "{}: the output of {} differs from the reference",
            c.name,
            a.key
        );
    }
    let throughput = measured as f64 / (last - stable).as_secs_f64();
    (throughput, spent * 1e6 / measured as f64, rss)
}

/// At `rate` records/s once the contender answers: latencies in ms.
fn latency(c: &Contender, setup: &Setup, rate: u64, seconds: u64) -> Vec<i64> {
    let slug = c.slug();
    let (input, output) = (
        format!("bench-lat-in-{}-{slug}", setup.stamp),
        format!("bench-lat-out-{}-{slug}", setup.stamp),
    );
    create(&input);
    create(&output);
    create(&format!("{output}-dlq"));
    let procs = c.spawn(setup, &input, &output, "latency");
    wait_stable(&c.group(&output, "latency"), c.procs);
    let consumer: BaseConsumer = client(&[
        ("group.id", &format!("reader-{output}")),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
        ("fetch.wait.max.ms", "5"),
    ])
    .create()
    .unwrap();
    consumer.subscribe(&[&output]).unwrap();
    // Probes into each input partition, until each has come back: the
    // contender owns and serves all three.
    let prober: BaseProducer = client(&[]).create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut answered = HashSet::new();
    let mut n = 0;
    while answered.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{}: no answer to probes from every partition",
            c.name
        );
        for p in (0..3).filter(|p| !answered.contains(p)) {
            let key = format!("probe-{p}-{n}");
            let _ = prober.send(
                BaseRecord::<str, [u8]>::to(&input)
                    .partition(p)
                    .key(&key)
                    .payload(b"{}"),
            );
        }
        prober.flush(Duration::from_secs(10)).unwrap();
        n += 1;
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20))
                && let Some(p) = m
                    .key()
                    .and_then(|k| k.strip_prefix(b"probe-"))
                    .and_then(|k| k.first())
            {
                answered.insert(i32::from(p - b'0'));
            }
        }
    }
    let count = (rate * seconds) as usize;
    let feeder = {
        let input = input.clone();
        std::thread::spawn(move || kafka::produce_with(&input, count, rate, key, value))
    };
    let mut latencies = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(seconds * 4 + 60);
    while latencies.len() < count {
        assert!(
            Instant::now() < deadline,
            "{}: {} of {count} records came back",
            c.name,
            latencies.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && m.key().is_some_and(|k| k.starts_with(b"seq-"))
        {
            latencies.push(now_ms() - m.timestamp().to_millis().unwrap_or(0));
        }
    }
    feeder.join().unwrap();
    stop(procs);
    kafka::delete(&[&input, &output, &format!("{output}-dlq")]);
    // The first second warms connections up.
    latencies.split_off(count / seconds as usize)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("rdkafka-loop") {
        return rdkafka_loop::run(&args[2..]);
    }
    let records: usize = std::env::var("WASMPIPE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("WASMPIPE_BENCH_ONLY").unwrap_or_default();
    let out = std::env::var("WASMPIPE_BENCH_OUT").unwrap_or_else(|_| "bench-results.json".into());
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Plugins, compiled once into a warm cache as a pod's emptyDir holds them.
    let work = tempfile::tempdir().unwrap();
    let mut plugins = HashMap::new();
    for (name, wasm) in [
        ("identity", wasmpipe_test_guests::FLAT_IDENTITY),
        ("redact", wasmpipe_test_guests::FLAT_REDACT),
    ] {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(wasm, dir.join(format!("{name}.wasm"))).unwrap();
        if name == "redact" {
            std::fs::write(
                dir.join("pipeline.toml"),
                format!("[[plugins]]\nfile = \"redact.wasm\"\nconfig = {{ mask = \"{MASK}\", drop = \"{DROP}\" }}\n"),
            )
            .unwrap();
        }
        let cache = work.path().join(format!("{name}-cache"));
        let mut check = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        check
            .arg("--cache-dir")
            .arg(&cache)
            .args(["plugin", "check"])
            .arg(dir.join(format!("{name}.wasm")));
        if name == "redact" {
            check.args(["--config", &format!("mask={MASK}")]);
        }
        let warmed = check.output().unwrap();
        assert!(
            warmed.status.success(),
            "{}",
            String::from_utf8_lossy(&warmed.stderr)
        );
        plugins.insert(
            name,
            (
                dir.to_str().unwrap().to_owned(),
                cache.to_str().unwrap().to_owned(),
            ),
        );
    }
    let streams_cp = std::env::var("WASMPIPE_BENCH_STREAMS_CP").ok();
    let setup = Setup {
        plugins,
        warmup: streams_cp
            .as_ref()
            .map(|_| (format!("bench-warmup-{stamp}"), 200_000)),
        streams_cp,
        stamp,
        compression: std::env::var("WASMPIPE_BENCH_COMPRESSION").unwrap_or_else(|_| "lz4".into()),
    };

    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let procs_list: Vec<usize> = list("WASMPIPE_BENCH_PROCS", "1,2,3")
        .iter()
        .map(|p| p.parse().expect("WASMPIPE_BENCH_PROCS: numbers"))
        .collect();
    let mut heaps: Vec<Option<String>> = list("WASMPIPE_BENCH_HEAPS", "256m,512m,1g")
        .into_iter()
        .map(Some)
        .collect();
    heaps.push(None);
    let repeat: usize = std::env::var("WASMPIPE_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut contenders = Vec::new();
    for eos in [false, true] {
        for procs in &procs_list {
            let mut add = |name: &str, kind: Kind, transform: Transform, heap: Option<String>| {
                contenders.push(Contender {
                    name: name.to_owned(),
                    kind,
                    transform,
                    exactly_once: eos,
                    procs: *procs,
                    heap,
                })
            };
            add("wasmpipe redact", Kind::Wasmpipe, Transform::Redact, None);
            add(
                "wasmpipe identity",
                Kind::Wasmpipe,
                Transform::Identity,
                None,
            );
            add(
                "wasmpipe passthrough",
                Kind::Wasmpipe,
                Transform::Passthrough,
                None,
            );
            add(
                "rdkafka loop",
                Kind::RdkafkaLoop,
                Transform::Passthrough,
                None,
            );
            // The heap sweep at the most processes; the JVM's default heap
            // otherwise.
            let most = procs_list.iter().max() == Some(procs);
            if setup.streams_cp.is_some() {
                for heap in heaps.iter().filter(|h| most || h.is_none()) {
                    add(
                        "Kafka Streams redact",
                        Kind::Streams,
                        Transform::Redact,
                        heap.clone(),
                    );
                    add(
                        "Kafka Streams identity",
                        Kind::Streams,
                        Transform::Identity,
                        heap.clone(),
                    );
                }
            }
        }
    }
    contenders.retain(|c| only.split(',').any(|o| c.label().contains(o.trim())));

    let backlog = format!("bench-in-{stamp}");
    create(&backlog);
    eprintln!("loading {records} records into {backlog}");
    kafka::produce_with(&backlog, records, 0, key, value);
    if let Some((warmup, count)) = &setup.warmup {
        create(warmup);
        // The warm-up drains to (and dead-letters into) this topic.
        create(&format!("{warmup}-out"));
        kafka::produce_with(warmup, *count, 0, key, value);
    }
    let expected = expected_redact(&setup);

    // Every contender `repeat` times, the order reversed every other round.
    let mut runs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); contenders.len()];
    for round in 0..repeat {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &contenders[i];
            eprintln!(
                "draining ({}/{repeat}): {} ({}, {} processes)",
                round + 1,
                c.label(),
                c.delivery(),
                c.procs
            );
            let (throughput, cpu_us, rss) = drain(c, &setup, &backlog, records, &expected, round);
            eprintln!("  {throughput:.0} records/s, {cpu_us:.1} CPU µs per record, {rss:.1} MiB");
            runs[i].push((throughput, cpu_us, rss));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let mut results: Vec<Value> = contenders
        .iter()
        .zip(&runs)
        .map(|(c, r)| {
            let col = |f: fn(&(f64, f64, f64)) -> f64| r.iter().map(f).collect::<Vec<f64>>();
            json!({
                "name": c.name,
                "label": c.label(),
                "heap": c.heap,
                "delivery": c.delivery(),
                "procs": c.procs,
                "records": records,
                "compression": setup.compression,
                "throughput": median(col(|r| r.0)),
                "cpu_us_per_record": median(col(|r| r.1)),
                "peak_rss_mib": median(col(|r| r.2)),
                "throughput_runs": col(|r| r.0),
                "cpu_us_runs": col(|r| r.1),
                "rss_mib_runs": col(|r| r.2),
            })
        })
        .collect();
    // Latency at half the slowest three-process contender's throughput.
    let slowest = results
        .iter()
        .filter(|r| r["procs"] == 3)
        .map(|r| r["throughput"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    let rate = (slowest / 2.0) as u64;
    let seconds = 20;
    let latency_wanted = std::env::var("WASMPIPE_BENCH_LATENCY").map_or(true, |v| v != "0");
    for (c, r) in contenders.iter().zip(results.iter_mut()) {
        if c.procs != 3 || !latency_wanted {
            continue;
        }
        eprintln!(
            "latency at {rate} records/s: {} ({})",
            c.label(),
            c.delivery()
        );
        let mut l = latency(c, &setup, rate, seconds);
        l.sort_unstable();
        let p = |q| percentile(&l, q);
        eprintln!(
            "  p50 {} ms, p99 {} ms, p99.9 {} ms",
            p(0.5),
            p(0.99),
            p(0.999)
        );
        r["rate"] = json!(rate);
        r["p50_ms"] = json!(p(0.5));
        r["p99_ms"] = json!(p(0.99));
        r["p999_ms"] = json!(p(0.999));
        // The distribution, as 1,000 quantiles, for the plot.
        r["quantiles_ms"] = json!((0..1000).map(|i| p(i as f64 / 1000.0)).collect::<Vec<_>>());
    }
    let machine = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().lines()
            .find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("").trim(),
        "memory_gib": std::fs::read_to_string("/proc/meminfo").unwrap_or_default().lines()
            .find(|l| l.starts_with("MemTotal")).and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok()).map_or(0.0, |k| k / 1048576.0),
    });
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"machine": machine, "results": results})).unwrap(),
    )
    .unwrap();
    eprintln!("wrote {out}");
}
