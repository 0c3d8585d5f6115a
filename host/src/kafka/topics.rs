//! Which topic a record may be produced to. A name Kafka would refuse is
//! refused before anything is queued; a refusal Kafka gave once — at send
//! time or later in a delivery report (a topic that does not exist, one
//! this client may not write, a record larger than the topic takes) — is
//! remembered, so the record that caused it is refused up front when it is
//! processed again, before any of its outputs is queued.

use rdkafka::error::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest topic name Kafka accepts.
const MAX_NAME: usize = 249;
/// How long a refusal that may stop being true (a topic created, an ACL
/// granted, a limit raised) is remembered.
const REMEMBERED: Duration = Duration::from_secs(300);
/// Topics remembered at most; past this the memory starts over.
const MAX_REMEMBERED: usize = 10_000;

/// Why Kafka refuses a record for a topic, for good or for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// A bounded label: `invalid_topic`, `unknown_topic`, `not_authorized`,
    /// `too_large`, `state_topic` (the pipeline's own changelog, refused by
    /// the host before Kafka sees it).
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    /// What a user does about it.
    pub fn fix(&self) -> &'static str {
        match self.reason {
            "invalid_topic" => {
                "a topic name is 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'; fix the plugin's routing"
            }
            "too_large" => {
                "raise the topic's max.message.bytes and the producer's message.max.bytes, or make the output smaller"
            }
            "not_authorized" => {
                "grant this client write access to the topic, or fix the plugin's routing"
            }
            "state_topic" => {
                "a changelog holds plugin state only, written by the host: fix the plugin's routing"
            }
            _ => "create the topic, or fix the plugin's routing",
        }
    }
}

/// Whether Kafka accepts `topic` as a topic name; why not if it does not.
pub fn check_name(topic: &str) -> Result<(), Refusal> {
    let why = if topic.is_empty() {
        "the topic name is empty"
    } else if topic.len() > MAX_NAME {
        "the topic name is longer than 249 characters"
    } else if topic == "." || topic == ".." {
        "the topic name is '.' or '..'"
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "the topic name holds a character other than a-z, A-Z, 0-9, '.', '_' and '-'"
    } else {
        return Ok(());
    };
    Err(Refusal {
        reason: "invalid_topic",
        message: why.into(),
    })
}

#[derive(Debug)]
struct Known {
    refusal: Refusal,
    /// For `too_large`: the smallest record size refused.
    from_bytes: usize,
    until: Option<Instant>,
}

/// Refusals learned from Kafka, shared with the producer's delivery
/// callback and kept when the producer is replaced.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Fast path: nothing was ever refused.
    any: AtomicBool,
    known: Mutex<HashMap<String, Known>>,
}

impl Refusals {
    /// Remembers that Kafka refused a record of `bytes` for `topic` with
    /// `code`, if that refusal is the record's doing.
    pub fn learn(&self, topic: &str, code: Option<RDKafkaErrorCode>, bytes: usize, error: &str) {
        let reason = match code {
            Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition) => {
                "unknown_topic"
            }
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => "not_authorized",
            Some(RDKafkaErrorCode::InvalidTopic) => "invalid_topic",
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                "too_large"
            }
            _ => return,
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_REMEMBERED && !known.contains_key(topic) {
            known.clear();
        }
        let from_bytes = match known.get(topic) {
            Some(k) if k.refusal.reason == reason => k.from_bytes.min(bytes),
            _ => bytes,
        };
        known.insert(
            topic.to_owned(),
            Known {
                refusal: Refusal {
                    reason,
                    message: error.to_owned(),
                },
                from_bytes: if reason == "too_large" { from_bytes } else { 0 },
                until: (reason != "invalid_topic").then(|| Instant::now() + REMEMBERED),
            },
        );
        self.any.store(true, Ordering::Release);
    }

    /// Whether a record of `bytes` for `topic` is known to be refused.
    pub fn check(&self, topic: &str, bytes: usize) -> Result<(), Refusal> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let Some(k) = known.get(topic) else {
            return Ok(());
        };
        if k.until.is_some_and(|t| t <= Instant::now()) {
            known.remove(topic);
            return Ok(());
        }
        if bytes < k.from_bytes {
            return Ok(());
        }
        Err(k.refusal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kafka_refuses_are_refused() {
        for bad in ["", ".", "..", "a b", "a\0b", "ü", "a/b", &"x".repeat(250)] {
            assert_eq!(
                check_name(bad).unwrap_err().reason,
                "invalid_topic",
                "{bad:?}"
            );
        }
        for good in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_refusal_is_remembered_by_topic_and_size() {
        let r = Refusals::default();
        assert!(r.check("t", 10).is_ok());
        r.learn(
            "t",
            Some(RDKafkaErrorCode::MessageSizeTooLarge),
            1000,
            "too big",
        );
        assert!(r.check("t", 999).is_ok());
        assert_eq!(r.check("t", 1000).unwrap_err().reason, "too_large");
        assert!(r.check("other", 5000).is_ok());
        r.learn(
            "gone",
            Some(RDKafkaErrorCode::UnknownTopicOrPartition),
            1,
            "no topic",
        );
        assert_eq!(r.check("gone", 0).unwrap_err().reason, "unknown_topic");
        // A broker restarting is no record's fault.
        r.learn(
            "busy",
            Some(RDKafkaErrorCode::NotLeaderForPartition),
            1,
            "moving",
        );
        assert!(r.check("busy", 1).is_ok());
    }
}
