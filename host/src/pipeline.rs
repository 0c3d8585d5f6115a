//! Source → chain → sink, per partition: the one place that joins Kafka and
//! the runtime. Records of a partition are processed in order, in batches
//! bounded by count, bytes and linger; their outputs are produced, their
//! failures dead-lettered, skipped or halted on, and their offsets committed
//! only when that is safe for the delivery mode.

use crate::config::{OnError, RunConfig};
use crate::dead_letter;
use crate::kafka::{
    BatchAck, Committer, Delivery, OutRecord, RawHeaders, RebalanceHandler, SendError, Sink,
    Source, TopicPartition, TransactionError,
};
use crate::ops::{Health, Metrics};
use crate::record::Batch;
use crate::reload::{Loaded, Updates};
use crate::runtime::{Chain, ChainInstance, RecordFailure};
use crate::text::capped;
use anyhow::{Context as _, anyhow};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A dead letter's header taken from its record: the name as kept.
type KeptHeader<'a> = (Cow<'a, [u8]>, Option<&'a [u8]>);

/// Exactly-once: aborted transactions in a row before the pipeline stops
/// (a record the broker always refuses, say, one larger than the topic's
/// `max.message.bytes`).
const MAX_ABORTS_IN_ROW: u32 = 10;
/// Producer replacements within `REPLACE_WINDOW` before the pipeline stops.
const MAX_REPLACED: usize = 5;
const REPLACE_WINDOW: Duration = Duration::from_secs(300);

/// Counts of a run, for logs and tests, and what the ops endpoints serve.
#[derive(Debug, Default)]
pub struct Counters {
    /// The Prometheus metrics.
    pub metrics: Metrics,
    /// Liveness and readiness.
    pub health: Health,
    pub consumed: AtomicU64,
    pub produced: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    pub transactions: AtomicU64,
    /// Transactions aborted and producers replaced after a Kafka failure;
    /// each time, the records since the last commit are processed again.
    pub recoveries: AtomicU64,
    /// Plugin sets swapped in while running.
    pub reloads: AtomicU64,
}

/// One assigned partition: its chain instance, the batch being filled, and
/// (at-least-once) the batches whose outputs are not yet acknowledged.
struct Worker {
    chain: ChainInstance,
    batch: Batch,
    opened: Option<Instant>,
    /// Records read before `batch` that a run left when isolating failing
    /// records took its time: run next, one at a time.
    leftover: Option<Leftover>,
    /// Records of `batch` whose header names are not UTF-8, with their
    /// headers as they came: dead-lettered, not transformed.
    malformed: Vec<(u32, RawHeaders)>,
    /// At-least-once: (first offset, next offset, acknowledgements) of
    /// each batch produced and not yet acknowledged.
    in_flight: VecDeque<(i64, i64, Arc<BatchAck>)>,
    /// Next offset to read that is safe to commit, and whether it changed.
    committable: Option<(i64, bool)>,
    /// The first offset read whose outputs are not final yet (not
    /// acknowledged, or not in a committed transaction): where reading
    /// starts again when Kafka makes the pipeline throw them away.
    rewind_to: Option<i64>,
}

struct State {
    chain: Chain,
    sink: Sink,
    /// Exactly-once: transactions aborted since the last commit.
    aborts_in_row: u32,
    /// Exactly-once: the open transaction failed and must be aborted before
    /// anything more is produced.
    must_abort: Option<TransactionError>,
    /// When producers were replaced, to tell a transient failure from two
    /// processes fencing each other.
    replaced: VecDeque<Instant>,
    workers: BTreeMap<TopicPartition, Worker>,
    /// Exactly-once: next offset per partition processed in the open
    /// transaction.
    txn_offsets: BTreeMap<TopicPartition, i64>,
    /// An error raised inside a rebalance callback, reported by the loop.
    error: Option<anyhow::Error>,
    /// The pipeline failed and is closing: nothing more is committed.
    failed: bool,
    /// Exactly-once: after an abort, nothing is processed before this.
    held_until: Option<Instant>,
}

struct Shared {
    config: RunConfig,
    /// New plugin sets from the reloader, if hot reload is on.
    updates: Option<Arc<Updates>>,
    state: Mutex<State>,
    counters: Arc<Counters>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic in this process's own code while
        // holding it; the state is still the best we have.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RebalanceHandler for Shared {
    fn assigned(&self, partitions: &[TopicPartition]) {
        self.counters.metrics.rebalance("assigned");
        let mut state = self.state();
        for tp in partitions {
            match state.chain.instantiate() {
                Ok(chain) => {
                    state.workers.insert(
                        tp.clone(),
                        Worker {
                            chain,
                            batch: Batch::default(),
                            opened: None,
                            leftover: None,
                            malformed: Vec::new(),
                            in_flight: VecDeque::new(),
                            committable: None,
                            rewind_to: None,
                        },
                    );
                }
                Err(e) => {
                    state.error.get_or_insert(
                        anyhow!(e).context(format!("instantiating the chain for {tp}")),
                    );
                }
            }
        }
    }

