//! Plugin state's changelog on the real broker: the topic made compacted
//! with the input's partition count (and refused when it is not), and a
//! partition's store restored from it — committed transactions only, the
//! last write of each key, from the store's checkpoint when it has one.

use crate::kafka::{bootstrap, create_topics, futures_executor, set_topic_config, topic};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;
use wasmpipe::kafka::KafkaConfig;
use wasmpipe::kafka::changelog::{ChangelogError, Ensured, ensure_topic, restore};
use wasmpipe::state::{Entry, PartitionStore, StoreMemory, Stores, Write, Writes};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> KafkaConfig {
    KafkaConfig {
        brokers: bootstrap(),
        ..KafkaConfig::default()
    }
}

fn ensure(topic: &str, partitions: usize) -> Result<Ensured, ChangelogError> {
    futures_executor(ensure_topic(&config(), topic, partitions, None, TIMEOUT))
}

#[test]
fn the_changelog_topic_is_made_compacted_and_checked_when_it_exists() {
    let name = topic("cl-made");
    assert_eq!(ensure(&name, 3).expect("create"), Ensured::Created);
    assert_eq!(ensure(&name, 3).expect("exists"), Ensured::Existed);

    let err = ensure(&name, 2).expect_err("another partition count");
    assert!(
        matches!(
            &err,
            ChangelogError::Partitions {
                found: 3,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&name), "{err}");

    let plain = topic("cl-plain");
    create_topics(&[(&plain, 2)]);
    let err = ensure(&plain, 2).expect_err("not compacted");
    assert!(
        matches!(&err, ChangelogError::NotCompacted { policy, .. } if policy == "delete"),
        "{err}"
    );
    set_topic_config(&plain, "cleanup.policy", "compact,delete");
    assert_eq!(ensure(&plain, 2).expect("compacted"), Ensured::Existed);
}

/// A transactional producer writing changelog records, as the pipeline
/// does under exactly-once.
struct Writer {
    producer: BaseProducer,
    topic: String,
}

impl Writer {
    fn new(topic: &str) -> Writer {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("transactional.id", format!("{topic}-writer"))
            .create()
            .expect("producer");
        producer.init_transactions(TIMEOUT).expect("init");
        Writer {
            producer,
            topic: topic.to_owned(),
        }
    }

    /// Writes `(key, value)` records (`None`: a delete) to `partition` in
    /// one transaction, committed or aborted.
    fn transaction(&self, partition: i32, writes: &[(&str, Option<&str>)], commit: bool) {
        self.producer.begin_transaction().expect("begin");
        for (key, value) in writes {
            let entry = value.map(|v| Entry::encode(v.as_bytes(), None));
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic)
                .partition(partition)
                .key(key.as_bytes());
            if let Some(entry) = &entry {
                record = record.payload(entry.as_slice());
            }
            self.producer
                .send(record)
                .map_err(|(e, _)| e)
                .expect("send");
        }
        // Delivered (and their reports served) before the outcome, as an
        // abort does not serve them itself.
        self.producer.flush(TIMEOUT).expect("flush");
        if commit {
            self.producer.commit_transaction(TIMEOUT).expect("commit");
        } else {
            self.producer.abort_transaction(TIMEOUT).expect("abort");
        }
    }
}

fn contents(store: &PartitionStore) -> BTreeMap<String, String> {
    store
        .range((Bound::Unbounded, Bound::Unbounded))
        .map(|r| {
            let (k, v) = r.expect("read");
            let entry = Entry::decode(&v).expect("entry");
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(entry.value).into_owned(),
            )
        })
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_store_is_restored_from_committed_writes_then_from_its_checkpoint() {
    let name = topic("cl-restore");
    assert_eq!(ensure(&name, 2).expect("create"), Ensured::Created);
    let writer = Writer::new(&name);
    writer.transaction(1, &[("a", Some("1")), ("b", Some("1"))], true);
    writer.transaction(1, &[("a", Some("999")), ("c", Some("999"))], false);
    writer.transaction(1, &[("a", None), ("b", Some("2"))], true);
    // Another partition's state is another store's.
    writer.transaction(0, &[("z", Some("0"))], true);

    let dir = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(dir.path(), StoreMemory::default()).expect("stores");
    let store = stores.partition("count", "in", 1).expect("store");
    let mut seen = Vec::new();
    let first =
        restore(&config(), &name, 1, &store, TIMEOUT, |n, _| seen.push(n)).expect("restore");
    assert_eq!(contents(&store), expected(&[("b", "2")]));
    assert_eq!((first.records, first.from, first.cleared), (4, 0, false));
    // Offsets 0-8: three transactions of two records and a marker each.
    // The store is restored past the last record (7), and past its
    // transaction's marker where the client's position says so.
    assert!((8..=9).contains(&first.to), "{first:?}");
    assert_eq!(store.changelog_next().expect("offset"), Some(first.to));
    // Progress runs from the first offset to read to the end.
    assert_eq!((seen.first(), seen.last()), (Some(&0), Some(&first.to)));

    // The next restore reads only what was written since (offset 9, its
    // marker 10).
    writer.transaction(1, &[("c", Some("3"))], true);
    let second = restore(&config(), &name, 1, &store, TIMEOUT, |_, _| {}).expect("restore");
    assert_eq!((second.records, second.from), (1, first.to));
    assert!((10..=11).contains(&second.to), "{second:?}");
    assert_eq!(contents(&store), expected(&[("b", "2"), ("c", "3")]));

    // A store ahead of its changelog (the topic was recreated) is rebuilt.
    let mut bogus = Writes::new();
    bogus.insert(b"stale".to_vec(), Write::Put(Entry::encode(b"x", None)));
    store.apply_writes(&bogus, 1_000).expect("apply");
    let third = restore(&config(), &name, 1, &store, TIMEOUT, |_, _| {}).expect("restore");
    assert!(third.cleared, "{third:?}");
    assert_eq!((third.records, third.from), (5, 0));
    assert_eq!(contents(&store), expected(&[("b", "2"), ("c", "3")]));
}

#[test]
fn a_record_wasmpipe_did_not_write_stops_the_restore_by_its_offset() {
    let name = topic("cl-foreign");
    ensure(&name, 1).expect("create");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("producer");
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to(&name)
                .key(b"k")
                .payload(b"not an entry"),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer.flush(TIMEOUT).expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(dir.path(), StoreMemory::default()).expect("stores");
    let store = stores.partition("count", "in", 0).expect("store");
    let err = restore(&config(), &name, 0, &store, TIMEOUT, |_, _| {}).expect_err("foreign");
    let text = err.to_string();
    assert!(text.contains(&name) && text.contains("offset 0"), "{text}");
    assert_eq!(store.changelog_next().expect("offset"), None);
}
