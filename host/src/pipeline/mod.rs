//! Source → chain → sink, per partition: the one place that joins Kafka and
//! the runtime. Records of a partition are processed in order, in batches
//! bounded by count, bytes and linger, by that partition's [`worker`]; the
//! delivery mode ([`delivery`]) decides when outputs and offsets are final;
//! failed records are dead-lettered, skipped or halted on ([`failure`]).
//!
//! The loop owns the pipeline's state. Rebalance callbacks, which run on
//! the loop's thread inside a poll, hand new partitions to the loop and
//! have the delivery mode commit revoked ones; the state's lock is taken
//! once per poll round, never per record.

mod delivery;
mod failure;
mod keyed;
mod worker;

use crate::config::{OnFailure, ValidConfig};
use crate::format::Codec;
use crate::kafka::{
    Committer, Delivery as Mode, Polled, Producer, RebalanceHandler, Sink, Source, TopicPartition,
};
use crate::ops::Telemetry;
use crate::ops::events::{LagReported, PipelineStopped, Rebalanced, SetRefused, SetRunning};
use crate::reload::{Loaded, Updates};
use crate::runtime::Chain;
use anyhow::{Context as _, anyhow};
use delivery::{AtLeastOnce, Delivery, ExactlyOnce, Output, Reread};
use keyed::Keeper;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use worker::Worker;

/// What the pipeline's loop and workers need of the configuration, checked.
#[derive(Clone, Debug)]
pub struct Settings {
    pub output_topic: String,
    pub on_failure: OnFailure,
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub commit_interval: Duration,
    /// How long a run may take before isolating failing records stops.
    pub deadline: Duration,
    /// How long shutdown may take to finish, flush and commit.
    pub grace: Duration,
    /// What records are decoded from and outputs encoded into.
    pub codec: Arc<Codec>,
}

impl Settings {
    /// `waiting` is called while the pipeline waits on the schema registry.
    pub fn of(
        config: &ValidConfig,
        waiting: Option<crate::format::registry::Waiting>,
    ) -> anyhow::Result<Settings> {
        Ok(Settings {
            output_topic: config.output_topic.clone(),
            on_failure: config.on_failure().clone(),
            batch_records: config.batch_records,
            batch_bytes: config.batch_bytes,
            linger: config.linger,
            commit_interval: config.commit_interval,
            deadline: config.limits.deadline,
            grace: config.grace,
            codec: Arc::new(config.formats.codec(waiting)?),
        })
    }
}

struct State<P: Producer> {
    chain: Chain,
    out: Output<P>,
    delivery: Box<dyn Delivery<P>>,
    workers: BTreeMap<TopicPartition, Worker>,
    /// Partitions assigned by a rebalance callback, with its generation,
    /// for the loop to start a worker for.
    assigned: Vec<(TopicPartition, u64)>,
    /// An error raised inside a rebalance callback, reported by the loop.
    error: Option<anyhow::Error>,
    /// The pipeline failed and is closing: nothing more is committed.
    failed: bool,
    /// After an abort, nothing is processed before this.
    held_until: Option<Instant>,
    /// The state of the plugins that keep state.
    keeper: Keeper,
}

impl<P: Producer> State<P> {
    /// Starts the workers of partitions assigned since the last round,
    /// each reading its own queue.
    fn start_assigned(&mut self, source: &Source, telemetry: &Telemetry) -> anyhow::Result<()> {
        for (tp, since) in std::mem::take(&mut self.assigned) {
            let mut chain = self
                .chain
                .instantiate()
                .with_context(|| format!("instantiating the chain for {tp}"))?;
            // Before the partition's first record is read.
            self.keeper.restore(&tp, &mut chain, telemetry)?;
            self.delivery.assigned(&tp);
            source.split(&tp);
            self.workers.insert(tp, Worker::new(chain, since));
        }
        Ok(())
    }

    /// Throws away the batches of the partitions the consumer was moved
    /// back on, and holds processing as asked.
    /// Makes final the state written before the offsets committed.
    fn apply(&mut self, reread: Reread, telemetry: &Telemetry) -> anyhow::Result<()> {
        for tp in &reread.partitions {
            if let Some(w) = self.workers.get_mut(tp) {
                w.reset();
                self.keeper
                    .rewound(tp, &mut w.chain, &mut w.sealed, telemetry)?;
            }
        }
        if reread.hold_until.is_some() {
            self.held_until = reread.hold_until;
        }
        for (tp, next) in &reread.committed {
            if let Some(w) = self.workers.get_mut(tp) {
                self.keeper
                    .committed(tp, &mut w.chain, &mut w.sealed, *next, telemetry)?;
            }
        }
        Ok(())
    }

