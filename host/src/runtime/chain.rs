//! A chain of plugins run in order over a batch: each plugin's outputs are
//! the next one's inputs. A record that fails anywhere in the chain fails
//! whole — none of its outputs survive — and every other record goes on.

use super::error::{Failure, LoadError};
use super::instance::PluginInstance;
use super::load::Plugin;
use crate::record::{Batch, Headers, OutHeaders, OutputBatch, RecordParts, TimestampType};
use crate::state::PartitionState;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

mod records;

/// The loaded plugins of a pipeline, in order. Shared by all workers.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub plugins: Vec<Arc<Plugin>>,
}

/// One input record that failed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFailure {
    /// Index of the record in the batch given to [`ChainInstance::run`].
    pub index: u32,
    pub plugin: String,
    pub plugin_sha256: String,
    pub failure: Failure,
}

/// What a batch became. The last plugin's outputs are read in place, from
/// its output batch and the records it was given: nothing is copied between
/// the last plugin and the producer.
pub struct ChainOutput<'a> {
    /// The records the last plugin was given; or the chain's result itself
    /// when no plugin ran or the last one ran record by record.
    stage: Stage<'a>,
    /// The last plugin's outputs for the whole of `stage`.
    last: Option<OutputBatch>,
    /// The input records that failed, in input order, one entry each.
    pub failures: Vec<RecordFailure>,
    /// Input records `0..done` were run through the whole chain; the rest
    /// were left when isolating failing records used up the time allowed
    /// (see [`ChainInstance::run_within`]) and are to be run again.
    pub done: u32,
    /// A plugin's call on the whole batch failed, and its records were run
    /// again one by one: whatever that call did before failing (state it
    /// wrote) happened besides their runs.
    pub(super) isolated: bool,
}

/// One record to produce.
#[derive(Clone, Copy, Debug)]
pub struct ChainRecord<'a> {
    /// Index of the input record it came from.
    pub origin: u32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: ChainHeaders<'a>,
    /// As a plugin set it, else its source's (`None` if that had none).
    pub timestamp: Option<i64>,
    /// A topic a plugin routed it to, or `None` for the pipeline's output topic.
    pub topic: Option<&'a str>,
    /// The source record's topic, partition and offset.
    pub source_topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A [`ChainRecord`]'s headers, wherever they live.
#[derive(Clone, Copy, Debug)]
pub enum ChainHeaders<'a> {
    Input(Headers<'a>),
    Plugin(OutHeaders<'a>),
}

impl<'a> ChainHeaders<'a> {
    /// Every header as `(name, value)`, in order.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let (input, plugin) = match self {
            ChainHeaders::Input(h) => (Some(h.iter()), None),
            ChainHeaders::Plugin(h) => (None, Some(h.iter())),
        };
        input
            .into_iter()
            .flatten()
            .chain(plugin.into_iter().flatten())
    }
}

impl<'a> ChainOutput<'a> {
    /// The same output, holding its own copy of the records it reads from.
    pub fn into_owned(self) -> ChainOutput<'static> {
        let Stage {
            records,
            origin,
            route,
            routes,
        } = self.stage;
        ChainOutput {
            stage: Stage {
                records: Cow::Owned(records.into_owned()),
                origin,
                route,
                routes,
            },
            last: self.last,
            failures: self.failures,
            done: self.done,
            isolated: self.isolated,
        }
    }

    /// The records to produce, in order; none of a record that failed.
    pub fn records(&self) -> impl Iterator<Item = ChainRecord<'_>> + '_ {
        let stage = &self.stage;
        let own = self.last.is_none().then(|| stage.own());
        let outputs = self.last.as_ref().map(|out| stage.outputs(out));
        let failures = &self.failures;
        own.into_iter()
            .flatten()
            .chain(outputs.into_iter().flatten())
            .filter(move |r| {
                failures.is_empty()
                    || failures
                        .binary_search_by_key(&r.origin, |f| f.index)
                        .is_err()
            })
    }
}

