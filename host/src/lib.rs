//! wasmpipe: run sandboxed WebAssembly transforms on Kafka streams.
//!
//! - [`runtime`]: wasmtime, the plugin sandbox and the chain of plugins;
//! - [`record`]: the batch a chain reads and writes (no wasm, no Kafka);
//! - [`jsonl`]: records as JSON lines, for the local harness;
//! - [`harness`]: `wasmpipe plugin check|test`, the production runtime
//!   over local records;
//! - [`reload`]: the plugin directory read as one consistent set;
//! - [`scaffold`]: `wasmpipe plugin new`;
//! - [`ops`]: metrics, liveness, readiness and the running set over HTTP;
//! - [`k8s`]: the Kubernetes API (`kube` lives only there);
//! - [`aws`]: Amazon MSK IAM tokens for the Kafka clients;
//! - [`config`], [`kafka`], [`pipeline`]: `wasmpipe run`, the Kafka
//!   pipeline (rdkafka lives only in [`kafka`]);
//! - [`state`]: plugins' keyed state: pending writes, the on-disk store,
//!   the changelog's records (no wasm, no Kafka);
//! - [`plugin_file`]: what a plugin file's name says it holds;
//! - [`text`]: plugin- and record-chosen text cut to what the host keeps;
//! - [`dead_letter`]: the headers of a dead letter;
//! - [`format`]: records decoded to JSON for plugins and encoded back
//!   (Avro, Protobuf, JSON Schema with a schema registry; no wasm, no Kafka);
//! - [`background`]: the runtime, cancellation token and task tracker the
//!   background work of `wasmpipe run` shares.

pub mod app;
pub mod aws;
pub mod background;
pub mod config;
pub mod dead_letter;
pub mod format;
pub mod harness;
pub mod jsonl;
pub mod k8s;
pub mod kafka;
pub mod ops;
pub mod pipeline;
pub mod plugin_file;
pub mod record;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod state;
pub mod text;
