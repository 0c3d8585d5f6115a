//! Plugins' keyed state in the pipeline: the stores on disk, each stateful
//! plugin's changelog topic, a partition's state restored before its first
//! record, a batch's writes produced to the changelog with the batch's
//! outputs (in its transaction under exactly-once, acknowledged before its
//! offset is committed under at-least-once), and applied to the store once
//! final. When Kafka makes the pipeline read a partition again, its writes
//! not yet final are dropped and the store caught up from the changelog.
//!
//! A plugin that imports the state interface may never write (a language
//! runtime imports every interface of its world): its changelog topic is
//! made at its first write, and a partition whose plugin has no changelog
//! topic yet starts with no state.

use crate::config::ValidConfig;
use crate::kafka::changelog::{self, Ensured};
use crate::kafka::{BatchAck, OutRecord, Producer, Refusal, SendError, TopicPartition};
use crate::ops::Telemetry;
use crate::ops::events::{
    ChangelogWritten, StateOf, StateReleased, StateRestored, StateRestoring, StateSize,
};
use crate::runtime::{Chain, ChainInstance, Plugin};
use crate::state::{PartitionState, StateLimits, StoreMemory, Stores};
use anyhow::{Context as _, bail};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long creating, checking or reading a changelog may take.
const CHANGELOG_TIMEOUT: Duration = Duration::from_secs(120);

/// The state of the pipeline's stateful plugins.
pub struct Keeper {
    /// Opened when a plugin that keeps state first needs them.
    stores: std::sync::OnceLock<Stores>,
    config: ValidConfig,
    /// Changelog topic per stateful plugin, by plugin name.
    changelogs: BTreeMap<String, String>,
    /// The changelog topics known to exist (made, or found and checked).
    existing: RefCell<BTreeSet<String>>,
    limits: StateLimits,
}

/// A batch whose changelog records are queued: its writes become the
/// store's when the batch's input offset is final.
pub struct SealedBatch {
    /// The input offset after the batch.
    next: i64,
    ack: Arc<BatchAck>,
    /// (plugin, changelog topic, the batch's sequence number in the
    /// plugin's pending writes).
    seals: Vec<(String, String, u64)>,
}

/// A worker's batches sealed and not yet final, oldest first.
pub type Sealed = VecDeque<SealedBatch>;

impl Keeper {
    /// The keeper of the state of `chain`'s plugins, and of those of the
    /// sets reloaded after it.
    pub fn new(config: &ValidConfig, chain: &Chain) -> anyhow::Result<Keeper> {
        let mut keeper = Keeper {
            stores: std::sync::OnceLock::new(),
            config: config.clone(),
            changelogs: BTreeMap::new(),
            existing: RefCell::default(),
            limits: StateLimits::default(),
        };
        let planned = keeper.plan(chain)?;
        keeper.adopt(planned);
        Ok(keeper)
    }

    fn stores(&self) -> anyhow::Result<&Stores> {
        if let Some(stores) = self.stores.get() {
            return Ok(stores);
        }
        let dir = &self.config.state_dir;
        let (opened, rebuilt) =
            Stores::open_or_rebuild(dir, StoreMemory::default()).with_context(|| {
                format!(
                    "opening the state store in {} (--state-dir, WASMPIPE_STATE_DIR)",
                    dir.display()
                )
            })?;
        if let Some(why) = rebuilt {
            tracing::warn!(
                dir = %dir.display(),
                error = why,
                "the state store could not be opened and was made anew; every partition's state is restored from its changelog"
            );
        }
        Ok(self.stores.get_or_init(|| opened))
    }