impl Chain {
    /// Instances of every plugin for one worker.
    pub fn instantiate(&self) -> Result<ChainInstance, LoadError> {
        Ok(ChainInstance {
            stages: self
                .plugins
                .iter()
                .map(|p| p.instantiate())
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Whether an output could be produced: `None`, or the failure of the
/// record that made it.
pub type Admit<'f> = dyn Fn(&ChainRecord<'_>) -> Option<Failure> + 'f;

/// A worker's instances of a chain.
pub struct ChainInstance {
    stages: Vec<PluginInstance>,
}

impl ChainInstance {
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.stages.iter().map(|s| s.plugin())
    }

    /// Lends each plugin that keeps state what `state_of` gives it.
    pub fn lend_states<E>(
        &mut self,
        mut state_of: impl FnMut(&Plugin) -> Result<PartitionState, E>,
    ) -> Result<(), E> {
        for stage in &mut self.stages {
            if stage.plugin().is_stateful() {
                let state = state_of(stage.plugin())?;
                stage.lend_state(state);
            }
        }
        Ok(())
    }

    /// The state lent to each plugin that has one, with the plugin.
    pub fn states_mut(&mut self) -> impl Iterator<Item = (Arc<Plugin>, &mut PartitionState)> {
        self.stages.iter_mut().filter_map(|s| {
            let plugin = s.plugin().clone();
            s.state_mut().map(|state| (plugin, state))
        })
    }

    /// Takes back every state lent, by plugin name.
    pub fn take_states(&mut self) -> Vec<(String, PartitionState)> {
        self.stages
            .iter_mut()
            .filter_map(|s| Some((s.plugin().name.clone(), s.take_state()?)))
            .collect()
    }

    /// Runs `input` through every plugin. Never fails as a whole: a trap or
    /// a limit hit by the batch is narrowed down to the records that cause
    /// it by running them one at a time on a fresh instance.
    pub fn run<'a>(&mut self, input: &'a Batch) -> ChainOutput<'a> {
        self.run_within(input, None, false)
    }

