//! One live instance of a plugin: its store, the typed handle to its
//! exports, and the call that runs a batch under the plugin's limits.

use super::bindings::{flat, flat_v2, typed, typed_v2, types};
use super::deadline_ticks;
use super::error::{Failure, LoadError};
use super::load::{Exports, Plugin};
use super::state::HostState;
use crate::record::{Batch, OutputBatch, Outputs, RecordError, TimestampType};
use std::sync::Arc;
use wasmpipe_abi::{Output, OutputHeaders};
use wasmtime::Store;
use wasmtime::component::Instance;

#[derive(Clone)]
enum Guest {
    Flat(flat::Guest),
    Typed(typed::Guest),
    FlatV2(flat_v2::Guest),
    TypedV2(typed_v2::Guest),
}

/// A plugin instance owned by one worker. Not shared: calls are sync, on
/// the worker's own thread.
pub struct PluginInstance {
    plugin: Arc<Plugin>,
    store: Store<HostState>,
    guest: Guest,
    /// A call trapped or hit a limit: the instance may be left mid-call
    /// and must be replaced before it runs again.
    poisoned: bool,
}

impl Plugin {
    /// A fresh instance with `init` already run on this plugin's config.
    pub fn instantiate(self: &Arc<Self>) -> Result<PluginInstance, LoadError> {
        let link = |e: wasmtime::Error| LoadError::Link {
            path: self.name.clone().into(),
            message: format!("{e:#}"),
        };
        let mut store = Store::new(
            self.runtime.engine(),
            HostState::new(&self.name, self.limits.memory_bytes),
        );
        store.limiter(|s| &mut s.limiter);
        // Every list and string a call copies out of the plugin (outputs,
        // topics, errors, log lines) is counted against this before it is
        // copied: aliased spans cannot make the host allocate more.
        store.set_hostcall_fuel(self.limits.output_bytes);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(self.limits.deadline));
        let instance: Instance = self.pre.instantiate(&mut store).map_err(link)?;
        let guest = match &self.exports {
            Exports::Flat(indices) => {
                Guest::Flat(indices.load(&mut store, &instance).map_err(link)?)
            }
            Exports::Typed(indices) => {
                Guest::Typed(indices.load(&mut store, &instance).map_err(link)?)
            }
            Exports::FlatV2(indices) => {
                Guest::FlatV2(indices.load(&mut store, &instance).map_err(link)?)
            }
            Exports::TypedV2(indices) => {
                Guest::TypedV2(indices.load(&mut store, &instance).map_err(link)?)
            }
        };
        let mut instance = PluginInstance {
            plugin: self.clone(),
            store,
            guest,
            poisoned: false,
        };
        instance.init()?;
        Ok(instance)
    }
}