    /// The changelog topic of each plugin of `chain` that keeps state, by
    /// plugin name; refuses names that would mix its state with records.
    pub fn plan(&self, chain: &Chain) -> anyhow::Result<BTreeMap<String, String>> {
        let config = &self.config;
        let mut planned = BTreeMap::new();
        for plugin in chain.plugins.iter().filter(|p| p.is_stateful()) {
            let topic =
                crate::state::changelog::topic_name(&config.group, &plugin.name, &plugin.state)?;
            let clash = if config.input_topics.contains(&topic) {
                Some("an input topic")
            } else if topic == config.output_topic {
                Some("the output topic")
            } else if config.dlq_topic.as_ref() == Some(&topic) {
                Some("the dead-letter topic")
            } else if planned.values().any(|t| *t == topic) {
                Some("another plugin's changelog")
            } else {
                None
            };
            if let Some(what) = clash {
                bail!(
                    "the changelog topic of plugin {} is {topic}, which is also {what}: a \
                     changelog holds only that plugin's state; give it another `state.changelog`",
                    plugin.name
                );
            }
            planned.insert(plugin.name.clone(), topic);
        }
        Ok(planned)
    }

    /// Refuses an output to a changelog of this pipeline's plugins (one in
    /// use, or one a name or generation left behind): a plugin routing a
    /// record there would rewrite another key's state.
    pub fn guard(&self, topic: &str) -> Result<(), Refusal> {
        if topic == self.config.output_topic {
            // Never a changelog (see `plan`), whatever its name.
            return Ok(());
        }
        let ours = self.changelogs.values().any(|t| t == topic)
            || topic
                .strip_prefix(self.config.group.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.ends_with("-changelog") || rest.contains("-changelog-"));
        if !ours {
            return Ok(());
        }
        Err(Refusal {
            reason: "state_topic",
            message: "it is a changelog topic of this pipeline's plugin state".into(),
        })
    }

    /// Takes `planned` (from [`Keeper::plan`]) as the changelogs of the
    /// running chain. The plugins whose changelog changed: their state
    /// starts over from the new one.
    pub fn adopt(&mut self, planned: BTreeMap<String, String>) -> BTreeSet<String> {
        let moved = planned
            .iter()
            .filter(|(name, topic)| self.changelogs.get(*name).is_some_and(|t| t != *topic))
            .map(|(name, _)| name.clone())
            .collect();
        self.changelogs = planned;
        moved
    }

