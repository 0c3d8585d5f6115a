//! Keyed state for plugins, scoped to a plugin and an input partition:
//! what a plugin reads and writes while it runs a batch, held in memory
//! until the changelog records of those writes are durable in Kafka
//! ([`Pending`]), then applied to an on-disk store ([`store`]) that is
//! restored from the changelog ([`changelog`]) when the partition is
//! assigned. No wasm and no Kafka here: the runtime and `kafka` adapt to it.
//!
//! Entries may carry a time to live, counted in stream time — the highest
//! record timestamp the partition has seen — so that a partition replayed
//! from the same records reads the same state whatever the wall clock says.

pub mod changelog;
mod pending;
pub mod store;

pub use pending::{Pending, Write, Writes};
pub use store::{PartitionStore, StoreMemory, Stores};

use std::cmp::Ordering;
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store in {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("a state key of {len} bytes is over the {max}-byte limit")]
    KeyTooLarge { len: usize, max: usize },
    #[error("a state value of {len} bytes is over the {max}-byte limit")]
    ValueTooLarge { len: usize, max: usize },
    #[error(
        "the partition's state writes not yet durable hold {bytes} bytes, over the {max}-byte \
         limit: write less per batch, or lower --max-batch"
    )]
    PendingFull { bytes: usize, max: usize },
    #[error("changelog {topic}, offset {offset}: {reason}")]
    Changelog {
        topic: String,
        offset: i64,
        reason: String,
    },
    #[error("the changelog topic of plugin {plugin}: {reason}")]
    TopicName { plugin: String, reason: String },
}

impl StateError {
    fn store(path: &Path, e: impl std::fmt::Display) -> Self {
        StateError::Store {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }

    /// Whether the plugin's own call caused it (so the record fails),
    /// rather than the store or the changelog (so the partition stops).
    pub fn is_plugins(&self) -> bool {
        matches!(
            self,
            StateError::KeyTooLarge { .. }
                | StateError::ValueTooLarge { .. }
                | StateError::PendingFull { .. }
        )
    }
}

/// A stored entry, as kept on disk and in the changelog: a format byte
/// (version 1 in the high nibble, bit 0 set when an expiry follows), the
/// expiry as a big-endian i64 of stream time in ms, then the plugin's value.
pub struct Entry;

const FORMAT_V1: u8 = 0x10;
const HAS_EXPIRY: u8 = 0x01;

/// A decoded [`Entry`], borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub value: &'a [u8],
    /// The stream time from which the entry is gone.
    pub expires_at: Option<i64>,
}

impl EntryRef<'_> {
    /// Whether the entry is visible at `stream_time`.
    pub fn live_at(&self, stream_time: i64) -> bool {
        self.expires_at.is_none_or(|t| stream_time < t)
    }
}

impl Entry {
    pub fn encode(value: &[u8], expires_at: Option<i64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 9);
        match expires_at {
            Some(t) => {
                out.push(FORMAT_V1 | HAS_EXPIRY);
                out.extend_from_slice(&t.to_be_bytes());
            }
            None => out.push(FORMAT_V1),
        }
        out.extend_from_slice(value);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<EntryRef<'_>, String> {
        let Some((&format, rest)) = bytes.split_first() else {
            return Err("an empty entry".into());
        };
        if format & 0xf0 != FORMAT_V1 || format & 0x0e != 0 {
            return Err(format!(
                "entry format byte {format:#04x} is not one this wasmpipe writes"
            ));
        }
        if format & HAS_EXPIRY == 0 {
            return Ok(EntryRef {
                value: rest,
                expires_at: None,
            });
        }
        let (expiry, value) = rest
            .split_first_chunk::<8>()
            .ok_or("an entry with an expiry shorter than 8 bytes")?;
        Ok(EntryRef {
            value,
            expires_at: Some(i64::from_be_bytes(*expiry)),
        })
    }
}

/// What a plugin may write to its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLimits {
    pub max_key_bytes: usize,
    /// Kept under Kafka's default 1 MiB record, with room for the key.
    pub max_value_bytes: usize,
    /// Writes held in memory per partition until they are durable.
    pub max_pending_bytes: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_key_bytes: 16 << 10,
            max_value_bytes: 900 << 10,
            max_pending_bytes: 64 << 20,
        }
    }
}

/// The range of every key starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = Bound::Included(prefix.to_vec());
    // The first key past the prefix: its last byte below 0xff raised by
    // one, what follows it dropped. A prefix of only 0xff bytes has none.
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (start, Bound::Excluded(end));
        }
    }
    (start, Bound::Unbounded)
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One plugin's state on one partition, as the plugin sees it: the store
/// with the writes not yet durable over it.
#[derive(Debug)]
pub struct PartitionState {
    store: PartitionStore,
    pending: Pending,
    limits: StateLimits,
    stream_time: i64,
}

