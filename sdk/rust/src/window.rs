//! Windows on event time, over [`crate::state`]: tumbling, hopping and
//! session windows with a grace period, closed by stream time.
//!
//! A window `[start, end)` takes the records of its key whose timestamp
//! falls in it. It closes when the partition's stream time — the highest
//! record timestamp seen — reaches `end + grace`; a record for a window
//! already closed is *late*. Each update returns the aggregates it changed
//! and those of every window the record's time closed, so a plugin emits
//! every update, or only final results, as it chooses.
//!
//! ```
//! use std::time::Duration;
//! use wasmpipe_sdk::window::Windows;
//! use wasmpipe_sdk::{state, testing};
//!
//! testing::reset_state();
//! let windows = Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10));
//! // A sum, kept as 8 big-endian bytes.
//! let plus = |n: u64| move |acc: Option<&[u8]>| {
//!     (acc.map_or(0, state::decode_u64) + n).to_be_bytes().to_vec()
//! };
//! let update = windows.update(b"k", 1_000, plus(5)).unwrap();
//! assert_eq!((update.updated[0].start, update.updated[0].end), (0, 60_000));
//! assert!(update.closed.is_empty());
//! ```
//!
//! In a plugin, `update` is called from `transform` with the record's key
//! and timestamp; `plugins/window-sum` emits final results only.
//!
//! Aggregates live in state under keys the windows own (prefixes `\x00w`
//! and `\x00s`), ordered by window end, so closing windows is one ordered
//! scan. The key `\x00w` itself holds where that scan starts: past every
//! window already closed, so that it never walks over their deletions (an
//! LSM store keeps them until compaction). Keep the plugin's own keys off
//! those prefixes.

use crate::Error;
use crate::state::{self, StateError};
use std::ops::Bound;
use std::time::Duration;

/// The prefix of every key the windows keep in state.
const PREFIX: &[u8] = b"\x00w";
/// The prefix of session windows' per-key index.
const SESSIONS: &[u8] = b"\x00s";
/// Windows closed at most per update: the rest close with the next.
const CLOSE_PAGE: usize = 1000;

/// How windows are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Fixed, contiguous windows of `size`, aligned on the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` starting every `advance`, aligned on the epoch.
    Hopping { size: i64, advance: i64 },
    /// A key's records less than `gap` apart, merged into one window.
    Session { gap: i64 },
}

/// What to do with a record for a window already closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// Fail the record: it is dead-lettered (or skipped) by the pipeline's
    /// policy, with an error that says it was late.
    Reject,
    /// Leave it out of every window and go on; [`Update::late`] says so.
    Drop,
}

/// A window definition.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    shape: Shape,
    grace: i64,
    late: Late,
}

/// One window's aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub key: Vec<u8>,
    /// Inclusive, in ms since the epoch.
    pub start: i64,
    /// Exclusive.
    pub end: i64,
    pub value: Vec<u8>,
}

/// What one record did to the windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// The windows the record went into, with their new aggregates.
    pub updated: Vec<Window>,
    /// The windows that closed (their final aggregates), oldest first.
    pub closed: Vec<Window>,
    /// The record was late and left out ([`Late::Drop`]).
    pub late: bool,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// An i64 as 8 bytes that sort as the numbers do.
fn ordered(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn unordered(b: &[u8]) -> i64 {
    let bytes: [u8; 8] = b.try_into().unwrap_or_default();
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// `PREFIX | end | start | key`: windows in the order they close.
fn state_key(end: i64, start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 16 + key.len());
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&ordered(end));
    k.extend_from_slice(&ordered(start));
    k.extend_from_slice(key);
    k
}

