//! The flat batch layout of `wasmpipe:transform/flat-transform`, in plain
//! Rust, shared by the wasmpipe host and its Rust SDK.
//!
//! One byte buffer holds every key, value and header of a batch; fixed-size
//! entries index it. The host builds input batches and reads output batches
//! with this crate, and the SDK does the opposite inside the plugin, so both
//! sides share one definition of the layout.
//!
//! Every type holds its invariants, so reading never fails:
//! - a [`Batch`] is built record by record ([`Batch::push_parts`]) or read
//!   from the wire and checked whole ([`Batch::from_wire`]);
//! - an [`OutputBatch`] is written by [`Outputs`] or read from the wire and
//!   checked against the batch it answers ([`OutputBatch::from_wire`]).
//!
//! The crate's version is the WIT package's ([`WIT_PACKAGE`]). Nothing here
//! depends on wasm.

mod input;
mod output;
mod record;
pub mod wire;

pub use input::{Batch, RecordParts, TimestampType, WireIndex};
pub use output::{OutHeaders, OutRecord, OutputBatch, Outputs, RecordError};
pub use record::{Headers, Output, OutputHeaders, Record};

use std::fmt;

/// The WIT package whose `flat-transform` layout this crate implements.
pub const WIT_PACKAGE: &str = "wasmpipe:transform@0.2.0";

/// A batch was not laid out as the contract says.
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

#[cfg(test)]
mod tests;
