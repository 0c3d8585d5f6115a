//! The changelog: each plugin's state, per input partition, as a compacted
//! Kafka topic — a record per write, keyed by the state key, the entry as
//! stored for its value, and no value for a delete. Its topic's name and
//! its records' shape live here; producing and reading them is `kafka`'s.

use super::StateError;
use super::pending::{Write, Writes};
use super::store::PartitionStore;

/// Kafka's longest topic name.
const MAX_TOPIC: usize = 249;

/// Where a plugin's state lives, as a pipeline file says (`state:` under
/// a plugin).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangelogSpec {
    /// The changelog topic's name, in place of the default.
    #[serde(default)]
    pub changelog: Option<String>,
    /// Raised, the plugin's state starts over: the default name gets this
    /// number, so the plugin reads (and makes) a new, empty changelog. The
    /// old topic stays until deleted; lowering it back returns to it.
    #[serde(default)]
    pub generation: u32,
}

/// The changelog topic of `plugin`'s state in consumer group `group`: the
/// spec's name if it gives one, or `<group>-<plugin>-changelog` as Kafka
/// Streams names its own (`-<generation>` appended from generation 1 on),
/// with any character Kafka refuses in a topic name replaced by `_`.
pub fn topic_name(group: &str, plugin: &str, spec: &ChangelogSpec) -> Result<String, StateError> {
    let refused = |reason: String| StateError::TopicName {
        plugin: plugin.to_owned(),
        reason,
    };
    if let Some(name) = &spec.changelog {
        if spec.generation != 0 {
            return Err(refused(format!(
                "`state.changelog` ({name}) and `state.generation` ({}) are both set; a named \
                 changelog starts over under a new name: change `changelog`, drop `generation`",
                spec.generation
            )));
        }
        if let Some(why) = crate::config::topic_name_error(name) {
            return Err(refused(format!(
                "`state.changelog` {name:?} is not a name Kafka accepts: {why}"
            )));
        }
        return Ok(name.clone());
    }
    let suffix = match spec.generation {
        0 => String::new(),
        n => format!("-{n}"),
    };
    let clean: String = format!("{group}-{plugin}-changelog{suffix}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() > MAX_TOPIC {
        return Err(refused(format!(
            "`{clean}` is {} characters, over Kafka's {MAX_TOPIC}; shorten the consumer \
             group's or the plugin's name, or name the topic with `state.changelog`",
            clean.len()
        )));
    }
    Ok(clean)
}

/// One changelog record, as produced: the state key, and the stored entry
/// or `None` for a delete (a tombstone, which compaction removes).
pub fn records(writes: &Writes) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
    writes.iter().map(|(k, w)| {
        let value = match w {
            Write::Put(entry) => Some(entry.as_slice()),
            Write::Delete => None,
        };
        (k.as_slice(), value)
    })
}

/// Applies a partition's changelog read back from Kafka to its store, a
/// chunk of records at a time, each chunk with the offset it reaches.
pub struct Restore<'s> {
    store: &'s PartitionStore,
    chunk: Writes,
    chunk_bytes: usize,
    /// The offset after the last record read.
    next: Option<i64>,
    /// Records applied so far.
    pub applied: u64,
}

/// The bytes of writes a restore holds before it applies them.
const CHUNK_BYTES: usize = 1 << 20;

impl<'s> Restore<'s> {
    pub fn new(store: &'s PartitionStore) -> Self {
        Restore {
            store,
            chunk: Writes::new(),
            chunk_bytes: 0,
            next: None,
            applied: 0,
        }
    }

