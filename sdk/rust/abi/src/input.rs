//! Input batches: the records a transform sees.

use crate::LayoutError;
use crate::record::{Headers, Record};
use crate::wire::{self, ABSENT, INPUT_SPAN, Words, as_words, from_words};

/// How Kafka set a record's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum TimestampType {
    #[default]
    NotAvailable,
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    fn to_wire(self) -> i64 {
        match self {
            TimestampType::NotAvailable => 0,
            TimestampType::CreateTime => 1,
            TimestampType::LogAppendTime => 2,
        }
    }

    fn from_wire(v: i64) -> Result<Self, LayoutError> {
        match v {
            0 => Ok(TimestampType::NotAvailable),
            1 => Ok(TimestampType::CreateTime),
            2 => Ok(TimestampType::LogAppendTime),
            _ => Err(LayoutError::TimestampType),
        }
    }
}

/// Bytes `data[start .. start + len]` of a batch, or absent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    pub(crate) const NONE: Span = Span {
        start: 0,
        len: ABSENT,
    };

    pub(crate) fn resolve(self, data: &[u8]) -> Result<Option<&[u8]>, LayoutError> {
        if self.len == ABSENT {
            return Ok(None);
        }
        let start = self.start as usize;
        start
            .checked_add(self.len as usize)
            .and_then(|end| data.get(start..end))
            .map(Some)
            .ok_or(LayoutError::SpanOutOfBounds)
    }

    /// The bytes of a span already checked against `data`.
    pub(crate) fn read(self, data: &[u8]) -> Option<&[u8]> {
        self.resolve(data).unwrap_or(None)
    }
}

/// A header in the wire's layout: name span, value span.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderEntry {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

impl HeaderEntry {
    fn check(&self, data: &[u8]) -> Result<(), LayoutError> {
        self.name.resolve(data)?;
        self.value.resolve(data)?;
        Ok(())
    }
}

/// A record's spans and place in the wire's layout: key span, value span,
/// first header, header count, topic index, partition.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordEntry {
    key: Span,
    value: Span,
    headers_start: u32,
    headers_len: u32,
    topic: u32,
    partition: i32,
}

/// A record's position in the wire's layout: timestamp, timestamp type
/// (its wire code, valid in every batch), offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    timestamp: i64,
    timestamp_type: i64,
    offset: i64,
}

// SAFETY: each is `repr(C)` of exactly `N` fields of `Word`'s size and
// alignment (32-bit integers, or 64-bit ones), hence no padding, and every
// bit pattern is a value.
unsafe impl Words for HeaderEntry {
    type Word = u32;
    const N: usize = wire::HEADER;
}
unsafe impl Words for RecordEntry {
    type Word = u32;
    const N: usize = wire::RECORD;
}
unsafe impl Words for Position {
    type Word = i64;
    const N: usize = wire::POSITION;
}

/// An input batch in the flat layout.
///
/// Always valid: every span lies in `data`, every header range in the
/// header list and every topic index names a topic, however the batch was
/// made. Reading its records cannot fail. Header names are UTF-8 in every
/// batch built by [`Batch::push_parts`]; one read from the wire whose name
/// is not reads it as empty (checking every name of every batch costs the
/// flat call more than a third of its time).
///
/// The index is held in its wire layout, so a host lends it to the guest
/// as it is ([`Batch::index`]) and a guest takes it with one copy.
#[derive(Clone, Debug)]
pub struct Batch {
    data: Vec<u8>,
    records: Vec<RecordEntry>,
    positions: Vec<Position>,
    headers: Vec<HeaderEntry>,
    topics: Vec<String>,
    /// Every header name is UTF-8: the batch was built by `push_parts`.
    names_utf8: bool,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            data: Vec::new(),
            records: Vec::new(),
            positions: Vec::new(),
            headers: Vec::new(),
            topics: Vec::new(),
            names_utf8: true,
        }
    }
}

/// Equal batches hold the same records, however they were made.
impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        (
            &self.data,
            &self.records,
            &self.positions,
            &self.headers,
            &self.topics,
        ) == (
            &other.data,
            &other.records,
            &other.positions,
            &other.headers,
            &other.topics,
        )
    }
}

impl Eq for Batch {}

