//! Plugins that keep state, run by the runtime over a real store: a
//! record that fails — an error, a trap, a limit — leaves none of its
//! writes behind, in either world, and the records after it read the state
//! as if it had never run; a chain re-run record by record reads the same
//! stream time as the batch did. Plugins of 0.1.0 keep running beside them
//! (see `conformance` and `script` for every language's).

use crate::{batch, lines, load, values_batch};
use std::ops::Bound;
use std::time::Duration;
use wasmpipe::runtime::{Chain, ChainInstance, Failure, Limits};
use wasmpipe::state::{PartitionState, StateLimits, StoreMemory, Stores};
use wasmpipe_test_guests::plugin;

const WORLDS: [&str; 2] = ["flat", "typed"];

/// A plugin of the chain: (world, name, config).
type Stage<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A chain of `plugins` with fresh state in `dir`.
fn stateful(dir: &std::path::Path, plugins: &[Stage<'_>]) -> ChainInstance {
    stateful_within(dir, plugins, Duration::from_millis(300))
}

fn stateful_within(
    dir: &std::path::Path,
    plugins: &[Stage<'_>],
    deadline: Duration,
) -> ChainInstance {
    let limits = Limits {
        deadline,
        ..Limits::default()
    };
    let plugins = plugins
        .iter()
        .map(|(world, name, config)| load(plugin(world, name), config, limits))
        .collect();
    let mut chain = Chain { plugins }.instantiate().unwrap();
    let stores = Stores::open(dir, StoreMemory::default()).unwrap();
    chain
        .lend_states(|p| {
            let store = stores.partition(&p.name, "in", 0)?;
            Ok::<_, wasmpipe::state::StateError>(PartitionState::new(store, StateLimits::default()))
        })
        .unwrap();
    chain
}

/// Makes what the last run wrote durable, as the pipeline does once the
/// batch's changelog records are: a run's writes are its own until then.
fn seal_all(chain: &mut ChainInstance) {
    for (_, state) in chain.states_mut() {
        if let Some((seq, _)) = state.pending().seal() {
            state.made_durable(seq, 0).unwrap();
        }
    }
}

/// Every live entry of each plugin's state, as (key, u64) pairs.
fn counts(chain: &mut ChainInstance) -> Vec<(String, Vec<(String, u64)>)> {
    chain
        .states_mut()
        .map(|(plugin, state)| {
            let entries = state
                .scan((Bound::Unbounded, Bound::Unbounded), 1000)
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    let n = u64::from_be_bytes(v.try_into().unwrap());
                    (String::from_utf8(k).unwrap(), n)
                })
                .collect();
            (plugin.name.clone(), entries)
        })
        .collect()
}