    /// [`ChainInstance::run`], isolating failing records only until
    /// `until`: a batch of many records that each hit the deadline would
    /// otherwise cost a deadline per record before any of it is produced
    /// or committed. Past `until` (at least one record is always isolated)
    /// the records not yet run are left, and `done` says where they start.
    /// With `isolate`, every record is run alone from the start: the
    /// previous call was cut short, and its remainder likely fails again.
    ///
    /// A chain with a plugin that keeps state runs a batch that had a
    /// failing record again, record by record, when any of its calls wrote
    /// state: which writes were the failing record's cannot be told, and
    /// the records after it may have read them (see `records`). A run's
    /// writes are the states' open batch until the caller seals them
    /// (`Pending::seal`), which it does before the next run.
    pub fn run_within<'a>(
        &mut self,
        input: &'a Batch,
        until: Option<Instant>,
        isolate: bool,
    ) -> ChainOutput<'a> {
        self.run_admitted(input, until, isolate, &|_| None)
    }

    /// [`ChainInstance::run_within`], with `admit` saying of each output
    /// whether it could be produced: with state, a record an output of
    /// which would be refused fails with that refusal, and its writes go
    /// with it. (Without state, the producer refuses it as it comes.)
    pub fn run_admitted<'a>(
        &mut self,
        input: &'a Batch,
        until: Option<Instant>,
        isolate: bool,
        admit: &Admit<'_>,
    ) -> ChainOutput<'a> {
        if self.stages.iter_mut().any(|s| s.state_mut().is_some()) {
            return self.run_stateful(input, until, isolate, admit);
        }
        self.run_stages(input, until, isolate)
    }

    fn run_stages<'a>(
        &mut self,
        input: &'a Batch,
        until: Option<Instant>,
        isolate: bool,
    ) -> ChainOutput<'a> {
        let mut done = input.len() as u32;
        let mut failures: Vec<RecordFailure> = Vec::new();
        let mut current = Stage {
            records: Cow::Borrowed(input),
            origin: (0..input.len() as u32).collect(),
            route: vec![None; input.len()],
            routes: Vec::new(),
        };
        let mut last = None;
        let mut isolated = false;
        let stages = self.stages.len();
        for (n, instance) in self.stages.iter_mut().enumerate() {
            if current.records.is_empty() {
                break;
            }
            // Route indexes keep their meaning from stage to stage.
            let mut next = Stage::with_routes(current.routes.clone());
            if isolate || instance.is_poisoned() {
                if let Some(cut) =
                    isolate_records(instance, &current, &mut next, &mut failures, until)
                {
                    done = done.min(cut);
                }
                current = next;
                continue;
            }
            match instance.transform(&current.records) {
                Ok(out) => {
                    for e in out.errors() {
                        let f = Failure::Guest(e.message.clone());
                        failures.push(failure(instance, current.origin[e.source as usize], f));
                    }
                    if n + 1 == stages {
                        // Read in place by `ChainOutput::records`.
                        last = Some(out);
                        break;
                    }
                    next.append(&current, &out, &mut |source, f| {
                        failures.push(failure(instance, current.origin[source as usize], f))
                    })
                }
                Err(_) => {
                    isolated = true;
                    if let Some(cut) =
                        isolate_records(instance, &current, &mut next, &mut failures, until)
                    {
                        done = done.min(cut);
                    }
                }
            }
            current = next;
        }
        failures.retain(|f| f.index < done);
        failures.sort_by_key(|f| f.index);
        failures.dedup_by_key(|f| f.index);
        ChainOutput {
            stage: current,
            last,
            failures,
            done,
            isolated,
        }
    }
}

fn failure(instance: &PluginInstance, index: u32, failure: Failure) -> RecordFailure {
    RecordFailure {
        index,
        plugin: instance.plugin().name.clone(),
        plugin_sha256: instance.plugin().sha256.clone(),
        failure,
    }
}

/// Runs each record of `stage` alone, on a fresh instance whenever the
/// last call trapped or hit a limit. Past `until`, stops before the next
/// record and returns the input index where the records not run start.
fn isolate_records(
    instance: &mut PluginInstance,
    stage: &Stage<'_>,
    next: &mut Stage<'static>,
    failures: &mut Vec<RecordFailure>,
    until: Option<Instant>,
) -> Option<u32> {
    for (i, record) in stage.records.iter().enumerate() {
        if i > 0 && until.is_some_and(|t| Instant::now() >= t) {
            return Some(stage.origin[i]);
        }
        if instance.is_poisoned() {
            match respawn(instance) {
                Some(fresh) => instance.replace_with(fresh),
                None => {
                    // The plugin cannot even be instantiated again (its
                    // init now fails): the records left fail with that.
                    for &index in &stage.origin[i..] {
                        failures.push(failure(
                            instance,
                            index,
                            Failure::Trap(
                                "the plugin could not be re-instantiated after a trap".into(),
                            ),
                        ));
                    }
                    return None;
                }
            }
        }
        let mut single = Batch::default();
        if single.push(&record).is_err() {
            // Only a batch whose spans share bytes can hold a record
            // larger than the layout; the host builds none.
            let f = Failure::OutputLimit {
                limit: u32::MAX as usize,
            };
            failures.push(failure(instance, stage.origin[i], f));
            continue;
        }
        let one = Stage {
            records: Cow::Owned(single),
            origin: vec![stage.origin[i]],
            route: vec![stage.route[i]],
            routes: Vec::new(),
        };
        match instance.transform(&one.records) {
            Ok(out) => {
                if let Some(e) = out.errors().first() {
                    let f = Failure::Guest(e.message.clone());
                    failures.push(failure(instance, stage.origin[i], f));
                }
                next.append(&one, &out, &mut |_, f| {
                    failures.push(failure(instance, stage.origin[i], f))
                });
            }
            Err(f) => failures.push(failure(instance, stage.origin[i], f)),
        }
    }
    None
}

