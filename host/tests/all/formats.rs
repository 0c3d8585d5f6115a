//! Record formats through a real schema registry (tests/registry/registry,
//! Apicurio's Confluent-compatible API) and the real broker: Avro in and
//! out of a plugin that edits JSON, bad records dead-lettered as `format`
//! with the reason, and records of clients nobody here wrote
//! (confluent-kafka's serializers, tests/registry/interop.py).

use crate::kafka::{Rec, consume, create_topics, produce, run_config, start, topic};
use apache_avro::Schema;
use apache_avro::types::Value;
use rdkafka::message::{Headers, Message};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use wasmpipe::format::registry::RegistryConfig;
use wasmpipe::format::{Format, FormatConfig, Formats};
use wasmpipe::kafka::Delivery;

/// The registry's Confluent-compatible API (tests/registry/registry url).
pub fn registry_url() -> String {
    std::env::var("WASMPIPE_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// Registers `schema` (of `kind`: AVRO, PROTOBUF, JSON) under `subject`;
/// its id. (Apicurio answers 500 now and then to registrations made at the
/// same time: they are tried again.)
pub fn register(subject: &str, kind: &str, schema: &str) -> u32 {
    let body = serde_json::json!({"schema": schema, "schemaType": kind});
    let url = format!("{}/subjects/{subject}/versions", registry_url());
    let mut last = String::new();
    for _ in 0..20 {
        match ureq::post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send_json(&body)
        {
            Ok(mut response) => {
                let answer: serde_json::Value = response.body_mut().read_json().unwrap();
                return answer["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no id in {answer}")) as u32;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "registering {subject} at {}: {last} (start the registry with tests/registry/registry start)",
        registry_url()
    )
}

fn formats(config: FormatConfig) -> Formats {
    Formats {
        config,
        registry: Some(RegistryConfig {
            url: registry_url(),
            retry: Duration::from_secs(5),
            ..Default::default()
        }),
        cache: Default::default(),
    }
}

const USER: &str = r#"{"type":"record","name":"User","namespace":"wasmpipe.test","fields":[
  {"name":"id","type":"long"},
  {"name":"email","type":["null","string"],"default":null},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
  {"name":"tags","type":{"type":"map","values":"string"}},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"address","type":["null",{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}],"default":null},
  {"name":"blob","type":"bytes"}]}"#;

