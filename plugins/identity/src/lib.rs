//! Passes every record through unchanged: key, value, headers (order and
//! repeats included) and timestamp.

use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

pub struct Identity;

impl Transform for Identity {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&[])?;
        Ok(Identity)
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        out.forward(record);
        Ok(())
    }
}

wasmpipe_sdk::export!(Identity);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestOutput, TestRecord};

    #[test]
    fn reproduces_every_field() {
        let mut p: Identity = testing::init(&[]).unwrap();
        let input = TestRecord::new()
            .key([0xff, 0])
            .value("v")
            .header("h", "1")
            .header("h", "2")
            .timestamp(42);
        let out = testing::run_one(&mut p, input.clone()).unwrap();
        assert_eq!(
            out,
            [TestOutput {
                key: input.key,
                value: input.value,
                headers: input.headers,
                timestamp: None,
                topic: None,
            }]
        );
    }

    #[test]
    fn tombstones_pass_through() {
        let mut p: Identity = testing::init(&[]).unwrap();
        let out = testing::run_one(&mut p, TestRecord::new().key("k")).unwrap();
        assert_eq!(out[0].value, None);
    }

    #[test]
    fn refuses_any_config() {
        let err = testing::init::<Identity>(&[("x", "1")]).err().unwrap();
        assert_eq!(
            err.message(),
            "unknown config key 'x': this plugin takes no config"
        );
    }
}
