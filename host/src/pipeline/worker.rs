//! One assigned partition: its chain instance, the batch being filled,
//! and the run of that batch through the chain to the producer.

use super::Settings;
use super::delivery::Delivery;
use super::failure::{self, DeadLetter};
use super::keyed::{Keeper, Sealed};
use crate::kafka::{
    Fetched, OutRecord, Producer, RawHeaders, SendError, TopicPartition, TransactionError,
};
use crate::ops::Telemetry;
use crate::ops::events::{BatchRun, OutputsProduced, RecordFailed};
use crate::record::Batch;
use crate::runtime::{ChainInstance, ChainRecord, Failure};
use anyhow::bail;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

pub struct Worker {
    pub chain: ChainInstance,
    batch: Batch,
    /// When the first record of `batch` was read.
    opened: Option<Instant>,
    /// Records read before `batch` that a run left when isolating failing
    /// records took its time: run next, one at a time.
    leftover: Option<Leftover>,
    /// Records of `batch` whose header names are not UTF-8, with their
    /// headers as they came: dead-lettered, not transformed.
    malformed: Vec<(u32, RawHeaders)>,
    /// The rebalance generation the partition was assigned in: records
    /// polled before it are not this worker's.
    pub since: u64,
    /// Batches whose state writes wait for their offsets to be final.
    pub sealed: Sealed,
}

/// Records a run left, with the raw headers of those among them whose
/// header names are not UTF-8 (indexes into `batch`).
struct Leftover {
    batch: Batch,
    malformed: Vec<(u32, RawHeaders)>,
}

/// What a run needs besides the worker.
pub struct Context<'a, P: Producer> {
    pub producer: &'a P,
    pub delivery: &'a mut dyn Delivery<P>,
    pub settings: &'a Settings,
    pub telemetry: &'a Telemetry,
    /// The state of plugins that keep state.
    pub keeper: &'a Keeper,
}

impl Worker {
    pub fn new(chain: ChainInstance, since: u64) -> Worker {
        Worker {
            chain,
            batch: Batch::default(),
            opened: None,
            leftover: None,
            malformed: Vec::new(),
            since,
            sealed: Sealed::new(),
        }
    }

    /// The batch to read the next record into; `now` opens it if empty.
    /// Returns whether it was empty.
    fn filling(&mut self, now: Instant) -> (&mut Batch, bool) {
        let empty = self.batch.is_empty();
        self.opened.get_or_insert(now);
        (&mut self.batch, empty)
    }

    /// Appends a record read for this worker's partition `tp` to the batch
    /// (opening it at `now`). One whose header names are not UTF-8 is kept
    /// with its headers as they came, to be dead-lettered.
    pub fn take<P: Producer>(
        &mut self,
        tp: &TopicPartition,
        record: &Fetched<'_>,
        now: Instant,
        delivery: &mut dyn Delivery<P>,
    ) {
        let (batch, opening) = self.filling(now);
        match record.fill(batch) {
            Ok(raw) => {
                if opening {
                    delivery.reading(tp, record.offset());
                }
                if let Some(raw) = raw {
                    self.malformed.push((self.batch.len() as u32 - 1, raw));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "record {tp}@{} does not fit a batch", record.offset())
            }
        }
    }

    /// How many more records the batch takes before it is due.
    pub fn room(&self, settings: &Settings) -> usize {
        if self.batch.data_len() >= settings.batch_bytes {
            return 0;
        }
        settings.batch_records.saturating_sub(self.batch.len())
    }

    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// Whether there is anything to run.
    pub fn is_idle(&self) -> bool {
        self.leftover.is_none() && self.batch.is_empty()
    }

    /// Whether the batch should run now.
    pub fn is_due(&self, settings: &Settings, now: Instant) -> bool {
        self.leftover.is_some()
            || self.batch.len() >= settings.batch_records
            || self.batch.data_len() >= settings.batch_bytes
            || self
                .opened
                .is_some_and(|t| now.saturating_duration_since(t) >= settings.linger)
    }

    /// Throws away what was read and not run: it is read again.
    pub fn reset(&mut self) {
        self.batch.clear();
        self.leftover = None;
        self.malformed.clear();
        self.opened = None;
    }

