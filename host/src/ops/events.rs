//! What happens in a run, one type per event. `emit` writes the event's
//! log line and counts it in the metrics, so the two cannot drift apart
//! (in the spirit of vector's `internal_events`). Nothing else in the host
//! counts into [`Metrics`].

use super::Metrics;
use std::fmt::Display;
use std::time::Duration;

/// Something worth a log line, a metric, or both.
pub trait Event {
    fn emit(self, metrics: &Metrics);
}

/// The schema registry, asked once at start, did not answer (records wait
/// for it, then are dead-lettered as `registry_unavailable`).
pub struct RegistryUnreachable<'a> {
    pub registry: &'a str,
    pub error: &'a str,
}

impl Event for RegistryUnreachable<'_> {
    fn emit(self, m: &Metrics) {
        tracing::error!(
            error = self.error,
            "{} did not answer at start: check --registry-url (WASMPIPE_REGISTRY_URL), the \
             credentials and the network; records that need a schema wait --registry-retry \
             for it, then are dead-lettered as registry_unavailable",
            self.registry
        );
        m.registry_unreachable();
    }
}

/// A batch of a partition ran through the chain.
pub struct BatchRun<'a> {
    pub topic: &'a str,
    pub records: usize,
    pub took: Duration,
}

impl Event for BatchRun<'_> {
    fn emit(self, m: &Metrics) {
        tracing::trace!(topic = self.topic, records = self.records, took = ?self.took, "batch run");
        m.batch(self.records, self.took.as_secs_f64());
        m.consumed(self.topic, self.records as u64);
    }
}

/// A record failed in a plugin, or its output was refused by Kafka: `kind`
/// and `reason` as the dead letter's `wasmpipe.error.*` headers say.
pub struct RecordFailed<'a> {
    pub plugin: &'a str,
    pub kind: &'a str,
    pub reason: &'a str,
}

impl Event for RecordFailed<'_> {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            plugin = self.plugin,
            kind = self.kind,
            reason = self.reason,
            "record failed"
        );
        m.transform_error(self.plugin, self.kind, self.reason);
    }
}

/// A record that failed, as the log names it.
#[derive(Clone, Copy)]
pub struct Failed<'a> {
    /// `topic/partition@offset` of the record.
    pub record: &'a str,
    pub plugin: &'a str,
    pub kind: &'a str,
    pub reason: &'a str,
    pub error: &'a str,
}

/// A failed record written to the dead-letter topic.
pub struct RecordDeadLettered<'a> {
    pub failed: Failed<'a>,
    pub dlq: &'a str,
    /// What the dead letter left out to fit the topic.
    pub dropped: Option<&'a str>,
}

impl Event for RecordDeadLettered<'_> {
    fn emit(self, m: &Metrics) {
        let f = self.failed;
        tracing::warn!(
            record = f.record,
            plugin = f.plugin,
            kind = f.reason,
            error = f.error,
            dlq = self.dlq,
            dropped = self.dropped,
            "record dead-lettered"
        );
        m.dead_lettered(f.plugin, f.kind, f.reason);
    }
}

/// A failed record dropped (`--on-error skip`).
pub struct RecordSkipped<'a>(pub Failed<'a>);

impl Event for RecordSkipped<'_> {
    fn emit(self, m: &Metrics) {
        let f = self.0;
        tracing::warn!(
            record = f.record,
            plugin = f.plugin,
            kind = f.reason,
            error = f.error,
            "record skipped"
        );
        m.skipped(f.plugin, f.kind, f.reason);
    }
}

/// Outputs of a batch queued to the producer, per destination topic.
pub struct OutputsProduced<'a> {
    pub per_topic: &'a [(&'a str, u64)],
}

impl Event for OutputsProduced<'_> {
    fn emit(self, m: &Metrics) {
        for (topic, n) in self.per_topic {
            m.produced(topic, *n);
        }
    }
}

/// An exactly-once transaction committed.
pub struct TransactionCommitted {
    pub took: Duration,
}

impl Event for TransactionCommitted {
    fn emit(self, m: &Metrics) {
        tracing::trace!(took = ?self.took, "transaction committed");
        m.transaction(self.took.as_secs_f64());
    }
}

/// What was not final is thrown away and processed again.
pub enum Recovery<'a> {
    /// At-least-once: Kafka did not take every output of a batch of
    /// `partition`; it is read again from `from`.
    BatchRetried {
        partition: &'a dyn Display,
        from: i64,
        error: &'a dyn Display,
    },
    /// Exactly-once: the transaction was aborted (and the producer
    /// replaced, if `replace_producer`); every partition restarts from its
    /// last commit after `pause`.
    TransactionAborted {
        error: &'a dyn Display,
        replace_producer: bool,
        in_a_row: u32,
        pause: Duration,
    },
    /// The producer hit a fatal error (logged by the Kafka client): it is
    /// replaced, and every partition restarts from its last acknowledged
    /// batch (at-least-once) or from the group's offsets (exactly-once).
    ProducerFailed,
}