fn respawn(instance: &PluginInstance) -> Option<PluginInstance> {
    match instance.plugin().instantiate() {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::error!(plugin = %instance.plugin().name, error = %e, "cannot re-instantiate plugin after a trap");
            None
        }
    }
}

/// Records between two plugins, with where each came from and goes to.
struct Stage<'a> {
    records: Cow<'a, Batch>,
    origin: Vec<u32>,
    route: Vec<Option<u32>>,
    routes: Vec<String>,
}

impl Stage<'_> {
    fn with_routes(routes: Vec<String>) -> Stage<'static> {
        Stage {
            records: Cow::Owned(Batch::default()),
            origin: Vec::new(),
            route: Vec::new(),
            routes,
        }
    }

    /// Appends the outputs `out` that a plugin made from `input`.
    fn append(
        &mut self,
        input: &Stage<'_>,
        out: &OutputBatch,
        failed: &mut dyn FnMut(u32, Failure),
    ) {
        // Sized once: most plugins emit about as much as they read.
        let records = self.records.to_mut();
        records.reserve(out.len(), input.records.data_len() + out.data_len());
        self.origin.reserve(out.len());
        self.route.reserve(out.len());
        for o in out.records(&input.records) {
            let (timestamp, timestamp_type) = match o.timestamp {
                Some(t) => (t, TimestampType::CreateTime),
                None => (o.input.timestamp(), o.input.timestamp_type()),
            };
            let parts = RecordParts {
                key: o.key,
                value: o.value,
                timestamp,
                timestamp_type,
                topic: o.input.topic(),
                partition: o.input.partition(),
                offset: o.input.offset(),
            };
            if records.push_parts(parts, o.headers.iter()).is_err() {
                failed(
                    o.source,
                    Failure::OutputLimit {
                        limit: u32::MAX as usize,
                    },
                );
                continue;
            }
            self.origin.push(input.origin[o.source as usize]);
            let route = match o.topic {
                Some(t) => Some(intern(&mut self.routes, t)),
                None => input.route[o.source as usize],
            };
            self.route.push(route);
        }
    }

    /// The stage's own records, to produce.
    fn own(&self) -> impl Iterator<Item = ChainRecord<'_>> + '_ {
        self.records.iter().enumerate().map(|(i, r)| ChainRecord {
            origin: self.origin[i],
            key: r.key(),
            value: r.value(),
            headers: ChainHeaders::Input(r.headers()),
            timestamp: r.known_timestamp(),
            topic: self.route[i].map(|t| self.routes[t as usize].as_str()),
            source_topic: r.topic(),
            partition: r.partition(),
            offset: r.offset(),
        })
    }

    /// The outputs a plugin made from this stage, to produce.
    fn outputs<'o>(&'o self, out: &'o OutputBatch) -> impl Iterator<Item = ChainRecord<'o>> + 'o {
        out.records(&self.records).map(|o| {
            let source = o.source as usize;
            ChainRecord {
                origin: self.origin[source],
                key: o.key,
                value: o.value,
                headers: ChainHeaders::Plugin(o.headers),
                timestamp: o.timestamp.or(o.input.known_timestamp()),
                topic: o
                    .topic
                    .or_else(|| self.route[source].map(|t| self.routes[t as usize].as_str())),
                source_topic: o.input.topic(),
                partition: o.input.partition(),
                offset: o.input.offset(),
            }
        })
    }
}

fn intern(routes: &mut Vec<String>, topic: &str) -> u32 {
    match routes.iter().position(|r| r == topic) {
        Some(i) => i as u32,
        None => {
            routes.push(topic.to_owned());
            routes.len() as u32 - 1
        }
    }
}
