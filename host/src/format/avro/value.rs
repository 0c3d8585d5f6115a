//! The plugin's JSON (read into a [`Tree`]) as a value of the output's
//! schema, for apache-avro to write. The mapping is the module's (see its
//! head); every misfit is named by its path in the value.

use super::shape::{MAX_DEPTH, nests, too_deep};
use super::tree::Tree;
use super::{AvroSchema, from_latin1};
use apache_avro::types::Value;
use apache_avro::{Days, Decimal, Duration, Millis, Months, Schema, Uuid};
use num_bigint::{BigInt, Sign};
use serde_json::Value as Json;
use std::cell::Cell;

impl AvroSchema {
    /// `json` as a value of the whole schema.
    /// `budget` bounds the tries (a union's branches are tried in turn).
    pub(super) fn value(
        &self,
        json: &Tree<'_>,
        strict: bool,
        budget: usize,
    ) -> Result<Value, String> {
        let cx = Cx {
            strict,
            budget: Cell::new(budget),
        };
        self.value_of(json, &self.schema, &At::Root, &cx, 0)
    }

    /// `json` as a value of `schema`; `at` is its path, for errors.
    fn value_of(
        &self,
        json: &Tree<'_>,
        schema: &Schema,
        at: &At<'_>,
        cx: &Cx,
        depth: usize,
    ) -> Result<Value, String> {
        let schema = self.named(schema)?;
        let left = cx.budget.get();
        if left == 0 {
            return Err(format!(
                "{} takes too many tries to fit the schema's unions",
                path(at)
            ));
        }
        cx.budget.set(left - 1);
        if depth >= MAX_DEPTH && nests(schema) {
            return Err(format!("{} is {}", path(at), too_deep()));
        }
        let wrong = |want: &str| {
            Err(format!(
                "{} is {}, which is not {want}",
                path(at),
                describe(json)
            ))
        };
        Ok(match schema {
            Schema::Null => match json {
                Tree::Null => Value::Null,
                _ => return wrong("null"),
            },
            Schema::Boolean => match json {
                Tree::Bool(b) => Value::Boolean(*b),
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
                Tree::Str(s) => Value::String(s.to_string()),
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
                        .and_then(Tree::as_u64)
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
                Tree::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| self.value_of(v, &a.items, &At::Index(at, i), cx, depth + 1))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return wrong("an array"),
            },
            Schema::Map(m) => match json {
                Tree::Object(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                k.to_string(),
                                self.value_of(v, &m.types, &At::Field(at, k), cx, depth + 1)?,
                            ))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                _ => return wrong("an object (a map)"),
            },
            Schema::Record(r) => {
                let Tree::Object(fields) = json else {
                    return wrong(&format!("an object (record {})", r.name.fullname(None)));
                };
                // Fields the schema does not have are left out, as
                // Confluent's serializers do: a field removed from the
                // output's schema is dropped, not an error.
                if cx.strict
                    && let Some((extra, _)) = fields
                        .iter()
                        .find(|(k, _)| !r.lookup.contains_key(k.as_ref()))
                {
                    return Err(format!(
                        "{} has a field '{extra}' that record {} does not have",
                        path(at),
                        r.name.fullname(None)
                    ));
                }
                let mut out = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let at = At::Field(at, &field.name);
                    let value = match (json.get(&field.name), &field.default) {
                        (Some(v), _) => self.value_of(v, &field.schema, &at, cx, depth + 1)?,
                        (None, Some(default)) => {
                            self.default(default, &field.schema, &at, depth + 1)?
                        }
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
                // Null goes to the null branch and nothing else does, so a
                // nullable field costs no failed try; the reasons are only
                // gathered when no branch fits.
                let null = matches!(json, Tree::Null);
                let mut why = vec![None; u.variants().len()];
                for (i, branch) in u.variants().iter().enumerate() {
                    if matches!(self.named(branch)?, Schema::Null) != null {
                        continue;
                    }
                    match self.value_of(json, branch, at, cx, depth + 1) {
                        Ok(v) => return Ok(Value::Union(i as u32, Box::new(v))),
                        Err(e) => why[i] = Some(e),
                    }
                }
                // The branches passed over fail at once, on null.
                let why: Vec<String> = why
                    .into_iter()
                    .zip(u.variants())
                    .filter_map(|(e, b)| {
                        e.or_else(|| self.value_of(json, b, at, cx, depth + 1).err())
                    })
                    .collect();
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
    fn default(
        &self,
        default: &Json,
        schema: &Schema,
        at: &At<'_>,
        depth: usize,
    ) -> Result<Value, String> {
        let default = &Tree::of(default);
        let cx = Cx {
            strict: false,
            budget: Cell::new(usize::MAX),
        };
        match self.named(schema)? {
            Schema::Union(u) => {
                let first = u.variants().first().ok_or("an empty union")?;
                Ok(Value::Union(
                    0,
                    Box::new(self.value_of(default, first, at, &cx, depth + 1)?),
                ))
            }
            s => self.value_of(default, s, at, &cx, depth),
        }
    }
}

fn json_float(json: &Tree<'_>) -> Option<f64> {
    match json {
        Tree::Str(s) => match s.as_ref() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        json => json.as_number().map(|(f, _)| f),
    }
}

/// A decimal string or number as its unscaled value at `scale`; `None` if
/// it has more digits after the point than the scale keeps (not zeros).
pub(super) fn parse_decimal(json: &Tree<'_>, scale: usize) -> Option<BigInt> {
    let text = match json {
        Tree::Str(s) => s.to_string(),
        Tree::Int(i) => i.to_string(),
        Tree::Uint(u) => u.to_string(),
        Tree::Float(f) => f.to_string(),
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

/// What one building of a value goes by.
struct Cx {
    /// Whether a field the record lacks is refused (or left out).
    strict: bool,
    /// Tries left.
    budget: Cell<usize>,
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

fn describe(json: &Tree<'_>) -> String {
    let text = serde_json::to_string(json).unwrap_or_default();
    if text.len() > 40 {
        format!("{}…", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}
