//! A chain of plugins run in order over a batch: each plugin's outputs are
//! the next one's inputs. A record that fails anywhere in the chain fails
//! whole — none of its outputs survive — and every other record goes on.

use super::error::{Failure, LoadError};
use super::instance::PluginInstance;
use super::load::Plugin;
use std::borrow::Cow;
use std::sync::Arc;
use wasmpipe_sdk::flat::{Batch, OutputBatch, RecordParts, TimestampType};

/// The loaded plugins of a pipeline, in order. Shared by all workers.
#[derive(Clone, Debug)]
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

/// What a batch became.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainOutput {
    /// The records to produce. Each carries the topic, partition and
    /// offset of the input record it came from.
    pub records: Batch,
    /// For each output record, the index of its input record.
    pub origin: Vec<u32>,
    /// For each output record, its destination: an index into `routes`,
    /// or `None` for the pipeline's output topic.
    pub route: Vec<Option<u32>>,
    pub routes: Vec<String>,
    /// The input records that failed, in input order, one entry each.
    pub failures: Vec<RecordFailure>,
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

/// A worker's instances of a chain.
pub struct ChainInstance {
    stages: Vec<PluginInstance>,
}

impl ChainInstance {
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.stages.iter().map(|s| s.plugin())
    }

    /// Runs `input` through every plugin. Never fails as a whole: a trap or
    /// a limit hit by the batch is narrowed down to the records that cause
    /// it by running them one at a time on a fresh instance.
    pub fn run(&mut self, input: &Batch) -> ChainOutput {
        let mut failures: Vec<RecordFailure> = Vec::new();
        let mut current = Stage {
            records: Cow::Borrowed(input),
            origin: (0..input.len() as u32).collect(),
            route: vec![None; input.len()],
            routes: Vec::new(),
        };
        for instance in &mut self.stages {
            if current.records.is_empty() {
                break;
            }
            // Route indexes keep their meaning from stage to stage.
            let mut next = Stage::with_routes(current.routes.clone());
            match instance.transform(&current.records) {
                Ok(out) => next.append(&current, &out, &mut |source, f| {
                    failures.push(failure(instance, current.origin[source as usize], f))
                }),
                Err(_) => isolate(instance, &current, &mut next, &mut failures),
            }
            current = next;
        }
        failures.sort_by_key(|f| f.index);
        failures.dedup_by_key(|f| f.index);
        current.into_output(failures)
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

/// The batch trapped or hit a limit: replace the instance and run each
/// record alone, replacing the instance again after each record that fails.
fn isolate(
    instance: &mut PluginInstance,
    stage: &Stage<'_>,
    next: &mut Stage<'static>,
    failures: &mut Vec<RecordFailure>,
) {
    let mut fresh = true;
    *instance = match respawn(instance) {
        Some(i) => i,
        None => {
            // The plugin cannot even be instantiated again (its init now
            // fails): every record of the batch fails with that reason.
            for &index in &stage.origin {
                failures.push(failure(
                    instance,
                    index,
                    Failure::Trap("the plugin could not be re-instantiated after a trap".into()),
                ));
            }
            return;
        }
    };
    for i in 0..stage.records.len() {
        let mut single = Batch::default();
        // Records of a host-built batch always read back.
        let record = stage
            .records
            .get(i)
            .expect("host-built batches follow the flat layout");
        single
            .push(&record)
            .expect("one record of a valid batch fits a batch");
        let one = Stage {
            records: Cow::Owned(single),
            origin: vec![stage.origin[i]],
            route: vec![stage.route[i]],
            routes: Vec::new(),
        };
        if !fresh {
            match respawn(instance) {
                Some(i) => *instance = i,
                None => {
                    failures.push(failure(
                        instance,
                        stage.origin[i],
                        Failure::Trap(
                            "the plugin could not be re-instantiated after a trap".into(),
                        ),
                    ));
                    continue;
                }
            }
            fresh = true;
        }
        match instance.transform(&one.records) {
            Ok(out) => {
                next.append(&one, &out, &mut |_, f| {
                    failures.push(failure(instance, stage.origin[i], f))
                });
            }
            Err(f) => {
                failures.push(failure(instance, stage.origin[i], f));
                fresh = false;
            }
        }
    }
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
        for e in &out.errors {
            failed(e.source, Failure::Guest(e.message.clone()));
        }
        // Sized once: most plugins emit about as much as they read.
        let records = self.records.to_mut();
        records
            .data
            .reserve(input.records.data.len() + out.data.len());
        records.records.reserve(out.len());
        records.headers.reserve(out.headers.len());
        self.origin.reserve(out.len());
        self.route.reserve(out.len());
        for i in 0..out.len() {
            // `PluginInstance::transform` validated the output batch.
            let o = out.get(i, &input.records).expect("validated output batch");
            // The source's metadata only: its spans were checked when the
            // batch was built.
            let src = &input.records.records[o.source as usize];
            let (timestamp, timestamp_type) = match o.timestamp {
                Some(t) => (t, TimestampType::CreateTime),
                None => (src.timestamp, src.timestamp_type),
            };
            let parts = RecordParts {
                key: o.key,
                value: o.value,
                timestamp,
                timestamp_type,
                topic: &input.records.topics[src.topic as usize],
                partition: src.partition,
                offset: src.offset,
            };
            if records.push_parts(parts, o.headers.iter()).is_err() {
                failed(
                    o.source,
                    Failure::OutputLimit {
                        size: usize::MAX,
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

    fn into_output(self, failures: Vec<RecordFailure>) -> ChainOutput {
        let failed = |origin: u32| failures.binary_search_by_key(&origin, |f| f.index).is_ok();
        if !self.origin.iter().any(|&o| failed(o)) {
            return ChainOutput {
                records: self.records.into_owned(),
                origin: self.origin,
                route: self.route,
                routes: self.routes,
                failures,
            };
        }
        // Drop every output of a record that failed in a later plugin.
        let (mut records, mut origin, mut route) = (Batch::default(), Vec::new(), Vec::new());
        for (i, record) in self.records.iter().enumerate() {
            if failed(self.origin[i]) {
                continue;
            }
            let record = record.expect("host-built batches follow the flat layout");
            records
                .push(&record)
                .expect("a subset of a valid batch fits a batch");
            origin.push(self.origin[i]);
            route.push(self.route[i]);
        }
        ChainOutput {
            records,
            origin,
            route,
            routes: self.routes,
            failures,
        }
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
