use super::registry::RawSchema;
use super::*;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Subjects' versions and schemas by id, in memory, counting lookups.
#[derive(Default)]
pub(crate) struct Memory {
    pub subjects: Mutex<Vec<(String, RawSchema)>>,
    pub lookups: AtomicUsize,
    pub down: std::sync::atomic::AtomicBool,
}

impl Memory {
    pub fn add(&self, subject: &str, id: u32, kind: SchemaKind, text: &str) {
        self.subjects.lock().unwrap().push((
            subject.into(),
            RawSchema {
                id,
                kind,
                text: text.into(),
                references: Vec::new(),
            },
        ));
    }
}

impl SchemaSource for Arc<Memory> {
    fn by_id(&self, id: u32) -> Result<RawSchema, SourceError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(SourceError::Unavailable("registry down".into()));
        }
        let s = self.subjects.lock().unwrap();
        s.iter()
            .find(|(_, r)| r.id == id)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| SourceError::NotFound(format!("schema {id} not found")))
    }

    fn version(&self, subject: &str, version: Version) -> Result<RawSchema, SourceError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let s = self.subjects.lock().unwrap();
        let versions: Vec<&RawSchema> = s
            .iter()
            .filter(|(n, _)| n == subject)
            .map(|(_, r)| r)
            .collect();
        match version {
            Version::Latest => versions.last().copied(),
            Version::Number(n) => versions.get(n as usize - 1).copied(),
        }
        .cloned()
        .ok_or_else(|| SourceError::NotFound(format!("subject {subject} not found")))
    }

    fn subject_of(&self, id: u32) -> Option<(String, u32)> {
        let s = self.subjects.lock().unwrap();
        let (subject, _) = s.iter().find(|(_, r)| r.id == id)?;
        let version = s
            .iter()
            .filter(|(n, _)| n == subject)
            .position(|(_, r)| r.id == id)?;
        Some((subject.clone(), version as u32 + 1))
    }

    fn describe(&self) -> String {
        "the test registry".into()
    }
}

const V1: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"name","type":"string"},{"name":"email","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"name","type":"string"},{"name":"email","type":"string"},{"name":"tier","type":"string","default":"free"}]}"#;

fn codec(config: FormatConfig, memory: &Arc<Memory>) -> Codec {
    Codec::new(
        config,
        Some(Box::new(memory.clone())),
        CacheLimits::default(),
    )
    .unwrap()
}

fn avro() -> FormatConfig {
    FormatConfig {
        value: Format::Avro,
        ..Default::default()
    }
}

fn framed(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::frame(id, None, &mut out);
    out.extend_from_slice(payload);
    out
}

#[test]
fn an_avro_value_goes_to_json_and_back_with_the_topics_latest_schema() {
    let memory = Arc::new(Memory::default());
    memory.add("in-value", 1, SchemaKind::Avro, V1);
    memory.add("out-value", 2, SchemaKind::Avro, V2);
    let codec = codec(avro(), &memory);
    // "ann", "a@x" as Avro strings.
    let input = framed(1, b"\x06ann\x06a@x");
    let mut json = Vec::new();
    let schema = codec
        .decode(Part::Value, &input, &mut json)
        .unwrap()
        .unwrap();
    assert_eq!((schema.id, schema.name.as_deref()), (1, Some("t.User")));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
        json!({"name": "ann", "email": "a@x"})
    );
    let mut out = Vec::new();
    codec
        .encode(
            Part::Value,
            "out",
            br#"{"name":"ann","email":"***"}"#,
            Hint::default(),
            &mut out,
        )
        .unwrap();
    assert_eq!(out, framed(2, b"\x06ann\x06***\x08free"));
    // Cached: the second record asks the registry nothing.
    let before = memory.lookups.load(Ordering::Relaxed);
    codec.decode(Part::Value, &input, &mut json).unwrap();
    codec
        .encode(Part::Value, "out", &json, Hint::default(), &mut out)
        .unwrap();
    assert_eq!(memory.lookups.load(Ordering::Relaxed), before);
}

#[test]
fn the_input_schema_is_kept_while_the_output_fits_it() {
    let memory = Arc::new(Memory::default());
    memory.add("in-value", 1, SchemaKind::Avro, V1);
    memory.add("out-value", 2, SchemaKind::Avro, V2);
    let codec = codec(
        FormatConfig {
            schema: OutputSchema::Input,
            ..avro()
        },
        &memory,
    );
    let hint = Hint {
        id: Some(1),
        name: Some("t.User"),
    };
    let mut out = Vec::new();
    codec
        .encode(
            Part::Value,
            "out",
            br#"{"name":"a","email":"b"}"#,
            hint,
            &mut out,
        )
        .unwrap();
    assert_eq!(out, framed(1, b"\x02a\x02b"));
    // A field V1 lacks: encoded with the subject's latest, which has it.
    codec
        .encode(
            Part::Value,
            "out",
            br#"{"name":"a","email":"b","tier":"gold"}"#,
            hint,
            &mut out,
        )
        .unwrap();
    assert_eq!(out, framed(2, b"\x02a\x02b\x08gold"));
}

