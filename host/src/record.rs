//! The host's record batch: the flat layout shared with the plugins'
//! SDK, so a consumed batch reaches a flat plugin with one copy. Nothing
//! here knows wasmtime or Kafka.

pub use wasmpipe_sdk::flat::{Batch, LayoutError, RecordParts, TimestampType};
pub use wasmpipe_sdk::{Headers, Record};
