//! The flat batch layout of `wasmpipe:transform/flat-transform`, in plain Rust.
//!
//! One byte buffer holds every key, value and header of a batch; fixed-size
//! entries index it. The host builds input batches and reads output batches
//! with this module, and the SDK does the opposite inside the plugin, so both
//! sides share one definition of the layout. Nothing here depends on wasm.

use crate::record::{Headers, Output, OutputHeaders, Record};
use std::fmt;

/// `len` of a span that stands for an absent value (null key, tombstone).
pub const ABSENT: u32 = u32::MAX;

/// How Kafka set a record's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum TimestampType {
    #[default]
    NotAvailable,
    CreateTime,
    LogAppendTime,
}

/// Bytes `data[start .. start + len]` of an input batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub const NONE: Span = Span {
        start: 0,
        len: ABSENT,
    };

    fn resolve(self, data: &[u8]) -> Result<Option<&[u8]>, LayoutError> {
        if self.len == ABSENT {
            return Ok(None);
        }
        let start = self.start as usize;
        data.get(start..start + self.len as usize)
            .map(Some)
            .ok_or(LayoutError::SpanOutOfBounds)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderEntry {
    pub name: Span,
    pub value: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    pub key: Span,
    pub value: Span,
    pub headers_start: u32,
    pub headers_len: u32,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub topic: u32,
    pub partition: i32,
    pub offset: i64,
}

/// The batch was not laid out as the contract says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    SpanOutOfBounds,
    HeadersOutOfBounds,
    HeaderNameNotUtf8,
    TopicOutOfBounds,
    SourceOutOfOrder,
    BatchTooLarge,
    IndexLength,
    TimestampType,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutError::SpanOutOfBounds => "a byte span points outside the batch data",
            LayoutError::HeadersOutOfBounds => "a header range points outside the header list",
            LayoutError::HeaderNameNotUtf8 => "a header name is not UTF-8",
            LayoutError::TopicOutOfBounds => "a topic index points outside the topic list",
            LayoutError::SourceOutOfOrder => {
                "an output names a source record that does not exist or is out of order"
            }
            LayoutError::BatchTooLarge => "the batch exceeds 2 GiB of data",
            LayoutError::IndexLength => "an index list's length is not a whole number of entries",
            LayoutError::TimestampType => "a timestamp type is not 0, 1 or 2",
        })
    }
}

impl std::error::Error for LayoutError {}

/// An input batch: the records a transform sees, in the flat layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub data: Vec<u8>,
    pub records: Vec<RecordEntry>,
    pub headers: Vec<HeaderEntry>,
    pub topics: Vec<String>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of keys, values and headers held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.records.clear();
        self.headers.clear();
        self.topics.clear();
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
    pub fn push_parts<'h>(
        &mut self,
        parts: RecordParts<'_>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Result<(), LayoutError> {
        let key = append(&mut self.data, parts.key)?;
        let value = append(&mut self.data, parts.value)?;
        let headers_start = self.headers.len() as u32;
        for (name, value) in headers {
            let name = append(&mut self.data, Some(name.as_bytes()))?;
            let value = append(&mut self.data, value)?;
            self.headers.push(HeaderEntry { name, value });
        }
        let topic = intern(&mut self.topics, parts.topic);
        self.records.push(RecordEntry {
            key,
            value,
            headers_start,
            headers_len: self.headers.len() as u32 - headers_start,
            timestamp: parts.timestamp,
            timestamp_type: parts.timestamp_type,
            topic,
            partition: parts.partition,
            offset: parts.offset,
        });
        Ok(())
    }

    /// The record at `index`, checked against the layout.
    pub fn get(&self, index: usize) -> Result<Record<'_>, LayoutError> {
        let entry = self
            .records
            .get(index)
            .ok_or(LayoutError::SourceOutOfOrder)?;
        let start = entry.headers_start as usize;
        let headers = self
            .headers
            .get(start..start + entry.headers_len as usize)
            .ok_or(LayoutError::HeadersOutOfBounds)?;
        // Header names are UTF-8 in every batch the host builds; a name
        // that is not reads as empty (see `Headers::iter`).
        for h in headers {
            h.name.resolve(&self.data)?;
            h.value.resolve(&self.data)?;
        }
        Ok(Record {
            key: entry.key.resolve(&self.data)?,
            value: entry.value.resolve(&self.data)?,
            headers: Headers {
                entries: headers,
                data: &self.data,
            },
            timestamp: entry.timestamp,
            timestamp_type: entry.timestamp_type,
            topic: self
                .topics
                .get(entry.topic as usize)
                .ok_or(LayoutError::TopicOutOfBounds)?,
            partition: entry.partition,
            offset: entry.offset,
        })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Result<Record<'_>, LayoutError>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

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

