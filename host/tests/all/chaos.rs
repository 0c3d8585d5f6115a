//! Three `wasmpipe run` processes on three partitions, one of them killed
//! with SIGKILL at random moments and restarted, then a fourth replica added
//! and removed, against the real broker.
//! Exactly-once: every input exactly once, in order per key. At-least-once:
//! no gaps, duplicates counted.

use crate::kafka::{
    bootstrap, check_order, consume, create_topics, numbered, plugin_dir, produce, sequence, topic,
};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RECORDS_PER_PARTITION: usize = 40_000;

/// A `wasmpipe run` process, killed when dropped, so a failing test leaves
/// none behind.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &str, input: &str, output: &str, plugins: &std::path::Path, delivery: &str) -> Proc {
    spawn_with(name, input, output, plugins, delivery, &[])
}

/// [`spawn`] with more arguments.
pub fn spawn_with(
    name: &str,
    input: &str,
    output: &str,
    plugins: &std::path::Path,
    delivery: &str,
    extra: &[&str],
) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "run",
            "--brokers",
            &bootstrap(),
            "--group",
            &format!("chaos-{input}"),
        ])
        .args([
            "--input-topic",
            input,
            "--output-topic",
            output,
            "--plugin-dir",
            plugins.to_str().unwrap(),
        ])
        .args([
            "--delivery",
            delivery,
            "--on-error",
            "skip",
            "--transactional-id",
            &format!("{input}-{name}"),
        ])
        .args([
            "--kafka",
            "consumer.session.timeout.ms=6000",
            "--kafka",
            "consumer.heartbeat.interval.ms=500",
        ])
        // Several processes on one machine: any free port each.
        .args(["--ops-addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file(input, name))
        .spawn()
        .unwrap();
    Proc(child)
}

/// Each process's log, appended across restarts, kept in the temp dir.
fn log_file(input: &str, name: &str) -> Stdio {
    let path = std::env::temp_dir().join(format!("{input}-{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .into()
}

/// SIGTERM: a clean stop that commits, leaves the group and exits 0.
pub fn terminate(p: &mut Child, input: &str) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = p.try_wait().unwrap() {
            assert!(
                status.success(),
                "a pipeline exited with {status} on SIGTERM (logs: {}/{input}-*.log)",
                std::env::temp_dir().display()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a pipeline did not stop within 40 s of SIGTERM (logs: {}/{input}-*.log)",
            std::env::temp_dir().display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small deterministic generator: the run is random but repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn chaos(delivery: &str) -> (usize, usize, usize) {
    let (got, _) = run_chaos(delivery, wasmpipe_test_guests::FLAT_IDENTITY, "");
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for m in &got {
        *seen.entry(sequence(m).unwrap()).or_default() += 1;
    }
    let duplicates = seen.values().map(|&n| n - 1).sum();
    let refs: Vec<_> = got.iter().collect();
    let repeats = check_order(&refs);
    (seen.len(), duplicates, repeats)
}

/// Runs `plugin` through the kills and the scale-out; returns what the
/// output topic holds and how many records went in. With `state_dirs`,
/// each replica keeps its state store under that directory, by name,
/// across its restarts.
fn run_chaos(
    delivery: &str,
    plugin: &str,
    state_dirs: &str,
) -> (Vec<rdkafka::message::OwnedMessage>, usize) {
    let _heavy = crate::heavy();
    let (input, output) = (
        topic(&format!("chaos-{delivery}-in")),
        topic(&format!("chaos-{delivery}-out")),
    );
    create_topics(&[(&input, 3), (&output, 3)]);
    let records = numbered(3, RECORDS_PER_PARTITION);
    // Records keep arriving while processes die: ~20 s of steady input.
    let feeder = {
        let (input, records) = (input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(records.len() / 100) {
                produce(&input, chunk);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (_dir, plugins) = plugin_dir(plugin, None);
    let spawn =
        |name: &str, input: &str, output: &str, plugins: &std::path::Path, delivery: &str| {
            if state_dirs.is_empty() {
                return spawn(name, input, output, plugins, delivery);
            }
            let dir = format!("{state_dirs}/{name}");
            spawn_with(
                name,
                input,
                output,
                plugins,
                delivery,
                &["--state-dir", &dir],
            )
        };

    let names = ["a", "b", "c"];
    let mut procs: Vec<Proc> = names
        .iter()
        .map(|n| spawn(n, &input, &output, &plugins, delivery))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(500 + rng.next(1500)));
        let victim = rng.next(3) as usize;
        procs[victim].kill().unwrap(); // SIGKILL
        procs[victim].wait().unwrap();
        procs[victim] = spawn(names[victim], &input, &output, &plugins, delivery);
        kills += 1;
    }
    assert_eq!(kills, 4);
    // Scale out and back in: a fourth replica joins (a rebalance), then
    // leaves on SIGTERM (another), while records still arrive.
    let mut extra = spawn("d", &input, &output, &plugins, delivery);
    std::thread::sleep(Duration::from_millis(2500));
    terminate(&mut extra, &input);
    assert!(
        !feeder.is_finished(),
        "every kill and rebalance fell while records were still arriving"
    );

    feeder.join().unwrap();
    let got = consume(
        &output,
        records.len(),
        delivery == "exactly-once",
        Duration::from_secs(240),
    );
    for mut p in procs {
        terminate(&mut p, &input);
    }
    (got, records.len())
}

#[test]
fn exactly_once_counts_stay_exact_with_sigkilled_processes_and_a_scale_out() {
    let dirs = tempfile::tempdir().unwrap();
    let (got, records) = run_chaos(
        "exactly-once",
        wasmpipe_test_guests::FLAT_COUNT,
        dirs.path().to_str().unwrap(),
    );
    // `numbered` gives each partition 50 keys; each key gets a count per
    // record of it: 1, 2, 3 … in order, none skipped, none repeated.
    let per_key_records = RECORDS_PER_PARTITION / 50;
    let mut per_key: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for m in &got {
        use rdkafka::Message as _;
        let count = std::str::from_utf8(m.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        per_key
            .entry(m.key().unwrap().to_vec())
            .or_default()
            .push(count);
    }
    assert_eq!(per_key.len(), 150);
    let expected: Vec<u64> = (1..=per_key_records as u64).collect();
    for (key, counts) in &per_key {
        assert!(
            *counts == expected,
            "key {}: {} counts, first wrong at {:?}",
            String::from_utf8_lossy(key),
            counts.len(),
            counts.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    assert_eq!(got.len(), records);
}

#[test]
fn exactly_once_with_sigkilled_processes() {
    let (distinct, duplicates, repeats) = chaos("exactly-once");
    assert_eq!(
        distinct,
        3 * RECORDS_PER_PARTITION,
        "every input in the output"
    );
    assert_eq!(duplicates, 0, "no duplicate under exactly-once");
    assert_eq!(repeats, 0, "in order per key");
}

#[test]
fn at_least_once_with_sigkilled_processes_has_no_gaps() {
    let (distinct, duplicates, _) = chaos("at-least-once");
    assert_eq!(distinct, 3 * RECORDS_PER_PARTITION, "no gaps");
    eprintln!("at-least-once: {duplicates} duplicates after 4 SIGKILLs");
}
