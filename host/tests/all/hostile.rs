//! Plugins written to get around the limits rather than to transform:
//! blocking WASI calls past the deadline, memory split over several core
//! instances, outputs whose spans alias one buffer, files that are not
//! plugins. Each is contained: its record fails with the right family and
//! the next batch runs.

use crate::{origins, values, values_batch};
use std::time::{Duration, Instant};
use wasmpipe::runtime::{Chain, Failure, Limits, LoadError, read_plugin_file};
use wasmpipe_test_guests::plugin;

/// A component of the flat world written by hand, so it can do what no SDK
/// does: two extra core instances with memories of their own (`$hog1`,
/// `$hog2`, which `transform` may grow by `GROW` pages each) and an output
/// written straight into linear memory by `BODY`, which leaves the output
/// record at address 64.
const FLAT_WAT: &str = r#"
(component
  (core module $hog
    (memory (export "memory") 0)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  (core instance $hog1 (instantiate $hog))
  (core instance $hog2 (instantiate $hog))
  (core module $m
    (import "hog1" "grow" (func $grow1 (param i32) (result i32)))
    (import "hog2" "grow" (func $grow2 (param i32) (result i32)))
    (memory (export "memory") 20)
    (global $heap (mut i32) (i32.const 0x100000))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (block $ok
        (loop $more
          (br_if $ok (i32.le_u (global.get $heap)
                               (i32.mul (memory.size) (i32.const 65536))))
          (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
          (br $more)))
      (local.get $p))
    (func (export "init") (param i32 i32) (result i32) (i32.const 16))
    (func (export "transform") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $n i32)
      (if (i32.eq (call $grow1 (i32.const GROW)) (i32.const -1)) (then unreachable))
      (if (i32.eq (call $grow2 (i32.const GROW)) (i32.const -1)) (then unreachable))
      BODY
      (i32.const 64)))
  (core instance $i (instantiate $m
    (with "hog1" (instance $hog1)) (with "hog2" (instance $hog2))))
  (type $batch' (record
    (field "data" (list u8)) (field "records" (list u32)) (field "positions" (list s64))
    (field "headers" (list u32)) (field "topics" (list string))))
  (type $record-error' (record (field "source" u32) (field "message" string)))
  (export $batch "batch" (type $batch'))
  (export $record-error "record-error" (type $record-error'))
  (type $output' (record
    (field "data" (list u8)) (field "records" (list u32)) (field "timestamps" (list s64))
    (field "headers" (list u32)) (field "topics" (list string))
    (field "errors" (list $record-error))))
  (export $output "output" (type $output'))
  (func $init (param "config" (list (tuple string string))) (result (result (error string)))
    (canon lift (core func $i "init") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
  (func $transform (param "batch" $batch) (result $output)
    (canon lift (core func $i "transform") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
  (instance $e
    (export "batch" (type $batch))
    (export "record-error" (type $record-error))
    (export "output" (type $output))
    (export "init" (func $init))
    (export "transform" (func $transform)))
  (export "wasmpipe:transform/flat-transform@0.1.0" (instance $e)))
"#;

/// An empty output: every list of the record at 64 is (0, 0).
const EMPTY_OUTPUT: &str = "";

/// `topics` (the fifth list, at 64 + 32) holds 100,000 strings that all
/// point at the same 60,000 bytes: 6 GB if the host copied each.
const ALIASED_TOPICS: &str = r#"
      (i32.store (i32.const 96) (i32.const 0x10000))
      (i32.store (i32.const 100) (i32.const 100000))
      (block $done
        (loop $each
          (br_if $done (i32.ge_u (local.get $n) (i32.const 100000)))
          (i32.store (i32.add (i32.const 0x10000) (i32.mul (local.get $n) (i32.const 8)))
                     (i32.const 1024))
          (i32.store (i32.add (i32.const 0x10004) (i32.mul (local.get $n) (i32.const 8)))
                     (i32.const 60000))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br $each)))
"#;

fn hand_written(grow_pages: u32, body: &str) -> tempfile::TempPath {
    let text = FLAT_WAT
        .replace("GROW", &grow_pages.to_string())
        .replace("BODY", body);
    let wasm = wat::parse_str(&text).unwrap();
    let file = tempfile::Builder::new()
        .prefix("hostile")
        .suffix(".wasm")
        .tempfile()
        .unwrap();
    std::fs::write(file.path(), wasm).unwrap();
    file.into_temp_path()
}

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(300),
        memory_bytes: 8 << 20,
        ..Limits::default()
    }
}

/// Runs one batch of three records through `path` and returns the failure
/// every record got (a hand-written guest fails them all), after checking
/// that the next batch fails the same way rather than hanging or crashing.
fn fail_all(path: &std::path::Path, limits: Limits) -> Failure {
    let source = read_plugin_file(path).unwrap();
    let plugin = crate::runtime().load(&source, vec![], limits).unwrap();
    let mut chain = Chain {
        plugins: vec![plugin],
    }
    .instantiate()
    .unwrap();
    let input = values_batch(&["a", "b", "c"]);
    let out = chain.run(&input);
    assert!(values(&out).is_empty());
    assert_eq!(
        out.failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let first = out.failures[0].failure.clone();
    assert!(
        out.failures.iter().all(|f| f.failure == first),
        "{:?}",
        out.failures
    );
    let again = chain.run(&input);
    assert_eq!(again.failures.len(), 3);
    first
}

#[test]
fn a_hand_written_component_runs_when_it_stays_within_its_limits() {
    // 2 x 24 pages (3 MiB) on top of 20 pages (1.25 MiB): under 8 MiB.
    let path = hand_written(24, EMPTY_OUTPUT);
    let source = read_plugin_file(&path).unwrap();
    let plugin = crate::runtime().load(&source, vec![], limits()).unwrap();
    let out = crate::run(vec![plugin], &values_batch(&["a", "b"]));
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert!(values(&out).is_empty(), "it emits nothing");
}

#[test]
fn memory_is_limited_per_plugin_not_per_linear_memory() {
    // Each of the two extra memories grows to 6 MiB, under the 8 MiB
    // limit alone, 13.25 MiB with the plugin's own memory.
    let path = hand_written(96, EMPTY_OUTPUT);
    assert_eq!(fail_all(&path, limits()), Failure::Memory(8 << 20));
}

#[test]
fn aliased_output_spans_are_counted_before_they_are_copied() {
    let path = hand_written(0, ALIASED_TOPICS);
    let limits = Limits {
        output_bytes: 1 << 20,
        ..limits()
    };
    assert_eq!(
        fail_all(&path, limits),
        Failure::OutputLimit { limit: 1 << 20 }
    );
}

/// A plugin that sleeps for an hour through WASI (what `std::thread::sleep`,
/// Python's `time.sleep` and Go's `time.Sleep` compile to) costs its
/// deadline, in both worlds; the other records of its batch go through.
#[test]
fn sleeping_in_a_wasi_call_costs_the_deadline() {
    for world in ["flat", "typed"] {
        let plugin = crate::load(plugin(world, "misbehave"), &[("mode", "sleep")], limits());
        let mut chain = Chain {
            plugins: vec![plugin],
        }
        .instantiate()
        .unwrap();
        let input = values_batch(&["a", "poison", "c"]);
        let started = Instant::now();
        let out = chain.run(&input);
        let took = started.elapsed();
        assert_eq!(values(&out), ["a", "c"], "{world}");
        assert_eq!(origins(&out), [0, 2]);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].index, 1);
        assert_eq!(
            out.failures[0].failure,
            Failure::Deadline(Duration::from_millis(300))
        );
        // The batch, then the sleeping record alone: two deadlines.
        assert!(took < Duration::from_secs(5), "{world}: took {took:?}");
    }
}

#[test]
fn sleeping_in_init_costs_the_deadline_and_refuses_the_plugin() {
    let source = read_plugin_file(plugin("flat", "misbehave").as_ref()).unwrap();
    let started = Instant::now();
    let err = crate::runtime()
        .load(&source, crate::config(&[("mode", "sleep-init")]), limits())
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let LoadError::InitFailed { name, failure } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(name, "misbehave");
    assert_eq!(*failure, Failure::Deadline(Duration::from_millis(300)));
}

#[test]
fn a_long_guest_error_is_cut_and_marked() {
    let plugin = crate::load(
        plugin("flat", "misbehave"),
        &[("mode", "long-error"), ("huge_bytes", "1000000")],
        limits(),
    );
    let out = crate::run(vec![plugin], &values_batch(&["poison"]));
    let Failure::Guest(message) = &out.failures[0].failure else {
        panic!("{:?}", out.failures)
    };
    assert!(
        message.len() <= wasmpipe::text::FIELD_BYTES,
        "{}",
        message.len()
    );
    assert!(message.starts_with("eeee"));
    assert!(
        message.ends_with(" more bytes]"),
        "{}",
        &message[message.len() - 40..]
    );
}

/// Isolating a batch of records that each hit the deadline stops once its
/// time is up (at least one record on), saying where the rest starts;
/// running the rest goes on from there, one record at a time.
#[test]
fn isolating_stops_at_its_time_budget_and_the_rest_runs_next() {
    let plugin = crate::load(plugin("flat", "misbehave"), &[("mode", "sleep")], limits());
    let mut chain = Chain {
        plugins: vec![plugin],
    }
    .instantiate()
    .unwrap();
    let input = values_batch(&["poison", "poison", "poison", "poison", "a"]);
    let until = Instant::now() + Duration::from_millis(300);
    let out = chain.run_within(&input, Some(until), false);
    // The batch call (300 ms), then one record (300 ms): past the budget.
    assert_eq!(out.done, 1);
    assert_eq!(out.failures.len(), 1);
    assert!(values(&out).is_empty());

    let rest = values_batch(&["poison", "poison", "poison", "a"]);
    let out = chain.run_within(&rest, None, true);
    assert_eq!(out.done, 4);
    assert_eq!(values(&out), ["a"]);
    assert_eq!(
        out.failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(
        out.failures
            .iter()
            .all(|f| f.failure == Failure::Deadline(Duration::from_millis(300)))
    );
}
