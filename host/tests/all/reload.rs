//! Hot reload while records stream through the real broker under
//! exactly-once: the plugin directory is updated the way the kubelet
//! updates a ConfigMap volume, through 55 sets — versions marking their
//! outputs, and broken sets in between. Every input is in the output once,
//! a partition's marks never go back, every broken set is refused and the
//! stream goes on.

use crate::kafka::{
    consume, create_topics, numbered, produce, run_config, sequence, start_with, topic,
};
use rdkafka::message::{Headers, Message};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmpipe::background::Background;
use wasmpipe::config::{RunConfig, load_snapshot};
use wasmpipe::kafka::Delivery;
use wasmpipe::reload::{Reloader, Snapshot, Watch, WatchOptions, kubelet_update, read_snapshot};
use wasmpipe_test_guests::{FLAT_RESHAPE, FLAT_WRONG_WORLD};

fn pipeline(version: u32) -> Vec<u8> {
    format!("plugins:\n  - file: reshape.wasm\n    config: {{ set_header.v: \"{version}\" }}\n")
        .into_bytes()
}

/// A reloader watching `dir`, building sets as `wasmpipe run` does.
pub fn reloader(dir: &std::path::Path, config: &RunConfig) -> (Background, Reloader) {
    let runtime = crate::runtime();
    let snapshot = read_snapshot(dir, None).unwrap();
    let chain = load_snapshot(&runtime, &snapshot, config.limits).unwrap();
    let limits = config.limits;
    let build = Box::new(move |s: &Snapshot| {
        let chain = load_snapshot(&runtime, s, limits)?;
        chain.instantiate()?;
        Ok(chain)
    });
    let background = Background::new().unwrap();
    let watch = Watch {
        dir,
        pipeline: None,
        running: &snapshot,
        chain: &chain,
    };
    let reloader = Reloader::start(
        &background,
        watch,
        build,
        WatchOptions::default(),
        Arc::default(),
    )
    .unwrap();
    (background, reloader)
}

/// Waits until `done` holds, or fails naming `what`.
pub fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn swaps_under_exactly_once_lose_and_duplicate_nothing() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("hr-in"), topic("hr-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let reshape = std::fs::read(FLAT_RESHAPE).unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    kubelet_update(
        dir,
        &[("reshape.wasm", &reshape), ("pipeline.yaml", &pipeline(1))],
    )
    .unwrap();

    let config = run_config(&input, &output, None, dir, Delivery::ExactlyOnce);
    let (_background, reloader) = reloader(dir, &config);
    let updates = reloader.updates();
    let running = start_with(config, Some(updates.clone()));

    let records = numbered(3, 3000);
    let feeder = {
        let (input, records) = (input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(150) {
                produce(&input, chunk);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let wrong_world = std::fs::read(FLAT_WRONG_WORLD).unwrap();
    let truncated = reshape[..reshape.len() / 2].to_vec();
    let (mut version, mut refused, mut swaps) = (1, 0, 0);
    for step in 1..=55 {
        swaps += 1;
        if step % 5 == 0 {
            let broken: Vec<(&str, Vec<u8>)> = match (step / 5) % 4 {
                0 => vec![
                    ("reshape.wasm", b"not a component".to_vec()),
                    ("pipeline.yaml", pipeline(version + 1)),
                ],
                1 => vec![
                    ("reshape.wasm", wrong_world.clone()),
                    ("pipeline.yaml", pipeline(version + 1)),
                ],
                2 => vec![
                    ("reshape.wasm", truncated.clone()),
                    ("pipeline.yaml", pipeline(version + 1)),
                ],
                _ => vec![
                    ("reshape.wasm", reshape.clone()),
                    (
                        "pipeline.yaml",
                        b"plugins:\n  - file: reshape.wasm\n    confg: {}\n".to_vec(),
                    ),
                ],
            };
            let files: Vec<(&str, &[u8])> = broken.iter().map(|(n, b)| (*n, &b[..])).collect();
            kubelet_update(dir, &files).unwrap();
            refused += 1;
            wait("a broken set to be refused", || {
                updates.status().failures == refused
            });
            assert_eq!(
                updates.status().version,
                version as u64,
                "the running set stays"
            );
        } else {
            version += 1;
            kubelet_update(
                dir,
                &[
                    ("reshape.wasm", &reshape),
                    ("pipeline.yaml", &pipeline(version)),
                ],
            )
            .unwrap();
            wait("a new set to be swapped in", || {
                running.telemetry.metrics.total_where("reloads", "swapped")
                    == u64::from(version - 1)
            });
        }
        assert!(
            !running.handle.is_finished(),
            "the pipeline stopped at step {step}"
        );
    }
    feeder.join().unwrap();
    let got = consume(&output, records.len(), true, Duration::from_secs(120));
    let telemetry = running.stop();
    drop(reloader);

    assert!(swaps >= 50);
    assert_eq!(updates.status().failures, refused);
    assert_eq!(
        telemetry.metrics.total_where("reloads", "swapped"),
        u64::from(version - 1)
    );
    // Per input partition, in input order: (sequence, version mark).
    let mut marks: BTreeMap<i64, BTreeMap<i64, Vec<u32>>> = BTreeMap::new();
    for m in &got {
        let (p, seq) = sequence(m).unwrap();
        let headers = m.headers().unwrap();
        let v = headers
            .iter()
            .find(|h| h.key == "v")
            .and_then(|h| h.value)
            .unwrap();
        let v: u32 = std::str::from_utf8(v).unwrap().parse().unwrap();
        marks.entry(p).or_default().entry(seq).or_default().push(v);
    }
    let total: usize = marks.values().map(BTreeMap::len).sum();
    assert_eq!(total, records.len(), "every input in the output");
    for (p, seqs) in &marks {
        let mut last = 0;
        for (seq, vs) in seqs {
            assert_eq!(vs.len(), 1, "record {p}/{seq} produced {} times", vs.len());
            assert!(
                vs[0] >= last,
                "partition {p}: record {seq} marked v{} after v{last}",
                vs[0]
            );
            last = vs[0];
        }
    }
    let used: std::collections::BTreeSet<u32> = marks
        .values()
        .flat_map(|s| s.values().map(|v| v[0]))
        .collect();
    assert!(
        used.len() > 1,
        "records were processed by several versions: {used:?}"
    );
}