    fn revoking(&self, partitions: &[TopicPartition], committer: &dyn Committer) {
        self.counters.metrics.rebalance("revoked");
        let mut state = self.state();
        if state.failed {
            return;
        }
        let result = match self.config.delivery {
            Delivery::AtLeastOnce => self.revoke_at_least_once(&mut state, partitions, committer),
            Delivery::ExactlyOnce => {
                // The open transaction holds the processed records of every
                // partition; committing it keeps them. Should it be
                // aborted, only the partitions that stay are rewound.
                for tp in partitions {
                    state.workers.remove(tp);
                }
                self.commit_transaction(&mut state, committer)
            }
        };
        if let Err(e) = result {
            state
                .error
                .get_or_insert(e.context("committing before partitions were revoked"));
        }
        for tp in partitions {
            // Records read but not processed are read again by the next owner.
            state.workers.remove(tp);
        }
    }

    fn lag(&self, lags: &[(String, i32, i64)]) {
        self.counters.metrics.lags(lags);
    }
}

impl Shared {
    fn revoke_at_least_once(
        &self,
        state: &mut State,
        partitions: &[TopicPartition],
        committer: &dyn Committer,
    ) -> anyhow::Result<()> {
        state.sink.flush(self.config.grace)?;
        let mut offsets = Vec::new();
        for tp in partitions {
            if let Some(w) = state.workers.get_mut(tp) {
                // A batch Kafka refused is read again by the next owner.
                let _ = settle(w);
                if let Some((next, _)) = w.committable {
                    offsets.push((tp.clone(), next));
                }
            }
        }
        // A partition revoked because this member was already fenced out
        // cannot commit; its next owner repeats what was not committed.
        if let Err(e) = committer.commit(&offsets) {
            tracing::warn!(error = %e, "committing offsets of revoked partitions failed; their next owner reads them again");
        }
        Ok(())
    }

    /// Commits the open transaction. When Kafka refuses it, the
    /// transaction is aborted (or the producer replaced) and every partition
    /// is rewound to its last commit, so its records are processed again:
    /// a broker restarting is routine and must not stop the pipeline.
    fn commit_transaction(
        &self,
        state: &mut State,
        consumer: &dyn Committer,
    ) -> anyhow::Result<()> {
        let group = consumer
            .group_metadata()
            .context("the consumer has no group metadata to commit the transaction with")?;
        let offsets: Vec<(TopicPartition, i64)> =
            std::mem::take(&mut state.txn_offsets).into_iter().collect();
        let started = Instant::now();
        let committed = {
            let _slow = self.counters.health.waiting();
            state.sink.commit_transaction(&offsets, group)
        };
        match committed {
            Ok(()) => {
                let took = started.elapsed();
                tracing::trace!(?took, "transaction committed");
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                self.counters.metrics.transaction(took.as_secs_f64());
                state.aborts_in_row = 0;
                for (tp, next) in offsets {
                    if let Some(w) = state.workers.get_mut(&tp) {
                        w.rewind_to = Some(next);
                    }
                }
                Ok(())
            }
            Err(e) => self.abort(state, consumer, e),
        }
    }

    /// Aborts the open transaction (replacing the producer when it cannot
    /// go on) and rewinds every partition to its last commit.
    fn abort(
        &self,
        state: &mut State,
        consumer: &dyn Committer,
        e: TransactionError,
    ) -> anyhow::Result<()> {
        state.aborts_in_row += 1;
        if state.aborts_in_row > MAX_ABORTS_IN_ROW {
            return Err(anyhow!(e).context(format!(
                "{MAX_ABORTS_IN_ROW} transactions in a row were aborted; stopping so the failure is seen"
            )));
        }
        // Back off: a broker that refuses now may accept soon. The loop
        // holds processing meanwhile but keeps polling the consumer (its
        // partitions paused), so a long back-off never costs the group
        // membership (max.poll.interval.ms).
        let pause = Duration::from_millis(250 << state.aborts_in_row.min(7));
        let mut replace = !matches!(
            e,
            TransactionError::Abortable(_) | TransactionError::RecordRefused { .. }
        );
        tracing::warn!(error = %e, replace_producer = replace, in_a_row = state.aborts_in_row, "transaction aborted; the records since the last commit are processed again in {pause:?}");
        let _slow = self.counters.health.waiting();
        if replace {
            self.replace_sink(state)?;
        } else if let Err(e) = state.sink.abort_and_begin() {
            tracing::warn!(error = %e, "aborting failed; replacing the producer");
            self.replace_sink(state)?;
            replace = true;
        }
        // A new producer settled the last transaction, perhaps by
        // committing it: only the group knows where reading starts again.
        self.rewind(state, consumer, replace)?;
        state.held_until = Some(Instant::now() + pause);
        Ok(())
    }

