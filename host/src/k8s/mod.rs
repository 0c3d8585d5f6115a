//! Kubernetes through its API; `kube` lives only here.
//!
//! - [`ConfigMapMirror`]: `wasmpipe run --watch-configmap`, the plugin
//!   ConfigMap watched through the API and mirrored into a local directory
//!   in the kubelet's layout, for reloads within a second of a change.

mod configmap;

pub use configmap::{ConfigMapMirror, files_of};

use kube::Client;

/// Explains a failed API call: names the object and what to change.
/// `verbs` is what the pod's ServiceAccount needs on it.
fn explain(e: kube::Error, what: &str, verbs: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(status) if status.code == 403 => anyhow::anyhow!(
            "the Kubernetes API forbids reading {what}: {}; grant the ServiceAccount {verbs} on it (a Role with resourceNames, as in k8s/base/rbac.yaml)",
            status.message
        ),
        kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
            "{what} does not exist: {}; create it (wasmpipe deploy) or fix the name and namespace",
            status.message
        ),
        _ => anyhow::Error::new(e).context(format!("reading {what} through the Kubernetes API")),
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
