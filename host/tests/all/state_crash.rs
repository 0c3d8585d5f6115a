//! The state store under a SIGKILL: a process applies batches that each
//! set every key and the changelog offset they reach, and is killed
//! mid-stream; reopened, the store holds exactly one batch's writes and the
//! offset of that same batch — never a mix, never data ahead of its offset.

use std::ops::Bound;
use std::process::{Command, Stdio};
use std::time::Duration;
use wasmpipe::state::{Entry, StoreMemory, Stores, Write, Writes};

const KEYS: usize = 100;
const CHILD: &str = "WASMPIPE_TEST_STATE_WRITER";

fn open(dir: &std::path::Path) -> Stores {
    Stores::open(dir, StoreMemory::default()).expect("open")
}

/// The child process of the test below: applies batch after batch until
/// killed.
#[test]
#[ignore = "a child process of a_killed_writer_leaves_one_whole_batch_and_its_offset"]
fn state_writer_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let stores = open(std::path::Path::new(&dir));
    let store = stores.partition("count", "in", 0).expect("store");
    let mut batch = store.changelog_next().expect("offset").unwrap_or(0);
    loop {
        let mut writes = Writes::new();
        for k in 0..KEYS {
            let value = Entry::encode(&batch.to_le_bytes(), None);
            writes.insert(format!("key-{k:03}").into_bytes(), Write::Put(value));
        }
        store.apply_writes(&writes, batch + 1).expect("apply");
        if batch == 0 {
            println!("writing");
        }
        batch += 1;
    }
}

#[test]
fn a_killed_writer_leaves_one_whole_batch_and_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut last = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "state_crash::state_writer_child", "--ignored"])
            .env(CHILD, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(400 + 300 * round));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");

        let stores = open(dir.path());
        let store = stores.partition("count", "in", 0).expect("store");
        let next = store
            .changelog_next()
            .expect("offset")
            .expect("some batch applied");
        assert!(next >= last, "the offset went back: {next} < {last}");
        let mut count = 0;
        for item in store.range((Bound::Unbounded, Bound::Unbounded)) {
            let (key, bytes) = item.expect("read");
            let entry = Entry::decode(&bytes).expect("entry");
            let batch = i64::from_le_bytes(entry.value.try_into().expect("8 bytes"));
            assert_eq!(
                batch + 1,
                next,
                "{} holds batch {batch}, the offset says {next}",
                String::from_utf8_lossy(&key)
            );
            count += 1;
        }
        assert_eq!(count, KEYS);
        last = next;
    }
    assert!(last > 3, "the writer applied only {last} batches");
}
