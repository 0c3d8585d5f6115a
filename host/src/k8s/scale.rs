//! `wasmpipe scale`: a Deployment's replicas set to its input topic's
//! partition count through the scale subresource (the one permission it
//! needs: get and patch on `deployments/scale`).

use super::explain;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Why a replica count is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error(
        "{replicas} replicas for topic '{topic}' with {partitions} partitions: each pod owns at least one partition, so {} would sit idle, holding memory and slowing every rebalance; add partitions to the topic first (replicas then follow), or ask for at most {partitions}",
        replicas - partitions
    )]
    AbovePartitions {
        topic: String,
        replicas: usize,
        partitions: usize,
    },
    #[error("a Deployment of wasmpipe needs at least one replica")]
    Zero,
}

/// The replicas to run for `partitions`, or for the `requested` count when
/// it is allowed (at most one pod per partition).
pub fn replicas_for(
    topic: &str,
    partitions: usize,
    requested: Option<usize>,
) -> Result<usize, ScaleError> {
    match requested {
        Some(0) => Err(ScaleError::Zero),
        Some(r) if r > partitions => Err(ScaleError::AbovePartitions {
            topic: topic.to_owned(),
            replicas: r,
            partitions,
        }),
        Some(r) => Ok(r),
        None if partitions == 0 => Err(ScaleError::Zero),
        None => Ok(partitions),
    }
}

/// Sets Deployment `namespace/name` to `replicas` through its scale
/// subresource, unless it already has them. Returns the replicas before.
pub async fn set_replicas(
    client: Client,
    namespace: &str,
    name: &str,
    replicas: usize,
) -> anyhow::Result<usize> {
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let what = format!("Deployment {namespace}/{name}");
    let verbs = "get and patch on deployments/scale";
    let scale = api
        .get_scale(name)
        .await
        .map_err(|e| explain(e, &what, verbs))?;
    let before = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as usize;
    if before != replicas {
        patch_replicas(&api, namespace, name, replicas).await?;
        tracing::info!(deployment = %what, before, after = replicas, "replicas set");
    }
    Ok(before)
}

/// Patches the scale subresource of Deployment `name` to `replicas`.
pub(super) async fn patch_replicas(
    api: &Api<Deployment>,
    namespace: &str,
    name: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            explain(
                e,
                &format!("Deployment {namespace}/{name}"),
                "get and patch on deployments/scale",
            )
        })?;
    Ok(())
}
