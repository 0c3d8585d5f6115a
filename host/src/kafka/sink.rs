//! The producer: outputs and dead letters to any topic, idempotent, with
//! Java-compatible key partitioning, delivery acknowledgements per batch
//! (at-least-once) or Kafka transactions (exactly-once).

use super::Committer;
use super::outcome::{BatchAck, OutRecord, SendError, TransactionError};
use super::produce::{Headers, Native, Topics, produce};
use super::source::GroupMetadata;
use super::topics::{Refusal, Refusals, check_name};
use super::{Delivery, KafkaConfig, TopicPartition};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, DeliveryResult, Producer as _, ProducerContext, PurgeConfig,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one transactional call may block before it is retried.
const TXN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long past its own timeout a transactional call is waited for
/// before the producer is given up as stuck.
const STUCK_GRACE: Duration = Duration::from_secs(5);

/// How long a transactional call is retried in all before the pipeline
/// gives up on the transaction and recovers (abort or a new producer).
const TXN_RETRY_BUDGET: Duration = Duration::from_secs(45);

pub struct SinkContext {
    fatal: AtomicBool,
    token_source: Option<Arc<dyn super::TokenSource>>,
    refusals: Arc<Refusals>,
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
        if let Err((e, message)) = result {
            // A refusal that is the record's doing is refused up front when
            // the record is processed again.
            self.refusals.learn(
                message.topic(),
                e.rdkafka_error_code(),
                message.payload_len() + message.key_len(),
                &e.to_string(),
            );
            ack.answered(Some(e.to_string()));
        } else {
            // Only a batch with state asks where its records went.
            if let Ok(message) = result
                && ack.tracks()
            {
                ack.delivered_at(message.topic(), message.offset());
            }
            ack.answered(None);
        }
    }
}

/// The producer.
pub struct Sink {
    /// The producer's topic handles; dropped before the producer.
    topics: Topics,
    /// Shared with a transactional call's thread, which may outlive the
    /// sink when the call is stuck.
    producer: Arc<BaseProducer<SinkContext>>,
    delivery: Delivery,
    /// How long one transactional call may block.
    txn_timeout: Duration,
    /// The producer's `message.max.bytes`: larger records are refused.
    max_message_bytes: usize,
}

impl Sink {
    /// An idempotent producer; with exactly-once delivery a transactional
    /// one, its transactions initialised (fencing any older instance with
    /// the same `transactional_id`).
    pub fn new(
        config: &KafkaConfig,
        delivery: Delivery,
        transactional_id: &str,
    ) -> Result<Sink, TransactionError> {
        Sink::with_refusals(config, delivery, transactional_id, Arc::default())
    }

    /// [`Sink::new`] that starts from what an earlier producer learned of
    /// the topics' refusals.
    pub fn with_refusals(
        config: &KafkaConfig,
        delivery: Delivery,
        transactional_id: &str,
        refusals: Arc<Refusals>,
    ) -> Result<Sink, TransactionError> {
        let client = config.producer_config(delivery, transactional_id);
        let max_message_bytes = client
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let producer: BaseProducer<SinkContext> = client
            .create_with_context(SinkContext {
                fatal: AtomicBool::new(false),
                token_source: config.token_source.clone(),
                refusals,
            })
            .map_err(super::secrets::redact_error)?;
        // Serves the first token request before anything waits on a
        // connection (init_transactions would otherwise time out).
        producer.poll(Duration::ZERO);
        let sink = Sink {
            topics: Topics::default(),
            producer: Arc::new(producer),
            delivery,
            txn_timeout: TXN_TIMEOUT,
            max_message_bytes,
        };
        if delivery == Delivery::ExactlyOnce {
            sink.retry("initialising transactions", |p, timeout| {
                // Reports what kept the last attempt waiting (an
                // authentication failure, an unreachable broker) before
                // the next one.
                p.poll(Duration::ZERO);
                p.init_transactions(timeout)
            })?;
            sink.producer.begin_transaction()?;
        }
        Ok(sink)
    }

    /// What this producer learned of the topics' refusals.
    pub fn refusals(&self) -> Arc<Refusals> {
        self.producer.context().refusals.clone()
    }

    /// Whether Kafka would take a record of `bytes` for `topic`, as far as
    /// is known before queueing it: a valid name, not larger than
    /// `message.max.bytes`, not refused before.
    pub fn admit(&self, topic: &str, bytes: usize) -> Result<(), Refusal> {
        check_name(topic)?;
        if bytes > self.max_message_bytes {
            return Err(Refusal {
                reason: "too_large",
                message: format!(
                    "the record's {bytes} bytes exceed the producer's message.max.bytes ({})",
                    self.max_message_bytes
                ),
            });
        }
        self.producer.context().refusals.check(topic, bytes)
    }