fn user(i: i64) -> Value {
    use apache_avro::Decimal;
    let unscaled = num_bigint::BigInt::from(i * 125);
    Value::Record(vec![
        ("id".into(), Value::Long(i)),
        (
            "email".into(),
            Value::Union(1, Box::new(Value::String(format!("u{i}@example.com")))),
        ),
        (
            "amount".into(),
            Value::Decimal(Decimal::from(unscaled.to_signed_bytes_be())),
        ),
        (
            "tags".into(),
            Value::Map([("n".to_owned(), Value::String(i.to_string()))].into()),
        ),
        (
            "status".into(),
            Value::Enum((i % 2) as u32, ["NEW", "PAID"][(i % 2) as usize].into()),
        ),
        (
            "address".into(),
            match i % 3 {
                0 => Value::Union(0, Box::new(Value::Null)),
                _ => Value::Union(
                    1,
                    Box::new(Value::Record(vec![(
                        "city".into(),
                        Value::String(format!("c{i}")),
                    )])),
                ),
            },
        ),
        ("blob".into(), Value::Bytes(vec![i as u8, 0, 0xff])),
    ])
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A pipeline masking `email` in Avro values, from `input` to `output`.
fn redact_avro(
    input: &str,
    output: &str,
    dlq: &str,
    delivery: Delivery,
) -> (tempfile::TempDir, crate::kafka::Running) {
    let (dir, plugins) = crate::kafka::plugin_dir(wasmpipe_test_guests::FLAT_REDACT, Some(REDACT));
    let mut config = run_config(input, output, Some(dlq), &plugins, delivery);
    config.formats = formats(FormatConfig {
        value: Format::Avro,
        ..Default::default()
    });
    (dir, start(config))
}

fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn avro_records_are_edited_as_json_and_bad_ones_dead_lettered_as_format() {
    let (input, output, dlq) = (topic("avro-in"), topic("avro-out"), topic("avro-dlq"));
    create_topics(&[(&input, 3), (&output, 3), (&dlq, 1)]);
    let in_id = register(&format!("{input}-value"), "AVRO", USER);
    let out_id = register(&format!("{output}-value"), "AVRO", USER);
    let schema = Schema::parse_str(USER).unwrap();
    let n = 300i64;
    let mut records = Vec::new();
    let mut bad: Vec<(Vec<u8>, &str)> = Vec::new();
    for i in 0..n {
        let body = apache_avro::to_avro_datum(&schema, user(i)).unwrap();
        let value = match i % 50 {
            // No magic byte: written by something else.
            7 => br#"{"id":7}"#.to_vec(),
            // A schema id the registry does not have.
            8 => framed(999_999, &body),
            // Bytes that are not this schema's record.
            9 => framed(in_id, &body[..3]),
            _ => framed(in_id, &body),
        };
        if i % 50 >= 7 && i % 50 <= 9 {
            bad.push((
                value.clone(),
                ["malformed", "unknown_schema", "malformed"][(i % 50 - 7) as usize],
            ));
        }
        let key = (i % 10 != 0).then(|| format!("k{i}").into_bytes());
        records.push((
            (i % 3) as i32,
            Rec {
                key,
                value: Some(value),
                headers: vec![("trace".into(), Some(b"t".to_vec()))],
            },
        ));
    }
    produce(&input, &records);
    let (_dir, running) = redact_avro(&input, &output, &dlq, Delivery::ExactlyOnce);
    let good = n as usize - bad.len();
    let out = consume(&output, good, true, Duration::from_secs(90));
    let dead = consume(&dlq, bad.len(), true, Duration::from_secs(30));
    let telemetry = running.stop();

    assert_eq!(bad.len(), 18);
    assert_eq!(out.len(), good, "every good record once");
    let mut seen = BTreeSet::new();
    for m in &out {
        let value = m.payload().unwrap();
        assert_eq!(
            &value[..5],
            &framed(out_id, &[])[..],
            "framed with the output subject's id"
        );
        let got = apache_avro::from_avro_datum(&schema, &mut &value[5..], None).unwrap();
        let Value::Record(fields) = &got else {
            panic!("{got:?}")
        };
        let Value::Long(i) = fields[0].1 else {
            panic!("{got:?}")
        };
        assert!(seen.insert(i), "record {i} twice");
        let Value::Record(mut expected) = user(i) else {
            unreachable!()
        };
        expected[1].1 = Value::Union(1, Box::new(Value::String("***".into())));
        assert_eq!(got, Value::Record(expected), "record {i}");
        assert_eq!(
            m.key().map(<[u8]>::to_vec),
            (i % 10 != 0).then(|| format!("k{i}").into_bytes())
        );
        assert_eq!(
            header(m, "trace").as_deref(),
            Some("t"),
            "the record's own headers stay"
        );
        assert_eq!(
            header(m, "wasmpipe.schema.id"),
            None,
            "the host's schema headers go"
        );
    }
    // Each bad record once, as it was read, with its reason.
    let mut got: Vec<(Vec<u8>, String)> = dead
        .iter()
        .map(|m| {
            assert_eq!(header(m, "wasmpipe.error.kind").as_deref(), Some("format"));
            assert_eq!(header(m, "trace").as_deref(), Some("t"));
            (
                m.payload().unwrap().to_vec(),
                header(m, "wasmpipe.error.reason").unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(Vec<u8>, String)> = bad
        .iter()
        .map(|(v, r)| (v.clone(), r.to_string()))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    let metrics = telemetry.metrics.encode();
    for line in [
        r#"wasmpipe_records_dead_lettered_total{plugin="",kind="format",reason="malformed"} 12"#,
        r#"wasmpipe_records_dead_lettered_total{plugin="",kind="format",reason="unknown_schema"} 6"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
}

#[test]
fn an_output_that_does_not_fit_the_output_schema_is_dead_lettered_as_read() {
    // The input schema has `email`; the output subject requires `phone`,
    // which the plugin does not write.
    let (input, output, dlq) = (topic("misfit-in"), topic("misfit-out"), topic("misfit-dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    let in_id = register(&format!("{input}-value"), "AVRO", USER);
    register(
        &format!("{output}-value"),
        "AVRO",
        r#"{"type":"record","name":"Contact","fields":[{"name":"phone","type":"string"}]}"#,
    );
    let schema = Schema::parse_str(USER).unwrap();
    let value = framed(
        in_id,
        &apache_avro::to_avro_datum(&schema, user(1)).unwrap(),
    );
    produce(
        &input,
        &[(
            0,
            Rec {
                key: None,
                value: Some(value.clone()),
                headers: vec![],
            },
        )],
    );
    let (_dir, running) = redact_avro(&input, &output, &dlq, Delivery::AtLeastOnce);
    let dead = consume(&dlq, 1, false, Duration::from_secs(60));
    let out = consume(&output, 0, false, Duration::from_secs(1));
    running.stop();
    assert_eq!(out.len(), 0);
    assert_eq!(dead.len(), 1);
    let m = &dead[0];
    assert_eq!(
        m.payload(),
        Some(&value[..]),
        "the record as it was read, not the plugin's JSON"
    );
    assert_eq!(header(m, "wasmpipe.error.kind").as_deref(), Some("format"));
    assert_eq!(
        header(m, "wasmpipe.error.reason").as_deref(),
        Some("incompatible_output")
    );
    let message = header(m, "wasmpipe.error.message").unwrap();
    assert!(message.contains("field 'phone' is missing"), "{message}");
    assert_eq!(header(m, "wasmpipe.plugin").as_deref(), Some("redact"));
    assert_eq!(header(m, "wasmpipe.schema.id"), None);
}

/// A linked list: a record apache-avro reads by recursing once per link.
const NODE: &str = r#"{"type":"record","name":"Node","namespace":"wasmpipe.test","fields":[
  {"name":"id","type":"long"},
  {"name":"email","type":["null","string"]},
  {"name":"tags","type":{"type":"map","values":"string"}},
  {"name":"next","type":["null","Node"]}]}"#;

#[test]
fn hostile_avro_records_are_dead_lettered_and_the_stream_goes_on() {
    let (input, output, dlq) = (
        topic("hostile-in"),
        topic("hostile-out"),
        topic("hostile-dlq"),
    );
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    let id = register(&format!("{input}-value"), "AVRO", NODE);
    register(&format!("{output}-value"), "AVRO", NODE);
    let schema = Schema::parse_str(NODE).unwrap();
    let node = |i: i64, next: Value| {
        Value::Record(vec![
            ("id".into(), Value::Long(i)),
            (
                "email".into(),
                Value::Union(1, Box::new(Value::String(format!("u{i}@x")))),
            ),
            ("tags".into(), Value::Map(Default::default())),
            ("next".into(), next),
        ])
    };
    let good = |i: i64| {
        let tail = node(-i, Value::Union(0, Box::new(Value::Null)));
        let body = apache_avro::to_avro_datum(&schema, node(i, Value::Union(1, Box::new(tail))));
        framed(id, &body.unwrap())
    };
    // id 1, no email, no tags, and `next` set, 100,000 deep: apache-avro
    // alone overflows the stack and aborts the process.
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        deep.extend_from_slice(&[2, 0, 0, 2]);
    }
    deep.extend_from_slice(&[2, 0, 0, 0]);
    // A map claiming 2^25 entries in 8 bytes (apache-avro sets 2.5 GB
    // aside for them), and a string claiming 400 MB.
    let many = [2, 0, 0x80, 0x80, 0x80, 0x20, 0, 0];
    let long = [2, 2, 0x80, 0x90, 0xbc, 0xfd, 0x02, b'a'];
    let hostile: Vec<Vec<u8>> = vec![framed(id, &deep), framed(id, &many), framed(id, &long)];
    let records: Vec<(i32, Rec)> = (0..40)
        .map(|i| match i {
            10 | 20 | 30 => hostile[i as usize / 10 - 1].clone(),
            i => good(i),
        })
        .map(|value| {
            (
                0,
                Rec {
                    key: None,
                    value: Some(value),
                    headers: vec![],
                },
            )
        })
        .collect();
    produce(&input, &records);
    let (_dir, running) = redact_avro(&input, &output, &dlq, Delivery::ExactlyOnce);
    let out = consume(&output, 37, true, Duration::from_secs(90));
    let dead = consume(&dlq, 3, true, Duration::from_secs(30));
    running.stop();

    let ids: Vec<i64> = out
        .iter()
        .map(|m| {
            let got = apache_avro::from_avro_datum(&schema, &mut &m.payload().unwrap()[5..], None);
            let Value::Record(fields) = got.unwrap() else {
                panic!()
            };
            assert_eq!(
                fields[1].1,
                Value::Union(1, Box::new(Value::String("***".into())))
            );
            let Value::Long(i) = fields[0].1 else {
                panic!()
            };
            i
        })
        .collect();
    let expected: Vec<i64> = (0..40).filter(|i| i % 10 != 0 || *i == 0).collect();
    assert_eq!(ids, expected, "the good records, each once, in order");
    let reasons: Vec<(Vec<u8>, String, String)> = dead
        .iter()
        .map(|m| {
            (
                m.payload().unwrap().to_vec(),
                header(m, "wasmpipe.error.reason").unwrap(),
                header(m, "wasmpipe.error.message").unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3);
    for ((payload, reason, message), (sent, cause)) in reasons.iter().zip(hostile.iter().zip([
        "nested deeper than 64 records, arrays, maps and unions",
        "a block claims 33554432 items, more than the record's 2 bytes could hold",
        "bytes or a string of 400000000 bytes is cut short (1 left)",
    ])) {
        assert_eq!(payload, sent, "dead-lettered as it was read");
        assert_eq!(reason, "malformed");
        assert!(message.ends_with(cause), "{message}");
    }
}

/// The interpreter with confluent-kafka (tests/registry/registry python).
fn interop_python() -> PathBuf {
    let out = std::process::Command::new(root().join("tests/registry/registry"))
        .arg("python")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tests/registry/registry python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim(),
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs tests/registry/interop.py `args`; its JSON line, asserted `ok`
/// when it has that field.
fn interop(python: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python)
        .arg(root().join("tests/registry/interop.py"))
        .args(args)
        .args(["--registry", &registry_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "interop.py {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && report.get("ok").is_none_or(|ok| ok == true),
        "interop.py {args:?}: {report}"
    );
    report
}

/// Records confluent-kafka's serializers wrote (v1, then v2 adding a field
/// with a default) go through a running pipeline whose plugin masks one
/// field, and confluent-kafka's deserializers read back every one, once,
/// equal to what was produced but for that field.
fn interop_round_trip(format: &str, plugin: &str, pipeline: &str) {
    let python = interop_python();
    let bootstrap = crate::kafka::bootstrap();
    let tag = format.replace('-', "");
    let (input, output, dlq) = (
        topic(&format!("ic-{tag}-in")),
        topic(&format!("ic-{tag}-out")),
        topic(&format!("ic-{tag}-dlq")),
    );
    create_topics(&[(&input, 3), (&output, 3), (&dlq, 1)]);
    // A subcommand on a topic, in the script's argument order.
    let on = |sub: &str, topic: &str, more: &[&str]| -> Vec<String> {
        [
            sub,
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--format",
            format,
        ]
        .iter()
        .chain(more)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| interop(&python, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let out_subject = format!("{output}-value");
    run(vec![
        "register".into(),
        "--subject".into(),
        out_subject.clone(),
        "--format".into(),
        format.into(),
        "--version".into(),
        "1".into(),
    ]);
    run(on(
        "produce",
        &input,
        &["--first", "1", "--count", "60", "--version", "1"],
    ));
    let (_dir, plugins) = crate::kafka::plugin_dir(plugin, Some(pipeline));
    let mut config = run_config(&input, &output, Some(&dlq), &plugins, Delivery::ExactlyOnce);
    let value = match format {
        "avro" => Format::Avro,
        "protobuf" => Format::Protobuf,
        _ => Format::JsonSchema,
    };
    let mut f = formats(FormatConfig {
        value,
        ..Default::default()
    });
    f.cache.latest_ttl = Duration::from_secs(1);
    config.formats = f;
    let running = start(config);
    run(on(
        "check",
        &output,
        &[
            "--first",
            "1",
            "--count",
            "60",
            "--mask",
            "email",
            "--timeout-s",
            "90",
        ],
    ));
    // Version 2 of the input's and the output's schema, while it runs.
    run(vec![
        "register".into(),
        "--subject".into(),
        out_subject,
        "--format".into(),
        format.into(),
        "--version".into(),
        "2".into(),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    run(on(
        "produce",
        &input,
        &["--first", "61", "--count", "60", "--version", "2"],
    ));
    run(on(
        "check",
        &output,
        &[
            "--first",
            "1",
            "--count",
            "120",
            "--v2-from",
            "61",
            "--mask",
            "email",
            "--timeout-s",
            "90",
        ],
    ));
    let dead = consume(&dlq, 0, true, Duration::from_secs(1));
    let telemetry = running.stop();
    assert_eq!(dead.len(), 0, "nothing dead-lettered");
    assert_eq!(telemetry.metrics.total("records_dead_lettered"), 0);
}

const REDACT: &str = "plugins:\n  - file: redact.wasm\n    config: { mask: email }\n";

#[test]
fn confluent_avro_records_are_redacted_and_read_back_by_confluents_deserializer() {
    interop_round_trip("avro", wasmpipe_test_guests::FLAT_REDACT, REDACT);
}

#[test]
fn confluent_protobuf_records_are_redacted_and_read_back_by_confluents_deserializer() {
    interop_round_trip("protobuf", wasmpipe_test_guests::FLAT_REDACT, REDACT);
}

#[test]
fn confluent_json_schema_records_are_redacted_and_read_back_by_confluents_deserializer() {
    interop_round_trip("json-schema", wasmpipe_test_guests::FLAT_REDACT, REDACT);
}

#[test]
#[ignore = "needs the Python script runtime: tests/polyglot/run"]
fn confluent_avro_records_are_redacted_by_a_python_script_plugin() {
    let script = root().join("plugins/python/redact/redact.py");
    interop_round_trip(
        "avro",
        script.to_str().unwrap(),
        "plugins:\n  - file: redact.py\n    config: { mask: email }\n",
    );
}

#[test]
fn a_field_added_and_a_field_removed_in_the_output_schema_apply_while_running() {
    let (input, output) = (topic("evolve-in"), topic("evolve-out"));
    create_topics(&[(&input, 1), (&output, 1)]);
    let in_id = register(&format!("{input}-value"), "AVRO", USER);
    let v1 = register(&format!("{output}-value"), "AVRO", USER);
    // v2: `blob` removed, `tier` added with a default.
    let evolved = USER.replace(
        r#"{"name":"blob","type":"bytes"}"#,
        r#"{"name":"tier","type":"string","default":"free"}"#,
    );
    let schema = Schema::parse_str(USER).unwrap();
    let records = |from: i64| -> Vec<(i32, Rec)> {
        (from..from + 20)
            .map(|i| {
                let body = apache_avro::to_avro_datum(&schema, user(i)).unwrap();
                (
                    0,
                    Rec {
                        key: None,
                        value: Some(framed(in_id, &body)),
                        headers: vec![],
                    },
                )
            })
            .collect()
    };
    produce(&input, &records(0));
    let (_dir, plugins) = crate::kafka::plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let mut config = run_config(&input, &output, None, &plugins, Delivery::AtLeastOnce);
    let mut f = formats(FormatConfig {
        value: Format::Avro,
        ..Default::default()
    });
    f.cache.latest_ttl = Duration::from_secs(1);
    config.formats = f;
    let running = start(config);
    assert_eq!(
        consume(&output, 20, false, Duration::from_secs(60)).len(),
        20
    );
    let v2 = register(&format!("{output}-value"), "AVRO", &evolved);
    assert_ne!(v1, v2);
    std::thread::sleep(Duration::from_millis(1500));
    produce(&input, &records(20));
    let out = consume(&output, 40, false, Duration::from_secs(60));
    running.stop();
    assert_eq!(out.len(), 40);
    let evolved = Schema::parse_str(&evolved).unwrap();
    for (n, m) in out.iter().enumerate() {
        let value = m.payload().unwrap();
        let id = u32::from_be_bytes(value[1..5].try_into().unwrap());
        let (want, reader) = if n < 20 {
            (v1, &schema)
        } else {
            (v2, &evolved)
        };
        assert_eq!(
            id, want,
            "record {n} written with the subject's latest then"
        );
        let got = apache_avro::from_avro_datum(reader, &mut &value[5..], None).unwrap();
        let Value::Record(fields) = got else { panic!() };
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        if n >= 20 {
            assert!(
                !names.contains(&"blob") && names.contains(&"tier"),
                "{names:?}"
            );
            assert_eq!(fields.last().unwrap().1, Value::String("free".into()));
        }
    }
}

#[test]
fn plugin_test_runs_avro_records_with_a_local_schema_as_a_pipeline_would() {
    let dir = root().join("plugins/redact");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "plugin",
            "test",
            wasmpipe_test_guests::FLAT_REDACT,
            "--config",
            "mask=email",
        ])
        .args(["--value-format", "avro", "--schema"])
        .arg(format!("1={}", dir.join("user.avsc").display()))
        .arg("--input")
        .arg(dir.join("sample.avro.jsonl"))
        .arg("--expect")
        .arg(dir.join("sample.avro.expected.jsonl"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // JSON and wire-format inputs decoded, the tier default filled in by
    // the output schema, the record that does not fit named with its line.
    assert!(stderr.contains("line 4: format (malformed): the value does not fit schema 1: field 'id' is \"four\", which is not a long (64 bits)"), "{stderr}");
    assert!(
        stderr.contains("4 records in, 3 out, 1 failed (malformed 1), 0 bad lines"),
        "{stderr}"
    );
    assert!(stderr.contains("output matches the expected"), "{stderr}");

    // Without the schema, the fix is named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "plugin",
            "test",
            wasmpipe_test_guests::FLAT_REDACT,
            "--config",
            "mask=email",
        ])
        .args(["--value-format", "protobuf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give --schema ID=FILE"), "{stderr}");
}

#[test]
fn a_registry_that_does_not_answer_is_named_at_start() {
    let probe = |url: &str| {
        let mut f = formats(FormatConfig {
            value: Format::Avro,
            ..Default::default()
        });
        f.registry.as_mut().unwrap().url = url.into();
        f.codec(None).unwrap().probe().unwrap()
    };
    let (_, answer) = probe(&registry_url());
    assert_eq!(answer, Ok(()));
    let (registry, answer) = probe("http://127.0.0.1:1/apis/ccompat/v7");
    assert_eq!(
        registry,
        "the schema registry at http://127.0.0.1:1/apis/ccompat/v7"
    );
    let e = answer.unwrap_err();
    assert!(
        e.starts_with("schema registry at http://127.0.0.1:1/apis/ccompat/v7 unreachable"),
        "{e}"
    );
    // The server, but not its registry API (the path left out).
    let base = registry_url().replace("/apis/ccompat/v7", "");
    let e = probe(&base).1.unwrap_err();
    assert!(
        e.starts_with("the schema registry has no /schemas/types"),
        "{e}"
    );

    // A pipeline counts it at start, with no record to read.
    let (input, output, dlq) = (topic("probe-in"), topic("probe-out"), topic("probe-dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    let (_dir, plugins) = crate::kafka::plugin_dir(wasmpipe_test_guests::FLAT_REDACT, Some(REDACT));
    let mut config = run_config(&input, &output, Some(&dlq), &plugins, Delivery::AtLeastOnce);
    config.formats = formats(FormatConfig {
        value: Format::Avro,
        ..Default::default()
    });
    config.formats.registry.as_mut().unwrap().url = "http://127.0.0.1:1".into();
    let running = start(config);
    let line = "wasmpipe_schema_registry_unreachable_total 1";
    let mut seen = false;
    for _ in 0..100 {
        if running
            .telemetry
            .metrics
            .encode()
            .lines()
            .any(|l| l == line)
        {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.stop();
    assert!(seen, "{line} never appeared");
}