impl PartitionState {
    pub fn new(store: PartitionStore, limits: StateLimits) -> Self {
        PartitionState {
            store,
            pending: Pending::default(),
            limits,
            stream_time: i64::MIN,
        }
    }

    pub fn store(&self) -> &PartitionStore {
        &self.store
    }

    pub fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    /// A record's timestamp: stream time only moves forward.
    pub fn observe(&mut self, timestamp: i64) {
        self.stream_time = self.stream_time.max(timestamp);
    }

    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Puts stream time back where it was before a run whose writes are
    /// discarded, so that its re-run sees the same times.
    pub fn rewind_stream_time(&mut self, to: i64) {
        self.stream_time = to;
    }

    /// The value of `key`, if set and not expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let found = match self.pending.get(key) {
            Some(Write::Put(bytes)) => self.live(key, bytes)?,
            Some(Write::Delete) => None,
            None => match self.store.get(key)? {
                Some(bytes) => self.live(key, &bytes)?,
                None => None,
            },
        };
        Ok(found.map(|(_, value)| value))
    }

    /// Sets `key`, to expire `ttl_ms` of stream time from now if given.
    pub fn put(&mut self, key: &[u8], value: &[u8], ttl_ms: Option<u64>) -> Result<(), StateError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(StateError::ValueTooLarge {
                len: value.len(),
                max: self.limits.max_value_bytes,
            });
        }
        self.check_room(key.len() + value.len() + 9)?;
        let expires_at = ttl_ms.map(|ttl| {
            let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
            self.stream_time.max(0).saturating_add(ttl)
        });
        self.pending
            .write(key.to_vec(), Write::Put(Entry::encode(value, expires_at)));
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.check_key(key)?;
        self.check_room(key.len())?;
        self.pending.write(key.to_vec(), Write::Delete);
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<(), StateError> {
        if key.len() > self.limits.max_key_bytes {
            return Err(StateError::KeyTooLarge {
                len: key.len(),
                max: self.limits.max_key_bytes,
            });
        }
        Ok(())
    }

    fn check_room(&self, adding: usize) -> Result<(), StateError> {
        let bytes = self.pending.bytes() + adding;
        if bytes > self.limits.max_pending_bytes {
            return Err(StateError::PendingFull {
                bytes,
                max: self.limits.max_pending_bytes,
            });
        }
        Ok(())
    }

    /// Up to `limit` live entries in `range`, in key order: a scan goes on
    /// from the last key it returned, excluded.
    pub fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        limit: usize,
    ) -> Result<Vec<KeyValue>, StateError> {
        let mut out = Vec::new();
        let mut overlay = self.pending.range(range).into_iter().peekable();
        let mut stored = self.store.range(range).peekable();
        while out.len() < limit {
            // The smaller of the two next keys; on a tie the pending write
            // shadows the stored entry.
            let order = match (overlay.peek(), stored.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) | (_, Some(Err(_))) => Ordering::Greater,
                (Some((o, _)), Some(Ok((s, _)))) => {
                    let (o, s): (&[u8], &[u8]) = (o, s);
                    o.cmp(s)
                }
            };
            let found = if order == Ordering::Greater {
                let Some(item) = stored.next() else { break };
                let (k, v) = item?;
                self.live(&k, &v)?
            } else {
                if order == Ordering::Equal {
                    stored.next();
                }
                match overlay.next() {
                    Some((k, Write::Put(bytes))) => self.live(k, bytes)?,
                    Some((_, Write::Delete)) => None,
                    None => break,
                }
            };
            out.extend(found);
        }
        Ok(out)
    }

    /// The entry `bytes` of `key`, if live.
    fn live(&self, key: &[u8], bytes: &[u8]) -> Result<Option<KeyValue>, StateError> {
        let entry = Entry::decode(bytes).map_err(|reason| self.store.damaged(key, &reason))?;
        Ok(entry
            .live_at(self.stream_time)
            .then(|| (key.to_vec(), entry.value.to_vec())))
    }

    /// The batches up to `seq` are durable in the changelog up to (not
    /// including) `changelog_next`: their writes go to the store.
    pub fn made_durable(&mut self, seq: u64, changelog_next: i64) -> Result<(), StateError> {
        let writes = self.pending.take_through(seq);
        self.store.apply_writes(&writes, changelog_next)
    }
}

#[cfg(test)]
mod tests;