    /// Replaces the producer after a fatal error. A new transactional
    /// producer fences the old one and aborts its open transaction.
    fn replace_sink(&self, state: &mut State) -> anyhow::Result<()> {
        let now = Instant::now();
        state
            .replaced
            .retain(|t| now.duration_since(*t) < REPLACE_WINDOW);
        if state.replaced.len() >= MAX_REPLACED {
            return Err(anyhow!(
                "the producer was replaced {MAX_REPLACED} times within {REPLACE_WINDOW:?}; if another process uses transactional id '{}', give each replica its own (--transactional-id, default <group>-<hostname>)",
                self.config.transactional_id
            ));
        }
        state.replaced.push_back(now);
        state.sink = Sink::new(
            &self.config.kafka,
            self.config.delivery,
            &self.config.transactional_id,
        )
        .with_context(|| format!("recreating the producer for {}", self.config.kafka.brokers))?;
        Ok(())
    }

    /// Throws away what was read and not final and reads it again: from
    /// where this process knows its work ended final, or — after a new
    /// transactional producer settled a commit whose outcome this process
    /// does not know — from the group's committed offsets.
    fn rewind(
        &self,
        state: &mut State,
        consumer: &dyn Committer,
        from_group: bool,
    ) -> anyhow::Result<()> {
        self.counters.recoveries.fetch_add(1, Ordering::Relaxed);
        self.counters.metrics.recovery();
        state.txn_offsets.clear();
        if from_group {
            let partitions: Vec<TopicPartition> = state.workers.keys().cloned().collect();
            let committed = consumer
                .committed(&partitions)
                .context("reading the group's committed offsets to start again from them")?;
            for (tp, next) in committed {
                // No commit yet: where reading started stays right.
                if let (Some(next), Some(w)) = (next, state.workers.get_mut(&tp)) {
                    w.rewind_to = Some(next);
                }
            }
        }
        for (tp, w) in state.workers.iter_mut() {
            w.batch.clear();
            w.leftover = None;
            w.malformed.clear();
            w.opened = None;
            w.in_flight.clear();
            if let Some(next) = w.rewind_to {
                consumer
                    .seek(tp, next)
                    .with_context(|| format!("rewinding {tp} to offset {next}"))?;
            }
        }
        Ok(())
    }