impl Event for Recovery<'_> {
    fn emit(self, m: &Metrics) {
        match self {
            Recovery::BatchRetried {
                partition,
                from,
                error,
            } => {
                tracing::warn!(%partition, from, %error, "kafka did not take every output of a batch; its records are processed again")
            }
            Recovery::TransactionAborted {
                error,
                replace_producer,
                in_a_row,
                pause,
            } => {
                tracing::warn!(%error, replace_producer, in_a_row, "transaction aborted; the records since the last commit are processed again in {pause:?}")
            }
            Recovery::ProducerFailed => {
                tracing::warn!(
                    "the producer hit a fatal error (see the log above); replacing it and processing the records since the last commit again"
                )
            }
        }
        m.recovery();
    }
}

/// Partitions assigned to this member, or taken from it.
pub enum Rebalanced<'a> {
    Assigned(&'a [crate::kafka::TopicPartition]),
    Revoked(&'a [crate::kafka::TopicPartition]),
}

impl Event for Rebalanced<'_> {
    fn emit(self, m: &Metrics) {
        let (outcome, partitions) = match self {
            Rebalanced::Assigned(p) => ("assigned", p),
            Rebalanced::Revoked(p) => ("revoked", p),
        };
        let list: Vec<String> = partitions.iter().map(ToString::to_string).collect();
        tracing::info!(partitions = %list.join(","), "partitions {outcome}");
        m.rebalance(outcome);
    }
}

/// librdkafka's statistics: (topic, partition, lag) of each assigned
/// partition.
pub struct LagReported<'a> {
    pub lags: &'a [(String, i32, i64)],
}

impl Event for LagReported<'_> {
    fn emit(self, m: &Metrics) {
        m.lags(self.lags);
    }
}

/// A plugin set running: loaded at start (`version` 1) or swapped in.
pub struct SetRunning<'a> {
    pub version: u64,
    pub sha256: &'a str,
    /// (name, sha256) of each plugin.
    pub plugins: &'a [(String, String)],
}

impl Event for SetRunning<'_> {
    fn emit(self, m: &Metrics) {
        if self.version > 1 {
            tracing::info!(
                version = self.version,
                sha256 = self.sha256,
                "reload: new plugin set swapped in"
            );
            m.reload("swapped");
        }
        m.plugins(self.plugins);
    }
}

/// The pipeline drained, delivered, committed and left its group.
pub struct PipelineStopped;

impl Event for PipelineStopped {
    fn emit(self, m: &Metrics) {
        tracing::info!(
            consumed = m.total("records_consumed"),
            produced = m.total("records_produced"),
            dead_lettered = m.total("records_dead_lettered"),
            skipped = m.total("records_skipped"),
            "pipeline stopped cleanly"
        );
    }
}

/// A new plugin set refused: the running one stays.
pub struct SetRefused<'a> {
    pub error: &'a dyn Display,
}

impl Event for SetRefused<'_> {
    fn emit(self, m: &Metrics) {
        tracing::error!(error = %self.error, "reload: new plugin set refused; the running set stays");
        m.reload("refused");
    }
}

/// One plugin's state of one input partition: (plugin, topic, partition).
pub type StateOf<'a> = (&'a str, &'a str, i32);

/// A restore is under way: `remaining` changelog offsets are left to read.
pub struct StateRestoring<'a> {
    pub state: StateOf<'a>,
    pub remaining: i64,
}

impl Event for StateRestoring<'_> {
    fn emit(self, m: &Metrics) {
        let (plugin, topic, partition) = self.state;
        tracing::debug!(
            plugin,
            topic,
            partition,
            remaining = self.remaining,
            "restoring state"
        );
        m.restoring(self.state, self.remaining);
    }
}

/// A plugin's state of a partition was restored from its changelog.
pub struct StateRestored<'a> {
    pub state: StateOf<'a>,
    pub records: u64,
    /// The changelog offsets read, `from..to`.
    pub from: i64,
    pub to: i64,
    /// The local store was ahead of the changelog and was rebuilt.
    pub cleared: bool,
    pub took: Duration,
}

impl Event for StateRestored<'_> {
    fn emit(self, m: &Metrics) {
        let (plugin, topic, partition) = self.state;
        tracing::info!(
            plugin,
            topic,
            partition,
            records = self.records,
            from = self.from,
            to = self.to,
            rebuilt = self.cleared,
            took = ?self.took,
            "state restored"
        );
        m.restored(self.state, self.records, self.took.as_secs_f64());
    }
}

/// How big a plugin's store of a partition is, as of its last applied
/// writes.
pub struct StateSize<'a> {
    pub state: StateOf<'a>,
    /// Approximate: overwrites and deletes not yet compacted count.
    pub entries: u64,
    pub disk_bytes: u64,
}

impl Event for StateSize<'_> {
    fn emit(self, m: &Metrics) {
        m.state_size(self.state, self.entries, self.disk_bytes);
    }
}

/// A partition's state is no longer this process's (revoked).
pub struct StateReleased<'a> {
    pub state: StateOf<'a>,
}

impl Event for StateReleased<'_> {
    fn emit(self, m: &Metrics) {
        m.state_released(self.state);
    }
}

/// A batch's state writes were queued to the changelog topics.
pub struct ChangelogWritten {
    pub records: u64,
}

impl Event for ChangelogWritten {
    fn emit(self, m: &Metrics) {
        m.changelog_written(self.records);
    }
}
