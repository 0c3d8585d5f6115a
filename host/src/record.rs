//! The host's record batch: the flat layout of the WIT package, from the
//! `wasmpipe-abi` crate the Rust SDK uses too, so a consumed batch reaches
//! a flat plugin with one copy. Nothing here knows wasmtime or Kafka.

pub use wasmpipe_abi::{
    Batch, Headers, LayoutError, OutHeaders, Output, OutputBatch, OutputHeaders, Outputs, Record,
    RecordError, RecordParts, TimestampType,
};
