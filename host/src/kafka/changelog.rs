//! Plugin state's changelog topics in Kafka: made compacted, with the
//! input's partition count, when absent (and checked when present), and
//! read back into a partition's store — from the store's own checkpoint
//! where it holds one, in full otherwise — up to the end of what is
//! committed, before the partition's first record is run.

use super::{Client, KafkaConfig, MetadataContext, secrets};
use crate::state::changelog::Restore;
use crate::state::{PartitionStore, StateError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Why a changelog could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog topic {topic}: {message}; {fix}")]
    Topic {
        topic: String,
        message: String,
        fix: &'static str,
    },
    #[error(
        "changelog topic {topic} has {found} partitions and the input {expected}: each input \
         partition's state is in the changelog partition of the same number; delete the \
         changelog topic (the state restarts empty) or rename the \
         plugin"
    )]
    Partitions {
        topic: String,
        found: usize,
        expected: usize,
    },
    #[error(
        "changelog topic {topic} has cleanup.policy={policy}: it must be compacted or state is \
         lost as records age out; set cleanup.policy=compact on it"
    )]
    NotCompacted { topic: String, policy: String },
    #[error("reading changelog {topic} partition {partition}: {message}")]
    Read {
        topic: String,
        partition: i32,
        message: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// What [`ensure_topic`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Existed,
}

/// Makes `topic` compacted with `partitions` partitions if it does not
/// exist (the brokers' default replication unless `replication` is
/// given); if it does, checks that it has that many and is compacted.
pub async fn ensure_topic(
    config: &KafkaConfig,
    topic: &str,
    partitions: usize,
    replication: Option<i32>,
    timeout: Duration,
) -> Result<Ensured, ChangelogError> {
    let fail = |message: String, fix| ChangelogError::Topic {
        topic: topic.to_owned(),
        message,
        fix,
    };
    let admin: AdminClient<MetadataContext> = config
        .client_config(Client::Consumer, &[])
        .create_with_context(MetadataContext(config.token_source.clone()))
        .map_err(|e| {
            fail(
                secrets::redact_error(e).to_string(),
                "check the Kafka properties",
            )
        })?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let count = i32::try_from(partitions).unwrap_or(i32::MAX);
    let new = NewTopic::new(
        topic,
        count,
        TopicReplication::Fixed(replication.unwrap_or(-1)),
    )
    .set("cleanup.policy", "compact");
    let created = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| fail(e.to_string(), "check that the brokers are reachable"))?;
    match created.first() {
        Some(Ok(_)) => return Ok(Ensured::Created),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {}
        Some(Err((_, code))) => {
            return Err(fail(
                format!("cannot create it: {code}"),
                "grant this client CREATE on the topic, or create it compacted with the \
                 input's partition count",
            ));
        }
        None => return Err(fail("the brokers answered nothing".into(), "retry")),
    }
    let found = super::partition_count(config, topic, timeout)
        .map_err(|e| fail(format!("{e:#}"), "check that this client may describe it"))?;
    if found != partitions {
        return Err(ChangelogError::Partitions {
            topic: topic.to_owned(),
            found,
            expected: partitions,
        });
    }
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| {
            fail(
                e.to_string(),
                "grant this client DESCRIBE_CONFIGS on the topic",
            )
        })?;
    let policy = match described.first() {
        Some(Ok(resource)) => resource
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .unwrap_or_default(),
        Some(Err(code)) => {
            return Err(fail(
                format!("cannot read its configuration: {code}"),
                "grant this client DESCRIBE_CONFIGS on the topic",
            ));
        }
        None => return Err(fail("the brokers answered nothing".into(), "retry")),
    };
    if !policy.split(',').any(|p| p.trim() == "compact") {
        return Err(ChangelogError::NotCompacted {
            topic: topic.to_owned(),
            policy,
        });
    }
    Ok(Ensured::Existed)
}

/// Bytes one fetch of a restore brings, unless messages may be larger.
const RESTORE_FETCH_BYTES: u64 = 4 << 20;