    /// Runs `tp`'s batch through the chain and produces the results.
    fn process(&self, state: &mut State, tp: &TopicPartition) -> anyhow::Result<()> {
        let State {
            workers,
            txn_offsets,
            sink,
            must_abort,
            ..
        } = state;
        let Some(worker) = workers.get_mut(tp) else {
            return Ok(());
        };
        if must_abort.is_some() {
            return Ok(());
        }
        // Records a cut left run before any read after them, one at a time.
        let isolate = worker.leftover.is_some();
        let (batch, malformed) = match &worker.leftover {
            Some(l) => (&l.batch, &l.malformed),
            None => (&worker.batch, &worker.malformed),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let metrics = &self.counters.metrics;
        let started = Instant::now();
        // Isolating failing records stops after about one deadline, so a
        // burst of records that each hit it still lets the loop go round,
        // produce and commit between them.
        let until = started + self.config.limits.deadline;
        let out = worker.chain.run_within(batch, Some(until), isolate);
        let done = out.done as usize;
        metrics.batch(done, started.elapsed().as_secs_f64());
        metrics.consumed(&tp.topic, done as u64);
        for f in &out.failures {
            metrics.transform_error(&f.plugin, f.failure.kind().as_str(), f.failure.label());
        }
        let last_plugin = worker.chain.plugins().last();
        // Outputs per destination topic; a batch has one or a few.
        let mut per_topic: Vec<(&str, u64)> = Vec::new();
        let ack = Arc::new(BatchAck::default());
        let mut dead: Vec<DeadLetter> = out.failures.iter().map(DeadLetter::from).collect();
        let mut refused: BTreeSet<u32> = BTreeSet::new();
        for (index, _) in malformed.iter().filter(|(i, _)| (*i as usize) < done) {
            refused.insert(*index);
            dead.push(DeadLetter::malformed(*index));
        }
        let mut produced = 0;
        // The outputs of one input record, all admitted before any is
        // queued: a record Kafka refuses loses every output it had.
        let mut group: Vec<crate::runtime::ChainRecord<'_>> = Vec::new();
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
                let topic = r.topic.unwrap_or(self.config.output_topic.as_str());
                sink.admit(topic, record_bytes(r))
                    .map_err(|refusal| (topic.to_owned(), refusal))
            });
            let mut refusal = admitted.err();
            if refusal.is_none() {
                for (queued, r) in group.iter().enumerate() {
                    let topic = r.topic.unwrap_or(self.config.output_topic.as_str());
                    let sent = sink.send(
                        OutRecord {
                            topic,
                            key: r.key,
                            value: r.value,
                            headers: r.headers.iter().map(|(n, v)| (n.as_bytes(), v)),
                            timestamp: r.timestamp,
                        },
                        &ack,
                    );
                    match sent {
                        Ok(()) => {
                            produced += 1;
                            match per_topic.iter_mut().find(|(t, _)| *t == topic) {
                                Some((_, n)) => *n += 1,
                                None => per_topic.push((topic, 1)),
                            }
                        }
                        Err(SendError::Refused { topic, refusal: r }) => {
                            if self.config.delivery == Delivery::ExactlyOnce && queued > 0 {
                                // Outputs of this record are queued in the
                                // transaction: abort it; processed again,
                                // the record is refused before any is.
                                *must_abort = Some(TransactionError::RecordRefused {
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
                            *must_abort = Some(e);
                            return Ok(());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if let Some((topic, refusal)) = refusal {
                refused.insert(origin);
                metrics.transform_error(
                    last_plugin.map_or("", |p| p.name.as_str()),
                    "produce",
                    refusal.reason,
                );
                dead.push(DeadLetter {
                    index: origin,
                    kind: "produce",
                    reason: refusal.reason,
                    message: format!(
                        "kafka refuses the output for topic '{}': {}; {}",
                        capped(&topic),
                        refusal.message,
                        refusal.fix()
                    ),
                    plugin: last_plugin.map(|p| p.name.clone()).unwrap_or_default(),
                    plugin_sha256: last_plugin.map(|p| p.sha256.clone()).unwrap_or_default(),
                });
            }
        }
        drop(records);
        self.counters
            .produced
            .fetch_add(produced, Ordering::Relaxed);
        for (topic, n) in per_topic {
            metrics.produced(topic, n);
        }
        dead.sort_by_key(|d| d.index);
        for d in &dead {
            let raw = malformed
                .iter()
                .find(|(i, _)| *i == d.index)
                .map(|(_, h)| h);
            self.fail(sink, batch, d, raw, &ack, must_abort)?;
            if must_abort.is_some() {
                return Ok(());
            }
        }
        let first = batch.records.first().map_or(0, |r| r.offset);
        let last = batch.records[done - 1].offset;
        match self.config.delivery {
            Delivery::AtLeastOnce => worker.in_flight.push_back((first, last + 1, ack)),
            Delivery::ExactlyOnce => {
                txn_offsets.insert(tp.clone(), last + 1);
            }
        }
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
                worker.batch.clear();
                worker.malformed.clear();
                worker.leftover = Some(rest);
            }
            (true, rest) => worker.leftover = rest,
            (false, None) => {
                worker.batch.clear();
                worker.malformed.clear();
                worker.opened = None;
            }
        }
        Ok(())
    }

    /// Dead-letters, skips or halts on a failed record, by policy.
    fn fail(
        &self,
        sink: &Sink,
        batch: &Batch,
        d: &DeadLetter,
        raw_headers: Option<&RawHeaders>,
        ack: &Arc<BatchAck>,
        must_abort: &mut Option<TransactionError>,
    ) -> anyhow::Result<()> {
        let r = batch.get(d.index as usize)?;
        let place = format!("{}/{}@{}", r.topic(), r.partition(), r.offset());
        match self.config.on_error {
            OnError::Halt => Err(anyhow!(
                "halting (--on-error halt): record {place} failed in plugin {} ({}): {}",
                d.plugin,
                d.reason,
                d.message
            )),
            OnError::Skip => {
                tracing::warn!(record = %place, plugin = %d.plugin, kind = d.reason, error = %d.message, "record skipped");
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                self.counters.metrics.skipped(&d.plugin, d.kind, d.reason);
                Ok(())
            }
            OnError::Dlq => {
                let topic = self.config.dlq_topic.as_deref().unwrap_or_default();
                let (partition, offset, timestamp) = (
                    r.partition().to_string(),
                    r.offset().to_string(),
                    r.timestamp().to_string(),
                );
                let message = capped(&d.message);
                let ours: [(&str, &[u8]); 9] = [
                    ("wasmpipe.error.kind", d.kind.as_bytes()),
                    ("wasmpipe.error.reason", d.reason.as_bytes()),
                    ("wasmpipe.error.message", message.as_bytes()),
                    ("wasmpipe.plugin", d.plugin.as_bytes()),
                    ("wasmpipe.plugin.sha256", d.plugin_sha256.as_bytes()),
                    ("wasmpipe.source.topic", r.topic().as_bytes()),
                    ("wasmpipe.source.partition", partition.as_bytes()),
                    ("wasmpipe.source.offset", offset.as_bytes()),
                    ("wasmpipe.source.timestamp", timestamp.as_bytes()),
                ];
                // The record's own headers, as they came; its `wasmpipe.*`
                // ones renamed so they cannot pass for the host's.
                let input_headers: Vec<KeptHeader<'_>> = match raw_headers {
                    Some(raw) => raw
                        .iter()
                        .map(|(n, v)| (dead_letter::kept_name(n), v.as_deref()))
                        .collect(),
                    None => r
                        .headers()
                        .iter()
                        .map(|(n, v)| (dead_letter::kept_name(n.as_bytes()), v))
                        .collect(),
                };
                // A dead letter too large for the dead-letter topic is still
                // written: without the record's headers, then without its
                // key and value, saying what it left out.
                let mut trim = Trim::Nothing;
                let sent = loop {
                    let (key, value, input) = match trim {
                        Trim::Nothing => (r.key(), r.value(), &input_headers[..]),
                        Trim::Headers => (r.key(), r.value(), &[][..]),
                        Trim::Record | Trim::Message => (None, None, &[][..]),
                    };
                    let dropped = trim.dropped().map(|d| ("wasmpipe.dropped", d.as_bytes()));
                    let headers = input.iter().map(|(n, v)| (n.as_ref(), *v)).chain(
                        ours.iter()
                            .filter(|(k, _)| {
                                trim != Trim::Message || *k != "wasmpipe.error.message"
                            })
                            .chain(&dropped)
                            .map(|(k, v)| (k.as_bytes(), Some(*v))),
                    );
                    let bytes = key.map_or(0, <[u8]>::len)
                        + value.map_or(0, <[u8]>::len)
                        + headers
                            .clone()
                            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                            .sum::<usize>();
                    let sent = match sink.admit(topic, bytes) {
                        Err(refusal) => Err(SendError::Refused {
                            topic: topic.to_owned(),
                            refusal,
                        }),
                        Ok(()) => sink.send(
                            OutRecord {
                                topic,
                                key,
                                value,
                                headers,
                                timestamp: r.known_timestamp(),
                            },
                            ack,
                        ),
                    };
                    match (sent, trim.next()) {
                        (Err(SendError::Refused { refusal, .. }), Some(next))
                            if refusal.reason == "too_large" =>
                        {
                            trim = next
                        }
                        (sent, _) => break sent,
                    }
                };
                match sent {
                    Err(SendError::Transaction(e)) => {
                        *must_abort = Some(e);
                        return Ok(());
                    }
                    Err(SendError::Refused { refusal, .. }) => {
                        return Err(anyhow!(
                            "dead-lettering {place} to '{topic}': kafka refuses it even without the record and the error message ({}); {}",
                            refusal.message,
                            refusal.fix()
                        ));
                    }
                    other => {
                        other.with_context(|| format!("dead-lettering {place} to '{topic}'"))?
                    }
                }
                tracing::warn!(record = %place, plugin = %d.plugin, kind = d.reason, error = %message, dlq = topic, dropped = trim.dropped(), "record dead-lettered");
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .metrics
                    .dead_lettered(&d.plugin, d.kind, d.reason);
                Ok(())
            }
        }
    }
}

/// What a dead letter leaves out of its record to fit the dead-letter
/// topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trim {
    Nothing,
    Headers,
    Record,
    /// The record and the error message: what is left always names the
    /// record and the failure's kind.
    Message,
}

impl Trim {
    fn next(self) -> Option<Trim> {
        match self {
            Trim::Nothing => Some(Trim::Headers),
            Trim::Headers => Some(Trim::Record),
            Trim::Record => Some(Trim::Message),
            Trim::Message => None,
        }
    }

