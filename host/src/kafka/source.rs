//! The consumer: a member of the group with cooperative-sticky assignment,
//! reading each record straight into its partition's batch. Offsets are
//! committed only when the pipeline says so.

use super::{Delivery, KafkaConfig, TopicPartition};
use crate::record::{Batch, LayoutError, RecordParts, TimestampType};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Arc;
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
}

/// What the pipeline does when partitions come and go. Called on the
/// thread that polls, inside `Source::poll`.
pub trait RebalanceHandler: Send + Sync + 'static {
    fn assigned(&self, partitions: &[TopicPartition]);
    /// The partitions are being taken away: commit what was processed of
    /// them now, since their next owner starts from the committed offset.
    fn revoking(&self, partitions: &[TopicPartition], committer: &dyn Committer);
}

pub struct SourceContext {
    handler: Arc<dyn RebalanceHandler>,
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
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka consumer: {reason}");
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
                let revoked = partitions(tpl);
                tracing::info!(partitions = ?revoked.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions revoked");
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
            tracing::info!(partitions = ?assigned.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions assigned");
            self.handler.assigned(&assigned);
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
            // Bounded prefetch: 4 MiB per partition queue and 8 MiB per
            // fetch (librdkafka's defaults are 64 MiB and 50 MiB).
            ("queued.max.messages.kbytes", "4096"),
            ("fetch.max.bytes", "8388608"),
        ];
        let consumer: BaseConsumer<SourceContext> = config
            .client_config(super::Client::Consumer, &own)
            .create_with_context(SourceContext { handler })?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source { consumer })
    }

    /// Waits up to `timeout` for one record and hands it to `route`, which
    /// calls `fill` with the batch of the record's partition (or returns
    /// `false` when the partition is no longer ours). Rebalances happen in
    /// here. Returns the record's partition and offset, or `None`.
    pub fn poll_into(
        &self,
        timeout: Duration,
        route: impl FnOnce(
            &TopicPartition,
            &mut dyn FnMut(&mut Batch) -> Result<bool, LayoutError>,
        ) -> Result<bool, LayoutError>,
    ) -> Result<Option<(TopicPartition, i64)>, KafkaError> {
        let message = match self.consumer.poll(timeout) {
            None => return Ok(None),
            Some(m) => m?,
        };
        let tp = TopicPartition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
        };
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
        let headers = message.headers();
        let mut fill = |batch: &mut Batch| {
            let all = headers
                .map(|h| h.iter())
                .into_iter()
                .flatten()
                .map(|h| (h.key, h.value));
            batch.push_parts(parts, all).map(|()| true)
        };
        match route(&tp, &mut fill) {
            Ok(true) => Ok(Some((tp, message.offset()))),
            // A record of a partition no longer ours: its next owner reads it.
            Ok(false) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "record {tp}@{} does not fit a batch", message.offset());
                Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::MessageSizeTooLarge,
                ))
            }
        }
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
}

impl Source {
    /// Leaves the group: revokes the assignment (through the handler) and
    /// stops fetching.
    pub fn leave(&self) {
        self.consumer.unsubscribe();
        // Serve the revocation callback that unsubscribing triggers.
        let _ = self.consumer.poll(Duration::from_millis(100));
    }
}
