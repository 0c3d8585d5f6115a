//! What can go wrong loading a plugin and running a record through it.

use std::path::PathBuf;
use std::time::Duration;

/// A plugin could not be loaded. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {path}: cannot read it: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("plugin {path}: {reason}")]
    Decompress { path: PathBuf, reason: String },
    #[error(
        "plugin {path}: not a regular file (a directory, device, FIFO or socket); a plugin is a {} file",
        crate::plugin_file::ENDINGS_TEXT
    )]
    NotAFile { path: PathBuf },
    #[error(
        "plugin {path}: larger than {limit} bytes {what}; a plugin this large is refused (strip debug info, build with opt-level \"s\", or split it)"
    )]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        limit: u64,
    },
    #[error("plugin {path}: the script is not UTF-8 text: {reason}")]
    ScriptText { path: PathBuf, reason: String },
    #[error(
        "plugin {path}: a {language} script plugin needs the {language} script runtime \
         ({file}), which is not in {searched}: build it with `{build}` and put it there, \
         or point WASMPIPE_SCRIPT_RUNTIMES at its directory"
    )]
    ScriptRuntime {
        path: PathBuf,
        language: &'static str,
        file: &'static str,
        build: &'static str,
        searched: String,
    },
    #[error(
        "plugin {path}: not a WebAssembly file (no \\0asm header); expected a component built for wasm32-wasip2"
    )]
    NotWasm { path: PathBuf },
    #[error(
        "plugin {path}: a core wasm module, not a component: build it with `cargo build --target wasm32-wasip2` \
         or wrap it with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error("plugin {path}: does not compile: {message}")]
    Compile { path: PathBuf, message: String },
    #[error(
        "plugin {path}: compiling it took {spent}, over its budget; a plugin that needs more is refused (raise {flag} if it is trusted)"
    )]
    CompileBudget {
        path: PathBuf,
        spent: String,
        flag: &'static str,
    },
    #[error(
        "plugin {path}: the process compiling it was killed (SIGKILL), most likely by the out-of-memory killer: \
         this container or machine has less memory than compiling the plugin takes (the Python script runtime \
         takes about 350 MiB, once per start); raise the pod's memory limit"
    )]
    CompileKilled { path: PathBuf },
    #[error(
        "plugin {path}: exports neither wasmpipe:transform/flat-transform nor typed-transform \
         (it exports: {exports}); build it against wit/ with the world flat-plugin or typed-plugin{hint}"
    )]
    WrongWorld {
        path: PathBuf,
        exports: String,
        hint: &'static str,
    },
    #[error(
        "plugin {path}: built against {found}; this host implements wasmpipe:transform@{supported} \
         (and runs plugins built for 0.1.0): rebuild it with an SDK for {supported}"
    )]
    WrongVersion {
        path: PathBuf,
        found: String,
        supported: &'static str,
    },
    #[error(
        "plugin {path}: imports `{import}`, which wasmpipe does not provide; a plugin may import only \
         wasmpipe:transform/host and WASI cli, io, clocks, random (filesystem and sockets are present but empty)"
    )]
    UnsupportedImport { path: PathBuf, import: String },
    #[error("plugin {path}: cannot be linked: {message}")]
    Link { path: PathBuf, message: String },
    #[error("plugin {name}: init refused its config: {message}")]
    InitRefused { name: String, message: String },
    #[error("plugin {name}: init failed: {failure}")]
    InitFailed { name: String, failure: Failure },
}

/// Why one record (or batch) failed inside a plugin. The three families —
/// a trap, a limit, an error the guest returned — stay apart all the way to
/// metrics and dead-letter headers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The guest trapped: a panic, an `unreachable`, a stack overflow, a
    /// malformed output. The message carries the wasm backtrace.
    #[error("trap: {0}")]
    Trap(String),
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    #[error("memory limit of {0} bytes exceeded")]
    Memory(usize),
    /// The plugin returned (or logged) more bytes in one call than the
    /// host copies out of it.
    #[error("output exceeds the limit of {limit} bytes copied out of a plugin per call")]
    OutputLimit { limit: usize },
    /// The guest returned an error for this record.
    #[error("{0}")]
    Guest(String),
    /// The plugin's state store could not be read or written.
    #[error("state store unavailable: {0}")]
    StateUnavailable(String),
    /// Kafka would refuse an output of the record (found before it was
    /// produced, so that the record's state writes go with it).
    #[error("{message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
    /// An output of the record does not fit its topic's format (found
    /// before it was produced, so that the record's state writes go with it).
    #[error("{message}")]
    Format {
        reason: &'static str,
        message: String,
    },
}

/// The family of a [`Failure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    Trap,
    Limit,
    Guest,
    Produce,
    Format,
}

impl FailureKind {
    /// The family's name in dead-letter headers and the harness's output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Limit => "limit",
            FailureKind::Guest => "error",
            FailureKind::Produce => "produce",
            FailureKind::Format => "format",
        }
    }
}

impl Failure {
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::Trap(_) => FailureKind::Trap,
            Failure::Deadline(_)
            | Failure::Memory(_)
            | Failure::OutputLimit { .. }
            | Failure::StateUnavailable(_) => FailureKind::Limit,
            Failure::Guest(_) => FailureKind::Guest,
            Failure::Refused { .. } => FailureKind::Produce,
            Failure::Format { .. } => FailureKind::Format,
        }
    }

    /// A bounded label for metrics and dead-letter headers.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "trap",
            Failure::Deadline(_) => "deadline",
            Failure::Memory(_) => "memory",
            Failure::OutputLimit { .. } => "output_limit",
            Failure::Guest(_) => "guest_error",
            Failure::StateUnavailable(_) => "state_unavailable",
            Failure::Refused { reason, .. } | Failure::Format { reason, .. } => reason,
        }
    }
}
