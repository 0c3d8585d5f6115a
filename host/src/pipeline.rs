//! Source → chain → sink, per partition: the one place that joins Kafka and
//! the runtime. Records of a partition are processed in order, in batches
//! bounded by count, bytes and linger; their outputs are produced, their
//! failures dead-lettered, skipped or halted on, and their offsets committed
//! only when that is safe for the delivery mode.

use crate::config::{OnError, RunConfig};
use crate::kafka::{
    BatchAck, Committer, Delivery, OutRecord, RebalanceHandler, Sink, Source, TopicPartition,
};
use crate::record::Batch;
use crate::runtime::{Chain, ChainInstance, RecordFailure};
use anyhow::{Context as _, anyhow};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counts of a run, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub consumed: AtomicU64,
    pub produced: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    pub transactions: AtomicU64,
}

/// One assigned partition: its chain instance, the batch being filled, and
/// (at-least-once) the batches whose outputs are not yet acknowledged.
struct Worker {
    chain: ChainInstance,
    batch: Batch,
    opened: Option<Instant>,
    in_flight: VecDeque<(i64, Arc<BatchAck>)>,
    /// Next offset to read that is safe to commit, and whether it changed.
    committable: Option<(i64, bool)>,
}

struct State {
    chain: Chain,
    workers: BTreeMap<TopicPartition, Worker>,
    /// Exactly-once: next offset per partition processed in the open
    /// transaction.
    txn_offsets: BTreeMap<TopicPartition, i64>,
    /// An error raised inside a rebalance callback, reported by the loop.
    error: Option<anyhow::Error>,
    /// The pipeline failed and is closing: nothing more is committed.
    failed: bool,
}

