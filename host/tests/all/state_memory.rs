//! State far larger than memory: ten million keys written through one
//! partition's state as the pipeline writes it — a batch's writes held
//! until they are durable, then applied to the store with their changelog
//! offset — and read back, in a process of its own (this test binary, run
//! on the one child test) whose peak resident memory stays bounded.

use std::process::Command;
use wasmpipe::state::{PartitionState, StateLimits, StoreMemory, Stores};

const KEYS: u64 = 10_000_000;
const PER_BATCH: u64 = 20_000;
const CHILD: &str = "WASMPIPE_TEST_STATE_MEMORY";
/// The child's peak resident memory may not pass this: the store's
/// budget (a 16 MiB block cache, 8 MiB memtables) and a batch's writes on
/// top of what the test binary itself takes (78 MiB in all, measured),
/// far below the ~600 MiB the store takes on disk.
const BOUND_MIB: f64 = 192.0;

fn key(n: u64) -> Vec<u8> {
    format!("user-{n:010}").into_bytes()
}

/// The peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

#[test]
#[ignore = "the child process of ten_million_keys_are_kept_within_bounded_memory"]
fn ten_million_keys_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let stores = Stores::open(std::path::Path::new(&dir), StoreMemory::default()).expect("open");
    let store = stores.partition("count", "in", 0).expect("store");
    let mut state = PartitionState::new(store, StateLimits::default());
    let mut offset = 0i64;
    for batch in 0..KEYS / PER_BATCH {
        for n in batch * PER_BATCH..(batch + 1) * PER_BATCH {
            state.put(&key(n), &n.to_be_bytes(), None).expect("put");
        }
        let (seq, writes) = state.pending().seal().expect("writes to seal");
        offset += writes.len() as i64;
        state.made_durable(seq, offset).expect("durable");
    }
    // Every thousandth key, and the last, read back from the store.
    for n in (0..KEYS).step_by(1000).chain([KEYS - 1]) {
        let got = state.get(&key(n)).expect("get");
        assert_eq!(got, Some(n.to_be_bytes().to_vec()), "key {n}");
    }
    assert_eq!(state.get(&key(KEYS)).expect("get"), None);
    assert_eq!(
        state.store().changelog_next().expect("offset"),
        Some(KEYS as i64)
    );
    println!("peak_rss_mib={:.1}", peak_rss_mib());
}

#[test]
fn ten_million_keys_are_kept_within_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "state_memory::ten_million_keys_child",
            "--ignored",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak: f64 = stdout
        .lines()
        .find_map(|l| l.split("peak_rss_mib=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the child reports its peak");
    assert!(
        peak < BOUND_MIB,
        "10 million keys took {peak:.0} MiB of resident memory, over {BOUND_MIB} MiB"
    );
}
