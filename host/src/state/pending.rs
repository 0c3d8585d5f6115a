//! Writes not yet durable, in layers above a partition's store: those of
//! the record being run (when a batch is re-run record by record), of the
//! batch being run, and of the batches run but not yet durable in the
//! changelog, oldest first. A read sees the newest layer holding its key;
//! a layer is dropped whole when what wrote it fails or is rewound.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// One key's write. `Put` holds the entry as stored ([`super::Entry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(Vec<u8>),
    Delete,
}

impl Write {
    fn bytes(&self, key: &[u8]) -> usize {
        key.len()
            + match self {
                Write::Put(v) => v.len(),
                Write::Delete => 0,
            }
    }
}

/// A layer of writes: the last write of each key.
pub type Writes = BTreeMap<Vec<u8>, Write>;

#[derive(Debug)]
struct Sealed {
    seq: u64,
    writes: Writes,
}

/// The writes above one partition's store that are not yet durable.
#[derive(Debug, Default)]
pub struct Pending {
    /// The record being run alone, when a batch is re-run record by record.
    record: Option<Writes>,
    /// The batch being run.
    open: Writes,
    /// Batches run, waiting for their changelog records to be durable.
    sealed: VecDeque<Sealed>,
    next_seq: u64,
    /// Key and value bytes held over all layers (a key written in several
    /// layers counts in each).
    bytes: usize,
}

impl Pending {
    /// The newest write of `key` in any layer.
    pub fn get(&self, key: &[u8]) -> Option<&Write> {
        self.record
            .iter()
            .chain(std::iter::once(&self.open))
            .chain(self.sealed.iter().rev().map(|s| &s.writes))
            .find_map(|w| w.get(key))
    }

    /// Every key in `range` written in any layer, with its newest write.
    pub fn range(&self, range: (Bound<&[u8]>, Bound<&[u8]>)) -> BTreeMap<&[u8], &Write> {
        let mut merged = BTreeMap::new();
        // Oldest first, so that newer layers overwrite.
        let layers = self
            .sealed
            .iter()
            .map(|s| &s.writes)
            .chain(std::iter::once(&self.open))
            .chain(self.record.iter());
        for layer in layers {
            for (k, w) in layer.range::<[u8], _>(range) {
                merged.insert(k.as_slice(), w);
            }
        }
        merged
    }

    /// Records a write in the newest layer.
    pub fn write(&mut self, key: Vec<u8>, write: Write) {
        let layer = self.record.as_mut().unwrap_or(&mut self.open);
        let added = write.bytes(&key);
        let replaced = layer.get(&key).map_or(0, |old| old.bytes(&key));
        layer.insert(key, write);
        self.bytes = self.bytes + added - replaced;
    }

    /// Key and value bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the batch being run (or its record) wrote anything.
    pub fn has_open(&self) -> bool {
        !self.open.is_empty() || self.record.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// Whether any layer holds a write.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
            && self.record.as_ref().is_none_or(BTreeMap::is_empty)
            && self.sealed.is_empty()
    }

    /// Starts a layer for one record run alone.
    pub fn begin_record(&mut self) {
        self.drop_record();
        self.record = Some(Writes::new());
    }

    /// The record run alone succeeded: its writes join the batch's.
    pub fn keep_record(&mut self) {
        if let Some(record) = self.record.take() {
            for (k, w) in record {
                let added = w.bytes(&k);
                self.bytes -= added;
                self.write(k, w);
            }
        }
    }

    /// The record run alone failed: its writes are dropped.
    pub fn drop_record(&mut self) {
        if let Some(record) = self.record.take() {
            self.bytes -= record.iter().map(|(k, w)| w.bytes(k)).sum::<usize>();
        }
    }

    /// The batch failed as a whole (a trap, a limit, a record that failed
    /// while others wrote): its writes are dropped, to be made again when
    /// it is re-run.
    pub fn discard_open(&mut self) {
        self.drop_record();
        let open = std::mem::take(&mut self.open);
        self.bytes -= open.iter().map(|(k, w)| w.bytes(k)).sum::<usize>();
    }

    /// The batch's run is over: its writes wait for their changelog
    /// records to be durable. Returns the batch's sequence number and its
    /// writes (the changelog records to produce), or `None` if it wrote
    /// nothing.
    pub fn seal(&mut self) -> Option<(u64, &Writes)> {
        self.keep_record();
        if self.open.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sealed.push_back(Sealed {
            seq,
            writes: std::mem::take(&mut self.open),
        });
        self.sealed.back().map(|s| (s.seq, &s.writes))
    }

    /// The batches up to `seq` are durable: their writes, merged (a newer
    /// batch's write of a key wins), leave the pending layers to be
    /// applied to the store.
    pub fn take_through(&mut self, seq: u64) -> Writes {
        let mut merged = Writes::new();
        while self.sealed.front().is_some_and(|s| s.seq <= seq) {
            let Some(sealed) = self.sealed.pop_front() else {
                break;
            };
            self.bytes -= sealed.writes.iter().map(|(k, w)| w.bytes(k)).sum::<usize>();
            merged.extend(sealed.writes);
        }
        merged
    }

