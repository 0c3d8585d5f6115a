//! A record that failed — in a plugin, at Kafka, or malformed as read —
//! is dead-lettered, skipped or halted on, by policy.

use super::worker::Context;
use crate::config::OnFailure;
use crate::dead_letter;
use crate::format::{FormatError, Hint, Part, is_reserved_header};
use crate::kafka::{
    BatchAck, OutRecord, Producer, RawHeaders, Refusal, SendError, TransactionError,
};
use crate::ops::events::{Failed, RecordDeadLettered, RecordSkipped};
use crate::record::Batch;
use crate::runtime::{Plugin, RecordFailure};
use crate::text::capped;
use anyhow::{Context as _, anyhow};
use std::borrow::Cow;
use std::sync::Arc;

/// A dead letter's header taken from its record: the name as kept.
type KeptHeader<'a> = (Cow<'a, [u8]>, Option<&'a [u8]>);

/// A failed record and why, as its dead letter's headers say.
pub struct DeadLetter {
    /// The record's index in its batch.
    pub index: u32,
    kind: &'static str,
    reason: &'static str,
    message: String,
    plugin: String,
    plugin_sha256: String,
}

impl DeadLetter {
    /// A record whose header names are not UTF-8: no plugin saw it as it is.
    pub fn malformed(index: u32) -> DeadLetter {
        DeadLetter {
            index,
            kind: "record",
            reason: "header_name_not_utf8",
            message: "a header name of the record is not UTF-8, which plugins cannot be given; it is dead-lettered with its headers as they came".into(),
            plugin: String::new(),
            plugin_sha256: String::new(),
        }
    }

    /// A record whose key or value is not of its format, or an output of
    /// which does not fit its topic's (then `last_plugin` wrote it).
    pub fn format(index: u32, e: &FormatError, last_plugin: Option<&Plugin>) -> DeadLetter {
        DeadLetter {
            index,
            kind: "format",
            reason: e.reason(),
            message: e.to_string(),
            plugin: last_plugin.map(|p| p.name.clone()).unwrap_or_default(),
            plugin_sha256: last_plugin.map(|p| p.sha256.clone()).unwrap_or_default(),
        }
    }

    /// A record an output of which Kafka refuses for `topic`.
    pub fn refused(
        index: u32,
        topic: &str,
        refusal: &Refusal,
        last_plugin: Option<&Plugin>,
    ) -> DeadLetter {
        DeadLetter {
            index,
            kind: "produce",
            reason: refusal.reason,
            message: refusal_message(topic, refusal),
            plugin: last_plugin.map(|p| p.name.clone()).unwrap_or_default(),
            plugin_sha256: last_plugin.map(|p| p.sha256.clone()).unwrap_or_default(),
        }
    }
}

/// Why Kafka refuses an output for `topic`, and the fix.
pub fn refusal_message(topic: &str, refusal: &Refusal) -> String {
    let by = if refusal.reason == "state_topic" {
        "the host"
    } else {
        "kafka"
    };
    format!(
        "{by} refuses the output for topic '{}': {}; {}",
        capped(topic),
        refusal.message,
        refusal.fix()
    )
}

impl From<&RecordFailure> for DeadLetter {
    fn from(f: &RecordFailure) -> Self {
        DeadLetter {
            index: f.index,
            kind: f.failure.kind().as_str(),
            reason: f.failure.label(),
            message: f.failure.to_string(),
            plugin: f.plugin.clone(),
            plugin_sha256: f.plugin_sha256.clone(),
        }
    }
}