    /// Runs the batch (or what a run left) through the chain, produces
    /// the outputs, deals with failed records by policy and tells the
    /// delivery mode what was processed.
    pub fn process<P: Producer>(
        &mut self,
        tp: &TopicPartition,
        cx: &mut Context<'_, P>,
    ) -> anyhow::Result<()> {
        if cx.delivery.is_poisoned() {
            return Ok(());
        }
        // Records a cut left run before any read after them, one at a time.
        let isolate = self.leftover.is_some();
        let (batch, malformed) = match &self.leftover {
            Some(l) => (&l.batch, &l.malformed),
            None => (&self.batch, &self.malformed),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let telemetry = cx.telemetry;
        let started = Instant::now();
        // Isolating failing records stops after about one deadline, so a
        // burst of records that each hit it still lets the loop go round,
        // produce and commit between them.
        let until = started + cx.settings.deadline;
        // With state, a record whose output Kafka would refuse fails in
        // the chain, so that its state writes go with it.
        let (producer, keeper) = (cx.producer, cx.keeper);
        let output_topic = cx.settings.output_topic.as_str();
        let admit_to = |topic: &str, bytes| {
            keeper.guard(topic)?;
            producer.admit(topic, bytes)
        };
        let admit = |r: &ChainRecord<'_>| {
            let topic = r.topic.unwrap_or(output_topic);
            let refusal = admit_to(topic, record_bytes(r)).err()?;
            Some(Failure::Refused {
                reason: refusal.reason,
                message: failure::refusal_message(topic, &refusal),
            })
        };
        let out = self.chain.run_admitted(batch, Some(until), isolate, &admit);
        // A store that fails is no record's fault: nothing is produced or
        // dead-lettered, and the run stops so that the partition's records
        // are read again, its state restored from the changelog.
        if let Some((plugin, message)) = out.failures.iter().find_map(|f| match &f.failure {
            Failure::StateUnavailable(message) => Some((&f.plugin, message)),
            _ => None,
        }) {
            bail!(
                "plugin {plugin}'s state store failed on {tp}: {message}; stopping with nothing \
                 produced or dead-lettered from this batch: the partition is read again from its \
                 last commit and its state restored from the changelog (check the disk under \
                 --state-dir)"
            );
        }
        let done = out.done as usize;
        telemetry.emit(BatchRun {
            topic: &tp.topic,
            records: done,
            took: started.elapsed(),
        });
        for f in &out.failures {
            telemetry.emit(RecordFailed {
                plugin: &f.plugin,
                kind: f.failure.kind().as_str(),
                reason: f.failure.label(),
            });
        }
        let last_plugin = self.chain.plugins().last().map(|p| &**p);
        // Outputs per destination topic; a batch has one or a few.
        let mut per_topic: Vec<(&str, u64)> = Vec::new();
        let ack = Arc::new(cx.keeper.ack_for(&self.chain));
        let mut dead: Vec<DeadLetter> = out.failures.iter().map(DeadLetter::from).collect();
        let mut refused: BTreeSet<u32> = BTreeSet::new();
        for (index, _) in malformed.iter().filter(|(i, _)| (*i as usize) < done) {
            refused.insert(*index);
            dead.push(DeadLetter::malformed(*index));
        }
        let output_topic = cx.settings.output_topic.as_str();
        // The outputs of one input record, all admitted before any is
        // queued: a record Kafka refuses loses every output it had.
        let mut group: Vec<ChainRecord<'_>> = Vec::new();
        let mut records = out.records().peekable();
        while let Some(first) = records.next() {
            let origin = first.origin;
            group.clear();
            group.push(first);
            while let Some(r) = records.next_if(|r| r.origin == origin) {
                group.push(r);
            }
            if refused.contains(&origin) {
                continue;
            }
            let admitted = group.iter().try_for_each(|r| {
                let topic = r.topic.unwrap_or(output_topic);
                admit_to(topic, record_bytes(r)).map_err(|refusal| (topic.to_owned(), refusal))
            });
            let mut refusal = admitted.err();
            if refusal.is_none() {
                for (queued, r) in group.iter().enumerate() {
                    let topic = r.topic.unwrap_or(output_topic);
                    let sent = cx.producer.send(
                        OutRecord {
                            topic,
                            key: r.key,
                            value: r.value,
                            headers: r.headers.iter().map(|(n, v)| (n.as_bytes(), v)),
                            timestamp: r.timestamp,
                            partition: None,
                        },
                        &ack,
                    );
                    match sent {
                        Ok(()) => match per_topic.iter_mut().find(|(t, _)| *t == topic) {
                            Some((_, n)) => *n += 1,
                            None => per_topic.push((topic, 1)),
                        },
                        Err(SendError::Refused { topic, refusal: r }) => {
                            if cx.delivery.transactional() && queued > 0 {
                                // Outputs of this record are queued in the
                                // transaction: abort it; processed again,
                                // the record is refused before any is.
                                cx.delivery.poison(TransactionError::RecordRefused {
                                    topic,
                                    reason: r.reason,
                                });
                                return Ok(());
                            }
                            refusal = Some((topic, r));
                            break;
                        }
                        Err(SendError::Transaction(e)) => {
                            // Rewinding reads this batch again.
                            cx.delivery.poison(e);
                            return Ok(());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if let Some((topic, refusal)) = refusal {
                refused.insert(origin);
                telemetry.emit(RecordFailed {
                    plugin: last_plugin.map_or("", |p| p.name.as_str()),
                    kind: "produce",
                    reason: refusal.reason,
                });
                dead.push(DeadLetter::refused(origin, &topic, &refusal, last_plugin));
            }
        }
        drop(records);
        cx.telemetry.emit(OutputsProduced {
            per_topic: &per_topic,
        });
        dead.sort_by_key(|d| d.index);
        for d in &dead {
            let raw = malformed
                .iter()
                .find(|(i, _)| *i == d.index)
                .map(|(_, h)| h);
            if let Err(e) = failure::handle(cx, batch, d, raw, &ack)? {
                cx.delivery.poison(e);
                return Ok(());
            }
        }
        // The chain always runs at least one record of a batch.
        let (Some(first), Some(last)) =
            (batch.get(0), done.checked_sub(1).and_then(|i| batch.get(i)))
        else {
            anyhow::bail!("the chain ran none of a batch of {} records", batch.len());
        };
        let (first, last) = (first.offset(), last.offset());
        cx.keeper.ready(&mut self.chain)?;
        let sealed = cx.keeper.seal(
            tp,
            last + 1,
            &mut self.chain,
            &mut self.sealed,
            cx.producer,
            &ack,
            telemetry,
        );
        match sealed {
            Ok(()) => {}
            Err(SendError::Transaction(e)) => {
                cx.delivery.poison(e);
                return Ok(());
            }
            Err(e) => return Err(anyhow::Error::from(e).context("producing state changes")),
        }
        cx.delivery.produced(tp, first, last + 1, ack);
        let rest = if done < batch.len() {
            Some(Leftover {
                batch: remainder(batch, done)?,
                malformed: malformed
                    .iter()
                    .filter(|(i, _)| *i as usize >= done)
                    .map(|(i, h)| (*i - done as u32, h.clone()))
                    .collect(),
            })
        } else {
            None
        };
        match (isolate, rest) {
            // The rest runs on the next round, before anything read since.
            (false, Some(rest)) => {
                self.batch.clear();
                self.malformed.clear();
                self.leftover = Some(rest);
            }
            (true, rest) => self.leftover = rest,
            (false, None) => {
                self.batch.clear();
                self.malformed.clear();
                self.opened = None;
            }
        }
        Ok(())
    }
}

/// Records `from..` of `batch`, as a batch of their own.
fn remainder(batch: &Batch, from: usize) -> anyhow::Result<Batch> {
    let mut rest = Batch::default();
    for record in batch.iter().skip(from) {
        rest.push(&record)?;
    }
    Ok(rest)
}

/// The bytes Kafka counts of a record: key, value and headers.
fn record_bytes(r: &ChainRecord<'_>) -> usize {
    r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + r.headers
            .iter()
            .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
            .sum::<usize>()
}
