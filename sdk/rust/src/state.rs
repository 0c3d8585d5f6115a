//! Keyed state: bytes under bytes, kept by the host per plugin and input
//! partition, durable in Kafka with the outputs (exactly-once when the
//! pipeline is), restored when a partition moves to another process.
//!
//! ```
//! use wasmpipe_sdk::{state, Config, Error, Outputs, Record, Transform};
//!
//! /// Counts records per key and emits the running count.
//! struct Count;
//!
//! impl Transform for Count {
//!     fn init(_: &Config) -> Result<Self, Error> {
//!         Ok(Count)
//!     }
//!
//!     fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
//!         let Some(key) = record.key() else { return Ok(()) };
//!         let count = state::get(key)?.map_or(0, |v| state::decode_u64(&v)) + 1;
//!         state::put(key, count.to_be_bytes())?;
//!         out.emit(&record.to_output().value(Some(count.to_string().as_bytes())));
//!         Ok(())
//!     }
//! }
//! ```
//!
//! A record that fails (returns an error, traps, hits a limit) leaves none
//! of its writes behind. Time to live is counted in stream time — the
//! highest record timestamp the partition has seen, up to the record being
//! transformed — so a replay reads the same state. Natively (in `cargo
//! test`) the same calls work on an in-memory double with the same rules;
//! [`crate::testing`] resets and inspects it.

use std::fmt;
use std::ops::Bound;
use std::time::Duration;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries fetched per host call while a scan iterates.
const SCAN_PAGE: u32 = 256;

/// Why the host refused a state call. Returned from `transform` with `?`,
/// it fails the record, which is dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// A key or value over the host's limit.
    TooLarge(String),
    /// Too many writes held for one batch.
    Full(String),
    /// The store could not be read.
    Unavailable(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::TooLarge(m) => write!(f, "state: too large: {m}"),
            StateError::Full(m) => write!(f, "state: full: {m}"),
            StateError::Unavailable(m) => write!(f, "state: unavailable: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// The value of `key`, if set and not expired.
pub fn get(key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StateError> {
    backend::get(key.as_ref())
}

/// Sets `key` to `value`.
pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StateError> {
    backend::put(key.as_ref(), value.as_ref(), None)
}

/// Sets `key` to `value` until `ttl` of stream time has passed.
pub fn put_with_ttl(
    key: impl AsRef<[u8]>,
    value: impl AsRef<[u8]>,
    ttl: Duration,
) -> Result<(), StateError> {
    let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    backend::put(key.as_ref(), value.as_ref(), Some(ttl))
}

pub fn delete(key: impl AsRef<[u8]>) -> Result<(), StateError> {
    backend::delete(key.as_ref())
}

/// The partition's stream time in ms since the epoch: the highest record
/// timestamp seen, up to the record being transformed. `None` before any.
pub fn stream_time() -> Option<i64> {
    let t = backend::stream_time();
    (t != i64::MIN).then_some(t)
}

/// Live entries between `start` and `end`, in key order, fetched a page
/// at a time.
pub fn scan(start: Bound<&[u8]>, end: Bound<&[u8]>) -> Scan {
    Scan {
        next: Some(start.map(<[u8]>::to_vec)),
        end: end.map(<[u8]>::to_vec),
        page: Vec::new().into_iter(),
    }
}

/// Live entries whose key starts with `prefix`, in key order.
pub fn scan_prefix(prefix: impl AsRef<[u8]>) -> Scan {
    let prefix = prefix.as_ref();
    // The first key past the prefix: its last byte below 0xff raised by
    // one, what follows it dropped. A prefix of only 0xff bytes has none.
    let mut end = prefix.to_vec();
    let end = loop {
        match end.pop() {
            Some(last) if last < 0xff => {
                end.push(last + 1);
                break Bound::Excluded(end);
            }
            Some(_) => {}
            None => break Bound::Unbounded,
        }
    };
    Scan {
        next: Some(Bound::Included(prefix.to_vec())),
        end,
        page: Vec::new().into_iter(),
    }
}

/// An iterator over a range of entries (see [`scan`]).
pub struct Scan {
    /// Where the next page starts; `None` once the range is done.
    next: Option<Bound<Vec<u8>>>,
    end: Bound<Vec<u8>>,
    page: std::vec::IntoIter<Entry>,
}

impl Iterator for Scan {
    type Item = Result<Entry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.page.next() {
            return Some(Ok(entry));
        }
        let start = self.next.take()?;
        match backend::scan(
            start.as_ref().map(Vec::as_slice),
            self.end.as_ref().map(Vec::as_slice),
            SCAN_PAGE,
        ) {
            Err(e) => Some(Err(e)),
            Ok(page) => {
                if page.len() == SCAN_PAGE as usize {
                    self.next = page.last().map(|(k, _)| Bound::Excluded(k.clone()));
                }
                self.page = page.into_iter();
                self.page.next().map(Ok)
            }
        }
    }
}

/// A u64 stored with `to_be_bytes`; 0 for anything else.
pub fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_be_bytes)
}

/// The batch loop's side: record `index` (with `timestamp`) is next.
pub(crate) fn begin_record(index: u32, timestamp: i64) {
    backend::begin_record(index, timestamp);
}