    /// The `wasmpipe.dropped` header's value.
    fn dropped(self) -> Option<&'static str> {
        match self {
            Trim::Nothing => None,
            Trim::Headers => Some("headers"),
            Trim::Record => Some("headers,key,value"),
            Trim::Message => Some("headers,key,value,message"),
        }
    }
}

/// Records a run left, with the raw headers of those among them whose
/// header names are not UTF-8 (indexes into `batch`).
struct Leftover {
    batch: Batch,
    malformed: Vec<(u32, RawHeaders)>,
}

/// Records `from..` of `batch`, as a batch of their own.
fn remainder(batch: &Batch, from: usize) -> anyhow::Result<Batch> {
    let mut rest = Batch::default();
    for i in from..batch.len() {
        rest.push(&batch.get(i)?)?;
    }
    Ok(rest)
}

/// The bytes Kafka counts of a record: key, value and headers.
fn record_bytes(r: &crate::runtime::ChainRecord<'_>) -> usize {
    r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + r.headers
            .iter()
            .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
            .sum::<usize>()
}

/// A failed record and why, as its dead letter's headers say.
struct DeadLetter {
    /// The record's index in its batch.
    index: u32,
    kind: &'static str,
    reason: &'static str,
    message: String,
    plugin: String,
    plugin_sha256: String,
}

