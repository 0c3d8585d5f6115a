//! Stateful wasmpipe against the same Kafka Streams topologies, on the
//! local broker; run by `tests/bench/run` after the stateless contenders,
//! in the same run, on the same broker and machine.
//!
//! A 3-partition topic is loaded with `WASMPIPE_BENCH_STATE_RECORDS`
//! (default 1,000,000) records: key `k-{j}` for `j = i % KEYS`
//! (`WASMPIPE_BENCH_KEYS`, default 10,000) on partition `j % 3`, value
//! `{"amount":…,"note":…}` of about 100 B, event time one millisecond
//! apart from two hours ago (a million records span about 17 one-minute
//! windows). Each
//! contender drains it from the beginning, exactly-once, in one process
//! (Kafka Streams: one stream thread), with the same client settings and
//! 100 ms commits (`support/contender.rs`):
//!
//! - count per key: `plugins/count` against `groupByKey().count()`, every
//!   update emitted (record caching off in Kafka Streams, as wasmpipe has
//!   none);
//! - one-minute tumbling-window sums of `amount`, final results only:
//!   `plugins/window-sum` against `windowedBy(...).aggregate(...)
//!   .suppress(untilWindowCloses(...))`.
//!
//! Kafka Streams is warmed up by a drain of 200,000 other records in the
//! same JVM first. Each drain is repeated `WASMPIPE_BENCH_REPEAT` (default
//! 3) times, the order reversed every other round; the JSON holds every
//! run and the median. Throughput, CPU per record and peak RSS are
//! measured as in `contenders.rs`, per input record. Every output is
//! checked: each key's counts are 1, 2, … in order, none missing or
//! repeated; the windows are exactly those the input closes (by each
//! partition's stream time), with their sums and counts, once each.
//!
//! Then a restore: `wasmpipe run` with `plugins/count` drains
//! `WASMPIPE_BENCH_RESTORE_KEYS` (default 1,000,000) records of distinct
//! keys, exactly-once, and is SIGKILLed; a new process on an empty state
//! directory (a new pod) restores the three partitions' state from the
//! changelog before its first record. Reported: the restore time (the sum
//! over partitions of `wasmpipe_state_restore_duration_seconds`), the
//! records restored, the time from the process's start to its restores'
//! end (which includes waiting for Kafka to expire the killed member's
//! session, `session.timeout.ms`, 45 s by default, before it reassigns
//! the partitions), and its peak RSS.
//!
//! Environment: `WASMPIPE_BENCH_STREAMS_CP` (without it Kafka Streams is
//! left out), `WASMPIPE_BENCH_OUT` (default `bench-state-results.json`),
//! `WASMPIPE_BENCH_ONLY` (substrings of contender names),
//! `WASMPIPE_BENCH_COMPRESSION` (default `lz4`).

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "support/contender.rs"]
mod contender;
#[path = "support/kafka.rs"]
mod kafka;

use contender::{Contender, Kind, Setup, Transform};
use kafka::{Spec, cpu_seconds, create, peak_rss_mib, read, stop, wait_stable};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WINDOW_MS: i64 = 60_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The backlog's shape: record `i` of it.
#[derive(Clone, Copy)]
struct Load {
    records: usize,
    keys: usize,
    /// The first record's event time: 7 s into a window two hours ago
    /// (a topic's time retention would delete older records while the
    /// bench runs), so that no partition's stream time ends on a window's
    /// end.
    base: i64,
}

impl Load {
    fn key(&self, i: usize) -> usize {
        i % self.keys
    }

