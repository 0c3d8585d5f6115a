//! What a plugin's store holds: its WASI context (no files, sockets,
//! environment or arguments), the memory limiter, and the log the guest
//! writes to through the `host` interface, stdout and stderr.

use super::bindings;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Log lines a plugin may write per call before the rest are dropped.
const LOG_LINES_PER_CALL: u32 = 256;
/// Longest log line kept; longer ones are cut.
const LOG_LINE_BYTES: usize = 4096;

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: Arc<PluginLog>,
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
            limiter: MemoryLimiter {
                limit: memory_bytes,
                hit: false,
            },
            log,
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
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    bindings::Runtime::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
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
        let fields: Vec<_> = fields.into_iter().take(32).collect();
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

/// Caps linear memory and remembers whether the cap was what failed.
pub struct MemoryLimiter {
    pub limit: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
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
        let mut end = message.len().min(LOG_LINE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
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
        if partial.len() > LOG_LINE_BYTES {
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
