//! Plugin state's host side, on the local broker (`tests/kafka/broker
//! start`; `KAFKA_BOOTSTRAP`): what a write and a read cost through the
//! pending layers and the fjall store, and how long restoring a partition
//! of `WASMPIPE_BENCH_STATE_KEYS` keys (default 1,000,000) from its
//! changelog takes — in full into an empty store, and from the checkpoint
//! after 1% more writes — with the process's peak RSS. Prints a Markdown
//! table.
//!
//! `cargo bench -p wasmpipe --bench state`

// The allocator the `wasmpipe` binary runs with, so the RSS is its.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/timing.rs"]
mod timing;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};
use wasmpipe::kafka::KafkaConfig;
use wasmpipe::kafka::changelog::{ensure_topic, restore};
use wasmpipe::state::{Entry, PartitionState, StateLimits, StoreMemory, Stores};

const REPEAT: usize = 3;

fn key(i: usize) -> String {
    format!("customer-{i:012}")
}

/// The entry a count plugin keeps: an 8-byte counter.
fn entry(i: usize) -> Vec<u8> {
    Entry::encode(&(i as u64).to_le_bytes(), None)
}

fn own_peak_rss_mib() -> f64 {
    kafka::peak_rss_mib(std::process::id())
}

fn own_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Writes keys `from..to` to partition 0 of `topic`, as the pipeline's
/// idempotent producer would. (Not `kafka::produce_with`: its producer's
/// queue would raise the process's peak RSS before the restores measure
/// theirs.)
fn load(topic: &str, from: usize, to: usize) {
    let producer: BaseProducer = kafka::client(&[
        ("linger.ms", "5"),
        ("enable.idempotence", "true"),
        ("compression.type", "lz4"),
    ])
    .create()
    .expect("producer");
    for i in from..to {
        let (k, v) = (key(i), entry(i));
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .partition(0)
            .key(&k)
            .payload(&v);
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
    producer.flush(Duration::from_secs(120)).expect("flush");
}

fn main() {
    let keys: usize = std::env::var("WASMPIPE_BENCH_STATE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut rows: Vec<(String, String)> = Vec::new();

    // The host's write and read path, no Kafka: a batch of 512 writes to
    // the pending layer, sealed and applied to the store.
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(dir.path(), StoreMemory::default()).expect("stores");
    let mut state = PartitionState::new(
        stores.partition("count", "bench", 0).expect("store"),
        StateLimits::default(),
    );
    let batches = 200;
    let mut n = 0usize;
    let write = timing::time(REPEAT, || {
        for b in 0..batches {
            for _ in 0..512 {
                let k = key(n % 100_000);
                state
                    .put(k.as_bytes(), &(n as u64).to_le_bytes(), None)
                    .expect("put");
                n += 1;
            }
            let seq = state.pending().seal().map(|(seq, _)| seq).expect("sealed");
            state.made_durable(seq, b as i64 + 1).expect("apply");
        }
    });
    let per_write = write.as_secs_f64() * 1e9 / (batches * 512) as f64;
    rows.push((
        "put, batch of 512 sealed and applied to the store".into(),
        format!("{per_write:.0} ns a write"),
    ));
    let reads = 100_000;
    let read = timing::time(REPEAT, || {
        let mut found = 0;
        for i in 0..reads {
            let k = key((i * 7919) % 100_000);
            found += usize::from(state.get(k.as_bytes()).expect("get").is_some());
        }
        found
    });
    rows.push((
        "get, 100,000 keys in the store".into(),
        format!("{:.0} ns a read", read.as_secs_f64() * 1e9 / reads as f64),
    ));
    drop(state);

    // Restore from the changelog on the broker.
    let config = KafkaConfig {
        brokers: kafka::brokers(),
        ..KafkaConfig::default()
    };
    let topic = format!("bench-state-{}", kafka::now_ms());
    kafka::block_on(ensure_topic(
        &config,
        &topic,
        1,
        None,
        Duration::from_secs(30),
    ))
    .expect("is the broker up? tests/kafka/broker start");
    let loading = Instant::now();
    load(&topic, 0, keys);
    eprintln!(
        "loaded {keys} keys in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let before = own_peak_rss_mib();
    let mut full = Vec::new();
    let mut tail = Vec::new();
    for round in 0..REPEAT {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = Stores::open(dir.path(), StoreMemory::default()).expect("stores");
        let store = stores.partition("count", "bench", 0).expect("store");
        let started = Instant::now();
        let restored = restore(
            &config,
            &topic,
            0,
            &store,
            Duration::from_secs(600),
            |_, _| {},
        )
        .expect("restore");
        full.push(started.elapsed());
        assert_eq!(restored.records as usize, keys + round * (keys / 100));
        // 1% more writes, then a restore from the checkpoint.
        load(
            &topic,
            keys + round * (keys / 100),
            keys + (round + 1) * (keys / 100),
        );
        let started = Instant::now();
        let restored = restore(
            &config,
            &topic,
            0,
            &store,
            Duration::from_secs(600),
            |_, _| {},
        )
        .expect("restore");
        tail.push(started.elapsed());
        assert_eq!(restored.records as usize, keys / 100);
        eprintln!(
            "round {round}: peak RSS {:.0} MiB, now {:.0} MiB",
            own_peak_rss_mib(),
            own_rss_mib()
        );
    }
    let full = timing::median(full);
    let tail = timing::median(tail);
    rows.push((
        format!("restore of {keys} keys into an empty store"),
        format!(
            "{:.2} s ({:.0} records/s)",
            full.as_secs_f64(),
            keys as f64 / full.as_secs_f64()
        ),
    ));
    rows.push((
        format!("restore of {} new keys from the checkpoint", keys / 100),
        format!("{:.0} ms", tail.as_secs_f64() * 1e3),
    ));
    rows.push((
        "peak RSS of the process, before and after the restores".into(),
        format!("{before:.0} MiB, {:.0} MiB", own_peak_rss_mib()),
    ));
    kafka::delete(&[&topic]);

    println!("| operation | measured (median of {REPEAT}) |");
    println!("|---|---|");
    for (op, v) in rows {
        println!("| {op} | {v} |");
    }
}