struct Shared {
    config: RunConfig,
    state: Mutex<State>,
    sink: Sink,
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
                            in_flight: VecDeque::new(),
                            committable: None,
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
        let mut state = self.state();
        if state.failed {
            return;
        }
        let result = match self.config.delivery {
            Delivery::AtLeastOnce => self.revoke_at_least_once(&mut state, partitions, committer),
            Delivery::ExactlyOnce => {
                self.commit_transaction(&mut state, committer.group_metadata())
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
}

impl Shared {
    fn revoke_at_least_once(
        &self,
        state: &mut State,
        partitions: &[TopicPartition],
        committer: &dyn Committer,
    ) -> anyhow::Result<()> {
        self.sink.flush(self.config.grace)?;
        let mut offsets = Vec::new();
        for tp in partitions {
            if let Some(w) = state.workers.get_mut(tp) {
                settle(w)?;
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

    fn commit_transaction(
        &self,
        state: &mut State,
        group: Option<crate::kafka::GroupMetadata>,
    ) -> anyhow::Result<()> {
        let group =
            group.context("the consumer has no group metadata to commit the transaction with")?;
        let offsets: Vec<(TopicPartition, i64)> =
            std::mem::take(&mut state.txn_offsets).into_iter().collect();
        self.sink.commit_transaction(&offsets, &group)?;
        self.counters.transactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `tp`'s batch through the chain and produces the results.
    fn process(&self, state: &mut State, tp: &TopicPartition) -> anyhow::Result<()> {
        let State {
            workers,
            txn_offsets,
            ..
        } = state;
        let Some(worker) = workers.get_mut(tp) else {
            return Ok(());
        };
        if worker.batch.is_empty() {
            return Ok(());
        }
        let batch = &worker.batch;
        let out = worker.chain.run(batch);
        let ack = Arc::new(BatchAck::default());
        for (i, r) in out.records.iter().enumerate() {
            let r = r?;
            let topic = out.route[i].map_or(self.config.output_topic.as_str(), |t| {
                out.routes[t as usize].as_str()
            });
            self.sink.send(
                OutRecord {
                    topic,
                    key: r.key(),
                    value: r.value(),
                    headers: r.headers().iter(),
                    timestamp: r.known_timestamp(),
                },
                &ack,
            )?;
        }
        self.counters
            .produced
            .fetch_add(out.records.len() as u64, Ordering::Relaxed);
        for f in &out.failures {
            self.fail(batch, f, &ack)?;
        }
        let last = batch.records.last().map_or(0, |r| r.offset);
        match self.config.delivery {
            Delivery::AtLeastOnce => worker.in_flight.push_back((last + 1, ack)),
            Delivery::ExactlyOnce => {
                txn_offsets.insert(tp.clone(), last + 1);
            }
        }
        worker.batch.clear();
        worker.opened = None;
        Ok(())
    }

    fn fail(&self, batch: &Batch, f: &RecordFailure, ack: &Arc<BatchAck>) -> anyhow::Result<()> {
        let r = batch.get(f.index as usize)?;
        let place = format!("{}/{}@{}", r.topic(), r.partition(), r.offset());
        match self.config.on_error {
            OnError::Halt => Err(anyhow!(
                "halting (--on-error halt): record {place} failed in plugin {} ({}): {}",
                f.plugin,
                f.failure.label(),
                f.failure
            )),
            OnError::Skip => {
                tracing::warn!(record = %place, plugin = %f.plugin, kind = f.failure.label(), error = %f.failure, "record skipped");
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            OnError::Dlq => {
                let topic = self.config.dlq_topic.as_deref().unwrap_or_default();
                let (partition, offset, timestamp) = (
                    r.partition().to_string(),
                    r.offset().to_string(),
                    r.timestamp().to_string(),
                );
                let kind = f.failure.kind().as_str();
                let message = f.failure.to_string();
                let ours: [(&str, &[u8]); 9] = [
                    ("wasmpipe.error.kind", kind.as_bytes()),
                    ("wasmpipe.error.reason", f.failure.label().as_bytes()),
                    ("wasmpipe.error.message", message.as_bytes()),
                    ("wasmpipe.plugin", f.plugin.as_bytes()),
                    ("wasmpipe.plugin.sha256", f.plugin_sha256.as_bytes()),
                    ("wasmpipe.source.topic", r.topic().as_bytes()),
                    ("wasmpipe.source.partition", partition.as_bytes()),
                    ("wasmpipe.source.offset", offset.as_bytes()),
                    ("wasmpipe.source.timestamp", timestamp.as_bytes()),
                ];
                let headers = r
                    .headers()
                    .iter()
                    .chain(ours.iter().map(|(k, v)| (*k, Some(*v))));
                self.sink.send(
                    OutRecord {
                        topic,
                        key: r.key(),
                        value: r.value(),
                        headers,
                        timestamp: r.known_timestamp(),
                    },
                    ack,
                )?;
                tracing::warn!(record = %place, plugin = %f.plugin, kind = f.failure.label(), error = %f.failure, dlq = topic, "record dead-lettered");
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// Moves acknowledged batches of `w` to its committable offset.
fn settle(w: &mut Worker) -> anyhow::Result<()> {
    while let Some((next, ack)) = w.in_flight.front() {
        if !ack.is_done() {
            break;
        }
        if let Some(e) = ack.failure() {
            // Nothing after this batch may be committed; restarting resumes
            // from the last committed offset, so nothing is lost.
            return Err(anyhow!("delivery failed and was not retried further: {e}"));
        }
        w.committable = Some((*next, true));
        w.in_flight.pop_front();
    }
    Ok(())
}

/// Runs the pipeline until `shutdown` is set (then drains, commits and
/// leaves the group) or an error stops it.
pub fn run(
    config: RunConfig,
    chain: Chain,
    shutdown: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let sink = Sink::new(&config.kafka, config.delivery, &config.transactional_id)
        .with_context(|| format!("creating the producer for {}", config.kafka.brokers))?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chain,
            workers: BTreeMap::new(),
            txn_offsets: BTreeMap::new(),
            error: None,
            failed: false,
        }),
        sink,
        counters: counters.clone(),
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
    tracing::info!(
        group = %config.group,
        inputs = ?config.input_topics,
        output = %config.output_topic,
        delivery = ?config.delivery,
        kafka = ?config.kafka,
        "pipeline started"
    );

    let result = run_loop(&shared, &source, &shutdown);
    let drained = match &result {
        Ok(()) => drain(&shared, &source),
        Err(_) => {
            shared.state().failed = true;
            if config.delivery == Delivery::ExactlyOnce {
                // Whatever the open transaction holds is read again by
                // whoever owns the partitions next.
                let t = Instant::now();
                let _ = shared.sink.abort_transaction();
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
    while !shutdown.load(Ordering::Relaxed) {
        let timeout = {
            let state = shared.state();
            let oldest = state.workers.values().filter_map(|w| w.opened).min();
            oldest.map_or(Duration::from_millis(100), |t| {
                config.linger.saturating_sub(t.elapsed())
            })
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
        let polled = match polled {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer error; retrying");
                std::thread::sleep(Duration::from_millis(200));
                None
            }
        };
        if polled.is_some() {
            shared.counters.consumed.fetch_add(1, Ordering::Relaxed);
        }

        let mut state = shared.state();
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        let due: Vec<TopicPartition> = state
            .workers
            .iter()
            .filter(|(_, w)| {
                w.batch.len() >= config.batch_records
                    || w.batch.data_len() >= config.batch_bytes
                    || w.opened.is_some_and(|t| t.elapsed() >= config.linger)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &due {
            shared.process(&mut state, tp)?;
        }
        shared.sink.poll();
        if shared.sink.is_fatal() {
            return Err(anyhow!(
                "the producer hit a fatal error (see the log above); restart to resume from the last commit"
            ));
        }
        if last_commit.elapsed() >= config.commit_interval {
            commit(shared, &mut state, source)?;
            last_commit = Instant::now();
        }
    }
    Ok(())
}

/// Commits what is safe to commit now.
fn commit(shared: &Shared, state: &mut State, source: &Source) -> anyhow::Result<()> {
    match shared.config.delivery {
        Delivery::AtLeastOnce => {
            let mut offsets = Vec::new();
            for (tp, w) in state.workers.iter_mut() {
                settle(w)?;
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
            if !state.txn_offsets.is_empty() {
                shared.commit_transaction(state, source.group_metadata())?;
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
            shared.process(&mut state, tp)?;
        }
        if shared.config.delivery == Delivery::AtLeastOnce {
            shared
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
