//! Plugins that keep state, run by the pipeline on the real broker: a
//! count per key stays exact — no count skipped, none repeated — across a
//! stop part-way, a restart that restores from the local store's
//! checkpoint plus the changelog's tail, and a restart with the local
//! store gone that restores the changelog in full.

use crate::kafka::{
    Rec, consume, create_topics, numbered, plugin_dir, produce, run_config, start, topic,
};
use rdkafka::Message as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmpipe::config::RunConfig;
use wasmpipe::kafka::Delivery;

/// Per key, the counts the output holds, in the order they were produced.
fn counts_per_key(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<String, Vec<u64>> {
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in messages {
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let count = std::str::from_utf8(m.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        per_key.entry(key).or_default().push(count);
    }
    per_key
}

fn wait_for_outputs(running: crate::kafka::Running, at_least: u64) -> crate::kafka::Running {
    let deadline = Instant::now() + Duration::from_secs(90);
    while running.telemetry.metrics.total("records_produced") < at_least {
        if running.handle.is_finished() {
            panic!("the pipeline stopped: {:?}", running.handle.join().unwrap());
        }
        assert!(Instant::now() < deadline, "the pipeline made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

#[test]
fn counts_stay_exact_across_a_restart_and_a_lost_store_under_exactly_once() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("count-in"), topic("count-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    // 50 keys per partition, 40 records each.
    let first_round = numbered(3, 2000);
    produce(&input, &first_round);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_COUNT, None);
    let config = run_config(&input, &output, None, &plugins, Delivery::ExactlyOnce);

    // Stopped part-way; the second run goes on from its store's checkpoint.
    let first = start(config.clone());
    let first = wait_for_outputs(first, 1500);
    let first = first.stop();
    assert!(first.metrics.total("state_changelog_records") > 0);
    let second = start(RunConfig {
        transactional_id: format!("{}-2", config.transactional_id),
        ..config.clone()
    });
    let second = wait_for_outputs(
        second,
        (first_round.len() as u64).saturating_sub(first.metrics.total("records_produced")),
    );
    let second = second.stop();

    // The local store is gone: the third run restores the changelog whole.
    let second_round: Vec<(i32, Rec)> = numbered(3, 2000);
    produce(&input, &second_round);
    let third = start(RunConfig {
        transactional_id: format!("{}-3", config.transactional_id),
        state_dir: config.state_dir.with_extension("elsewhere"),
        ..config.clone()
    });
    let total = first_round.len() + second_round.len();
    let got = consume(&output, total, true, Duration::from_secs(120));
    let third = third.stop();
    assert!(
        third.metrics.total("state_restored_records") >= 150,
        "the third run restored every key of its partitions: {}",
        third.metrics.total("state_restored_records")
    );
    let _ = second;

    let per_key = counts_per_key(&got);
    assert_eq!(per_key.len(), 150, "every key counted");
    for (key, counts) in &per_key {
        let expected: Vec<u64> = (1..=80).collect();
        assert_eq!(
            counts, &expected,
            "key {key}: each count once, in order, none skipped"
        );
    }
    assert_eq!(got.len(), total);
}
