//! The producer: outputs and dead letters to any topic, idempotent, with
//! Java-compatible key partitioning, delivery acknowledgements per batch
//! (at-least-once) or Kafka transactions (exactly-once).

use super::source::GroupMetadata;
use super::{Delivery, KafkaConfig, TopicPartition};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one transactional call may block before it is retried.
const TXN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a transactional call is retried in all before the pipeline
/// gives up on the transaction and recovers (abort or a new producer).
const TXN_RETRY_BUDGET: Duration = Duration::from_secs(45);

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
    /// Kafka refuses this record for good (its topic does not exist, it is
    /// larger than `message.max.bytes`): the record is at fault, not the
    /// pipeline.
    #[error("kafka refuses the record for topic '{topic}': {error}")]
    Refused {
        topic: String,
        reason: &'static str,
        error: KafkaError,
    },
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
}

impl BatchAck {
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
}

pub struct SinkContext {
    fatal: AtomicBool,
    token_source: Option<Arc<dyn super::TokenSource>>,
}

impl ClientContext for SinkContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        super::oauth_token(self.token_source.as_ref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            self.fatal.store(true, Ordering::Release);
        }
        tracing::warn!(%error, reason, "kafka producer: {reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Arc<BatchAck>) {
        if let Err((e, _)) = result {
            let mut failed = ack.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
        ack.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The producer.
pub struct Sink {
    producer: BaseProducer<SinkContext>,
    delivery: Delivery,
}

impl Sink {
    /// An idempotent producer; with exactly-once delivery a transactional
    /// one, its transactions initialised (fencing any older instance with
    /// the same `transactional_id`).
    pub fn new(
        config: &KafkaConfig,
        delivery: Delivery,
        transactional_id: &str,
    ) -> Result<Sink, KafkaError> {
        let mut own = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            // Bounded memory: a full queue makes consumption wait.
            ("queue.buffering.max.kbytes", "16384"),
        ];
        if delivery == Delivery::ExactlyOnce {
            own.push(("transactional.id", transactional_id));
            own.push(("transaction.timeout.ms", "60000"));
        }
        let producer: BaseProducer<SinkContext> = config
            .client_config(super::Client::Producer, &own)
            .create_with_context(SinkContext {
                fatal: AtomicBool::new(false),
                token_source: config.token_source.clone(),
            })?;
        // Serves the first token request before anything waits on a
        // connection (init_transactions would otherwise time out).
        producer.poll(Duration::ZERO);
        if delivery == Delivery::ExactlyOnce {
            retry("initialising transactions", || {
                // Reports what kept the last attempt waiting (an
                // authentication failure, an unreachable broker) before
                // the next one.
                producer.poll(Duration::ZERO);
                producer.init_transactions(TXN_TIMEOUT)
            })?;
            producer.begin_transaction()?;
        }
        Ok(Sink { producer, delivery })
    }

    /// Queues `record`, waiting while the producer's queue is full
    /// (backpressure: the caller stops consuming meanwhile).
    pub fn send<'h>(
        &self,
        record: OutRecord<'_, impl Iterator<Item = (&'h str, Option<&'h [u8]>)>>,
        ack: &Arc<BatchAck>,
    ) -> Result<(), SendError> {
        let mut headers = OwnedHeaders::new();
        for (key, value) in record.headers {
            headers = headers.insert(Header { key, value });
        }
        let mut message: BaseRecord<'_, [u8], [u8], Arc<BatchAck>> =
            BaseRecord::with_opaque_to(record.topic, ack.clone()).headers(headers);
        if let Some(k) = record.key {
            message = message.key(k);
        }
        if let Some(v) = record.value {
            message = message.payload(v);
        }
        if let Some(t) = record.timestamp {
            message = message.timestamp(t);
        }
        ack.pending.fetch_add(1, Ordering::AcqRel);
        loop {
            match self.producer.send(message) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                    message = m;
                    self.producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    ack.pending.fetch_sub(1, Ordering::AcqRel);
                    let reason = match e.rdkafka_error_code() {
                        Some(RDKafkaErrorCode::UnknownTopic)
                        | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => "unknown_topic",
                        Some(RDKafkaErrorCode::UnknownPartition) => "unknown_partition",
                        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
                        Some(RDKafkaErrorCode::State) if self.delivery == Delivery::ExactlyOnce => {
                            return Err(SendError::Transaction(TransactionError::Abortable(e)));
                        }
                        Some(RDKafkaErrorCode::Fatal) if self.delivery == Delivery::ExactlyOnce => {
                            return Err(SendError::Transaction(TransactionError::Fatal(e)));
                        }
                        _ => return Err(SendError::Kafka(e)),
                    };
                    return Err(SendError::Refused {
                        topic: record.topic.to_owned(),
                        reason,
                        error: e,
                    });
                }
            }
        }
    }

    /// Serves delivery callbacks.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything queued is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    pub fn is_fatal(&self) -> bool {
        self.producer.context().fatal.load(Ordering::Acquire)
    }

    /// Exactly-once: commits the open transaction with the consumer offsets
    /// `offsets` (next offset to read, per partition) and begins the next.
    pub fn commit_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<(), TransactionError> {
        debug_assert_eq!(self.delivery, Delivery::ExactlyOnce);
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (tp, next) in offsets {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))?;
            }
            retry("sending offsets to the transaction", || {
                self.producer
                    .send_offsets_to_transaction(&tpl, &group.0, TXN_TIMEOUT)
            })?;
        }
        retry("committing the transaction", || {
            self.producer.commit_transaction(TXN_TIMEOUT)
        })
        .map_err(|e| match &e {
            // Retrying did not get an answer: the commit may or may not
            // have happened. Aborting now could throw away a committed
            // transaction's offsets and process its records twice.
            KafkaError::Transaction(t) if t.is_retriable() && !t.txn_requires_abort() => {
                TransactionError::Unknown(e)
            }
            _ => e.into(),
        })?;
        Ok(self.producer.begin_transaction()?)
    }

    /// Exactly-once: aborts the open transaction and begins the next one.
    pub fn abort_and_begin(&self) -> Result<(), TransactionError> {
        self.abort_transaction().map_err(TransactionError::Fatal)?;
        Ok(self.producer.begin_transaction()?)
    }

    /// Exactly-once: aborts the open transaction (its outputs are never
    /// read by `read_committed` consumers).
    pub fn abort_transaction(&self) -> Result<(), KafkaError> {
        // Abort waits for every queued message to be accounted for: purge
        // them and serve their delivery reports first.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        self.producer.abort_transaction(TXN_TIMEOUT)
    }
}

/// Retries a transactional call while Kafka says it is retriable (a broker
/// restarting, a leader moving), with backoff and a log line each time,
/// for at most [`TXN_RETRY_BUDGET`]; the last error is returned after it.
fn retry(what: &str, mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call() {
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && started.elapsed() + backoff < TXN_RETRY_BUDGET =>
            {
                tracing::warn!(error = %e, attempt, "kafka: {what} failed, retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}