/// `SESSIONS | key length | key`: the prefix of a key's sessions, each
/// under it by `end | start`, so a record finds its key's sessions alone.
fn session_index(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(SESSIONS.len() + 4 + key.len());
    k.extend_from_slice(SESSIONS);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn parse_key(k: &[u8]) -> Option<(i64, i64, &[u8])> {
    let rest = k.strip_prefix(PREFIX)?;
    if rest.len() < 16 {
        return None;
    }
    Some((unordered(&rest[..8]), unordered(&rest[8..16]), &rest[16..]))
}

impl Windows {
    /// Contiguous windows of `size`: each record is in exactly one.
    pub fn tumbling(size: Duration) -> Windows {
        Windows::of(Shape::Tumbling { size: millis(size) })
    }

    /// Windows of `size` starting every `advance`: a record is in
    /// `size / advance` of them (rounded up).
    pub fn hopping(size: Duration, advance: Duration) -> Windows {
        Windows::of(Shape::Hopping {
            size: millis(size),
            advance: millis(advance).min(millis(size)),
        })
    }

    /// Per key, records less than `gap` apart share a window, which grows
    /// (and merges with its neighbours) as records come.
    pub fn session(gap: Duration) -> Windows {
        Windows::of(Shape::Session { gap: millis(gap) })
    }

    fn of(shape: Shape) -> Windows {
        Windows {
            shape,
            grace: 0,
            late: Late::Reject,
        }
    }

    /// How long after its end a window still takes records (default 0).
    pub fn grace(mut self, grace: Duration) -> Windows {
        self.grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// What a late record does (default [`Late::Reject`]).
    pub fn late(mut self, late: Late) -> Windows {
        self.late = late;
        self
    }

    /// The `[start, end)` of every fixed window holding time `t`.
    fn fixed(&self, t: i64) -> Vec<(i64, i64)> {
        let (size, advance) = match self.shape {
            Shape::Tumbling { size } => (size, size),
            Shape::Hopping { size, advance } => (size, advance),
            Shape::Session { .. } => return Vec::new(),
        };
        let last = t - t.rem_euclid(advance);
        let mut out = Vec::new();
        let mut start = last;
        while start > t - size {
            out.push((start, start.saturating_add(size)));
            start -= advance;
        }
        out.reverse();
        out
    }

    fn is_closed(&self, end: i64, stream_time: i64) -> bool {
        end.saturating_add(self.grace) <= stream_time
    }

    /// Adds the record with `key` at `timestamp` to its windows, with
    /// `add` folding it into each window's aggregate (`None` for a new
    /// window), then closes every window stream time has passed. For
    /// session windows use [`Windows::update_session`].
    pub fn update(
        &self,
        key: &[u8],
        timestamp: i64,
        mut add: impl FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> Result<Update, Error> {
        if let Shape::Session { .. } = self.shape {
            return Err(Error::msg(
                "session windows merge aggregates: call update_session",
            ));
        }
        let now = state::stream_time().unwrap_or(timestamp);
        let mut update = Update::default();
        for (start, end) in self.fixed(timestamp) {
            if self.is_closed(end, now) {
                continue;
            }
            let k = state_key(end, start, key);
            let value = add(state::get(&k)?.as_deref());
            state::put(&k, &value)?;
            update.updated.push(Window {
                key: key.to_vec(),
                start,
                end,
                value,
            });
        }
        if update.updated.is_empty() {
            self.on_late(&mut update, key, timestamp)?;
        }
        update.closed = self.close(now)?;
        Ok(update)
    }

    /// [`Windows::update`] for session windows: `add` folds the record
    /// into an aggregate, `merge` joins two sessions' aggregates when the
    /// record bridges them.
    pub fn update_session(
        &self,
        key: &[u8],
        timestamp: i64,
        mut add: impl FnMut(Option<&[u8]>) -> Vec<u8>,
        mut merge: impl FnMut(&[u8], &[u8]) -> Vec<u8>,
    ) -> Result<Update, Error> {
        let Shape::Session { gap } = self.shape else {
            return Err(Error::msg("update_session is for session windows"));
        };
        let now = state::stream_time().unwrap_or(timestamp);
        let mut update = Update::default();
        if self.is_closed(timestamp.saturating_add(gap), now) {
            self.on_late(&mut update, key, timestamp)?;
            update.closed = self.close(now)?;
            return Ok(update);
        }
        // A session `[start, end)` ends `gap` after its last record: this
        // record joins each open session of its key it is less than `gap`
        // from (`start - gap < timestamp < end`), found through the key's
        // own index.
        let (mut start, mut end) = (timestamp, timestamp.saturating_add(gap));
        let mut joined: Option<Vec<u8>> = None;
        let index = session_index(key);
        let mut merged = Vec::new();
        for entry in state::scan_prefix(&index) {
            let (k, _) = entry?;
            let Some(times) = k.get(index.len()..).filter(|t| t.len() == 16) else {
                continue;
            };
            let (e, s) = (unordered(&times[..8]), unordered(&times[8..]));
            if self.is_closed(e, now) || e <= timestamp || s.saturating_sub(gap) >= timestamp {
                continue;
            }
            merged.push((k, e, s));
        }
        for (index_key, e, s) in merged {
            let k = state_key(e, s, key);
            if let Some(v) = state::get(&k)? {
                joined = Some(match joined {
                    Some(acc) => merge(&acc, &v),
                    None => v,
                });
            }
            state::delete(&k)?;
            state::delete(&index_key)?;
            start = start.min(s);
            end = end.max(e);
        }
        let value = add(joined.as_deref());
        state::put(state_key(end, start, key), &value)?;
        let mut index_key = session_index(key);
        index_key.extend_from_slice(&ordered(end));
        index_key.extend_from_slice(&ordered(start));
        state::put(&index_key, [])?;
        update.updated.push(Window {
            key: key.to_vec(),
            start,
            end,
            value,
        });
        update.closed = self.close(now)?;
        Ok(update)
    }

    fn on_late(&self, update: &mut Update, key: &[u8], timestamp: i64) -> Result<(), Error> {
        match self.late {
            Late::Drop => {
                update.late = true;
                Ok(())
            }
            Late::Reject => Err(Error::msg(format!(
                "late record: key {} at {timestamp} ms is for a window closed by stream time \
                 (grace {} ms)",
                String::from_utf8_lossy(key),
                self.grace
            ))),
        }
    }

    /// Removes and returns every window closed at stream time `now`.
    fn close(&self, now: i64) -> Result<Vec<Window>, StateError> {
        // Every window ending before `floor` is closed and deleted: the
        // scan starts there (kept in state, it is undone with the writes
        // of a record that fails).
        let floor = state::get(PREFIX)?.map_or(i64::MIN, |v| unordered(&v));
        let start = state_key(floor, i64::MIN, b"");
        let end = state_key(
            now.saturating_sub(self.grace).saturating_add(1),
            i64::MIN,
            b"",
        );
        let mut closed = Vec::new();
        let mut paged = false;
        for entry in state::scan(Bound::Included(&start), Bound::Excluded(&end)) {
            let (k, value) = entry?;
            let Some((end, start, key)) = parse_key(&k) else {
                continue;
            };
            if !self.is_closed(end, now) {
                break;
            }
            closed.push(Window {
                key: key.to_vec(),
                start,
                end,
                value,
            });
            state::delete(&k)?;
            if let Shape::Session { .. } = self.shape {
                let mut index_key = session_index(key);
                index_key.extend_from_slice(&ordered(end));
                index_key.extend_from_slice(&ordered(start));
                state::delete(&index_key)?;
            }
            if closed.len() == CLOSE_PAGE {
                paged = true;
                break;
            }
        }
        // Only when windows closed (not at every record): what ended with
        // the last of them is gone, unless the page was cut there.
        if let Some(last) = closed.last() {
            let next = if paged {
                last.end
            } else {
                last.end.saturating_add(1)
            };
            if next > floor {
                state::put(PREFIX, ordered(next))?;
            }
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests;
