use super::*;
use crate::testing::{self, TestRecord};
use crate::{Config, Outputs, Record, Transform};

/// Sums the value (a decimal number) per key in `windows`, emitting each
/// closed window as `key start end sum` and, with `every`, each update.
struct Sum {
    windows: Windows,
    every: bool,
}

fn plus(record: &Record<'_>) -> impl FnMut(Option<&[u8]>) -> Vec<u8> {
    let n: u64 = std::str::from_utf8(record.value().unwrap_or(b"0"))
        .unwrap()
        .parse()
        .unwrap();
    move |acc| {
        (acc.map_or(0, state::decode_u64) + n)
            .to_be_bytes()
            .to_vec()
    }
}

fn merge(a: &[u8], b: &[u8]) -> Vec<u8> {
    (state::decode_u64(a) + state::decode_u64(b))
        .to_be_bytes()
        .to_vec()
}

impl Transform for Sum {
    fn init(_: &Config) -> Result<Self, Error> {
        unreachable!("built by the tests")
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let key = record.key().unwrap_or_default();
        let update = match self.windows.shape {
            Shape::Session { .. } => {
                self.windows
                    .update_session(key, record.timestamp(), plus(record), merge)?
            }
            _ => self.windows.update(key, record.timestamp(), plus(record))?,
        };
        let mut emit = |tag: &str, w: &Window| {
            let text = format!(
                "{tag} {} {} {} {}",
                String::from_utf8_lossy(&w.key),
                w.start,
                w.end,
                state::decode_u64(&w.value)
            );
            out.emit(&crate::Output::new().value(Some(text.as_bytes())));
        };
        if self.every {
            for w in &update.updated {
                emit("update", w);
            }
        }
        for w in &update.closed {
            emit("final", w);
        }
        if update.late {
            emit(
                "late",
                &Window {
                    key: key.to_vec(),
                    start: record.timestamp(),
                    end: record.timestamp(),
                    value: Vec::new(),
                },
            );
        }
        Ok(())
    }
}

fn run(plugin: &mut Sum, records: &[(&str, i64, &str)]) -> Vec<Result<Vec<String>, String>> {
    let records: Vec<TestRecord> = records
        .iter()
        .map(|(k, t, v)| TestRecord::new().key(k).timestamp(*t).value(v))
        .collect();
    testing::run(plugin, &records)
        .into_iter()
        .map(|r| {
            r.map(|outs| {
                outs.iter()
                    .map(|o| o.value_str().unwrap().to_owned())
                    .collect()
            })
        })
        .collect()
}

fn flat(results: Vec<Result<Vec<String>, String>>) -> Vec<String> {
    results.into_iter().flat_map(|r| r.unwrap()).collect()
}

#[test]
fn tumbling_windows_close_when_stream_time_passes_end_plus_grace() {
    testing::reset_state();
    let mut sum = Sum {
        windows: Windows::tumbling(Duration::from_millis(100)).grace(Duration::from_millis(20)),
        every: false,
    };
    let out = flat(run(
        &mut sum,
        &[
            ("a", 10, "1"),
            ("b", 50, "2"),
            ("a", 99, "3"),
            // In grace: window [0, 100) still takes it.
            ("a", 119, "0"),
            ("a", 105, "4"),
            ("a", 110, "5"),
        ],
    ));
    assert!(out.is_empty(), "nothing closed before 120: {out:?}");
    let out = flat(run(&mut sum, &[("c", 120, "7")]));
    assert_eq!(out, ["final a 0 100 4", "final b 0 100 2"]);
    let out = flat(run(&mut sum, &[("c", 400, "1")]));
    assert_eq!(out, ["final a 100 200 9", "final c 100 200 7"]);
}

