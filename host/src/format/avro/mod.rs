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

use apache_avro::headers::HeaderBuilder;
use apache_avro::schema::{DecimalSchema, Name, RecordSchema, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::{
    Days, Decimal, Duration, GenericSingleObjectReader, Millis, Months, Schema, Uuid,
};
use num_bigint::{BigInt, Sign};
use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;

/// A parsed writer schema with the named types it refers to.
pub struct AvroSchema {
    schema: Schema,
    /// Schemas of references (other subjects), then the schema itself.
    schemata: Vec<Schema>,
    names: HashMap<Name, Schema>,
    /// For a schema without references: a reader with its names resolved
    /// once (apache-avro's datum functions resolve them on every call).
    reader: Option<GenericSingleObjectReader>,
}

/// No header: the registry's frame is read apart, so the "single object"
/// reader reads a bare datum.
struct NoHeader;

impl HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
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
        let reader = match references.is_empty() {
            true => Some(
                GenericSingleObjectReader::new_with_header_builder(schema.clone(), NoHeader)
                    .map_err(|e| e.to_string())?,
            ),
            false => None,
        };
        Ok(AvroSchema {
            schema,
            schemata,
            names,
            reader,
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

    /// The record `bytes` (no frame) as JSON.
    pub fn decode(&self, mut bytes: &[u8]) -> Result<Json, String> {
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
        self.json_of(&value, &self.schema)
    }

    /// `json` in the binary encoding of this schema, appended to `out`.
    /// Fields the schema lacks are left out, unless `strict`.
    pub fn encode(&self, json: &Json, out: &mut Vec<u8>, strict: bool) -> Result<(), String> {
        let value = self.value_of(json, &self.schema, &At::Root, strict)?;
        let bytes = apache_avro::to_avro_datum_schemata(
            &self.schema,
            self.schemata.iter().collect(),
            value,
        )
        .map_err(|e| e.to_string())?;
        out.extend_from_slice(&bytes);
        Ok(())
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

    fn json_of(&self, value: &Value, schema: &Schema) -> Result<Json, String> {
        let schema = self.named(schema)?;
        Ok(match (value, schema) {
            (Value::Union(i, v), Schema::Union(u)) => {
                let branch = u
                    .variants()
                    .get(*i as usize)
                    .ok_or("union branch out of range")?;
                return self.json_of(v, branch);
            }
            (Value::Null, _) => Json::Null,
            (Value::Boolean(b), _) => Json::Bool(*b),
            (Value::Int(i) | Value::Date(i) | Value::TimeMillis(i), _) => Json::from(*i),
            (
                Value::Long(i)
                | Value::TimeMicros(i)
                | Value::TimestampMillis(i)
                | Value::TimestampMicros(i)
                | Value::TimestampNanos(i)
                | Value::LocalTimestampMillis(i)
                | Value::LocalTimestampMicros(i)
                | Value::LocalTimestampNanos(i),
                _,
            ) => Json::from(*i),
            (Value::Float(f), _) => float_json(f64::from(*f)),
            (Value::Double(f), _) => float_json(*f),
            (Value::Bytes(b) | Value::Fixed(_, b), _) => Json::String(latin1(b)),
            (Value::String(s), _) | (Value::Enum(_, s), _) => Json::String(s.clone()),
            (Value::Uuid(u), _) => Json::String(u.to_string()),
            (Value::Decimal(d), Schema::Decimal(DecimalSchema { scale, .. })) => {
                Json::String(decimal_text(&BigInt::from(d.clone()), *scale))
            }
            (Value::BigDecimal(d), _) => Json::String(d.to_string()),
            (Value::Duration(d), _) => {
                let mut m = Map::new();
                m.insert("months".into(), Json::from(u32::from(d.months())));
                m.insert("days".into(), Json::from(u32::from(d.days())));
                m.insert("millis".into(), Json::from(u32::from(d.millis())));
                Json::Object(m)
            }
            (Value::Array(items), Schema::Array(a)) => Json::Array(
                items
                    .iter()
                    .map(|v| self.json_of(v, &a.items))
                    .collect::<Result<_, _>>()?,
            ),
            (Value::Map(entries), Schema::Map(m)) => {
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), self.json_of(&entries[k], &m.types)?);
                }
                Json::Object(out)
            }
            (Value::Record(fields), Schema::Record(r)) => {
                let mut out = Map::new();
                for ((name, v), field) in fields.iter().zip(&r.fields) {
                    out.insert(name.clone(), self.json_of(v, &field.schema)?);
                }
                Json::Object(out)
            }
            (v, s) => {
                return Err(format!(
                    "an Avro value {v:?} does not match its schema {s:?}"
                ));
            }
        })
    }

    /// `json` as a value of `schema`; `at` is its path, for errors.
    fn value_of(
        &self,
        json: &Json,
        schema: &Schema,
        at: &At<'_>,
        strict: bool,
    ) -> Result<Value, String> {
        let schema = self.named(schema)?;
        let wrong = |want: &str| {
            Err(format!(
                "{} is {}, which is not {want}",
                path(at),
                describe(json)
            ))
        };
        Ok(match schema {
            Schema::Null => match json {
                Json::Null => Value::Null,
                _ => return wrong("null"),
            },
            Schema::Boolean => match json {
                Json::Bool(b) => Value::Boolean(*b),
                _ => return wrong("a boolean"),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let Some(i) = json.as_i64().and_then(|i| i32::try_from(i).ok()) else {
                    return wrong("an int (32 bits)");
                };
                match schema {
                    Schema::Date => Value::Date(i),
                    Schema::TimeMillis => Value::TimeMillis(i),
                    _ => Value::Int(i),
                }
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let Some(i) = json.as_i64() else {
                    return wrong("a long (64 bits)");
                };
                match schema {
                    Schema::TimeMicros => Value::TimeMicros(i),
                    Schema::TimestampMillis => Value::TimestampMillis(i),
                    Schema::TimestampMicros => Value::TimestampMicros(i),
                    Schema::TimestampNanos => Value::TimestampNanos(i),
                    Schema::LocalTimestampMillis => Value::LocalTimestampMillis(i),
                    Schema::LocalTimestampMicros => Value::LocalTimestampMicros(i),
                    Schema::LocalTimestampNanos => Value::LocalTimestampNanos(i),
                    _ => Value::Long(i),
                }
            }
            Schema::Float | Schema::Double => {
                let Some(f) = json_float(json) else {
                    return wrong("a number");
                };
                match schema {
                    Schema::Float => Value::Float(f as f32),
                    _ => Value::Double(f),
                }
            }
            Schema::Bytes => match json.as_str().map(from_latin1) {
                Some(Some(b)) => Value::Bytes(b),
                _ => return wrong("bytes (a string of code points up to U+00FF)"),
            },
            Schema::Fixed(f) => match json.as_str().map(from_latin1) {
                Some(Some(b)) if b.len() == f.size => Value::Fixed(f.size, b),
                _ => {
                    return wrong(&format!(
                        "fixed {} ({} bytes)",
                        f.name.fullname(None),
                        f.size
                    ));
                }
            },
            Schema::String => match json {
                Json::String(s) => Value::String(s.clone()),
                _ => return wrong("a string"),
            },
            Schema::Uuid => match json.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                Some(u) => Value::Uuid(u),
                None => return wrong("a uuid"),
            },
            Schema::Enum(e) => match json.as_str() {
                Some(s) if e.symbols.iter().any(|x| x == s) => {
                    let i = e.symbols.iter().position(|x| x == s).unwrap_or(0);
                    Value::Enum(i as u32, s.to_owned())
                }
                _ => {
                    return wrong(&format!(
                        "a symbol of enum {} ({})",
                        e.name.fullname(None),
                        e.symbols.join(", ")
                    ));
                }
            },
            Schema::Decimal(d) => {
                let Some(unscaled) = parse_decimal(json, d.scale) else {
                    return wrong(&format!(
                        "a decimal with at most {} digits after the point",
                        d.scale
                    ));
                };
                if unscaled.magnitude().to_string().len() > d.precision {
                    return wrong(&format!("a decimal of at most {} digits", d.precision));
                }
                let mut bytes = unscaled.to_signed_bytes_be();
                if let Schema::Fixed(f) = self.named(&d.inner)? {
                    if bytes.len() > f.size {
                        return wrong(&format!("a decimal that fits {} bytes", f.size));
                    }
                    let fill = if unscaled.sign() == Sign::Minus {
                        0xFF
                    } else {
                        0
                    };
                    let mut padded = vec![fill; f.size - bytes.len()];
                    padded.append(&mut bytes);
                    bytes = padded;
                }
                Value::Decimal(Decimal::from(bytes))
            }
            Schema::BigDecimal => match json.as_str().and_then(|s| s.parse().ok()) {
                Some(d) => Value::BigDecimal(d),
                None => return wrong("a decimal string"),
            },
            Schema::Duration => {
                let part = |k: &str| {
                    json.get(k)
                        .and_then(Json::as_u64)
                        .and_then(|v| u32::try_from(v).ok())
                };
                match (part("months"), part("days"), part("millis")) {
                    (Some(m), Some(d), Some(ms)) => Value::Duration(Duration::new(
                        Months::new(m),
                        Days::new(d),
                        Millis::new(ms),
                    )),
                    _ => return wrong("a duration {\"months\", \"days\", \"millis\"}"),
                }
            }
            Schema::Array(a) => match json {
                Json::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| self.value_of(v, &a.items, &At::Index(at, i), strict))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return wrong("an array"),
            },
            Schema::Map(m) => match json {
                Json::Object(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                k.clone(),
                                self.value_of(v, &m.types, &At::Field(at, k), strict)?,
                            ))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                _ => return wrong("an object (a map)"),
            },
            Schema::Record(r) => {
                let Json::Object(fields) = json else {
                    return wrong(&format!("an object (record {})", r.name.fullname(None)));
                };
                // Fields the schema does not have are left out, as
                // Confluent's serializers do: a field removed from the
                // output's schema is dropped, not an error.
                if strict && let Some(extra) = fields.keys().find(|k| !r.lookup.contains_key(*k)) {
                    return Err(format!(
                        "{} has a field '{extra}' that record {} does not have",
                        path(at),
                        r.name.fullname(None)
                    ));
                }
                let mut out = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let at = At::Field(at, &field.name);
                    let value = match (fields.get(&field.name), &field.default) {
                        (Some(v), _) => self.value_of(v, &field.schema, &at, strict)?,
                        (None, Some(default)) => self.default(default, &field.schema, &at)?,
                        (None, None) => {
                            return Err(format!(
                                "{} is missing: record {} requires it (it has no default)",
                                path(&at),
                                r.name.fullname(None)
                            ));
                        }
                    };
                    out.push((field.name.clone(), value));
                }
                Value::Record(out)
            }
            Schema::Union(u) => {
                let mut why = Vec::new();
                for (i, branch) in u.variants().iter().enumerate() {
                    match self.value_of(json, branch, at, strict) {
                        Ok(v) => return Ok(Value::Union(i as u32, Box::new(v))),
                        Err(e) => why.push(e),
                    }
                }
                return Err(format!(
                    "{} fits no branch of its union: {}",
                    path(at),
                    why.join("; ")
                ));
            }
            Schema::Ref { name } => {
                return Err(format!("unresolved reference {}", name.fullname(None)));
            }
        })
    }

    /// A field's default: Avro writes a union's default as its first
    /// branch's value, and bytes as code points, as plugins' JSON does.
    fn default(&self, default: &Json, schema: &Schema, at: &At<'_>) -> Result<Value, String> {
        match self.named(schema)? {
            Schema::Union(u) => {
                let first = u.variants().first().ok_or("an empty union")?;
                Ok(Value::Union(
                    0,
                    Box::new(self.value_of(default, first, at, false)?),
                ))
            }
            s => self.value_of(default, s, at, false),
        }
    }
}

fn float_json(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn json_float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
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

/// A decimal string or number as its unscaled value at `scale`; `None` if
/// it has more digits after the point than the scale keeps (not zeros).
fn parse_decimal(json: &Json, scale: usize) -> Option<BigInt> {
    let text = match json {
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Json::Number(n) => n.as_f64().map(|f| f.to_string())?,
        _ => return None,
    };
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale {
        return None;
    }
    let digits = format!("{int}{frac:0<scale$}");
    let value: BigInt = digits.trim_start_matches('0').parse().unwrap_or_default();
    Some(if negative { -value } else { value })
}

/// Where in the value a field is, for errors (made into text only then).
enum At<'a> {
    Root,
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Field(At::Root, name) => f.write_str(name),
            At::Field(parent, name) => write!(f, "{parent}.{name}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn path(at: &At<'_>) -> String {
    match at {
        At::Root => "the value".into(),
        at => format!("field '{at}'"),
    }
}

fn describe(json: &Json) -> String {
    let text = json.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
