//! What a plugin's store holds: its WASI context (no files, sockets,
//! environment or arguments), the memory limiter, the deadline of the call
//! under way, and the log the guest writes to through the `host`
//! interface, stdout and stderr.

use super::bindings;
use crate::text::{FIELD_BYTES, capped};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::{HasData, HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::sync::io::poll as sync_poll;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;

/// Log lines a plugin may write per call before the rest are dropped.
const LOG_LINES_PER_CALL: u32 = 256;
/// Fields of one log line kept; the rest are dropped.
const LOG_FIELDS: usize = 32;

/// Core instances, memories and tables one plugin instance may create (a
/// component holds several core modules; each counts).
const MAX_INSTANCES: usize = 256;
const MAX_MEMORIES: usize = 64;
const MAX_TABLES: usize = 256;
/// Table elements of one plugin instance, all tables together.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: Arc<PluginLog>,
    /// When the call under way must end: blocking WASI calls (a sleep, a
    /// poll on a clock) wait no longer than this.
    pub deadline: Option<Instant>,
    /// A blocking WASI call was cut short at the deadline.
    pub deadline_hit: bool,
    /// The plugin's keyed state, for the `state` interface.
    pub keyed: super::keyed::Keyed,
}

impl HostState {
    pub fn new(plugin: &str, memory_bytes: usize) -> HostState {
        let log = Arc::new(PluginLog {
            plugin: plugin.to_owned(),
            budget: AtomicU32::new(LOG_LINES_PER_CALL),
            dropped: AtomicU32::new(0),
            recent_stderr: Mutex::default(),
        });
        // Nothing is granted: no preopened directory, no network, no
        // environment, no arguments, no stdin. Clocks and random work.
        let wasi = WasiCtx::builder()
            .stdout(LogStream::new(log.clone(), "stdout"))
            .stderr(LogStream::new(log.clone(), "stderr"))
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            log,
            deadline: None,
            deadline_hit: false,
            keyed: Default::default(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The linker every plugin is instantiated with: WASI p2 and `host`.
/// `wasi:io/poll` — the one place a WASI call blocks (a sleep, a wait on a
/// clock) — is replaced by one that waits no longer than the call's
/// deadline: epoch interruption only stops wasm code, not a host call.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    linker.allow_shadowing(true);
    sync_poll::add_to_linker::<HostState, BoundedPoll>(&mut linker, |s| BoundedIo {
        table: &mut s.table,
        deadline: s.deadline,
        hit: &mut s.deadline_hit,
    })?;
    linker.allow_shadowing(false);
    bindings::Runtime::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The error a blocking WASI call ends with at the deadline; the call
/// turns it into [`super::Failure::Deadline`].
#[derive(Debug, thiserror::Error)]
#[error("the plugin's deadline passed while it waited in a WASI call")]
pub struct DeadlineInHostCall;

struct BoundedPoll;

impl HasData for BoundedPoll {
    type Data<'a> = BoundedIo<'a>;
}

/// `wasi:io/poll` over the store's resource table, bounded by the deadline.
struct BoundedIo<'a> {
    table: &'a mut ResourceTable,
    deadline: Option<Instant>,
    hit: &'a mut bool,
}

impl BoundedIo<'_> {
    fn bounded<R>(
        deadline: Option<Instant>,
        hit: &mut bool,
        wait: impl Future<Output = wasmtime::Result<R>>,
    ) -> wasmtime::Result<R> {
        let Some(deadline) = deadline else {
            return wasmtime_wasi::runtime::in_tokio(wait);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match wasmtime_wasi::runtime::in_tokio(async { tokio::time::timeout(left, wait).await }) {
            Ok(result) => result,
            Err(_elapsed) => {
                *hit = true;
                Err(wasmtime::Error::new(DeadlineInHostCall))
            }
        }
    }
}

impl sync_poll::Host for BoundedIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let table = &mut *self.table;
        Self::bounded(
            self.deadline,
            self.hit,
            async_poll::Host::poll(table, pollables),
        )
    }
}

impl sync_poll::HostPollable for BoundedIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        let table = &mut *self.table;
        Self::bounded(
            self.deadline,
            self.hit,
            async_poll::HostPollable::ready(table, pollable),
        )
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let table = &mut *self.table;
        Self::bounded(
            self.deadline,
            self.hit,
            async_poll::HostPollable::block(table, pollable),
        )
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

impl bindings::types::Host for HostState {}

