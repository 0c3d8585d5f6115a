//! Sums a number per key in tumbling windows on event time and emits each
//! window once, when it closes — as Kafka Streams'
//! `windowedBy(TimeWindows.ofSizeAndGrace(size, grace)).aggregate(...)
//! .suppress(untilWindowCloses(...))`. A window closes when the partition's
//! stream time (its highest record timestamp) reaches its end plus
//! `grace`; a record for a closed window is late and is dead-lettered, or
//! dropped with `late: drop`.
//!
//! Each result: the window's key, the value `{"start":…,"end":…,"sum":…,
//! "count":…}` (ms since the epoch, end exclusive), timestamped at the
//! window's end.
//!
//! Config: `size` (default `1m`), `grace` (default `0s`), `field` (a dotted
//! JSON path to the number; default the whole value), `late` (`reject` or
//! `drop`). Records without a key are summed under the empty key.

use plugin_common::{Path, duration, json_value};
use serde_json::Value;
use wasmpipe_sdk::window::{Late, Windows};
use wasmpipe_sdk::{Config, Error, Output, Outputs, Record, Transform};

pub struct WindowSum {
    windows: Windows,
    field: Option<Path>,
}

/// A window's aggregate: the sum (f64) and the count (u64), big-endian.
fn encode(sum: f64, count: u64) -> Vec<u8> {
    let mut v = sum.to_be_bytes().to_vec();
    v.extend_from_slice(&count.to_be_bytes());
    v
}

fn decode(bytes: &[u8]) -> (f64, u64) {
    let sum = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0.0, f64::from_be_bytes);
    let count = bytes
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes);
    (sum, count)
}

impl Transform for WindowSum {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&["size", "grace", "field", "late"])?;
        let size = duration("size", config.get("size").unwrap_or("1m"))?;
        let grace = duration("grace", config.get("grace").unwrap_or("0s"))?;
        let late = match config.get("late").unwrap_or("reject") {
            "reject" => Late::Reject,
            "drop" => Late::Drop,
            other => {
                return Err(Error::msg(format!(
                    "config 'late' = '{other}': write reject (dead-letter late records) or drop"
                )));
            }
        };
        if size.is_zero() {
            return Err(Error::msg("config 'size' is 0: a window must last"));
        }
        Ok(WindowSum {
            windows: Windows::tumbling(size).grace(grace).late(late),
            field: config.get("field").map(Path::parse).transpose()?,
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let json = json_value(record)?;
        let number = match &self.field {
            Some(path) => path.get(&json),
            None => Some(&json),
        };
        let n = number.and_then(Value::as_f64).ok_or_else(|| {
            Error::msg(format!(
                "no number at {}",
                self.field.as_ref().map_or("the value", |p| p.as_str())
            ))
        })?;
        let key = record.key().unwrap_or_default();
        let update = self.windows.update(key, record.timestamp(), |acc| {
            let (sum, count) = acc.map_or((0.0, 0), decode);
            encode(sum + n, count + 1)
        })?;
        for w in update.closed {
            let (sum, count) = decode(&w.value);
            let value = serde_json::json!({
                "start": w.start, "end": w.end, "sum": sum, "count": count
            })
            .to_string();
            let key = (!w.key.is_empty()).then_some(w.key.as_slice());
            out.emit(
                &Output::new()
                    .key(key)
                    .value(Some(value.as_bytes()))
                    .timestamp(w.end),
            );
        }
        Ok(())
    }
}

wasmpipe_sdk::export!(WindowSum);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn record(key: &str, t: i64, value: &str) -> TestRecord {
        TestRecord::new().key(key).timestamp(t).value(value)
    }

    #[test]
    fn emits_each_window_once_when_it_closes() {
        testing::reset_state();
        let mut plugin: WindowSum =
            testing::init(&[("size", "1m"), ("grace", "10s"), ("field", "amount")]).unwrap();
        let results = testing::run(
            &mut plugin,
            &[
                record("eu", 1_000, r#"{"amount":5}"#),
                record("us", 2_000, r#"{"amount":1.5}"#),
                record("eu", 59_000, r#"{"amount":2}"#),
                record("eu", 65_000, r#"{"amount":4}"#),
                // In grace: still [0, 60 000).
                record("eu", 30_000, r#"{"amount":10}"#),
                record("us", 70_000, r#"{"amount":1}"#),
                record("eu", 20_000, r#"{"amount":99}"#),
            ],
        );
        let emitted: Vec<(String, String, Option<i64>)> = results[..6]
            .iter()
            .flat_map(|r| r.as_ref().unwrap().clone())
            .map(|o| {
                let key = String::from_utf8(o.key.clone().unwrap()).unwrap();
                (key, o.value_str().unwrap().to_owned(), o.timestamp)
            })
            .collect();
        assert_eq!(
            emitted,
            [
                (
                    "eu".into(),
                    r#"{"start":0,"end":60000,"sum":17.0,"count":3}"#.into(),
                    Some(60_000)
                ),
                (
                    "us".into(),
                    r#"{"start":0,"end":60000,"sum":1.5,"count":1}"#.into(),
                    Some(60_000)
                ),
            ]
        );
        let late = results[6].as_ref().unwrap_err();
        assert!(
            late.starts_with("late record: key eu at 20000 ms"),
            "{late}"
        );
    }

    #[test]
    fn a_value_without_a_number_fails_its_record_alone() {
        testing::reset_state();
        let mut plugin: WindowSum = testing::init(&[("field", "amount")]).unwrap();
        let results = testing::run(
            &mut plugin,
            &[
                record("k", 1, r#"{"amount":"x"}"#),
                record("k", 2, r#"{"amount":3}"#),
            ],
        );
        assert_eq!(results[0], Err("no number at amount".to_owned()));
        assert!(results[1].is_ok());
    }

    #[test]
    fn refuses_bad_config() {
        for config in [
            &[("size", "0s")][..],
            &[("late", "keep")],
            &[("grace", "x")],
        ] {
            assert!(testing::init::<WindowSum>(config).is_err(), "{config:?}");
        }
    }
}