impl DeadLetter {
    /// A record whose header names are not UTF-8: no plugin saw it as it is.
    fn malformed(index: u32) -> DeadLetter {
        DeadLetter {
            index,
            kind: "record",
            reason: "header_name_not_utf8",
            message: "a header name of the record is not UTF-8, which plugins cannot be given; it is dead-lettered with its headers as they came".into(),
            plugin: String::new(),
            plugin_sha256: String::new(),
        }
    }
}

impl From<&RecordFailure> for DeadLetter {
    fn from(f: &RecordFailure) -> Self {
        DeadLetter {
            index: f.index,
            kind: f.failure.kind().as_str(),
            reason: f.failure.label(),
            message: f.failure.to_string(),
            plugin: f.plugin.clone(),
            plugin_sha256: f.plugin_sha256.clone(),
        }
    }
}

/// (name, sha256) of each plugin of `chain`, for the `plugin_info` metric.
fn plugin_labels(chain: &Chain) -> Vec<(String, String)> {
    chain
        .plugins
        .iter()
        .map(|p| (p.name.clone(), p.sha256.clone()))
        .collect()
}

/// Moves acknowledged batches of `w` to its committable offset.
/// On a batch Kafka did not take whole, returns where reading starts
/// again and why: nothing after it may be committed.
fn settle(w: &mut Worker) -> Result<(), (i64, String)> {
    while let Some((first, next, ack)) = w.in_flight.front() {
        if !ack.is_done() {
            break;
        }
        if let Some(e) = ack.failure() {
            return Err((*first, e));
        }
        w.committable = Some((*next, true));
        w.rewind_to = Some(*next);
        w.in_flight.pop_front();
    }
    Ok(())
}

/// At-least-once: Kafka did not take every output of a batch. Its records
/// are read and processed again: a refusal that is the record's doing
/// (learned from the delivery report) now dead-letters that record before
/// any of its outputs is queued; a passing failure is simply retried.
/// Outputs Kafka already acknowledged stay (at-least-once cannot take
/// them back).
fn redo(
    tp: &TopicPartition,
    w: &mut Worker,
    consumer: &dyn Committer,
    from: i64,
    error: &str,
) -> anyhow::Result<()> {
    tracing::warn!(partition = %tp, from, %error, "kafka did not take every output of a batch; its records are processed again");
    w.batch.clear();
    w.leftover = None;
    w.malformed.clear();
    w.opened = None;
    w.in_flight.clear();
    w.rewind_to = Some(from);
    consumer
        .seek(tp, from)
        .with_context(|| format!("rewinding {tp} to offset {from}"))
}

