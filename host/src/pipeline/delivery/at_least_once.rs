//! At-least-once: an input offset is committed once every output of the
//! records before it is acknowledged. A batch Kafka did not take whole is
//! read and processed again.

use super::{Delivery, Output, Positions, Reread};
use crate::kafka::{BatchAck, Committer, Producer, TopicPartition};
use crate::ops::Telemetry;
use crate::ops::events::Recovery;
use anyhow::Context as _;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct AtLeastOnce {
    positions: Positions,
    acks: BTreeMap<TopicPartition, Acks>,
    /// How long a revocation waits for outputs to be acknowledged.
    grace: Duration,
    telemetry: Arc<Telemetry>,
}

/// One partition's batches produced and not yet acknowledged, and the
/// offset safe to commit.
#[derive(Default)]
struct Acks {
    /// (first offset, next offset, acknowledgements) per batch, in order.
    in_flight: VecDeque<(i64, i64, Arc<BatchAck>)>,
    /// The next offset to read that is safe to commit.
    committable: Option<i64>,
    /// `committable` moved since it was last committed.
    changed: bool,
}

impl Acks {
    /// Moves acknowledged batches to the committable offset. On a batch
    /// Kafka did not take whole, returns where reading starts again and
    /// why: nothing after it may be committed.
    fn settle(
        &mut self,
        positions: &mut Positions,
        tp: &TopicPartition,
    ) -> Result<(), (i64, String)> {
        while let Some((first, next, ack)) = self.in_flight.front() {
            if !ack.is_done() {
                break;
            }
            if let Some(e) = ack.failure() {
                return Err((*first, e));
            }
            self.committable = Some(*next);
            self.changed = true;
            positions.restart_at(tp, *next);
            self.in_flight.pop_front();
        }
        Ok(())
    }
}

impl AtLeastOnce {
    pub fn new(grace: Duration, telemetry: Arc<Telemetry>) -> AtLeastOnce {
        AtLeastOnce {
            positions: Positions::default(),
            acks: BTreeMap::new(),
            grace,
            telemetry,
        }
    }
}

impl AtLeastOnce {
    /// Moves every partition's acknowledged batches to its committable
    /// offset, rewinding a partition whose batch Kafka did not take whole;
    /// the offsets to commit: those that moved since the last commit, or
    /// all with `every`.
    fn settle(
        &mut self,
        consumer: &dyn Committer,
        every: bool,
    ) -> anyhow::Result<(Reread, Vec<(TopicPartition, i64)>)> {
        let mut reread = Reread::default();
        let mut offsets = Vec::new();
        for (tp, a) in self.acks.iter_mut() {
            if let Err((from, error)) = a.settle(&mut self.positions, tp) {
                self.telemetry.emit(Recovery::BatchRetried {
                    partition: tp,
                    from,
                    error: &error,
                });
                a.in_flight.clear();
                self.positions.restart_at(tp, from);
                consumer
                    .seek(tp, from)
                    .with_context(|| format!("rewinding {tp} to offset {from}"))?;
                reread.partitions.push(tp.clone());
            }
            if (a.changed || every)
                && let Some(next) = a.committable
            {
                offsets.push((tp.clone(), next));
                a.changed = false;
            }
        }
        Ok((reread, offsets))
    }
}

impl<P: Producer> Delivery<P> for AtLeastOnce {
    fn transactional(&self) -> bool {
        false
    }

    fn assigned(&mut self, tp: &TopicPartition) {
        self.positions.assigned(tp);
        self.acks.insert(tp.clone(), Acks::default());
    }

    fn reading(&mut self, tp: &TopicPartition, offset: i64) {
        self.positions.reading(tp, offset);
    }

    fn produced(&mut self, tp: &TopicPartition, first: i64, next: i64, ack: Arc<BatchAck>) {
        if let Some(a) = self.acks.get_mut(tp) {
            a.in_flight.push_back((first, next, ack));
        }
    }

    /// Commits the offsets acknowledged since the last commit. A batch
    /// Kafka did not take whole is read and processed again: a refusal
    /// that is the record's doing (learned from the delivery report) then
    /// dead-letters that record before any of its outputs is queued; a
    /// passing failure is simply retried. Outputs Kafka already
    /// acknowledged stay (at-least-once cannot take them back).
    fn commit(&mut self, _out: &mut Output<P>, consumer: &dyn Committer) -> anyhow::Result<Reread> {
        // A commit the broker refused since the last one: every partition's
        // offset goes again.
        let resend = consumer.async_commit_refused();
        let (mut reread, offsets) = self.settle(consumer, resend)?;
        reread.committed.clone_from(&offsets);
        // Not waited for: the pipeline goes on while the broker answers,
        // as a refusal only delays the commit (at-least-once).
        if let Err(e) = consumer.commit_async(&offsets) {
            tracing::warn!(error = %e, "committing offsets failed; retrying at the next commit");
            for (tp, _) in &offsets {
                if let Some(a) = self.acks.get_mut(tp) {
                    a.changed = true;
                }
            }
        }
        Ok(reread)
    }

    fn revoking(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        partitions: &[TopicPartition],
    ) -> anyhow::Result<Reread> {
        let flushed = out.producer.flush(self.grace);
        let mut offsets = Vec::new();
        for tp in partitions {
            if let Some(mut a) = self.acks.remove(tp) {
                // A batch Kafka refused is read again by the next owner.
                let _ = a.settle(&mut self.positions, tp);
                if let Some(next) = a.committable {
                    offsets.push((tp.clone(), next));
                }
            }
            self.positions.revoked(tp);
        }
        // A partition revoked because this member was already fenced out
        // cannot commit; its next owner repeats what was not committed.
        if let Err(e) = consumer.commit(&offsets) {
            tracing::warn!(error = %e, "committing offsets of revoked partitions failed; their next owner reads them again");
        }
        flushed.context("delivering the outputs of revoked partitions")?;
        Ok(Reread::default())
    }

    fn producer_failed(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
    ) -> anyhow::Result<Reread> {
        self.telemetry.emit(Recovery::ProducerFailed);
        out.replace()?;
        for a in self.acks.values_mut() {
            a.in_flight.clear();
        }
        Ok(Reread {
            partitions: self.positions.rewind(consumer, false)?,
            ..Reread::default()
        })
    }

    fn drain(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        out.producer
            .flush(deadline.saturating_duration_since(Instant::now()))
            .context("delivering the last outputs")?;
        // Waited for: the group is left next. Refused, the records after
        // the group's last commit are read again by the next owner.
        let (_, offsets) = self.settle(consumer, true)?;
        if let Err(e) = consumer.commit(&offsets) {
            tracing::warn!(error = %e, "committing the last offsets failed; the partitions' next owner reads them again");
        }
        Ok(())
    }
}
