//! The pipeline against a real Apache Kafka broker (`tests/kafka/broker
//! start`; `KAFKA_BOOTSTRAP`, default 127.0.0.1:9092). A missing broker is
//! a failure, never a skip.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmpipe::config::{OnError, RunConfig, load_chain};
use wasmpipe::kafka::{Delivery, KafkaConfig};
use wasmpipe::ops::Telemetry;
use wasmpipe::reload::Updates;
use wasmpipe::runtime::Limits;

pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn client_at(brokers: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// A fresh topic name for this test.
pub fn topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}")
}

/// Whether `topic` exists, and with how many partitions.
pub fn partitions_of(topic: &str) -> Option<usize> {
    let kafka = wasmpipe::kafka::KafkaConfig {
        brokers: bootstrap(),
        properties: Vec::new(),
        token_source: None,
    };
    wasmpipe::kafka::partitions_if_any(&kafka, topic, Duration::from_secs(10)).unwrap()
}

pub fn create_topics(names: &[(&str, i32)]) {
    create_topics_at(&bootstrap(), names, 1)
}

pub fn create_topics_at(brokers: &str, names: &[(&str, i32)], replication: i32) {
    let admin: AdminClient<DefaultClientContext> = client_at(brokers, &[]).create().unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|(n, p)| {
            NewTopic::new(n, *p, TopicReplication::Fixed(replication))
                .set("max.message.bytes", "8388608")
        })
        .collect();
    let rt = futures_executor(admin.create_topics(
        &topics,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ));
    let results = rt.unwrap_or_else(|e| {
        panic!(
            "cannot reach Kafka at {}: {e} — start it with `tests/kafka/broker start`",
            bootstrap()
        )
    });
    for r in results {
        r.unwrap();
    }
}

