//! Protobuf records as plugins see them: the message in protobuf's own
//! JSON mapping (prost-reflect), with field names as the `.proto` writes
//! them and every field present, defaults included. The schema text a
//! registry serves is compiled with protox; its imports are the schema's
//! references, or Google's well-known types.

use prost_reflect::prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FileDescriptor, MessageDescriptor,
    SerializeOptions,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value as Json;

/// The file name a schema is compiled as (imports use the references' names).
const ROOT: &str = "wasmpipe-schema.proto";

pub struct ProtoSchema {
    file: FileDescriptor,
}

/// References by their import name, then Google's well-known types.
struct Sources(Vec<File>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.iter().find(|f| f.name() == name) {
            Some(f) => Ok(f.clone()),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// A schema's text as a file named `name`: `.proto` source, or (as some
/// serializers register it) a base64 `FileDescriptorProto`.
fn file(name: &str, text: &str) -> Result<File, String> {
    use base64::Engine as _;
    use prost_reflect::prost_types::FileDescriptorProto;
    let descriptor = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| FileDescriptorProto::decode(&bytes[..]).ok())
        .filter(|d| !d.message_type.is_empty() || !d.enum_type.is_empty());
    match descriptor {
        Some(mut d) => {
            d.name = Some(name.to_owned());
            Ok(File::from_file_descriptor_proto(d))
        }
        None => File::from_source(name, text).map_err(|e| e.to_string()),
    }
}

impl ProtoSchema {
    /// Compiles `text`, whose imports are `references` (import name, text).
    pub fn parse(text: &str, references: &[(String, String)]) -> Result<ProtoSchema, String> {
        let mut files = references
            .iter()
            .map(|(n, t)| file(n, t))
            .collect::<Result<Vec<_>, _>>()?;
        files.push(file(ROOT, text)?);
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources(files));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler.open_file(ROOT).map_err(|e| e.to_string())?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(ROOT)
            .ok_or("the compiled schema has no file")?;
        if file.messages().next().is_none() {
            return Err("the schema defines no message".into());
        }
        Ok(ProtoSchema { file })
    }

    /// The message at `indexes` (as the wire format gives them).
    pub fn message(&self, indexes: &[i32]) -> Result<MessageDescriptor, String> {
        let mut at: Option<MessageDescriptor> = None;
        for &i in indexes {
            let nth = usize::try_from(i).ok();
            let next = match &at {
                None => nth.and_then(|i| self.file.messages().nth(i)),
                Some(m) => nth.and_then(|i| m.child_messages().nth(i)),
            };
            at = Some(
                next.ok_or_else(|| format!("the schema has no message at indexes {indexes:?}"))?,
            );
        }
        at.ok_or_else(|| "no message index".to_owned())
    }

    /// The indexes of the message called `full_name`, if the schema has it.
    pub fn indexes_of(&self, full_name: &str) -> Option<Vec<i32>> {
        fn find(
            messages: impl Iterator<Item = MessageDescriptor>,
            name: &str,
            path: &mut Vec<i32>,
        ) -> bool {
            for (i, m) in messages.enumerate() {
                path.push(i as i32);
                if m.full_name() == name || find(m.child_messages(), name, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        find(self.file.messages(), full_name, &mut path).then_some(path)
    }

    /// The message `payload` of type `message` as JSON.
    pub fn decode(&self, message: &MessageDescriptor, payload: &[u8]) -> Result<Json, String> {
        let m = DynamicMessage::decode(message.clone(), payload)
            .map_err(|e| format!("not a {} message: {e}", message.full_name()))?;
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .skip_default_fields(false);
        m.serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| e.to_string())
    }

    /// `json` as a `message` in protobuf's encoding, appended to `out`.
    /// Fields the message does not have are left out, as Confluent's
    /// serializers do (a field removed in a newer version), unless `strict`.
    pub fn encode(
        &self,
        message: &MessageDescriptor,
        json: &Json,
        out: &mut Vec<u8>,
        strict: bool,
    ) -> Result<(), String> {
        let options = DeserializeOptions::new().deny_unknown_fields(strict);
        let m = DynamicMessage::deserialize_with_options(message.clone(), json, &options)
            .map_err(|e| format!("does not fit message {}: {e}", message.full_name()))?;
        m.encode(out).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        import "common.proto";
        message Header { string trace = 1; }
        message Order {
            message Line { string sku = 1; int32 qty = 2; }
            string id = 1;
            repeated Line lines = 2;
            oneof payment { string card = 3; string iban = 4; }
            map<string, int64> tags = 5;
            google.protobuf.Timestamp at = 6;
            common.Money total = 7;
            Status status = 8;
            bytes blob = 9;
        }
        enum Status { NEW = 0; PAID = 1; }
    "#;
    const COMMON: &str = "syntax = \"proto3\"; package common; message Money { string currency = 1; int64 units = 2; }";

    fn schema() -> ProtoSchema {
        ProtoSchema::parse(SCHEMA, &[("common.proto".into(), COMMON.into())]).unwrap()
    }

    #[test]
    fn nested_repeated_oneof_and_referenced_messages_map_to_json_and_back() {
        let s = schema();
        let at = s.indexes_of("shop.Order").unwrap();
        assert_eq!(at, [1]);
        assert_eq!(s.indexes_of("shop.Order.Line").unwrap(), [1, 0]);
        let order = s.message(&at).unwrap();
        let input = json!({
            "id": "o-1",
            "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}],
            "iban": "DE00",
            "tags": {"x": "9007199254740993"},
            "at": "2026-12-04T10:00:00Z",
            "total": {"currency": "EUR", "units": "12"},
            "status": "PAID",
            "blob": "AAE="
        });
        let mut bytes = Vec::new();
        s.encode(&order, &input, &mut bytes, false).unwrap();
        let back = s.decode(&order, &bytes).unwrap();
        assert_eq!(back["lines"][1], json!({"sku": "b", "qty": 0}));
        assert_eq!(back["iban"], "DE00");
        assert!(
            back.get("card").is_none(),
            "only the set oneof branch: {back}"
        );
        assert_eq!(back["tags"]["x"], "9007199254740993");
        assert_eq!(back["at"], "2026-12-04T10:00:00Z");
        assert_eq!(back["total"], json!({"currency": "EUR", "units": "12"}));
        assert_eq!(back["status"], "PAID");
        assert_eq!(back["blob"], "AAE=");
        // Encoding again gives the same bytes.
        let mut again = Vec::new();
        s.encode(&order, &back, &mut again, false).unwrap();
        assert_eq!(again, bytes);
        // A nested message by its indexes.
        let line = s.message(&[1, 0]).unwrap();
        assert_eq!(line.full_name(), "shop.Order.Line");
    }

    #[test]
    fn defaults_are_present_unknown_fields_left_out_and_wrong_types_refused() {
        let s = schema();
        let header = s.message(&[0]).unwrap();
        assert_eq!(s.decode(&header, &[]).unwrap(), json!({"trace": ""}));
        let mut bytes = Vec::new();
        s.encode(
            &header,
            &json!({"trace": "t", "extra": 1}),
            &mut bytes,
            false,
        )
        .unwrap();
        assert_eq!(s.decode(&header, &bytes).unwrap(), json!({"trace": "t"}));
        let e = s
            .encode(&header, &json!({"trace": 5}), &mut Vec::new(), true)
            .unwrap_err();
        assert!(e.contains("does not fit message shop.Header"), "{e}");
        assert!(
            s.message(&[5])
                .unwrap_err()
                .contains("no message at indexes [5]")
        );
        let e = s.decode(&header, &[0xff, 0xff]).unwrap_err();
        assert!(e.starts_with("not a shop.Header message"), "{e}");
    }

    #[test]
    fn a_schema_registered_as_a_base64_descriptor_reads_the_same() {
        use base64::Engine as _;
        let source = schema();
        let proto = source.file.file_descriptor_proto().clone();
        let text = base64::engine::general_purpose::STANDARD.encode(proto.encode_to_vec());
        let s = ProtoSchema::parse(&text, &[("common.proto".into(), COMMON.into())]).unwrap();
        assert_eq!(s.indexes_of("shop.Order.Line").unwrap(), [1, 0]);
        let order = s.message(&[1]).unwrap();
        let mut bytes = Vec::new();
        s.encode(
            &order,
            &json!({"id": "x", "total": {"units": "3"}}),
            &mut bytes,
            false,
        )
        .unwrap();
        assert_eq!(s.decode(&order, &bytes).unwrap()["total"]["units"], "3");
    }

    #[test]
    fn a_schema_that_does_not_compile_names_the_cause() {
        let e = ProtoSchema::parse("syntax = \"proto3\"; message A { Missing m = 1; }", &[])
            .err()
            .unwrap();
        assert!(e.contains("Missing"), "{e}");
        let e = ProtoSchema::parse("syntax = \"proto3\"; import \"x.proto\";", &[])
            .err()
            .unwrap();
        assert!(e.contains("x.proto"), "{e}");
    }

    #[test]
    fn a_message_nested_past_prosts_limit_is_refused_not_a_crash() {
        let s = ProtoSchema::parse("syntax = \"proto3\"; message Node { Node next = 1; }", &[])
            .unwrap();
        let node = s.message(&[0]).unwrap();
        // Field 1, length-delimited, nested 100,000 deep: built inside out.
        let mut bytes: Vec<u8> = Vec::new();
        for _ in 0..100_000 {
            let mut outer = vec![0x0a];
            let mut n = bytes.len();
            while n >= 0x80 {
                outer.push((n as u8) | 0x80);
                n >>= 7;
            }
            outer.push(n as u8);
            outer.extend_from_slice(&bytes);
            bytes = outer;
        }
        let e = s.decode(&node, &bytes).unwrap_err();
        assert!(e.contains("recursion limit"), "{e}");
        // An output is as deep as serde_json reads (128 levels) at most: it
        // is written, though a reader with prost's limit refuses it.
        let deep = format!("{}{{}}{}", r#"{"next":"#.repeat(120), "}".repeat(120));
        let json: Json = serde_json::from_str(&deep).unwrap();
        let mut out = Vec::new();
        s.encode(&node, &json, &mut out, false).unwrap();
        assert_eq!(out[0], 0x0a);
        assert!(
            s.decode(&node, &out)
                .unwrap_err()
                .contains("recursion limit")
        );
    }
}