fn append(data: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<Span, LayoutError> {
    let Some(bytes) = bytes else {
        return Ok(Span::NONE);
    };
    let start = u32::try_from(data.len()).map_err(|_| LayoutError::BatchTooLarge)?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&l| start.checked_add(l).is_some_and(|end| end < INPUT_BIT))
        .ok_or(LayoutError::BatchTooLarge)?;
    data.extend_from_slice(bytes);
    Ok(Span { start, len })
}

fn intern(topics: &mut Vec<String>, topic: &str) -> u32 {
    match topics.iter().position(|t| t == topic) {
        Some(i) => i as u32,
        None => {
            topics.push(topic.to_owned());
            topics.len() as u32 - 1
        }
    }
}

/// Bytes of an output: in the input batch's data (`input`) or the output's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutSpan {
    pub input: bool,
    pub start: u32,
    pub len: u32,
}

impl OutSpan {
    pub const NONE: OutSpan = OutSpan {
        input: false,
        start: 0,
        len: ABSENT,
    };

    fn resolve<'a>(
        self,
        input: &'a [u8],
        output: &'a [u8],
    ) -> Result<Option<&'a [u8]>, LayoutError> {
        let span = Span {
            start: self.start,
            len: self.len,
        };
        span.resolve(if self.input { input } else { output })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutHeader {
    pub name: OutSpan,
    pub value: OutSpan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutEntry {
    pub source: u32,
    pub key: OutSpan,
    pub value: OutSpan,
    pub headers_start: u32,
    pub headers_len: u32,
    pub timestamp: Option<i64>,
    /// Index into the output's `topics`, or -1 for the pipeline's output topic.
    pub topic: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub source: u32,
    pub message: String,
}

/// A transform's result for one input batch, in the flat layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputBatch {
    pub data: Vec<u8>,
    pub records: Vec<OutEntry>,
    pub headers: Vec<OutHeader>,
    pub topics: Vec<String>,
    pub errors: Vec<RecordError>,
}

/// One output record read back from an [`OutputBatch`].
#[derive(Clone, Copy, Debug)]
pub struct OutRecord<'a> {
    pub source: u32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: OutHeaders<'a>,
    pub timestamp: Option<i64>,
    pub topic: Option<&'a str>,
}

/// The headers of an [`OutRecord`], checked when it was read.
#[derive(Clone, Copy, Debug)]
pub struct OutHeaders<'a> {
    entries: &'a [OutHeader],
    input: &'a [u8],
    output: &'a [u8],
}

impl<'a> OutHeaders<'a> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + use<'a> {
        let (input, output) = (self.input, self.output);
        self.entries.iter().map(move |h| {
            // Checked by `OutputBatch::get`; an unchecked entry reads as empty.
            let name = h
                .name
                .resolve(input, output)
                .ok()
                .flatten()
                .unwrap_or_default();
            let value = h.value.resolve(input, output).ok().flatten();
            (std::str::from_utf8(name).unwrap_or_default(), value)
        })
    }
}