fn tallies(out: &wasmpipe::runtime::ChainOutput<'_>) -> Vec<String> {
    out.records()
        .map(|r| {
            let (_, v) = r.headers.iter().find(|(n, _)| *n == "tally").unwrap();
            String::from_utf8(v.unwrap().to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn a_failing_records_state_writes_are_dropped_and_the_rest_read_as_if_it_never_ran() {
    for world in WORLDS {
        for mode in ["error", "panic", "loop", "memory"] {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = stateful(dir.path(), &[(world, "tally", &[("mode", mode)])]);
            let input = values_batch(&["a", "a", "poison", "a", "poison", "b"]);
            let out = chain.run(&input);
            let failed: Vec<u32> = out.failures.iter().map(|f| f.index).collect();
            assert_eq!(failed, [2, 4], "{world}/{mode}");
            // `poison` is its own key: its tally never reaches 1.
            assert_eq!(tallies(&out), ["1", "2", "3", "1"], "{world}/{mode}");
            drop(out);
            seal_all(&mut chain);
            assert_eq!(
                counts(&mut chain),
                [(
                    "tally".to_owned(),
                    vec![("a".to_owned(), 3), ("b".to_owned(), 1)]
                )],
                "{world}/{mode}: no write of a failed record"
            );
            // The next batch goes on from there, in one call.
            let next = values_batch(&["a", "poison"]);
            let out = chain.run(&next);
            assert_eq!(tallies(&out), ["4"], "{world}/{mode}");
        }
    }
}

/// A batch that runs past the deadline, each of its records well within
/// it: the call is cut and its records run again one by one, all of them
/// succeeding. What the cut call wrote before it was cut is not kept
/// besides what the re-runs write.
#[test]
fn a_batch_cut_by_the_deadline_and_run_again_counts_each_record_once() {
    for world in WORLDS {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = stateful_within(
            dir.path(),
            &[(world, "tally", &[("spin", "20"), ("trigger", "never")])],
            Duration::from_millis(200),
        );
        let input = values_batch(&["a"; 30]);
        let out = chain.run(&input);
        assert!(out.failures.is_empty(), "{world}: {:?}", out.failures);
        let expected: Vec<String> = (1..=30).map(|n| n.to_string()).collect();
        assert_eq!(tallies(&out), expected, "{world}");
        drop(out);
        seal_all(&mut chain);
        assert_eq!(
            counts(&mut chain),
            [("tally".to_owned(), vec![("a".to_owned(), 30)])],
            "{world}: each record counted once"
        );
    }
}

#[test]
fn a_record_failing_in_a_later_plugin_drops_the_earlier_plugins_writes_too() {
    let dir = tempfile::tempdir().unwrap();
    // count emits the running count as the value; misbehave fails the
    // record whose value is "2": the second record of a key.
    let mut chain = stateful(
        dir.path(),
        &[
            ("flat", "count", &[]),
            ("flat", "misbehave", &[("mode", "error"), ("trigger", "2")]),
        ],
    );
    let input = batch(&[
        r#"{"key":"a"}"#,
        r#"{"key":"a"}"#,
        r#"{"key":"a"}"#,
        r#"{"key":"b"}"#,
    ]);
    let out = chain.run(&input);
    let failed: Vec<(u32, &str)> = out
        .failures
        .iter()
        .map(|f| (f.index, f.plugin.as_str()))
        .collect();
    // The third `a` counts as the second, the failed one's +1 being gone,
    // and so fails too.
    assert_eq!(failed, [(1, "misbehave"), (2, "misbehave")]);
    assert_eq!(
        lines(&out),
        [r#"{"key":"a","value":"1"}"#, r#"{"key":"b","value":"1"}"#]
    );
}

#[test]
fn both_worlds_count_alike_across_batches() {
    let mut seen = Vec::new();
    for world in WORLDS {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = stateful(dir.path(), &[(world, "count", &[])]);
        let mut outputs = Vec::new();
        for keys in [&["a", "b", "a"][..], &["a", "c"], &["b", "a", "a"]] {
            let input: Vec<String> = keys.iter().map(|k| format!(r#"{{"key":"{k}"}}"#)).collect();
            let input = batch(&input.iter().map(String::as_str).collect::<Vec<_>>());
            outputs.extend(lines(&chain.run(&input)));
            seal_all(&mut chain);
        }
        let values: Vec<String> = outputs
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].to_string())
            .collect();
        assert_eq!(
            values,
            [
                "\"1\"", "\"1\"", "\"2\"", "\"3\"", "\"1\"", "\"2\"", "\"4\"", "\"5\""
            ],
            "{world}"
        );
        seen.push(outputs);
    }
    assert_eq!(seen[0], seen[1], "flat and typed agree");
}

#[test]
fn a_plugin_given_no_state_fails_its_records_saying_so() {
    let limits = Limits::default();
    let plugin = load(plugin("flat", "count"), &[], limits);
    let mut chain = Chain {
        plugins: vec![plugin],
    }
    .instantiate()
    .unwrap();
    let input = batch(&[r#"{"key":"a"}"#]);
    let out = chain.run(&input);
    assert_eq!(out.failures.len(), 1);
    match &out.failures[0].failure {
        Failure::Guest(m) => assert!(m.contains("keeps no state for the plugin"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The outputs and failures of `name` over `lines`, cut into batches of
/// `size` (each batch's writes made durable before the next), in input
/// order: `(input index, output line or failure)`.
fn outputs_in_batches(
    world: &str,
    name: &str,
    config: &[(&str, &str)],
    lines: &[String],
    size: usize,
) -> Vec<(usize, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = stateful(dir.path(), &[(world, name, config)]);
    let mut out = Vec::new();
    for (n, chunk) in lines.chunks(size).enumerate() {
        let first = n * size;
        let input = batch(&chunk.iter().map(String::as_str).collect::<Vec<_>>());
        let result = chain.run(&input);
        let produced = result
            .records()
            .map(|r| r.origin)
            .zip(crate::lines(&result));
        let mut batch_out: Vec<(usize, String)> = produced
            .map(|(origin, line)| (first + origin as usize, line))
            .collect();
        for f in &result.failures {
            batch_out.push((first + f.index as usize, format!("failed: {}", f.failure)));
        }
        // Stable: a record's outputs keep their order.
        batch_out.sort_by_key(|(i, _)| *i);
        out.extend(batch_out);
        drop(result);
        seal_all(&mut chain);
    }
    out
}

#[test]
fn windows_and_ttls_give_the_same_results_whatever_the_batching() {
    // Timestamps wander back and forth, some late; keys repeat.
    let mut lines = Vec::new();
    let mut t: i64 = 1_000;
    for i in 0..300i64 {
        t += (i * 7919 % 23) * 500 - 4_000;
        let key = ["eu", "us", "apac"][(i % 3) as usize];
        lines.push(format!(
            r#"{{"key":"{key}","value":"{{\"amount\":{}}}","timestamp":{}}}"#,
            i % 11,
            t.max(0) + i * 400
        ));
    }
    for (name, config) in [
        (
            "window-sum",
            &[("size", "10s"), ("grace", "2s"), ("field", "amount")][..],
        ),
        ("dedup", &[("ttl", "5s")][..]),
    ] {
        let whole = outputs_in_batches("flat", name, config, &lines, lines.len());
        assert!(whole.len() > 20, "{name}: {} outputs", whole.len());
        let failed = whole
            .iter()
            .filter(|(_, l)| l.starts_with("failed"))
            .count();
        if name == "window-sum" {
            assert!(failed > 0, "some records are late");
        } else {
            assert!(whole.len() < lines.len(), "dedup dropped repeats");
        }
        for world in ["flat", "typed"] {
            for size in [1, 7, 64] {
                let got = outputs_in_batches(world, name, config, &lines, size);
                let first_difference = got.iter().zip(&whole).position(|(a, b)| a != b);
                assert!(
                    got.len() == whole.len() && first_difference.is_none(),
                    "{name}, {world}, batches of {size}: {} outputs against {}, first difference at {:?}: {:?}",
                    got.len(),
                    whole.len(),
                    first_difference,
                    first_difference.map(|i| (&got[i], &whole[i]))
                );
            }
        }
    }
}

#[test]
fn a_plugin_over_the_state_limits_fails_that_record_alone() {
    for (mode, reason) in [
        (
            "big-key",
            "state: too large: a state key of 1048576 bytes is over the 16384-byte limit",
        ),
        (
            "big-value",
            "state: too large: a state value of 2097152 bytes is over the 921600-byte limit",
        ),
        (
            "flood",
            "state: full: the partition's state writes not yet durable hold",
        ),
    ] {
        for world in WORLDS {
            let dir = tempfile::tempdir().unwrap();
            // Time enough to write 64 MiB in a debug build.
            let stage: Stage<'_> = (world, "tally", &[("mode", mode)]);
            let mut chain = stateful_within(dir.path(), &[stage], Duration::from_secs(20));
            let input = values_batch(&["a", "poison", "a"]);
            let out = chain.run(&input);
            assert_eq!(tallies(&out), ["1", "2"], "{world}/{mode}");
            let [failed] = out.failures.as_slice() else {
                panic!("{world}/{mode}: {:?}", out.failures);
            };
            assert_eq!(failed.index, 1);
            match &failed.failure {
                Failure::Guest(m) => assert!(m.contains(reason), "{world}/{mode}: {m}"),
                other => panic!("{world}/{mode}: {other:?}"),
            }
            drop(out);
            seal_all(&mut chain);
            assert_eq!(
                counts(&mut chain),
                [("tally".to_owned(), vec![("a".to_owned(), 2)])],
                "{world}/{mode}: nothing of the refused record is kept"
            );
        }
    }
}

#[test]
fn a_record_whose_output_would_be_refused_keeps_no_state() {
    for world in WORLDS {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = stateful(dir.path(), &[(world, "tally", &[("trigger", "never")])]);
        let input = batch(&[
            r#"{"key":"a","value":"x"}"#,
            r#"{"key":"a","value":"too big"}"#,
            r#"{"key":"a","value":"x"}"#,
        ]);
        // Kafka would refuse the second record's output.
        let admit = |r: &wasmpipe::runtime::ChainRecord<'_>| {
            (r.value == Some(b"too big".as_slice())).then(|| Failure::Refused {
                reason: "too_large",
                message: "kafka refuses the output for topic 'out': too large".into(),
            })
        };
        let out = chain.run_admitted(&input, None, false, &admit);
        assert_eq!(
            tallies(&out),
            ["1", "2"],
            "{world}: the third record counts 2"
        );
        let [refused] = out.failures.as_slice() else {
            panic!("{world}: {:?}", out.failures);
        };
        assert_eq!((refused.index, refused.plugin.as_str()), (1, "tally"));
        assert_eq!(
            refused.failure.kind(),
            wasmpipe::runtime::FailureKind::Produce
        );
        assert_eq!(refused.failure.label(), "too_large");
        drop(out);
        seal_all(&mut chain);
        assert_eq!(
            counts(&mut chain),
            [("tally".to_owned(), vec![("a".to_owned(), 2)])],
            "{world}"
        );
    }
}
