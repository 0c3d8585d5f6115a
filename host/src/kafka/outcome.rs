//! What producing and committing can come to: a transaction's failure, a
//! record's refusal, and a batch's acknowledgements.

use super::topics::Refusal;
use rdkafka::error::KafkaError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

/// Why a transaction could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// Kafka refused the transaction (a produce failed, a broker restarted
    /// and the producer's epoch moved on, retries ran out) but the producer
    /// is still usable: abort it and process its input again.
    #[error("the transaction has to be aborted: {0}")]
    Abortable(#[source] KafkaError),
    /// The producer cannot go on (fenced by a newer instance with the same
    /// transactional id, or a fatal error): restart from the last commit.
    #[error(transparent)]
    Fatal(KafkaError),
    /// The commit was sent but Kafka did not say whether it took effect
    /// before the retries ran out. A new producer settles it (its
    /// initialisation completes or aborts the pending transaction); the
    /// group's committed offsets then say where to read again.
    #[error("the outcome of the transaction commit is unknown: {0}")]
    Unknown(#[source] KafkaError),
    /// A transactional call did not return long after its timeout (the
    /// client waits on a coordinator that went away:
    /// confluentinc/librdkafka#5456). The producer is left to it and
    /// replaced; the new one settles the open transaction.
    #[error(
        "kafka: {call} did not return within {waited:?}, past its own timeout; giving the producer up and starting a new one"
    )]
    Stuck {
        call: &'static str,
        waited: Duration,
    },
    /// A record was refused after outputs of it were queued in the open
    /// transaction: aborted, the record's outputs go with it, and when it
    /// is processed again it is refused before any of them is queued.
    #[error(
        "kafka refused an output for topic '{topic}' ({reason}) after other outputs of its record were queued"
    )]
    RecordRefused { topic: String, reason: &'static str },
    /// The consumer has no group metadata to commit the offsets with.
    #[error("the consumer has no group metadata to commit the transaction's offsets with")]
    NoGroup,
    /// No thread could be started to make a transactional call on.
    #[error("kafka: no thread could be started for {call}: {error}")]
    Thread {
        call: &'static str,
        error: std::io::Error,
    },
}

impl From<KafkaError> for TransactionError {
    fn from(e: KafkaError) -> Self {
        match &e {
            KafkaError::Transaction(t) if t.txn_requires_abort() || t.is_retriable() => {
                TransactionError::Abortable(e)
            }
            _ => TransactionError::Fatal(e),
        }
    }
}

/// Why a record could not be queued for producing.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Kafka refuses this record (its topic's name is invalid or the topic
    /// does not exist, it is larger than `message.max.bytes`): the record
    /// is at fault, not the pipeline.
    #[error("kafka refuses the record for topic '{topic}': {}", refusal.message)]
    Refused { topic: String, refusal: Refusal },
    /// Exactly-once: the open transaction has failed (an earlier record
    /// was not delivered) and takes no more records until it is aborted.
    #[error(transparent)]
    Transaction(TransactionError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// Acknowledgements of one batch's records: the batch's offset may be
/// committed once `pending` is zero and nothing failed.
#[derive(Debug, Default)]
pub struct BatchAck {
    pending: AtomicUsize,
    failed: Mutex<Option<String>>,
    /// Topics whose highest delivered offset is kept (a plugin state's
    /// changelog, whose store records how far it has applied it).
    tracked: Vec<(Box<str>, AtomicI64)>,
}

impl BatchAck {
    /// An ack that keeps the highest offset Kafka gave a record of each
    /// of `topics`.
    pub fn tracking<'t>(topics: impl IntoIterator<Item = &'t str>) -> BatchAck {
        BatchAck {
            tracked: topics
                .into_iter()
                .map(|t| (t.into(), AtomicI64::new(-1)))
                .collect(),
            ..BatchAck::default()
        }
    }

    /// Whether any topic's offsets are kept.
    pub fn tracks(&self) -> bool {
        !self.tracked.is_empty()
    }

    /// Kafka stored a record of `topic` at `offset`.
    pub fn delivered_at(&self, topic: &str, offset: i64) {
        for (t, highest) in &self.tracked {
            if **t == *topic {
                highest.fetch_max(offset, Ordering::AcqRel);
            }
        }
    }

    /// The highest offset delivered of tracked `topic`, if any was.
    pub fn highest(&self, topic: &str) -> Option<i64> {
        self.tracked
            .iter()
            .find(|(t, _)| **t == *topic)
            .map(|(_, h)| h.load(Ordering::Acquire))
            .filter(|&o| o >= 0)
    }

    /// One more output of the batch is queued.
    pub fn queued(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// An output counted by [`BatchAck::queued`] was not queued after all.
    pub fn withdrawn(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Kafka answered for one queued output: `failure` says why it was not
    /// taken, if it was not.
    pub fn answered(&self, failure: Option<String>) {
        if let Some(e) = failure {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.get_or_insert(e);
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn is_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Why a record of the batch could not be delivered, if one could not.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A record to produce.
pub struct OutRecord<'a, H> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: H,
    pub timestamp: Option<i64>,
    /// The partition; `None` lets the partitioner pick (by key, as Java
    /// clients do).
    pub partition: Option<i32>,
}
