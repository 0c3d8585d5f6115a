//! The cluster, a pipeline in it, and records streamed in and watched out.

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
pub(super) struct Cluster {
    pub(super) kubectl: PathBuf,
    pub(super) kubeconfig: PathBuf,
    /// A copy of `k8s/` with the example plugin in `base/plugins`.
    pub(super) manifests: PathBuf,
    /// `tests/k8s/cluster`, for crictl on the node.
    pub(super) script: PathBuf,
}

pub(super) fn cluster() -> Cluster {
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
    pub(super) fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
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
    pub(super) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(super) fn crictl(&self, args: &[&str]) -> String {
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
pub(super) fn until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
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
pub(super) struct Pipeline {
    pub(super) k: Cluster,
    pub(super) ns: String,
    pub(super) input: String,
    pub(super) output: String,
    pub(super) partitions: i32,
}

impl Pipeline {
    pub(super) fn up(name: &str, partitions: i32, components: &[&str]) -> Pipeline {
        Pipeline::up_with(name, partitions, components, &[])
    }

    /// [`Pipeline::up`] with `plugins` (file name, contents; a
    /// `pipeline.yaml` among them) as the plugin ConfigMap instead of the
    /// base's.
    pub(super) fn up_with(
        name: &str,
        partitions: i32,
        components: &[&str],
        plugins: &[(&str, &[u8])],
    ) -> Pipeline {
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
        let dir = k.manifests.join("e2e").join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        let mut generators = String::new();
        if !plugins.is_empty() {
            generators.push_str(
                "  - name: wasmpipe-plugins\n    behavior: replace\n    options: {disableNameSuffixHash: true}\n    files:\n",
            );
            for (file, bytes) in plugins {
                std::fs::write(dir.join(file), bytes).unwrap();
                generators.push_str(&format!("      - {file}\n"));
            }
        }
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
{generators}patches:
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
    pub(super) fn apply(&self, kustomization: &str) {
        let dir = self.k.manifests.join("e2e").join(&self.ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kustomization.yaml"), kustomization).unwrap();
        self.k
            .ok(&["apply", "--server-side", "-k", dir.to_str().unwrap()]);
    }

    pub(super) fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.ns];
        all.extend_from_slice(args);
        self.k.ok(&all)
    }

    /// Waits for the Deployment's rollout, then for exactly `replicas`
    /// pods, every one Ready and none terminating.
    pub(super) fn rolled_out(&self) {
        self.kubectl(&["rollout", "status", "deployment/wasmpipe", "--timeout=300s"]);
        let want = self.replicas() as usize;
        until(
            "every pod Ready, none terminating",
            Duration::from_secs(180),
            || {
                let pods = self.pods_jsonpath(&[], "{range .items[*]}{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}");
                let pods: Vec<&str> = pods.lines().collect();
                (pods.len() == want && pods.iter().all(|p| *p == "|True")).then_some(())
            },
        );
    }

    /// `template` (a kubectl jsonpath) over the pipeline's pods, with
    /// `extra` arguments (a field selector).
    pub(super) fn pods_jsonpath(&self, extra: &[&str], template: &str) -> String {
        let jsonpath = format!("jsonpath={template}");
        let mut args = vec![
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=wasmpipe",
            "-o",
            &jsonpath,
        ];
        args.extend_from_slice(extra);
        self.kubectl(&args)
    }

    pub(super) fn pods(&self) -> Vec<String> {
        self.pods_jsonpath(
            &["--field-selector=status.phase=Running"],
            "{.items[*].metadata.name}",
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    }

    pub(super) fn replicas(&self) -> i32 {
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
pub(super) struct Deliveries(AtomicU64);

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
pub(super) struct Stream {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) handle: JoinHandle<Vec<i64>>,
}

impl Stream {
    pub(super) fn start(topic: &str, partitions: i32, per_second: u32) -> Stream {
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
    pub(super) fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// One output record as the watcher saw it.
#[derive(Clone)]
pub(super) struct Seen {
    pub(super) p: i64,
    pub(super) seq: i64,
    /// Processed by the first pipeline version (`v` kept) or the second
    /// (`v` dropped).
    pub(super) first_version: bool,
    /// The value of `v`, if any.
    pub(super) v: Option<String>,
    pub(super) at: Instant,
}

/// Reads the output topic (read_committed) from the start while the test
/// goes on.
pub(super) struct Watch {
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) handle: Option<JoinHandle<()>>,
}

impl Watch {
    pub(super) fn start(topic: &str) -> Watch {
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
                        v: v.get("v").and_then(|v| v.as_str()).map(str::to_owned),
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

    pub(super) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub(super) fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `produced` records (per partition) could all have
    /// arrived, then asserts each arrived exactly once; returns them.
    pub(super) fn exactly_once(mut self, produced: &[i64]) -> Vec<Seen> {
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
pub(super) fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
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
pub(super) fn lag(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("wasmpipe_consumer_lag{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The longest time any one partition went without a new output record,
/// for gaps that began between `from` and `to` (a stall that outlasts `to`
/// counts up to the partition's next record; a stalled partition hides in
/// the total, so each is measured apart).
pub(super) fn longest_pause(seen: &[Seen], from: Instant, to: Instant) -> Duration {
    let mut by_partition: BTreeMap<i64, Vec<Instant>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.at >= from) {
        by_partition.entry(s.p).or_default().push(s.at);
    }
    by_partition
        .into_values()
        .map(|mut at| {
            at.sort();
            at.insert(0, from);
            at.windows(2)
                .filter(|w| w[0] <= to)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default()
        })
        .max()
        .unwrap_or(to - from)
}

/// Grows a topic to `partitions`.
pub(super) fn add_partitions(topic: &str, partitions: usize) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let added = futures_executor(admin.create_partitions(
        &[NewPartitions::new(topic, partitions)],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ));
    for r in added.unwrap() {
        r.unwrap();
    }
}
