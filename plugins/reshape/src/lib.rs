//! Sets and removes headers, and rewrites the key and timestamp from JSON
//! fields of the value.
//!
//! Config:
//! - `set_header.<name>`: sets header `<name>` to this text (replacing any);
//! - `header_from.<name>`: sets header `<name>` from a JSON field path;
//! - `remove_headers`: comma-separated header names to remove;
//! - `key_from`: a JSON field path whose value becomes the key;
//! - `timestamp_from`: a JSON field path holding milliseconds since the epoch.
//!
//! A field that is missing leaves the record's key, timestamp or header as it
//! was. A value that is not JSON is an error when a `*_from` needs it.

use plugin_common::{Path, json_value, list, scalar_text};
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

pub struct Reshape {
    set: Vec<(String, String)>,
    from: Vec<(String, Path)>,
    remove: Vec<String>,
    key_from: Option<Path>,
    timestamp_from: Option<Path>,
}

impl Transform for Reshape {
    fn init(config: &Config) -> Result<Self, Error> {
        let mut set = Vec::new();
        let mut from = Vec::new();
        for (key, value) in config.iter() {
            if let Some(name) = key.strip_prefix("set_header.") {
                set.push((name.to_owned(), value.to_owned()));
            } else if let Some(name) = key.strip_prefix("header_from.") {
                from.push((name.to_owned(), Path::parse(value)?));
            } else if !["remove_headers", "key_from", "timestamp_from"].contains(&key) {
                return Err(Error::msg(format!(
                    "unknown config key '{key}' (known: set_header.<name>, header_from.<name>, \
                     remove_headers, key_from, timestamp_from)"
                )));
            }
        }
        let path = |key| config.get(key).map(Path::parse).transpose();
        Ok(Reshape {
            set,
            from,
            remove: list(config.get("remove_headers").unwrap_or(""))
                .map(str::to_owned)
                .collect(),
            key_from: path("key_from")?,
            timestamp_from: path("timestamp_from")?,
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let needs_json =
            self.key_from.is_some() || self.timestamp_from.is_some() || !self.from.is_empty();
        let doc = if needs_json {
            Some(json_value(record)?)
        } else {
            None
        };
        let field = |path: &Path| doc.as_ref().and_then(|d| path.get(d));

        let key = self
            .key_from
            .as_ref()
            .and_then(field)
            .map(|v| scalar_text(v).unwrap_or_else(|| v.to_string()));
        let timestamp = match self.timestamp_from.as_ref().and_then(field) {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                Error::msg(format!(
                    "field '{}' is {v}, not a whole number of milliseconds",
                    self.timestamp_from.as_ref().map_or("", |p| p.as_str())
                ))
            })?),
        };
        let from: Vec<(&str, String)> = self
            .from
            .iter()
            .filter_map(|(name, path)| {
                field(path)
                    .and_then(scalar_text)
                    .map(|v| (name.as_str(), v))
            })
            .collect();

        let mut output = record.to_output();
        for name in &self.remove {
            output = output.remove_header(name);
        }
        for (name, value) in &self.set {
            output = output.set_header(name, Some(value.as_bytes()));
        }
        for (name, value) in &from {
            output = output.set_header(name, Some(value.as_bytes()));
        }
        if let Some(key) = &key {
            output = output.key(Some(key.as_bytes()));
        }
        output.timestamp = timestamp;
        out.emit(&output);
        Ok(())
    }
}

wasmpipe_sdk::export!(Reshape);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    #[test]
    fn rewrites_key_timestamp_and_headers() {
        let mut p: Reshape = testing::init(&[
            ("set_header.source", "web"),
            ("header_from.user", "user.id"),
            ("remove_headers", "secret, tmp"),
            ("key_from", "user.id"),
            ("timestamp_from", "ts"),
        ])
        .unwrap();
        let input = TestRecord::new()
            .key("old")
            .value(r#"{"user":{"id":42},"ts":1700000000123}"#)
            .header("keep", "1")
            .header("secret", "s")
            .header("source", "app")
            .header("tmp", "t");
        let out = testing::run_one(&mut p, input).unwrap().remove(0);
        assert_eq!(out.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(out.timestamp, Some(1_700_000_000_123));
        let headers: Vec<_> = out
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v.as_deref().unwrap())))
            .collect();
        assert_eq!(headers, ["keep=1", "source=web", "user=42"]);
    }

    #[test]
    fn missing_fields_leave_the_record_alone_and_bad_timestamps_fail() {
        let mut p: Reshape =
            testing::init(&[("key_from", "id"), ("timestamp_from", "ts")]).unwrap();
        let out = testing::run_one(&mut p, TestRecord::new().key("k").value("{}"))
            .unwrap()
            .remove(0);
        assert_eq!((out.key.as_deref(), out.timestamp), (Some(&b"k"[..]), None));
        let err =
            testing::run_one(&mut p, TestRecord::new().value(r#"{"ts":"noon"}"#)).unwrap_err();
        assert_eq!(
            err,
            r#"field 'ts' is "noon", not a whole number of milliseconds"#
        );
    }

    #[test]
    fn header_only_config_needs_no_json() {
        let mut p: Reshape = testing::init(&[("set_header.a", "1")]).unwrap();
        let out = testing::run_one(&mut p, TestRecord::new().value("not json"))
            .unwrap()
            .remove(0);
        assert_eq!(out.headers, [("a".to_owned(), Some(b"1".to_vec()))]);
    }
}
