//! Exactly-once: outputs, dead letters and input offsets are committed in
//! one Kafka transaction. A transaction Kafka refuses is aborted (or its
//! producer replaced) and every partition is read again from its last
//! commit: a broker restarting is routine and must not stop the pipeline.

use super::{Delivery, Output, Positions, Reread};
use crate::kafka::{BatchAck, Committer, Producer, TopicPartition, TransactionError};
use crate::ops::Telemetry;
use crate::ops::events::{Recovery, TransactionCommitted};
use anyhow::anyhow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Aborted transactions in a row before the pipeline stops (a record the
/// broker always refuses, say, one larger than the topic's
/// `max.message.bytes`).
const MAX_ABORTS_IN_ROW: u32 = 10;

pub struct ExactlyOnce {
    positions: Positions,
    /// Next offset per partition processed in the open transaction.
    offsets: BTreeMap<TopicPartition, i64>,
    /// Transactions aborted since the last commit.
    aborts_in_row: u32,
    /// The open transaction failed and must be aborted before anything
    /// more is produced.
    poisoned: Option<TransactionError>,
    telemetry: Arc<Telemetry>,
}

impl ExactlyOnce {
    pub fn new(telemetry: Arc<Telemetry>) -> ExactlyOnce {
        ExactlyOnce {
            positions: Positions::default(),
            offsets: BTreeMap::new(),
            aborts_in_row: 0,
            poisoned: None,
            telemetry,
        }
    }

    fn commit_transaction<P: Producer>(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
    ) -> anyhow::Result<Reread> {
        let offsets: Vec<(TopicPartition, i64)> =
            std::mem::take(&mut self.offsets).into_iter().collect();
        let started = Instant::now();
        let committed = {
            let _slow = self.telemetry.health.waiting();
            out.producer.commit_transaction(&offsets, consumer)
        };
        match committed {
            Ok(()) => {
                self.telemetry.emit(TransactionCommitted {
                    took: started.elapsed(),
                });
                self.aborts_in_row = 0;
                for (tp, next) in &offsets {
                    self.positions.restart_at(tp, *next);
                }
                Ok(Reread {
                    committed: offsets,
                    ..Reread::default()
                })
            }
            Err(e) => self.abort(out, consumer, e),
        }
    }

    /// Aborts the open transaction (replacing the producer when it cannot
    /// go on) and rewinds every partition to its last commit, after a
    /// back-off: a broker that refuses now may accept soon. The loop holds
    /// processing meanwhile but keeps polling the consumer (its partitions
    /// paused), so a long back-off never costs the group membership
    /// (`max.poll.interval.ms`).
    fn abort<P: Producer>(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        e: TransactionError,
    ) -> anyhow::Result<Reread> {
        self.aborts_in_row += 1;
        if self.aborts_in_row > MAX_ABORTS_IN_ROW {
            return Err(anyhow!(e).context(format!(
                "{MAX_ABORTS_IN_ROW} transactions in a row were aborted; stopping so the failure is seen"
            )));
        }
        let pause = Duration::from_millis(250 << self.aborts_in_row.min(7));
        let mut replace = !matches!(
            e,
            TransactionError::Abortable(_) | TransactionError::RecordRefused { .. }
        );
        self.telemetry.emit(Recovery::TransactionAborted {
            error: &e,
            replace_producer: replace,
            in_a_row: self.aborts_in_row,
            pause,
        });
        let telemetry = self.telemetry.clone();
        let _slow = telemetry.health.waiting();
        if replace {
            out.replace()?;
        } else if let Err(e) = out.producer.abort_and_begin() {
            tracing::warn!(error = %e, "aborting failed; replacing the producer");
            out.replace()?;
            replace = true;
        }
        // A new producer settled the last transaction, perhaps by
        // committing it: only the group knows where reading starts again.
        Ok(Reread {
            partitions: self.rewind(consumer, replace)?,
            hold_until: Some(Instant::now() + pause),
            committed: Vec::new(),
        })
    }

    fn rewind(
        &mut self,
        consumer: &dyn Committer,
        from_group: bool,
    ) -> anyhow::Result<Vec<TopicPartition>> {
        self.offsets.clear();
        self.positions.rewind(consumer, from_group)
    }
}

impl<P: Producer> Delivery<P> for ExactlyOnce {
    fn transactional(&self) -> bool {
        true
    }

    fn assigned(&mut self, tp: &TopicPartition) {
        self.positions.assigned(tp);
    }

    fn reading(&mut self, tp: &TopicPartition, offset: i64) {
        self.positions.reading(tp, offset);
    }

    fn produced(&mut self, tp: &TopicPartition, _first: i64, next: i64, _ack: Arc<BatchAck>) {
        self.offsets.insert(tp.clone(), next);
    }

    fn poison(&mut self, error: TransactionError) {
        self.poisoned.get_or_insert(error);
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn commit(&mut self, out: &mut Output<P>, consumer: &dyn Committer) -> anyhow::Result<Reread> {
        if let Some(e) = self.poisoned.take() {
            self.abort(out, consumer, e)
        } else if !self.offsets.is_empty() {
            self.commit_transaction(out, consumer)
        } else {
            Ok(Reread::default())
        }
    }

    /// The open transaction holds the processed records of every
    /// partition; committing it keeps them. Should it be aborted, only the
    /// partitions that stay are rewound.
    fn revoking(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        partitions: &[TopicPartition],
    ) -> anyhow::Result<Reread> {
        for tp in partitions {
            self.positions.revoked(tp);
        }
        self.commit(out, consumer)
    }

    fn producer_failed(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
    ) -> anyhow::Result<Reread> {
        self.telemetry.emit(Recovery::ProducerFailed);
        out.replace()?;
        Ok(Reread {
            partitions: self.rewind(consumer, true)?,
            ..Reread::default()
        })
    }

    fn drain(
        &mut self,
        out: &mut Output<P>,
        consumer: &dyn Committer,
        _deadline: Instant,
    ) -> anyhow::Result<()> {
        self.commit(out, consumer).map(drop)
    }

    /// Whatever the open transaction holds is read again by whoever owns
    /// the partitions next.
    fn abandon(&mut self, out: &mut Output<P>) {
        let t = Instant::now();
        let _ = out.producer.abort_transaction();
        tracing::debug!(took = ?t.elapsed(), "transaction aborted");
    }
}