    /// One changelog record at `offset`. A record without a key is not
    /// one wasmpipe wrote: it is refused, naming the offset.
    pub fn record(
        &mut self,
        topic: &str,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let Some(key) = key else {
            return Err(StateError::Changelog {
                topic: topic.to_owned(),
                offset,
                reason: "the record has no key; only wasmpipe should write to a changelog topic"
                    .into(),
            });
        };
        if let Some(value) = value {
            super::Entry::decode(value).map_err(|reason| StateError::Changelog {
                topic: topic.to_owned(),
                offset,
                reason,
            })?;
        }
        let write = value.map_or(Write::Delete, |v| Write::Put(v.to_vec()));
        self.chunk_bytes += key.len() + value.map_or(0, <[u8]>::len);
        self.chunk.insert(key.to_vec(), write);
        self.next = Some(offset + 1);
        self.applied += 1;
        if self.chunk_bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// The changelog's end is reached at `end` (records past the last one
    /// read may be transaction markers): what is held is applied, and the
    /// store is restored up to `end`.
    pub fn finish(mut self, end: i64) -> Result<(), StateError> {
        self.next = Some(self.next.map_or(end, |next| next.max(end)));
        self.flush()
    }

    /// Applies what is held (called by [`Restore::record`] as chunks fill).
    pub fn flush(&mut self) -> Result<(), StateError> {
        if let Some(next) = self.next {
            self.store.apply_writes(&self.chunk, next)?;
        }
        self.chunk.clear();
        self.chunk_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Entry;
    use crate::state::store::{StoreMemory, Stores};
    use std::ops::Bound;

    #[test]
    fn topic_names_are_predictable_and_legal() {
        let default = ChangelogSpec::default();
        assert_eq!(
            topic_name("orders-app", "count", &default).expect("name"),
            "orders-app-count-changelog"
        );
        assert_eq!(
            topic_name("g", "count v2/ü", &default).expect("name"),
            "g-count_v2__-changelog"
        );
        let err = topic_name(&"g".repeat(240), "count", &default).expect_err("too long");
        assert!(err.to_string().contains("over Kafka's 249"), "{err}");
        assert!(err.to_string().contains("state.changelog"), "{err}");
    }

    #[test]
    fn a_generation_or_a_name_moves_the_state_to_another_topic() {
        let spec = |changelog: Option<&str>, generation| ChangelogSpec {
            changelog: changelog.map(str::to_owned),
            generation,
        };
        assert_eq!(
            topic_name("app", "count", &spec(None, 2)).expect("name"),
            "app-count-changelog-2"
        );
        assert_eq!(
            topic_name("app", "count", &spec(Some("counts.v1"), 0)).expect("name"),
            "counts.v1"
        );
        let both = topic_name("app", "count", &spec(Some("c"), 1)).expect_err("both");
        assert!(
            both.to_string().contains("plugin count")
                && both.to_string().contains("drop `generation`"),
            "{both}"
        );
        let bad = topic_name("app", "count", &spec(Some("a/b"), 0)).expect_err("bad");
        assert!(
            bad.to_string()
                .contains("`state.changelog` \"a/b\" is not a name Kafka accepts"),
            "{bad}"
        );
    }

    #[test]
    fn a_restore_rebuilds_the_last_write_of_each_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = Stores::open(dir.path(), StoreMemory::default()).expect("open");
        let store = stores.partition("count", "in", 0).expect("store");
        let one = Entry::encode(b"1", None);
        let two = Entry::encode(b"2", Some(99));
        let mut restore = Restore::new(&store);
        restore
            .record("cl", 0, Some(b"a"), Some(&one))
            .expect("record");
        restore
            .record("cl", 1, Some(b"b"), Some(&one))
            .expect("record");
        restore.record("cl", 2, Some(b"a"), None).expect("record");
        restore
            .record("cl", 3, Some(b"b"), Some(&two))
            .expect("record");
        assert_eq!(restore.applied, 4);
        // Two transaction markers follow the last record.
        restore.finish(6).expect("finish");
        assert_eq!(store.changelog_next().expect("offset"), Some(6));
        let got: Vec<_> = store
            .range((Bound::Unbounded, Bound::Unbounded))
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("read"))
            .collect();
        assert_eq!(got, vec![(b"b".to_vec(), two)]);
    }

    #[test]
    fn a_foreign_record_is_refused_by_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = Stores::open(dir.path(), StoreMemory::default()).expect("open");
        let store = stores.partition("count", "in", 0).expect("store");
        let mut restore = Restore::new(&store);
        let err = restore
            .record("cl", 7, None, Some(b"x"))
            .expect_err("keyless");
        assert!(
            err.to_string().contains("cl") && err.to_string().contains('7'),
            "{err}"
        );
        let err = restore
            .record("cl", 8, Some(b"k"), Some(b"\x00garbage"))
            .expect_err("not an entry");
        assert!(err.to_string().contains("offset 8"), "{err}");
        restore.flush().expect("flush");
        assert_eq!(store.changelog_next().expect("offset"), None);
        // An empty changelog still leaves a checkpoint.
        Restore::new(&store).finish(0).expect("finish");
        assert_eq!(store.changelog_next().expect("offset"), Some(0));
    }
}
