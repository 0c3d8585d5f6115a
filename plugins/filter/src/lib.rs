//! Keeps the records whose JSON value matches a predicate; drops the rest.
//!
//! Config:
//! - `path`: the field to test, e.g. `order.status`;
//! - `op`: `eq` (default), `ne`, `gt`, `ge`, `lt`, `le`, `exists`,
//!   `missing`, `contains` (substring of a string, or element of an array);
//! - `value`: a JSON literal (`"paid"`, `100`, `true`); text that is not JSON
//!   is taken as a string;
//! - `on_invalid`: what to do with a value that is not JSON: `error`
//!   (default, dead-letter it), `drop` or `keep`.

use plugin_common::{Path, json_value};
use serde_json::Value;
use std::cmp::Ordering;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    Missing,
    Contains,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnInvalid {
    Error,
    Drop,
    Keep,
}

pub struct Filter {
    path: Path,
    op: Op,
    value: Value,
    on_invalid: OnInvalid,
}

impl Filter {
    fn matches(&self, doc: &Value) -> bool {
        let field = self.path.get(doc);
        match (self.op, field) {
            (Op::Exists, f) => f.is_some(),
            (Op::Missing, f) => f.is_none(),
            (_, None) => false,
            (Op::Eq, Some(f)) => *f == self.value,
            (Op::Ne, Some(f)) => *f != self.value,
            (Op::Contains, Some(Value::String(s))) => {
                self.value.as_str().is_some_and(|v| s.contains(v))
            }
            (Op::Contains, Some(Value::Array(a))) => a.contains(&self.value),
            (Op::Contains, Some(_)) => false,
            (op, Some(f)) => {
                let ord = compare(f, &self.value);
                match op {
                    Op::Gt => ord == Some(Ordering::Greater),
                    Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                    Op::Lt => ord == Some(Ordering::Less),
                    _ => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                }
            }
        }
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Transform for Filter {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&["path", "op", "value", "on_invalid"])?;
        let op = match config.get("op").unwrap_or("eq") {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "exists" => Op::Exists,
            "missing" => Op::Missing,
            "contains" => Op::Contains,
            other => {
                return Err(Error::msg(format!(
                    "unknown op '{other}': use eq, ne, gt, ge, lt, le, exists, missing or contains"
                )));
            }
        };
        let value = match config.get("value") {
            Some(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
            None if matches!(op, Op::Exists | Op::Missing) => Value::Null,
            None => {
                return Err(Error::msg(format!(
                    "op {op:?} needs a 'value' to compare with"
                )));
            }
        };
        let on_invalid = match config.get("on_invalid").unwrap_or("error") {
            "error" => OnInvalid::Error,
            "drop" => OnInvalid::Drop,
            "keep" => OnInvalid::Keep,
            other => {
                return Err(Error::msg(format!(
                    "unknown on_invalid '{other}': use error, drop or keep"
                )));
            }
        };
        Ok(Filter {
            path: Path::parse(config.require("path")?)?,
            op,
            value,
            on_invalid,
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let keep = match json_value(record) {
            Ok(doc) => self.matches(&doc),
            Err(e) => match self.on_invalid {
                OnInvalid::Error => return Err(e),
                OnInvalid::Drop => false,
                OnInvalid::Keep => true,
            },
        };
        if keep {
            out.forward(record);
        }
        Ok(())
    }
}

wasmpipe_sdk::export!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn kept(config: &[(&str, &str)], values: &[&str]) -> Vec<String> {
        let mut p: Filter = testing::init(config).unwrap();
        let records: Vec<_> = values.iter().map(|v| TestRecord::new().value(v)).collect();
        testing::run(&mut p, &records)
            .into_iter()
            .flat_map(|r| r.unwrap())
            .map(|o| o.value_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn compares_strings_numbers_and_presence() {
        let docs = [
            r#"{"s":"paid","n":5}"#,
            r#"{"s":"open","n":50}"#,
            r#"{"n":500}"#,
        ];
        assert_eq!(kept(&[("path", "s"), ("value", "paid")], &docs), [docs[0]]);
        assert_eq!(
            kept(&[("path", "s"), ("op", "ne"), ("value", "\"paid\"")], &docs),
            [docs[1]]
        );
        assert_eq!(
            kept(&[("path", "n"), ("op", "gt"), ("value", "10")], &docs),
            [docs[1], docs[2]]
        );
        assert_eq!(
            kept(&[("path", "n"), ("op", "le"), ("value", "50")], &docs),
            [docs[0], docs[1]]
        );
        assert_eq!(kept(&[("path", "s"), ("op", "missing")], &docs), [docs[2]]);
        assert_eq!(
            kept(&[("path", "s"), ("op", "contains"), ("value", "pa")], &docs),
            [docs[0]]
        );
    }

    #[test]
    fn invalid_values_follow_the_policy() {
        let mut p: Filter = testing::init(&[("path", "a"), ("op", "exists")]).unwrap();
        let r = testing::run_one(&mut p, TestRecord::new().value("nope")).unwrap_err();
        assert!(r.starts_with("value is not JSON"), "{r}");
        assert!(
            kept(
                &[("path", "a"), ("op", "exists"), ("on_invalid", "drop")],
                &["nope"]
            )
            .is_empty()
        );
        assert_eq!(
            kept(
                &[("path", "a"), ("op", "exists"), ("on_invalid", "keep")],
                &["nope"]
            ),
            ["nope"]
        );
    }

    #[test]
    fn config_errors_name_the_fix() {
        let err = |c: &[(&str, &str)]| testing::init::<Filter>(c).err().unwrap().to_string();
        assert_eq!(err(&[("value", "1")]), "missing config key 'path'");
        assert!(err(&[("path", "a"), ("op", "like"), ("value", "1")]).contains("use eq, ne"));
        assert!(err(&[("path", "a")]).contains("needs a 'value'"));
    }
}
