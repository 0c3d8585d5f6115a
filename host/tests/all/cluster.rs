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

use crate::kafka::{bootstrap, create_topics, futures_executor, sequence, topic};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What `tests/k8s/e2e` prepared.
struct Cluster {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    /// A copy of `k8s/` with the example plugin in `base/plugins`.
    manifests: PathBuf,
    /// `tests/k8s/cluster`, for crictl on the node.
    script: PathBuf,
}

fn cluster() -> Cluster {
    let var = |name: &str| {
        PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
            panic!(
                "{name} is not set: run these tests with tests/k8s/e2e, which starts the cluster"
            )
        }))
    };
    Cluster {
        kubectl: var("WASMPIPE_E2E_KUBECTL"),
        kubeconfig: var("KUBECONFIG"),
        manifests: var("WASMPIPE_E2E_MANIFESTS"),
        script: var("WASMPIPE_E2E_CLUSTER"),
    }
}

impl Cluster {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// kubectl ARGS, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn crictl(&self, args: &[&str]) -> String {
        let out = Command::new(&self.script)
            .arg("crictl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "crictl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Polls `check` every half second until it returns `Some`, or panics
/// naming `what` after `limit`.
fn until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One pipeline Deployment in a namespace of its own, rendered from
/// `overlays/local` with its own topics.
struct Pipeline {
    k: Cluster,
    ns: String,
    input: String,
    output: String,
    partitions: i32,
}

impl Pipeline {
    fn up(name: &str, partitions: i32, components: &[&str]) -> Pipeline {
        let k = cluster();
        let (input, output, dlq) = (
            topic(&format!("{name}-in")),
            topic(&format!("{name}-out")),
            topic(&format!("{name}-dlq")),
        );
        create_topics(&[
            (&input, partitions),
            (&output, partitions),
            (&dlq, partitions),
        ]);
        let ns = format!("e2e-{name}-{}", &input[input.len() - 6..]);
        let components = components
            .iter()
            .map(|c| format!("  - ../../components/{c}\n"))
            .collect::<String>();
        let kustomization = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {ns}
resources:
  - ../../overlays/local
components:
{components}configMapGenerator:
  - name: wasmpipe-settings
    behavior: merge
    literals:
      - WASMPIPE_GROUP=wasmpipe-{input}
      - WASMPIPE_INPUT_TOPIC={input}
      - WASMPIPE_OUTPUT_TOPIC={output}
      - WASMPIPE_DLQ_TOPIC={dlq}
patches:
  - target:
      kind: Deployment
      name: wasmpipe
    patch: |-
      - op: replace
        path: /spec/replicas
        value: {partitions}
      - op: replace
        path: /metadata/annotations/wasmpipe.dev~1topic
        value: {input}
"
        );
        let p = Pipeline {
            k,
            ns,
            input,
            output,
            partitions,
        };
        p.apply(&kustomization);
        p.rolled_out();
        p
    }

    /// Server-side applies a kustomization rendered next to the overlays.
    fn apply(&self, kustomization: &str) {
        let dir = self.k.manifests.join("e2e").join(&self.ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kustomization.yaml"), kustomization).unwrap();
        self.k
            .ok(&["apply", "--server-side", "-k", dir.to_str().unwrap()]);
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.ns];
        all.extend_from_slice(args);
        self.k.ok(&all)
    }

    /// Waits for the Deployment's rollout, then for exactly `replicas`
    /// pods, every one Ready and none terminating.
    fn rolled_out(&self) {
        self.kubectl(&["rollout", "status", "deployment/wasmpipe", "--timeout=300s"]);
        let want = self.replicas() as usize;
        until(
            "every pod Ready, none terminating",
            Duration::from_secs(180),
            || {
                let pods = self.kubectl(&[
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/name=wasmpipe",
                "-o",
                "jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]);
                let pods: Vec<&str> = pods.lines().collect();
                (pods.len() == want && pods.iter().all(|p| *p == "|True")).then_some(())
            },
        );
    }

    fn pods(&self) -> Vec<String> {
        self.kubectl(&[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=wasmpipe",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    }

    fn replicas(&self) -> i32 {
        self.kubectl(&[
            "get",
            "deployment/wasmpipe",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .parse()
        .unwrap()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self
            .k
            .run(&["delete", "namespace", &self.ns, "--wait=false"], None);
    }
}

/// Counts delivery failures: a test's producer must lose nothing either.
struct Deliveries(AtomicU64);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces numbered records (`{"p": P, "seq": N, "v": "x"}`) to every
/// partition at a steady rate until stopped.
struct Stream {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<i64>>,
}

impl Stream {
    fn start(topic: &str, partitions: i32, per_second: u32) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, topic) = (stop.clone(), topic.to_owned());
        let handle = std::thread::spawn(move || {
            let producer: BaseProducer<Deliveries> = ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create_with_context(Deliveries(AtomicU64::new(0)))
                .unwrap();
            let mut seq = vec![0i64; partitions as usize];
            let tick = Duration::from_secs(1) / per_second;
            while !s.load(Ordering::Relaxed) {
                for p in 0..partitions {
                    let n = seq[p as usize];
                    let value = format!("{{\"p\":{p},\"seq\":{n},\"v\":\"x\"}}");
                    let key = format!("p{p}-k{}", n % 50);
                    let record = BaseRecord::to(&topic)
                        .partition(p)
                        .key(&key)
                        .payload(&value);
                    producer.send(record).map_err(|(e, _)| e).unwrap();
                    seq[p as usize] += 1;
                }
                producer.poll(Duration::ZERO);
                std::thread::sleep(tick);
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            let failed = producer.context().0.load(Ordering::Relaxed);
            assert_eq!(failed, 0, "the test's own producer failed to deliver");
            seq
        });
        Stream { stop, handle }
    }

    /// Stops producing; how many records went to each partition.
    fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// One output record as the watcher saw it.
#[derive(Clone)]
struct Seen {
    p: i64,
    seq: i64,
    /// Processed by the first pipeline version (`v` kept) or the second
    /// (`v` dropped).
    first_version: bool,
    at: Instant,
}

/// Reads the output topic (read_committed) from the start while the test
/// goes on.
struct Watch {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watch {
    fn start(topic: &str) -> Watch {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", crate::kafka::topic("e2e-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m: OwnedMessage = m.unwrap().detach();
                    let (p, seq) = sequence(&m).expect("an output record the test did not write");
                    let v: serde_json::Value =
                        serde_json::from_slice(m.payload().unwrap()).unwrap();
                    s.lock().unwrap().push(Seen {
                        p,
                        seq,
                        first_version: v.get("v").is_some(),
                        at: Instant::now(),
                    });
                }
            }
        });
        Watch {
            seen,
            stop,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `produced` records (per partition) could all have
    /// arrived, then asserts each arrived exactly once; returns them.
    fn exactly_once(mut self, produced: &[i64]) -> Vec<Seen> {
        let total: i64 = produced.iter().sum();
        until(
            "every record in the output",
            Duration::from_secs(240),
            || (self.count() as i64 >= total).then_some(()),
        );
        // A little longer, so duplicates arriving late are caught too.
        std::thread::sleep(Duration::from_secs(3));
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        let seen = self.snapshot();
        let mut counts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for s in &seen {
            *counts.entry((s.p, s.seq)).or_default() += 1;
        }
        let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
        let mut missing = Vec::new();
        for (p, n) in produced.iter().enumerate() {
            for seq in 0..*n {
                if !counts.contains_key(&(p as i64, seq)) {
                    missing.push((p, seq));
                }
            }
        }
        assert!(
            duplicates.is_empty() && missing.is_empty() && seen.len() as i64 == total,
            "{} records in, {} out: duplicates {duplicates:?}…, missing {} (first {:?})",
            total,
            seen.len(),
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        seen
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// GET over plain HTTP/1.0; the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// `wasmpipe_consumer_lag` samples in a scrape: (labels, value).
fn lag(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("wasmpipe_consumer_lag{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn the_deployment_runs_a_ready_pod_per_partition_exactly_once_under_restricted() {
    let p = Pipeline::up("up", 3, &[]);
    // replicas = partitions, every pod Ready through its probes.
    let pods = p.pods();
    assert_eq!((p.replicas(), pods.len()), (3, 3), "{pods:?}");
    let ready = p.kubectl(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=wasmpipe",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
    ]);
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

/// The longest time without a new output record between `from` and `to`.
fn longest_pause(seen: &[Seen], from: Instant, to: Instant) -> Duration {
    let mut at: Vec<Instant> = seen
        .iter()
        .map(|s| s.at)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    at.sort();
    at.insert(0, from);
    at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn faults_while_streaming_lose_and_duplicate_nothing() {
    let p = Pipeline::up("faults", 3, &[]);
    let watch = Watch::start(&p.output);
    let stream = Stream::start(&p.input, p.partitions, 50);
    let flowing = |after: usize| {
        until("records flowing", Duration::from_secs(120), || {
            (watch.count() > after + 100).then_some(())
        });
    };
    flowing(0);
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
    flowing(watch.count());

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
    flowing(watch.count());

    // A rolling restart of every pod.
    let t = Instant::now();
    p.kubectl(&["rollout", "restart", "deployment/wasmpipe"]);
    p.rolled_out();
    faults.push(("kubectl rollout restart", t, Instant::now()));
    flowing(watch.count());

    // A replica past the partition count: it idles in the group.
    let t = Instant::now();
    p.kubectl(&["scale", "deployment/wasmpipe", "--replicas=4"]);
    p.rolled_out();
    assert_eq!(p.pods().len(), 4);
    flowing(watch.count());
    p.kubectl(&["scale", "deployment/wasmpipe", "--replicas=3"]);
    p.rolled_out();
    faults.push(("scale 3 → 4 → 3", t, Instant::now()));
    flowing(watch.count());

    let produced = stream.stop();
    let seen = watch.exactly_once(&produced);
    for (fault, from, whole) in faults {
        println!(
            "{fault}: whole again in {:.1?}; longest pause in the output {:.1?}",
            whole - from,
            longest_pause(&seen, from, whole + Duration::from_secs(10))
        );
    }
}

#[test]
#[ignore = "needs the cluster: tests/k8s/e2e"]
fn the_operator_in_the_cluster_follows_partitions_and_leaves_a_missing_topic_alone() {
    let p = Pipeline::up("operator", 2, &[]);
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

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let added = futures_executor(admin.create_partitions(
        &[NewPartitions::new(&p.input, 3)],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ));
    added
        .unwrap()
        .into_iter()
        .for_each(|r| r.map(|_| ()).unwrap());
    until(
        "replicas following the new partition count",
        Duration::from_secs(120),
        || (p.replicas() == 3).then_some(()),
    );
    p.rolled_out();
    assert_eq!(p.pods().len(), 3);

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