    /// Reads each partition's queue into its batch, as far as the batch
    /// has room; how many records.
    fn read(&mut self, source: &Source, settings: &Settings, now: Instant) -> usize {
        let State {
            workers, delivery, ..
        } = self;
        let mut read = 0;
        for (tp, w) in workers.iter_mut() {
            let room = w.room(settings);
            match source.read(tp, room, |f| {
                w.take(tp, &f, now, &mut **delivery, &settings.codec)
            }) {
                Ok(n) => read += n,
                Err(e) => tracing::warn!(error = %e, "kafka consumer error reading {tp}; retrying"),
            }
        }
        read
    }

    /// How long an idle loop may wait for records: until the first open
    /// batch's linger ends, or the hold after an abort, within 100 ms.
    fn wait(&self, settings: &Settings, now: Instant) -> Duration {
        let most = Duration::from_millis(100);
        match self.held_until {
            Some(until) => until.saturating_duration_since(now).min(most),
            None => self
                .workers
                .values()
                .filter_map(Worker::opened)
                .min()
                .map_or(most, |t| {
                    settings
                        .linger
                        .saturating_sub(now.saturating_duration_since(t))
                        .min(most)
                }),
        }
    }

    fn commit(&mut self, consumer: &dyn Committer, telemetry: &Telemetry) -> anyhow::Result<()> {
        let reread = self.delivery.commit(&mut self.out, consumer)?;
        self.apply(reread, telemetry)
    }

    fn process(
        &mut self,
        tp: &TopicPartition,
        settings: &Settings,
        telemetry: &Telemetry,
    ) -> anyhow::Result<()> {
        let Some(worker) = self.workers.get_mut(tp) else {
            return Ok(());
        };
        worker.process(
            tp,
            &mut worker::Context {
                producer: &self.out.producer,
                delivery: &mut *self.delivery,
                settings,
                telemetry,
                keeper: &self.keeper,
            },
        )
    }
}

struct Shared<P: Producer> {
    settings: Settings,
    /// New plugin sets from the reloader, if hot reload is on.
    updates: Option<Arc<Updates>>,
    state: Mutex<State<P>>,
    telemetry: Arc<Telemetry>,
}

impl<P: Producer> Shared<P> {
    fn state(&self) -> MutexGuard<'_, State<P>> {
        // A poisoned lock means a panic in this process's own code while
        // holding it; the state is still the best we have.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<P: Producer + Send + 'static> RebalanceHandler for Shared<P> {
    fn assigned(&self, partitions: &[TopicPartition], generation: u64) {
        self.telemetry.emit(Rebalanced::Assigned(partitions));
        let mut state = self.state();
        state
            .assigned
            .extend(partitions.iter().map(|tp| (tp.clone(), generation)));
    }

    fn revoking(&self, partitions: &[TopicPartition], committer: &dyn Committer) {
        self.telemetry.emit(Rebalanced::Revoked(partitions));
        let mut state = self.state();
        state.assigned.retain(|(tp, _)| !partitions.contains(tp));
        if !state.failed {
            let State { out, delivery, .. } = &mut *state;
            let applied = delivery
                .revoking(out, committer, partitions)
                .and_then(|reread| state.apply(reread, &self.telemetry));
            match applied {
                Ok(()) => {}
                Err(e) => {
                    state
                        .error
                        .get_or_insert(e.context("committing before partitions were revoked"));
                }
            }
        }
        for tp in partitions {
            // Records read but not processed are read again by the next owner.
            if let Some(w) = state.workers.remove(tp) {
                state.keeper.released(tp, &w.chain, &self.telemetry);
            }
        }
    }