/// What a restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Changelog records applied.
    pub records: u64,
    /// The offset the store was restored from (0: in full).
    pub from: i64,
    /// The offset it is restored up to (not including).
    pub to: i64,
    /// The local store was ahead of the changelog (the topic was recreated
    /// or truncated) and was emptied first.
    pub cleared: bool,
}

/// Reads `topic`'s `partition` into `store`, from the store's checkpoint
/// to the end of what is committed. `progress` is told, every 10,000
/// records, the next offset to read and the offset the restore reads up
/// to. `timeout` bounds the wait for each record, not the whole restore.
pub fn restore(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    store: &PartitionStore,
    timeout: Duration,
    mut progress: impl FnMut(i64, i64),
) -> Result<Restored, ChangelogError> {
    let read_error = |message: String| ChangelogError::Read {
        topic: topic.to_owned(),
        partition,
        message,
    };
    // librdkafka refuses a fetch.max.bytes below message.max.bytes, which
    // a user may have raised.
    let fetch_max = config
        .properties
        .iter()
        .find(|(k, _)| k == "message.max.bytes")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(RESTORE_FETCH_BYTES, |m| m.max(RESTORE_FETCH_BYTES))
        .to_string();
    let own = [
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "true"),
        ("auto.offset.reset", "earliest"),
        // No group: the changelog is read by assignment, nothing committed.
        ("group.id", "wasmpipe-changelog-restore"),
        // Bounded prefetch, as the pipeline's consumer (librdkafka's
        // defaults would queue up to 64 MiB ahead of the store), without
        // its default second of back-off once the queue drains.
        ("queued.max.messages.kbytes", "4096"),
        // Changelog records are small (a key and a count): bounded by
        // bytes alone, librdkafka would queue its default 100,000 of them,
        // each with a few hundred bytes of its own on top.
        ("queued.min.messages", "10000"),
        ("fetch.max.bytes", fetch_max.as_str()),
        ("fetch.queue.backoff.ms", "10"),
    ];
    let consumer: BaseConsumer<MetadataContext> = config
        .client_config(Client::Consumer, &own)
        .create_with_context(MetadataContext(config.token_source.clone()))
        .map_err(|e| read_error(secrets::redact_error(e).to_string()))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| read_error(format!("{e}; check that the brokers are reachable")))?;
    let mut cleared = false;
    let from = match store.changelog_next()? {
        // Records between the checkpoint and the log's start are gone (the
        // topic was recreated, or records deleted): the local copy cannot
        // be brought up to date, only rebuilt.
        Some(next) if next > high || next < low => {
            store.clear()?;
            cleared = true;
            0
        }
        Some(next) => next,
        None => 0,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from.max(low)))
        .map_err(|e| read_error(e.to_string()))?;
    consumer
        .assign(&tpl)
        .map_err(|e| read_error(e.to_string()))?;
    let mut restore = Restore::new(store);
    let mut waiting = Instant::now();
    progress(from, high);
    let end = loop {
        if from >= high {
            break high;
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            if waiting.elapsed() > timeout {
                return Err(read_error(format!(
                    "no record for {timeout:?} before the end ({} records read, the end is \
                     offset {high}); check that the brokers are reachable",
                    restore.applied
                )));
            }
            continue;
        };
        match polled {
            Ok(message) => {
                waiting = Instant::now();
                restore.record(topic, message.offset(), message.key(), message.payload())?;
                if restore.applied.is_multiple_of(10_000) {
                    progress(message.offset() + 1, high);
                }
            }
            Err(KafkaError::PartitionEOF(_)) => {
                // The position past the last committed record (and any
                // transaction markers after it).
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|p| {
                        p.find_partition(topic, partition)
                            .and_then(|e| e.offset().to_raw())
                    })
                    .unwrap_or(from);
                break position.max(from);
            }
            Err(e) => return Err(read_error(e.to_string())),
        }
    };
    let records = restore.applied;
    restore.finish(end)?;
    progress(end, end);
    Ok(Restored {
        records,
        from,
        to: end,
        cleared,
    })
}
