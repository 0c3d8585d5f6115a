//! The consumer: a member of the group with cooperative-sticky assignment,
//! reading each record straight into its partition's batch. Offsets are
//! committed only when the pipeline says so.

use super::{Delivery, KafkaConfig, TopicPartition};
use crate::record::{Batch, LayoutError, RecordParts, TimestampType};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The group's metadata, which a transaction's offsets are committed with
/// (fencing a zombie of an older generation).
pub struct GroupMetadata(pub(super) ConsumerGroupMetadata);

/// Commits offsets from inside a rebalance callback.
pub trait Committer {
    /// Commits `offsets` (next offset to read, per partition) synchronously.
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError>;
    fn group_metadata(&self) -> Option<GroupMetadata>;
    /// Moves `partition` back to `next` (after an aborted transaction).
    fn seek(&self, partition: &TopicPartition, next: i64) -> Result<(), KafkaError>;
    /// The group's committed offset (next offset to read) of each of
    /// `partitions`, `None` where it has none. Under `read_committed` the
    /// broker answers only once pending transactional offsets are settled.
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaError>;
}

/// What the pipeline does when partitions come and go. Called on the
/// thread that polls, inside `Source::poll`.
pub trait RebalanceHandler: Send + Sync + 'static {
    /// `partitions` are ours from this rebalance `generation` on: a record
    /// polled before it (see [`Polled::generation`]) is not theirs to take.
    fn assigned(&self, partitions: &[TopicPartition], generation: u64);
    /// The partitions are being taken away: commit what was processed of
    /// them now, since their next owner starts from the committed offset.
    fn revoking(&self, partitions: &[TopicPartition], committer: &dyn Committer);
    /// The consumer lag of each assigned partition (topic, partition,
    /// records behind the end), from librdkafka's statistics.
    fn lag(&self, _lags: &[(String, i32, i64)]) {}
}

pub struct SourceContext {
    handler: Arc<dyn RebalanceHandler>,
    /// Rebalances served so far.
    generation: AtomicU64,
    token_source: Option<Arc<dyn super::TokenSource>>,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: e.topic().to_owned(),
            partition: e.partition(),
        })
        .collect()
}

impl ClientContext for SourceContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        super::oauth_token(self.token_source.as_ref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka consumer: {reason}");
    }

    fn stats_raw(&self, json: &[u8]) {
        // Only the fields the lag needs: librdkafka's statistics grow new
        // fields between versions, which a full schema would trip on.
        #[derive(serde::Deserialize)]
        struct Stats {
            #[serde(default)]
            topics: std::collections::BTreeMap<String, TopicStats>,
        }
        #[derive(serde::Deserialize)]
        struct TopicStats {
            #[serde(default)]
            partitions: std::collections::BTreeMap<String, PartitionStats>,
        }
        #[derive(serde::Deserialize)]
        struct PartitionStats {
            #[serde(default)]
            desired: bool,
            /// High watermark and last stable offset (the end a
            /// `read_committed` consumer sees).
            #[serde(default = "unknown")]
            hi_offset: i64,
            #[serde(default = "unknown")]
            ls_offset: i64,
            #[serde(default = "unknown")]
            lo_offset: i64,
            /// The next offset the pipeline reads.
            #[serde(default = "unknown")]
            app_offset: i64,
            #[serde(default = "unknown")]
            committed_offset: i64,
        }
        impl PartitionStats {
            /// Records between the pipeline's position (or, before it read
            /// anything, the group's commit) and the end of the partition.
            /// librdkafka's own `consumer_lag` counts from the consumer's
            /// commits only, which exactly-once makes through the producer.
            fn lag(&self) -> Option<i64> {
                let end = if self.ls_offset >= 0 {
                    self.ls_offset
                } else {
                    self.hi_offset
                };
                if end < 0 {
                    return None;
                }
                let from = if self.app_offset >= 0 {
                    self.app_offset
                } else if self.committed_offset >= 0 {
                    self.committed_offset
                } else if self.lo_offset == end {
                    end
                } else {
                    return None;
                };
                Some((end - from).max(0))
            }
        }
        fn unknown() -> i64 {
            -1
        }
        let stats: Stats = match serde_json::from_slice(json) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "kafka consumer statistics not understood");
                return;
            }
        };
        let mut lags = Vec::new();
        for (topic, t) in stats.topics {
            for (partition, p) in t.partitions {
                // -1 is librdkafka's internal unassigned partition.
                if let Ok(partition) = partition.parse::<i32>()
                    && partition >= 0
                    && p.desired
                    && let Some(lag) = p.lag()
                {
                    lags.push((topic.clone(), partition, lag));
                }
            }
        }
        lags.sort();
        self.handler.lag(&lags);
    }
}