/// Drives an admin future on this thread (rdkafka's admin API is async).
pub fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "kafka admin call did not finish in 60 s: is the broker at {} up?",
            bootstrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A record to produce into a partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn of(m: &OwnedMessage) -> Rec {
        Rec {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Without the headers wasmpipe adds to dead letters.
    pub fn without_wasmpipe_headers(mut self) -> Rec {
        self.headers.retain(|(k, _)| !k.starts_with("wasmpipe."));
        self
    }
}

pub fn produce(topic: &str, records: &[(i32, Rec)]) {
    produce_at(&bootstrap(), topic, records)
}

pub fn produce_at(brokers: &str, topic: &str, records: &[(i32, Rec)]) {
    let producer: BaseProducer = client_at(
        brokers,
        // Idempotent, so a batch retried when a broker dies mid-ack is not
        // written twice: the tests count duplicates in the output.
        &[
            ("message.max.bytes", "8000000"),
            ("linger.ms", "5"),
            ("enable.idempotence", "true"),
        ],
    )
    .create()
    .unwrap();
    for (partition, r) in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).partition(*partition).headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        let mut rec = rec;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Reads `topic` from the start until `count` records arrived (or the
/// deadline passed), then a little longer to catch extras.
pub fn consume(
    topic: &str,
    count: usize,
    read_committed: bool,
    deadline: Duration,
) -> Vec<OwnedMessage> {
    consume_at(&bootstrap(), topic, count, read_committed, deadline)
}

pub fn consume_at(
    brokers: &str,
    topic: &str,
    count: usize,
    read_committed: bool,
    deadline: Duration,
) -> Vec<OwnedMessage> {
    let isolation = if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let group = format!("reader-{}", self::topic("g"));
    let consumer: BaseConsumer = client_at(
        brokers,
        &[
            ("group.id", &group),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("isolation.level", isolation),
            ("fetch.max.bytes", "16000000"),
        ],
    )
    .create()
    .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let end = Instant::now() + deadline;
    let mut settle: Option<Instant> = None;
    while Instant::now() < end {
        if out.len() >= count {
            let s = *settle.get_or_insert_with(Instant::now);
            if s.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.unwrap().detach());
        }
    }
    out
}

pub struct Running {
    pub shutdown: Arc<AtomicBool>,
    pub telemetry: Arc<Telemetry>,
    pub handle: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn stop(self) -> Arc<Telemetry> {
        self.shutdown.store(true, Ordering::Relaxed);
        self.handle.join().unwrap().unwrap();
        self.telemetry
    }
}

pub fn run_config(
    input: &str,
    output: &str,
    dlq: Option<&str>,
    plugin_dir: &Path,
    delivery: Delivery,
) -> RunConfig {
    RunConfig {
        kafka: KafkaConfig {
            brokers: bootstrap(),
            properties: vec![("message.max.bytes".into(), "8000000".into())],
            token_source: None,
        },
        group: format!("wasmpipe-{input}"),
        input_topics: vec![input.to_owned()],
        output_topic: output.to_owned(),
        plugin_dir: plugin_dir.to_owned(),
        pipeline_file: None,
        delivery,
        on_error: if dlq.is_some() {
            OnError::Dlq
        } else {
            OnError::Skip
        },
        dlq_topic: dlq.map(str::to_owned),
        batch_records: 256,
        batch_bytes: 256 << 10,
        linger: Duration::from_millis(5),
        commit_interval: Duration::from_millis(200),
        limits: Limits::default(),
        grace: Duration::from_secs(20),
        transactional_id: format!("tx-{input}-{}", topic("p")),
        state_dir: std::env::temp_dir().join(format!("wasmpipe-state-{}", topic("s"))),
        formats: Default::default(),
    }
}

pub fn start(config: RunConfig) -> Running {
    start_with(config, None)
}

/// [`start`], taking new plugin sets from `updates`.
pub fn start_with(config: RunConfig, updates: Option<Arc<Updates>>) -> Running {
    // The pipeline's log goes to the test's output (shown when it fails).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wasmpipe=info".into()),
        )
        .with_test_writer()
        .try_init();
    let chain = load_chain(
        &crate::runtime(),
        &config.plugin_dir,
        config.pipeline_file.as_deref(),
        config.limits,
    )
    .unwrap();
    let shutdown = Arc::new(AtomicBool::new(false));
    let telemetry = Arc::new(Telemetry::default());
    let (s, c) = (shutdown.clone(), telemetry.clone());
    let config = config.validate().expect("the test's config is valid");
    let handle = std::thread::spawn(move || wasmpipe::pipeline::run(config, chain, updates, s, c));
    Running {
        shutdown,
        telemetry,
        handle,
    }
}

/// A plugin directory holding `plugin` (and a pipeline file, if given).
pub fn plugin_dir(plugin: &str, pipeline_yaml: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let name = Path::new(plugin).file_name().unwrap();
    std::fs::copy(plugin, dir.path().join(name)).unwrap();
    if let Some(y) = pipeline_yaml {
        std::fs::write(dir.path().join("pipeline.yaml"), y).unwrap();
    }
    let path = dir.path().to_owned();
    (dir, path)
}

/// Records carrying a sequence number per input partition in their value.
pub fn numbered(partitions: i32, per_partition: usize) -> Vec<(i32, Rec)> {
    let mut out = Vec::new();
    for seq in 0..per_partition {
        for p in 0..partitions {
            out.push((
                p,
                Rec {
                    key: Some(format!("p{p}-k{}", seq % 50).into_bytes()),
                    value: Some(format!("{{\"p\":{p},\"seq\":{seq}}}").into_bytes()),
                    headers: vec![("h".into(), Some(b"1".to_vec()))],
                },
            ));
        }
    }
    out
}