/// Runs the pipeline until `shutdown` is set (then drains, commits and
/// leaves the group) or an error stops it.
pub fn run(
    config: RunConfig,
    chain: Chain,
    updates: Option<Arc<Updates>>,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let sink = Sink::new(&config.kafka, config.delivery, &config.transactional_id)
        .with_context(|| format!("creating the producer for {}", config.kafka.brokers))?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chain,
            sink,
            aborts_in_row: 0,
            must_abort: None,
            replaced: VecDeque::new(),
            workers: BTreeMap::new(),
            txn_offsets: BTreeMap::new(),
            error: None,
            failed: false,
            held_until: None,
        }),
        counters: counters.clone(),
        updates,
        config: config.clone(),
    });
    let source = Source::new(
        &config.kafka,
        &config.group,
        &config.input_topics,
        config.delivery,
        shared.clone(),
    )
    .with_context(|| {
        format!(
            "creating the consumer of {:?} in group {}",
            config.input_topics, config.group
        )
    })?;
    counters
        .metrics
        .plugins(&plugin_labels(&shared.state().chain));
    // Plugins loaded and subscribed: ready, assigned partitions or not (a
    // replica beyond the partition count is a hot standby, not a failure).
    counters.health.set_ready(true);
    tracing::info!(
        group = %config.group,
        inputs = ?config.input_topics,
        output = %config.output_topic,
        delivery = ?config.delivery,
        kafka = ?config.kafka,
        "pipeline started"
    );

    let result = run_loop(&shared, &source, &shutdown);
    counters.health.set_ready(false);
    let drained = match &result {
        Ok(()) => drain(&shared, &source),
        Err(_) => {
            let mut state = shared.state();
            state.failed = true;
            if config.delivery == Delivery::ExactlyOnce {
                // Whatever the open transaction holds is read again by
                // whoever owns the partitions next.
                let t = Instant::now();
                let _ = state.sink.abort_transaction();
                tracing::debug!(took = ?t.elapsed(), "transaction aborted");
            }
            Ok(())
        }
    };
    result.and(drained)
}

fn run_loop(shared: &Shared, source: &Source, shutdown: &AtomicBool) -> anyhow::Result<()> {
    let config = &shared.config;
    let mut last_commit = Instant::now();
    // The clock is read once a round (a round per record): reading it is a
    // measurable share of a record's cost.
    let mut now = last_commit;
    while !shutdown.load(Ordering::Relaxed) {
        shared.counters.health.beat_at(now);
        let timeout = {
            let state = shared.state();
            let oldest = state.workers.values().filter_map(|w| w.opened).min();
            match state.held_until {
                // Nothing is processed before then: no batch is due.
                Some(until) => until
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(100)),
                None => oldest.map_or(Duration::from_millis(100), |t| {
                    config
                        .linger
                        .saturating_sub(now.saturating_duration_since(t))
                }),
            }
        };
        let polled = source.poll_into(timeout, |tp, fill| {
            let mut state = shared.state();
            match state.workers.get_mut(tp) {
                Some(w) => {
                    w.opened.get_or_insert_with(Instant::now);
                    fill(&mut w.batch)
                }
                None => Ok(false),
            }
        });
        let mut polled = match polled {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer error; retrying");
                std::thread::sleep(Duration::from_millis(200));
                None
            }
        };
        now = Instant::now();
        let mut state = shared.state();
        if let Some(p) = polled.as_mut() {
            shared.counters.consumed.fetch_add(1, Ordering::Relaxed);
            if let Some(w) = state.workers.get_mut(&p.tp) {
                w.rewind_to.get_or_insert(p.offset);
                if let Some(raw) = p.raw_headers.take() {
                    w.malformed.push((w.batch.len() as u32 - 1, raw));
                }
            }
        }
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        if let Some(until) = state.held_until {
            if now < until {
                // Paused again each round: partitions assigned meanwhile too.
                source.hold(true);
                continue;
            }
            state.held_until = None;
            source.hold(false);
        }
        if let Some(new) = shared.updates.as_ref().and_then(|u| u.take()) {
            swap(shared, &mut state, source, new)?;
            last_commit = Instant::now();
        }
        let due: Vec<TopicPartition> = state
            .workers
            .iter()
            .filter(|(_, w)| {
                w.leftover.is_some()
                    || w.batch.len() >= config.batch_records
                    || w.batch.data_len() >= config.batch_bytes
                    || w.opened
                        .is_some_and(|t| now.saturating_duration_since(t) >= config.linger)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &due {
            shared.process(&mut state, tp)?;
        }
        // Delivery reports: after producing, and while idle.
        if !due.is_empty() || polled.is_none() {
            state.sink.poll();
        }
        if state.sink.is_fatal() {
            tracing::warn!(
                "the producer hit a fatal error (see the log above); replacing it and processing the records since the last commit again"
            );
            shared.replace_sink(&mut state)?;
            let from_group = config.delivery == Delivery::ExactlyOnce;
            shared.rewind(&mut state, source, from_group)?;
        }
        if now.saturating_duration_since(last_commit) >= config.commit_interval
            || state.must_abort.is_some()
        {
            commit(shared, &mut state, source)?;
            last_commit = Instant::now();
        }
    }
    Ok(())
}