/// Dead-letters, skips or halts on a failed record, by policy. The inner
/// error is the open transaction failing (exactly-once): the caller stops
/// producing until it is aborted.
pub fn handle<P: Producer>(
    cx: &mut Context<'_, P>,
    batch: &Batch,
    d: &DeadLetter,
    raw_headers: Option<&RawHeaders>,
    decoded: bool,
    ack: &Arc<BatchAck>,
) -> anyhow::Result<Result<(), TransactionError>> {
    let r = batch
        .get(d.index as usize)
        .ok_or_else(|| anyhow!("failed record {} is not in its batch", d.index))?;
    let place = format!("{}/{}@{}", r.topic(), r.partition(), r.offset());
    let failed = |error| Failed {
        record: &place,
        plugin: &d.plugin,
        kind: d.kind,
        reason: d.reason,
        error,
    };
    let topic = match &cx.settings.on_failure {
        OnFailure::Halt => {
            return Err(anyhow!(
                "halting (--on-error halt): record {place} failed in plugin {} ({}): {}",
                d.plugin,
                d.reason,
                d.message
            ));
        }
        OnFailure::Skip => {
            cx.telemetry.emit(RecordSkipped(failed(&d.message)));
            return Ok(Ok(()));
        }
        OnFailure::DeadLetter { topic } => topic.as_str(),
    };
    let (partition, offset, timestamp) = (
        r.partition().to_string(),
        r.offset().to_string(),
        r.timestamp().to_string(),
    );
    let message = capped(&d.message);
    let ours: [(&str, &[u8]); 9] = [
        ("wasmpipe.error.kind", d.kind.as_bytes()),
        ("wasmpipe.error.reason", d.reason.as_bytes()),
        ("wasmpipe.error.message", message.as_bytes()),
        ("wasmpipe.plugin", d.plugin.as_bytes()),
        ("wasmpipe.plugin.sha256", d.plugin_sha256.as_bytes()),
        ("wasmpipe.source.topic", r.topic().as_bytes()),
        ("wasmpipe.source.partition", partition.as_bytes()),
        ("wasmpipe.source.offset", offset.as_bytes()),
        ("wasmpipe.source.timestamp", timestamp.as_bytes()),
    ];
    // The record's own headers, as they came; its `wasmpipe.*` ones
    // renamed so they cannot pass for the host's. Those the host added
    // when decoding it go.
    let codec = &*cx.settings.codec;
    let restoring = decoded && !codec.is_raw();
    let input_headers: Vec<KeptHeader<'_>> = match raw_headers {
        Some(raw) => raw
            .iter()
            .map(|(n, v)| (dead_letter::kept_name(n), v.as_deref()))
            .collect(),
        None => r
            .headers()
            .iter()
            .filter(|(n, _)| !(restoring && is_reserved_header(n.as_bytes())))
            .map(|(n, v)| (dead_letter::kept_name(n.as_bytes()), v))
            .collect(),
    };
    // A decoded key or value is encoded again with the schema it came
    // with: the dead letter holds the record as it was read.
    let restored = |part: Part, json: Option<&[u8]>| -> Option<Vec<u8>> {
        let json = json?;
        let (id, name) = part.headers();
        let header = |h: &str| {
            r.headers()
                .iter()
                .find(|(n, _)| *n == h)
                .and_then(|(_, v)| v)
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        let hint = Hint {
            id: header(id).and_then(|v| v.parse().ok()),
            name: header(name),
        };
        codec.restore(part, json, hint)
    };
    let (key_restored, value_restored) = match restoring {
        true => (
            restored(Part::Key, r.key()),
            restored(Part::Value, r.value()),
        ),
        false => (None, None),
    };
    let record_key = key_restored.as_deref().or(r.key());
    let record_value = value_restored.as_deref().or(r.value());
    // A dead letter too large for the dead-letter topic is still written:
    // without the record's headers, then without its key and value, saying
    // what it left out.
    let mut trim = Trim::Nothing;
    let sent = loop {
        let (key, value, input) = match trim {
            Trim::Nothing => (record_key, record_value, &input_headers[..]),
            Trim::Headers => (record_key, record_value, &[][..]),
            Trim::Record | Trim::Message => (None, None, &[][..]),
        };
        let dropped = trim.dropped().map(|d| ("wasmpipe.dropped", d.as_bytes()));
        let headers = input.iter().map(|(n, v)| (n.as_ref(), *v)).chain(
            ours.iter()
                .filter(|(k, _)| trim != Trim::Message || *k != "wasmpipe.error.message")
                .chain(&dropped)
                .map(|(k, v)| (k.as_bytes(), Some(*v))),
        );
        let bytes = key.map_or(0, <[u8]>::len)
            + value.map_or(0, <[u8]>::len)
            + headers
                .clone()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>();
        let sent = match cx.producer.admit(topic, bytes) {
            Err(refusal) => Err(SendError::Refused {
                topic: topic.to_owned(),
                refusal,
            }),
            Ok(()) => cx.producer.send(
                OutRecord {
                    topic,
                    key,
                    value,
                    headers,
                    timestamp: r.known_timestamp(),
                    partition: None,
                },
                ack,
            ),
        };
        match (sent, trim.next()) {
            (Err(SendError::Refused { refusal, .. }), Some(next))
                if refusal.reason == "too_large" =>
            {
                trim = next
            }
            (sent, _) => break sent,
        }
    };
    match sent {
        Err(SendError::Transaction(e)) => return Ok(Err(e)),
        Err(SendError::Refused { refusal, .. }) => {
            return Err(anyhow!(
                "dead-lettering {place} to '{topic}': kafka refuses it even without the record and the error message ({}); {}",
                refusal.message,
                refusal.fix()
            ));
        }
        other => other.with_context(|| format!("dead-lettering {place} to '{topic}'"))?,
    }
    cx.telemetry.emit(RecordDeadLettered {
        failed: failed(&message),
        dlq: topic,
        dropped: trim.dropped(),
    });
    Ok(Ok(()))
}

/// What a dead letter leaves out of its record to fit the dead-letter
/// topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trim {
    Nothing,
    Headers,
    Record,
    /// The record and the error message: what is left always names the
    /// record and the failure's kind.
    Message,
}

impl Trim {
    fn next(self) -> Option<Trim> {
        match self {
            Trim::Nothing => Some(Trim::Headers),
            Trim::Headers => Some(Trim::Record),
            Trim::Record => Some(Trim::Message),
            Trim::Message => None,
        }
    }

    /// The `wasmpipe.dropped` header's value.
    fn dropped(self) -> Option<&'static str> {
        match self {
            Trim::Nothing => None,
            Trim::Headers => Some("headers"),
            Trim::Record => Some("headers,key,value"),
            Trim::Message => Some("headers,key,value,message"),
        }
    }
}
