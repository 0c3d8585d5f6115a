//! The batch consumer: each partition's records read from its own queue,
//! in order, through rebalances that land while batches are open.

use crate::kafka::{
    check_order, consume, create_topics, numbered, plugin_dir, produce, run_config, sequence,
    start, topic,
};
use rdkafka::message::Message;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmpipe::config::RunConfig;
use wasmpipe::kafka::Delivery;

const PARTITIONS: i32 = 4;
const PER_PARTITION: usize = 3000;

/// One pipeline owns four partitions with long-lingering batches; a second
/// joins the group while records still arrive, and the cooperative
/// rebalance takes partitions from the first with batches half filled.
/// Returns (distinct records read back, records read back, repeats of an
/// earlier record of the same key).
fn rebalance_mid_batch(delivery: Delivery) -> (usize, usize, usize) {
    let name = format!("{delivery:?}").to_lowercase();
    let (input, output) = (
        topic(&format!("mid-{name}-in")),
        topic(&format!("mid-{name}-out")),
    );
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let config = RunConfig {
        batch_records: 100_000,
        batch_bytes: 64 << 20,
        linger: Duration::from_millis(700),
        ..run_config(&input, &output, None, &plugins, delivery)
    };
    let records = numbered(PARTITIONS, PER_PARTITION);
    let (first_half, second_half) = records.split_at(records.len() / 2);
    produce(&input, first_half);

    let first = start(config.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.telemetry.metrics.total("records_consumed") < 1000 {
        assert!(Instant::now() < deadline, "the first pipeline read nothing");
        assert!(!first.handle.is_finished(), "the first pipeline stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The second member joins while more records arrive for every
    // partition, for five seconds: the rebalance lands with batches open
    // (700 ms linger).
    let second = start(RunConfig {
        transactional_id: format!("{}-2", config.transactional_id),
        ..config
    });
    for chunk in second_half.chunks(second_half.len() / 20) {
        produce(&input, chunk);
        std::thread::sleep(Duration::from_millis(250));
    }
    let got = consume(
        &output,
        records.len(),
        delivery == Delivery::ExactlyOnce,
        Duration::from_secs(120),
    );
    let second = second.stop();
    let first = first.stop();
    assert!(
        second.metrics.total("records_consumed") > 0,
        "the second member took no partition"
    );
    assert!(first.metrics.total("records_consumed") > 0);

    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in &got {
        *seen.entry(sequence(m).unwrap()).or_default() += 1;
    }
    for p in 0..PARTITIONS as i64 {
        let missing: Vec<i64> = (0..PER_PARTITION as i64)
            .filter(|s| !seen.contains_key(&(p, *s)))
            .take(5)
            .collect();
        assert!(missing.is_empty(), "partition {p} lost records {missing:?}");
    }
    let repeats = check_order(&got.iter().collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.key().is_some()));
    (seen.len(), got.len(), repeats)
}

#[test]
fn exactly_once_rebalance_mid_batch_loses_and_repeats_nothing() {
    let _heavy = crate::heavy();
    let (distinct, read, repeats) = rebalance_mid_batch(Delivery::ExactlyOnce);
    assert_eq!(distinct, PARTITIONS as usize * PER_PARTITION);
    assert_eq!(read, distinct, "duplicates under exactly-once");
    assert_eq!(repeats, 0, "a key's records out of order");
}

#[test]
fn at_least_once_rebalance_mid_batch_loses_nothing_and_keeps_order() {
    let _heavy = crate::heavy();
    let (distinct, read, repeats) = rebalance_mid_batch(Delivery::AtLeastOnce);
    assert_eq!(distinct, PARTITIONS as usize * PER_PARTITION);
    // A partition revoked is committed first: what its next owner reads
    // again is only what was in flight, and then in order.
    assert_eq!(read - distinct, repeats, "a key's records out of order");
}

/// One member, many partitions, batches as large as a poll round: every
/// partition's records arrive once each, each key's in order.
#[test]
fn batches_keep_each_partition_in_order() {
    let (input, output) = (topic("order-in"), topic("order-out"));
    create_topics(&[(&input, PARTITIONS), (&output, 1)]);
    let records = numbered(PARTITIONS, PER_PARTITION);
    produce(&input, &records);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let running = start(RunConfig {
        batch_records: 4096,
        batch_bytes: 16 << 20,
        ..run_config(&input, &output, None, &plugins, Delivery::AtLeastOnce)
    });
    let got = consume(&output, records.len(), false, Duration::from_secs(90));
    running.stop();
    assert_eq!(got.len(), records.len());
    // One output partition: the output's order is the pipeline's.
    let mut next = [0i64; PARTITIONS as usize];
    for m in &got {
        let (p, seq) = sequence(m).unwrap();
        assert_eq!(seq, next[p as usize], "partition {p} out of order");
        next[p as usize] += 1;
    }
}