impl bindings::host::Host for HostState {
    fn log(
        &mut self,
        level: bindings::host::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        use bindings::host::Level;
        // Bytes were counted (hostcall fuel) before they were copied; each
        // field is cut to what a log line holds.
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .take(LOG_FIELDS)
            .map(|(k, v)| (capped(&k).into_owned(), capped(&v).into_owned()))
            .collect();
        self.log.line(
            match level {
                Level::Trace => tracing::Level::TRACE,
                Level::Debug => tracing::Level::DEBUG,
                Level::Info => tracing::Level::INFO,
                Level::Warn => tracing::Level::WARN,
                Level::Error => tracing::Level::ERROR,
            },
            "log",
            &message,
            &fields,
        );
    }
}

/// Caps the memory of one plugin instance — every linear memory of every
/// core instance in the component, together — and remembers whether the
/// cap was what failed.
pub struct MemoryLimiter {
    pub limit: usize,
    pub hit: bool,
    /// Bytes of every memory created or grown so far.
    memory: usize,
    /// Elements of every table.
    table_elements: usize,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            hit: false,
            memory: 0,
            table_elements: 0,
        }
    }
}

/// `total` with one part grown from `current` to `desired`.
fn regrown(total: usize, current: usize, desired: usize) -> usize {
    total.saturating_sub(current).saturating_add(desired)
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called when a memory is created (from 0) and each time one grows.
        let total = regrown(self.memory, current, desired);
        if total > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = regrown(self.table_elements, current, desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Where a plugin's log lines go: the host's log, tagged with its name,
/// with a per-call budget so a plugin cannot flood it.
pub struct PluginLog {
    plugin: String,
    budget: AtomicU32,
    dropped: AtomicU32,
    /// The last stderr lines of the current call: a panicking guest's
    /// message is there, and goes into the trap's description.
    recent_stderr: Mutex<VecDeque<String>>,
}

impl PluginLog {
    /// Starts a call: restores the budget and reports what was dropped.
    pub fn reset(&self) {
        self.recent_stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.budget.store(LOG_LINES_PER_CALL, Ordering::Relaxed);
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(plugin = %self.plugin, dropped, "plugin log lines dropped (over {LOG_LINES_PER_CALL} in one call)");
        }
    }

    /// What a Rust-style panic printed to stderr during this call, if any:
    /// `panicked at src/lib.rs:3:5: the message`.
    pub fn panic_message(&self) -> Option<String> {
        let recent = self.recent_stderr.lock().unwrap_or_else(|e| e.into_inner());
        let at = recent.iter().rposition(|l| l.contains("panicked at"))?;
        let place = recent[at]
            .split_once("panicked at ")
            .map_or("", |(_, p)| p.trim_end_matches(':'));
        let message = recent.get(at + 1).map_or("", String::as_str);
        Some(format!("panicked at {place}: {message}"))
    }

    fn remember_stderr(&self, line: &str) {
        let mut recent = self.recent_stderr.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == 8 {
            recent.pop_front();
        }
        recent.push_back(line.chars().take(512).collect());
    }

    fn line(
        &self,
        level: tracing::Level,
        stream: &str,
        message: &str,
        fields: &[(String, String)],
    ) {
        if self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = capped(message);
        let message = message.as_ref();
        let plugin = self.plugin.as_str();
        let fields = FieldList(fields);
        match level {
            tracing::Level::TRACE => {
                tracing::trace!(target: "wasmpipe::plugin", plugin, stream, %fields, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "wasmpipe::plugin", plugin, stream, %fields, "{message}")
            }
            tracing::Level::INFO => {
                tracing::info!(target: "wasmpipe::plugin", plugin, stream, %fields, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "wasmpipe::plugin", plugin, stream, %fields, "{message}")
            }
            tracing::Level::ERROR => {
                tracing::error!(target: "wasmpipe::plugin", plugin, stream, %fields, "{message}")
            }
        }
    }
}

struct FieldList<'a>(&'a [(String, String)]);

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            write!(f, "{}{k}={v:?}", if i > 0 { " " } else { "" })?;
        }
        Ok(())
    }
}

/// A guest's stdout or stderr: complete lines go to the plugin's log.
#[derive(Clone)]
struct LogStream {
    log: Arc<PluginLog>,
    name: &'static str,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    fn new(log: Arc<PluginLog>, name: &'static str) -> Self {
        LogStream {
            log,
            name,
            partial: Arc::default(),
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; the host loads p2 components.
        Box::new(tokio::io::sink())
    }
}

#[async_trait::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        // A poisoned lock only means another write panicked; keep logging.
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.extend_from_slice(&bytes);
        while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..nl]);
            if self.name == "stderr" {
                self.log.remember_stderr(&text);
            }
            self.log.line(
                tracing::Level::INFO,
                self.name,
                text.trim_end_matches('\r'),
                &[],
            );
        }
        if partial.len() > FIELD_BYTES {
            let text = String::from_utf8_lossy(&partial).into_owned();
            partial.clear();
            self.log.line(tracing::Level::INFO, self.name, &text, &[]);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}
