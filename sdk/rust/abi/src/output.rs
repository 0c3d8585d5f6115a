//! Output batches: what a transform made of an input batch.

use crate::LayoutError;
use crate::input::{Batch, Span, intern};
use crate::record::{Output, OutputHeaders, Record};
use crate::wire::{self, ABSENT, CollectExact, INPUT_SPAN, entries};

/// Bytes of an output: in the input batch's data (`input`) or the output's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OutSpan {
    input: bool,
    start: u32,
    len: u32,
}

impl OutSpan {
    const NONE: OutSpan = OutSpan {
        input: false,
        start: 0,
        len: ABSENT,
    };

    fn span(self) -> Span {
        Span {
            start: self.start,
            len: self.len,
        }
    }

    fn resolve<'a>(
        self,
        input: &'a [u8],
        output: &'a [u8],
    ) -> Result<Option<&'a [u8]>, LayoutError> {
        self.span().resolve(if self.input { input } else { output })
    }

    /// The bytes of a span already checked.
    fn read<'a>(self, input: &'a [u8], output: &'a [u8]) -> Option<&'a [u8]> {
        self.resolve(input, output).unwrap_or(None)
    }

    fn from_wire(start: u32, len: u32) -> OutSpan {
        OutSpan {
            input: start & INPUT_SPAN != 0,
            start: start & !INPUT_SPAN,
            len,
        }
    }

    fn to_wire(self) -> [u32; 2] {
        let start = if self.input {
            self.start | INPUT_SPAN
        } else {
            self.start
        };
        [start, self.len]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OutHeader {
    name: OutSpan,
    value: OutSpan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OutEntry {
    source: u32,
    key: OutSpan,
    value: OutSpan,
    headers_start: u32,
    headers_len: u32,
    timestamp: Option<i64>,
    /// Index into the output's `topics`; `None` for the pipeline's output topic.
    topic: Option<u32>,
}

/// Input record `source` failed with `message`: it has no outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub source: u32,
    pub message: String,
}

/// The size of the input batch an output batch answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shape {
    records: usize,
    data: usize,
}

impl Shape {
    fn of(batch: &Batch) -> Shape {
        Shape {
            records: batch.len(),
            data: batch.data_len(),
        }
    }
}

/// A transform's result for one input batch, in the flat layout.
///
/// Always valid against the batch it answers: sources exist and come in
/// input order, spans lie in the input's data or the output's, the header
/// names of every output are UTF-8 and topic indexes name a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputBatch {
    data: Vec<u8>,
    records: Vec<OutEntry>,
    headers: Vec<OutHeader>,
    topics: Vec<String>,
    errors: Vec<RecordError>,
    input: Shape,
}

/// One output record read from an [`OutputBatch`].
#[derive(Clone, Copy, Debug)]
pub struct OutRecord<'a> {
    /// Index of the input record it was made from.
    pub source: u32,
    /// That input record.
    pub input: Record<'a>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: OutHeaders<'a>,
    /// As the transform set it; `None` keeps the input's.
    pub timestamp: Option<i64>,
    /// A topic the transform routed it to; `None` for the pipeline's output.
    pub topic: Option<&'a str>,
}

/// The headers of an [`OutRecord`].
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
            let name = h.name.read(input, output).unwrap_or_default();
            let value = h.value.read(input, output);
            (std::str::from_utf8(name).unwrap_or_default(), value)
        })
    }
}

impl OutputBatch {
    /// Output records, over every input record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes the transform wrote (bytes it kept from the input not counted).
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// The input records that failed, in input order.
    pub fn errors(&self) -> &[RecordError] {
        &self.errors
    }

