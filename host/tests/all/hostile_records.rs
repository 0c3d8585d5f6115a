//! Records and routes that Kafka or the client library can refuse, on the
//! real broker, in both delivery modes: each costs its record (dead-lettered
//! with why), never the stream.

use crate::kafka::{
    Rec, bootstrap, consume, create_topics, numbered, plugin_dir, produce, run_config,
    set_topic_config, start, topic,
};
use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedHeaders, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;
use wasmpipe::kafka::Delivery;

type Raw = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn native(headers: &OwnedHeaders) -> *mut rdkafka::bindings::rd_kafka_headers_t {
    headers.as_borrowed() as *const BorrowedHeaders as *mut _
}

/// Produces one record with headers whose names are any bytes, as a
/// client in another language may write them.
fn produce_raw(topic: &str, value: &[u8], headers: &Raw) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let owned = OwnedHeaders::new();
    for (name, value) in headers {
        let (v, len) = value.as_ref().map_or((std::ptr::null(), 0), |v| {
            (v.as_ptr().cast(), v.len() as isize)
        });
        // SAFETY: live, writable headers; librdkafka copies name and value.
        unsafe {
            rdkafka::bindings::rd_kafka_header_add(
                native(&owned),
                name.as_ptr().cast(),
                name.len() as isize,
                v,
                len,
            );
        }
    }
    let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
        .partition(0)
        .payload(value)
        .headers(owned);
    producer.send(record).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A message's headers as bytes (rdkafka's own reader panics on a name
/// that is not UTF-8).
fn raw_headers(m: &OwnedMessage) -> Raw {
    let Some(h) = m.headers() else {
        return Vec::new();
    };
    let native = native(h);
    let mut out = Vec::new();
    for i in 0.. {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
        // SAFETY: `native` is live for `m`; librdkafka checks the index.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_header_get_all(native, i, &mut name, &mut value, &mut size)
        };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            break;
        }
        // SAFETY: a NUL-terminated name and `size` bytes owned by `m`.
        let (name, value) = unsafe {
            (
                std::ffi::CStr::from_ptr(name).to_bytes().to_vec(),
                (!value.is_null())
                    .then(|| std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec()),
            )
        };
        out.push((name, value));
    }
    out
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    raw_headers(m)
        .into_iter()
        .find(|(n, _)| n == name.as_bytes())
        .and_then(|(_, v)| v)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

const MODES: [Delivery; 2] = [Delivery::AtLeastOnce, Delivery::ExactlyOnce];

#[test]
fn a_header_name_that_is_not_utf8_is_dead_lettered_with_its_headers_as_they_came() {
    for delivery in MODES {
        let (input, output, dlq) = (topic("nu-in"), topic("nu-out"), topic("nu-dlq"));
        create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
        let plain = |v: &str| Rec {
            key: None,
            value: Some(v.as_bytes().to_vec()),
            headers: vec![("h".into(), Some(b"1".to_vec()))],
        };
        produce(&input, &[(0, plain("a"))]);
        let odd: Raw = vec![
            (b"ok".to_vec(), Some(b"v".to_vec())),
            (b"\xff\xfe-name".to_vec(), Some(b"\x00\x01".to_vec())),
            (b"wasmpipe.error.kind".to_vec(), None),
        ];
        produce_raw(&input, b"odd", &odd);
        produce(&input, &[(0, plain("c"))]);
        let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
        let running = start(run_config(&input, &output, Some(&dlq), &plugins, delivery));
        let kept = consume(&output, 2, true, Duration::from_secs(60));
        let dead = consume(&dlq, 1, true, Duration::from_secs(60));
        let telemetry = running.stop();
        let values: Vec<_> = kept.iter().map(|m| m.payload().unwrap().to_vec()).collect();
        assert_eq!(values, [b"a".to_vec(), b"c".to_vec()], "{delivery:?}");
        assert_eq!(dead.len(), 1, "{delivery:?}");
        let d = &dead[0];
        assert_eq!(d.payload(), Some(&b"odd"[..]));
        let headers = raw_headers(d);
        assert_eq!(
            headers[..2],
            odd[..2],
            "the record's headers, byte for byte"
        );
        assert_eq!(header(d, "wasmpipe.error.kind").unwrap(), "record");
        assert_eq!(
            header(d, "wasmpipe.error.reason").unwrap(),
            "header_name_not_utf8"
        );
        assert_eq!(header(d, "wasmpipe.source.offset").unwrap(), "1");
        assert_eq!(telemetry.metrics.total("records_dead_lettered"), 1);
    }
}