#[test]
fn a_late_record_is_rejected_or_dropped_by_option() {
    testing::reset_state();
    let mut sum = Sum {
        windows: Windows::tumbling(Duration::from_millis(100)),
        every: false,
    };
    let results = run(&mut sum, &[("a", 10, "1"), ("a", 250, "1"), ("a", 20, "5")]);
    assert_eq!(results[1], Ok(vec!["final a 0 100 1".to_owned()]));
    let late = results[2].as_ref().unwrap_err();
    assert!(late.starts_with("late record: key a at 20 ms"), "{late}");

    testing::reset_state();
    let mut sum = Sum {
        windows: Windows::tumbling(Duration::from_millis(100)).late(Late::Drop),
        every: false,
    };
    let results = run(&mut sum, &[("a", 250, "1"), ("a", 20, "5")]);
    assert_eq!(results[1], Ok(vec!["late a 20 20 0".to_owned()]));
}

#[test]
fn hopping_windows_hold_each_record_in_size_over_advance_windows() {
    testing::reset_state();
    let mut sum = Sum {
        windows: Windows::hopping(Duration::from_millis(100), Duration::from_millis(50)),
        every: true,
    };
    let out = flat(run(&mut sum, &[("a", 60, "1")]));
    assert_eq!(out, ["update a 0 100 1", "update a 50 150 1"]);
    let out = flat(run(&mut sum, &[("a", 120, "2"), ("a", 1000, "0")]));
    assert_eq!(
        out,
        [
            "update a 50 150 3",
            "update a 100 200 2",
            "final a 0 100 1",
            "update a 950 1050 0",
            "update a 1000 1100 0",
            "final a 50 150 3",
            "final a 100 200 2",
        ]
    );
}

#[test]
fn session_windows_grow_and_merge_per_key() {
    testing::reset_state();
    let mut sum = Sum {
        windows: Windows::session(Duration::from_millis(10)).grace(Duration::from_millis(20)),
        every: true,
    };
    let out = flat(run(
        &mut sum,
        &[
            ("a", 100, "1"),
            ("b", 101, "10"),
            ("a", 125, "2"),
            ("a", 112, "4"),
        ],
    ));
    // 100 -> [100, 110); 125 -> [125, 135); 112 is less than 10 ms from
    // neither 100 nor 125: a session of its own (not late: it would end
    // at 122, and stream time 125 is within the 20 ms grace).
    assert_eq!(
        out,
        [
            "update a 100 110 1",
            "update b 101 111 10",
            "update a 125 135 2",
            "update a 112 122 4",
        ]
    );
    // 118 bridges [112, 122) and [125, 135): one session of 4 + 2 + 8.
    let out = flat(run(&mut sum, &[("a", 118, "8")]));
    assert_eq!(out, ["update a 112 135 14"]);
    let out = flat(run(&mut sum, &[("c", 500, "0")]));
    assert_eq!(
        out,
        [
            "update c 500 510 0",
            "final a 100 110 1",
            "final b 101 111 10",
            "final a 112 135 14",
        ]
    );
    assert_eq!(
        testing::state_entries().len(),
        3,
        "only c's open session (and its index entry) remain, and where the next close starts"
    );
    // A record whose session would have ended before stream time minus
    // grace is late.
    let results = run(&mut sum, &[("a", 400, "1")]);
    assert!(results[0].as_ref().unwrap_err().starts_with("late record"));
}

#[test]
fn a_failed_record_leaves_its_windows_as_they_were() {
    testing::reset_state();
    struct Failing(Sum);
    impl Transform for Failing {
        fn init(_: &Config) -> Result<Self, Error> {
            unreachable!()
        }
        fn transform(&mut self, r: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
            self.0.transform(r, out)?;
            if r.value() == Some(b"99") {
                return Err(Error::msg("refused after updating"));
            }
            Ok(())
        }
    }
    let mut plugin = Failing(Sum {
        windows: Windows::tumbling(Duration::from_millis(100)),
        every: true,
    });
    let records: Vec<TestRecord> = [(10, "1"), (20, "99"), (30, "2")]
        .iter()
        .map(|(t, v)| TestRecord::new().key("a").timestamp(*t).value(v))
        .collect();
    let results = testing::run(&mut plugin, &records);
    assert!(results[1].is_err());
    let last = results[2].as_ref().unwrap();
    assert_eq!(last[0].value_str(), Some("update a 0 100 3"));
}
