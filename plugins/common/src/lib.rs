//! JSON helpers shared by the example plugins: dotted field paths
//! (`user.address.city`, `items.0.sku`, `items.*.sku`) and config lists.

use serde_json::Value;
use wasmpipe_sdk::{Error, Record};

/// A dotted path into a JSON document. `*` matches every element of an
/// array or every field of an object; a number indexes an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    text: String,
    segments: Vec<String>,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, Error> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if text.trim().is_empty() || segments.iter().any(String::is_empty) {
            return Err(Error::msg(format!(
                "invalid field path '{text}': write fields separated by dots, like 'user.email'"
            )));
        }
        Ok(Path {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first value at this path.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        fn walk<'v>(v: &'v Value, rest: &[String]) -> Option<&'v Value> {
            let Some((head, tail)) = rest.split_first() else {
                return Some(v);
            };
            match (v, head.as_str()) {
                (Value::Object(m), "*") => m.values().find_map(|c| walk(c, tail)),
                (Value::Array(a), "*") => a.iter().find_map(|c| walk(c, tail)),
                (Value::Object(m), k) => walk(m.get(k)?, tail),
                (Value::Array(a), i) => walk(a.get(i.parse::<usize>().ok()?)?, tail),
                _ => None,
            }
        }
        walk(root, &self.segments)
    }

    /// Calls `f(parent, last)` for every place this path ends, where
    /// `parent` is the object or array holding the field `last`.
    pub fn for_each_parent(&self, root: &mut Value, f: &mut impl FnMut(&mut Value, &str)) {
        fn walk(v: &mut Value, rest: &[String], f: &mut impl FnMut(&mut Value, &str)) {
            let Some((head, tail)) = rest.split_first() else {
                return;
            };
            if tail.is_empty() {
                return f(v, head);
            }
            match (v, head.as_str()) {
                (Value::Object(m), "*") => m.values_mut().for_each(|c| walk(c, tail, f)),
                (Value::Array(a), "*") => a.iter_mut().for_each(|c| walk(c, tail, f)),
                (Value::Object(m), k) => {
                    if let Some(c) = m.get_mut(k) {
                        walk(c, tail, f)
                    }
                }
                (Value::Array(a), i) => {
                    if let Some(c) = i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        walk(c, tail, f)
                    }
                }
                _ => {}
            }
        }
        walk(root, &self.segments, f)
    }
}

/// The record's value parsed as JSON, or an error that says why not.
pub fn json_value(record: &Record<'_>) -> Result<Value, Error> {
    let bytes = record
        .value()
        .ok_or_else(|| Error::msg("record has no value (tombstone); expected a JSON document"))?;
    serde_json::from_slice(bytes).map_err(|e| Error::msg(format!("value is not JSON: {e}")))
}

/// A config duration such as `90s`, `10m` or `1h 30m`, or an error
/// naming the key and the form it takes.
pub fn duration(key: &str, text: &str) -> Result<std::time::Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::msg(format!(
            "config '{key}' = '{text}': {e}; write a duration such as 500ms, 90s, 10m or 1h"
        ))
    })
}

/// A comma-separated config list, trimmed, empty items dropped.
pub fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A JSON scalar as the text a topic name, header or key would carry:
/// strings without quotes, numbers and booleans as written.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_nested_fields_indexes_and_wildcards() {
        let doc = json!({"a": {"b": [ {"c": 1}, {"c": 2} ]}});
        assert_eq!(Path::parse("a.b.1.c").unwrap().get(&doc), Some(&json!(2)));
        assert_eq!(Path::parse("a.b.*.c").unwrap().get(&doc), Some(&json!(1)));
        assert_eq!(Path::parse("a.x").unwrap().get(&doc), None);
        let mut seen = Vec::new();
        let mut doc = doc;
        Path::parse("a.b.*.c")
            .unwrap()
            .for_each_parent(&mut doc, &mut |_, last| seen.push(last.to_owned()));
        assert_eq!(seen, ["c", "c"]);
    }

    #[test]
    fn empty_segments_are_refused_with_an_example() {
        let err = Path::parse("a..b").unwrap_err();
        assert!(err.message().contains("'a..b'"), "{err}");
    }
}
