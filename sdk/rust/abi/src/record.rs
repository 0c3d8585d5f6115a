//! The record a transform reads and the output it writes.

use crate::input::{HeaderEntry, TimestampType};

/// A Kafka record as consumed, borrowed from its batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Record<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Headers<'a>,
    pub(crate) timestamp: i64,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

impl<'a> Record<'a> {
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` is a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// The timestamp, unless Kafka had none (`TimestampType::NotAvailable`).
    pub fn known_timestamp(&self) -> Option<i64> {
        (self.timestamp_type != TimestampType::NotAvailable).then_some(self.timestamp)
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// An output equal to this record: same key, value, headers and
    /// timestamp, to the pipeline's output topic. Change what you need.
    pub fn to_output(&self) -> Output<'a> {
        Output {
            key: self.key,
            value: self.value,
            headers: OutputHeaders::Input(self.headers),
            timestamp: None,
            topic: None,
        }
    }
}

/// A record's headers, in order; names may repeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    pub(crate) entries: &'a [HeaderEntry],
    pub(crate) data: &'a [u8],
}

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every header as `(name, value)`, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + use<'a> {
        let data = self.data;
        self.entries.iter().map(move |h| {
            // Checked when the batch was made: in bounds, names UTF-8.
            let name = h.name.read(data).unwrap_or_default();
            (
                std::str::from_utf8(name).unwrap_or_default(),
                h.value.read(data),
            )
        })
    }

    /// The value of the last header called `name` (Kafka's `lastHeader`).
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .filter(|(n, _)| *n == name)
            .last()
            .map(|(_, v)| v)
    }
}

/// An output's headers: the input's unchanged, or a list of its own.
#[derive(Clone, Debug)]
pub enum OutputHeaders<'a> {
    Input(Headers<'a>),
    List(Vec<(&'a str, Option<&'a [u8]>)>),
}

impl<'a> OutputHeaders<'a> {
    fn list(&mut self) -> &mut Vec<(&'a str, Option<&'a [u8]>)> {
        if let OutputHeaders::Input(h) = self {
            *self = OutputHeaders::List(h.iter().collect());
        }
        match self {
            OutputHeaders::List(list) => list,
            OutputHeaders::Input(_) => unreachable!("converted to a list just above"),
        }
    }
}

/// A record to produce. Build it from scratch with [`Output::new`] or from
/// the input with [`Record::to_output`].
#[derive(Clone, Debug)]
pub struct Output<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: OutputHeaders<'a>,
    /// `None` keeps the input record's timestamp.
    pub timestamp: Option<i64>,
    /// `None` sends the record to the pipeline's output topic.
    pub topic: Option<&'a str>,
}

impl Default for Output<'_> {
    fn default() -> Self {
        Output {
            key: None,
            value: None,
            headers: OutputHeaders::List(Vec::new()),
            timestamp: None,
            topic: None,
        }
    }
}

impl<'a> Output<'a> {
    /// An output with no key, no value, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn key(mut self, key: Option<&'a [u8]>) -> Self {
        self.key = key;
        self
    }

    pub fn value(mut self, value: Option<&'a [u8]>) -> Self {
        self.value = value;
        self
    }

    /// Appends a header (names may repeat).
    pub fn header(mut self, name: &'a str, value: Option<&'a [u8]>) -> Self {
        self.headers.list().push((name, value));
        self
    }

    /// Removes every header called `name`.
    pub fn remove_header(mut self, name: &str) -> Self {
        self.headers.list().retain(|(n, _)| *n != name);
        self
    }

    /// Replaces every header called `name` with one header at the end.
    pub fn set_header(self, name: &'a str, value: Option<&'a [u8]>) -> Self {
        self.remove_header(name).header(name, value)
    }

    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    pub fn topic(mut self, topic: &'a str) -> Self {
        self.topic = Some(topic);
        self
    }
}
