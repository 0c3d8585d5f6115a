use super::value::parse_decimal;
use super::*;
use apache_avro::Decimal;
use apache_avro::types::Value;
use serde_json::{Value as Json, json};

/// Why `json` (text) is refused as a value of `schema`.
fn refused(schema: &AvroSchema, json: &str) -> String {
    match schema.encode(json.as_bytes(), &mut Vec::new(), false) {
        Err(Misfit::Schema(e)) => e,
        other => panic!("{other:?}"),
    }
}

/// The module's text API, with JSON values.
impl AvroSchema {
    fn decode_json(&self, bytes: &[u8]) -> Result<Json, String> {
        let mut out = Vec::new();
        self.decode(bytes, &mut out)?;
        Ok(serde_json::from_slice(&out).expect("the decoded text is JSON"))
    }

    fn encode_json(&self, json: &Json, out: &mut Vec<u8>, strict: bool) -> Result<(), String> {
        let text = serde_json::to_vec(json).unwrap();
        self.encode(&text, out, strict).map_err(|e| match e {
            Misfit::Schema(e) => e,
            Misfit::NotJson(e) => e.to_string(),
        })
    }
}

const ORDER: &str = r#"{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "email", "type": ["null", "string"], "default": null},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "fee", "type": {"type": "fixed", "name": "Fee", "size": 4, "logicalType": "decimal", "precision": 6, "scale": 3}},
    {"name": "blob", "type": "bytes"},
    {"name": "tags", "type": {"type": "map", "values": "long"}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
        {"name": "name", "type": "string"},
        {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}]}]}]}},
    {"name": "previous", "type": ["null", "Address"], "default": null},
    {"name": "lines", "type": {"type": "array", "items": ["int", "string"]}},
    {"name": "ratio", "type": "double"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "note", "type": "string", "default": "none"}
  ]}"#;

fn order_json() -> Json {
    json!({
        "id": "o-1",
        "email": "a@example.com",
        "amount": "-12.30",
        "fee": "0.125",
        "blob": "\u{0}\u{1}\u{ff}",
        "tags": {"a": 1, "b": 9007199254740993i64},
        "status": "PAID",
        "customer": {"name": "Zoë", "address": {"city": "Köln"}},
        "previous": null,
        "lines": [1, "two", 3],
        "ratio": 0.5,
        "at": 1764842400000i64,
        "ref": "6f1d7a1c-3a2b-4b4c-9d7e-1f2a3b4c5d6e",
        "note": "n"
    })
}

#[test]
fn unions_decimals_bytes_maps_enums_and_nested_records_go_to_json_and_back() {
    let schema = AvroSchema::parse(ORDER, &[]).unwrap();
    assert_eq!(schema.name().as_deref(), Some("shop.Order"));
    let mut bytes = Vec::new();
    schema
        .encode_json(&order_json(), &mut bytes, false)
        .unwrap();
    let back = schema.decode_json(&bytes).unwrap();
    assert_eq!(back, order_json());
    // Written again (a map's entries may come in another order).
    let mut again = Vec::new();
    schema.encode_json(&back, &mut again, false).unwrap();
    assert_eq!(again.len(), bytes.len());
    assert_eq!(schema.decode_json(&again).unwrap(), order_json());
}

#[test]
fn records_apache_avro_wrote_read_as_json() {
    // Written by apache-avro from its own values: the reading is checked
    // against an encoder this module did not drive.
    let text = r#"{"type":"record","name":"R","fields":[
            {"name":"u","type":["null","long","string"]},
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":3}},
            {"name":"m","type":{"type":"map","values":"boolean"}},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
            {"name":"b","type":"bytes"}]}"#;
    let schema = Schema::parse_str(text).unwrap();
    let value = Value::Record(vec![
        (
            "u".into(),
            Value::Union(2, Box::new(Value::String("s".into()))),
        ),
        (
            "d".into(),
            Value::Decimal(Decimal::from(BigInt::from(-1234).to_signed_bytes_be())),
        ),
        (
            "m".into(),
            Value::Map([("k".to_owned(), Value::Boolean(true))].into()),
        ),
        ("e".into(), Value::Enum(1, "Y".into())),
        ("b".into(), Value::Bytes(vec![0x80, 0x41])),
    ]);
    let bytes = apache_avro::to_avro_datum(&schema, value).unwrap();
    let ours = AvroSchema::parse(text, &[]).unwrap();
    assert_eq!(
        ours.decode_json(&bytes).unwrap(),
        json!({"u": "s", "d": "-1.234", "m": {"k": true}, "e": "Y", "b": "\u{80}A"})
    );
}

