//! Reading the plugin directory as one consistent set, the way Kubernetes
//! updates a ConfigMap volume: every visible file is a symlink through
//! `..data`, and renaming a new `..data` over the old one is the only atomic
//! step. The chain is always built from one snapshot, never from a mix of
//! two updates.

mod snapshot;

pub use snapshot::{Snapshot, read_snapshot};
