//! Write a wasmpipe transform in Rust.
//!
//! A plugin is one type implementing [`Transform`]: `init` reads its config,
//! `transform` turns one record into zero or more outputs, or an error that
//! dead-letters that record alone. [`export!`] wires it to the batch ABI.
//!
//! ```
//! use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};
//!
//! struct Upper;
//!
//! impl Transform for Upper {
//!     fn init(_config: &Config) -> Result<Self, Error> {
//!         Ok(Upper)
//!     }
//!
//!     fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
//!         let value = record.value().map(|v| v.to_ascii_uppercase());
//!         out.emit(&record.to_output().value(value.as_deref()));
//!         Ok(())
//!     }
//! }
//!
//! wasmpipe_sdk::export!(Upper);
//! ```
//!
//! The same code compiles natively, so a plugin's logic is unit-tested with
//! plain `cargo test` through [`testing`]; `cargo build --target
//! wasm32-wasip2 --release` makes the component.

extern crate self as wasmpipe_sdk;

pub mod state;
pub mod testing;
pub mod window;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private;

/// The batch layout under the SDK, for hosts and benchmarks.
pub use wasmpipe_abi as abi;
pub use wasmpipe_abi::{Headers, Output, OutputHeaders, Outputs, Record, TimestampType};

use std::fmt;

/// A wasmpipe transform.
pub trait Transform: Sized + 'static {
    /// Builds the plugin from its config (the pipeline file's `config:`
    /// map). An error refuses the config and the host loads nothing.
    fn init(config: &Config) -> Result<Self, Error>;

    /// Transforms one record: call `out.emit` zero or more times, or return
    /// an error to dead-letter this record (whatever it emitted is dropped).
    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error>;
}

/// Runs `plugin` over every record of `batch`, one result per record.
pub fn run_batch<T: Transform>(plugin: &mut T, batch: &abi::Batch) -> abi::OutputBatch {
    let mut out = Outputs::new(batch);
    for (i, record) in batch.iter().enumerate() {
        out.begin(i as u32);
        state::begin_record(i as u32, record.timestamp());
        let result = plugin.transform(&record, &mut out);
        state::end_record(result.is_err());
        if let Err(e) = result {
            out.fail(e.message);
        }
    }
    out.finish()
}

/// A plugin's config: ordered `key = value` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config { entries }
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::msg(format!("missing config key '{key}'")))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Fails on any key not in `known`, naming it: catches typos in config.
    pub fn only(&self, known: &[&str]) -> Result<(), Error> {
        match self.iter().find(|(k, _)| !known.contains(k)) {
            Some((k, _)) if known.is_empty() => Err(Error::msg(format!(
                "unknown config key '{k}': this plugin takes no config"
            ))),
            Some((k, _)) => Err(Error::msg(format!(
                "unknown config key '{k}' (known: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// An error a transform returns: its message travels to the dead-letter
/// record and the host's logs.
pub struct Error {
    message: String,
}

impl Error {
    pub fn msg(message: impl fmt::Display) -> Self {
        Error {
            message: message.to_string(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error::msg(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

/// Log levels of the host's structured log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes a structured log line to the host's log, tagged with the plugin's
/// name. Natively (in tests) it goes to stderr.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    __private::log(level, message, fields);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?} {message} {fields:?}");
}

/// `info!("x = {}", x)`: logs at info level. `trace!`, `debug!`, `warn!` and
/// `error!` work the same.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*), &[]) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*), &[]) };
}
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*), &[]) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*), &[]) };
}
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log($crate::Level::Trace, &format!($($arg)*), &[]) };
}

/// Exports a [`Transform`] as the plugin's component. Call it once, at the
/// crate root of a `cdylib`. Natively it does nothing.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WasmpipeExport;
            $crate::__export_guest!($plugin, WasmpipeExport);
        };
    };
}
