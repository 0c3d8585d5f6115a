//! A value apache-avro read, written as the plugin's JSON text straight
//! from its tree (no `serde_json::Value` in between), guided by the
//! writer's schema. The mapping is the module's (see its head).

use super::{AvroSchema, decimal_text, latin1};
use apache_avro::Schema;
use apache_avro::schema::DecimalSchema;
use apache_avro::types::Value;
use num_bigint::BigInt;
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};

/// `value`, of `schema` (within `avro`'s names), as JSON.
pub(super) struct Shown<'a> {
    pub avro: &'a AvroSchema,
    pub value: &'a Value,
    pub schema: &'a Schema,
}

impl Shown<'_> {
    fn of<'b>(&'b self, value: &'b Value, schema: &'b Schema) -> Shown<'b> {
        Shown {
            avro: self.avro,
            value,
            schema,
        }
    }
}

impl Serialize for Shown<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let schema = self.avro.named(self.schema).map_err(S::Error::custom)?;
        match (self.value, schema) {
            (Value::Union(i, v), Schema::Union(u)) => {
                let branch = u
                    .variants()
                    .get(*i as usize)
                    .ok_or_else(|| S::Error::custom("union branch out of range"))?;
                self.of(v, branch).serialize(s)
            }
            (Value::Null, _) => s.serialize_unit(),
            (Value::Boolean(b), _) => s.serialize_bool(*b),
            (Value::Int(i) | Value::Date(i) | Value::TimeMillis(i), _) => s.serialize_i32(*i),
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
            ) => s.serialize_i64(*i),
            (Value::Float(f), _) => float(s, f64::from(*f)),
            (Value::Double(f), _) => float(s, *f),
            (Value::Bytes(b) | Value::Fixed(_, b), _) => s.serialize_str(&latin1(b)),
            (Value::String(t) | Value::Enum(_, t), _) => s.serialize_str(t),
            (Value::Uuid(u), _) => s.collect_str(u),
            (Value::Decimal(d), Schema::Decimal(DecimalSchema { scale, .. })) => {
                s.serialize_str(&decimal_text(&BigInt::from(d.clone()), *scale))
            }
            (Value::BigDecimal(d), _) => s.collect_str(d),
            (Value::Duration(d), _) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("months", &u32::from(d.months()))?;
                m.serialize_entry("days", &u32::from(d.days()))?;
                m.serialize_entry("millis", &u32::from(d.millis()))?;
                m.end()
            }
            (Value::Array(items), Schema::Array(a)) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&self.of(v, &a.items))?;
                }
                seq.end()
            }
            (Value::Map(entries), Schema::Map(m)) => {
                // In key order: the same record reads the same every time.
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort_unstable();
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    map.serialize_entry(k, &self.of(&entries[k], &m.types))?;
                }
                map.end()
            }
            (Value::Record(fields), Schema::Record(r)) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for ((name, v), field) in fields.iter().zip(&r.fields) {
                    map.serialize_entry(name, &self.of(v, &field.schema))?;
                }
                map.end()
            }
            (v, schema) => Err(S::Error::custom(format!(
                "an Avro value {v:?} does not match its schema {schema:?}"
            ))),
        }
    }
}

/// A float as a JSON number, or "NaN", "Infinity" or "-Infinity".
fn float<S: Serializer>(s: S, f: f64) -> Result<S::Ok, S::Error> {
    match f {
        f if f.is_finite() => s.serialize_f64(f),
        f if f.is_nan() => s.serialize_str("NaN"),
        f if f > 0.0 => s.serialize_str("Infinity"),
        _ => s.serialize_str("-Infinity"),
    }
}
