//! Records as JSON lines, the harness's input and output format.
//!
//! One object a line: `key` and `value` as UTF-8 strings or null (a null
//! value is a tombstone), or `key_b64` / `value_b64` for bytes that are not
//! UTF-8; `headers` as `[name, value]` pairs, the value a string, null or
//! `{"b64": "..."}`; `timestamp` in milliseconds; optional `topic`,
//! `partition`, `offset`. Outputs use the same shape, with `topic` where a
//! plugin routed the record.

use crate::record::{Batch, RecordParts, TimestampType};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// A record line as written by a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, HeaderValue)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// A header value: text, null, or `{"b64": "..."}` for other bytes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Null,
    Text(String),
    Bytes { b64: String },
}

/// A line that is not a record, with what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("not a record: {0}")]
    Json(String),
    #[error("both `{0}` and `{0}_b64` are set; give one")]
    Both(&'static str),
    #[error("`{field}` is not valid base64: {reason}")]
    Base64 { field: String, reason: String },
}

impl HeaderValue {
    fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, LineError> {
        match self {
            HeaderValue::Null => Ok(None),
            HeaderValue::Text(t) => Ok(Some(t.clone().into_bytes())),
            HeaderValue::Bytes { b64 } => decode(&format!("header {name}"), b64).map(Some),
        }
    }

    fn of(bytes: Option<&[u8]>) -> HeaderValue {
        match bytes {
            None => HeaderValue::Null,
            Some(b) => match std::str::from_utf8(b) {
                Ok(t) => HeaderValue::Text(t.to_owned()),
                Err(_) => HeaderValue::Bytes { b64: B64.encode(b) },
            },
        }
    }
}

fn decode(field: &str, b64: &str) -> Result<Vec<u8>, LineError> {
    B64.decode(b64).map_err(|e| LineError::Base64 {
        field: field.to_owned(),
        reason: e.to_string(),
    })
}

fn bytes_of(
    field: &'static str,
    text: &Option<String>,
    b64: &Option<String>,
) -> Result<Option<Vec<u8>>, LineError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(LineError::Both(field)),
        (Some(t), None) => Ok(Some(t.clone().into_bytes())),
        (None, Some(b)) => decode(&format!("{field}_b64"), b).map(Some),
        (None, None) => Ok(None),
    }
}

/// Sets `text` or `b64` from bytes: text when they are UTF-8.
fn split(bytes: Option<&[u8]>) -> (Option<String>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => (Some(t.to_owned()), None),
            Err(_) => (None, Some(B64.encode(b))),
        },
    }
}

/// Parses one line and appends it to `batch`. `default_offset` is used
/// when the line names none; `default_topic` likewise.
pub fn push_line(
    batch: &mut Batch,
    line: &str,
    default_topic: &str,
    default_offset: i64,
) -> Result<(), LineError> {
    let r: JsonRecord = serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
    let key = bytes_of("key", &r.key, &r.key_b64)?;
    let value = bytes_of("value", &r.value, &r.value_b64)?;
    let headers = r
        .headers
        .iter()
        .map(|(name, v)| Ok((name.as_str(), v.bytes(name)?)))
        .collect::<Result<Vec<_>, LineError>>()?;
    let parts = RecordParts {
        key: key.as_deref(),
        value: value.as_deref(),
        timestamp: r.timestamp.unwrap_or(0),
        timestamp_type: if r.timestamp.is_some() {
            TimestampType::CreateTime
        } else {
            TimestampType::NotAvailable
        },
        topic: r.topic.as_deref().unwrap_or(default_topic),
        partition: r.partition.unwrap_or(0),
        offset: r.offset.unwrap_or(default_offset),
    };
    batch
        .push_parts(parts, headers.iter().map(|(n, v)| (*n, v.as_deref())))
        .map_err(|e| LineError::Json(e.to_string()))
}

/// An output record as a line: key, value, headers, timestamp (when it has
/// one) and `topic` when routed.
pub fn output_line(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl Iterator<Item = (impl AsRef<str>, Option<impl AsRef<[u8]>>)>,
    timestamp: Option<i64>,
    topic: Option<&str>,
) -> String {
    let (key, key_b64) = split(key);
    let (value, value_b64) = split(value);
    let line = JsonRecord {
        key,
        key_b64,
        value,
        value_b64,
        headers: headers
            .map(|(n, v)| {
                (
                    n.as_ref().to_owned(),
                    HeaderValue::of(v.as_ref().map(|v| v.as_ref())),
                )
            })
            .collect(),
        timestamp,
        topic: topic.map(str::to_owned),
        partition: None,
        offset: None,
    };
    // Serializing plain strings, numbers and vectors cannot fail.
    serde_json::to_string(&line).expect("a JsonRecord always serializes")
}

/// A line in the canonical output form, for comparing with `--expect`.
pub fn canonical(line: &str) -> Result<String, LineError> {
    let mut batch = Batch::default();
    let r: JsonRecord = serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
    push_line(&mut batch, line, "", 0)?;
    let rec = batch.get(0).unwrap_or_default();
    Ok(output_line(
        rec.key(),
        rec.value(),
        rec.headers().iter(),
        r.timestamp,
        r.topic.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_bytes_headers_and_tombstones() {
        let lines = [
            r#"{"key":"k","value":"v","headers":[["a","1"],["a",null],["b",{"b64":"/wA="}]],"timestamp":5}"#,
            r#"{"key_b64":"/w==","value":null}"#,
        ];
        let mut batch = Batch::default();
        for (i, l) in lines.iter().enumerate() {
            push_line(&mut batch, l, "t", i as i64).unwrap();
        }
        let r0 = batch.get(0).unwrap();
        let line0 = output_line(
            r0.key(),
            r0.value(),
            r0.headers().iter(),
            Some(r0.timestamp()),
            None,
        );
        assert_eq!(line0, lines[0]);
        let r1 = batch.get(1).unwrap();
        assert_eq!(
            (r1.key(), r1.value(), r1.offset()),
            (Some(&[0xff][..]), None, 1)
        );
        assert_eq!(
            output_line(r1.key(), r1.value(), r1.headers().iter(), None, None),
            lines[1]
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let mut b = Batch::default();
        assert_eq!(
            push_line(&mut b, r#"{"key":"a","key_b64":"YQ=="}"#, "t", 0),
            Err(LineError::Both("key"))
        );
        assert!(matches!(
            push_line(&mut b, r#"{"value_b64":"%%"}"#, "t", 0),
            Err(LineError::Base64 { .. })
        ));
        let err = push_line(&mut b, r#"{"vaule":"x"}"#, "t", 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `vaule`"), "{err}");
        assert!(b.is_empty());
    }
}