    /// Makes `topic` compacted with the input's partition count if absent,
    /// or checks it; `create: false` only looks. Whether it exists now.
    fn ensure(&self, plugin: &str, topic: &str, create: bool) -> anyhow::Result<bool> {
        if self.existing.borrow().contains(topic) {
            return Ok(true);
        }
        let config = &self.config;
        let exists =
            crate::kafka::partitions_if_any(&config.kafka, topic, CHANGELOG_TIMEOUT)?.is_some();
        if !exists && !create {
            return Ok(false);
        }
        let [input] = config.input_topics.as_slice() else {
            bail!(
                "plugin {plugin} keeps state, which needs one input topic (its changelog has the \
                 input's partitions); this pipeline reads {}: run one pipeline per input topic",
                config.input_topics.len()
            );
        };
        let partitions = crate::kafka::partition_count(&config.kafka, input, CHANGELOG_TIMEOUT)?;
        let ensured = block_on(changelog::ensure_topic(
            &config.kafka,
            topic,
            partitions,
            None,
            CHANGELOG_TIMEOUT,
        ))??;
        if ensured == Ensured::Created {
            // Written to (and read) at once: wait until the brokers serve
            // its partitions, or a transaction would be refused.
            let deadline = Instant::now() + CHANGELOG_TIMEOUT;
            while crate::kafka::partitions_if_any(&config.kafka, topic, CHANGELOG_TIMEOUT)?
                != Some(partitions)
            {
                if Instant::now() > deadline {
                    bail!(
                        "changelog topic {topic} was made but its partitions are not served after {CHANGELOG_TIMEOUT:?}"
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        tracing::info!(
            plugin,
            changelog = topic,
            created = ensured == Ensured::Created,
            "plugin keeps state"
        );
        self.existing.borrow_mut().insert(topic.to_owned());
        Ok(true)
    }

    /// Makes the changelog topics the batch just run on `chain` is about
    /// to write to.
    pub fn ready(&self, chain: &mut ChainInstance) -> anyhow::Result<()> {
        for (plugin, state) in chain.states_mut() {
            if let Some(topic) = self.changelogs.get(&plugin.name)
                && state.pending().has_open()
            {
                self.ensure(&plugin.name, topic, true)?;
            }
        }
        Ok(())
    }

    /// Restores the state of every stateful plugin of `chain` on `tp` from
    /// its changelog (the tail past the store's checkpoint, or all of it)
    /// and lends it to the plugin.
    pub fn restore(
        &self,
        tp: &TopicPartition,
        chain: &mut ChainInstance,
        telemetry: &Telemetry,
    ) -> anyhow::Result<()> {
        chain.lend_states(|plugin| self.restore_plugin(tp, plugin, telemetry))
    }

    /// Hands the states `old` holds to the plugins of the same name in
    /// `new` (a reload keeps a plugin's state); a plugin new to the chain,
    /// or one whose changelog `moved`, gets its state restored.
    pub fn hand_over(
        &self,
        tp: &TopicPartition,
        old: &mut ChainInstance,
        new: &mut ChainInstance,
        moved: &BTreeSet<String>,
        telemetry: &Telemetry,
    ) -> anyhow::Result<()> {
        let mut states = old.take_states();
        states.retain(|(name, _)| !moved.contains(name));
        new.lend_states(
            |plugin| match states.iter().position(|(n, _)| *n == plugin.name) {
                Some(i) => Ok(states.swap_remove(i).1),
                None => self.restore_plugin(tp, plugin, telemetry),
            },
        )
    }

    fn restore_plugin(
        &self,
        tp: &TopicPartition,
        plugin: &Plugin,
        telemetry: &Telemetry,
    ) -> anyhow::Result<PartitionState> {
        let topic = self
            .changelogs
            .get(&plugin.name)
            .with_context(|| format!("plugin {} has no changelog topic", plugin.name))?;
        // A store is the changelog's copy: named after it, so a plugin
        // moved to another changelog never reads the old one's checkpoint.
        let store = self.stores()?.partition(topic, &tp.topic, tp.partition)?;
        let of = (plugin.name.as_str(), tp.topic.as_str(), tp.partition);
        if !self.ensure(&plugin.name, topic, false)? {
            // No changelog: no state anywhere (a deleted changelog
            // resets it), whatever this disk kept.
            store.clear()?;
            let state = PartitionState::new(store, self.limits);
            report_size(&state, of, telemetry);
            return Ok(state);
        }
        let started = Instant::now();
        let _restoring = telemetry.health.restoring();
        let restored = changelog::restore(
            &self.config.kafka,
            topic,
            tp.partition,
            &store,
            CHANGELOG_TIMEOUT,
            |next, end| {
                telemetry.health.beat_at(Instant::now());
                telemetry.emit(StateRestoring {
                    state: of,
                    remaining: (end - next).max(0),
                });
            },
        )
        .with_context(|| format!("restoring plugin {}'s state of {tp}", plugin.name))?;
        telemetry.emit(StateRestored {
            state: of,
            records: restored.records,
            from: restored.from,
            to: restored.to,
            cleared: restored.cleared,
            took: started.elapsed(),
        });
        let state = PartitionState::new(store, self.limits);
        report_size(&state, of, telemetry);
        Ok(state)
    }

    /// The partition is read again from its last final offset: writes not
    /// final are dropped, and the stores caught up with the changelog
    /// (what a settled transaction committed is there).
    pub fn rewound(
        &self,
        tp: &TopicPartition,
        chain: &mut ChainInstance,
        sealed: &mut Sealed,
        telemetry: &Telemetry,
    ) -> anyhow::Result<()> {
        sealed.clear();
        drop(chain.take_states());
        self.restore(tp, chain, telemetry)
    }

    /// The changelog topics `chain`'s batches write to.
    pub fn ack_for(&self, chain: &ChainInstance) -> BatchAck {
        BatchAck::tracking(
            chain
                .plugins()
                .filter_map(|p| self.changelogs.get(&p.name).map(String::as_str)),
        )
    }

    /// Queues the changelog records of the batch just run on `tp`, with
    /// its outputs' `ack`; the batch ends before input offset `next`.
    #[allow(clippy::too_many_arguments)]
    pub fn seal<P: Producer>(
        &self,
        tp: &TopicPartition,
        next: i64,
        chain: &mut ChainInstance,
        sealed: &mut Sealed,
        producer: &P,
        ack: &Arc<BatchAck>,
        telemetry: &Telemetry,
    ) -> Result<(), SendError> {
        let mut seals = Vec::new();
        let mut written = 0u64;
        for (plugin, state) in chain.states_mut() {
            let Some(topic) = self.changelogs.get(&plugin.name) else {
                continue;
            };
            let Some((seq, writes)) = state.pending().seal() else {
                continue;
            };
            for (key, value) in crate::state::changelog::records(writes) {
                producer.send(
                    OutRecord {
                        topic,
                        key: Some(key),
                        value,
                        headers: std::iter::empty(),
                        timestamp: None,
                        partition: Some(tp.partition),
                    },
                    ack,
                )?;
                written += 1;
            }
            seals.push((plugin.name.clone(), topic.clone(), seq));
        }
        if !seals.is_empty() {
            telemetry.emit(ChangelogWritten { records: written });
            sealed.push_back(SealedBatch {
                next,
                ack: ack.clone(),
                seals,
            });
        }
        Ok(())
    }

    /// The input of `tp` is final up to `next`: the writes of the batches
    /// before it go to the stores, with how far each changelog has them.
    pub fn committed(
        &self,
        tp: &TopicPartition,
        chain: &mut ChainInstance,
        sealed: &mut Sealed,
        next: i64,
        telemetry: &Telemetry,
    ) -> anyhow::Result<()> {
        while sealed.front().is_some_and(|s| s.next <= next) {
            let Some(batch) = sealed.pop_front() else {
                break;
            };
            for (plugin, state) in chain.states_mut() {
                for (name, topic, seq) in &batch.seals {
                    // A plugin since moved to another changelog has a new
                    // state: the old one's writes are not its.
                    if *name != plugin.name || self.changelogs.get(name) != Some(topic) {
                        continue;
                    }
                    // A store's checkpoint may lag (it is read again from
                    // there), never lead: without an offset, it stays.
                    let changelog_next = match batch.ack.highest(topic) {
                        Some(highest) => highest + 1,
                        None => state.store().changelog_next()?.unwrap_or(0),
                    };
                    state.made_durable(*seq, changelog_next)?;
                    report_size(state, (&plugin.name, &tp.topic, tp.partition), telemetry);
                }
            }
        }
        Ok(())
    }

    /// `tp` is no longer this process's: its state's gauges go.
    pub fn released(&self, tp: &TopicPartition, chain: &ChainInstance, telemetry: &Telemetry) {
        for plugin in chain
            .plugins()
            .filter(|p| self.changelogs.contains_key(&p.name))
        {
            telemetry.emit(StateReleased {
                state: (&plugin.name, &tp.topic, tp.partition),
            });
        }
    }
}

fn report_size(state: &PartitionState, of: StateOf<'_>, telemetry: &Telemetry) {
    let store = state.store();
    telemetry.emit(StateSize {
        state: of,
        entries: store.approximate_len() as u64,
        disk_bytes: store.disk_bytes(),
    });
}

/// Runs `future` to completion on a runtime of its own: the pipeline's
/// thread has none.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime to create the changelog topics")?
        .block_on(future))
}
