//! Zombies under exactly-once, on the real broker: a replica frozen past
//! its session timeout while the group moves its partition on, then thawed
//! with a transaction still open; and a replica replaced by one with a new
//! name (a new pod: its default transactional id changes, so nothing
//! fences the old one by id). Either way `read_committed` output holds
//! every input exactly once.

use crate::chaos::{Proc, spawn_with, terminate};
use crate::kafka::{
    check_order, consume, create_topics, numbered, plugin_dir, produce, sequence, topic,
};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const PER_PARTITION: usize = 10_000;

/// Two replicas on two partitions with records arriving for ~12 s; `act`
/// runs 3 s in, with the replicas. Returns every output read back.
fn run(case: &str, act: impl FnOnce(&mut Vec<Proc>, &dyn Fn(&str) -> Proc)) {
    let _heavy = crate::heavy();
    let (input, output) = (topic(&format!("{case}-in")), topic(&format!("{case}-out")));
    create_topics(&[(&input, 2), (&output, 2)]);
    let records = numbered(2, PER_PARTITION);
    let feeder = {
        let (input, records) = (input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(records.len() / 60) {
                produce(&input, chunk);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (_dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    // A transaction left open by a dead replica is aborted by the broker
    // after this, instead of a minute.
    let spawn = |name: &str| {
        spawn_with(
            name,
            &input,
            &output,
            &plugins,
            "exactly-once",
            &["--kafka", "producer.transaction.timeout.ms=10000"],
        )
    };
    let mut procs = vec![spawn("a"), spawn("b")];
    std::thread::sleep(Duration::from_secs(3));
    act(&mut procs, &spawn);
    assert!(
        !feeder.is_finished(),
        "the zombie fell while records still arrived"
    );
    feeder.join().unwrap();
    let got = consume(&output, records.len(), true, Duration::from_secs(180));
    for mut p in procs {
        terminate(&mut p, &input);
    }
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in &got {
        *seen.entry(sequence(m).unwrap()).or_default() += 1;
    }
    let duplicates: usize = seen.values().map(|&n| n - 1).sum();
    assert_eq!(
        seen.len(),
        records.len(),
        "{case}: every input in the output"
    );
    assert_eq!(duplicates, 0, "{case}: no duplicate");
    assert_eq!(
        check_order(&got.iter().collect::<Vec<_>>()),
        0,
        "{case}: in order"
    );
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn a_replica_frozen_past_its_session_and_thawed_duplicates_nothing() {
    run("zombie-stop", |procs, _| {
        signal(&procs[0], "-STOP");
        // Past the 6 s session timeout: the other replica takes the
        // frozen one's partition and processes it from the last commit.
        std::thread::sleep(Duration::from_secs(9));
        signal(&procs[0], "-CONT");
    });
}

#[test]
fn a_replica_replaced_under_a_new_name_duplicates_nothing() {
    run("zombie-rename", |procs, spawn| {
        procs[0].kill().unwrap(); // SIGKILL, a transaction open
        procs[0].wait().unwrap();
        procs[0] = spawn("a-new-pod");
    });
}