struct ConsumerCommitter<'a>(&'a BaseConsumer<SourceContext>);

impl Committer for ConsumerCommitter<'_> {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        commit(self.0, offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.0.group_metadata().map(GroupMetadata)
    }

    fn seek(&self, partition: &TopicPartition, next: i64) -> Result<(), KafkaError> {
        seek(self.0, partition, next)
    }

    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaError> {
        committed(self.0, partitions)
    }
}

fn committed(
    consumer: &BaseConsumer<SourceContext>,
    partitions: &[TopicPartition],
) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let answer = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
    Ok(answer
        .elements()
        .iter()
        .map(|e| {
            let next = match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            (
                TopicPartition {
                    topic: e.topic().to_owned(),
                    partition: e.partition(),
                },
                next,
            )
        })
        .collect())
}

fn seek(
    consumer: &BaseConsumer<SourceContext>,
    partition: &TopicPartition,
    next: i64,
) -> Result<(), KafkaError> {
    consumer.seek(
        &partition.topic,
        partition.partition,
        Offset::Offset(next),
        Duration::from_secs(10),
    )
}

fn commit(
    consumer: &BaseConsumer<SourceContext>,
    offsets: &[(TopicPartition, i64)],
) -> Result<(), KafkaError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                let revoked = partitions(tpl);
                self.handler
                    .revoking(&revoked, &ConsumerCommitter(consumer));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned = partitions(tpl);
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            self.handler.assigned(&assigned, generation);
        }
    }
}

/// The consumer.
pub struct Source {
    consumer: BaseConsumer<SourceContext>,
}

impl Source {
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        topics: &[String],
        delivery: Delivery,
        handler: Arc<dyn RebalanceHandler>,
    ) -> Result<Source, KafkaError> {
        let isolation = match delivery {
            Delivery::ExactlyOnce => "read_committed",
            Delivery::AtLeastOnce => "read_uncommitted",
        };
        let own = [
            ("group.id", group),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", isolation),
            ("enable.partition.eof", "false"),
            // Bounded prefetch: 2 MiB queued and 4 MiB per fetch
            // (librdkafka's defaults are 64 MiB and 50 MiB).
            ("queued.max.messages.kbytes", "2048"),
            ("fetch.max.bytes", "4194304"),
            // With a small queue the next fetch must not wait librdkafka's
            // default second once the queue has drained below its bound:
            // that second capped a process at ~19k records/s of 0.5 KiB
            // (the bench's mix) while it sat at 10% CPU.
            ("fetch.queue.backoff.ms", "10"),
            // Consumer lag for the metrics.
            ("statistics.interval.ms", "10000"),
        ];
        let mut client = config.client_config(super::Client::Consumer, &own);
        // librdkafka refuses a fetch smaller than `message.max.bytes`: where
        // that was raised (for large records), one fetch holds one record.
        let bytes = |k| client.get(k).and_then(|v| v.parse::<u64>().ok());
        if let (Some(record), Some(fetch)) = (bytes("message.max.bytes"), bytes("fetch.max.bytes"))
            && fetch < record
        {
            client.set("fetch.max.bytes", record.to_string());
        }
        let consumer: BaseConsumer<SourceContext> = client
            .create_with_context(SourceContext {
                handler,
                generation: AtomicU64::new(0),
                token_source: config.token_source.clone(),
            })
            .map_err(super::secrets::redact_error)?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source { consumer })
    }

    /// Waits up to `timeout` for a record, then takes the records already
    /// fetched, up to `max` in all, into `into`. Rebalances happen in here.
    /// A consumer error ends the round and is returned after the records
    /// before it.
    pub fn poll_many<'c>(
        &'c self,
        timeout: Duration,
        max: usize,
        into: &mut Vec<Polled<'c>>,
    ) -> Result<(), KafkaError> {
        let mut wait = timeout;
        while into.len() < max {
            let message = match self.consumer.poll(wait) {
                None => break,
                Some(m) => m?,
            };
            into.push(Polled {
                generation: self.consumer.context().generation.load(Ordering::Acquire),
                message,
            });
            wait = Duration::ZERO;
        }
        Ok(())
    }
}

/// A record of a poll round, still in librdkafka's buffers.
pub struct Polled<'c> {
    message: BorrowedMessage<'c>,
    generation: u64,
}