/// A plugin routes records to topic names Kafka refuses (empty, a space,
/// a NUL, 300 characters): each is dead-lettered as `invalid_topic` before
/// anything of it is queued, in both modes; the others flow.
#[test]
fn outputs_to_a_topic_name_kafka_refuses_are_dead_lettered() {
    let long = "x".repeat(300);
    for delivery in MODES {
        for bad in ["", "has space", "nul\\u0000byte", long.as_str()] {
            let (input, output, dlq) = (topic("it-in"), topic("it-out"), topic("it-dlq"));
            create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
            let mut records = numbered(1, 20);
            for (i, (_, r)) in records.iter_mut().enumerate() {
                if i % 5 == 2 {
                    r.value = Some(b"poison".to_vec());
                }
            }
            produce(&input, &records);
            let yaml = format!(
                "plugins:\n  - file: misbehave.wasm\n    config: {{ mode: route, topic: \"{bad}\" }}\n"
            );
            let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_MISBEHAVE, Some(&yaml));
            let running = start(run_config(&input, &output, Some(&dlq), &plugins, delivery));
            let kept = consume(&output, 16, true, Duration::from_secs(60));
            let dead = consume(&dlq, 4, true, Duration::from_secs(60));
            let telemetry = running.stop();
            assert_eq!(kept.len(), 16, "{delivery:?} {bad:?}");
            assert!(kept.iter().all(|m| m.payload() != Some(b"poison")));
            assert_eq!(dead.len(), 4, "{delivery:?} {bad:?}");
            for m in &dead {
                assert_eq!(m.payload(), Some(&b"poison"[..]));
                assert_eq!(header(m, "wasmpipe.error.kind").unwrap(), "produce");
                assert_eq!(header(m, "wasmpipe.error.reason").unwrap(), "invalid_topic");
            }
            assert_eq!(telemetry.metrics.total("records_dead_lettered"), 4);
        }
    }
}

/// A dead letter larger than the dead-letter topic takes (its
/// `max.message.bytes`) is still written: without the record's headers,
/// then without its key and value, with `wasmpipe.dropped` saying so. The
/// pipeline does not halt on it, in either mode.
#[test]
fn a_dead_letter_too_large_for_its_topic_is_written_trimmed() {
    for delivery in MODES {
        let (input, output, dlq) = (topic("tl-in"), topic("tl-out"), topic("tl-dlq"));
        create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
        set_topic_config(&dlq, "max.message.bytes", "4000");
        // Incompressible, so lz4 does not bring it under the topic's limit.
        let mut x: u64 = 7;
        let big: Vec<u8> = (0..50_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"abcdefghijklmnopqrstuvwxyz0123456789"[(x >> 33) as usize % 36]
            })
            .collect();
        let mut records = numbered(1, 10);
        records[3].1.value = Some(big.clone());
        produce(&input, &records);
        let yaml = format!(
            "plugins:\n  - file: misbehave.wasm\n    config: {{ mode: error, trigger: \"{}\" }}\n",
            String::from_utf8(big.clone()).unwrap()
        );
        let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_MISBEHAVE, Some(&yaml));
        let running = start(run_config(&input, &output, Some(&dlq), &plugins, delivery));
        let dead = consume(&dlq, 1, true, Duration::from_secs(90));
        let kept = consume(&output, 9, true, Duration::from_secs(60));
        let telemetry = running.stop();
        assert_eq!(dead.len(), 1, "{delivery:?}");
        let d = &dead[0];
        assert_eq!(header(d, "wasmpipe.dropped").unwrap(), "headers,key,value");
        assert_eq!(d.payload(), None);
        assert_eq!(header(d, "wasmpipe.source.offset").unwrap(), "3");
        assert_eq!(header(d, "wasmpipe.error.reason").unwrap(), "guest_error");
        let mut seqs: Vec<_> = kept
            .iter()
            .map(|m| crate::kafka::sequence(m).unwrap().1)
            .collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs, [0, 1, 2, 4, 5, 6, 7, 8, 9], "{delivery:?}");
        // Counted each time one is queued: the whole one Kafka refused (and,
        // where Kafka refused it too, the one without headers), then the
        // trimmed one. The topic holds one.
        assert!(telemetry.metrics.total("records_dead_lettered") >= 2);
        assert!(telemetry.metrics.total("recoveries") >= 1);
    }
}

