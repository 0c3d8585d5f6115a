//! The on-disk half of plugin state: one fjall database per process, a
//! keyspace per plugin and input partition, and beside each keyspace's
//! data the changelog offset it has applied up to, written in the same
//! atomic batch as the data it covers. A store is only ever written with
//! what is already durable in Kafka, so after a crash it is behind the
//! changelog, never ahead of it.

use super::StateError;
use super::pending::{Write, Writes};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use sha2::{Digest, Sha256};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// The keyspace holding each partition store's changelog offset.
const OFFSETS: &str = "changelog-offsets";

/// Memory the stores may hold, shared by every partition of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreMemory {
    /// Block cache, shared.
    pub cache_bytes: u64,
    /// Unflushed writes of one keyspace.
    pub memtable_bytes: u64,
}

impl Default for StoreMemory {
    fn default() -> Self {
        StoreMemory {
            cache_bytes: 16 << 20,
            memtable_bytes: 8 << 20,
        }
    }
}

/// Every partition store of the process, in one directory.
#[derive(Clone)]
pub struct Stores {
    db: Database,
    offsets: Keyspace,
    path: PathBuf,
    memory: StoreMemory,
}

impl Stores {
    /// Opens (or creates) the stores in `path`, recovering what a crash
    /// left: a batch is either wholly there or not at all.
    pub fn open(path: &Path, memory: StoreMemory) -> Result<Self, StateError> {
        Self::try_open(path, memory).map_err(|e| StateError::store(path, e))
    }

    /// [`Stores::open`]; a store that cannot be opened (damaged, or left
    /// by an incompatible version) is deleted and made anew, with why: it
    /// is only a copy of the changelogs, and each partition then restores
    /// in full. One in use by another process is refused, untouched.
    pub fn open_or_rebuild(
        path: &Path,
        memory: StoreMemory,
    ) -> Result<(Self, Option<String>), StateError> {
        std::fs::create_dir_all(path).map_err(|e| StateError::store(path, e))?;
        match Self::try_open(path, memory) {
            Ok(stores) => Ok((stores, None)),
            Err(fjall::Error::Locked) => Err(StateError::store(
                path,
                "in use by another process: give each process its own --state-dir",
            )),
            Err(e) => {
                let why = e.to_string();
                std::fs::remove_dir_all(path).map_err(|e| StateError::store(path, e))?;
                Ok((Self::open(path, memory)?, Some(why)))
            }
        }
    }

    fn try_open(path: &Path, memory: StoreMemory) -> Result<Self, fjall::Error> {
        std::fs::create_dir_all(path)?;
        let db = Database::builder(path)
            .cache_size(memory.cache_bytes)
            .worker_threads(1)
            .open()?;
        let offsets = db.keyspace(OFFSETS, KeyspaceCreateOptions::default)?;
        Ok(Stores {
            db,
            offsets,
            path: path.to_owned(),
            memory,
        })
    }

    /// The store of the state `owner` names (the pipeline: its changelog
    /// topic; a plugin run alone: the plugin) for one input partition.
    pub fn partition(
        &self,
        owner: &str,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionStore, StateError> {
        let name = keyspace_name(owner, topic, partition);
        let memtable = self.memory.memtable_bytes;
        let data = self
            .db
            .keyspace(&name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable)
            })
            .map_err(|e| StateError::store(&self.path, e))?;
        Ok(PartitionStore {
            db: self.db.clone(),
            data,
            offsets: self.offsets.clone(),
            name,
            path: self.path.clone(),
        })
    }

    /// Writes every applied batch through to the disk.
    pub fn sync(&self) -> Result<(), StateError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| StateError::store(&self.path, e))
    }
}

/// A keyspace name fjall accepts (at most 255 bytes), the same for the
/// same plugin and partition on every run: readable when the names fit,
/// a hash of them otherwise.
fn keyspace_name(plugin: &str, topic: &str, partition: i32) -> String {
    let readable = format!("p.{plugin}.{topic}.{partition}");
    let safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    };
    if readable.len() <= 255 && safe(plugin) && topic.bytes().all(|b| b != b'$') {
        readable
    } else {
        let digest = Sha256::digest(format!("{plugin}\0{topic}\0{partition}"));
        format!("h${}", hex::encode(digest))
    }
}

