//! The `state` interface of `wasmpipe:transform@0.2.0`: a plugin's calls
//! on its keyed state, served from the [`PartitionState`] its worker lent
//! the instance. Limits a plugin hits are its record's failure; a store
//! that cannot be read is not, and is kept aside for the chain to report.

use super::bindings::{host, host_v2, state as wit};
use super::state::HostState;
use crate::state::{PartitionState, StateError};
use std::ops::Bound;

/// Scan results returned by one call, at most, whatever `limit` asks.
pub const MAX_SCAN_ENTRIES: u32 = 10_000;

/// What an instance holds for its plugin's state calls.
#[derive(Debug, Default)]
pub struct Keyed {
    /// The plugin's state on the worker's partition, if it keeps state.
    pub state: Option<PartitionState>,
    /// The highest timestamp up to each record of the call's batch: the
    /// stream time `at-record` moves to.
    pub times: Vec<i64>,
    /// The store failed during the call (not the plugin's doing).
    pub unavailable: Option<String>,
    /// Whether the call wrote anything.
    pub wrote: bool,
}

impl Keyed {
    /// Readies the state for a call on a batch with these timestamps.
    pub fn begin(&mut self, timestamps: impl Iterator<Item = i64>) {
        self.times.clear();
        let mut max = i64::MIN;
        self.times.extend(timestamps.map(|t| {
            max = max.max(t);
            max
        }));
        self.unavailable = None;
    }

    /// After the call: stream time covers the whole batch.
    pub fn end(&mut self) {
        if let (Some(state), Some(&last)) = (self.state.as_mut(), self.times.last()) {
            state.observe(last);
        }
    }

    fn state(&mut self) -> Result<&mut PartitionState, wit::StateError> {
        self.state.as_mut().ok_or_else(|| {
            wit::StateError::Unavailable(
                "this host keeps no state for the plugin here (state is kept by `wasmpipe run`; \
                 `wasmpipe plugin test` gives a fresh in-memory state)"
                    .into(),
            )
        })
    }

    /// A state error, as the plugin sees it; a store failure is also kept.
    fn refused(&mut self, e: StateError) -> wit::StateError {
        let message = e.to_string();
        match e {
            StateError::KeyTooLarge { .. } | StateError::ValueTooLarge { .. } => {
                wit::StateError::TooLarge(message)
            }
            StateError::PendingFull { .. } => wit::StateError::Full(message),
            _ => {
                self.unavailable.get_or_insert_with(|| message.clone());
                wit::StateError::Unavailable(message)
            }
        }
    }
}

fn bound(b: &wit::Bound) -> Bound<&[u8]> {
    match b {
        wit::Bound::Unbounded => Bound::Unbounded,
        wit::Bound::Included(k) => Bound::Included(k),
        wit::Bound::Excluded(k) => Bound::Excluded(k),
    }
}

impl wit::Host for HostState {
    fn at_record(&mut self, index: u32) {
        let keyed = &mut self.keyed;
        if let (Some(state), Some(&t)) = (keyed.state.as_mut(), keyed.times.get(index as usize)) {
            state.observe(t);
        }
    }

    fn get(&mut self, key: Vec<u8>) -> Result<Option<Vec<u8>>, wit::StateError> {
        let keyed = &mut self.keyed;
        let found = keyed.state()?.get(&key);
        found.map_err(|e| keyed.refused(e))
    }

    fn put(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), wit::StateError> {
        let keyed = &mut self.keyed;
        let done = keyed.state()?.put(&key, &value, ttl_ms);
        keyed.wrote |= done.is_ok();
        done.map_err(|e| keyed.refused(e))
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<(), wit::StateError> {
        let keyed = &mut self.keyed;
        let done = keyed.state()?.delete(&key);
        keyed.wrote |= done.is_ok();
        done.map_err(|e| keyed.refused(e))
    }

    fn scan(
        &mut self,
        start: wit::Bound,
        end: wit::Bound,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, wit::StateError> {
        let keyed = &mut self.keyed;
        let limit = limit.min(MAX_SCAN_ENTRIES) as usize;
        let found = keyed.state()?.scan((bound(&start), bound(&end)), limit);
        found.map_err(|e| keyed.refused(e))
    }

    fn stream_time(&mut self) -> i64 {
        self.keyed
            .state
            .as_ref()
            .map_or(i64::MIN, PartitionState::stream_time)
    }
}

impl host_v2::Host for HostState {
    fn log(&mut self, level: host_v2::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            host_v2::Level::Trace => host::Level::Trace,
            host_v2::Level::Debug => host::Level::Debug,
            host_v2::Level::Info => host::Level::Info,
            host_v2::Level::Warn => host::Level::Warn,
            host_v2::Level::Error => host::Level::Error,
        };
        host::Host::log(self, level, message, fields);
    }
}