impl PluginInstance {
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Whether a call failed as a whole (see [`PluginInstance::transform`]).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn init(&mut self) -> Result<(), LoadError> {
        let name = self.plugin.name.clone();
        let mut config = self.plugin.config.clone();
        if let Some(script) = &self.plugin.script {
            config.push((super::load::SCRIPT_SOURCE_KEY.into(), script.text.clone()));
            config.push((
                super::load::SCRIPT_NAME_KEY.into(),
                script.file_name.clone(),
            ));
        }
        let config: Vec<(&str, &str)> = config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let guest = self.guest.clone();
        let result = self.call(|store| match &guest {
            Guest::Flat(g) => g.call_init(store, &config),
            Guest::Typed(g) => g.call_init(store, &config),
            Guest::FlatV2(g) => g.call_init(store, &config),
            Guest::TypedV2(g) => g.call_init(store, &config),
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(LoadError::InitRefused { name, message }),
            Err(failure) => Err(LoadError::InitFailed { name, failure }),
        }
    }

    /// Runs `batch` through the plugin. `Err` is a failure of the whole call
    /// (a trap or a limit): the instance must then be replaced. Per-record
    /// errors the guest returned are in the output's `errors`.
    pub fn transform(&mut self, batch: &Batch) -> Result<OutputBatch, Failure> {
        let stateful = self.store.data().keyed.state.is_some();
        if stateful {
            self.store
                .data_mut()
                .keyed
                .begin(batch.iter().map(|r| r.timestamp()));
        }
        // The guest's handles, copied: the call borrows the instance.
        let out = match self.guest.clone() {
            Guest::Flat(g) => self.transform_flat(|s, b| g.call_transform(s, b), batch),
            Guest::FlatV2(g) => self.transform_flat(|s, b| g.call_transform(s, b), batch),
            Guest::Typed(g) => self.transform_typed(|s, r| g.call_transform(s, r), batch),
            Guest::TypedV2(g) => self.transform_typed(|s, r| g.call_transform(s, r), batch),
        };
        if stateful {
            let keyed = &mut self.store.data_mut().keyed;
            keyed.end();
            if let Some(message) = keyed.unavailable.take() {
                self.poisoned = true;
                return Err(Failure::StateUnavailable(message));
            }
        }
        out
    }

    /// Lends the plugin its state on the worker's partition.
    pub fn lend_state(&mut self, state: crate::state::PartitionState) {
        self.store.data_mut().keyed.state = Some(state);
    }

    /// The state lent with [`PluginInstance::lend_state`], taken back.
    pub fn take_state(&mut self) -> Option<crate::state::PartitionState> {
        self.store.data_mut().keyed.state.take()
    }

    pub fn state_mut(&mut self) -> Option<&mut crate::state::PartitionState> {
        self.store.data_mut().keyed.state.as_mut()
    }

    /// Takes `fresh`'s place, keeping this instance's state and what it
    /// wrote: an instance is replaced after a trap, its state is not.
    pub fn replace_with(&mut self, mut fresh: PluginInstance) {
        std::mem::swap(
            &mut self.store.data_mut().keyed,
            &mut fresh.store.data_mut().keyed,
        );
        *self = fresh;
    }

    /// Whether any call wrote to the state since the last time this was
    /// asked.
    pub fn take_wrote(&mut self) -> bool {
        std::mem::take(&mut self.store.data_mut().keyed.wrote)
    }

    fn transform_flat(
        &mut self,
        call: impl FnOnce(&mut Store<HostState>, flat::Batch<'_>) -> wasmtime::Result<flat::Output>,
        batch: &Batch,
    ) -> Result<OutputBatch, Failure> {
        // Lent as it is: the call copies it into the guest's memory.
        let index = batch.index();
        let topics: Vec<&str> = batch.topics().iter().map(String::as_str).collect();
        let lent = flat::Batch {
            data: batch.data(),
            records: index.records,
            positions: index.positions,
            headers: index.headers,
            topics: &topics,
        };
        let result = self.call(|store| call(store, lent));
        lift_flat(result?, batch)
    }

    fn transform_typed(
        &mut self,
        call: impl FnOnce(
            &mut Store<HostState>,
            &[types::Record<'_>],
        ) -> wasmtime::Result<Vec<Result<Vec<types::OutputRecord>, String>>>,
        batch: &Batch,
    ) -> Result<OutputBatch, Failure> {
        let headers = lower_headers(batch);
        let records = lower_typed(batch, &headers);
        let results = self.call(|store| call(store, &records))?;
        if results.len() != batch.len() {
            return Err(Failure::Trap(format!(
                "the plugin returned {} results for a batch of {} records",
                results.len(),
                batch.len()
            )));
        }
        Ok(lift_typed(results, batch))
    }

    /// One guest call under the plugin's deadline and memory cap.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let limits = self.plugin.limits;
        let state = self.store.data_mut();
        state.log.reset();
        state.limiter.hit = false;
        state.deadline_hit = false;
        state.deadline = Some(std::time::Instant::now() + limits.deadline);
        self.store
            .set_epoch_deadline(deadline_ticks(limits.deadline));
        f(&mut self.store).map_err(|e| {
            self.poisoned = true;
            let state = self.store.data();
            if state.limiter.hit {
                Failure::Memory(limits.memory_bytes)
            } else if state.deadline_hit
                || matches!(
                    e.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::Interrupt)
                )
            {
                Failure::Deadline(limits.deadline)
            } else if is_fuel_exhausted(&e) {
                Failure::OutputLimit {
                    limit: limits.output_bytes,
                }
            } else {
                Failure::Trap(trap_message(&e, state.log.panic_message()))
            }
        })
    }
}

/// wasmtime refused to copy more out of the plugin than its hostcall fuel
/// (the output limit) allows. Its error type is private; its message is
/// the stable part.
fn is_fuel_exhausted(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().starts_with("too much data is being copied"))
}

