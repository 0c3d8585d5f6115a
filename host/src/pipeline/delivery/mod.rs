//! When outputs and input offsets become final: one strategy per delivery
//! mode, behind [`Delivery`], over the narrow [`Producer`] and
//! [`Committer`] traits, so that commits, aborts, rewinds and rebalances
//! are tested without a broker (see `fakes`).

mod at_least_once;
mod exactly_once;
#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use at_least_once::AtLeastOnce;
pub use exactly_once::ExactlyOnce;

use crate::kafka::{BatchAck, Committer, Producer, TopicPartition, TransactionError};
use anyhow::{Context as _, anyhow};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Producer replacements within `REPLACE_WINDOW` before the pipeline stops.
const MAX_REPLACED: usize = 5;
const REPLACE_WINDOW: Duration = Duration::from_secs(300);

/// What the pipeline asks of a delivery mode. Every call comes from the
/// pipeline's loop, or from a rebalance callback on the loop's thread.
pub trait Delivery<P: Producer>: Send {
    /// Whether the outputs of a record, once queued, can still be taken
    /// back (they are in an open transaction).
    fn transactional(&self) -> bool;
    /// `tp` is ours now.
    fn assigned(&mut self, tp: &TopicPartition);
    /// A record of `tp` was read at `offset` into an empty batch: should
    /// nothing of `tp` be final yet, reading starts again there.
    fn reading(&mut self, tp: &TopicPartition, offset: i64);
    /// The records `first..next` of `tp` were processed and their outputs
    /// queued; `ack` learns when Kafka answers for them.
    fn produced(&mut self, tp: &TopicPartition, first: i64, next: i64, ack: Arc<BatchAck>);
    /// The open transaction failed: nothing more is produced until it is
    /// aborted, at the next [`Delivery::commit`].
    fn poison(&mut self, _error: TransactionError) {}
    fn is_poisoned(&self) -> bool {
        false
    }
    /// Commits what is safe to commit now.
    fn commit(&mut self, out: &mut Output<P>, consumer: &dyn Committer) -> anyhow::Result<Reread>;
    /// `partitions` are being taken away: what was processed of them is
    /// committed now, since their next owner starts from the group's
    /// committed offsets.
    fn revoking(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        partitions: &[TopicPartition],
    ) -> anyhow::Result<Reread>;
    /// The producer hit a fatal error: it is replaced, and what was not
    /// final is read again.
    fn producer_failed(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
    ) -> anyhow::Result<Reread>;
    /// Shutdown: delivers and commits what was processed, by `deadline`.
    fn drain(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        deadline: Instant,
    ) -> anyhow::Result<()>;
    /// The pipeline failed: nothing more is committed, and what is open is
    /// thrown away for the partitions' next owner to read again.
    fn abandon(&mut self, _out: &mut Output<P>) {}
}

/// What the loop does after a commit: the partitions whose batches are
/// thrown away because the consumer was moved back to read them again,
/// and until when nothing is processed.
#[derive(Debug, Default, PartialEq)]
pub struct Reread {
    pub partitions: Vec<TopicPartition>,
    pub hold_until: Option<Instant>,
    /// Partitions whose input is final up to (not including) an offset:
    /// outputs delivered (and, exactly-once, committed).
    pub committed: Vec<(TopicPartition, i64)>,
}

/// A maker of producers.
type MakeProducer<P> = Box<dyn FnMut() -> anyhow::Result<P> + Send>;

/// The producer the pipeline writes through, replaced when it cannot go
/// on, but not so often that two processes fencing each other go unseen.
pub struct Output<P> {
    pub producer: P,
    make: MakeProducer<P>,
    replaced: VecDeque<Instant>,
    /// Named when replacing keeps failing.
    transactional_id: String,
}

impl<P: Producer> Output<P> {
    pub fn new(mut make: MakeProducer<P>, transactional_id: &str) -> anyhow::Result<Output<P>> {
        Ok(Output {
            producer: make()?,
            make,
            replaced: VecDeque::new(),
            transactional_id: transactional_id.to_owned(),
        })
    }

    /// Replaces the producer. A new transactional producer fences the old
    /// one and settles its open transaction.
    pub fn replace(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        self.replaced
            .retain(|t| now.duration_since(*t) < REPLACE_WINDOW);
        if self.replaced.len() >= MAX_REPLACED {
            return Err(anyhow!(
                "the producer was replaced {MAX_REPLACED} times within {REPLACE_WINDOW:?}; if another process uses transactional id '{}', give each replica its own (--transactional-id, default <group>-<hostname>)",
                self.transactional_id
            ));
        }
        self.replaced.push_back(now);
        self.producer = (self.make)()?;
        Ok(())
    }
}

/// Per partition, the first offset read whose outputs are not final yet:
/// where reading starts again when Kafka makes the pipeline throw them
/// away. `None` until a record is read (reading then starts where the
/// group's commit says).
#[derive(Debug, Default)]
struct Positions(BTreeMap<TopicPartition, Option<i64>>);

impl Positions {
    fn assigned(&mut self, tp: &TopicPartition) {
        self.0.insert(tp.clone(), None);
    }

    fn revoked(&mut self, tp: &TopicPartition) {
        self.0.remove(tp);
    }

    fn reading(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.0.get_mut(tp) {
            p.get_or_insert(offset);
        }
    }

    fn restart_at(&mut self, tp: &TopicPartition, next: i64) {
        if let Some(p) = self.0.get_mut(tp) {
            *p = Some(next);
        }
    }

    /// Moves every partition back to where its outputs stopped being
    /// final — or, after a new transactional producer settled a commit
    /// whose outcome this process does not know, to the group's committed
    /// offsets — and says which partitions to throw the batches of away.
    fn rewind(
        &mut self,
        consumer: &dyn Committer,
        from_group: bool,
    ) -> anyhow::Result<Vec<TopicPartition>> {
        let partitions: Vec<TopicPartition> = self.0.keys().cloned().collect();
        if from_group {
            let committed = consumer
                .committed(&partitions)
                .context("reading the group's committed offsets to start again from them")?;
            for (tp, next) in committed {
                // No commit yet: where reading started stays right.
                if let Some(next) = next {
                    self.restart_at(&tp, next);
                }
            }
        }
        for (tp, next) in &self.0 {
            if let Some(next) = next {
                consumer
                    .seek(tp, *next)
                    .with_context(|| format!("rewinding {tp} to offset {next}"))?;
            }
        }
        Ok(partitions)
    }
}