/// The batch loop's side: the record ended, failed or not.
pub(crate) fn end_record(failed: bool) {
    backend::end_record(failed);
}

/// Empties the native double (see [`crate::testing::reset_state`]).
pub(crate) fn reset_double() {
    #[cfg(not(target_arch = "wasm32"))]
    backend::MEMORY.with_borrow_mut(|m| *m = Default::default());
}

#[cfg(target_arch = "wasm32")]
mod backend {
    use super::StateError;
    use crate::__private::bindings::wasmpipe::transform::state as host;
    use std::cell::Cell;
    use std::ops::Bound;

    thread_local! {
        /// The record being transformed, until the host has been told.
        static UNTOLD: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Tells the host which record the coming call is for, once per record.
    fn tell() {
        if let Some(index) = UNTOLD.take() {
            host::at_record(index);
        }
    }

    fn error(e: host::StateError) -> StateError {
        match e {
            host::StateError::TooLarge(m) => StateError::TooLarge(m),
            host::StateError::Full(m) => StateError::Full(m),
            host::StateError::Unavailable(m) => StateError::Unavailable(m),
        }
    }

    fn bound(b: Bound<&[u8]>) -> host::Bound {
        match b {
            Bound::Unbounded => host::Bound::Unbounded,
            Bound::Included(k) => host::Bound::Included(k.to_vec()),
            Bound::Excluded(k) => host::Bound::Excluded(k.to_vec()),
        }
    }

    pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        tell();
        host::get(key).map_err(error)
    }

    pub fn put(key: &[u8], value: &[u8], ttl: Option<u64>) -> Result<(), StateError> {
        tell();
        host::put(key, value, ttl).map_err(error)
    }

    pub fn delete(key: &[u8]) -> Result<(), StateError> {
        tell();
        host::delete(key).map_err(error)
    }

    pub fn scan(
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: u32,
    ) -> Result<Vec<super::Entry>, StateError> {
        tell();
        host::scan(&bound(start), &bound(end), limit).map_err(error)
    }

    pub fn stream_time() -> i64 {
        tell();
        host::stream_time()
    }

    pub fn begin_record(index: u32, _timestamp: i64) {
        UNTOLD.set(Some(index));
    }

    /// The host drops a failed record's writes itself.
    pub fn end_record(_failed: bool) {
        UNTOLD.set(None);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    //! The native double: the host's rules, in memory.
    use super::StateError;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    /// A value and its expiry in stream time.
    type Stored = (Vec<u8>, Option<i64>);

    #[derive(Default)]
    pub struct Memory {
        pub entries: BTreeMap<Vec<u8>, Stored>,
        pub stream_time: Option<i64>,
        /// The record's writes undone if it fails: key → what it held.
        undo: Vec<(Vec<u8>, Option<Stored>)>,
    }

    thread_local! {
        pub static MEMORY: RefCell<Memory> = RefCell::default();
    }

    fn now(m: &Memory) -> i64 {
        m.stream_time.unwrap_or(i64::MIN)
    }

    fn live(m: &Memory, expiry: Option<i64>) -> bool {
        expiry.is_none_or(|t| now(m) < t)
    }

    fn write(key: &[u8], entry: Option<Stored>) {
        MEMORY.with_borrow_mut(|m| {
            let old = match entry {
                Some(e) => m.entries.insert(key.to_vec(), e),
                None => m.entries.remove(key),
            };
            m.undo.push((key.to_vec(), old));
        });
    }

    pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(MEMORY.with_borrow(|m| {
            m.entries
                .get(key)
                .filter(|(_, expiry)| live(m, *expiry))
                .map(|(v, _)| v.clone())
        }))
    }

    pub fn put(key: &[u8], value: &[u8], ttl: Option<u64>) -> Result<(), StateError> {
        let expiry = ttl.map(|ttl| {
            let base = MEMORY.with_borrow(now).max(0);
            base.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
        });
        write(key, Some((value.to_vec(), expiry)));
        Ok(())
    }

    pub fn delete(key: &[u8]) -> Result<(), StateError> {
        write(key, None);
        Ok(())
    }

    pub fn scan(
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: u32,
    ) -> Result<Vec<super::Entry>, StateError> {
        Ok(MEMORY.with_borrow(|m| {
            m.entries
                .range::<[u8], _>((start, end))
                .filter(|(_, (_, expiry))| live(m, *expiry))
                .take(limit as usize)
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect()
        }))
    }

    pub fn stream_time() -> i64 {
        MEMORY.with_borrow(now)
    }

    pub fn begin_record(_index: u32, timestamp: i64) {
        MEMORY.with_borrow_mut(|m| {
            m.undo.clear();
            m.stream_time = Some(m.stream_time.map_or(timestamp, |t| t.max(timestamp)));
        });
    }

    pub fn end_record(failed: bool) {
        MEMORY.with_borrow_mut(|m| {
            let undo = std::mem::take(&mut m.undo);
            if failed {
                for (key, old) in undo.into_iter().rev() {
                    match old {
                        Some(e) => m.entries.insert(key, e),
                        None => m.entries.remove(&key),
                    };
                }
            }
        });
    }
}
