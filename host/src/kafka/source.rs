//! The consumer: a member of the group with cooperative-sticky assignment,
//! reading each record straight into its partition's batch. Offsets are
//! committed only when the pipeline says so.

use super::queue::{Fetched, PartitionQueue, Wake};
use super::{Delivery, KafkaConfig, TopicPartition};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The group's metadata, which a transaction's offsets are committed with
/// (fencing a zombie of an older generation).
pub struct GroupMetadata(pub(super) ConsumerGroupMetadata);

/// Commits offsets from inside a rebalance callback.
pub trait Committer {
    /// Commits `offsets` (next offset to read, per partition) synchronously.
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError>;
    /// Sends the commit of `offsets` without waiting for the broker's
    /// answer; a refusal is learned later, by
    /// [`Committer::async_commit_refused`].
    fn commit_async(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        self.commit(offsets)
    }
    /// Whether the broker refused a commit sent since the last call.
    fn async_commit_refused(&self) -> bool {
        false
    }
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
    /// A commit was refused since the pipeline last asked.
    commit_refused: AtomicBool,
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
        commit(self.0, offsets, CommitMode::Sync)
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
    mode: CommitMode,
) -> Result<(), KafkaError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))?;
    }
    consumer.commit(&tpl, mode)
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

    /// The answer to a commit, served on the consumer's queue.
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // A rebalance under way (a stale generation) or a coordinator
            // moving: the offsets are committed again at the next commit,
            // or by the revocation that follows.
            tracing::warn!(error = %e, "committing offsets failed; retrying at the next commit");
            self.commit_refused.store(true, Ordering::Release);
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

/// The consumer. Each assigned partition's records are read from its own
/// queue in batches ([`Source::read`]); the consumer's queue serves
/// rebalances, errors and statistics ([`Source::poll_many`]), and the
/// records of a partition not yet split from it.
pub struct Source {
    /// Dropped in this order: every queue handle before the client.
    queues: Mutex<BTreeMap<TopicPartition, PartitionQueue>>,
    /// A handle on the consumer's queue, for its length.
    consumer_queue: ConsumerQueue,
    consumer: Arc<BaseConsumer<SourceContext>>,
    wake: Arc<Wake>,
}

/// Our handle on the consumer's queue.
struct ConsumerQueue(*mut rdkafka::bindings::rd_kafka_queue_t);

// SAFETY: librdkafka's queue handles may be used from any thread.
unsafe impl Send for ConsumerQueue {}
unsafe impl Sync for ConsumerQueue {}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        // SAFETY: our handle, destroyed once (before the client: field order).
        unsafe { rdkafka::bindings::rd_kafka_queue_destroy(self.0) }
    }
}

impl Source {
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        topics: &[String],
        delivery: Delivery,
        handler: Arc<dyn RebalanceHandler>,
    ) -> Result<Source, KafkaError> {
        let client = config.consumer_config(group, delivery);
        let mut consumer: BaseConsumer<SourceContext> = client
            .create_with_context(SourceContext {
                handler,
                generation: AtomicU64::new(0),
                token_source: config.token_source.clone(),
                commit_refused: AtomicBool::new(false),
            })
            .map_err(super::secrets::redact_error)?;
        let wake = Arc::new(Wake::default());
        let waker = wake.clone();
        consumer.set_nonempty_callback(move || waker.notify());
        // SAFETY: a live consumer with a group: a new handle on its queue.
        let queue = unsafe {
            rdkafka::bindings::rd_kafka_queue_get_consumer(consumer.client().native_ptr())
        };
        if queue.is_null() {
            return Err(KafkaError::ClientCreation(
                "librdkafka gave no consumer queue".into(),
            ));
        }
        // Owned at once: on an early return it is destroyed before the
        // consumer (locals drop in reverse order).
        let consumer_queue = ConsumerQueue(queue);
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source {
            consumer_queue,
            consumer: Arc::new(consumer),
            queues: Mutex::new(BTreeMap::new()),
            wake,
        })
    }

    /// Serves the consumer's queue without waiting: rebalances happen in
    /// here, and records of partitions not yet split from it are taken,
    /// up to `max`, into `into`. Says whether the queue was drained (a
    /// partition's own queue is read only then, so that its records
    /// still here come first), and the first consumer error met.
    pub fn poll_many<'c>(&'c self, max: usize, into: &mut Vec<Polled<'c>>) -> PollRound {
        let mut error = None;
        // A served event (a rebalance, an error) ends a poll as if nothing
        // were queued: go on while the queue holds anything, within a bound.
        let mut rounds = 0;
        while into.len() < max && rounds < 64 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => into.push(Polled {
                    generation: self.consumer.context().generation.load(Ordering::Acquire),
                    message,
                }),
                Some(Err(e)) => {
                    error.get_or_insert(e);
                    rounds += 1;
                }
                None if self.queued() > 0 => rounds += 1,
                None => break,
            }
        }
        PollRound {
            drained: self.queued() == 0,
            error,
        }
    }

    fn queued(&self) -> usize {
        // SAFETY: our live handle.
        unsafe { rdkafka::bindings::rd_kafka_queue_length(self.consumer_queue.0) }
    }

    /// Splits the records of `tp` (just assigned) into a queue of their
    /// own, read by [`Source::read`]. Each assignment is split anew.
    pub fn split(&self, tp: &TopicPartition) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match PartitionQueue::split(&self.consumer, tp, &self.wake) {
            Some(q) => {
                queues.insert(tp.clone(), q);
            }
            None => {
                queues.remove(tp);
                tracing::warn!(
                    "no queue of its own for {tp}: its records come through the consumer's"
                );
            }
        }
    }

    /// Takes up to `max` of `tp`'s records already fetched, without
    /// waiting, handing each to `each` in offset order; how many.
    pub fn read(
        &self,
        tp: &TopicPartition,
        max: usize,
        each: impl FnMut(Fetched<'_>),
    ) -> Result<usize, KafkaError> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get_mut(tp) {
            Some(q) if max > 0 => q.read(&tp.topic, max, each),
            _ => Ok(0),
        }
    }

    /// Waits up to `timeout` for anything new in the consumer's queue or
    /// a partition's (since the last wait).
    pub fn wait(&self, timeout: Duration) {
        self.wake.wait(timeout);
    }
}

/// What a round of [`Source::poll_many`] found besides records.
pub struct PollRound {
    /// Nothing is left in the consumer's queue.
    pub drained: bool,
    pub error: Option<KafkaError>,
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

    /// The record, to append to a batch.
    pub fn fetched(&self) -> Fetched<'_> {
        // SAFETY: a consumed message without error, live while `self` is.
        unsafe { Fetched::of(self.message.ptr(), self.message.topic()) }
    }
}

impl Committer for Source {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        commit(&self.consumer, offsets, CommitMode::Sync)
    }

    fn commit_async(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        commit(&self.consumer, offsets, CommitMode::Async)
    }

    fn async_commit_refused(&self) -> bool {
        self.consumer
            .context()
            .commit_refused
            .swap(false, Ordering::AcqRel)
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
