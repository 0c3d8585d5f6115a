//! The client's own limit: a plain rdkafka consume→produce loop that
//! forwards each record as it is, configured exactly as `wasmpipe run`
//! configures its clients (`KafkaConfig::consumer_config` and
//! `producer_config`, with the same `--kafka` properties), and committing
//! every 100 ms as the wasmpipe contenders are told to:
//!
//! - at-least-once: the input offsets of a commit interval once every
//!   output sent in it is acknowledged (asynchronously, as wasmpipe does,
//!   not by flushing);
//! - exactly-once: outputs and input offsets in one transaction.
//!
//! Run as `contenders rdkafka-loop INPUT OUTPUT GROUP DELIVERY TXN-ID
//! [KEY=VALUE...]`; SIGTERM commits what is acknowledged and stops.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmpipe::kafka::{Delivery, KafkaConfig};

const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Outputs not yet acknowledged, per commit interval.
#[derive(Default)]
struct Acks {
    pending: Mutex<BTreeMap<u64, usize>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, interval: usize) {
        if let Err((e, _)) = result {
            panic!("rdkafka loop: an output was not delivered: {e}");
        }
        let mut pending = self.pending.lock().unwrap();
        let left = pending.get_mut(&(interval as u64)).unwrap();
        *left -= 1;
    }
}

impl Acks {
    fn sent(&self, interval: u64) {
        *self.pending.lock().unwrap().entry(interval).or_default() += 1;
    }

    /// Whether every output of `interval` is acknowledged.
    fn settled(&self, interval: u64) -> bool {
        self.pending
            .lock()
            .unwrap()
            .get(&interval)
            .is_none_or(|&n| n == 0)
    }
}

pub fn run(args: &[String]) {
    let (input, output, group, mode, txn) = (&args[0], &args[1], &args[2], &args[3], &args[4]);
    let properties = args[5..]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let delivery = match mode.as_str() {
        "exactly-once" => Delivery::ExactlyOnce,
        _ => Delivery::AtLeastOnce,
    };
    let eos = delivery == Delivery::ExactlyOnce;
    let config = KafkaConfig {
        brokers: super::kafka::brokers(),
        properties,
        token_source: None,
    };
    let consumer: BaseConsumer = config.consumer_config(group, delivery).create().unwrap();
    consumer.subscribe(&[input]).unwrap();
    let producer: BaseProducer<Acks> = config
        .producer_config(delivery, txn)
        .create_with_context(Acks::default())
        .unwrap();
    if eos {
        producer.init_transactions(TIMEOUT).unwrap();
        producer.begin_transaction().unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone()).unwrap();

    // The next offset of each partition read in the open interval, and the
    // intervals closed but not yet committed (at-least-once).
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut closed: VecDeque<(u64, TopicPartitionList)> = VecDeque::new();
    let mut interval = 0u64;
    let mut last_commit = Instant::now();
    let offsets = |next: &BTreeMap<i32, i64>| {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            tpl.add_partition_offset(input, *p, Offset::Offset(*o))
                .unwrap();
        }
        tpl
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping && let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let mut record =
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(output, interval as usize)
                    .key(m.key().unwrap_or_default())
                    .payload(m.payload().unwrap_or_default())
                    .timestamp(m.timestamp().to_millis().unwrap_or(0));
            if let Some(h) = m.headers() {
                record = record.headers(h.detach());
            }
            producer.context().sent(interval);
            while let Err((_, r)) = producer.send(record) {
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            next.insert(m.partition(), m.offset() + 1);
        }
        producer.poll(Duration::ZERO);
        if (stopping || last_commit.elapsed() >= COMMIT_INTERVAL) && !next.is_empty() {
            let tpl = offsets(&std::mem::take(&mut next));
            if eos {
                let member = consumer.group_metadata().unwrap();
                producer
                    .send_offsets_to_transaction(&tpl, &member, TIMEOUT)
                    .unwrap();
                producer.commit_transaction(TIMEOUT).unwrap();
                producer.begin_transaction().unwrap();
            } else {
                closed.push_back((interval, tpl));
                interval += 1;
            }
            last_commit = Instant::now();
        }
        if stopping {
            producer.flush(TIMEOUT).unwrap();
        }
        while let Some((i, _)) = closed.front()
            && producer.context().settled(*i)
        {
            let (settled, tpl) = closed.pop_front().unwrap();
            producer.context().pending.lock().unwrap().remove(&settled);
            let mode = if stopping {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            consumer.commit(&tpl, mode).unwrap();
        }
        if stopping {
            break;
        }
    }
    if eos {
        producer.commit_transaction(TIMEOUT).unwrap();
    }
}
