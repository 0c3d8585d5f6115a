use super::*;
use serde_json::json;

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
    schema.encode(&order_json(), &mut bytes, false).unwrap();
    let back = schema.decode(&bytes).unwrap();
    assert_eq!(back, order_json());
    // Written again (a map's entries may come in another order).
    let mut again = Vec::new();
    schema.encode(&back, &mut again, false).unwrap();
    assert_eq!(again.len(), bytes.len());
    assert_eq!(schema.decode(&again).unwrap(), order_json());
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
        ours.decode(&bytes).unwrap(),
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
    schema.encode(&partial, &mut bytes, false).unwrap();
    let back = schema.decode(&bytes).unwrap();
    assert_eq!(
        (back["email"].clone(), back["note"].clone()),
        (Json::Null, json!("none"))
    );

    let fails = |edit: &dyn Fn(&mut Json)| {
        let mut j = order_json();
        edit(&mut j);
        schema.encode(&j, &mut Vec::new(), false).unwrap_err()
    };
    let e = fails(&|j| {
        j.as_object_mut().unwrap().remove("id");
    });
    assert!(e.contains("field 'id' is missing"), "{e}");
    // A field the schema lacks is left out (a field removed in a newer version).
    let mut extra = order_json();
    extra["extra"] = json!(1);
    let mut bytes = Vec::new();
    schema.encode(&extra, &mut bytes, false).unwrap();
    assert_eq!(schema.decode(&bytes).unwrap(), order_json());
    let e = schema.encode(&extra, &mut Vec::new(), true).unwrap_err();
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
            .decode(&[])
            .unwrap_err()
            .starts_with("not Avro of its schema")
    );
    let e = schema.decode(&[2, 7]).unwrap_err();
    assert!(e.contains("1 bytes are left"), "{e}");
    assert_eq!(schema.decode(&[2]).unwrap(), json!({"a": 1}));
}

#[test]
fn decimal_text_is_exact() {
    assert_eq!(decimal_text(&BigInt::from(5), 3), "0.005");
    assert_eq!(decimal_text(&BigInt::from(-123456), 2), "-1234.56");
    assert_eq!(decimal_text(&BigInt::from(7), 0), "7");
    assert_eq!(parse_decimal(&json!("0.50"), 1), Some(BigInt::from(5)));
    assert_eq!(parse_decimal(&json!(12), 2), Some(BigInt::from(1200)));
    assert_eq!(parse_decimal(&json!("1e3"), 2), None);
    assert_eq!(parse_decimal(&json!("."), 2), None);
}
