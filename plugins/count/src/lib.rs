//! The running count of records per key, as Kafka Streams'
//! `groupByKey().count()`: each record with a key emits one output with
//! that key and, as its value, how many records of the key the partition
//! has seen, in decimal. Records without a key are skipped, as Kafka
//! Streams skips them. The count lives in wasmpipe's keyed state (a u64,
//! big-endian), durable in the plugin's changelog topic.

use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform, state};

pub struct Count;

impl Transform for Count {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&[])?;
        Ok(Count)
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let Some(key) = record.key() else {
            return Ok(());
        };
        let count = state::get(key)?.map_or(0, |v| state::decode_u64(&v)) + 1;
        state::put(key, count.to_be_bytes())?;
        let value = count.to_string();
        out.emit(&record.to_output().value(Some(value.as_bytes())));
        Ok(())
    }
}

wasmpipe_sdk::export!(Count);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn values(results: Vec<Result<Vec<testing::TestOutput>, String>>) -> Vec<String> {
        results
            .into_iter()
            .flat_map(|r| r.unwrap())
            .map(|o| o.value_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn counts_each_key_across_batches_and_skips_records_without_one() {
        testing::reset_state();
        let mut plugin: Count = testing::init(&[]).unwrap();
        let first = testing::run(
            &mut plugin,
            &[
                TestRecord::new().key("a"),
                TestRecord::new().key("b"),
                TestRecord::new().value("no key"),
                TestRecord::new().key("a"),
            ],
        );
        assert_eq!(values(first), ["1", "1", "2"]);
        let second = testing::run(&mut plugin, &[TestRecord::new().key("a")]);
        assert_eq!(values(second), ["3"]);
        assert_eq!(
            testing::state_entries(),
            [
                (b"a".to_vec(), 3u64.to_be_bytes().to_vec()),
                (b"b".to_vec(), 1u64.to_be_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn refuses_config() {
        assert!(testing::init::<Count>(&[("x", "1")]).is_err());
    }
}
