//! Every example plugin behaves the same through the flat and the typed
//! world, and does what its docs say. Chains pass outputs on and fail a
//! record whole.

use crate::{batch, lines, load, origins, run, values, values_batch};
use wasmpipe::runtime::{Failure, Limits};
use wasmpipe_test_guests::plugin;

/// Records that exercise every field: non-UTF-8 and null keys, a
/// tombstone, an empty value, repeated and null headers, timestamps.
const TRICKY: [&str; 5] = [
    r#"{"key":"k1","value":"{\"a\":1}","headers":[["h","1"],["h","2"],["n",null],["bin",{"b64":"AP8="}]],"timestamp":1700000000000}"#,
    r#"{"key_b64":"/wA=","value":null}"#,
    r#"{"value":""}"#,
    r#"{"key":"","value":"x","headers":[["",""]],"timestamp":-5}"#,
    r#"{"value_b64":"gICA","timestamp":0}"#,
];

/// Runs `name` with `config` over `input` in both worlds; asserts both give
/// the same outputs and failures, and returns the output lines.
fn both(name: &str, config: &[(&str, &str)], input: &[&str]) -> (Vec<String>, Vec<(u32, Failure)>) {
    let results: Vec<_> = ["flat", "typed"]
        .map(|world| {
            let out = run(
                vec![load(plugin(world, name), config, Limits::default())],
                &batch(input),
            );
            (
                lines(&out),
                out.failures
                    .into_iter()
                    .map(|f| (f.index, f.failure))
                    .collect::<Vec<_>>(),
            )
        })
        .into_iter()
        .collect();
    assert_eq!(
        results[0], results[1],
        "{name}: flat and typed worlds differ"
    );
    results[0].clone()
}

#[test]
fn identity_reproduces_every_byte_header_and_timestamp() {
    let (out, failures) = both("identity", &[], &TRICKY);
    assert!(failures.is_empty());
    let want: Vec<String> = TRICKY
        .iter()
        .map(|l| wasmpipe::jsonl::canonical(l).unwrap())
        .collect();
    assert_eq!(out, want);
    // And in the input's own spelling, for the lines already canonical.
    assert_eq!(out[0], TRICKY[0]);
    assert_eq!(out[1], TRICKY[1]);
}

