//! Kubernetes through its API; `kube` lives only here (no wasm, no Kafka:
//! callers pass in what they learned from those).
//!
//! - [`ConfigMapMirror`]: `wasmpipe run --watch-configmap`, the plugin
//!   ConfigMap watched and mirrored into a local directory in the
//!   kubelet's layout, for reloads within a second of a change;
//! - [`deploy`]: `wasmpipe deploy`, a plugin set fitted into one ConfigMap
//!   and server-side applied;
//! - [`scale`]: `wasmpipe scale`, replicas set to the partition count
//!   through the scale subresource;
//! - [`operator`]: `wasmpipe operator`, that match kept continuously, with
//!   a Lease so several copies are safe.

mod configmap;
pub mod deploy;
pub mod operator;
pub mod scale;

pub use configmap::{ConfigMapMirror, files_of};

use kube::Client;

/// What Kubernetes allows in one ConfigMap, `data` and `binaryData`
/// together.
pub const CONFIGMAP_LIMIT: usize = 1 << 20;

/// The annotation naming a Deployment's input topic: the operator keeps its
/// replicas equal to that topic's partition count.
pub const TOPIC_ANNOTATION: &str = "wasmpipe.dev/topic";

/// Explains a failed API call: names the object and what to change.
/// `verbs` is what the caller's identity needs on it.
fn explain(e: kube::Error, what: &str, verbs: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(status) if status.code == 401 => anyhow::anyhow!(
            "the Kubernetes API does not accept these credentials for {what}: {}; refresh the kubeconfig's token",
            status.message
        ),
        kube::Error::Api(status) if status.code == 403 => anyhow::anyhow!(
            "the Kubernetes API forbids this on {what}: {}; grant {verbs} on it (see k8s/README.md for the Role)",
            status.message
        ),
        kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
            "{what} does not exist: {}; create it or fix the name and namespace",
            status.message
        ),
        _ => anyhow::Error::new(e).context(format!("{what} through the Kubernetes API")),
    }
}

/// The client of the pod's ServiceAccount, or of `KUBECONFIG` outside a
/// cluster.
pub async fn default_client() -> anyhow::Result<Client> {
    // The error's own text already holds its causes.
    Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "no Kubernetes API to talk to: run in a pod (its ServiceAccount token is used) or set KUBECONFIG ({e})"
        )
    })
}

/// Runs `f` with a client on a fresh single-threaded Tokio runtime: the
/// one-shot commands are synchronous at the edge.
pub fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
