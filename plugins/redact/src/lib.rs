//! Masks or drops JSON fields by path, for PII.
//!
//! Config:
//! - `mask`: comma-separated field paths whose values are replaced by
//!   `mask_with` (default `"***"`), e.g. `user.email,cards.*.number`;
//! - `drop`: comma-separated field paths removed from the document;
//! - `mask_with`: the replacement string.
//!
//! Tombstones pass through. A value that is not JSON is an error, so it is
//! dead-lettered rather than leaked unredacted.

use plugin_common::{Path, json_value, list};
use serde_json::Value;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

pub struct Redact {
    mask: Vec<Path>,
    drop: Vec<Path>,
    mask_with: Value,
}

impl Transform for Redact {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&["mask", "drop", "mask_with"])?;
        let paths = |key| {
            list(config.get(key).unwrap_or(""))
                .map(Path::parse)
                .collect::<Result<Vec<_>, _>>()
        };
        let redact = Redact {
            mask: paths("mask")?,
            drop: paths("drop")?,
            mask_with: Value::String(config.get("mask_with").unwrap_or("***").to_owned()),
        };
        if redact.mask.is_empty() && redact.drop.is_empty() {
            return Err(Error::msg(
                "set 'mask' and/or 'drop' to the field paths to redact, e.g. mask=user.email",
            ));
        }
        Ok(redact)
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        if record.is_tombstone() {
            out.forward(record);
            return Ok(());
        }
        let mut doc = json_value(record)?;
        for path in &self.mask {
            path.for_each_parent(&mut doc, &mut |parent, last| match parent {
                Value::Object(m) => {
                    if let Some(v) = m.get_mut(last) {
                        *v = self.mask_with.clone();
                    }
                }
                Value::Array(a) => {
                    let slots: Box<dyn Iterator<Item = &mut Value>> = match last {
                        "*" => Box::new(a.iter_mut()),
                        i => Box::new(
                            i.parse::<usize>()
                                .ok()
                                .and_then(|i| a.get_mut(i))
                                .into_iter(),
                        ),
                    };
                    slots.for_each(|v| *v = self.mask_with.clone());
                }
                _ => {}
            });
        }
        for path in &self.drop {
            path.for_each_parent(&mut doc, &mut |parent, last| {
                if let Value::Object(m) = parent {
                    match last {
                        "*" => m.clear(),
                        k => {
                            m.shift_remove(k);
                        }
                    }
                }
            });
        }
        let value = serde_json::to_vec(&doc)?;
        out.emit(&record.to_output().value(Some(&value)));
        Ok(())
    }
}

wasmpipe_sdk::export!(Redact);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn run(config: &[(&str, &str)], value: &str) -> Result<String, String> {
        let mut p: Redact = testing::init(config).map_err(|e| e.to_string())?;
        let out = testing::run_one(
            &mut p,
            TestRecord::new().key("k").value(value).header("h", "1"),
        )?;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].headers, [("h".to_owned(), Some(b"1".to_vec()))]);
        Ok(out[0].value_str().unwrap().to_owned())
    }

    #[test]
    fn masks_nested_and_wildcard_fields_keeping_order() {
        let got = run(
            &[("mask", "user.email, cards.*.number")],
            r#"{"user":{"name":"Ann","email":"a@x.io"},"cards":[{"number":"4111","exp":"12/30"},{"number":"5500"}]}"#,
        );
        assert_eq!(
            got.unwrap(),
            r#"{"user":{"name":"Ann","email":"***"},"cards":[{"number":"***","exp":"12/30"},{"number":"***"}]}"#
        );
    }

    #[test]
    fn drops_fields_and_uses_a_custom_mask() {
        let got = run(
            &[("drop", "ssn"), ("mask", "name"), ("mask_with", "X")],
            r#"{"name":"Ann","ssn":"1","age":3}"#,
        );
        assert_eq!(got.unwrap(), r#"{"name":"X","age":3}"#);
    }

    #[test]
    fn missing_fields_leave_the_document_alone() {
        assert_eq!(run(&[("mask", "a.b")], r#"{"c":1}"#).unwrap(), r#"{"c":1}"#);
    }

    #[test]
    fn non_json_is_an_error_not_a_leak() {
        let err = run(&[("mask", "a")], "not json").unwrap_err();
        assert!(err.starts_with("value is not JSON"), "{err}");
    }

    #[test]
    fn config_errors_name_the_fix() {
        assert!(run(&[], "{}").unwrap_err().contains("set 'mask'"));
        assert!(
            run(&[("mask", "a..b")], "{}")
                .unwrap_err()
                .contains("'a..b'")
        );
        assert!(
            run(&[("masks", "a")], "{}")
                .unwrap_err()
                .contains("unknown config key 'masks'")
        );
    }
}