#[test]
fn defaults_fill_missing_fields_and_what_does_not_fit_is_named() {
    let schema = AvroSchema::parse(ORDER, &[]).unwrap();
    let mut partial = order_json();
    let o = partial.as_object_mut().unwrap();
    o.remove("email");
    o.remove("note");
    let mut bytes = Vec::new();
    schema.encode_json(&partial, &mut bytes, false).unwrap();
    let back = schema.decode_json(&bytes).unwrap();
    assert_eq!(
        (back["email"].clone(), back["note"].clone()),
        (Json::Null, json!("none"))
    );

    let fails = |edit: &dyn Fn(&mut Json)| {
        let mut j = order_json();
        edit(&mut j);
        schema.encode_json(&j, &mut Vec::new(), false).unwrap_err()
    };
    let e = fails(&|j| {
        j.as_object_mut().unwrap().remove("id");
    });
    assert!(e.contains("field 'id' is missing"), "{e}");
    // A field the schema lacks is left out (a field removed in a newer version).
    let mut extra = order_json();
    extra["extra"] = json!(1);
    let mut bytes = Vec::new();
    schema.encode_json(&extra, &mut bytes, false).unwrap();
    assert_eq!(schema.decode_json(&bytes).unwrap(), order_json());
    let e = schema
        .encode_json(&extra, &mut Vec::new(), true)
        .unwrap_err();
    assert!(
        e.contains("a field 'extra' that record shop.Order does not have"),
        "{e}"
    );
    let e = fails(&|j| j["status"] = json!("LOST"));
    assert!(
        e.contains("a symbol of enum shop.Status (NEW, PAID)"),
        "{e}"
    );
    let e = fails(&|j| j["amount"] = json!("1.234"));
    assert!(e.contains("at most 2 digits after the point"), "{e}");
    let e = fails(&|j| j["customer"]["address"] = json!({"town": "x"}));
    assert!(e.contains("field 'customer.address' fits no branch"), "{e}");
    let e = fails(&|j| j["lines"] = json!([true]));
    assert!(e.contains("lines[0]"), "{e}");
    let e = fails(&|j| j["blob"] = json!("€"));
    assert!(e.contains("code points up to U+00FF"), "{e}");
}

#[test]
fn bytes_that_are_not_the_schemas_record_are_refused() {
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        &[],
    )
    .unwrap();
    assert!(
        schema
            .decode_json(&[])
            .unwrap_err()
            .starts_with("not Avro of its schema")
    );
    let e = schema.decode_json(&[2, 7]).unwrap_err();
    assert!(e.contains("1 bytes are left"), "{e}");
    assert_eq!(schema.decode_json(&[2]).unwrap(), json!({"a": 1}));
}

#[test]
fn decimal_text_is_exact() {
    assert_eq!(decimal_text(&BigInt::from(5), 3), "0.005");
    assert_eq!(decimal_text(&BigInt::from(-123456), 2), "-1234.56");
    assert_eq!(decimal_text(&BigInt::from(7), 0), "7");
    assert_eq!(
        parse_decimal(&Tree::of(&json!("0.50")), 1),
        Some(BigInt::from(5))
    );
    assert_eq!(
        parse_decimal(&Tree::of(&json!(12)), 2),
        Some(BigInt::from(1200))
    );
    assert_eq!(parse_decimal(&Tree::of(&json!("1e3")), 2), None);
    assert_eq!(parse_decimal(&Tree::of(&json!(".")), 2), None);
}