/// The trap's reason first, then the guest's panic message if it printed
/// one, then the top of the wasm backtrace.
fn trap_message(e: &wasmtime::Error, panic: Option<String>) -> String {
    let root = e.root_cause().to_string();
    let mut message = root.trim_start_matches("wasm trap: ").to_owned();
    for cause in e.chain().map(|c| c.to_string()) {
        if cause != root && !cause.starts_with("error while executing") {
            message = format!("{message} ({cause})");
        }
    }
    if let Some(panic) = panic {
        message = format!("{message}; guest {panic}");
    }
    if let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let trace = trace.to_string();
        let frames: Vec<&str> = trace
            .lines()
            .filter(|l| !l.starts_with("error while executing"))
            .take(MAX_BACKTRACE_FRAMES)
            .collect();
        message = format!("{message}\nwasm backtrace:\n{}", frames.join("\n"));
    }
    message
}

/// Frames of a wasm backtrace kept in a trap's description.
const MAX_BACKTRACE_FRAMES: usize = 8;

fn timestamp_type(t: TimestampType) -> types::TimestampType {
    match t {
        TimestampType::NotAvailable => types::TimestampType::NotAvailable,
        TimestampType::CreateTime => types::TimestampType::CreateTime,
        TimestampType::LogAppendTime => types::TimestampType::LogAppendTime,
    }
}

/// The plugin's answer, checked against the batch it answers.
fn lift_flat(out: flat::Output, input: &Batch) -> Result<OutputBatch, Failure> {
    let errors = out
        .errors
        .into_iter()
        .map(|e| RecordError {
            source: e.source,
            message: crate::text::capped(&e.message).into_owned(),
        })
        .collect();
    OutputBatch::from_wire(
        out.data,
        &out.records,
        &out.timestamps,
        &out.headers,
        out.topics,
        errors,
        input,
    )
    .map_err(|e| Failure::Trap(format!("the plugin returned a malformed output batch: {e}")))
}

/// Every header of the batch, lent, in record order: the records' header
/// lists are runs of it.
fn lower_headers(batch: &Batch) -> Vec<types::HeaderParam<'_>> {
    batch
        .iter()
        .flat_map(|r| r.headers().iter())
        .map(|(name, value)| types::HeaderParam { name, value })
        .collect()
}

fn lower_typed<'a>(
    batch: &'a Batch,
    headers: &'a [types::HeaderParam<'a>],
) -> Vec<types::Record<'a>> {
    let mut at = 0;
    batch
        .iter()
        .map(|r| {
            let count = r.headers().len();
            let record = types::Record {
                key: r.key(),
                value: r.value(),
                headers: &headers[at..at + count],
                timestamp: r.timestamp(),
                timestamp_type: timestamp_type(r.timestamp_type()),
                topic: r.topic(),
                partition: r.partition(),
                offset: r.offset(),
            };
            at += count;
            record
        })
        .collect()
}

/// Typed results, in the flat layout: the same checks hold by construction.
fn lift_typed(
    results: Vec<Result<Vec<types::OutputRecord>, String>>,
    input: &Batch,
) -> OutputBatch {
    let mut out = Outputs::new(input);
    for (source, result) in results.into_iter().enumerate() {
        out.begin(source as u32);
        match result {
            Err(message) => out.fail(crate::text::capped(&message).into_owned()),
            Ok(records) => {
                for r in &records {
                    out.emit(&Output {
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        headers: OutputHeaders::List(
                            r.headers
                                .iter()
                                .map(|h| (h.name.as_str(), h.value.as_deref()))
                                .collect(),
                        ),
                        timestamp: r.timestamp,
                        topic: r.topic.as_deref(),
                    });
                }
            }
        }
    }
    out.finish()
}
