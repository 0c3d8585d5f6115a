//! fjall against RocksDB on the workload of plugin state (`host/src/state`):
//! changelog-ordered batches that each set many keys and one checkpoint
//! key atomically, then point reads, then a second pass overwriting every
//! key. Both get the same memory (8 MiB memtables, a 16 MiB block cache),
//! LZ4, a write-ahead log without fsync, and 16-byte keys with 9-byte
//! values (a count as the state layer stores it).
//!
//! `tests/bench/state-engines/run` runs each engine in a process of its
//! own, alternating, three times each, and prints a Markdown table; one
//! run is `state-engines <fjall|rocksdb> <keys>`, printing one JSON line.

use std::path::Path;
use std::time::Instant;

const BATCH: usize = 10_000;
const MEMTABLE: usize = 8 << 20;
const CACHE: usize = 16 << 20;

trait Engine {
    /// Writes `pairs` and the checkpoint in one atomic batch.
    fn apply(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], checkpoint: i64);
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn disk_bytes(&self, dir: &Path) -> u64 {
        dir_size(dir)
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

struct Fjall {
    db: fjall::Database,
    data: fjall::Keyspace,
    meta: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Fjall {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE as u64)
            .worker_threads(1)
            .open()
            .expect("fjall");
        let data = db
            .keyspace("data", || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE as u64)
            })
            .expect("keyspace");
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        Fjall { db, data, meta }
    }
}

impl Engine for Fjall {
    fn apply(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], checkpoint: i64) {
        let mut batch = self.db.batch();
        for (k, v) in pairs {
            batch.insert(&self.data, k.as_slice(), v.as_slice());
        }
        batch.insert(
            &self.meta,
            b"checkpoint".as_slice(),
            &checkpoint.to_be_bytes()[..],
        );
        batch.commit().expect("commit");
        while self.data.sealed_memtable_count() > 1 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.data.get(key).expect("get").map(|v| v.to_vec())
    }
}

struct Rocks {
    db: rocksdb::DB,
}

impl Rocks {
    fn open(dir: &Path) -> Rocks {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_write_buffer_size(MEMTABLE);
        opts.set_max_background_jobs(1);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(CACHE));
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        let db = rocksdb::DB::open_cf(&opts, dir, ["data", "meta"]).expect("rocksdb");
        Rocks { db }
    }
}

impl Engine for Rocks {
    fn apply(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], checkpoint: i64) {
        let data = self.db.cf_handle("data").expect("cf");
        let meta = self.db.cf_handle("meta").expect("cf");
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in pairs {
            batch.put_cf(&data, k, v);
        }
        batch.put_cf(&meta, b"checkpoint", checkpoint.to_be_bytes());
        self.db.write(batch).expect("write");
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let data = self.db.cf_handle("data").expect("cf");
        self.db.get_cf(&data, key).expect("get")
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("customer-{i:07}").into_bytes()
}

fn value(n: u64) -> Vec<u8> {
    let mut v = vec![0x10];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn pass(engine: &mut dyn Engine, keys: usize, round: u64, checkpoint: &mut i64) -> f64 {
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(BATCH);
    for i in 0..keys {
        pairs.push((key(i), value(round)));
        if pairs.len() == BATCH || i + 1 == keys {
            *checkpoint += pairs.len() as i64;
            engine.apply(&pairs, *checkpoint);
            pairs.clear();
        }
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .expect("usage: state-engines <fjall|rocksdb> <keys>");
    let keys: usize = args
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine: Box<dyn Engine> = match name.as_str() {
        "fjall" => Box::new(Fjall::open(dir.path())),
        "rocksdb" => Box::new(Rocks::open(dir.path())),
        other => panic!("unknown engine {other}"),
    };
    let mut checkpoint = 0;
    let load = pass(engine.as_mut(), keys, 1, &mut checkpoint);
    let reads = 200_000;
    let started = Instant::now();
    let mut found = 0;
    for i in 0..reads {
        let k = key((i * 7919) % keys);
        found += usize::from(engine.get(&k).is_some());
    }
    let read = started.elapsed().as_secs_f64();
    assert_eq!(found, reads, "every key read back");
    let overwrite = pass(engine.as_mut(), keys, 2, &mut checkpoint);
    assert_eq!(engine.get(&key(keys / 2)), Some(value(2)));
    let disk = engine.disk_bytes(dir.path());
    println!(
        "{{\"engine\":\"{name}\",\"keys\":{keys},\"load_s\":{load:.3},\"read_ns\":{:.0},\"overwrite_s\":{overwrite:.3},\"peak_rss_mib\":{:.1},\"disk_mib\":{:.1}}}",
        read * 1e9 / reads as f64,
        peak_rss_mib(),
        disk as f64 / (1 << 20) as f64
    );
}