impl OutputBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Checks everything a plugin wrote against the layout and against the
    /// input batch it answered: spans in bounds, header names UTF-8, sources
    /// existing and in input order, topics present.
    pub fn validate(&self, input: &Batch) -> Result<(), LayoutError> {
        let (in_data, out_data) = (input.data.as_slice(), self.data.as_slice());
        for h in &self.headers {
            let name = h.name.resolve(in_data, out_data)?.unwrap_or_default();
            std::str::from_utf8(name).map_err(|_| LayoutError::HeaderNameNotUtf8)?;
            h.value.resolve(in_data, out_data)?;
        }
        let mut last = 0;
        for entry in &self.records {
            if entry.source < last || entry.source as usize >= input.len() {
                return Err(LayoutError::SourceOutOfOrder);
            }
            last = entry.source;
            entry.key.resolve(in_data, out_data)?;
            entry.value.resolve(in_data, out_data)?;
            self.header_entries(entry)?;
            self.topic(entry)?;
        }
        if self.errors.iter().any(|e| e.source as usize >= input.len()) {
            return Err(LayoutError::SourceOutOfOrder);
        }
        Ok(())
    }

    /// The output record at `index`, its key and value spans checked. Its
    /// headers are checked by [`OutputBatch::validate`]; read from a batch
    /// that was not, a header whose span is out of bounds or whose name is
    /// not UTF-8 reads as empty.
    pub fn get<'a>(&'a self, index: usize, input: &'a Batch) -> Result<OutRecord<'a>, LayoutError> {
        let entry = self
            .records
            .get(index)
            .ok_or(LayoutError::SourceOutOfOrder)?;
        let (in_data, out_data) = (input.data.as_slice(), self.data.as_slice());
        Ok(OutRecord {
            source: entry.source,
            key: entry.key.resolve(in_data, out_data)?,
            value: entry.value.resolve(in_data, out_data)?,
            headers: OutHeaders {
                entries: self.header_entries(entry)?,
                input: in_data,
                output: out_data,
            },
            timestamp: entry.timestamp,
            topic: self.topic(entry)?,
        })
    }

    fn header_entries(&self, entry: &OutEntry) -> Result<&[OutHeader], LayoutError> {
        let start = entry.headers_start as usize;
        self.headers
            .get(start..start + entry.headers_len as usize)
            .ok_or(LayoutError::HeadersOutOfBounds)
    }

    fn topic(&self, entry: &OutEntry) -> Result<Option<&str>, LayoutError> {
        match entry.topic {
            -1 => Ok(None),
            t => usize::try_from(t)
                .ok()
                .and_then(|t| self.topics.get(t))
                .map(|t| Some(t.as_str()))
                .ok_or(LayoutError::TopicOutOfBounds),
        }
    }
}

/// Where a transform writes its outputs for one batch.
///
/// Bytes that already live in the input batch (a key passed through, a header
/// kept) are recorded as references to it instead of being copied.
pub struct Outputs {
    out: OutputBatch,
    input: std::ops::Range<usize>,
    source: u32,
    mark: (usize, usize, usize),
}

impl Outputs {
    /// Outputs answering a batch whose data is `input`.
    pub fn new(input: &[u8]) -> Outputs {
        Outputs {
            out: OutputBatch::default(),
            input: input.as_ptr_range().start as usize..input.as_ptr_range().end as usize,
            source: 0,
            mark: (0, 0, 0),
        }
    }