    fn spec(&self, i: usize) -> Spec {
        let j = self.key(i);
        let doc = format!(r#"{{"amount":{},"note":"#, i % 100);
        let pad = 100usize.saturating_sub(doc.len() + 3);
        Spec {
            key: format!("k-{j}"),
            value: format!(r#"{doc}"{}"}}"#, "x".repeat(pad)).into_bytes(),
            partition: Some((j % 3) as i32),
            timestamp: self.base + i as i64,
        }
    }

    /// Each key's count: the count contender's outputs per key are
    /// 1..=that, in order.
    fn counts(&self) -> HashMap<String, u64> {
        let mut per_key = HashMap::new();
        for i in 0..self.records {
            *per_key.entry(format!("k-{}", self.key(i))).or_insert(0) += 1;
        }
        per_key
    }

    /// The windows the input closes: (key, start) → (end, sum, count), a
    /// window closing once its partition's stream time reaches its end.
    fn windows(&self) -> BTreeMap<(String, i64), (i64, f64, u64)> {
        let mut stream_time = [i64::MIN; 3];
        let mut open: BTreeMap<(String, i64), (i64, f64, u64, usize)> = BTreeMap::new();
        for i in 0..self.records {
            let j = self.key(i);
            let ts = self.base + i as i64;
            stream_time[j % 3] = stream_time[j % 3].max(ts);
            let start = ts - ts.rem_euclid(WINDOW_MS);
            let w =
                open.entry((format!("k-{j}"), start))
                    .or_insert((start + WINDOW_MS, 0.0, 0, j % 3));
            w.1 += (i % 100) as f64;
            w.2 += 1;
        }
        open.into_iter()
            .filter(|(_, (end, _, _, p))| *end <= stream_time[*p])
            .map(|(k, (end, sum, count, _))| (k, (end, sum, count)))
            .collect()
    }
}

/// Checks a drain's outputs against what the input makes.
fn check(c: &Contender, load: &Load, got: &[kafka::Arrival]) {
    match c.transform {
        Transform::Count => {
            let mut seen: HashMap<&str, u64> = HashMap::new();
            for a in got {
                let n: u64 = std::str::from_utf8(a.value.as_deref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                let last = seen.entry(&a.key).or_insert(0);
                assert_eq!(
                    n,
                    *last + 1,
                    "{}: key {} counted {n} after {last}",
                    c.name,
                    a.key
                );
                *last = n;
            }
            let want = load.counts();
            assert_eq!(seen.len(), want.len(), "{}: every key counted", c.name);
            for (key, n) in &want {
                assert_eq!(seen.get(key.as_str()), Some(n), "{}: key {key}", c.name);
            }
        }
        Transform::WindowSum => {
            let mut windows = BTreeMap::new();
            for a in got {
                let v: Value = serde_json::from_slice(a.value.as_deref().unwrap()).unwrap();
                let start = v["start"].as_i64().unwrap();
                let window = (
                    v["end"].as_i64().unwrap(),
                    v["sum"].as_f64().unwrap(),
                    v["count"].as_u64().unwrap(),
                );
                let again = windows.insert((a.key.clone(), start), window);
                assert!(
                    again.is_none(),
                    "{}: window {} {start} twice",
                    c.name,
                    a.key
                );
            }
            assert!(
                windows == load.windows(),
                "{}: the windows differ from those the input closes",
                c.name
            );
        }
        t => panic!("not a stateful transform: {t:?}"),
    }
}

/// Drains the backlog; returns throughput, CPU µs per input record, peak RSS.
fn drain(
    c: &Contender,
    setup: &Setup,
    backlog: &str,
    load: &Load,
    outputs: usize,
    round: usize,
) -> (f64, f64, f64) {
    let output = format!("bench-state-out-{}-{}-{round}", setup.stamp, c.slug());
    create(&output);
    create(&format!("{output}-dlq"));
    let procs = c.spawn(setup, backlog, &output, "drain");
    let pids: Vec<u32> = procs.iter().map(|p| p.id()).collect();
    let cpu = move || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let arrived = Arc::new(AtomicUsize::new(0));
    let start = {
        let (group, members, arrived, cpu) = (
            c.group(&output, "drain"),
            c.procs,
            arrived.clone(),
            cpu.clone(),
        );
        std::thread::spawn(move || {
            let at = wait_stable(&group, members);
            (at, arrived.load(Ordering::SeqCst), cpu())
        })
    };
    let (_, last, got) = read(
        &output,
        outputs,
        || {},
        |_| {
            arrived.fetch_add(1, Ordering::SeqCst);
            true
        },
    );
    let (stable, before, cpu_before) = start.join().unwrap();
    let spent = cpu() - cpu_before;
    let rss: f64 = procs.iter().map(|p| peak_rss_mib(p.id())).sum();
    stop(procs);
    kafka::delete(&[&output, &format!("{output}-dlq")]);
    assert!(
        before * 2 < outputs,
        "{}: the group formed after half the outputs were out: load more records",
        c.name
    );
    check(c, load, &got);
    // The share of the input measured: that of the outputs after the
    // group formed (outputs follow the input evenly).
    let measured = load.records as f64 * (outputs - before) as f64 / outputs as f64;
    let throughput = measured / (last - stable).as_secs_f64();
    (throughput, spent * 1e6 / measured, rss)
}

/// The text of `http://addr/metrics`, if it answers.
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the series `name` (no labels) in a scrape.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Count over `keys` distinct keys, SIGKILLed, then restored by a new
/// process on an empty state directory.
fn restore(setup: &Setup, keys: usize) -> Value {
    let input = format!("bench-restore-in-{}", setup.stamp);
    let output = format!("bench-restore-out-{}", setup.stamp);
    create(&input);
    create(&output);
    create(&format!("{output}-dlq"));
    eprintln!("restore: loading {keys} records of distinct keys");
    kafka::produce_with(&input, keys, 0, |i| format!("r-{i}"), |_| b"1".to_vec());
    let count = Contender {
        name: "wasmpipe count".into(),
        kind: Kind::Wasmpipe,
        transform: Transform::Count,
        exactly_once: true,
        procs: 1,
        heap: None,
    };
    let dirs = tempfile::tempdir().unwrap();
    let run = |state: &str, ops: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        let (plugins, cache) = &setup.plugins["count"];
        c.args(["run", "--brokers", &kafka::brokers()])
            .args(["--group", &count.group(&output, "restore")])
            .args(["--input-topic", &input, "--output-topic", &output])
            .args(["--on-error", "dlq", "--dlq-topic", &format!("{output}-dlq")])
            .args(["--delivery", "exactly-once", "--commit-interval", "100ms"])
            .args(["--transactional-id", &format!("{output}-0")])
            .args(["--plugin-dir", plugins, "--cache-dir", cache])
            .args(["--ops-addr", ops])
            .arg("--state-dir")
            .arg(dirs.path().join(state))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let ops = format!("127.0.0.1:{}", kafka::free_port());
    let mut first = run("first", &ops);
    read(&output, keys, || {}, |_| false);
    first.kill().unwrap();
    first.wait().unwrap();

    let ops = format!("127.0.0.1:{}", kafka::free_port());
    let started = Instant::now();
    let second = run("second", &ops);
    let deadline = started + Duration::from_secs(600);
    let text = loop {
        assert!(Instant::now() < deadline, "restore: not done in 10 minutes");
        if let Some(text) = scrape(&ops)
            && series(&text, "wasmpipe_state_restore_duration_seconds_count") == Some(3.0)
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ready = started.elapsed().as_secs_f64();
    let seconds = series(&text, "wasmpipe_state_restore_duration_seconds_sum").unwrap();
    let restored = series(&text, "wasmpipe_state_restored_records_total").unwrap();
    let rss = peak_rss_mib(second.id());
    stop(vec![second]);
    kafka::delete(&[&input, &output, &format!("{output}-dlq")]);
    assert_eq!(
        restored as usize, keys,
        "restore: every key's state restored"
    );
    eprintln!(
        "  {keys} keys restored in {seconds:.2} s ({ready:.2} s from the process's start), {rss:.0} MiB"
    );
    json!({
        "keys": keys,
        "restore_seconds": seconds,
        "start_to_restored_seconds": ready,
        "restored_records": restored,
        "peak_rss_mib": rss,
    })
}

fn main() {
    let load = Load {
        records: env_or("WASMPIPE_BENCH_STATE_RECORDS", 1_000_000),
        keys: env_or("WASMPIPE_BENCH_KEYS", 10_000),
        base: {
            let two_hours_ago = kafka::now_ms() - 2 * 3600 * 1000;
            two_hours_ago - two_hours_ago.rem_euclid(WINDOW_MS) + 7_000
        },
    };
    let repeat = env_or("WASMPIPE_BENCH_REPEAT", 3);
    let restore_keys = env_or("WASMPIPE_BENCH_RESTORE_KEYS", 1_000_000);
    let only = std::env::var("WASMPIPE_BENCH_ONLY").unwrap_or_default();
    let out =
        std::env::var("WASMPIPE_BENCH_OUT").unwrap_or_else(|_| "bench-state-results.json".into());
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // The plugins, compiled once into a warm cache.
    let work = tempfile::tempdir().unwrap();
    let mut plugins = HashMap::new();
    for (name, wasm, pipeline) in [
        ("count", wasmpipe_test_guests::FLAT_COUNT, None),
        (
            "window-sum",
            wasmpipe_test_guests::FLAT_WINDOW_SUM,
            Some(
                "[[plugins]]\nfile = \"window-sum.wasm\"\nconfig = { size = \"1m\", grace = \"0s\", field = \"amount\" }\n",
            ),
        ),
    ] {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.wasm"));
        std::fs::copy(wasm, &file).unwrap();
        if let Some(p) = pipeline {
            std::fs::write(dir.join("pipeline.toml"), p).unwrap();
        }
        let cache = work.path().join(format!("{name}-cache"));
        let warmed = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
            .arg("--cache-dir")
            .arg(&cache)
            .args(["plugin", "check"])
            .arg(&file)
            .output()
            .unwrap();
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
            .map(|_| (format!("bench-state-warmup-{stamp}"), 200_000)),
        streams_cp,
        stamp,
        compression: std::env::var("WASMPIPE_BENCH_COMPRESSION").unwrap_or_else(|_| "lz4".into()),
    };

    let mut contenders = Vec::new();
    for transform in [Transform::Count, Transform::WindowSum] {
        let mut kinds = vec![(Kind::Wasmpipe, "wasmpipe")];
        if setup.streams_cp.is_some() {
            kinds.push((Kind::Streams, "Kafka Streams"));
        }
        for (kind, name) in kinds {
            contenders.push(Contender {
                name: format!("{name} {}", transform.name()),
                kind,
                transform,
                exactly_once: true,
                procs: 1,
                heap: None,
            });
        }
    }
    contenders.retain(|c| only.split(',').any(|o| c.label().contains(o.trim())));

    let backlog = format!("bench-state-in-{stamp}");
    create(&backlog);
    eprintln!(
        "loading {} records of {} keys into {backlog}",
        load.records, load.keys
    );
    kafka::produce_specs(&backlog, load.records, 0, |i| load.spec(i));
    if let Some((warmup, count)) = &setup.warmup {
        create(warmup);
        create(&format!("{warmup}-out"));
        let warm = Load {
            records: *count,
            ..load
        };
        kafka::produce_specs(warmup, *count, 0, |i| warm.spec(i));
    }
    let windows = load.windows().len();

    let mut runs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); contenders.len()];
    for round in 0..repeat {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &contenders[i];
            eprintln!(
                "draining ({}/{repeat}): {} (exactly-once, 1 process)",
                round + 1,
                c.label()
            );
            let outputs = match c.transform {
                Transform::Count => load.records,
                _ => windows,
            };
            let (throughput, cpu_us, rss) = drain(c, &setup, &backlog, &load, outputs, round);
            eprintln!(
                "  {throughput:.0} records/s, {cpu_us:.1} CPU µs per record ({:.0} records per CPU-second), {rss:.1} MiB",
                1e6 / cpu_us
            );
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
    let results: Vec<Value> = contenders
        .iter()
        .zip(&runs)
        .map(|(c, r)| {
            let col = |f: fn(&(f64, f64, f64)) -> f64| r.iter().map(f).collect::<Vec<f64>>();
            json!({
                "name": c.name,
                "transform": c.transform.name(),
                "delivery": c.delivery(),
                "procs": c.procs,
                "records": load.records,
                "keys": load.keys,
                "throughput": median(col(|r| r.0)),
                "cpu_us_per_record": median(col(|r| r.1)),
                "records_per_cpu_second": 1e6 / median(col(|r| r.1)),
                "peak_rss_mib": median(col(|r| r.2)),
                "throughput_runs": col(|r| r.0),
                "cpu_us_runs": col(|r| r.1),
                "rss_mib_runs": col(|r| r.2),
            })
        })
        .collect();
    let restored = (restore_keys > 0).then(|| restore(&setup, restore_keys));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"results": results, "restore": restored})).unwrap(),
    )
    .unwrap();
    eprintln!("wrote {out}");
}
