//! What the benches on the local broker share: clients, topics, loading
//! records, reading them back with their arrival times, and the processes'
//! CPU time and peak RSS from /proc.
#![allow(dead_code)] // each bench uses its own part

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn brokers() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn client(extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers());
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Drives an admin future on this thread (rdkafka's admin API is async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Creates `topic` with 3 partitions.
pub fn create(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(&[]).create().unwrap();
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
    for r in block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("is the broker up? tests/kafka/broker start")
    {
        r.unwrap();
    }
}

/// Deletes `topics`, so a long benchmark does not fill the broker's disk.
pub fn delete(topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = client(&[]).create().unwrap();
    for r in block_on(admin.delete_topics(topics, &AdminOptions::new())).unwrap() {
        if let Err((t, e)) = r {
            eprintln!("deleting topic {t}: {e}");
        }
    }
}

/// The three headers every bench record carries.
fn headers() -> OwnedHeaders {
    OwnedHeaders::new()
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
            value: Some("application/json"),
        })
}

/// Produces `count` records at `rate` per second (0: as fast as possible):
/// record `i` has key `key(i)`, value `value(i)`, three headers and the
/// current time as its timestamp.
pub fn produce_with(
    topic: &str,
    count: usize,
    rate: u64,
    key: impl Fn(usize) -> String,
    value: impl Fn(usize) -> Vec<u8>,
) {
    produce_specs(topic, count, rate, |i| Spec {
        key: key(i),
        value: value(i),
        partition: None,
        timestamp: now_ms(),
    });
}

/// A record to produce.
pub struct Spec {
    pub key: String,
    pub value: Vec<u8>,
    /// `None`: the producer's partitioner chooses.
    pub partition: Option<i32>,
    pub timestamp: i64,
}

/// Produces `count` records at `rate` per second (0: as fast as possible):
/// record `i` is `spec(i)` (made when it is due), with three headers.
pub fn produce_specs(topic: &str, count: usize, rate: u64, spec: impl Fn(usize) -> Spec) {
    let producer: BaseProducer = client(&[("linger.ms", "5"), ("batch.num.messages", "10000")])
        .create()
        .unwrap();
    let start = Instant::now();
    for i in 0..count {
        if let Some(micros) = (i as u64 * 1_000_000).checked_div(rate) {
            let due = start + Duration::from_micros(micros);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let s = spec(i);
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .key(&s.key)
            .payload(&s.value)
            .headers(headers())
            .timestamp(s.timestamp);
        if let Some(p) = s.partition {
            record = record.partition(p);
        }
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Peak RSS of process `pid` so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
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
pub fn broker_pids() -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", "kafka.Kafka"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Stops the processes (SIGTERM, so they leave their group cleanly) and
/// waits for them.
pub fn stop(mut procs: Vec<Child>) {
    for p in &procs {
        let _ = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status();
    }
    for p in &mut procs {
        let _ = p.wait();
    }
}

/// One record read back.
pub struct Arrival {
    pub key: String,
    /// Kept only where the reader asked for it.
    pub value: Option<Vec<u8>>,
    /// From the record's timestamp to its arrival here, in ms.
    pub latency_ms: i64,
}

/// Reads `count` records of `topic` (`read_committed`); returns the first
/// and last arrival times and the records, with the values of those whose
/// key `keep_value` accepts. `on_first` runs at the first.
pub fn read(
    topic: &str,
    count: usize,
    mut on_first: impl FnMut(),
    keep_value: impl Fn(&[u8]) -> bool,
) -> (Instant, Instant, Vec<Arrival>) {
    let consumer: BaseConsumer = client(&[
        ("group.id", &format!("reader-{topic}")),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
    ])
    .create()
    .unwrap();
    // Assigned, not subscribed: a group would wait out the broker's
    // initial rebalance delay and add it to the first records' latency.
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        partitions
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    assert!(partitions.count() > 0, "{topic} has no partitions");
    consumer.assign(&partitions).unwrap();
    let mut got = Vec::with_capacity(count);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "{topic}: only {} of {count} records arrived",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            first.get_or_insert_with(|| {
                on_first();
                Instant::now()
            });
            let key = m.key().unwrap_or_default();
            got.push(Arrival {
                key: String::from_utf8_lossy(key).into_owned(),
                value: keep_value(key).then(|| m.payload().unwrap_or_default().to_vec()),
                latency_ms: now_ms() - m.timestamp().to_millis().unwrap_or(0),
            });
        }
    }
    (first.unwrap(), Instant::now(), got)
}

pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Waits until `group` is stable with `members` members, each owning its
/// partitions: a contender is measured once its group has formed, not
/// while its processes join one after the other (each join stops the group
/// for up to a heartbeat interval).
pub fn wait_stable(group: &str, members: usize) -> Instant {
    let probe: BaseConsumer = client(&[]).create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "group {group} did not settle with {members} members"
        );
        if let Ok(list) = probe.fetch_group_list(Some(group), Duration::from_secs(5))
            && list.groups().iter().any(|g| {
                g.state() == "Stable"
                    && g.members().len() == members
                    && g.members()
                        .iter()
                        .all(|m| m.assignment().is_some_and(|a| !a.is_empty()))
            })
        {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `perf record -g` running while a contender drains, when
/// `WASMPIPE_BENCH_PERF` names a directory: `pids` only, or the whole
/// machine when empty, into `DIR/SLUG.perf.data`.
pub struct Profile(Option<Child>);

impl Profile {
    pub fn start(slug: &str, pids: &[u32]) -> Profile {
        let Ok(dir) = std::env::var("WASMPIPE_BENCH_PERF") else {
            return Profile(None);
        };
        let mut perf = Command::new("perf");
        perf.args(["record", "-g", "-F", "499", "-o"])
            .arg(format!("{dir}/{slug}.perf.data"));
        if pids.is_empty() {
            perf.arg("-a");
        } else {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            perf.args(["-p", &pids.join(",")]);
        }
        let child = perf
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perf (Debian: linux-perf)");
        Profile(Some(child))
    }

    /// Whether processes are to name their wasm functions for `perf`.
    pub fn wanted() -> bool {
        std::env::var_os("WASMPIPE_BENCH_PERF").is_some()
    }

    pub fn finish(self) {
        if let Some(perf) = self.0 {
            let _ = Command::new("kill")
                .args(["-INT", &perf.id().to_string()])
                .status();
            let _ = perf.wait_with_output();
        }
    }
}
