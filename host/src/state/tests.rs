//! The state a plugin sees: the store with its pending writes over it.

use super::*;
use crate::state::store::{StoreMemory, Stores};

struct Fixture {
    _dir: tempfile::TempDir,
    stores: Stores,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = Stores::open(dir.path(), StoreMemory::default()).expect("open");
    Fixture { _dir: dir, stores }
}

impl Fixture {
    fn state(&self, limits: StateLimits) -> PartitionState {
        let store = self.stores.partition("count", "in", 0).expect("store");
        PartitionState::new(store, limits)
    }
}

fn full() -> (Bound<&'static [u8]>, Bound<&'static [u8]>) {
    (Bound::Unbounded, Bound::Unbounded)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Seals what the batch wrote and makes it durable at `next`.
fn durable(state: &mut PartitionState, next: i64) {
    let seq = state.pending().seal().map(|(seq, _)| seq).expect("writes");
    state.made_durable(seq, next).expect("apply");
}

#[test]
fn reads_see_pending_writes_over_the_store() {
    let f = fixture();
    let mut s = f.state(StateLimits::default());
    s.put(b"a", b"1", None).expect("put");
    s.put(b"b", b"1", None).expect("put");
    s.put(b"c", b"1", None).expect("put");
    durable(&mut s, 3);
    assert_eq!(s.store().changelog_next().expect("offset"), Some(3));

    s.put(b"a", b"2", None).expect("put");
    s.delete(b"b").expect("delete");
    s.put(b"d", b"2", None).expect("put");
    assert_eq!(s.get(b"a").expect("get"), Some(b"2".to_vec()));
    assert_eq!(s.get(b"b").expect("get"), None);
    assert_eq!(s.get(b"c").expect("get"), Some(b"1".to_vec()));
    assert_eq!(
        s.scan(full(), 100).expect("scan"),
        pairs(&[("a", "2"), ("c", "1"), ("d", "2")])
    );
    // The store itself holds only what was made durable.
    assert!(s.store().get(b"b").expect("get").is_some());
}

#[test]
fn a_scan_pages_by_its_last_key() {
    let f = fixture();
    let mut s = f.state(StateLimits::default());
    for k in ["k1", "k3", "k5"] {
        s.put(k.as_bytes(), b"stored", None).expect("put");
    }
    durable(&mut s, 3);
    for k in ["k2", "k4"] {
        s.put(k.as_bytes(), b"pending", None).expect("put");
    }
    s.delete(b"k3").expect("delete");
    let first = s.scan(full(), 2).expect("scan");
    assert_eq!(first, pairs(&[("k1", "stored"), ("k2", "pending")]));
    let last = first.last().map(|(k, _)| k.clone()).expect("a key");
    let rest = s
        .scan((Bound::Excluded(&last[..]), Bound::Unbounded), 10)
        .expect("scan");
    assert_eq!(rest, pairs(&[("k4", "pending"), ("k5", "stored")]));
    assert!(s.scan(full(), 0).expect("scan").is_empty());
}

#[test]
fn a_prefix_scan_stops_at_the_prefix() {
    let f = fixture();
    let mut s = f.state(StateLimits::default());
    for k in ["user1:a", "user1:b", "user10", "user2:a"] {
        s.put(k.as_bytes(), k.as_bytes(), None).expect("put");
    }
    let (lo, hi) = prefix_range(b"user1:");
    let got = s
        .scan(
            (
                lo.as_ref().map(Vec::as_slice),
                hi.as_ref().map(Vec::as_slice),
            ),
            10,
        )
        .expect("scan");
    assert_eq!(
        got,
        pairs(&[("user1:a", "user1:a"), ("user1:b", "user1:b")])
    );
    assert_eq!(prefix_range(b"\xff\xff").1, Bound::Unbounded);
    assert_eq!(prefix_range(b"a\xff").1, Bound::Excluded(b"b".to_vec()));
}

#[test]
fn entries_expire_in_stream_time_not_wall_time() {
    let f = fixture();
    let mut s = f.state(StateLimits::default());
    s.observe(1_000);
    s.put(b"seen", b"1", Some(500)).expect("put");
    s.put(b"kept", b"1", None).expect("put");
    durable(&mut s, 2);
    s.observe(1_499);
    assert_eq!(s.get(b"seen").expect("get"), Some(b"1".to_vec()));
    // An older record does not move stream time back.
    s.observe(10);
    assert_eq!(s.stream_time(), 1_499);
    s.observe(1_500);
    assert_eq!(s.get(b"seen").expect("get"), None);
    assert_eq!(s.scan(full(), 10).expect("scan"), pairs(&[("kept", "1")]));
}

#[test]
fn a_failed_record_leaves_no_state_behind() {
    let f = fixture();
    let mut s = f.state(StateLimits::default());
    s.put(b"count", b"1", None).expect("put");
    s.pending().begin_record();
    s.put(b"count", b"2", None).expect("put");
    s.put(b"other", b"x", None).expect("put");
    s.pending().drop_record();
    s.pending().begin_record();
    s.put(b"count", b"3", None).expect("put");
    s.pending().keep_record();
    durable(&mut s, 1);
    assert_eq!(s.get(b"count").expect("get"), Some(b"3".to_vec()));
    assert_eq!(s.get(b"other").expect("get"), None);
    assert_eq!(s.store().get(b"other").expect("get"), None);
}

#[test]
fn limits_refuse_the_write_and_name_the_limit() {
    let f = fixture();
    let limits = StateLimits {
        max_key_bytes: 4,
        max_value_bytes: 8,
        max_pending_bytes: 40,
    };
    let mut s = f.state(limits);
    let err = s.put(b"12345", b"v", None).expect_err("key");
    assert!(
        matches!(err, StateError::KeyTooLarge { len: 5, max: 4 }),
        "{err}"
    );
    assert!(err.is_plugins());
    let err = s.put(b"k", &[0; 9], None).expect_err("value");
    assert!(
        matches!(err, StateError::ValueTooLarge { len: 9, max: 8 }),
        "{err}"
    );
    for k in [b"k1", b"k2"] {
        s.put(k, b"12345678", None).expect("put");
    }
    let err = s.put(b"k3", b"12345678", None).expect_err("full");
    assert!(matches!(err, StateError::PendingFull { .. }), "{err}");
    assert!(err.to_string().contains("over the 40-byte limit"), "{err}");
    assert_eq!(s.get(b"k3").expect("get"), None);
    // Once durable, the room is back.
    durable(&mut s, 2);
    s.put(b"k3", b"12345678", None).expect("put");
}

#[test]
fn entries_round_trip_and_foreign_bytes_are_refused() {
    let cases: [(&[u8], Option<i64>); 3] =
        [(b"", None), (b"v", Some(-5)), (b"\x10\x01", Some(i64::MAX))];
    for (value, expiry) in cases {
        let bytes = Entry::encode(value, expiry);
        let entry = Entry::decode(&bytes).expect("decode");
        assert_eq!((entry.value, entry.expires_at), (value, expiry));
    }
    let bad: [&[u8]; 5] = [b"", b"\x00v", b"\x20", b"\x11\x00", b"\x12v"];
    for bad in bad {
        assert!(Entry::decode(bad).is_err(), "{bad:?}");
    }
}
