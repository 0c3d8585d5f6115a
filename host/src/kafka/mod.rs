//! The Kafka side: the consumer that fills batches and the producer that
//! sends outputs, dead letters and transactions. The only module that
//! knows rdkafka; it never sees wasm.

pub mod admin;
pub mod changelog;
mod outcome;
mod produce;
mod queue;
mod secrets;
mod sink;
mod source;
mod topics;

pub use outcome::{BatchAck, OutRecord, SendError, TransactionError};
pub use queue::{Fetched, RawHeaders};
/// The Kafka error type, for the few callers that make one (test doubles).
pub use rdkafka::error::{KafkaError, RDKafkaErrorCode as ErrorCode};
pub use secrets::is_secret;
pub use sink::Sink;
pub use source::{Committer, GroupMetadata, PollRound, Polled, RebalanceHandler, Source};
pub use topics::{Refusal, Refusals};

use rdkafka::ClientConfig;
use rdkafka::client::OAuthToken as RdOAuthToken;
use std::fmt;
use std::sync::Arc;

/// A topic and partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The producer as the pipeline writes through it: [`Sink`] is Kafka's;
/// the pipeline's tests use doubles.
pub trait Producer {
    /// Whether Kafka would take a record of `bytes` for `topic`, as far as
    /// is known before queueing it.
    fn admit(&self, topic: &str, bytes: usize) -> Result<(), Refusal>;
    /// Queues `record`; `ack` learns when Kafka answers for it.
    fn send<'h>(
        &self,
        record: OutRecord<'_, impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>>,
        ack: &Arc<BatchAck>,
    ) -> Result<(), SendError>;
    /// Serves delivery reports.
    fn poll(&self);
    /// Waits until everything queued is answered for, or `timeout` passes.
    fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError>;
    /// The producer cannot go on and must be replaced.
    fn is_fatal(&self) -> bool;
    /// Exactly-once: commits the open transaction with the input offsets
    /// `offsets` as `member` of its group, and begins the next.
    fn commit_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        member: &dyn Committer,
    ) -> Result<(), TransactionError>;
    /// Exactly-once: aborts the open transaction and begins the next.
    fn abort_and_begin(&self) -> Result<(), TransactionError>;
    /// Exactly-once: aborts the open transaction.
    fn abort_transaction(&self) -> Result<(), TransactionError>;
}

/// How outputs and offsets are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// An offset is committed once every output before it is acknowledged.
    AtLeastOnce,
    /// Outputs, dead letters and offsets are committed in one transaction.
    ExactlyOnce,
}

/// Brokers and librdkafka properties shared by the consumer and producer.
#[derive(Clone, Default)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Passed through to librdkafka (TLS, SASL, timeouts…); they override
    /// wasmpipe's own settings. A `consumer.` or `producer.` prefix limits
    /// a property to that client.
    pub properties: Vec<(String, String)>,
    /// Where SASL/OAUTHBEARER tokens come from when the application makes
    /// them (Amazon MSK IAM); librdkafka's own OIDC support needs none.
    pub token_source: Option<Arc<dyn TokenSource>>,
}

/// Whether librdkafka knows a property's name (a `consumer.` or
/// `producer.` prefix is wasmpipe's and is stripped first). Values are not
/// checked here: librdkafka checks them when a client is made, and they
/// may be secrets.
pub fn is_known_property(name: &str) -> bool {
    let name = name
        .strip_prefix("consumer.")
        .or_else(|| name.strip_prefix("producer."))
        .unwrap_or(name);
    // A probe value librdkafka accepts for no property whose name it
    // knows would still be refused by value, not by name: only
    // "unknown property" counts.
    match rdkafka::config::ClientConfig::new()
        .set(name, "0")
        .create_native_config()
    {
        Ok(_) => true,
        Err(rdkafka::error::KafkaError::ClientConfig(code, ..)) => {
            code != rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN
        }
        Err(_) => true,
    }
}

/// A SASL/OAUTHBEARER token.
pub struct OAuthToken {
    pub value: String,
    pub principal: String,
    /// When it stops being valid, in milliseconds since the Unix epoch;
    /// librdkafka asks for a new one at 80% of the lifetime.
    pub expires_at_ms: i64,
}

/// Makes SASL/OAUTHBEARER tokens for the Kafka clients.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> anyhow::Result<OAuthToken>;
}

/// A token for librdkafka's refresh request, from the configured source.
fn oauth_token(
    source: Option<&Arc<dyn TokenSource>>,
) -> Result<RdOAuthToken, Box<dyn std::error::Error>> {
    let source = source.ok_or(
        "sasl.mechanism=OAUTHBEARER needs a token source: for Amazon MSK IAM pass --aws-msk-iam; \
         for an OIDC provider set sasl.oauthbearer.method=oidc with its client id, secret and \
         token endpoint",
    )?;
    match source.token() {
        Ok(t) => Ok(RdOAuthToken {
            token: t.value,
            principal_name: t.principal,
            lifetime_ms: t.expires_at_ms,
        }),
        Err(e) => {
            // librdkafka retries in ten seconds; the reason goes to the log
            // here because librdkafka only reports it at debug level.
            tracing::error!(error = %format!("{e:#}"), "cannot make a SASL/OAUTHBEARER token");
            Err(format!("{e:#}").into())
        }
    }
}

/// Which client a configuration is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Consumer,
    Producer,
}