/// Swaps in a new plugin set between batches. Under exactly-once the open
/// transaction (all of it processed by the old set) is committed first, so
/// the swap falls between transactions; a partition's later records are
/// never processed by an older set than its earlier ones.
fn swap(shared: &Shared, state: &mut State, source: &Source, new: Loaded) -> anyhow::Result<()> {
    if shared.config.delivery == Delivery::ExactlyOnce {
        commit(shared, state, source)?;
    }
    let mut instances = Vec::new();
    for tp in state.workers.keys() {
        match new.chain.instantiate() {
            Ok(instance) => instances.push((tp.clone(), instance)),
            Err(e) => {
                // Built and initialised once already; should a second
                // instance fail, the running set stays everywhere.
                tracing::warn!(version = new.version, error = %e, "reload: instantiating the new set failed; the running set stays");
                return Ok(());
            }
        }
    }
    for (tp, instance) in instances {
        if let Some(w) = state.workers.get_mut(&tp) {
            w.chain = instance;
        }
    }
    state.chain = new.chain;
    shared.counters.reloads.fetch_add(1, Ordering::Relaxed);
    shared.counters.metrics.reload("swapped");
    shared
        .counters
        .metrics
        .plugins(&plugin_labels(&state.chain));
    tracing::info!(version = new.version, sha256 = %new.sha256, "reload: new plugin set swapped in");
    Ok(())
}

/// Commits what is safe to commit now.
fn commit(shared: &Shared, state: &mut State, source: &Source) -> anyhow::Result<()> {
    match shared.config.delivery {
        Delivery::AtLeastOnce => {
            let mut offsets = Vec::new();
            for (tp, w) in state.workers.iter_mut() {
                if let Err((from, error)) = settle(w) {
                    shared.counters.recoveries.fetch_add(1, Ordering::Relaxed);
                    shared.counters.metrics.recovery();
                    redo(tp, w, source, from, &error)?;
                }
                if let Some((next, changed)) = &mut w.committable
                    && *changed
                {
                    offsets.push((tp.clone(), *next));
                    *changed = false;
                }
            }
            if let Err(e) = source.commit(&offsets) {
                // A rebalance under way (a stale generation) or a broker
                // moving: nothing is lost, the offsets are committed on the
                // next try or by the revocation that follows.
                tracing::warn!(error = %e, "committing offsets failed; retrying at the next commit");
                for (tp, _) in &offsets {
                    if let Some((_, changed)) = state
                        .workers
                        .get_mut(tp)
                        .and_then(|w| w.committable.as_mut())
                    {
                        *changed = true;
                    }
                }
            }
        }
        Delivery::ExactlyOnce => {
            if let Some(e) = state.must_abort.take() {
                shared.abort(state, source, e)?;
            } else if !state.txn_offsets.is_empty() {
                shared.commit_transaction(state, source)?;
            }
        }
    }
    Ok(())
}

/// Shutdown: process what was read, deliver it, commit, leave the group.
fn drain(shared: &Shared, source: &Source) -> anyhow::Result<()> {
    let deadline = Instant::now() + shared.config.grace;
    {
        let mut state = shared.state();
        let pending: Vec<TopicPartition> = state.workers.keys().cloned().collect();
        for tp in &pending {
            // A run a cut short leaves records; what is not processed by
            // the deadline is read again by the partition's next owner.
            while state
                .workers
                .get(tp)
                .is_some_and(|w| w.leftover.is_some() || !w.batch.is_empty())
                && state.must_abort.is_none()
                && Instant::now() < deadline
            {
                shared.process(&mut state, tp)?;
            }
        }
        if shared.config.delivery == Delivery::AtLeastOnce {
            state
                .sink
                .flush(deadline.saturating_duration_since(Instant::now()))
                .context("delivering the last outputs")?;
        }
        commit(shared, &mut state, source)?;
    }
    source.leave();
    let state = shared.state();
    if let Some(e) = &state.error {
        return Err(anyhow!("{e:#}"));
    }
    tracing::info!(
        consumed = shared.counters.consumed.load(Ordering::Relaxed),
        produced = shared.counters.produced.load(Ordering::Relaxed),
        dead_lettered = shared.counters.dead_lettered.load(Ordering::Relaxed),
        skipped = shared.counters.skipped.load(Ordering::Relaxed),
        "pipeline stopped cleanly"
    );
    Ok(())
}