#[test]
fn records_survive_the_round_trip_byte_for_byte() {
    let (input, output) = (topic("rt-in"), topic("rt-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let special = [
        Rec {
            key: Some(b"tomb".to_vec()),
            value: None,
            headers: vec![],
        },
        Rec {
            key: None,
            value: Some(b"no key".to_vec()),
            headers: vec![],
        },
        Rec {
            key: Some(b"empty".to_vec()),
            value: Some(vec![]),
            headers: vec![],
        },
        Rec {
            key: Some(vec![0, 0xff, 0x80, 1]),
            value: Some(vec![0xc3, 0x28, 0]),
            headers: vec![],
        },
        Rec {
            key: Some(b"hdrs".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![
                ("a".into(), Some(b"1".to_vec())),
                ("a".into(), Some(b"2".to_vec())),
                ("n".into(), None),
                ("a".into(), Some(vec![0xff])),
            ],
        },
        Rec {
            key: Some(b"big".to_vec()),
            value: Some(vec![0x5a; 1 << 20]),
            headers: vec![],
        },
    ];
    let mut records = numbered(3, 300);
    records.extend(
        special
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (i as i32 % 3, r)),
    );
    produce(&input, &records);

    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let running = start(run_config(
        &input,
        &output,
        None,
        &plugins,
        Delivery::AtLeastOnce,
    ));
    let got = consume(&output, records.len(), false, Duration::from_secs(90));
    let telemetry = running.stop();

    let want: BTreeSet<Rec> = records.iter().map(|(_, r)| r.clone()).collect();
    let got_set: BTreeSet<Rec> = got.iter().map(Rec::of).collect();
    assert_eq!(
        got.len(),
        records.len(),
        "exactly as many outputs as inputs in a clean run"
    );
    assert!(
        want == got_set,
        "outputs differ from inputs: missing {:?}",
        want.difference(&got_set)
            .map(|r| (&r.key, r.value.as_ref().map(Vec::len)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        telemetry.metrics.total("records_produced"),
        records.len() as u64
    );

    // Per key, in order: a key's records keep their input order.
    let mut last: BTreeMap<(i32, Vec<u8>), i64> = BTreeMap::new();
    for m in &got {
        let v: serde_json::Value = match m.payload().and_then(|p| serde_json::from_slice(p).ok()) {
            Some(v) => v,
            None => continue,
        };
        let (p, seq) = (v["p"].as_i64().unwrap() as i32, v["seq"].as_i64().unwrap());
        let prev = last.insert((p, m.key().unwrap().to_vec()), seq);
        assert!(
            prev.is_none_or(|prev| prev < seq),
            "out of order for key {:?}",
            m.key()
        );
    }
}

#[test]
fn failing_records_go_to_the_dead_letter_topic_with_their_story() {
    let (input, output, dlq) = (topic("dlq-in"), topic("dlq-out"), topic("dlq-dlq"));
    create_topics(&[(&input, 3), (&output, 3), (&dlq, 1)]);
    let mut records = numbered(3, 200);
    let mut poison = Vec::new();
    for (i, (_, r)) in records.iter_mut().enumerate() {
        if i % 100 == 7 {
            r.value = Some(b"poison".to_vec());
            r.key = Some(format!("poison-{i}").into_bytes());
            poison.push(r.clone());
        }
    }
    produce(&input, &records);
    let (_dir, plugins) = plugin_dir(
        wasmpipe_test_guests::FLAT_MISBEHAVE,
        Some("plugins:\n  - file: misbehave.wasm\n    config: { mode: error }\n"),
    );
    let running = start(run_config(
        &input,
        &output,
        Some(&dlq),
        &plugins,
        Delivery::AtLeastOnce,
    ));
    let dead = consume(&dlq, poison.len(), false, Duration::from_secs(60));
    let good = consume(
        &output,
        records.len() - poison.len(),
        false,
        Duration::from_secs(60),
    );
    let telemetry = running.stop();

    assert_eq!(poison.len(), 6);
    assert_eq!(dead.len(), poison.len());
    assert_eq!(good.len(), records.len() - poison.len());
    assert!(good.iter().all(|m| m.payload() != Some(b"poison")));
    assert_eq!(telemetry.metrics.total("records_dead_lettered"), 6);
    let metrics = telemetry.metrics.encode();
    for line in [
        r#"wasmpipe_records_dead_lettered_total{plugin="misbehave",kind="error",reason="guest_error"} 6"#,
        r#"wasmpipe_transform_errors_total{plugin="misbehave",kind="error",reason="guest_error"} 6"#,
        &format!(r#"wasmpipe_records_produced_total{{topic="{output}"}} 594"#),
        &format!(r#"wasmpipe_records_consumed_total{{topic="{input}"}} 600"#),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(wasmpipe_test_guests::FLAT_MISBEHAVE).unwrap(),
        ))
    };
    let got: BTreeSet<Rec> = dead
        .iter()
        .map(|m| Rec::of(m).without_wasmpipe_headers())
        .collect();
    assert_eq!(
        got,
        poison.iter().cloned().collect::<BTreeSet<_>>(),
        "original key, value and headers"
    );
    for m in &dead {
        let h: BTreeMap<String, String> = m
            .headers()
            .unwrap()
            .iter()
            .filter(|h| h.key.starts_with("wasmpipe."))
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap()).into_owned(),
                )
            })
            .collect();
        let offset = &h["wasmpipe.source.offset"];
        assert_eq!(h["wasmpipe.error.kind"], "error");
        assert_eq!(h["wasmpipe.error.reason"], "guest_error");
        assert_eq!(
            h["wasmpipe.error.message"],
            format!("misbehave: refused offset {offset}")
        );
        assert_eq!(h["wasmpipe.plugin"], "misbehave");
        assert_eq!(h["wasmpipe.plugin.sha256"], sha);
        assert_eq!(h["wasmpipe.source.topic"], input);
        assert!(h["wasmpipe.source.partition"].parse::<i32>().unwrap() < 3);
    }
}