#[test]
fn identity_keeps_source_metadata_for_the_next_stage() {
    let plugin = load(plugin("flat", "identity"), &[], Limits::default());
    let input = batch(&[r#"{"value":"a","topic":"orders","partition":7,"offset":42}"#]);
    let out = run(vec![plugin], &input);
    let r = out.records().next().unwrap();
    assert_eq!((r.source_topic, r.partition, r.offset), ("orders", 7, 42));
    assert_eq!(origins(&out), [0]);
}

#[test]
fn redact_masks_and_drops_fields() {
    let input = [
        r#"{"key":"1","value":"{\"user\":{\"email\":\"a@x.io\",\"name\":\"Ann\"},\"ssn\":\"123\"}","headers":[["h","1"]]}"#,
        r#"{"key":"2","value":null}"#,
        r#"{"key":"3","value":"not json"}"#,
    ];
    let (out, failures) = both("redact", &[("mask", "user.email"), ("drop", "ssn")], &input);
    assert_eq!(
        out,
        [
            r#"{"key":"1","value":"{\"user\":{\"email\":\"***\",\"name\":\"Ann\"}}","headers":[["h","1"]]}"#,
            r#"{"key":"2","value":null}"#,
        ]
    );
    assert_eq!(
        failures,
        [(
            2,
            Failure::Guest("value is not JSON: expected ident at line 1 column 2".into())
        )]
    );
}

#[test]
fn filter_keeps_matching_records() {
    let input = [
        r#"{"value":"{\"n\":1}"}"#,
        r#"{"value":"{\"n\":50}"}"#,
        r#"{"value":"{}"}"#,
    ];
    let (out, failures) = both(
        "filter",
        &[("path", "n"), ("op", "ge"), ("value", "10")],
        &input,
    );
    assert_eq!(out, [input[1]]);
    assert!(failures.is_empty());
}

#[test]
fn route_picks_topics_by_field() {
    let input = [
        r#"{"value":"{\"r\":\"eu\"}"}"#,
        r#"{"value":"{\"r\":\"us\"}"}"#,
        r#"{"value":"{}"}"#,
    ];
    let (out, _) = both(
        "route",
        &[
            ("path", "r"),
            ("route.eu", "orders-eu"),
            ("route.us", "orders-us"),
        ],
        &input,
    );
    assert_eq!(
        out,
        [
            r#"{"value":"{\"r\":\"eu\"}","topic":"orders-eu"}"#,
            r#"{"value":"{\"r\":\"us\"}","topic":"orders-us"}"#,
            r#"{"value":"{}"}"#,
        ]
    );
}

#[test]
fn reshape_rewrites_key_timestamp_and_headers() {
    let input = [
        r#"{"key":"old","value":"{\"id\":7,\"ts\":1700000000123}","headers":[["drop","x"],["keep","y"]],"timestamp":1}"#,
    ];
    let config = [
        ("key_from", "id"),
        ("timestamp_from", "ts"),
        ("remove_headers", "drop"),
        ("set_header.src", "web"),
    ];
    let (out, _) = both("reshape", &config, &input);
    assert_eq!(
        out,
        [
            r#"{"key":"7","value":"{\"id\":7,\"ts\":1700000000123}","headers":[["keep","y"],["src","web"]],"timestamp":1700000000123}"#
        ]
    );
}

#[test]
fn a_chain_feeds_each_plugin_the_previous_outputs() {
    let reshape = load(
        plugin("flat", "reshape"),
        &[("set_header.region", "eu")],
        Limits::default(),
    );
    let route = load(
        plugin("typed", "route"),
        &[
            ("path", "region"),
            ("route.eu", "unused"),
            ("default", "all"),
        ],
        Limits::default(),
    );
    let redact = load(
        plugin("flat", "redact"),
        &[("mask", "email")],
        Limits::default(),
    );
    let input = batch(&[r#"{"value":"{\"email\":\"a@b\"}"}"#]);
    let out = run(vec![reshape, redact, route], &input);
    assert_eq!(
        lines(&out),
        [r#"{"value":"{\"email\":\"***\"}","headers":[["region","eu"]],"topic":"all"}"#]
    );
}

#[test]
fn a_record_failing_late_in_the_chain_loses_all_its_outputs() {
    let twice = load(
        plugin("flat", "misbehave"),
        &[("mode", "twice")],
        Limits::default(),
    );
    let fail = load(
        plugin("typed", "misbehave"),
        &[("mode", "error")],
        Limits::default(),
    );
    let out = run(vec![twice, fail], &values_batch(&["a", "poison", "b"]));
    assert_eq!(values(&out), ["a", "a", "b", "b"]);
    assert_eq!(origins(&out), [0, 0, 2, 2]);
    let failures: Vec<_> = out
        .failures
        .iter()
        .map(|f| (f.index, f.failure.clone()))
        .collect();
    assert_eq!(
        failures,
        [(1, Failure::Guest("misbehave: refused offset 1".into()))]
    );
}

#[test]
fn routes_survive_later_plugins_that_do_not_route() {
    let route = load(
        plugin("flat", "route"),
        &[("path", "r"), ("route.x", "tx")],
        Limits::default(),
    );
    let identity = load(plugin("typed", "identity"), &[], Limits::default());
    let out = run(
        vec![route, identity],
        &batch(&[r#"{"value":"{\"r\":\"x\"}"}"#, r#"{"value":"{}"}"#]),
    );
    let routed: Vec<Option<&str>> = out.records().map(|r| r.topic).collect();
    assert_eq!(routed, [Some("tx"), None]);
}