    /// Emits one output record for the record being transformed.
    pub fn emit(&mut self, output: &Output<'_>) {
        let key = self.span(output.key);
        let value = self.span(output.value);
        let headers_start = self.out.headers.len() as u32;
        match &output.headers {
            // Headers of a record of this very batch: their spans already
            // address the input's data, so they are referenced as they are.
            OutputHeaders::Input(headers) if self.is_input(headers.data) => {
                let input = |s: Span| match s.len {
                    ABSENT => OutSpan::NONE,
                    len => OutSpan {
                        input: true,
                        start: s.start,
                        len,
                    },
                };
                self.out
                    .headers
                    .extend(headers.entries.iter().map(|h| OutHeader {
                        name: input(h.name),
                        value: input(h.value),
                    }));
            }
            OutputHeaders::Input(headers) => {
                for (name, value) in headers.iter() {
                    self.header(name, value);
                }
            }
            OutputHeaders::List(list) => {
                for &(name, value) in list {
                    self.header(name, value);
                }
            }
        }
        let topic = match output.topic {
            None => -1,
            Some(t) => intern(&mut self.out.topics, t) as i32,
        };
        self.out.records.push(OutEntry {
            source: self.source,
            key,
            value,
            headers_start,
            headers_len: self.out.headers.len() as u32 - headers_start,
            timestamp: output.timestamp,
            topic,
        });
    }

    /// Emits `record` unchanged.
    pub fn forward(&mut self, record: &Record<'_>) {
        self.emit(&record.to_output());
    }

    /// How many outputs were emitted so far, in all.
    pub fn len(&self) -> usize {
        self.out.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.records.is_empty()
    }

    fn is_input(&self, data: &[u8]) -> bool {
        let range = data.as_ptr_range();
        range.start as usize == self.input.start && range.end as usize == self.input.end
    }

    fn header(&mut self, name: &str, value: Option<&[u8]>) {
        let name = self.span(Some(name.as_bytes()));
        let value = self.span(value);
        self.out.headers.push(OutHeader { name, value });
    }

    fn span(&mut self, bytes: Option<&[u8]>) -> OutSpan {
        let Some(bytes) = bytes else {
            return OutSpan::NONE;
        };
        let range = bytes.as_ptr_range();
        let (start, end) = (range.start as usize, range.end as usize);
        if !bytes.is_empty() && self.input.start <= start && end <= self.input.end {
            return OutSpan {
                input: true,
                start: (start - self.input.start) as u32,
                len: bytes.len() as u32,
            };
        }
        let start = self.out.data.len() as u32;
        self.out.data.extend_from_slice(bytes);
        OutSpan {
            input: false,
            start,
            len: bytes.len() as u32,
        }
    }

    /// Starts the outputs of input record `source`.
    pub fn begin(&mut self, source: u32) {
        self.source = source;
        self.mark = (
            self.out.records.len(),
            self.out.headers.len(),
            self.out.data.len(),
        );
    }

    /// Input record `source` failed: drops what it emitted and records why.
    pub fn fail(&mut self, message: String) {
        let (records, headers, data) = self.mark;
        self.out.records.truncate(records);
        self.out.headers.truncate(headers);
        self.out.data.truncate(data);
        self.out.errors.push(RecordError {
            source: self.source,
            message,
        });
    }

    pub fn finish(self) -> OutputBatch {
        self.out
    }
}

/// The wire form of `flat-transform`: index entries as runs of integers.
pub mod wire {
    /// u32s per input record: key span, value span, first header, header
    /// count, topic index, partition.
    pub const RECORD: usize = 8;
    /// s64s per input record: timestamp, timestamp type, offset.
    pub const POSITION: usize = 3;
    /// u32s per header: name span, value span.
    pub const HEADER: usize = 4;
    /// u32s per output: source, key span, value span, first header, header
    /// count, topic index (or `NO_TOPIC`).
    pub const OUTPUT: usize = 8;
    /// An output's topic when it goes to the pipeline's output topic.
    pub const NO_TOPIC: u32 = u32::MAX;
    /// An output's timestamp when it keeps its input's.
    pub const KEEP_TIMESTAMP: i64 = i64::MIN;
}

/// Bit 31 of an output span's start: the bytes are in the input's data.
const INPUT_BIT: u32 = 1 << 31;

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

fn entries<T, const N: usize>(list: &[T]) -> Result<std::slice::ChunksExact<'_, T>, LayoutError> {
    if !list.len().is_multiple_of(N) {
        return Err(LayoutError::IndexLength);
    }
    Ok(list.chunks_exact(N))
}