    fn lag(&self, lags: &[(String, i32, i64)]) {
        self.telemetry.emit(LagReported { lags });
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

/// Runs the pipeline until `shutdown` is set (then drains, commits and
/// leaves the group) or an error stops it.
pub fn run(
    config: ValidConfig,
    chain: Chain,
    updates: Option<Arc<Updates>>,
    shutdown: Arc<AtomicBool>,
    telemetry: Arc<Telemetry>,
) -> anyhow::Result<()> {
    // Waiting on the schema registry is not a stalled loop.
    let health = telemetry.clone();
    let waiting: crate::format::registry::Waiting =
        Arc::new(move || health.health.beat_at(Instant::now()));
    let settings = Settings::of(&config, Some(waiting))?;
    let (codec, probed) = (settings.codec.clone(), telemetry.clone());
    std::thread::Builder::new()
        .name("registry-probe".into())
        .spawn(move || {
            if let Some((registry, Err(error))) = codec.probe() {
                probed.emit(crate::ops::events::RegistryUnreachable {
                    registry: &registry,
                    error: &error,
                });
            }
        })?;
    let kafka = config.kafka.clone();
    let (mode, txn_id) = (config.delivery, config.transactional_id.clone());
    let mut first = true;
    let out = Output::new(
        Box::new(move || {
            let what = if std::mem::take(&mut first) {
                "creating"
            } else {
                "recreating"
            };
            Sink::new(&kafka, mode, &txn_id)
                .with_context(|| format!("{what} the producer for {}", kafka.brokers))
        }),
        &config.transactional_id,
    )?;
    let keeper = Keeper::new(&config, &chain)?;
    let delivery: Box<dyn Delivery<Sink>> = match config.delivery {
        Mode::AtLeastOnce => Box::new(AtLeastOnce::new(config.grace, telemetry.clone())),
        Mode::ExactlyOnce => Box::new(ExactlyOnce::new(telemetry.clone())),
    };
    telemetry.emit(SetRunning {
        version: 1,
        sha256: "",
        plugins: &plugin_labels(&chain),
    });
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chain,
            out,
            delivery,
            workers: BTreeMap::new(),
            assigned: Vec::new(),
            error: None,
            failed: false,
            held_until: None,
            keeper,
        }),
        telemetry: telemetry.clone(),
        updates,
        settings,
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
    // Plugins loaded and subscribed: ready, assigned partitions or not (a
    // replica beyond the partition count is a hot standby, not a failure).
    telemetry.health.set_ready(true);
    tracing::info!(
        group = %config.group,
        inputs = ?config.input_topics,
        output = %config.output_topic,
        delivery = ?config.delivery,
        kafka = ?config.kafka,
        "pipeline started"
    );

    let result = run_loop(&shared, &source, &shutdown);
    telemetry.health.set_ready(false);
    let drained = match &result {
        Ok(()) => drain(&shared, &source),
        Err(_) => {
            let mut state = shared.state();
            state.failed = true;
            let State { out, delivery, .. } = &mut *state;
            delivery.abandon(out);
            Ok(())
        }
    };
    result.and(drained)
}

