//! What a user does to a running pipeline, and what must hold.

use super::harness::*;
use crate::kafka::bootstrap;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn the_deployment_runs_a_ready_pod_per_partition_exactly_once_under_restricted() {
    let p = Pipeline::up("up", 3, &[]);
    // replicas = partitions, every pod Ready through its probes.
    let pods = p.pods();
    assert_eq!((p.replicas(), pods.len()), (3, 3), "{pods:?}");
    let ready = p.pods_jsonpath(&[], "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}");
    assert_eq!(
        ready.lines().collect::<Vec<_>>(),
        vec!["True 0"; 3],
        "{ready}"
    );

    // The namespace enforces the restricted level: a privileged pod is
    // refused there, and wasmpipe's pods were admitted.
    let labels = p.kubectl(&[
        "get",
        "namespace",
        &p.ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        labels.contains("\"pod-security.kubernetes.io/enforce\":\"restricted\""),
        "{labels}"
    );
    let privileged = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: privileged, namespace: {}}}\nspec:\n  containers:\n    - name: c\n      image: registry.k8s.io/pause:3.10\n      securityContext: {{privileged: true}}\n",
        p.ns
    );
    let refused = p.k.run(&["apply", "-f", "-"], Some(&privileged));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("violates PodSecurity \"restricted:latest\""),
        "a privileged pod was not refused: {err}"
    );

    // Records flow exactly once.
    let watch = Watch::start(&p.output);
    let stream = Stream::start(&p.input, p.partitions, 100);
    std::thread::sleep(Duration::from_secs(10));
    let produced = stream.stop();
    watch.exactly_once(&produced);

    // The metrics endpoint through the Service (kube-proxy's rules, from
    // the node): every partition's lag falls to 0.
    let ip = p.kubectl(&[
        "get",
        "service/wasmpipe",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let addr = format!("{ip}:8080");
    let mut zero: BTreeMap<String, bool> = BTreeMap::new();
    until(
        "consumer lag 0 on every partition, scraped through the Service",
        Duration::from_secs(120),
        || {
            let body = http_get(&addr, "/metrics").ok()?;
            for (labels, value) in lag(&body) {
                zero.insert(labels, value == 0.0);
            }
            (zero.len() >= 3 && zero.values().all(|z| *z)).then_some(())
        },
    );
}

/// Deploys a second pipeline version while records stream; returns the
/// time from `wasmpipe deploy` to the last pod's first record processed
/// by it.
fn hot_reload(name: &str, components: &[&str]) -> Duration {
    let p = Pipeline::up(name, 3, components);
    let watch = Watch::start(&p.output);
    let stream = Stream::start(&p.input, p.partitions, 50);
    until("records flowing", Duration::from_secs(60), || {
        (watch.count() > 100).then_some(())
    });

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "plugins:\n  - file: redact.wasm\n    config:\n      drop: v\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args([
            "deploy",
            "--configmap",
            "wasmpipe-plugins",
            "--namespace",
            &p.ns,
            "--pipeline",
        ])
        .arg(&pipeline)
        .arg(p.k.manifests.join("base/plugins/redact.wasm"))
        .env("KUBECONFIG", &p.k.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wasmpipe deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reloaded = until(
        "every pod running the new version",
        Duration::from_secs(240),
        || {
            let seen = watch.snapshot();
            let firsts: Vec<Instant> = (0..p.partitions as i64)
                .filter_map(|part| {
                    seen.iter()
                        .find(|s| s.p == part && !s.first_version)
                        .map(|s| s.at)
                })
                .collect();
            (firsts.len() == p.partitions as usize).then(|| firsts.into_iter().max().unwrap())
        },
    );
    std::thread::sleep(Duration::from_secs(5));
    let produced = stream.stop();
    let seen = watch.exactly_once(&produced);
    // Each pod swapped once, between two records: the old version up to
    // some record, the new one from the next on.
    for part in 0..p.partitions as i64 {
        let mut ordered: Vec<&Seen> = seen.iter().filter(|s| s.p == part).collect();
        ordered.sort_by_key(|s| s.seq);
        let swaps = ordered
            .windows(2)
            .filter(|w| w[0].first_version != w[1].first_version)
            .count();
        assert!(
            ordered.last().is_some_and(|s| !s.first_version),
            "partition {part} ended on the old version"
        );
        assert_eq!(
            swaps, 1,
            "partition {part} went back and forth between versions"
        );
    }
    reloaded - started
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn deploy_reloads_every_pod_through_the_kubelets_volume_update() {
    let took = hot_reload("reload-volume", &[]);
    println!("deploy → last pod on the new version, kubelet volume update: {took:.1?}");
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn deploy_reloads_every_pod_through_watch_configmap() {
    let took = hot_reload("reload-watch", &["watch-configmap"]);
    println!("deploy → last pod on the new version, --watch-configmap: {took:.1?}");
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn python_and_javascript_scripts_run_in_the_pods() {
    // The image's script runtimes, compiled in each pod under its memory
    // limit and read-only root: a chain of a .py and a .js file shipped
    // in the ConfigMap, as a user ships them.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = std::fs::read(root.join("plugins/python/redact/redact.py")).unwrap();
    let js = std::fs::read(root.join("plugins/js/redact/redact.js")).unwrap();
    let pipeline = b"plugins:
  - file: redact.py
    name: redact-py
    config: {mask: v, mask_with: py}
  - file: redact.js
    name: redact-js
    config: {mask: v, mask_with: js}
";
    let p = Pipeline::up_with(
        "scripts",
        2,
        &[],
        &[
            ("redact.py", &py),
            ("redact.js", &js),
            ("pipeline.yaml", pipeline),
        ],
    );
    let watch = Watch::start(&p.output);
    let stream = Stream::start(&p.input, p.partitions, 50);
    std::thread::sleep(Duration::from_secs(10));
    let produced = stream.stop();
    let seen = watch.exactly_once(&produced);
    // Python masked it first, then JavaScript: the last mask is what stays.
    assert!(
        seen.iter().all(|s| s.v.as_deref() == Some("js")),
        "a record not through both scripts"
    );
    let restarts = p.pods_jsonpath(&[], "{.items[*].status.containerStatuses[0].restartCount}");
    assert_eq!(
        restarts, "0 0",
        "a pod restarted (out of memory compiling a script runtime?)"
    );
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn faults_while_streaming_lose_and_duplicate_nothing() {
    let p = Pipeline::up("faults", 3, &[]);
    let watch = Watch::start(&p.output);
    let stream = Stream::start(&p.input, p.partitions, 50);
    // Every partition has records again, newer than `since`: the next
    // fault starts only once the last one is over everywhere (a partition
    // whose owner died without leaving stalls until the group notices).
    let partitions = p.partitions as i64;
    let flowing = |since: Instant| {
        until("every partition flowing", Duration::from_secs(120), || {
            let seen = watch.snapshot();
            (0..partitions)
                .all(|part| seen.iter().any(|s| s.p == part && s.at > since))
                .then_some(())
        });
    };
    flowing(Instant::now());
    // (fault, when it began, when the Deployment was whole again)
    let mut faults: Vec<(&str, Instant, Instant)> = Vec::new();

    // A pod deleted: the Deployment replaces it.
    let t = Instant::now();
    let victim = p.pods()[0].clone();
    p.kubectl(&["delete", "pod", &victim, "--wait=false"]);
    until("the pod replaced", Duration::from_secs(120), || {
        let pods = p.pods();
        (pods.len() == 3 && !pods.contains(&victim)).then_some(())
    });
    p.rolled_out();
    faults.push(("kubectl delete pod", t, Instant::now()));
    flowing(Instant::now());

    // A container killed under the kubelet (SIGKILL to its process): the
    // kubelet restarts it in place.
    let t = Instant::now();
    let pod = p.pods()[1].clone();
    let id = p.kubectl(&[
        "get",
        "pod",
        &pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let id = id.trim_start_matches("containerd://");
    let info: serde_json::Value = serde_json::from_str(&p.k.crictl(&["inspect", id])).unwrap();
    let pid = info["info"]["pid"]
        .as_i64()
        .expect("crictl inspect names the container's pid");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    until(
        "the container restarted by the kubelet",
        Duration::from_secs(120),
        || {
            let restarts = p.kubectl(&[
                "get",
                "pod",
                &pod,
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ]);
            (restarts.trim() == "1").then_some(())
        },
    );
    p.rolled_out();
    faults.push(("container SIGKILLed (crictl)", t, Instant::now()));
    flowing(Instant::now());

    // A rolling restart of every pod.
    let t = Instant::now();
    p.kubectl(&["rollout", "restart", "deployment/wasmpipe"]);
    p.rolled_out();
    faults.push(("kubectl rollout restart", t, Instant::now()));
    flowing(Instant::now());

    // A replica past the partition count: it idles in the group.
    let t = Instant::now();
    p.kubectl(&["scale", "deployment/wasmpipe", "--replicas=4"]);
    p.rolled_out();
    assert_eq!(p.pods().len(), 4);
    flowing(Instant::now());
    p.kubectl(&["scale", "deployment/wasmpipe", "--replicas=3"]);
    p.rolled_out();
    faults.push(("scale 3 → 4 → 3", t, Instant::now()));
    flowing(Instant::now());

    let produced = stream.stop();
    let seen = watch.exactly_once(&produced);
    for (fault, from, whole) in faults {
        println!(
            "{fault}: whole again in {:.1?}; longest pause in the output {:.1?}",
            whole - from,
            longest_pause(&seen, from, whole)
        );
    }
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn scale_and_the_operator_follow_partitions_through_the_real_api() {
    let p = Pipeline::up("operator", 2, &[]);
    let brokers = bootstrap();

    // `wasmpipe scale` from outside the cluster, through the kubeconfig.
    add_partitions(&p.input, 3);
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["scale", "--deployment", "wasmpipe", "--topic", &p.input])
        .args(["--namespace", &p.ns, "--brokers", &brokers])
        .env("KUBECONFIG", &p.k.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wasmpipe scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "deployment {}/wasmpipe: 2 -> 3 replicas (topic '{}' has 3 partitions)",
            p.ns, p.input
        )
    );
    p.rolled_out();

    // The pods' own ServiceAccount has no RBAC in the base: the API server
    // forbids `deploy` with its token, and the error says what to grant.
    let token = p.kubectl(&["create", "token", "wasmpipe", "--duration=10m"]);
    let admin = std::fs::read_to_string(&p.k.kubeconfig).unwrap();
    let field = |name: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{}', certificate-authority: '{}'}}}}]\nusers: [{{name: u, user: {{token: '{}'}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u, namespace: {}}}}}]\ncurrent-context: c\n",
            field("server:"),
            field("certificate-authority:"),
            token.trim(),
            p.ns
        ),
    )
    .unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "plugins:\n  - file: redact.wasm\n    config: {drop: v}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["deploy", "--configmap", "wasmpipe-plugins", "--pipeline"])
        .arg(&pipeline)
        .arg(p.k.manifests.join("base/plugins/redact.wasm"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("WASMPIPE_NAMESPACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!(
                "the Kubernetes API forbids this on applying ConfigMap {}/wasmpipe-plugins",
                p.ns
            ))
            && err.contains("grant get, create and patch on configmaps"),
        "{err}"
    );

    // A second Deployment, annotated for a topic that does not exist.
    let ghost = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ghost
  namespace: {ns}
  annotations:
    wasmpipe.dev/topic: no-such-topic-{suffix}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: ghost}}}}
  template:
    metadata: {{labels: {{app: ghost}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 65535, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
        - name: pause
          image: registry.k8s.io/pause:3.10
          securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
",
        ns = p.ns,
        suffix = &p.ns[p.ns.len() - 6..]
    );
    p.k.run(&["apply", "-f", "-"], Some(&ghost));
    let dir = p.k.manifests.join("e2e").join(format!("{}-operator", p.ns));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {}
resources:
  - ../../operator
configMapGenerator:
  - name: wasmpipe-operator-settings
    behavior: merge
    literals:
      - WASMPIPE_BROKERS={}
patches:
  - target:
      kind: Deployment
      name: wasmpipe-operator
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/args
        value: [operator, --resync, 5s]
",
            p.ns,
            bootstrap()
        ),
    )
    .unwrap();
    p.k.ok(&["apply", "--server-side", "-k", dir.to_str().unwrap()]);
    p.kubectl(&[
        "rollout",
        "status",
        "deployment/wasmpipe-operator",
        "--timeout=180s",
    ]);

    add_partitions(&p.input, 4);
    until(
        "replicas following the new partition count",
        Duration::from_secs(120),
        || (p.replicas() == 4).then_some(()),
    );
    p.rolled_out();

    // The leader goes away: the other copy takes the Lease over and acts.
    let holder = || {
        p.kubectl(&[
            "get",
            "lease/wasmpipe-operator",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let leader = holder();
    assert!(leader.starts_with("wasmpipe-operator-"), "{leader}");
    p.kubectl(&["delete", "pod", &leader, "--wait=false"]);
    add_partitions(&p.input, 5);
    until(
        "the other copy leading and replicas following",
        Duration::from_secs(120),
        || (p.replicas() == 5).then_some(()),
    );
    let new_leader = holder();
    assert_ne!(new_leader, leader, "the Lease did not change hands");
    p.rolled_out();

    // The ghost is left as it was, and the operator says why.
    let ghost_replicas = p.kubectl(&["get", "deployment/ghost", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(ghost_replicas, "1");
    let logs = until(
        "the operator naming the Deployment it left alone",
        Duration::from_secs(60),
        || {
            let logs = p.kubectl(&[
                "logs",
                "-l",
                "app.kubernetes.io/name=wasmpipe-operator",
                "--tail=-1",
            ]);
            (logs.contains("cannot size the deployment; left as it is") && logs.contains("ghost"))
                .then_some(logs)
        },
    );
    assert!(logs.contains("no-such-topic"), "{logs}");
}
