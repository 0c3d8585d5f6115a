//! Avro records as plugins see them: JSON, mapped by the writer's schema.
//! apache-avro reads and writes the binary encoding; this module only maps
//! its values to JSON and back, guided by the schema.
//!
//! The mapping (also in docs/formats.md): records and maps are objects,
//! arrays arrays, enums their symbol, a union the value of its branch (no
//! `{"type": …}` wrapper; writing, the first branch the value fits is
//! taken), bytes and fixed a string of code points U+0000–U+00FF (Avro's
//! own JSON encoding), decimals an exact decimal string ("12.30"), uuid a
//! string, dates, times and timestamps their number, a duration
//! `{"months", "days", "millis"}`, and non-finite floats "NaN",
//! "Infinity" or "-Infinity".

mod shape;
mod show;
mod tree;
mod value;

pub use tree::Tree;

use super::Misfit;
use apache_avro::headers::HeaderBuilder;
use apache_avro::schema::{Name, RecordSchema, ResolvedSchema};
use apache_avro::{GenericSingleObjectReader, GenericSingleObjectWriter, Schema};
use num_bigint::{BigInt, Sign};
use std::collections::HashMap;
use std::sync::Mutex;

/// A parsed writer schema with the named types it refers to.
pub struct AvroSchema {
    schema: Schema,
    /// Schemas of references (other subjects), then the schema itself.
    schemata: Vec<Schema>,
    names: HashMap<Name, Schema>,
    /// For a schema without references: a reader with its names resolved
    /// once (apache-avro's datum functions resolve them on every call).
    reader: Option<GenericSingleObjectReader>,
    /// And a writer, likewise (its buffer wants `&mut`).
    writer: Option<Mutex<GenericSingleObjectWriter>>,
}

/// No header: the registry's frame is read apart, so the "single object"
/// reader reads a bare datum.
struct NoHeader;

impl HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// The "single object" writer wants a header of 10 to 20 bytes; it writes
/// this one, which is taken off again.
const PLACEHOLDER: [u8; 10] = [0; 10];

struct Placeholder;

fn single_object_writer(schema: &Schema) -> apache_avro::AvroResult<GenericSingleObjectWriter> {
    GenericSingleObjectWriter::new_with_capacity_and_header_builder(schema, 256, Placeholder)
}

impl HeaderBuilder for Placeholder {
    fn build_header(&self) -> Vec<u8> {
        PLACEHOLDER.to_vec()
    }
}

impl AvroSchema {
    /// Parses `text`, with the texts of the schemas it references.
    pub fn parse(text: &str, references: &[String]) -> Result<AvroSchema, String> {
        let (schema, mut schemata) = if references.is_empty() {
            (
                Schema::parse_str(text).map_err(|e| e.to_string())?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(text, references).map_err(|e| e.to_string())?
        };
        schemata.push(schema.clone());
        let names = {
            let resolved = ResolvedSchema::try_from(schemata.iter().collect::<Vec<_>>())
                .map_err(|e| e.to_string())?;
            resolved
                .get_names()
                .iter()
                .map(|(n, s)| (n.clone(), (*s).clone()))
                .collect()
        };
        let (reader, writer) = match references.is_empty() {
            true => (
                Some(
                    GenericSingleObjectReader::new_with_header_builder(schema.clone(), NoHeader)
                        .map_err(|e| e.to_string())?,
                ),
                Some(Mutex::new(
                    single_object_writer(&schema).map_err(|e| e.to_string())?,
                )),
            ),
            false => (None, None),
        };
        Ok(AvroSchema {
            schema,
            schemata,
            names,
            reader,
            writer,
        })
    }

    /// The full name of the schema's top type, if it is named.
    pub fn name(&self) -> Option<String> {
        match &self.schema {
            Schema::Record(RecordSchema { name, .. }) => Some(name.fullname(None)),
            Schema::Enum(e) => Some(e.name.fullname(None)),
            Schema::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }

    /// The record `bytes` (no frame) as JSON text, appended to `out`.
    pub fn decode(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        shape::with_stack(|| self.decode_here(bytes, out))
    }

    fn decode_here(&self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.check_shape(bytes)
            .map_err(|e| format!("not Avro of its schema: {e}"))?;
        let value = match &self.reader {
            Some(reader) => reader.read_value(&mut bytes),
            None => apache_avro::from_avro_datum_schemata(
                &self.schema,
                self.schemata.iter().collect(),
                &mut bytes,
                None,
            ),
        }
        .map_err(|e| format!("not Avro of its schema: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!(
                "{} bytes are left after the Avro record its schema describes",
                bytes.len()
            ));
        }
        let shown = show::Shown {
            avro: self,
            value: &value,
            schema: &self.schema,
        };
        serde_json::to_writer(out, &shown).map_err(|e| e.to_string())
    }

    /// `json` (text) in the binary encoding of this schema, appended to
    /// `out`. Fields the schema lacks are left out, unless `strict`.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>, strict: bool) -> Result<(), Misfit> {
        shape::with_stack(|| self.encode_here(json, out, strict))
    }

    fn encode_here(&self, json: &[u8], out: &mut Vec<u8>, strict: bool) -> Result<(), Misfit> {
        let tree = Tree::parse(json).map_err(Misfit::NotJson)?;
        // Each node is tried at most once per branch of a union around it,
        // in practice: a union of records that each nearly fit, nested, is
        // cut short rather than tried an exponential number of times.
        let budget = 16 * json.len() + 1024;
        let value = self.value(&tree, strict, budget).map_err(Misfit::Schema)?;
        match &self.writer {
            // Self-contained: its names resolved once.
            Some(writer) => {
                let at = out.len();
                let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
                match writer.write_value_ref(&value, out) {
                    Ok(_) => {
                        // The placeholder header apache-avro's writer insists on.
                        out.drain(at..at + PLACEHOLDER.len());
                        Ok(())
                    }
                    Err(e) => {
                        // A failed write leaves the writer's buffer as it
                        // stopped: start a clean one.
                        if let Ok(clean) = single_object_writer(&self.schema) {
                            *writer = clean;
                        }
                        Err(e)
                    }
                }
            }
            None => apache_avro::to_avro_datum_schemata(
                &self.schema,
                self.schemata.iter().collect(),
                value,
            )
            .map(|bytes| out.extend_from_slice(&bytes)),
        }
        .map_err(|e| Misfit::Schema(e.to_string()))
    }

    fn named<'s>(&'s self, schema: &'s Schema) -> Result<&'s Schema, String> {
        match schema {
            Schema::Ref { name } => self.names.get(name).ok_or_else(|| {
                format!(
                    "the schema refers to {} but does not define it",
                    name.fullname(None)
                )
            }),
            s => Ok(s),
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn from_latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// `unscaled` × 10^-scale, written exactly.
fn decimal_text(unscaled: &BigInt, scale: usize) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == Sign::Minus {
        "-"
    } else {
        ""
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests;
