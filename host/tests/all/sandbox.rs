//! A misbehaving plugin is contained: the failing record gets the right
//! failure kind, every other record of its batch goes through, and the next
//! batch runs normally on a fresh instance. Checked in both worlds.

use crate::{load, origins, values, values_batch};
use std::time::Duration;
use wasmpipe::runtime::{Chain, Failure, FailureKind, Limits, LoadError};
use wasmpipe_test_guests::plugin;

const WORLDS: [&str; 2] = ["flat", "typed"];

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    }
}

/// Runs `[a, poison, c]` then `[d, e]` through misbehave in `mode`; returns
/// the failure of the poison record.
fn contain(world: &str, mode: &str, extra: &[(&str, &str)], limits: Limits) -> Failure {
    let mut config = vec![("mode", mode)];
    config.extend_from_slice(extra);
    let plugin = load(plugin(world, "misbehave"), &config, limits);
    let mut chain = Chain {
        plugins: vec![plugin],
    }
    .instantiate()
    .unwrap();

    let input = values_batch(&["a", "poison", "c"]);
    let out = chain.run(&input);
    assert_eq!(
        values(&out),
        ["a", "c"],
        "{world}/{mode}: the other records go through, in order"
    );
    assert_eq!(origins(&out), [0, 2]);
    assert_eq!(out.failures.len(), 1, "{world}/{mode}: exactly one failure");
    let f = out.failures[0].clone();
    assert_eq!((f.index, f.plugin.as_str()), (1, "misbehave"));
    assert_eq!(f.plugin_sha256.len(), 64);

    let input = values_batch(&["d", "e"]);
    let next = chain.run(&input);
    assert_eq!(
        values(&next),
        ["d", "e"],
        "{world}/{mode}: the next batch runs normally"
    );
    assert!(next.failures.is_empty());
    f.failure
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    for world in WORLDS {
        assert_eq!(
            contain(world, "loop", &[], limits()),
            Failure::Deadline(Duration::from_millis(200))
        );
    }
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    for world in WORLDS {
        let limits = Limits {
            memory_bytes: 32 << 20,
            ..limits()
        };
        assert_eq!(
            contain(world, "memory", &[], limits),
            Failure::Memory(32 << 20)
        );
    }
}

#[test]
fn deep_recursion_is_a_trap() {
    for world in WORLDS {
        let f = contain(world, "recurse", &[], limits());
        assert_eq!(f.kind(), FailureKind::Trap, "{world}: {f}");
        assert!(
            f.to_string().contains("out of bounds memory access")
                || f.to_string().contains("stack overflow"),
            "{f}"
        );
    }
}

#[test]
fn a_panic_is_a_trap_carrying_the_guest_message() {
    for world in WORLDS {
        let Failure::Trap(message) = contain(world, "panic", &[], limits()) else {
            panic!("not a trap")
        };
        assert!(
            message.starts_with("wasm `unreachable` instruction executed"),
            "{message}"
        );
        assert!(
            message.contains("misbehave: panic in transform at offset 1"),
            "{message}"
        );
        assert!(message.contains("wasm backtrace:"), "{message}");
    }
}

#[test]
fn a_huge_output_hits_the_output_limit() {
    for world in WORLDS {
        let limits = Limits {
            output_bytes: 1 << 20,
            ..limits()
        };
        let f = contain(world, "huge", &[("huge_bytes", "2000000")], limits);
        assert_eq!(f, Failure::OutputLimit { limit: 1 << 20 }, "{world}");
    }
}

#[test]
fn a_returned_error_fails_only_its_record() {
    for world in WORLDS {
        assert_eq!(
            contain(world, "error", &[], limits()),
            Failure::Guest("misbehave: refused offset 1".into())
        );
    }
}

#[test]
fn a_panic_in_init_refuses_the_plugin_at_load() {
    for world in WORLDS {
        let source =
            wasmpipe::runtime::read_plugin_file(plugin(world, "misbehave").as_ref()).unwrap();
        let err = crate::runtime()
            .load(&source, crate::config(&[("mode", "panic-init")]), limits())
            .unwrap_err();
        let LoadError::InitFailed {
            name,
            failure: Failure::Trap(message),
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(name, "misbehave");
        assert!(
            message.contains("misbehave: panic in init, as asked"),
            "{message}"
        );

        let err = crate::runtime()
            .load(&source, crate::config(&[("mode", "error-init")]), limits())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin misbehave: init refused its config: misbehave: init refused, as asked"
        );
    }
}

#[test]
fn plugin_logs_and_output_do_not_disturb_records() {
    for world in WORLDS {
        let plugin = load(plugin(world, "misbehave"), &[("mode", "log")], limits());
        let out = crate::run(vec![plugin], &values_batch(&["a", "b"]));
        assert_eq!(values(&out), ["a", "b"]);
    }
}
