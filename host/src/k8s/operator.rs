//! `wasmpipe operator`: keeps the replicas of every Deployment annotated
//! `wasmpipe.dev/topic: TOPIC` equal to that topic's partition count, so
//! partitions added to a topic get their pods. Several copies may run: a
//! Lease elects the one that acts, the others wait to take over.

use super::scale::{patch_replicas, replicas_for};
use super::{TOPIC_ANNOTATION, explain};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Arc;
use std::time::Duration;

/// Counts a topic's partitions (the caller asks Kafka). Blocking.
pub type Partitions = Arc<dyn Fn(&str) -> anyhow::Result<usize> + Send + Sync>;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub namespace: String,
    /// This copy's name in the Lease (the pod name).
    pub identity: String,
    /// The Lease's name.
    pub lease: String,
    /// How long a held Lease lasts without renewal; renewed every third.
    pub lease_duration: Duration,
    /// How often the leader compares replicas and partitions.
    pub resync: Duration,
}

/// Leader election through a `coordination.k8s.io/v1` Lease. Every write
/// carries the resourceVersion read, so two copies racing for it cannot
/// both win: the loser gets a conflict.
pub struct Elector {
    api: Api<Lease>,
    options: Options,
}

impl Elector {
    pub fn new(client: Client, options: Options) -> Self {
        Self {
            api: Api::namespaced(client, &options.namespace),
            options,
        }
    }

    fn what(&self) -> String {
        format!("Lease {}/{}", self.options.namespace, self.options.lease)
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.options.identity.clone()),
            lease_duration_seconds: Some(self.options.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes the Lease if it is free or expired, renews it if held by this
    /// copy. True when this copy leads until the next call.
    pub async fn try_lead(&self) -> anyhow::Result<bool> {
        let verbs = "get, create and update on leases (coordination.k8s.io)";
        let now = Timestamp::now();
        let Some(mut lease) = self
            .api
            .get_opt(&self.options.lease)
            .await
            .map_err(|e| explain(e, &self.what(), verbs))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.options.lease.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(explain(e, &self.what(), verbs)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.options.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(secs)) => {
                renewed.0.as_millisecond() + i64::from(secs) * 1000 < now.as_millisecond()
            }
            _ => true,
        };
        if held && !mine && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        lease.spec = Some(self.spec(now, acquired, transitions));
        match self
            .api
            .replace(&self.options.lease, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Another copy wrote first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(explain(e, &self.what(), verbs)),
        }
    }

    /// Gives the Lease up (on shutdown) so another copy takes over at once.
    pub async fn release(&self) -> anyhow::Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.options.lease).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.options.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.options.lease, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}

/// One change the operator made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub deployment: String,
    pub topic: String,
    pub before: usize,
    pub after: usize,
}

/// One pass: every annotated Deployment in the namespace gets replicas
/// equal to its topic's partitions. A Deployment whose topic cannot be read
/// is logged and left as it is; the others go on.
pub async fn reconcile(
    client: Client,
    namespace: &str,
    partitions: &Partitions,
) -> anyhow::Result<Vec<Change>> {
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let list = api.list(&ListParams::default()).await.map_err(|e| {
        explain(
            e,
            &format!("listing Deployments in {namespace}"),
            "list on deployments",
        )
    })?;
    let mut changes = Vec::new();
    for d in list.items {
        let name = d.metadata.name.clone().unwrap_or_default();
        let Some(topic) = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TOPIC_ANNOTATION))
            .cloned()
        else {
            continue;
        };
        let count = {
            let (partitions, topic) = (partitions.clone(), topic.clone());
            tokio::task::spawn_blocking(move || partitions(&topic)).await?
        };
        let wanted = match count.and_then(|p| Ok(replicas_for(&topic, p, None)?)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(deployment = %name, %topic, error = %format!("{e:#}"), "cannot size the deployment; left as it is");
                continue;
            }
        };
        let before = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
        if before != wanted {
            patch_replicas(&api, namespace, &name, wanted).await?;
            tracing::info!(deployment = %name, %topic, before, after = wanted, "replicas follow the partitions");
            changes.push(Change {
                deployment: name,
                topic,
                before,
                after: wanted,
            });
        }
    }
    Ok(changes)
}

/// Runs until `stop` resolves: tries to lead every third of the lease
/// duration; while leading, reconciles every `resync`. API errors are
/// logged and retried on the next tick; the Lease is released on stop.
pub async fn run(
    client: Client,
    options: Options,
    partitions: Partitions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let elector = Elector::new(client.clone(), options.clone());
    let tick = options.lease_duration / 3;
    let mut leading = false;
    let mut last_pass: Option<tokio::time::Instant> = None;
    tokio::pin!(stop);
    loop {
        let lead = match elector.try_lead().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "leader election failed; retrying");
                false
            }
        };
        if lead != leading {
            tracing::info!(identity = %options.identity, lease = %options.lease, "{}", if lead { "leading" } else { "following" });
            leading = lead;
            last_pass = None;
        }
        if leading && last_pass.is_none_or(|t| t.elapsed() >= options.resync) {
            if let Err(e) = reconcile(client.clone(), &options.namespace, &partitions).await {
                tracing::warn!(error = %format!("{e:#}"), "reconciling failed; retrying at the next pass");
            }
            last_pass = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    if leading && let Err(e) = elector.release().await {
        tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
    }
    Ok(())
}