    /// Queues `record`, waiting while the producer's queue is full
    /// (backpressure: the caller stops consuming meanwhile). Header names
    /// are bytes, as Kafka carries them.
    pub fn send<'h>(
        &self,
        record: OutRecord<'_, impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>>,
        ack: &Arc<BatchAck>,
    ) -> Result<(), SendError> {
        if let Err(refusal) = check_name(record.topic) {
            return Err(SendError::Refused {
                topic: record.topic.to_owned(),
                refusal,
            });
        }
        let native = Native {
            topic: record.topic,
            key: record.key,
            value: record.value,
            timestamp: record.timestamp,
            partition: record.partition,
        };
        let mut headers = Headers::collect(record.headers);
        let rk = self.producer.client().native_ptr();
        ack.queued();
        let mut opaque = ack.clone();
        loop {
            // SAFETY: `rk` is this sink's producer, whose context decodes
            // delivery opaques as `Arc<BatchAck>`; `topics` is dropped
            // before it.
            let queued = unsafe { produce(rk, &self.topics, &native, headers, opaque) };
            let Err(not) = queued else {
                return Ok(());
            };
            if not.code == RDKafkaErrorCode::QueueFull {
                (headers, opaque) = (not.headers, not.opaque);
                // rdkafka's poll runs to its deadline: keep it short.
                self.producer.poll(Duration::from_millis(1));
                continue;
            }
            // Never queued: nothing will answer for it.
            ack.withdrawn();
            let e = KafkaError::MessageProduction(not.code);
            match not.code {
                RDKafkaErrorCode::State if self.delivery == Delivery::ExactlyOnce => {
                    return Err(SendError::Transaction(TransactionError::Abortable(e)));
                }
                RDKafkaErrorCode::Fatal if self.delivery == Delivery::ExactlyOnce => {
                    return Err(SendError::Transaction(TransactionError::Fatal(e)));
                }
                _ => {}
            }
            let bytes = native.value.map_or(0, <[u8]>::len) + native.key.map_or(0, <[u8]>::len);
            let refusals = &self.producer.context().refusals;
            refusals.learn(native.topic, Some(not.code), bytes, &e.to_string());
            return match refusals.check(native.topic, bytes) {
                Err(refusal) => Err(SendError::Refused {
                    topic: native.topic.to_owned(),
                    refusal,
                }),
                Ok(()) => Err(SendError::Kafka(e)),
            };
        }
    }

    /// Serves delivery callbacks.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything queued is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        flush(&self.producer, timeout)
    }

    pub fn is_fatal(&self) -> bool {
        self.producer.context().fatal.load(Ordering::Acquire)
    }

    /// Exactly-once: commits the open transaction with the consumer offsets
    /// `offsets` (next offset to read, per partition) and begins the next.
    pub fn commit_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: GroupMetadata,
    ) -> Result<(), TransactionError> {
        debug_assert_eq!(self.delivery, Delivery::ExactlyOnce);
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (tp, next) in offsets {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))?;
            }
            self.retry("sending offsets to the transaction", move |p, timeout| {
                p.send_offsets_to_transaction(&tpl, &group.0, timeout)
            })?;
        }
        self.retry("committing the transaction", |p, timeout| {
            // Delivered first, so that rdkafka's own flush in
            // commit_transaction finds nothing to wait for.
            flush(p, timeout)?;
            p.commit_transaction(timeout)
        })
        .map_err(|e| match e {
            // Retrying did not get an answer: the commit may or may not
            // have happened. Aborting now could throw away a committed
            // transaction's offsets and process its records twice.
            TransactionError::Abortable(KafkaError::Transaction(t))
                if t.is_retriable() && !t.txn_requires_abort() =>
            {
                TransactionError::Unknown(KafkaError::Transaction(t))
            }
            other => other,
        })?;
        Ok(self.producer.begin_transaction()?)
    }

    /// Exactly-once: aborts the open transaction and begins the next one.
    pub fn abort_and_begin(&self) -> Result<(), TransactionError> {
        self.abort_transaction()?;
        Ok(self.producer.begin_transaction()?)
    }

    /// Exactly-once: aborts the open transaction (its outputs are never
    /// read by `read_committed` consumers).
    pub fn abort_transaction(&self) -> Result<(), TransactionError> {
        // Abort waits for every queued message to be accounted for: purge
        // them and serve their delivery reports first.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        self.bounded("aborting the transaction", |p, timeout| {
            p.abort_transaction(timeout)
        })?
        .map_err(TransactionError::Fatal)
    }

    /// Retries a transactional call while Kafka says it is retriable (a
    /// broker restarting, a leader moving), with backoff and a log line
    /// each time, for at most [`TXN_RETRY_BUDGET`]; the last error is
    /// returned after it.
    fn retry<F>(&self, what: &'static str, call: F) -> Result<(), TransactionError>
    where
        F: Fn(&BaseProducer<SinkContext>, Duration) -> Result<(), KafkaError>
            + Send
            + Sync
            + 'static,
    {
        let call = Arc::new(call);
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let call = Arc::clone(&call);
            match self.bounded(what, move |p, timeout| call(p, timeout))? {
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && started.elapsed() + backoff < TXN_RETRY_BUDGET =>
                {
                    tracing::warn!(error = %e, attempt, "kafka: {what} failed, retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                other => return other.map_err(TransactionError::from),
            }
        }
    }

    /// Runs one transactional call on a thread of its own and waits for
    /// it at most its timeout and [`STUCK_GRACE`]. librdkafka 2.12 can
    /// block in `send_offsets_to_transaction` far past the timeout it was
    /// given when the group coordinator goes down (confluentinc/librdkafka
    /// #5456, #5511): the pipeline would stop polling its consumer and be
    /// thrown out of the group minutes later. A call still running at the
    /// deadline keeps its thread and this producer; the caller replaces
    /// the sink.
    fn bounded<T, F>(&self, what: &'static str, call: F) -> Result<T, TransactionError>
    where
        T: Send + 'static,
        F: FnOnce(&BaseProducer<SinkContext>, Duration) -> T + Send + 'static,
    {
        let producer = Arc::clone(&self.producer);
        let timeout = self.txn_timeout;
        let waited = timeout + STUCK_GRACE;
        let (done, result) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("kafka-txn".into())
            .spawn(move || {
                let _ = done.send(call(&producer, timeout));
            })
            .map_err(|e| TransactionError::Thread {
                call: what,
                error: e,
            })?;
        result
            .recv_timeout(waited)
            .map_err(|_| TransactionError::Stuck { call: what, waited })
    }
}

/// Waits until every queued record is acknowledged or `timeout` passes,
/// serving delivery reports as they arrive. rdkafka's `flush` serves them
/// in 100 ms slices that always run to their end, so each flush, and each
/// transaction commit (which flushes first), took 100 ms or more.
fn flush(producer: &BaseProducer<SinkContext>, timeout: Duration) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    // Sends what is lingering now instead of after linger.ms.
    let _ = producer.flush(Duration::ZERO);
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

impl super::Producer for Sink {
    fn admit(&self, topic: &str, bytes: usize) -> Result<(), Refusal> {
        Sink::admit(self, topic, bytes)
    }

    fn send<'h>(
        &self,
        record: OutRecord<'_, impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>>,
        ack: &Arc<BatchAck>,
    ) -> Result<(), SendError> {
        Sink::send(self, record, ack)
    }

    fn poll(&self) {
        Sink::poll(self)
    }

    fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        Sink::flush(self, timeout)
    }

    fn is_fatal(&self) -> bool {
        Sink::is_fatal(self)
    }

    fn commit_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        member: &dyn Committer,
    ) -> Result<(), TransactionError> {
        let group = member.group_metadata().ok_or(TransactionError::NoGroup)?;
        Sink::commit_transaction(self, offsets, group)
    }

    fn abort_and_begin(&self) -> Result<(), TransactionError> {
        Sink::abort_and_begin(self)
    }

    fn abort_transaction(&self) -> Result<(), TransactionError> {
        Sink::abort_transaction(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::{MockCluster, MockCoordinator};

    /// Every field of a record arrives as it was sent, whether its topic's
    /// handle is kept or the record goes by name (past the handles kept):
    /// a header name that is not UTF-8, a header without a value, no key,
    /// no value, no headers, a timestamp given or left to librdkafka.
    #[test]
    fn records_arrive_whole_by_topic_handle_and_by_name() {
        let cluster = MockCluster::new(1).unwrap();
        for topic in ["kept", "by-name"] {
            cluster.create_topic(topic, 1, 1).unwrap();
        }
        let config = KafkaConfig {
            brokers: cluster.bootstrap_servers(),
            properties: vec![],
            token_source: None,
        };
        let mut sink = Sink::new(&config, Delivery::AtLeastOnce, "").unwrap();
        sink.topics = super::super::produce::Topics::keeping(1);
        let ack = Arc::new(BatchAck::default());
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"n\xff", Some(b"v")), (b"none", None)];
        for topic in ["kept", "by-name"] {
            let full = OutRecord {
                topic,
                key: Some(b"k".as_slice()),
                value: Some(b"v".as_slice()),
                headers: headers.iter().copied(),
                timestamp: Some(1_234),
                partition: None,
            };
            sink.send(full, &ack).unwrap();
            let bare = OutRecord {
                topic,
                key: None,
                value: None,
                headers: std::iter::empty(),
                timestamp: None,
                partition: None,
            };
            sink.send(bare, &ack).unwrap();
        }
        sink.flush(Duration::from_secs(10)).unwrap();
        assert!(
            ack.is_done() && ack.failure().is_none(),
            "{:?}",
            ack.failure()
        );
        assert_eq!(sink.topics.kept(), 1);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for topic in ["kept", "by-name"] {
            assignment
                .add_partition_offset(topic, 0, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 4 && Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.unwrap();
            // rdkafka's own headers panic on a name that is not UTF-8.
            let headers = super::super::queue::NativeHeaders::of(m.ptr()).to_owned();
            got.push((
                m.topic().to_owned(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                headers,
                m.timestamp().to_millis(),
            ));
        }
        got.sort();
        let full = |topic: &str| {
            (
                topic.to_owned(),
                Some(b"k".to_vec()),
                Some(b"v".to_vec()),
                vec![
                    (b"n\xff".to_vec(), Some(b"v".to_vec())),
                    (b"none".to_vec(), None),
                ],
                Some(1_234),
            )
        };
        assert_eq!(got.len(), 4, "{got:?}");
        for (i, topic) in ["by-name", "kept"].into_iter().enumerate() {
            let (bare, whole) = (&got[2 * i], &got[2 * i + 1]);
            assert_eq!(whole, &full(topic));
            assert_eq!(
                (&bare.0, &bare.1, &bare.2, &bare.3),
                (&topic.to_owned(), &None, &None, &vec![])
            );
            // librdkafka stamps the time of queueing.
            assert!(bare.4.is_some_and(|t| t > 1_700_000_000_000), "{bare:?}");
        }
    }

    /// librdkafka's `send_offsets_to_transaction` waits for a group
    /// coordinator that is down far past its timeout
    /// (confluentinc/librdkafka#5456). The sink gives such a call up at
    /// its timeout and grace and says so, instead of blocking the
    /// pipeline until the group throws it out.
    #[test]
    fn a_transactional_call_stuck_on_a_dead_coordinator_is_given_up() {
        let cluster = MockCluster::new(3).unwrap();
        cluster.create_topic("in", 1, 3).unwrap();
        cluster.create_topic("out", 1, 3).unwrap();
        cluster
            .coordinator(MockCoordinator::Transaction("txn".into()), 1)
            .unwrap();
        cluster
            .coordinator(MockCoordinator::Group("g".into()), 2)
            .unwrap();
        let config = KafkaConfig {
            brokers: cluster.bootstrap_servers(),
            properties: vec![],
            token_source: None,
        };
        let mut sink = Sink::new(&config, Delivery::ExactlyOnce, "txn").unwrap();
        sink.txn_timeout = Duration::from_secs(2);
        let ack = Arc::new(BatchAck::default());
        let record = OutRecord {
            topic: "out",
            key: Some(b"k".as_slice()),
            value: Some(b"v".as_slice()),
            headers: std::iter::empty(),
            timestamp: None,
            partition: None,
        };
        sink.send(record, &ack).unwrap();
        sink.flush(Duration::from_secs(10)).unwrap();
        assert!(ack.is_done() && ack.failure().is_none());

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .create()
            .unwrap();
        let group = GroupMetadata(consumer.group_metadata().unwrap());
        cluster.broker_down(2).unwrap();
        let started = Instant::now();
        let offsets = [(
            TopicPartition {
                topic: "in".into(),
                partition: 0,
            },
            1,
        )];
        let e = sink.commit_transaction(&offsets, group).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                e,
                TransactionError::Stuck {
                    call: "sending offsets to the transaction",
                    waited,
                } if waited == Duration::from_secs(2) + STUCK_GRACE
            ),
            "{e:?}"
        );
        assert!(took < Duration::from_secs(9), "gave up after {took:?}");
    }
}