fn run_loop<P: Producer + Send + 'static>(
    shared: &Shared<P>,
    source: &Source,
    shutdown: &AtomicBool,
) -> anyhow::Result<()> {
    let settings = &shared.settings;
    let mut last_commit = Instant::now();
    // The clock is read once a round: reading it is a measurable share of
    // a record's cost.
    let mut now = last_commit;
    let mut polled: Vec<Polled<'_>> = Vec::new();
    // The last round read nothing and ran nothing: this one waits first.
    let mut idle = false;
    while !shutdown.load(Ordering::Relaxed) {
        if idle {
            let timeout = shared.state().wait(settings, now);
            source.wait(timeout);
        }
        // Events and records are taken without the state's lock
        // (rebalance callbacks take it), then put in their batches under
        // one lock for the round.
        polled.clear();
        let round = source.poll_many(settings.batch_records, &mut polled);
        if let Some(e) = round.error {
            tracing::warn!(error = %e, "kafka consumer error; retrying");
            if polled.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        now = Instant::now();
        shared.telemetry.health.beat_at(now);
        let mut state = shared.state();
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        state.start_assigned(source, &shared.telemetry)?;
        route(&mut state, &polled, now, &shared.settings.codec);
        if let Some(until) = state.held_until {
            if now < until {
                // Paused again each round: partitions assigned meanwhile too.
                source.hold(true);
                idle = true;
                continue;
            }
            state.held_until = None;
            source.hold(false);
        }
        // A partition's own queue is read once the consumer's holds none
        // of its records.
        let read = polled.len()
            + if round.drained {
                state.read(source, settings, now)
            } else {
                0
            };
        if let Some(new) = shared.updates.as_ref().and_then(|u| u.take()) {
            swap(shared, &mut state, source, new)?;
            last_commit = Instant::now();
        }
        let due: Vec<TopicPartition> = state
            .workers
            .iter()
            .filter(|(_, w)| w.is_due(settings, now))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &due {
            state.process(tp, settings, &shared.telemetry)?;
        }
        // Delivery reports: after producing, and while idle.
        idle = read == 0 && due.is_empty();
        if !due.is_empty() || read == 0 {
            state.out.producer.poll();
        }
        if state.out.producer.is_fatal() {
            let State { out, delivery, .. } = &mut *state;
            let reread = delivery.producer_failed(out, source)?;
            state.apply(reread, &shared.telemetry)?;
        }
        if now.saturating_duration_since(last_commit) >= settings.commit_interval
            || state.delivery.is_poisoned()
        {
            state.commit(source, &shared.telemetry)?;
            last_commit = Instant::now();
        }
    }
    Ok(())
}

/// Puts each record of a poll round in its partition's batch. A record of
/// a partition no longer ours, or polled before the rebalance that gave
/// the partition to its worker, is left for whoever reads it next.
fn route<P: Producer>(state: &mut State<P>, polled: &[Polled<'_>], now: Instant, codec: &Codec) {
    let State {
        workers, delivery, ..
    } = state;
    for p in polled {
        let Some((tp, w)) = workers
            .iter_mut()
            .find(|(tp, _)| tp.partition == p.partition() && tp.topic == p.topic())
        else {
            continue;
        };
        if p.generation() < w.since {
            continue;
        }
        w.take(tp, &p.fetched(), now, &mut **delivery, codec);
    }
}

/// Swaps in a new plugin set between batches. Under exactly-once the open
/// transaction (all of it processed by the old set) is committed first, so
/// the swap falls between transactions; a partition's later records are
/// never processed by an older set than its earlier ones.
fn swap<P: Producer>(
    shared: &Shared<P>,
    state: &mut State<P>,
    source: &Source,
    new: Loaded,
) -> anyhow::Result<()> {
    if state.delivery.transactional() {
        state.commit(source, &shared.telemetry)?;
    }
    let planned = match state.keeper.plan(&new.chain) {
        Ok(planned) => planned,
        Err(e) => {
            shared.telemetry.emit(SetRefused {
                error: &format!("version {}: {e:#}", new.version),
            });
            return Ok(());
        }
    };
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
    let moved = state.keeper.adopt(planned);
    for (tp, mut instance) in instances {
        if let Some(w) = state.workers.get_mut(&tp) {
            state
                .keeper
                .hand_over(&tp, &mut w.chain, &mut instance, &moved, &shared.telemetry)?;
            w.chain = instance;
        }
    }
    state.chain = new.chain;
    shared.telemetry.emit(SetRunning {
        version: new.version,
        sha256: &new.sha256,
        plugins: &plugin_labels(&state.chain),
    });
    Ok(())
}

/// Shutdown: process what was read, deliver it, commit, leave the group.
fn drain<P: Producer + Send + 'static>(shared: &Shared<P>, source: &Source) -> anyhow::Result<()> {
    let deadline = Instant::now() + shared.settings.grace;
    {
        let mut state = shared.state();
        let pending: Vec<TopicPartition> = state.workers.keys().cloned().collect();
        for tp in &pending {
            // A run a cut short leaves records; what is not processed by
            // the deadline is read again by the partition's next owner.
            while state.workers.get(tp).is_some_and(|w| !w.is_idle())
                && !state.delivery.is_poisoned()
                && Instant::now() < deadline
            {
                state.process(tp, &shared.settings, &shared.telemetry)?;
            }
        }
        let State { out, delivery, .. } = &mut *state;
        delivery.drain(out, source, deadline)?;
    }
    source.leave();
    let state = shared.state();
    if let Some(e) = &state.error {
        return Err(anyhow!("{e:#}"));
    }
    shared.telemetry.emit(PipelineStopped);
    Ok(())
}
