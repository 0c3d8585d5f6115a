//! `wasmpipe topics create`: the pipeline's input, output and dead-letter
//! topics created with the partitions the Deployment's replicas follow,
//! idempotently — a topic that exists as asked is left alone, one with
//! fewer partitions is grown only when asked (Kafka cannot remove them, and
//! adding them moves keys to other partitions).

use super::{Client, KafkaConfig, MetadataContext, secrets};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

/// A topic to have.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: usize,
    /// The replication factor; `None`: the brokers' default.
    pub replication: Option<i32>,
    /// Topic configs set when it is created (an existing topic's are not
    /// changed).
    pub configs: Vec<(String, String)>,
    /// Whether its partition count must be `partitions` (the input's: one
    /// pod per partition), or only at least one (outputs).
    pub exact: bool,
}

/// What became of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    Created { partitions: usize },
    Existed { partitions: usize },
    Grown { from: usize, to: usize },
}

impl Ensured {
    pub fn partitions(self) -> usize {
        match self {
            Ensured::Created { partitions } | Ensured::Existed { partitions } => partitions,
            Ensured::Grown { to, .. } => to,
        }
    }
}

impl std::fmt::Display for Ensured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ensured::Created { partitions } => write!(f, "created, {partitions} partitions"),
            Ensured::Existed { partitions } => write!(f, "exists, {partitions} partitions"),
            Ensured::Grown { from, to } => write!(f, "grown from {from} to {to} partitions"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("topic '{topic}': {message}; {fix}")]
    Refused {
        topic: String,
        message: String,
        fix: &'static str,
    },
    #[error(
        "topic '{topic}' has {found} partitions, not the {wanted} asked for: adding partitions \
         sends keys to other partitions (a key's records then run on two pods for a while, and \
         stateful plugins lose the key's state), so it is only done when asked: run again with \
         --grow, or ask for --partitions {found}"
    )]
    TooFew {
        topic: String,
        found: usize,
        wanted: usize,
    },
    #[error(
        "topic '{topic}' has {found} partitions, more than the {wanted} asked for: Kafka cannot \
         remove partitions; ask for --partitions {found} (the Deployment then runs {found} \
         replicas), or delete the topic and run again"
    )]
    TooMany {
        topic: String,
        found: usize,
        wanted: usize,
    },
}

/// Each topic of `specs` made to exist as asked, in order; `grow` allows
/// adding partitions to an exact topic that has fewer.
pub async fn ensure_topics(
    config: &KafkaConfig,
    specs: &[TopicSpec],
    grow: bool,
    timeout: Duration,
) -> Result<Vec<Ensured>, TopicsError> {
    let admin: AdminClient<MetadataContext> = config
        .client_config(Client::Consumer, &[])
        .create_with_context(MetadataContext(config.token_source.clone()))
        .map_err(|e| TopicsError::Refused {
            topic: specs.first().map(|s| s.name.clone()).unwrap_or_default(),
            message: secrets::redact_error(e).to_string(),
            fix: "check the Kafka properties",
        })?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let mut done = Vec::with_capacity(specs.len());
    for spec in specs {
        done.push(ensure(config, &admin, &options, spec, grow, timeout).await?);
    }
    Ok(done)
}

async fn ensure(
    config: &KafkaConfig,
    admin: &AdminClient<MetadataContext>,
    options: &AdminOptions,
    spec: &TopicSpec,
    grow: bool,
    timeout: Duration,
) -> Result<Ensured, TopicsError> {
    let topic = spec.name.as_str();
    let refused = |message: String, fix| TopicsError::Refused {
        topic: topic.to_owned(),
        message,
        fix,
    };
    let count = i32::try_from(spec.partitions).unwrap_or(i32::MAX);
    let mut new = NewTopic::new(
        topic,
        count,
        TopicReplication::Fixed(spec.replication.unwrap_or(-1)),
    );
    for (k, v) in &spec.configs {
        new = new.set(k, v);
    }
    let created = admin
        .create_topics([&new], options)
        .await
        .map_err(|e| refused(e.to_string(), "check that the brokers are reachable"))?;
    match created.first() {
        Some(Ok(_)) => {
            return Ok(Ensured::Created {
                partitions: spec.partitions,
            });
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {}
        Some(Err((_, RDKafkaErrorCode::TopicAuthorizationFailed)))
        | Some(Err((_, RDKafkaErrorCode::ClusterAuthorizationFailed))) => {
            return Err(refused(
                "this client may not create it".into(),
                "grant it CREATE on the topic (MSK IAM: kafka-cluster:CreateTopic), or have an \
                 administrator create it",
            ));
        }
        Some(Err((_, code))) => {
            return Err(refused(
                format!("cannot create it: {code}"),
                "check the partitions, replication factor and configs against the brokers' limits",
            ));
        }
        None => return Err(refused("the brokers answered nothing".into(), "retry")),
    }
    let found = super::partition_count(config, topic, timeout).map_err(|e| {
        refused(
            format!("{e:#}"),
            "check that this client may describe the topic",
        )
    })?;
    let wanted = spec.partitions;
    match found.cmp(&wanted) {
        std::cmp::Ordering::Equal => Ok(Ensured::Existed { partitions: found }),
        _ if !spec.exact => Ok(Ensured::Existed { partitions: found }),
        std::cmp::Ordering::Greater => Err(TopicsError::TooMany {
            topic: topic.to_owned(),
            found,
            wanted,
        }),
        std::cmp::Ordering::Less if !grow => Err(TopicsError::TooFew {
            topic: topic.to_owned(),
            found,
            wanted,
        }),
        std::cmp::Ordering::Less => {
            let more = NewPartitions::new(topic, wanted);
            let grown = admin
                .create_partitions([&more], options)
                .await
                .map_err(|e| refused(e.to_string(), "check that the brokers are reachable"))?;
            match grown.first() {
                Some(Ok(_)) => Ok(Ensured::Grown {
                    from: found,
                    to: wanted,
                }),
                Some(Err((_, code))) => Err(refused(
                    format!("cannot add partitions: {code}"),
                    "grant this client ALTER on the topic (MSK IAM: kafka-cluster:AlterTopic)",
                )),
                None => Err(refused("the brokers answered nothing".into(), "retry")),
            }
        }
    }
}
