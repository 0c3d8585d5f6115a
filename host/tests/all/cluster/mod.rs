//! End to end on a real Kubernetes: `tests/k8s/cluster` (kube-apiserver,
//! controller manager, scheduler, kubelet and kube-proxy built from
//! k8s.io/kubernetes; Debian's etcd, containerd, runc and CNI plugins), the
//! image `k8s/image` builds, imported into the node, and Kafka from
//! `tests/kafka/broker` on the node's address. The manifests are
//! `k8s/overlays/local` — the base every cloud overlay renders — applied
//! with kubectl as a user would.
//!
//! Run by `tests/k8s/e2e`, which sets all of that up; ignored otherwise.
//! Each test has its own namespace and topics.

mod harness;
mod scenarios;
