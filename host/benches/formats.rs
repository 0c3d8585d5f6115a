//! What decoding a record for the plugins and encoding the plugin's output
//! costs in the host, per record, without Kafka: the Avro record of the
//! pipeline bench's format pair (9 fields, about 110 B), its schema given
//! locally. Prints µs per record for decode, encode and both.
//!
//! `cargo bench -p wasmpipe --bench formats`

use std::time::Instant;
use wasmpipe::format::registry::{LocalSchemas, RawSchema};
use wasmpipe::format::{Codec, Format, FormatConfig, Hint, Part, SchemaKind};

#[path = "support/avro.rs"]
mod avro;

fn main() {
    let local = LocalSchemas {
        schemas: vec![RawSchema {
            id: 1,
            kind: SchemaKind::Avro,
            text: avro::USER.into(),
            references: Vec::new(),
        }],
    };
    let config = FormatConfig {
        value: Format::Avro,
        ..Default::default()
    };
    let codec = Codec::new(config, Some(Box::new(local)), Default::default()).unwrap();
    let json = br#"{"id":7,"name":"user-7","email":"u7@example.com","country":"DE","amount":1.75,"active":false,"tier":"PRO","tags":{"src":"web"},"at":1764842400007}"#;
    let record = codec.frame(Part::Value, json, 1, None).unwrap();
    let n = 200_000;
    let (mut decoded, mut encoded) = (Vec::new(), Vec::new());
    let time = |what: &str, f: &mut dyn FnMut()| {
        for _ in 0..n / 10 {
            f();
        }
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        println!(
            "{what}: {:.2} µs per record",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    };
    time("decode (Avro to JSON text)", &mut || {
        codec.decode(Part::Value, &record, &mut decoded).unwrap();
    });
    let text = decoded.clone();
    time("encode (JSON text to Avro)", &mut || {
        codec
            .encode(Part::Value, "out", &text, Hint::default(), &mut encoded)
            .unwrap();
    });
    time("both", &mut || {
        codec.decode(Part::Value, &record, &mut decoded).unwrap();
        codec
            .encode(Part::Value, "out", &decoded, Hint::default(), &mut encoded)
            .unwrap();
    });
    assert_eq!(encoded, record, "read and written back byte for byte");
}