/// The scalar parts of a record, for [`Batch::push_parts`].
#[derive(Clone, Copy, Debug)]
pub struct RecordParts<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The bytes of every key, value and header, as laid out.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of keys, values and headers held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// The topics the records name, each once.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.records.clear();
        self.positions.clear();
        self.headers.clear();
        self.topics.clear();
        self.names_utf8 = true;
    }

    /// The header entries of record `index` if every header name of the
    /// batch is known to be UTF-8 (it was built record by record).
    pub(crate) fn utf8_headers_of(&self, index: usize) -> Option<&[HeaderEntry]> {
        let entry = self.records.get(index).filter(|_| self.names_utf8)?;
        let start = entry.headers_start as usize;
        self.headers.get(start..start + entry.headers_len as usize)
    }

    /// Room for `records` more records holding `data` more bytes.
    pub fn reserve(&mut self, records: usize, data: usize) {
        self.records.reserve(records);
        self.positions.reserve(records);
        self.data.reserve(data);
    }

    /// Appends a copy of `record`.
    pub fn push(&mut self, record: &Record<'_>) -> Result<(), LayoutError> {
        self.push_parts(
            RecordParts {
                key: record.key(),
                value: record.value(),
                timestamp: record.timestamp(),
                timestamp_type: record.timestamp_type(),
                topic: record.topic(),
                partition: record.partition(),
                offset: record.offset(),
            },
            record.headers().iter(),
        )
    }

    /// Appends a record given by its parts; headers are copied in order.
    /// On error (the data would pass 2 GiB) the batch is left as it was.
    pub fn push_parts<'h>(
        &mut self,
        parts: RecordParts<'_>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Result<(), LayoutError> {
        let mark = (self.data.len(), self.headers.len());
        let entry = self.append(parts, headers);
        match entry {
            Ok(entry) => {
                self.records.push(entry);
                self.positions.push(Position {
                    timestamp: parts.timestamp,
                    timestamp_type: parts.timestamp_type.to_wire(),
                    offset: parts.offset,
                });
                Ok(())
            }
            Err(e) => {
                self.data.truncate(mark.0);
                self.headers.truncate(mark.1);
                Err(e)
            }
        }
    }

    fn append<'h>(
        &mut self,
        parts: RecordParts<'_>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Result<RecordEntry, LayoutError> {
        let key = append(&mut self.data, parts.key)?;
        let value = append(&mut self.data, parts.value)?;
        let headers_start = self.headers.len() as u32;
        for (name, value) in headers {
            let name = append(&mut self.data, Some(name.as_bytes()))?;
            let value = append(&mut self.data, value)?;
            self.headers.push(HeaderEntry { name, value });
        }
        Ok(RecordEntry {
            key,
            value,
            headers_start,
            headers_len: self.headers.len() as u32 - headers_start,
            topic: intern(&mut self.topics, parts.topic),
            partition: parts.partition,
        })
    }

    /// The record at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        Some(self.record(self.records.get(index)?, self.positions.get(index)?))
    }

    /// Every record, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> + '_ {
        self.records
            .iter()
            .zip(&self.positions)
            .map(|(e, p)| self.record(e, p))
    }

    fn record(&self, entry: &RecordEntry, position: &Position) -> Record<'_> {
        let start = entry.headers_start as usize;
        let headers = self
            .headers
            .get(start..start + entry.headers_len as usize)
            .unwrap_or_default();
        Record {
            key: entry.key.read(&self.data),
            value: entry.value.read(&self.data),
            headers: Headers {
                entries: headers,
                data: &self.data,
            },
            timestamp: position.timestamp,
            timestamp_type: TimestampType::from_wire(position.timestamp_type).unwrap_or_default(),
            topic: self
                .topics
                .get(entry.topic as usize)
                .map_or("", String::as_str),
            partition: entry.partition,
            offset: position.offset,
        }
    }

    /// The index in wire form, borrowed: what a host gives the guest.
    pub fn index(&self) -> WireIndex<'_> {
        WireIndex {
            records: as_words(&self.records),
            positions: as_words(&self.positions),
            headers: as_words(&self.headers),
        }
    }

    /// Writes this batch's index in wire form into `records`, `positions`
    /// and `headers` (cleared first).
    pub fn encode_index(
        &self,
        records: &mut Vec<u32>,
        positions: &mut Vec<i64>,
        headers: &mut Vec<u32>,
    ) {
        let index = self.index();
        records.clear();
        records.extend_from_slice(index.records);
        positions.clear();
        positions.extend_from_slice(index.positions);
        headers.clear();
        headers.extend_from_slice(index.headers);
    }

    /// A batch from its wire form, checked whole: every span, header range
    /// and topic index.
    pub fn from_wire(
        data: Vec<u8>,
        records: &[u32],
        positions: &[i64],
        headers: &[u32],
        topics: Vec<String>,
    ) -> Result<Batch, LayoutError> {
        if data.len() >= INPUT_SPAN as usize {
            return Err(LayoutError::BatchTooLarge);
        }
        let records: Vec<RecordEntry> = from_words(records)?;
        let positions: Vec<Position> = from_words(positions)?;
        let headers: Vec<HeaderEntry> = from_words(headers)?;
        if positions.len() != records.len() {
            return Err(LayoutError::IndexLength);
        }
        for h in &headers {
            h.check(&data)?;
        }
        for (entry, position) in records.iter().zip(&positions) {
            entry.key.resolve(&data)?;
            entry.value.resolve(&data)?;
            let start = entry.headers_start as usize;
            start
                .checked_add(entry.headers_len as usize)
                .filter(|&end| end <= headers.len())
                .ok_or(LayoutError::HeadersOutOfBounds)?;
            if entry.topic as usize >= topics.len() {
                return Err(LayoutError::TopicOutOfBounds);
            }
            TimestampType::from_wire(position.timestamp_type)?;
        }
        Ok(Batch {
            data,
            records,
            positions,
            headers,
            topics,
            names_utf8: false,
        })
    }
}

/// A batch's index in wire form, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct WireIndex<'a> {
    /// `wire::RECORD` u32s per record.
    pub records: &'a [u32],
    /// `wire::POSITION` s64s per record.
    pub positions: &'a [i64],
    /// `wire::HEADER` u32s per header.
    pub headers: &'a [u32],
}

fn append(data: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<Span, LayoutError> {
    let Some(bytes) = bytes else {
        return Ok(Span::NONE);
    };
    let start = u32::try_from(data.len()).map_err(|_| LayoutError::BatchTooLarge)?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&l| start.checked_add(l).is_some_and(|end| end < INPUT_SPAN))
        .ok_or(LayoutError::BatchTooLarge)?;
    data.extend_from_slice(bytes);
    Ok(Span { start, len })
}

pub(crate) fn intern(topics: &mut Vec<String>, topic: &str) -> u32 {
    match topics.iter().position(|t| t == topic) {
        Some(i) => i as u32,
        None => {
            topics.push(topic.to_owned());
            topics.len() as u32 - 1
        }
    }
}