    /// The output records, in order, read against `input`.
    ///
    /// # Panics
    /// If `input` is not the batch this one answers (its record count or
    /// data length differ).
    pub fn records<'a>(
        &'a self,
        input: &'a Batch,
    ) -> impl ExactSizeIterator<Item = OutRecord<'a>> + 'a {
        assert_eq!(
            Shape::of(input),
            self.input,
            "an output batch read against a batch it does not answer"
        );
        self.records.iter().map(move |e| self.record(e, input))
    }

    fn record<'a>(&'a self, entry: &OutEntry, input: &'a Batch) -> OutRecord<'a> {
        let (in_data, out_data) = (input.data(), self.data.as_slice());
        let start = entry.headers_start as usize;
        OutRecord {
            source: entry.source,
            input: input.get(entry.source as usize).unwrap_or_default(),
            key: entry.key.read(in_data, out_data),
            value: entry.value.read(in_data, out_data),
            headers: OutHeaders {
                entries: self
                    .headers
                    .get(start..start + entry.headers_len as usize)
                    .unwrap_or_default(),
                input: in_data,
                output: out_data,
            },
            timestamp: entry.timestamp,
            topic: entry
                .topic
                .and_then(|t| self.topics.get(t as usize))
                .map(String::as_str),
        }
    }

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
            let [ks, kl] = r.key.to_wire();
            let [vs, vl] = r.value.to_wire();
            records.extend_from_slice(&[
                r.source,
                ks,
                kl,
                vs,
                vl,
                r.headers_start,
                r.headers_len,
                r.topic.unwrap_or(wire::NO_TOPIC),
            ]);
            timestamps.push(r.timestamp.unwrap_or(wire::KEEP_TIMESTAMP));
        }
        headers.reserve(self.headers.len() * wire::HEADER);
        for h in &self.headers {
            let [ns, nl] = h.name.to_wire();
            let [vs, vl] = h.value.to_wire();
            headers.extend_from_slice(&[ns, nl, vs, vl]);
        }
    }

    /// The data, topics and errors, to send with the index from
    /// [`OutputBatch::encode_index`].
    pub fn into_parts(self) -> (Vec<u8>, Vec<String>, Vec<RecordError>) {
        (self.data, self.topics, self.errors)
    }

    /// Outputs from their wire form, checked against the batch they answer:
    /// spans in bounds, header names UTF-8, sources existing and in input
    /// order, topics present.
    pub fn from_wire(
        data: Vec<u8>,
        records: &[u32],
        timestamps: &[i64],
        headers: &[u32],
        topics: Vec<String>,
        errors: Vec<RecordError>,
        input: &Batch,
    ) -> Result<OutputBatch, LayoutError> {
        if timestamps.len() * wire::OUTPUT != records.len() {
            return Err(LayoutError::IndexLength);
        }
        let (in_data, out_data) = (input.data(), data.as_slice());
        let headers: Vec<OutHeader> = entries::<_, { wire::HEADER }>(headers)?
            .map(|h| {
                let header = OutHeader {
                    name: OutSpan::from_wire(h[0], h[1]),
                    value: OutSpan::from_wire(h[2], h[3]),
                };
                header.name.resolve(in_data, out_data)?;
                header.value.resolve(in_data, out_data)?;
                Ok(header)
            })
            .collect_exact()?;
        let mut last = 0;
        let records = entries::<_, { wire::OUTPUT }>(records)?
            .zip(timestamps)
            .map(|(r, &t)| {
                let entry = OutEntry {
                    source: r[0],
                    key: OutSpan::from_wire(r[1], r[2]),
                    value: OutSpan::from_wire(r[3], r[4]),
                    headers_start: r[5],
                    headers_len: r[6],
                    topic: (r[7] != wire::NO_TOPIC).then_some(r[7]),
                    timestamp: (t != wire::KEEP_TIMESTAMP).then_some(t),
                };
                if entry.source < last || entry.source as usize >= input.len() {
                    return Err(LayoutError::SourceOutOfOrder);
                }
                last = entry.source;
                entry.key.resolve(in_data, out_data)?;
                entry.value.resolve(in_data, out_data)?;
                let start = entry.headers_start as usize;
                let own = start
                    .checked_add(entry.headers_len as usize)
                    .and_then(|end| headers.get(start..end))
                    .ok_or(LayoutError::HeadersOutOfBounds)?;
                check_names(own, entry.source, input, out_data)?;
                if entry.topic.is_some_and(|t| t as usize >= topics.len()) {
                    return Err(LayoutError::TopicOutOfBounds);
                }
                Ok(entry)
            })
            .collect_exact()?;
        if errors.iter().any(|e| e.source as usize >= input.len()) {
            return Err(LayoutError::SourceOutOfOrder);
        }
        Ok(OutputBatch {
            data,
            records,
            headers,
            topics,
            errors,
            input: Shape::of(input),
        })
    }
}

/// Checks that the names of an output's headers are UTF-8. The input's own
/// headers, passed on as they are, were UTF-8 when the host built the
/// batch: comparing spans is enough for them.
fn check_names(
    own: &[OutHeader],
    source: u32,
    input: &Batch,
    out_data: &[u8],
) -> Result<(), LayoutError> {
    let passed_on = input
        .utf8_headers_of(source as usize)
        .is_some_and(|theirs| {
            theirs.len() == own.len()
                && own
                    .iter()
                    .zip(theirs)
                    .all(|(o, i)| o.name.input && o.name.span() == i.name)
        });
    if passed_on {
        return Ok(());
    }
    for h in own {
        let name = h.name.read(input.data(), out_data).unwrap_or_default();
        std::str::from_utf8(name).map_err(|_| LayoutError::HeaderNameNotUtf8)?;
    }
    Ok(())
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
    /// Outputs answering `input`, starting with its first record.
    pub fn new(input: &Batch) -> Outputs {
        let range = input.data().as_ptr_range();
        Outputs {
            out: OutputBatch {
                input: Shape::of(input),
                ..OutputBatch::default()
            },
            input: range.start as usize..range.end as usize,
            source: 0,
            mark: (0, 0, 0),
        }
    }

    /// Emits one output record for the record being transformed.
    ///
    /// # Panics
    /// If the input batch is empty: there is no record to emit for.
    pub fn emit(&mut self, output: &Output<'_>) {
        self.check_source();
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
        let topic = output.topic.map(|t| intern(&mut self.out.topics, t));
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
        let start = self.out.data.len();
        assert!(
            start + bytes.len() < INPUT_SPAN as usize,
            "the outputs of one batch passed 2 GiB"
        );
        self.out.data.extend_from_slice(bytes);
        OutSpan {
            input: false,
            start: start as u32,
            len: bytes.len() as u32,
        }
    }

    /// Starts the outputs of input record `source`.
    ///
    /// # Panics
    /// If `source` is not a record of the input or comes before the
    /// record begun last: outputs follow the input's order.
    pub fn begin(&mut self, source: u32) {
        assert!(
            (source as usize) < self.out.input.records && source >= self.source,
            "outputs begun for record {source} after record {} of {}",
            self.source,
            self.out.input.records
        );
        self.source = source;
        self.mark = (
            self.out.records.len(),
            self.out.headers.len(),
            self.out.data.len(),
        );
    }

    /// The record begun last failed: drops what it emitted and records why.
    pub fn fail(&mut self, message: String) {
        self.check_source();
        let (records, headers, data) = self.mark;
        self.out.records.truncate(records);
        self.out.headers.truncate(headers);
        self.out.data.truncate(data);
        self.out.errors.push(RecordError {
            source: self.source,
            message,
        });
    }

    fn check_source(&self) {
        assert!(
            (self.source as usize) < self.out.input.records,
            "outputs for record {} of an input batch of {}",
            self.source,
            self.out.input.records
        );
    }

    pub fn finish(self) -> OutputBatch {
        self.out
    }
}