fn span(s: &[u32]) -> Span {
    Span {
        start: s[0],
        len: s[1],
    }
}

fn out_span(start: u32, len: u32) -> OutSpan {
    OutSpan {
        input: start & INPUT_BIT != 0,
        start: start & !INPUT_BIT,
        len,
    }
}

fn out_span_wire(s: OutSpan) -> [u32; 2] {
    [
        if s.input {
            s.start | INPUT_BIT
        } else {
            s.start
        },
        s.len,
    ]
}

impl Batch {
    /// Writes this batch's index in wire form into `records`, `positions`
    /// and `headers` (cleared first).
    pub fn encode_index(
        &self,
        records: &mut Vec<u32>,
        positions: &mut Vec<i64>,
        headers: &mut Vec<u32>,
    ) {
        records.clear();
        positions.clear();
        headers.clear();
        records.reserve(self.records.len() * wire::RECORD);
        positions.reserve(self.records.len() * wire::POSITION);
        for r in &self.records {
            records.extend_from_slice(&[
                r.key.start,
                r.key.len,
                r.value.start,
                r.value.len,
                r.headers_start,
                r.headers_len,
                r.topic,
                r.partition as u32,
            ]);
            positions.extend_from_slice(&[r.timestamp, r.timestamp_type.to_wire(), r.offset]);
        }
        headers.reserve(self.headers.len() * wire::HEADER);
        for h in &self.headers {
            headers.extend_from_slice(&[h.name.start, h.name.len, h.value.start, h.value.len]);
        }
    }

    /// A batch from its wire form. Spans are checked when records are read.
    pub fn from_wire(
        data: Vec<u8>,
        records: &[u32],
        positions: &[i64],
        headers: &[u32],
        topics: Vec<String>,
    ) -> Result<Batch, LayoutError> {
        let records: Vec<RecordEntry> = entries::<_, { wire::RECORD }>(records)?
            .zip(entries::<_, { wire::POSITION }>(positions)?)
            .map(|(r, p)| {
                Ok(RecordEntry {
                    key: span(&r[0..2]),
                    value: span(&r[2..4]),
                    headers_start: r[4],
                    headers_len: r[5],
                    topic: r[6],
                    partition: r[7] as i32,
                    timestamp: p[0],
                    timestamp_type: TimestampType::from_wire(p[1])?,
                    offset: p[2],
                })
            })
            .collect::<Result<_, LayoutError>>()?;
        if positions.len() / wire::POSITION != records.len() {
            return Err(LayoutError::IndexLength);
        }
        let headers = entries::<_, { wire::HEADER }>(headers)?
            .map(|h| HeaderEntry {
                name: span(&h[0..2]),
                value: span(&h[2..4]),
            })
            .collect();
        Ok(Batch {
            data,
            records,
            headers,
            topics,
        })
    }
}

impl OutputBatch {
    /// Writes the outputs' index in wire form (vectors cleared first).
    pub fn encode_index(
        &self,
        records: &mut Vec<u32>,
        timestamps: &mut Vec<i64>,
        headers: &mut Vec<u32>,
    ) {
        records.clear();
        timestamps.clear();
        headers.clear();
        records.reserve(self.records.len() * wire::OUTPUT);
        for r in &self.records {
            let [ks, kl] = out_span_wire(r.key);
            let [vs, vl] = out_span_wire(r.value);
            let topic = u32::try_from(r.topic).unwrap_or(wire::NO_TOPIC);
            records.extend_from_slice(&[
                r.source,
                ks,
                kl,
                vs,
                vl,
                r.headers_start,
                r.headers_len,
                topic,
            ]);
            timestamps.push(r.timestamp.unwrap_or(wire::KEEP_TIMESTAMP));
        }
        headers.reserve(self.headers.len() * wire::HEADER);
        for h in &self.headers {
            let [ns, nl] = out_span_wire(h.name);
            let [vs, vl] = out_span_wire(h.value);
            headers.extend_from_slice(&[ns, nl, vs, vl]);
        }
    }

