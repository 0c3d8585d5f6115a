//! Drops repeats: a record whose id — its key, or the JSON field `field` —
//! was seen less than `ttl` ago (in stream time: record timestamps, not the
//! wall clock) is dropped; any other is passed through unchanged. The first
//! sighting starts the time to live; repeats do not extend it. A record
//! without an id (no key, or no such field) cannot be a repeat and passes.
//!
//! Config: `ttl` (required: `10m`, `1h`, …), `field` (a dotted JSON path).

use plugin_common::{Path, duration, json_value, scalar_text};
use std::time::Duration;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform, state};

pub struct Dedup {
    ttl: Duration,
    field: Option<Path>,
}

impl Transform for Dedup {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&["ttl", "field"])?;
        let ttl = duration("ttl", config.require("ttl")?)?;
        if ttl.is_zero() {
            return Err(Error::msg(
                "config 'ttl' is 0: nothing would be deduplicated",
            ));
        }
        Ok(Dedup {
            ttl,
            field: config.get("field").map(Path::parse).transpose()?,
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let id: Option<Vec<u8>> = match &self.field {
            None => record.key().map(<[u8]>::to_vec),
            Some(path) => path
                .get(&json_value(record)?)
                .and_then(scalar_text)
                .map(String::into_bytes),
        };
        if let Some(id) = id {
            if state::get(&id)?.is_some() {
                return Ok(());
            }
            state::put_with_ttl(&id, [], self.ttl)?;
        }
        out.forward(record);
        Ok(())
    }
}

wasmpipe_sdk::export!(Dedup);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn passed(plugin: &mut Dedup, records: &[TestRecord]) -> Vec<i64> {
        testing::run(plugin, records)
            .into_iter()
            .zip(records)
            .filter(|(r, _)| !r.as_ref().unwrap().is_empty())
            .map(|(_, rec)| rec.offset)
            .collect()
    }

    #[test]
    fn drops_a_repeated_key_until_its_ttl_of_stream_time_has_passed() {
        testing::reset_state();
        let mut plugin: Dedup = testing::init(&[("ttl", "10s")]).unwrap();
        let at =
            |offset: i64, key: &str, t: i64| TestRecord::new().key(key).timestamp(t).offset(offset);
        let records = [
            at(0, "a", 1_000),
            at(1, "a", 2_000),
            at(2, "b", 3_000),
            at(3, "a", 10_999),
            // 10 s after the first a: a new sighting.
            at(4, "a", 11_000),
            at(5, "a", 12_000),
            TestRecord::new().value("no key").offset(6),
            TestRecord::new().value("no key").offset(7),
        ];
        assert_eq!(passed(&mut plugin, &records), [0, 2, 4, 6, 7]);
    }

    #[test]
    fn dedups_by_a_json_field() {
        testing::reset_state();
        let mut plugin: Dedup = testing::init(&[("ttl", "1h"), ("field", "order.id")]).unwrap();
        let records = [
            TestRecord::new().value(r#"{"order":{"id":7}}"#).offset(0),
            TestRecord::new().value(r#"{"order":{"id":8}}"#).offset(1),
            TestRecord::new()
                .value(r#"{"order":{"id":7},"retry":true}"#)
                .offset(2),
            TestRecord::new().value(r#"{"order":{}}"#).offset(3),
        ];
        assert_eq!(passed(&mut plugin, &records), [0, 1, 3]);
    }

    #[test]
    fn refuses_a_missing_or_bad_ttl() {
        for config in [&[][..], &[("ttl", "soon")], &[("ttl", "0s")]] {
            assert!(testing::init::<Dedup>(config).is_err(), "{config:?}");
        }
    }
}