/// One plugin's state for one input partition, on disk.
#[derive(Clone)]
pub struct PartitionStore {
    db: Database,
    data: Keyspace,
    offsets: Keyspace,
    name: String,
    path: PathBuf,
}

impl std::fmt::Debug for PartitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

impl PartitionStore {
    fn fail(&self, e: fjall::Error) -> StateError {
        StateError::store(&self.path, e)
    }

    /// The error for an entry of this store that does not decode.
    pub fn damaged(&self, key: &[u8], reason: &str) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            message: format!(
                "the entry of key {} in {} is damaged ({reason}); remove the state directory \
                 to restore it from the changelog",
                crate::text::cap(&String::from_utf8_lossy(key), 256),
                self.name
            ),
        }
    }

    /// The stored entry of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<fjall::Slice>, StateError> {
        self.data.get(key).map_err(|e| self.fail(e))
    }

    /// Stored entries in `range`, in key order.
    pub fn range<'a>(
        &'a self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
    ) -> impl Iterator<Item = Result<(fjall::Slice, fjall::Slice), StateError>> + 'a {
        self.data
            .range::<&[u8], _>(range)
            .map(move |guard| guard.into_inner().map_err(|e| self.fail(e)))
    }

    /// Applies writes already durable in the changelog, and records that
    /// the changelog is applied up to (not including) `changelog_next`, in
    /// one atomic batch.
    pub fn apply<'w>(
        &self,
        writes: impl IntoIterator<Item = (&'w [u8], &'w Write)>,
        changelog_next: i64,
    ) -> Result<(), StateError> {
        let mut batch = self.db.batch();
        for (key, write) in writes {
            match write {
                Write::Put(entry) => batch.insert(&self.data, key, entry.as_slice()),
                Write::Delete => batch.remove(&self.data, key),
            }
        }
        batch.insert(
            &self.offsets,
            self.name.as_bytes(),
            &changelog_next.to_be_bytes()[..],
        );
        batch.commit().map_err(|e| self.fail(e))?;
        // Writes faster than the disk takes them (a restore) would pile up
        // memtables waiting to be flushed, each in memory: wait for all
        // but one to be written out.
        while self.data.sealed_memtable_count() > 1 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// [`PartitionStore::apply`] of a merged layer of writes.
    pub fn apply_writes(&self, writes: &Writes, changelog_next: i64) -> Result<(), StateError> {
        self.apply(
            writes.iter().map(|(k, w)| (k.as_slice(), w)),
            changelog_next,
        )
    }

    /// The changelog offset the store has applied up to, or `None` if it
    /// was never written (or was cleared): restore it in full.
    pub fn changelog_next(&self) -> Result<Option<i64>, StateError> {
        let Some(bytes) = self
            .offsets
            .get(self.name.as_bytes())
            .map_err(|e| self.fail(e))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes[..].try_into().map_err(|_| StateError::Store {
            path: self.path.clone(),
            message: format!(
                "the changelog offset of {} is {} bytes, not 8: the store is damaged; \
                 remove the state directory to restore it from the changelog",
                self.name,
                bytes.len()
            ),
        })?;
        Ok(Some(i64::from_be_bytes(bytes)))
    }

    /// Empties the store and forgets its changelog offset (a reset, or a
    /// local copy that cannot be trusted).
    pub fn clear(&self) -> Result<(), StateError> {
        self.offsets
            .remove(self.name.as_bytes())
            .map_err(|e| self.fail(e))?;
        self.data.clear().map_err(|e| self.fail(e))
    }

    /// Roughly how many entries the store holds.
    pub fn approximate_len(&self) -> usize {
        self.data.approximate_len()
    }

    /// The bytes the store takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.data.disk_space()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str) -> Write {
        Write::Put(v.as_bytes().to_vec())
    }

    fn open(dir: &Path) -> Stores {
        Stores::open(dir, StoreMemory::default()).expect("open")
    }

    /// Every file under `dir`, recursively.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn a_damaged_store_is_rebuilt_empty_and_one_in_use_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        {
            let stores = open(&path);
            let s = stores.partition("cl", "in", 0).expect("partition");
            s.apply_writes(&[(b"k".to_vec(), put("v"))].into_iter().collect(), 7)
                .expect("apply");
            stores.sync().expect("sync");
        }
        for file in files(&path) {
            std::fs::write(&file, b"not a store").expect("damage");
        }
        let (stores, why) =
            Stores::open_or_rebuild(&path, StoreMemory::default()).expect("rebuilt");
        assert!(why.is_some(), "the rebuild says why");
        let s = stores.partition("cl", "in", 0).expect("partition");
        assert_eq!(s.changelog_next().expect("offset"), None);
        assert!(all(&s).is_empty());

        // Still open above: another opener is refused, and the store kept.
        let err = Stores::open_or_rebuild(&path, StoreMemory::default())
            .err()
            .expect("locked");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        s.apply_writes(&[(b"k".to_vec(), put("v"))].into_iter().collect(), 1)
            .expect("the first opener goes on");
    }

    fn all(store: &PartitionStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        store
            .range((Bound::Unbounded, Bound::Unbounded))
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("read"))
            .collect()
    }

    #[test]
    fn writes_and_their_changelog_offset_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let stores = open(dir.path());
            let s = stores.partition("count", "orders", 2).expect("partition");
            assert_eq!(s.changelog_next().expect("offset"), None);
            let mut w = Writes::new();
            w.insert(b"a".to_vec(), put("1"));
            w.insert(b"b".to_vec(), put("2"));
            s.apply_writes(&w, 10).expect("apply");
            let mut w = Writes::new();
            w.insert(b"a".to_vec(), Write::Delete);
            s.apply_writes(&w, 11).expect("apply");
            stores.sync().expect("sync");
        }
        let stores = open(dir.path());
        let s = stores.partition("count", "orders", 2).expect("partition");
        assert_eq!(s.changelog_next().expect("offset"), Some(11));
        assert_eq!(all(&s), vec![(b"b".to_vec(), b"2".to_vec())]);
        // Another partition of the same plugin is a store of its own.
        let other = stores.partition("count", "orders", 1).expect("partition");
        assert!(all(&other).is_empty());
        assert_eq!(other.changelog_next().expect("offset"), None);
    }

    #[test]
    fn a_cleared_store_forgets_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = open(dir.path());
        let s = stores.partition("dedup", "in", 0).expect("partition");
        let mut w = Writes::new();
        w.insert(b"k".to_vec(), put("v"));
        s.apply_writes(&w, 5).expect("apply");
        s.clear().expect("clear");
        assert!(all(&s).is_empty());
        assert_eq!(s.changelog_next().expect("offset"), None);
    }

    #[test]
    fn ranges_are_in_key_order_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = open(dir.path());
        let s = stores.partition("p", "t", 0).expect("partition");
        let mut w = Writes::new();
        for k in ["b", "a", "ab", "c", "\u{ff}"] {
            w.insert(k.as_bytes().to_vec(), put(k));
        }
        s.apply_writes(&w, 1).expect("apply");
        let got: Vec<Vec<u8>> = s
            .range((Bound::Included(&b"ab"[..]), Bound::Excluded(&b"c"[..])))
            .map(|r| r.expect("read").0.to_vec())
            .collect();
        assert_eq!(got, vec![b"ab".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn keyspace_names_are_stable_and_always_valid() {
        assert_eq!(keyspace_name("count", "orders", 3), "p.count.orders.3");
        let long = "x".repeat(300);
        for (plugin, topic) in [
            ("a.b", "t"),
            ("a b", "t"),
            ("ok", long.as_str()),
            ("ok", "t$1"),
        ] {
            let name = keyspace_name(plugin, topic, 0);
            assert!(name.starts_with("h$") && name.len() == 66, "{name}");
            assert_eq!(name, keyspace_name(plugin, topic, 0));
        }
        // A dot in a plugin's name cannot make two plugins share a store.
        assert_ne!(keyspace_name("a.b", "c", 0), keyspace_name("a", "b.c", 0));
    }
}