/// The group's committed offset of partition 0 of `topic`, if any.
fn committed(group: &str, topic: &str) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .ok()?;
    got.elements()[0].offset().to_raw()
}

/// Forty records in a row that each sleep past the deadline: the pipeline
/// stays live (liveness set well below the burst's length) and commits
/// while the burst lasts, and every record ends up exactly once in the
/// output or the dead-letter topic, in both modes.
#[test]
fn a_burst_of_poison_records_keeps_the_pipeline_live_and_committing() {
    for delivery in MODES {
        let (input, output, dlq) = (topic("pb-in"), topic("pb-out"), topic("pb-dlq"));
        create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
        let mut records = numbered(1, 50);
        for (_, r) in &mut records[5..45] {
            r.value = Some(b"poison".to_vec());
        }
        produce(&input, &records);
        let (_dir, plugins) = plugin_dir(
            wasmpipe_test_guests::FLAT_MISBEHAVE,
            Some("plugins:\n  - file: misbehave.wasm\n    config: { mode: sleep }\n"),
        );
        let mut config = run_config(&input, &output, Some(&dlq), &plugins, delivery);
        config.limits.deadline = Duration::from_millis(200);
        let group = config.group.clone();
        let running = start(config);
        // 40 deadlines: 8 s at least. Liveness is checked against 1.5 s.
        let started = std::time::Instant::now();
        let mut commits_during_burst = std::collections::BTreeSet::new();
        while running.telemetry.metrics.total("records_dead_lettered") < 40 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{delivery:?}: stuck"
            );
            assert!(
                !running.handle.is_finished(),
                "{delivery:?}: the pipeline stopped"
            );
            if let Err(e) = running
                .telemetry
                .health
                .check_live(Duration::from_millis(1500))
            {
                panic!("{delivery:?}: not live during the burst: {e}");
            }
            if let Some(next) = committed(&group, &input)
                && (6..45).contains(&next)
            {
                commits_during_burst.insert(next);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let kept = consume(&output, 10, true, Duration::from_secs(60));
        let dead = consume(&dlq, 40, true, Duration::from_secs(60));
        let telemetry = running.stop();
        assert!(
            commits_during_burst.len() >= 3,
            "{delivery:?}: offsets committed during the burst: {commits_during_burst:?}"
        );
        let seq = |m: &OwnedMessage| crate::kafka::sequence(m);
        let mut kept_seqs: Vec<_> = kept.iter().map(|m| seq(m).unwrap().1).collect();
        kept_seqs.sort();
        let want: Vec<i64> = (0..5).chain(45..50).collect();
        if delivery == Delivery::ExactlyOnce {
            assert_eq!(kept_seqs, want, "exactly once");
        } else {
            kept_seqs.dedup();
            assert_eq!(kept_seqs, want);
        }
        let mut offsets: Vec<_> = dead
            .iter()
            .map(|m| {
                header(m, "wasmpipe.source.offset")
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .collect();
        offsets.sort();
        assert_eq!(offsets, (5..45).collect::<Vec<_>>(), "{delivery:?}");
        for m in &dead {
            assert_eq!(header(m, "wasmpipe.error.kind").unwrap(), "limit");
            assert_eq!(header(m, "wasmpipe.error.reason").unwrap(), "deadline");
        }
        assert_eq!(telemetry.metrics.total("records_dead_lettered"), 40);
    }
}

/// What the exactly-once back-off does instead of sleeping: the consumer's
/// partitions are held (paused) while the loop goes on polling. Held for
/// longer than `max.poll.interval.ms`, the member keeps its partitions,
/// nothing is fetched meanwhile, and everything is read once released.
#[test]
fn holding_the_partitions_past_max_poll_interval_keeps_the_member_in_its_group() {
    use std::sync::Mutex;
    use wasmpipe::kafka::{Committer, KafkaConfig, RebalanceHandler, Source, TopicPartition};
    use wasmpipe::record::Batch;

    #[derive(Default)]
    struct Seen {
        assigned: Mutex<usize>,
        revoked: Mutex<usize>,
    }
    impl RebalanceHandler for Seen {
        fn assigned(&self, p: &[TopicPartition], _generation: u64) {
            *self.assigned.lock().unwrap() += p.len();
        }
        fn revoking(&self, p: &[TopicPartition], _: &dyn Committer) {
            *self.revoked.lock().unwrap() += p.len();
        }
    }

    let input = topic("hold-in");
    create_topics(&[(&input, 1)]);
    let seen = std::sync::Arc::new(Seen::default());
    let config = KafkaConfig {
        brokers: bootstrap(),
        properties: vec![
            ("session.timeout.ms".into(), "6000".into()),
            ("max.poll.interval.ms".into(), "7000".into()),
        ],
        token_source: None,
    };
    let source = Source::new(
        &config,
        &topic("hold-g"),
        std::slice::from_ref(&input),
        Delivery::ExactlyOnce,
        seen.clone(),
    )
    .unwrap();
    let mut batch = Batch::default();
    // The pipeline's round: wait, serve the consumer's queue, then read
    // the partition's own queue.
    let tp = TopicPartition {
        topic: input.clone(),
        partition: 0,
    };
    let poll = |source: &Source, batch: &mut Batch| {
        source.wait(Duration::from_millis(100));
        let mut polled = Vec::new();
        let round = source.poll_many(1, &mut polled);
        assert!(round.error.is_none(), "{:?}", round.error);
        for p in &polled {
            p.fetched().fill(batch).unwrap();
        }
        let read = source
            .read(&tp, 1, |f| {
                f.fill(batch).unwrap();
            })
            .unwrap();
        !polled.is_empty() || read > 0
    };
    let started = std::time::Instant::now();
    while *seen.assigned.lock().unwrap() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never assigned"
        );
        poll(&source, &mut batch);
    }
    source.split(&tp);
    source.hold(true);
    produce(&input, &numbered(1, 50));
    let held = std::time::Instant::now();
    while held.elapsed() < Duration::from_secs(9) {
        source.hold(true);
        assert!(
            !poll(&source, &mut batch),
            "a record was fetched while held"
        );
    }
    assert_eq!(
        *seen.revoked.lock().unwrap(),
        0,
        "the member lost its partition"
    );
    source.hold(false);
    let released = std::time::Instant::now();
    while batch.len() < 50 && released.elapsed() < Duration::from_secs(30) {
        poll(&source, &mut batch);
    }
    assert_eq!(batch.len(), 50, "every record read once released");
    assert_eq!(*seen.revoked.lock().unwrap(), 0);
}
