//! A three-node KRaft cluster of its own (ports 29092–29094): the broker
//! coordinating the pipeline's group is killed with SIGKILL and restarted
//! while an exactly-once pipeline runs. Nothing is lost and nothing is
//! duplicated.

use crate::kafka::{
    Rec, consume_at, create_topics_at, numbered, produce_at, run_config, sequence, start, topic,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmpipe::config::RunConfig;
use wasmpipe::kafka::{Delivery, KafkaConfig};

/// The cluster, stopped when dropped (also when the test fails).
struct Cluster {
    run: tempfile::TempDir,
}

const PORT: &str = "29092";

impl Cluster {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/kafka/broker")
    }

    fn broker(&self, args: &[&str]) -> String {
        let out = Command::new(Self::script())
            .args(args)
            .env("WASMPIPE_BROKER_RUN", self.run.path())
            .env("WASMPIPE_BROKER_PORT", PORT)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/kafka/broker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    }

    /// The node id of the broker coordinating `group`.
    fn coordinator(&self, brokers: &str, group: &str) -> String {
        let row = self.broker(&[
            "tool",
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            brokers,
            "--describe",
            "--state",
            "--group",
            group,
        ]);
        // GROUP  COORDINATOR (ID)  ASSIGNMENT-STRATEGY  STATE  #MEMBERS:
        // "g 127.0.0.1:29093  (2) …"
        let id = row
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(id, _)| id.trim().to_owned());
        id.unwrap_or_else(|| panic!("no coordinator in {row:?}"))
    }

    fn start() -> (Cluster, String) {
        let cluster = Cluster {
            run: tempfile::tempdir().unwrap(),
        };
        let brokers = cluster.broker(&["start", "--nodes", "3"]);
        (cluster, brokers)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .env("WASMPIPE_BROKER_RUN", self.run.path())
            .env("WASMPIPE_BROKER_PORT", PORT)
            .output();
    }
}

/// Runs `plugin` exactly-once over 30,000 records on the cluster while
/// the broker coordinating its group is SIGKILLed and restarted; the
/// output, after the input was checked to hold each record once.
fn across_a_broker_failover(plugin: &str, name: &str) -> Vec<rdkafka::message::OwnedMessage> {
    let _heavy = crate::heavy();
    let (cluster, brokers) = Cluster::start();
    let (input, output) = (topic(&format!("{name}-in")), topic(&format!("{name}-out")));
    create_topics_at(&brokers, &[(&input, 3), (&output, 3)], 3);
    let records: Vec<(i32, Rec)> = numbered(3, 10_000);
    let feeder = {
        let (brokers, input, records) = (brokers.clone(), input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(records.len() / 40) {
                produce_at(&brokers, &input, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let (_dir, plugins) = crate::kafka::plugin_dir(plugin, None);
    let config = RunConfig {
        kafka: KafkaConfig {
            brokers: brokers.clone(),
            properties: vec![],
            token_source: None,
        },
        ..run_config(&input, &output, None, &plugins, Delivery::ExactlyOnce)
    };
    let group = config.group.clone();
    let running = start(config);

    let deadline = Instant::now() + Duration::from_secs(60);
    while running.telemetry.metrics.total("records_produced") < 2_000 {
        assert!(Instant::now() < deadline, "no progress before the failover");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The group coordinator is the hardest broker to lose: offsets are
    // committed to it inside every transaction.
    let node = cluster.coordinator(&brokers, &group);
    cluster.broker(&["kill", &node]);
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker(&["restart", &node]);
    feeder.join().unwrap();

    let got = consume_at(
        &brokers,
        &output,
        records.len(),
        true,
        Duration::from_secs(180),
    );
    running.stop();
    // The input itself must hold each record once, or a duplicate below
    // would be the feeder's, not the pipeline's.
    let fed = consume_at(
        &brokers,
        &input,
        records.len(),
        false,
        Duration::from_secs(60),
    );
    assert_eq!(fed.len(), records.len(), "the input holds each record once");
    got
}

#[test]
fn exactly_once_survives_a_broker_killed_and_restarted() {
    let got = across_a_broker_failover(wasmpipe_test_guests::FLAT_IDENTITY, "fo");
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in &got {
        *seen.entry(sequence(m).unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 30_000, "every input in the output");
    assert_eq!(
        seen.values().filter(|&&n| n > 1).count(),
        0,
        "no duplicates"
    );
}

/// The count per key, its state in a changelog replicated on the cluster:
/// exact across the failover, as its outputs are.
#[test]
fn exactly_once_counts_survive_a_broker_killed_and_restarted() {
    let got = across_a_broker_failover(wasmpipe_test_guests::FLAT_COUNT, "fo-count");
    assert_eq!(got.len(), 30_000);
    let per_key = crate::state_pipeline::counts_per_key(&got);
    assert_eq!(per_key.len(), 150);
    let expected: Vec<u64> = (1..=200).collect();
    for (key, counts) in &per_key {
        assert_eq!(counts, &expected, "key {key}: each count once, in order");
    }
}
