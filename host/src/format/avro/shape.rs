//! A record's shape, checked before apache-avro reads it. apache-avro
//! 0.21 trusts the bytes: it recurses once per level of a recursive schema
//! with no bound (a 100 kB record nested 100,000 deep overflows the stack
//! and aborts the process), allocates what a length or an item count
//! claims before reading it (six bytes claiming 2^28 nulls build a 13 GB
//! tree), and reads a string cut short as null. One such record would kill
//! the host, and again after every restart, as it is read again.
//!
//! This walk reads only lengths, counts and union branches, allocates
//! nothing, and refuses a record that nests deeper than [`MAX_DEPTH`] (an
//! output nested deeper is refused when it is built),
//! claims more bytes than it has, or more array items and map entries
//! than its bytes could hold (items with no bytes of their own, such as
//! nulls, are allowed [`FREE_ITEMS`] more).

use super::AvroSchema;
use apache_avro::Schema;

/// Records, arrays, maps and unions inside each other, read or written.
pub const MAX_DEPTH: usize = 64;

/// The stack apache-avro and this module may need for a record nested
/// [`MAX_DEPTH`] deep: measured at about 4 KiB a level optimized and 60 KiB
/// unoptimized, with room to spare.
const STACK: usize = if cfg!(debug_assertions) {
    8 << 20
} else {
    1 << 20
};

/// `f`, run with at least [`STACK`] of stack left (on a new one if the
/// caller's thread has less).
pub(super) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK, 2 * STACK, f)
}

/// Whether `schema` is a level of nesting: a record, array, map or union.
pub(super) fn nests(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::Record(_) | Schema::Array(_) | Schema::Map(_) | Schema::Union(_)
    )
}

/// Why a record nested past [`MAX_DEPTH`] is refused.
pub(super) fn too_deep() -> String {
    format!("nested deeper than {MAX_DEPTH} records, arrays, maps and unions")
}

/// Array items and map entries a record may have beyond one per byte.
pub const FREE_ITEMS: u64 = 4096;

struct Walk<'b> {
    bytes: &'b [u8],
    /// Items and entries still allowed.
    items: u64,
}

impl AvroSchema {
    /// Whether `bytes` is a datum of this schema apache-avro can be given;
    /// why not, if not.
    pub(super) fn check_shape(&self, bytes: &[u8]) -> Result<(), String> {
        let mut walk = Walk {
            bytes,
            items: bytes.len() as u64 + FREE_ITEMS,
        };
        self.walk(&self.schema, &mut walk, 0)
    }

    fn walk(&self, schema: &Schema, w: &mut Walk<'_>, depth: usize) -> Result<(), String> {
        let schema = self.named(schema)?;
        if depth >= MAX_DEPTH && nests(schema) {
            return Err(too_deep());
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => w.skip(1, "a boolean"),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => w.long().map(drop),
            Schema::Float => w.skip(4, "a float"),
            Schema::Double => w.skip(8, "a double"),
            Schema::Duration => w.skip(12, "a duration"),
            Schema::Fixed(f) => w.skip(f.size, "a fixed"),
            Schema::Bytes | Schema::String | Schema::BigDecimal | Schema::Uuid => w.sized(),
            Schema::Decimal(d) => self.walk(&d.inner, w, depth),
            Schema::Record(r) => r
                .fields
                .iter()
                .try_for_each(|f| self.walk(&f.schema, w, depth + 1)),
            Schema::Union(u) => {
                let i = w.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {i} is not in its schema"))?;
                self.walk(branch, w, depth + 1)
            }
            Schema::Array(a) => w.blocks(|w| self.walk(&a.items, w, depth + 1)),
            Schema::Map(m) => w.blocks(|w| {
                w.sized()?;
                self.walk(&m.types, w, depth + 1)
            }),
            Schema::Ref { name } => Err(format!("unresolved reference {}", name.fullname(None))),
        }
    }
}

impl Walk<'_> {
    /// A zig-zag varint, as Avro writes ints and longs.
    fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for (i, &b) in self.bytes.iter().take(10).enumerate() {
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("an int or long is cut short or longer than 10 bytes".into())
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), String> {
        if n > self.bytes.len() {
            return Err(format!(
                "{what} of {n} bytes is cut short ({} left)",
                self.bytes.len()
            ));
        }
        self.bytes = &self.bytes[n..];
        Ok(())
    }

    /// Bytes or a string: a length, then that many bytes.
    fn sized(&mut self) -> Result<(), String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("a length of {n}"))?;
        self.skip(n, "bytes or a string")
    }

    /// An array's or a map's blocks: a count (negative: then a byte size),
    /// that many items, until a count of 0.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = match self.long()? {
                0 => return Ok(()),
                n if n < 0 => {
                    self.long()?;
                    n.unsigned_abs()
                }
                n => n as u64,
            };
            if count > self.items {
                return Err(format!(
                    "a block claims {count} items, more than the record's {} bytes could hold",
                    self.bytes.len()
                ));
            }
            self.items -= count;
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}
