//! Unit-test a plugin natively, through the same batch layout the host uses.
//!
//! ```
//! use wasmpipe_sdk::testing::{self, TestRecord};
//! # use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};
//! # struct Identity;
//! # impl Transform for Identity {
//! #     fn init(_: &Config) -> Result<Self, Error> { Ok(Identity) }
//! #     fn transform(&mut self, r: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
//! #         out.forward(r);
//! #         Ok(())
//! #     }
//! # }
//! let mut plugin: Identity = testing::init(&[]).unwrap();
//! let results = testing::run(&mut plugin, &[TestRecord::new().key("k").value("v")]);
//! assert_eq!(results[0].as_ref().unwrap()[0].value.as_deref(), Some(&b"v"[..]));
//! ```

use crate::{Config, Error, Transform};
use wasmpipe_abi::{Batch, RecordParts, TimestampType};

/// An input record for a test, built field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Default for TestRecord {
    fn default() -> Self {
        TestRecord {
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            topic: "input".into(),
            partition: 0,
            offset: 0,
        }
    }
}

impl TestRecord {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    pub fn value(mut self, value: impl AsRef<[u8]>) -> Self {
        self.value = Some(value.as_ref().to_vec());
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.into(), Some(value.as_ref().to_vec())));
        self
    }

    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = millis;
        self
    }

    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

/// An output record, owned, as the host would produce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutput {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
    pub topic: Option<String>,
}

impl TestOutput {
    /// The value as UTF-8 text, for assertions.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Builds a plugin from `config` pairs, as the host's `init` does.
pub fn init<T: Transform>(config: &[(&str, &str)]) -> Result<T, Error> {
    T::init(&Config::new(
        config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

/// Runs `records` as one batch: one result per record, in order.
pub fn run<T: Transform>(
    plugin: &mut T,
    records: &[TestRecord],
) -> Vec<Result<Vec<TestOutput>, String>> {
    let mut batch = Batch::default();
    for r in records {
        let parts = RecordParts {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
            timestamp_type: TimestampType::CreateTime,
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
        };
        let headers = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
        batch
            .push_parts(parts, headers)
            .expect("a test batch stays far below 4 GiB");
    }
    let out = crate::run_batch(plugin, &batch);
    let mut results: Vec<Result<Vec<TestOutput>, String>> = vec![Ok(Vec::new()); records.len()];
    for o in out.records(&batch) {
        if let Ok(list) = &mut results[o.source as usize] {
            list.push(TestOutput {
                key: o.key.map(<[u8]>::to_vec),
                value: o.value.map(<[u8]>::to_vec),
                headers: o
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
                timestamp: o.timestamp,
                topic: o.topic.map(str::to_owned),
            });
        }
    }
    for e in out.errors() {
        results[e.source as usize] = Err(e.message.clone());
    }
    results
}

/// Runs one record and returns its outputs, or its error.
pub fn run_one<T: Transform>(
    plugin: &mut T,
    record: TestRecord,
) -> Result<Vec<TestOutput>, String> {
    run(plugin, &[record]).remove(0)
}

/// Empties the native state double and its stream time: call it at the
/// start of a test that uses [`crate::state`] (each test thread has its
/// own double).
pub fn reset_state() {
    crate::state::reset_double();
}

/// Every live entry of the native state double, in key order.
pub fn state_entries() -> Vec<crate::state::Entry> {
    crate::state::scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
        .collect::<Result<_, _>>()
        .expect("the native state double refuses nothing")
}