impl Polled<'_> {
    pub fn topic(&self) -> &str {
        self.message.topic()
    }

    pub fn partition(&self) -> i32 {
        self.message.partition()
    }

    pub fn offset(&self) -> i64 {
        self.message.offset()
    }

    /// The rebalances served before the record was polled.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends the record to `batch`. A header name another client wrote
    /// that is not UTF-8 cannot be given to a plugin as it is: the record
    /// goes in with the name made readable, and its headers as they came
    /// are returned for the pipeline to dead-letter it with.
    pub fn fill(&self, batch: &mut Batch) -> Result<Option<RawHeaders>, LayoutError> {
        let message = &self.message;
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (0, TimestampType::NotAvailable),
            Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
        };
        let parts = RecordParts {
            key: message.key(),
            value: message.payload(),
            timestamp,
            timestamp_type,
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let headers = NativeHeaders::of(message);
        if headers.names_are_utf8() {
            let all = headers
                .iter()
                .map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value));
            batch.push_parts(parts, all)?;
            return Ok(None);
        }
        let names: Vec<_> = headers
            .iter()
            .map(|(name, _)| String::from_utf8_lossy(name))
            .collect();
        let all = names
            .iter()
            .zip(headers.iter())
            .map(|(n, (_, v))| (n.as_ref(), v));
        batch.push_parts(parts, all)?;
        Ok(Some(headers.to_owned()))
    }
}

/// A record's headers as they came from Kafka (names are bytes).
pub type RawHeaders = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A consumed record's headers as librdkafka holds them: names are bytes.
/// (rdkafka's `Headers::get` panics on a name that is not UTF-8.)
struct NativeHeaders<'m> {
    native: *const rdkafka::bindings::rd_kafka_headers_t,
    count: usize,
    _message: std::marker::PhantomData<&'m BorrowedMessage<'m>>,
}

impl<'m> NativeHeaders<'m> {
    fn of(message: &'m BorrowedMessage<'m>) -> NativeHeaders<'m> {
        let mut native = std::ptr::null_mut();
        // SAFETY: the message is live; librdkafka writes the message's
        // headers object (owned by the message) or returns an error.
        let err =
            unsafe { rdkafka::bindings::rd_kafka_message_headers(message.ptr(), &mut native) };
        let count = if err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            && !native.is_null()
        {
            // SAFETY: a headers object librdkafka just returned.
            unsafe { rdkafka::bindings::rd_kafka_header_cnt(native) }
        } else {
            0
        };
        NativeHeaders {
            native,
            count,
            _message: std::marker::PhantomData,
        }
    }

    fn get(&self, index: usize) -> Option<(&'m [u8], Option<&'m [u8]>)> {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0;
        // SAFETY: `native` belongs to the message, which outlives 'm;
        // librdkafka checks the index.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_header_get_all(
                self.native,
                index,
                &mut name,
                &mut value,
                &mut size,
            )
        };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || name.is_null()
        {
            return None;
        }
        // SAFETY: librdkafka returns a NUL-terminated name and a value of
        // `size` bytes (or null), both owned by the message.
        unsafe {
            let name = std::ffi::CStr::from_ptr(name).to_bytes();
            let value = (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast(), size));
            Some((name, value))
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }

    fn names_are_utf8(&self) -> bool {
        self.iter()
            .all(|(name, _)| std::str::from_utf8(name).is_ok())
    }

    fn to_owned(&self) -> RawHeaders {
        self.iter()
            .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }
}

impl Committer for Source {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        commit(&self.consumer, offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.consumer.group_metadata().map(GroupMetadata)
    }

    fn seek(&self, partition: &TopicPartition, next: i64) -> Result<(), KafkaError> {
        seek(&self.consumer, partition, next)
    }

    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaError> {
        committed(&self.consumer, partitions)
    }
}

impl Source {
    /// Pauses (or resumes) fetching for every assigned partition, while
    /// polling goes on: the member stays in the group, serves rebalances,
    /// and its fetch buffers do not grow.
    pub fn hold(&self, paused: bool) {
        let assigned = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "reading the assignment to pause or resume it");
                return;
            }
        };
        let done = if paused {
            self.consumer.pause(&assigned)
        } else {
            self.consumer.resume(&assigned)
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, paused, "pausing or resuming the assigned partitions");
        }
    }

    /// Leaves the group: revokes the assignment (through the handler) and
    /// stops fetching.
    pub fn leave(&self) {
        self.consumer.unsubscribe();
        // Serve the revocation callback that unsubscribing triggers.
        let _ = self.consumer.poll(Duration::from_millis(100));
    }
}