    /// Outputs from their wire form; check them with [`OutputBatch::validate`].
    pub fn from_wire(
        data: Vec<u8>,
        records: &[u32],
        timestamps: &[i64],
        headers: &[u32],
        topics: Vec<String>,
        errors: Vec<RecordError>,
    ) -> Result<OutputBatch, LayoutError> {
        if timestamps.len() * wire::OUTPUT != records.len() {
            return Err(LayoutError::IndexLength);
        }
        let records = entries::<_, { wire::OUTPUT }>(records)?
            .zip(timestamps)
            .map(|(r, &t)| OutEntry {
                source: r[0],
                key: out_span(r[1], r[2]),
                value: out_span(r[3], r[4]),
                headers_start: r[5],
                headers_len: r[6],
                topic: if r[7] == wire::NO_TOPIC {
                    -1
                } else {
                    i32::try_from(r[7]).unwrap_or(i32::MAX)
                },
                timestamp: (t != wire::KEEP_TIMESTAMP).then_some(t),
            })
            .collect();
        let headers = entries::<_, { wire::HEADER }>(headers)?
            .map(|h| OutHeader {
                name: out_span(h[0], h[1]),
                value: out_span(h[2], h[3]),
            })
            .collect();
        Ok(OutputBatch {
            data,
            records,
            headers,
            topics,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let mut b = Batch::default();
        let parts = |key, value, offset| RecordParts {
            key,
            value,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            topic: "in",
            partition: 2,
            offset,
        };
        b.push_parts(
            parts(Some(b"k1"), Some(b"v1"), 7),
            [("a", Some(&b"1"[..])), ("a", None)],
        )
        .unwrap();
        b.push_parts(parts(None, None, 8), []).unwrap();
        b
    }

    #[test]
    fn batch_round_trips_every_field() {
        let b = batch();
        assert_eq!(b.topics, ["in"]);
        let r = b.get(0).unwrap();
        assert_eq!(r.key(), Some(&b"k1"[..]));
        assert_eq!(r.value(), Some(&b"v1"[..]));
        let headers: Vec<_> = r.headers().iter().collect();
        assert_eq!(headers, [("a", Some(&b"1"[..])), ("a", None)]);
        assert_eq!((r.topic(), r.partition(), r.offset()), ("in", 2, 7));
        let t = b.get(1).unwrap();
        assert_eq!((t.key(), t.value(), t.headers().len()), (None, None, 0));
    }

    #[test]
    fn unchanged_bytes_are_referenced_not_copied() {
        let b = batch();
        let mut out = Outputs::new(&b.data);
        out.begin(0);
        let r = b.get(0).unwrap();
        out.emit(&r.to_output().value(Some(b"new")));
        let o = out.finish();
        assert!(o.records[0].key.input);
        assert!(!o.records[0].value.input);
        assert_eq!(o.data, b"new");
        o.validate(&b).unwrap();
        let back = o.get(0, &b).unwrap();
        assert_eq!(
            (back.key, back.value),
            (Some(&b"k1"[..]), Some(&b"new"[..]))
        );
        assert_eq!(back.headers.len(), 2);
    }

    #[test]
    fn a_failed_record_drops_only_its_own_outputs() {
        let b = batch();
        let mut out = Outputs::new(&b.data);
        out.begin(0);
        out.forward(&b.get(0).unwrap());
        out.begin(1);
        out.forward(&b.get(1).unwrap());
        out.emit(&Output::new().value(Some(b"x")));
        out.fail("bad".into());
        let o = out.finish();
        assert_eq!(o.records.len(), 1);
        assert_eq!(
            o.errors,
            [RecordError {
                source: 1,
                message: "bad".into()
            }]
        );
        assert!(o.data.is_empty());
    }

    #[test]
    fn the_wire_form_round_trips() {
        let b = batch();
        let (mut r, mut p, mut h) = (Vec::new(), Vec::new(), Vec::new());
        b.encode_index(&mut r, &mut p, &mut h);
        assert_eq!((r.len(), p.len(), h.len()), (16, 6, 8));
        let back = Batch::from_wire(b.data.clone(), &r, &p, &h, b.topics.clone()).unwrap();
        assert_eq!(back, b);
        assert_eq!(
            Batch::from_wire(vec![], &r[..7], &p, &h, vec![]),
            Err(LayoutError::IndexLength)
        );

        let mut out = Outputs::new(&b.data);
        out.begin(0);
        out.emit(
            &b.get(0)
                .unwrap()
                .to_output()
                .value(Some(b"new"))
                .timestamp(7)
                .topic("t"),
        );
        out.begin(1);
        out.forward(&b.get(1).unwrap());
        let o = out.finish();
        let (mut r, mut t, mut h) = (Vec::new(), Vec::new(), Vec::new());
        o.encode_index(&mut r, &mut t, &mut h);
        let back = OutputBatch::from_wire(
            o.data.clone(),
            &r,
            &t,
            &h,
            o.topics.clone(),
            o.errors.clone(),
        )
        .unwrap();
        assert_eq!(back, o);
        assert!(back.records[0].key.input && back.records[0].headers_len == 2);
        assert_eq!(
            (back.records[0].timestamp, back.records[1].timestamp),
            (Some(7), None)
        );
        assert_eq!((back.records[0].topic, back.records[1].topic), (0, -1));
    }

    #[test]
    fn malformed_outputs_are_refused() {
        let b = batch();
        let mut o = OutputBatch::default();
        let entry = OutEntry {
            source: 0,
            key: OutSpan {
                input: false,
                start: 0,
                len: 5,
            },
            value: OutSpan::NONE,
            headers_start: 0,
            headers_len: 0,
            timestamp: None,
            topic: -1,
        };
        o.records.push(entry);
        assert_eq!(o.validate(&b), Err(LayoutError::SpanOutOfBounds));
        o.records[0] = OutEntry {
            key: OutSpan::NONE,
            source: 9,
            ..entry
        };
        assert_eq!(o.validate(&b), Err(LayoutError::SourceOutOfOrder));
        o.records[0] = OutEntry {
            key: OutSpan::NONE,
            topic: 3,
            ..entry
        };
        assert_eq!(o.validate(&b), Err(LayoutError::TopicOutOfBounds));
        o.records[0] = OutEntry {
            key: OutSpan::NONE,
            headers_len: 1,
            ..entry
        };
        assert_eq!(o.validate(&b), Err(LayoutError::HeadersOutOfBounds));
        let ok = OutEntry {
            key: OutSpan::NONE,
            ..entry
        };
        o.records[0] = OutEntry { source: 1, ..ok };
        o.records.push(ok);
        assert_eq!(o.validate(&b), Err(LayoutError::SourceOutOfOrder));
        o.records = vec![OutEntry {
            headers_len: 1,
            ..ok
        }];
        o.data = vec![0xff, b'v'];
        let byte = |start| OutSpan {
            input: false,
            start,
            len: 1,
        };
        o.headers = vec![OutHeader {
            name: byte(0),
            value: byte(1),
        }];
        assert_eq!(o.validate(&b), Err(LayoutError::HeaderNameNotUtf8));
        o.headers[0] = OutHeader {
            name: byte(1),
            value: byte(2),
        };
        assert_eq!(o.validate(&b), Err(LayoutError::SpanOutOfBounds));
        o.headers[0].value = byte(1);
        assert_eq!(o.validate(&b), Ok(()));
        let h: Vec<_> = o.get(0, &b).unwrap().headers.iter().collect();
        assert_eq!(h, [("v", Some(&b"v"[..]))]);
    }
}