    /// Every write not yet durable is dropped: the partition is rewound to
    /// its last commit (an aborted transaction, a lost assignment), and the
    /// records that made them will be run again.
    pub fn discard_all(&mut self) {
        self.record = None;
        self.open.clear();
        self.sealed.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str) -> Write {
        Write::Put(v.as_bytes().to_vec())
    }

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn full() -> (Bound<&'static [u8]>, Bound<&'static [u8]>) {
        (Bound::Unbounded, Bound::Unbounded)
    }

    #[test]
    fn the_newest_layer_wins() {
        let mut p = Pending::default();
        p.write(k("a"), put("1"));
        p.write(k("b"), put("1"));
        assert_eq!(p.seal().map(|(seq, w)| (seq, w.len())), Some((0, 2)));
        p.write(k("a"), put("2"));
        p.begin_record();
        p.write(k("b"), Write::Delete);
        assert_eq!(p.get(b"a"), Some(&put("2")));
        assert_eq!(p.get(b"b"), Some(&Write::Delete));
        let all: Vec<_> = p.range(full()).into_iter().collect();
        assert_eq!(
            all,
            vec![(&b"a"[..], &put("2")), (&b"b"[..], &Write::Delete)]
        );
        assert_eq!(p.get(b"c"), None);
    }

    #[test]
    fn a_failed_record_leaves_nothing_and_a_kept_one_joins_the_batch() {
        let mut p = Pending::default();
        p.write(k("a"), put("1"));
        p.begin_record();
        p.write(k("a"), put("bad"));
        p.write(k("z"), put("bad"));
        p.drop_record();
        assert_eq!(p.get(b"a"), Some(&put("1")));
        assert_eq!(p.get(b"z"), None);
        assert_eq!(p.bytes(), 2);
        p.begin_record();
        p.write(k("a"), put("22"));
        p.keep_record();
        assert_eq!(p.get(b"a"), Some(&put("22")));
        assert_eq!(p.bytes(), 3);
        let (_, writes) = p.seal().expect("writes");
        assert_eq!(writes.get(&k("a")), Some(&put("22")));
    }

    #[test]
    fn a_discarded_batch_leaves_the_sealed_ones() {
        let mut p = Pending::default();
        p.write(k("a"), put("1"));
        p.seal();
        p.write(k("a"), put("2"));
        p.write(k("b"), put("2"));
        p.discard_open();
        assert_eq!(p.get(b"a"), Some(&put("1")));
        assert_eq!(p.get(b"b"), None);
        assert_eq!(p.bytes(), 2);
        assert!(p.seal().is_none(), "an empty batch seals nothing");
    }

    #[test]
    fn durable_batches_leave_merged_in_order() {
        let mut p = Pending::default();
        p.write(k("a"), put("1"));
        p.write(k("b"), put("1"));
        let first = p.seal().map(|(s, _)| s).expect("sealed");
        p.write(k("a"), Write::Delete);
        let second = p.seal().map(|(s, _)| s).expect("sealed");
        p.write(k("c"), put("3"));
        let third = p.seal().map(|(s, _)| s).expect("sealed");
        assert!(first < second && second < third);

        let merged = p.take_through(second);
        assert_eq!(
            merged.into_iter().collect::<Vec<_>>(),
            vec![(k("a"), Write::Delete), (k("b"), put("1"))]
        );
        // The third is still pending, and still read.
        assert_eq!(p.get(b"c"), Some(&put("3")));
        assert_eq!(p.get(b"a"), None);
        assert_eq!(p.bytes(), 2);
        assert_eq!(p.take_through(third).len(), 1);
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn a_rewind_drops_every_layer() {
        let mut p = Pending::default();
        p.write(k("a"), put("1"));
        p.seal();
        p.write(k("b"), put("1"));
        p.begin_record();
        p.write(k("c"), put("1"));
        p.discard_all();
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
        assert_eq!(p.get(b"a"), None);
    }

    #[test]
    fn bytes_follow_overwrites() {
        let mut p = Pending::default();
        p.write(k("key"), put("12345"));
        assert_eq!(p.bytes(), 8);
        p.write(k("key"), put("1"));
        assert_eq!(p.bytes(), 4);
        p.write(k("key"), Write::Delete);
        assert_eq!(p.bytes(), 3);
    }

    #[test]
    fn a_range_sees_only_its_keys() {
        let mut p = Pending::default();
        for key in ["a", "ab", "abc", "b"] {
            p.write(k(key), put(key));
        }
        let got: Vec<_> = p
            .range((Bound::Included(&b"ab"[..]), Bound::Excluded(&b"b"[..])))
            .into_keys()
            .collect();
        assert_eq!(got, vec![&b"ab"[..], &b"abc"[..]]);
    }
}