#[test]
fn exactly_once_survives_a_restart_without_loss_or_duplicates() {
    let (input, output) = (topic("eos-in"), topic("eos-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let records = numbered(3, 2000);
    produce(&input, &records);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let config = run_config(&input, &output, None, &plugins, Delivery::ExactlyOnce);

    // Stop the first instance part-way, then let a second one finish.
    let first = start(config.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.telemetry.metrics.total("records_produced") < 1500 {
        assert!(Instant::now() < deadline, "the pipeline made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = first.stop();
    assert!(first.metrics.total("transactions") > 0);
    let second = start(RunConfig {
        transactional_id: format!("{}-2", config.transactional_id),
        ..config
    });
    let got = consume(&output, records.len(), true, Duration::from_secs(90));
    second.stop();

    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in &got {
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        *seen
            .entry((v["p"].as_i64().unwrap(), v["seq"].as_i64().unwrap()))
            .or_default() += 1;
    }
    let dups = seen.values().filter(|&&n| n > 1).count();
    assert_eq!(dups, 0, "duplicates under exactly-once");
    assert_eq!(seen.len(), records.len(), "every input exactly once");
}

/// The `(input partition, sequence)` a numbered record carries.
pub fn sequence(m: &OwnedMessage) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_slice(m.payload()?).ok()?;
    Some((v["p"].as_i64()?, v["seq"].as_i64()?))
}

/// Asserts that each key's records come in input order (a repeat of an
/// earlier record is allowed, going back past it is not); returns how many
/// records were repeats.
pub fn check_order(messages: &[&OwnedMessage]) -> usize {
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let mut repeats = 0;
    for m in messages {
        let (_, seq) = sequence(m).unwrap();
        let key = m.key().unwrap().to_vec();
        match last.get(&key) {
            Some(&prev) if seq <= prev => repeats += 1,
            _ => {
                last.insert(key, seq);
            }
        }
    }
    repeats
}

#[test]
fn halt_stops_the_pipeline_naming_the_record() {
    let (input, output) = (topic("halt-in"), topic("halt-out"));
    create_topics(&[(&input, 1), (&output, 1)]);
    let mut records = numbered(1, 50);
    records[20].1.value = Some(b"poison".to_vec());
    produce(&input, &records);
    let (_dir, plugins) = plugin_dir(
        wasmpipe_test_guests::FLAT_MISBEHAVE,
        Some("plugins:\n  - file: misbehave.wasm\n    config: { mode: panic }\n"),
    );
    let config = RunConfig {
        on_error: OnError::Halt,
        ..run_config(&input, &output, None, &plugins, Delivery::ExactlyOnce)
    };
    let t = Instant::now();
    let running = start(config);
    let err = running.handle.join().unwrap().unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "halting took {:?}",
        t.elapsed()
    );
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(&format!("halting (--on-error halt): record {input}/0@20 failed in plugin misbehave (trap): trap: wasm `unreachable`")),
        "{msg}"
    );
    // Nothing of the halted transaction is visible.
    assert!(consume(&output, 1, true, Duration::from_secs(5)).is_empty());
}

#[test]
fn a_plugin_that_loops_is_dead_lettered_as_a_deadline() {
    let (input, output, dlq) = (topic("loop-in"), topic("loop-out"), topic("loop-dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    let mut records = numbered(1, 30);
    records[3].1.value = Some(b"poison".to_vec());
    produce(&input, &records);
    let (_dir, plugins) = plugin_dir(
        wasmpipe_test_guests::TYPED_MISBEHAVE,
        Some("plugins:\n  - file: misbehave.wasm\n    config: { mode: loop }\n"),
    );
    let mut config = run_config(&input, &output, Some(&dlq), &plugins, Delivery::ExactlyOnce);
    config.limits.deadline = Duration::from_millis(100);
    let running = start(config);
    let dead = consume(&dlq, 1, true, Duration::from_secs(30));
    let good = consume(&output, 29, true, Duration::from_secs(30));
    running.stop();
    assert_eq!((dead.len(), good.len()), (1, 29));
    let h: BTreeMap<String, String> = dead[0]
        .headers()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        (
            h["wasmpipe.error.kind"].as_str(),
            h["wasmpipe.error.reason"].as_str()
        ),
        ("limit", "deadline")
    );
    assert_eq!(h["wasmpipe.error.message"], "deadline of 100ms exceeded");
    assert_eq!(h["wasmpipe.source.offset"], "3");
}

/// Sets a topic's config (replacing its other overrides).
pub fn set_topic_config(topic: &str, key: &str, value: &str) {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = client_at(&bootstrap(), &[]).create().unwrap();
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
    for r in futures_executor(admin.alter_configs(&[change], &AdminOptions::new())).unwrap() {
        r.unwrap();
    }
}

/// A route-plugin directory sending records of input partition 1 to `to`.
fn route_partition_one_to(to: &str) -> (tempfile::TempDir, PathBuf) {
    let file = Path::new(wasmpipe_test_guests::FLAT_ROUTE)
        .file_name()
        .unwrap()
        .to_string_lossy();
    let yaml = format!("plugins:\n  - file: {file}\n    config: {{ path: p, route.1: {to} }}\n");
    plugin_dir(wasmpipe_test_guests::FLAT_ROUTE, Some(&yaml))
}

/// The broker refuses a transaction's records (here: the topic's
/// `max.message.bytes` is too small for what the plugin routes there): the
/// transaction is aborted, the records since the last commit are processed
/// again, and this time the records Kafka refused are refused up front and
/// fail alone (skipped here; dead-lettered with a DLQ). Every other input
/// is in the output exactly once, and the pipeline never stops.
#[test]
fn an_aborted_transaction_is_processed_again_without_duplicates() {
    let (input, output, narrow) = (topic("ab-in"), topic("ab-out"), topic("ab-narrow"));
    create_topics(&[(&input, 2), (&output, 2), (&narrow, 1)]);
    // Large enough for the transaction markers, too small for a batch of
    // records.
    set_topic_config(&narrow, "max.message.bytes", "200");
    let records = numbered(2, 500);
    produce(&input, &records);
    let (_dir, plugins) = route_partition_one_to(&narrow);
    let running = start(run_config(
        &input,
        &output,
        None,
        &plugins,
        Delivery::ExactlyOnce,
    ));
    let kept = consume(&output, 500, true, Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(90);
    let routed = loop {
        let routed = consume(&narrow, 0, true, Duration::from_secs(3));
        let skipped = running.telemetry.metrics.total("records_skipped") as usize;
        if routed.len() + skipped >= 500 || Instant::now() > deadline {
            break routed;
        }
        assert!(!running.handle.is_finished(), "the pipeline stopped");
    };
    let telemetry = running.stop();
    assert!(telemetry.metrics.total("recoveries") >= 1);
    let skipped = telemetry.metrics.total("records_skipped") as usize;
    assert!(skipped >= 1);
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in kept.iter().chain(&routed) {
        *seen.entry(sequence(m).unwrap()).or_default() += 1;
    }
    assert_eq!(
        seen.values().filter(|&&n| n > 1).count(),
        0,
        "no duplicates"
    );
    assert_eq!(kept.len(), 500, "partition 0's records, once each");
    assert!(kept.iter().all(|m| sequence(m).unwrap().0 == 0));
    assert!(routed.iter().all(|m| sequence(m).unwrap().0 == 1));
    assert_eq!(
        routed.len() + skipped,
        500,
        "partition 1's records: routed or refused"
    );
}

/// A plugin routes records to a topic that does not exist: after one
/// aborted transaction Kafka refuses them outright, and they are
/// dead-lettered as `produce` failures naming the topic; the rest flows.
#[test]
fn outputs_to_a_missing_topic_are_dead_lettered() {
    let (input, output, dlq, missing) = (
        topic("mt-in"),
        topic("mt-out"),
        topic("mt-dlq"),
        topic("mt-missing"),
    );
    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]);
    let records = numbered(2, 200);
    produce(&input, &records);
    let (_dir, plugins) = route_partition_one_to(&missing);
    let mut config = run_config(&input, &output, Some(&dlq), &plugins, Delivery::ExactlyOnce);
    // Give up on the missing topic after 1 s rather than 30 s.
    config.kafka.properties.push((
        "producer.topic.metadata.propagation.max.ms".into(),
        "1000".into(),
    ));
    let running = start(config);
    let kept = consume(&output, 200, true, Duration::from_secs(90));
    let dead = consume(&dlq, 200, true, Duration::from_secs(90));
    let telemetry = running.stop();

    let seqs = |ms: &[OwnedMessage]| -> BTreeSet<(i64, i64)> {
        ms.iter().map(|m| sequence(m).unwrap()).collect()
    };
    assert_eq!(kept.len(), 200, "partition 0's records, once each");
    assert_eq!(seqs(&kept), (0..200).map(|s| (0, s)).collect());
    assert_eq!(dead.len(), 200, "partition 1's records, once each");
    assert_eq!(seqs(&dead), (0..200).map(|s| (1, s)).collect());
    let header = |m: &OwnedMessage, key: &str| -> String {
        let h = m.headers().unwrap();
        let v = h.iter().find(|h| h.key == key).and_then(|h| h.value);
        String::from_utf8_lossy(v.unwrap()).into_owned()
    };
    for m in &dead {
        assert_eq!(header(m, "wasmpipe.error.kind"), "produce");
        assert_eq!(header(m, "wasmpipe.error.reason"), "unknown_topic");
        assert!(header(m, "wasmpipe.error.message").contains(&missing));
        assert_eq!(header(m, "wasmpipe.plugin"), "route");
    }
    assert_eq!(telemetry.metrics.total("records_dead_lettered"), 200);
    let metrics = telemetry.metrics.encode();
    let line = r#"wasmpipe_transform_errors_total{plugin="route",kind="produce",reason="unknown_topic"} 200"#;
    assert!(
        metrics.lines().any(|l| l == line),
        "{line} not in\n{metrics}"
    );
}