#[test]
fn each_failure_has_its_reason() {
    let memory = Arc::new(Memory::default());
    memory.add("out-value", 1, SchemaKind::Avro, V1);
    memory.add("other", 3, SchemaKind::Json, r#"{"type":"object"}"#);
    let codec = codec(avro(), &memory);
    let mut out = Vec::new();
    let e = codec
        .decode(Part::Value, b"{\"a\":1}", &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
    let e = codec
        .decode(Part::Value, &framed(9, b""), &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "unknown_schema");
    assert!(
        e.to_string()
            .contains("schema id 9 is not in the test registry"),
        "{e}"
    );
    let e = codec
        .decode(Part::Value, &framed(1, b"\x06an"), &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
    assert!(
        e.to_string()
            .contains("the record's value (schema 1) is not Avro"),
        "{e}"
    );
    let e = codec
        .decode(Part::Value, &framed(3, b"{}"), &mut out)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("of type json-schema, but the pipeline reads value as avro"),
        "{e}"
    );
    let e = codec
        .encode(
            Part::Value,
            "out",
            br#"{"name":"a"}"#,
            Hint::default(),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.reason(), "incompatible_output");
    assert!(e.to_string().contains("field 'email' is missing"), "{e}");
    let e = codec
        .encode(Part::Value, "nowhere", br#"{}"#, Hint::default(), &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "incompatible_output");
    assert!(
        e.to_string()
            .contains("subject nowhere-value version latest is not in the test registry"),
        "{e}"
    );
    let e = codec
        .encode(Part::Value, "out", b"not json", Hint::default(), &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("is not JSON"), "{e}");
    memory.down.store(true, Ordering::Relaxed);
    let e = codec
        .decode(Part::Value, &framed(7, b""), &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "registry_unavailable");
}

#[test]
fn record_name_strategies_name_the_subject_after_the_record() {
    let memory = Arc::new(Memory::default());
    memory.add("t.User", 1, SchemaKind::Avro, V1);
    memory.add("out-t.User", 2, SchemaKind::Avro, V2);
    let body = br#"{"name":"a","email":"b"}"#;
    let hint = Hint {
        id: None,
        name: Some("t.User"),
    };
    let mut out = Vec::new();
    for (subject, id) in [
        (SubjectStrategy::Record, 1),
        (SubjectStrategy::TopicRecord, 2),
    ] {
        let codec = codec(FormatConfig { subject, ..avro() }, &memory);
        codec
            .encode(Part::Value, "out", body, hint, &mut out)
            .unwrap();
        assert_eq!(wire::unframe(&out, false).unwrap().id, id);
        let e = codec
            .encode(Part::Value, "out", body, Hint::default(), &mut out)
            .unwrap_err();
        assert!(
            e.to_string().contains("'wasmpipe.schema.name' header"),
            "{e}"
        );
    }
}

#[test]
fn json_schema_records_are_validated_both_ways() {
    let memory = Arc::new(Memory::default());
    let schema = r#"{"title":"t.Event","type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}"#;
    memory.add("out-value", 4, SchemaKind::Json, schema);
    let codec = codec(
        FormatConfig {
            value: Format::JsonSchema,
            ..Default::default()
        },
        &memory,
    );
    let mut json = Vec::new();
    let of = codec
        .decode(Part::Value, &framed(4, br#"{"n":1}"#), &mut json)
        .unwrap()
        .unwrap();
    assert_eq!(
        (of.id, of.name.as_deref(), &json[..]),
        (4, Some("t.Event"), &br#"{"n":1}"#[..])
    );
    let e = codec
        .decode(Part::Value, &framed(4, br#"{"n":"x"}"#), &mut json)
        .unwrap_err();
    assert!(
        e.to_string().contains("not valid by its JSON Schema") && e.to_string().contains("/n"),
        "{e}"
    );
    let mut out = Vec::new();
    codec
        .encode(Part::Value, "out", br#"{"n":2}"#, Hint::default(), &mut out)
        .unwrap();
    assert_eq!(out, framed(4, br#"{"n":2}"#));
    let e = codec
        .encode(
            Part::Value,
            "out",
            br#"{"n":2,"x":1}"#,
            Hint::default(),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.reason(), "incompatible_output");
}

#[test]
fn protobuf_records_keep_their_message_across_the_chain() {
    let memory = Arc::new(Memory::default());
    let proto = "syntax = \"proto3\"; package p; message A { int32 x = 1; } message B { message C { string s = 1; } C c = 1; }";
    memory.add("out-value", 5, SchemaKind::Protobuf, proto);
    let codec = codec(
        FormatConfig {
            value: Format::Protobuf,
            ..Default::default()
        },
        &memory,
    );
    // A p.B.C (indexes [1, 0]) with s = "hi".
    let mut input = Vec::new();
    wire::frame(5, Some(&[1, 0]), &mut input);
    input.extend_from_slice(b"\x0a\x02hi");
    let mut json = Vec::new();
    let of = codec
        .decode(Part::Value, &input, &mut json)
        .unwrap()
        .unwrap();
    assert_eq!(of.name.as_deref(), Some("p.B.C"));
    assert_eq!(&json[..], br#"{"s":"hi"}"#);
    let mut out = Vec::new();
    codec
        .encode(
            Part::Value,
            "out",
            br#"{"s":"ho"}"#,
            Hint {
                id: Some(5),
                name: Some("p.B.C"),
            },
            &mut out,
        )
        .unwrap();
    let mut expected = Vec::new();
    wire::frame(5, Some(&[1, 0]), &mut expected);
    expected.extend_from_slice(b"\x0a\x02ho");
    assert_eq!(out, expected);
}

#[test]
fn the_cache_keeps_a_bounded_number_of_schemas() {
    let memory = Arc::new(Memory::default());
    for id in 1..=10 {
        memory.add(&format!("s{id}"), id, SchemaKind::Avro, V1);
    }
    let schemas = cache::Schemas::new(
        Box::new(memory.clone()),
        CacheLimits {
            schemas: 3,
            latest_ttl: Duration::from_secs(30),
        },
    );
    for id in 1..=10 {
        schemas.by_id(id).unwrap();
        schemas.by_id(1).unwrap();
    }
    assert_eq!(schemas.len(), 3);
    // 1 was used last of all: still there, no lookup.
    let before = memory.lookups.load(Ordering::Relaxed);
    schemas.by_id(1).unwrap();
    assert_eq!(memory.lookups.load(Ordering::Relaxed), before);
}

#[test]
fn an_unknown_id_is_asked_for_once_a_while_not_once_a_record() {
    let memory = Arc::new(Memory::default());
    memory.add("s", 1, SchemaKind::Avro, "not a schema");
    let schemas = cache::Schemas::new(
        Box::new(memory.clone()),
        CacheLimits {
            schemas: 10,
            latest_ttl: Duration::from_millis(300),
        },
    );
    // Unknown (404) and unreadable (it does not parse): each asked once.
    for _ in 0..100 {
        let e = schemas.by_id(999).err().unwrap();
        assert_eq!(e.reason(), "unknown_schema");
        assert!(e.to_string().contains("schema id 999 is not in"), "{e}");
        let e = schemas.by_id(1).err().unwrap();
        assert!(e.to_string().contains("schema id 1 from"), "{e}");
    }
    assert_eq!(memory.lookups.load(Ordering::Relaxed), 2);
    // After the TTL, asked again (it may have been registered since).
    std::thread::sleep(Duration::from_millis(350));
    memory.add("t", 999, SchemaKind::Avro, V1);
    schemas.by_id(999).unwrap();
    assert_eq!(memory.lookups.load(Ordering::Relaxed), 3);
    // A registry that is down is not remembered: the next record retries.
    memory.down.store(true, Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(
            schemas.by_id(5).err().unwrap().reason(),
            "registry_unavailable"
        );
    }
    assert_eq!(memory.lookups.load(Ordering::Relaxed), 6);
}

#[test]
fn a_format_with_schemas_needs_a_registry_and_raw_needs_nothing() {
    let e = Codec::new(avro(), None, CacheLimits::default())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("format avro needs a schema registry: give --registry-url"),
        "{e}"
    );
    assert!(
        Codec::new(FormatConfig::default(), None, CacheLimits::default())
            .unwrap()
            .is_raw()
    );
}

#[test]
fn a_decoded_record_names_its_schema_to_the_plugin_in_headers() {
    let memory = Arc::new(Memory::default());
    memory.add("in-value", 1, SchemaKind::Avro, V1);
    let codec = codec(avro(), &memory);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let d = codec
        .decode_record(
            Some(b"k"),
            Some(&framed(1, b"\x02a\x02b")),
            &mut key,
            &mut value,
        )
        .unwrap();
    assert!(d.key_raw && !d.value_raw);
    assert_eq!(
        d.headers,
        [
            ("wasmpipe.schema.id", "1".to_owned()),
            ("wasmpipe.schema.name", "t.User".to_owned()),
            ("wasmpipe.schema.subject", "in-value".to_owned()),
            ("wasmpipe.schema.version", "1".to_owned()),
        ]
    );
    assert!(
        d.headers
            .iter()
            .all(|(n, _)| is_reserved_header(n.as_bytes()))
    );
    assert!(!is_reserved_header(b"wasmpipe.error.kind"));
}
