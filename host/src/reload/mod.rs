//! Hot reload of the plugin set. The plugin directory is read as one
//! consistent set the way Kubernetes updates a ConfigMap volume: every
//! visible file is a symlink through `..data`, and renaming a new `..data`
//! over the old one is the only atomic step. A new set is built off the hot
//! path and swapped in at a batch boundary; a broken set is refused.

mod snapshot;
mod watch;

pub use snapshot::{Snapshot, kubelet_update, read_snapshot};
pub use watch::{Build, Loaded, PluginStatus, Reloader, Status, Updates, Watch, WatchOptions};
