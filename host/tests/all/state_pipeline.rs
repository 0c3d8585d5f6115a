//! Plugins that keep state, run by the pipeline on the real broker: a
//! count per key stays exact — no count skipped, none repeated — across a
//! stop part-way, a restart that restores from the local store's
//! checkpoint plus the changelog's tail, and a restart with the local
//! store gone that restores the changelog in full.

use crate::kafka::{
    Rec, consume, create_topics, numbered, partitions_of, plugin_dir, produce, run_config, start,
    topic,
};
use rdkafka::Message as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmpipe::config::RunConfig;
use wasmpipe::kafka::Delivery;

/// Per key, the counts the output holds, in the order they were produced.
pub fn counts_per_key(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<String, Vec<u64>> {
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
    counts_across_restarts(Delivery::ExactlyOnce);
}

/// At-least-once may repeat records after a crash, not after a clean stop:
/// the changelog is acknowledged before each offset commit, and the store
/// applies writes only once their offsets are committed.
#[test]
fn counts_stay_exact_across_a_clean_restart_and_a_lost_store_under_at_least_once() {
    counts_across_restarts(Delivery::AtLeastOnce);
}

fn counts_across_restarts(delivery: Delivery) {
    let _heavy = crate::heavy();
    let (input, output) = (topic("count-in"), topic("count-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    // 50 keys per partition, 40 records each.
    let first_round = numbered(3, 2000);
    produce(&input, &first_round);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_COUNT, None);
    let config = run_config(&input, &output, None, &plugins, delivery);

    // Stopped part-way; the second run goes on from its store's checkpoint.
    let first = start(config.clone());
    let first = wait_for_outputs(first, 1500);
    // Each assigned partition's store reports its size once its writes
    // are final; the gauges go with the partitions.
    crate::reload::wait("every key's count to be in the stores", || {
        first.telemetry.metrics.gauge("state_entries") >= 150
    });
    let first = first.stop();
    assert!(first.metrics.total("state_changelog_records") > 0);
    assert_eq!(first.metrics.gauge("state_entries"), 0);
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
    let got = consume(
        &output,
        total,
        delivery == Delivery::ExactlyOnce,
        Duration::from_secs(120),
    );
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

#[test]
fn twenty_reloads_keep_the_counts_exact_under_exactly_once() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("count-hr-in"), topic("count-hr-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let count = std::fs::read(wasmpipe_test_guests::FLAT_COUNT).unwrap();
    let reshape = std::fs::read(wasmpipe_test_guests::FLAT_RESHAPE).unwrap();
    // Each version counts, then marks its outputs with its number.
    let set = |version: u32| {
        format!(
            "plugins:\n  - file: count.wasm\n  - file: reshape.wasm\n    config: {{ set_header.v: \"{version}\" }}\n"
        )
        .into_bytes()
    };
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    let update = |version: u32| {
        wasmpipe::reload::kubelet_update(
            dir,
            &[
                ("count.wasm", &count),
                ("reshape.wasm", &reshape),
                ("pipeline.yaml", &set(version)),
            ],
        )
        .unwrap()
    };
    update(1);
    let config = run_config(&input, &output, None, dir, Delivery::ExactlyOnce);
    let (_background, reloader) = crate::reload::reloader(dir, &config);
    let running = crate::kafka::start_with(config, Some(reloader.updates()));

    let records = numbered(3, 1000);
    let feeder = {
        let (input, records) = (input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(100) {
                produce(&input, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    for version in 2..=21 {
        update(version);
        crate::reload::wait("a new set to be swapped in", || {
            running.telemetry.metrics.total_where("reloads", "swapped") == u64::from(version - 1)
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    feeder.join().unwrap();
    let got = consume(&output, records.len(), true, Duration::from_secs(120));
    let telemetry = running.stop();
    drop(reloader);

    assert_eq!(telemetry.metrics.total_where("reloads", "swapped"), 20);
    let versions: std::collections::BTreeSet<Vec<u8>> = got
        .iter()
        .filter_map(|m| {
            use rdkafka::message::Headers as _;
            let headers = m.headers()?;
            headers
                .iter()
                .find(|h| h.key == "v")?
                .value
                .map(<[u8]>::to_vec)
        })
        .collect();
    assert!(
        versions.len() > 5,
        "records were counted by many versions: {}",
        versions.len()
    );
    let per_key = counts_per_key(&got);
    assert_eq!(per_key.len(), 150);
    let expected: Vec<u64> = (1..=20).collect();
    for (key, counts) in &per_key {
        assert_eq!(
            counts, &expected,
            "key {key}: the count went on across every reload"
        );
    }
}

#[test]
fn a_plugin_that_never_writes_state_gets_no_changelog_topic() {
    let (input, output) = (topic("nowrite-in"), topic("nowrite-out"));
    create_topics(&[(&input, 2), (&output, 2)]);
    // count skips records without a key: it reads no state and writes none.
    let keyless: Vec<(i32, Rec)> = (0..200)
        .map(|i| {
            (
                i % 2,
                Rec {
                    key: None,
                    value: Some(format!("{i}").into_bytes()),
                    headers: Vec::new(),
                },
            )
        })
        .collect();
    produce(&input, &keyless);
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_COUNT, None);
    let config = run_config(&input, &output, None, &plugins, Delivery::AtLeastOnce);
    let group = config.group.clone();
    let running = start(config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.telemetry.metrics.total("records_consumed") < 200 {
        assert!(Instant::now() < deadline, "the pipeline made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let telemetry = running.stop();
    assert_eq!(telemetry.metrics.total("records_produced"), 0);
    assert_eq!(telemetry.metrics.total("state_changelog_records"), 0);
    let changelog =
        wasmpipe::state::changelog::topic_name(&group, "count", &Default::default()).unwrap();
    let kafka = wasmpipe::kafka::KafkaConfig {
        brokers: crate::kafka::bootstrap(),
        properties: Vec::new(),
        token_source: None,
    };
    assert_eq!(
        wasmpipe::kafka::partitions_if_any(&kafka, &changelog, Duration::from_secs(10)).unwrap(),
        None,
        "{changelog} was not made"
    );
}

#[test]
fn a_record_kafka_would_refuse_is_dead_lettered_with_none_of_its_state() {
    let (input, output, dlq) = (topic("refuse-in"), topic("refuse-out"), topic("refuse-dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    // Every tenth record is routed to a topic name Kafka refuses.
    let records: Vec<(i32, Rec)> = (0..300)
        .map(|i| {
            let region = if i % 10 == 3 { "bad" } else { "ok" };
            (
                0,
                Rec {
                    key: Some(b"k".to_vec()),
                    value: Some(format!(r#"{{"region":"{region}","i":{i}}}"#).into_bytes()),
                    headers: Vec::new(),
                },
            )
        })
        .collect();
    produce(&input, &records);
    let dir = tempfile::tempdir().unwrap();
    for plugin in [
        wasmpipe_test_guests::FLAT_TALLY,
        wasmpipe_test_guests::FLAT_ROUTE,
    ] {
        let name = std::path::Path::new(plugin).file_name().unwrap();
        std::fs::copy(plugin, dir.path().join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "plugins:\n  - file: tally.wasm\n    config: { trigger: never }\n  - file: route.wasm\n    config: { path: region, route.bad: \"not a topic!\" }\n",
    )
    .unwrap();
    let config = run_config(
        &input,
        &output,
        Some(&dlq),
        dir.path(),
        Delivery::ExactlyOnce,
    );
    let running = start(config);
    let kept = consume(&output, 270, true, Duration::from_secs(90));
    let dead = consume(&dlq, 30, true, Duration::from_secs(90));
    running.stop();

    let tallies: Vec<u64> = kept
        .iter()
        .map(|m| {
            use rdkafka::message::Headers as _;
            let h = m.headers().unwrap();
            let v = h.iter().find(|h| h.key == "tally").unwrap().value.unwrap();
            std::str::from_utf8(v).unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(
        tallies,
        (1..=270).collect::<Vec<u64>>(),
        "no refused record counted"
    );
    assert_eq!(dead.len(), 30);
    for m in &dead {
        use rdkafka::message::Headers as _;
        let h = m.headers().unwrap();
        let header = |key: &str| {
            let v = h
                .iter()
                .find(|h| h.key == key)
                .and_then(|h| h.value)
                .unwrap();
            String::from_utf8_lossy(v).into_owned()
        };
        assert_eq!(header("wasmpipe.error.kind"), "produce");
        assert_eq!(header("wasmpipe.plugin"), "route");
        assert!(header("wasmpipe.error.message").contains("not a topic!"));
    }
}

#[test]
fn a_raised_generation_starts_the_state_over_and_a_named_changelog_keeps_it() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("gen-in"), topic("gen-out"));
    let named = topic("gen-counts");
    create_topics(&[(&input, 2), (&output, 2)]);
    let count = std::fs::read(wasmpipe_test_guests::FLAT_COUNT).unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    let update = |state: &str| {
        let pipeline = format!("plugins:\n  - file: count.wasm\n    state: {state}\n");
        wasmpipe::reload::kubelet_update(
            dir,
            &[
                ("count.wasm", &count),
                ("pipeline.yaml", pipeline.as_bytes()),
            ],
        )
        .unwrap()
    };
    let in_named = format!("{{ changelog: {named} }}");
    update(&in_named);
    let config = run_config(&input, &output, None, dir, Delivery::ExactlyOnce);
    let group = config.group.clone();
    let (_background, reloader) = crate::reload::reloader(dir, &config);
    let running = crate::kafka::start_with(config, Some(reloader.updates()));

    // Each round counts every key twice; each set gets a whole round.
    let round = numbered(2, 100);
    produce(&input, &round);
    let running = wait_for_outputs(running, 200);
    update("{ generation: 1 }");
    crate::reload::wait("the set with generation 1", || {
        running.telemetry.metrics.total_where("reloads", "swapped") == 1
    });
    produce(&input, &round);
    let running = wait_for_outputs(running, 400);
    update(&in_named);
    crate::reload::wait("the set back on the named changelog", || {
        running.telemetry.metrics.total_where("reloads", "swapped") == 2
    });
    produce(&input, &round);
    let got = consume(&output, 3 * round.len(), true, Duration::from_secs(120));
    running.stop();
    drop(reloader);

    let per_key = counts_per_key(&got);
    assert_eq!(per_key.len(), 100);
    for (key, counts) in &per_key {
        assert_eq!(
            counts,
            &[1, 2, 1, 2, 3, 4],
            "key {key}: generation 1 counted from nothing, the named changelog went on"
        );
    }
    let default =
        wasmpipe::state::changelog::topic_name(&group, "count", &Default::default()).unwrap();
    assert_eq!(partitions_of(&named), Some(2), "{named}");
    assert_eq!(partitions_of(&format!("{default}-1")), Some(2));
    assert_eq!(partitions_of(&default), None, "{default} was never used");
}

#[test]
fn a_changelog_named_like_the_output_is_refused_at_start() {
    let (input, output) = (topic("clash-in"), topic("clash-out"));
    create_topics(&[(&input, 1), (&output, 1)]);
    let pipeline =
        format!("plugins:\n  - file: count.wasm\n    state: {{ changelog: {output} }}\n");
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_COUNT, Some(&pipeline));
    let config = run_config(&input, &output, None, &plugins, Delivery::AtLeastOnce);
    let running = start(config);
    let err = running.handle.join().unwrap().expect_err("refused");
    assert_eq!(
        format!("{err:#}"),
        format!(
            "the changelog topic of plugin count is {output}, which is also the output topic: a \
             changelog holds only that plugin's state; give it another `state.changelog`"
        )
    );
}

/// A plugin routing records into a changelog topic of the pipeline (here
/// one named as the count plugin's would be) would rewrite state: each
/// such record is dead-lettered as `state_topic` before anything of it is
/// queued, and the topic is never written.
#[test]
fn a_plugin_cannot_route_records_into_a_changelog() {
    let (input, output, dlq) = (topic("guard-in"), topic("guard-out"), topic("guard-dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    let mut records = numbered(1, 20);
    for (i, (_, r)) in records.iter_mut().enumerate() {
        if i % 5 == 2 {
            r.value = Some(b"poison".to_vec());
        }
    }
    produce(&input, &records);
    let probe = run_config(
        &input,
        &output,
        Some(&dlq),
        std::path::Path::new("."),
        Delivery::ExactlyOnce,
    );
    let changelog =
        wasmpipe::state::changelog::topic_name(&probe.group, "count", &Default::default()).unwrap();
    let yaml = format!(
        "plugins:\n  - file: misbehave.wasm\n    config: {{ mode: route, topic: \"{changelog}\" }}\n"
    );
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_MISBEHAVE, Some(&yaml));
    let running = start(RunConfig {
        plugin_dir: plugins,
        ..probe
    });
    let kept = consume(&output, 16, true, Duration::from_secs(60));
    let dead = consume(&dlq, 4, true, Duration::from_secs(60));
    running.stop();
    assert_eq!((kept.len(), dead.len()), (16, 4));
    for m in &dead {
        use rdkafka::message::Headers as _;
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(m.payload(), Some(&b"poison"[..]));
        assert_eq!(
            header("wasmpipe.error.reason").as_deref(),
            Some("state_topic")
        );
        assert_eq!(
            header("wasmpipe.error.message"),
            Some(format!(
                "the host refuses the output for topic '{changelog}': it is a changelog topic of \
                 this pipeline's plugin state; a changelog holds plugin state only, written by the \
                 host: fix the plugin's routing"
            ))
        );
    }
    assert_eq!(
        partitions_of(&changelog),
        None,
        "{changelog} was never written"
    );
}