#[test]
fn a_record_nested_past_any_reason_is_refused_not_a_crash() {
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
        &[],
    )
    .unwrap();
    let nested = |depth: usize| {
        let mut bytes = vec![2u8; depth];
        bytes.push(0);
        bytes
    };
    let e = schema
        .decode(&nested(100_000), &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        e,
        "not Avro of its schema: nested deeper than 64 records, arrays, maps and unions"
    );
    // Each level is a record and a union: 31 levels are read and written
    // back, unoptimized, in a test thread's 2 MiB (the stack is grown).
    let mut text = Vec::new();
    schema.decode(&nested(31), &mut text).unwrap();
    assert_eq!(String::from_utf8_lossy(&text).matches("next").count(), 32);
    let mut again = Vec::new();
    schema.encode(&text, &mut again, true).unwrap();
    assert_eq!(again, nested(31));
    assert!(schema.decode(&nested(32), &mut Vec::new()).is_err());
    // A plugin's output nested as deep (serde_json reads 128 levels).
    let deep = format!("{}null{}", r#"{"next":"#.repeat(100), "}".repeat(100));
    let e = refused(&schema, &deep);
    assert!(
        e.ends_with("is nested deeper than 64 records, arrays, maps and unions"),
        "{e}"
    );
}

#[test]
fn an_array_claiming_more_items_than_its_bytes_hold_is_refused() {
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}"#,
        &[],
    )
    .unwrap();
    // A block of 2^40 nulls, in six bytes.
    let mut bytes = Vec::new();
    let n: i64 = 1 << 40;
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        bytes.push((z as u8) | 0x80);
        z >>= 7;
    }
    bytes.push(z as u8);
    bytes.push(0);
    let e = schema.decode(&bytes, &mut Vec::new()).unwrap_err();
    assert_eq!(
        e,
        "not Avro of its schema: a block claims 1099511627776 items, more than the record's 1 \
         bytes could hold"
    );
    // Up to 4096 items with no bytes of their own are read.
    let mut text = Vec::new();
    schema.decode(&[0x80, 0x40, 0], &mut text).unwrap();
    assert_eq!(text.len(), r#"{"a":[]}"#.len() + 4096 * 5 - 1);
    // A string longer than its record, and a union branch the schema lacks.
    let strings = AvroSchema::parse(
        r#"{"type":"record","name":"S","fields":[{"name":"s","type":["null","string"]}]}"#,
        &[],
    )
    .unwrap();
    let e = strings.decode(&[2, 0xfe, 0xff, 0xff, 0xff, 0x0f], &mut Vec::new());
    assert_eq!(
        e.unwrap_err(),
        "not Avro of its schema: bytes or a string of 2147483647 bytes is cut short (0 left)"
    );
    let e = strings.decode(&[4], &mut Vec::new()).unwrap_err();
    assert_eq!(
        e,
        "not Avro of its schema: union branch 2 is not in its schema"
    );
}

#[test]
fn an_output_that_nearly_fits_two_branches_at_every_level_is_cut_short() {
    // Every level fits A and B up to its last field, which it lacks: tried
    // branch by branch, that is 2^40 tries.
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"T","fields":[{"name":"c","type":["null",
          {"type":"record","name":"A","fields":[
            {"name":"c","type":["null","A",{"type":"record","name":"B","fields":[
              {"name":"c","type":["null","A","B"]},{"name":"b","type":"int"}]}]},
            {"name":"a","type":"int"}]}]}]}"#,
        &[],
    )
    .unwrap();
    let deep = format!("{}null{}", r#"{"c":"#.repeat(40), "}".repeat(40));
    let e = refused(&schema, &deep);
    assert!(
        e.contains("takes too many tries to fit the schema's unions"),
        "{e}"
    );
    // The same depth that fits is written.
    let fits = format!("{}null{}", r#"{"a":1,"c":"#.repeat(20), "}".repeat(20));
    let fits = format!(r#"{{"c":{}}}"#, &fits[..]);
    let mut bytes = Vec::new();
    schema.encode(fits.as_bytes(), &mut bytes, false).unwrap();
    let mut back = Vec::new();
    schema.decode(&bytes, &mut back).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back).matches(r#""a":1"#).count(),
        20
    );
}