impl KafkaConfig {
    /// Everything the pipeline's consumer is configured with: wasmpipe's
    /// settings, then the user's properties. (The benchmarks configure
    /// the plain rdkafka loop they compare with from this too.)
    pub fn consumer_config(&self, group: &str, delivery: Delivery) -> ClientConfig {
        let isolation = match delivery {
            Delivery::ExactlyOnce => "read_committed",
            Delivery::AtLeastOnce => "read_uncommitted",
        };
        let own = [
            ("group.id", group),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", isolation),
            ("enable.partition.eof", "false"),
            // Bounded prefetch: 2 MiB queued and 4 MiB per fetch
            // (librdkafka's defaults are 64 MiB and 50 MiB).
            ("queued.max.messages.kbytes", "2048"),
            ("fetch.max.bytes", "4194304"),
            // With a small queue the next fetch must not wait librdkafka's
            // default second once the queue has drained below its bound:
            // that second capped a process at ~19k records/s of 0.5 KiB
            // (the bench's mix) while it sat at 10% CPU.
            ("fetch.queue.backoff.ms", "10"),
            // Consumer lag for the metrics.
            ("statistics.interval.ms", "10000"),
        ];
        let mut client = self.client_config(Client::Consumer, &own);
        // librdkafka refuses a fetch smaller than `message.max.bytes`: where
        // that was raised (for large records), one fetch holds one record.
        let bytes = |k| client.get(k).and_then(|v| v.parse::<u64>().ok());
        if let (Some(record), Some(fetch)) = (bytes("message.max.bytes"), bytes("fetch.max.bytes"))
            && fetch < record
        {
            client.set("fetch.max.bytes", record.to_string());
        }
        client
    }

    /// Everything the pipeline's producer is configured with: wasmpipe's
    /// settings, then the user's properties.
    pub fn producer_config(&self, delivery: Delivery, transactional_id: &str) -> ClientConfig {
        let mut own = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            // Bounded memory: a full queue makes consumption wait. Small
            // records are bounded by count: librdkafka keeps ~0.4 KiB per
            // queued record with three headers on top of its bytes, and
            // its default (100,000) let a process peak at 66 MiB.
            ("queue.buffering.max.kbytes", "16384"),
            ("queue.buffering.max.messages", "20000"),
        ];
        if delivery == Delivery::ExactlyOnce {
            own.push(("transactional.id", transactional_id));
            own.push(("transaction.timeout.ms", "60000"));
        }
        self.client_config(Client::Producer, &own)
    }

    fn client_config(&self, client: Client, own: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in own {
            config.set(*k, *v);
        }
        if self.token_source.is_some() {
            // What MSK's IAM listener speaks; explicit properties below
            // still win.
            config.set("security.protocol", "SASL_SSL");
            config.set("sasl.mechanism", "OAUTHBEARER");
        }
        for (k, v) in &self.properties {
            let key = match (k.strip_prefix("consumer."), k.strip_prefix("producer.")) {
                (Some(k), _) if client == Client::Consumer => k,
                (_, Some(k)) if client == Client::Producer => k,
                (Some(_), _) | (_, Some(_)) => continue,
                (None, None) => k,
            };
            config.set(key, v);
        }
        config
    }
}

/// How many partitions `topic` has, from the brokers' metadata.
pub fn partition_count(
    config: &KafkaConfig,
    topic: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<usize> {
    partitions_if_any(config, topic, timeout)?.ok_or_else(|| {
        anyhow::anyhow!(
            "topic '{topic}': {}; check its name and that the client may describe it",
            rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition
        )
    })
}

/// How many partitions `topic` has, or `None` if the brokers know no such
/// topic (asking does not create it).
pub fn partitions_if_any(
    config: &KafkaConfig,
    topic: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<Option<usize>> {
    use anyhow::Context as _;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::error::RDKafkaErrorCode;
    let client: BaseConsumer<MetadataContext> = config
        .client_config(Client::Consumer, &[("allow.auto.create.topics", "false")])
        .create_with_context(MetadataContext(config.token_source.clone()))
        .map_err(secrets::redact_error)
        .context("creating a Kafka client")?;
    // Serves the first token request, if SASL/OAUTHBEARER asks for one.
    let _ = client.poll(std::time::Duration::ZERO);
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| {
            format!(
                "reading the metadata of topic '{topic}' from {}",
                config.brokers
            )
        })?;
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("the brokers returned no metadata for topic '{topic}'"))?;
    match t.error().map(RDKafkaErrorCode::from) {
        None => Ok(Some(t.partitions().len())),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
        Some(e) => anyhow::bail!(
            "topic '{topic}': {e}; check its name and that the client may describe it"
        ),
    }
}

/// The context of the short-lived clients that only read metadata.
struct MetadataContext(Option<Arc<dyn TokenSource>>);

impl rdkafka::ClientContext for MetadataContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<RdOAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.0.as_ref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A changelog restore reads to the end of its partition and is
        // told so by each record-level EOF; librdkafka reports it here too.
        if error.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::error!(%error, "librdkafka: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for MetadataContext {}

#[cfg(test)]
mod property_tests {
    use super::is_known_property;

    #[test]
    fn property_names_are_known_or_not_whatever_the_value() {
        for known in [
            "security.protocol",
            "sasl.password",
            "consumer.fetch.max.bytes",
            "producer.linger.ms",
            "compression.type",
        ] {
            assert!(is_known_property(known), "{known}");
        }
        for unknown in ["host", "port", "run", "consumer.host", "security.protocoll"] {
            assert!(!is_known_property(unknown), "{unknown}");
        }
    }
}
