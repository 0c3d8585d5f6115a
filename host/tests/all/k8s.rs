//! The Kubernetes side against a scripted API server: every request is
//! checked against the script (method, path, query) and answered from it.

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use wasmpipe::background::Background;
use wasmpipe::k8s::ConfigMapMirror;
use wasmpipe::reload::read_snapshot;

/// One expected request and the answer to it.
pub struct Exchange {
    pub method: &'static str,
    pub path: String,
    /// Each must appear in the query string.
    pub query: Vec<String>,
    pub status: u16,
    /// The response body; a string is sent as is (watch streams).
    pub body: Value,
}

impl Exchange {
    pub fn new(method: &'static str, path: impl Into<String>, status: u16, body: Value) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            status,
            body,
        }
    }

    pub fn query(mut self, part: impl Into<String>) -> Self {
        self.query.push(part.into());
        self
    }
}

/// A request the scripted server received.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What a `Client` is built on in these tests.
pub type Transport = tower_test::mock::Mock<Request<Body>, Response<Body>>;

/// Starts a scripted API server on its own thread. Returns the client's
/// transport (turn it into a `Client` inside a Tokio runtime) and the
/// server thread, which returns what it saw, or panics naming the first
/// request that did not match the script.
pub fn scripted(script: Vec<Exchange>) -> (Transport, std::thread::JoinHandle<Vec<Seen>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = std::thread::spawn(move || {
        run(async move {
            let mut handle = std::pin::pin!(handle);
            let mut seen = Vec::new();
            for (i, ex) in script.into_iter().enumerate() {
                let (request, send) =
                    tokio::time::timeout(Duration::from_secs(20), handle.next_request())
                        .await
                        .unwrap_or_else(|_| {
                            panic!("request {i} ({} {}) never came", ex.method, ex.path)
                        })
                        .expect("the client went away");
                let uri = request.uri().clone();
                assert_eq!(
                    (request.method().as_str(), uri.path()),
                    (ex.method, ex.path.as_str()),
                    "request {i}: {uri}"
                );
                let query = uri.query().unwrap_or("");
                for part in &ex.query {
                    assert!(
                        query.contains(part.as_str()),
                        "request {i}: '{part}' not in {uri}"
                    );
                }
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec();
                seen.push(Seen {
                    method: ex.method.to_owned(),
                    uri: uri.to_string(),
                    content_type,
                    body,
                });
                let bytes = match ex.body {
                    Value::String(s) => s.into_bytes(),
                    v => serde_json::to_vec(&v).unwrap(),
                };
                send.send_response(
                    Response::builder()
                        .status(ex.status)
                        .header("content-type", "application/json")
                        .body(Body::from(bytes))
                        .unwrap(),
                );
            }
            seen
        })
    });
    (service, server)
}

/// Runs `f` to completion on a runtime of its own.
pub fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A Kubernetes `Status` error body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn configmap(version: &str, files: &[(&str, &str)], binary: &[(&str, &[u8])]) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = files
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let binary: serde_json::Map<String, Value> = binary
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plugins", "namespace": "streams", "resourceVersion": version},
        "data": data, "binaryData": binary,
    })
}

fn wait_for(dir: &Path, what: &str, ok: impl Fn(&Path) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(dir) {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_watched_configmap_is_mirrored_as_the_kubelet_would() {
    let identity = std::fs::read(wasmpipe_test_guests::FLAT_IDENTITY).unwrap();
    let redact = std::fs::read(wasmpipe_test_guests::FLAT_REDACT).unwrap();
    let v1 = configmap(
        "1",
        &[(
            "pipeline.yaml",
            "plugins:\n  - file: a.wasm\n  - file: b.wasm\n",
        )],
        &[("a.wasm", &identity), ("b.wasm", &redact)],
    );
    let v2 = configmap(
        "2",
        &[(
            "pipeline.yaml",
            "plugins:\n  - file: b.wasm\n    config: { mask: x }\n",
        )],
        &[("b.wasm", &redact)],
    );
    let base = "/api/v1/namespaces/streams/configmaps";
    let (service, server) = scripted(vec![
        Exchange::new("GET", format!("{base}/plugins"), 200, v1.clone()),
        Exchange::new(
            "GET",
            base,
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"}, "items": [v1]}),
        )
        .query("fieldSelector=metadata.name%3Dplugins"),
        Exchange::new(
            "GET",
            base,
            200,
            Value::String(format!("{}\n", json!({"type": "MODIFIED", "object": v2}))),
        )
        .query("watch=true")
        .query("resourceVersion=1")
        .query("fieldSelector=metadata.name%3Dplugins"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let background = Background::new().unwrap();
    let mirror = ConfigMapMirror::start_with(
        &background,
        move || async move { Ok(Client::new(service, "default")) },
        Some("streams".into()),
        "plugins".into(),
        dir.path().to_owned(),
    )
    .unwrap();

    // The first version is there when start returns.
    let first = read_snapshot(dir.path(), None).unwrap();
    let names: Vec<&str> = first.plugins.iter().map(|(s, _)| s.file.as_str()).collect();
    assert_eq!(names, ["a.wasm", "b.wasm"]);
    assert_eq!(std::fs::read(dir.path().join("a.wasm")).unwrap(), identity);

    // The watched update replaces it whole; the file it dropped is gone.
    wait_for(dir.path(), "the second version", |d| {
        !d.join("a.wasm").exists()
    });
    let second = read_snapshot(dir.path(), None).unwrap();
    assert_eq!(second.plugins.len(), 1);
    let config: Vec<(String, String)> = second.plugins[0]
        .0
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(config, [("mask".to_owned(), "x".to_owned())]);
    assert_eq!(std::fs::read(dir.path().join("b.wasm")).unwrap(), redact);
    drop(mirror);
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 3);
    // Reads only: get, list, watch — what a Role with resourceNames grants.
    for s in &seen {
        assert_eq!(
            (s.method.as_str(), s.content_type.as_deref(), s.body.len()),
            ("GET", None, 0),
            "{}",
            s.uri
        );
    }
}

#[test]
fn a_forbidden_or_missing_configmap_is_named_with_the_fix() {
    for (code, reason, expect) in [
        (403, "Forbidden", "grant get, list and watch"),
        (404, "NotFound", "does not exist"),
    ] {
        let (service, server) = scripted(vec![Exchange::new(
            "GET",
            "/api/v1/namespaces/streams/configmaps/plugins",
            code,
            status(code, reason, "configmaps \"plugins\" is not allowed"),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let background = Background::new().unwrap();
        let err = ConfigMapMirror::start_with(
            &background,
            move || async move { Ok(Client::new(service, "default")) },
            Some("streams".into()),
            "plugins".into(),
            dir.path().to_owned(),
        )
        .err()
        .expect("start must fail");
        let text = format!("{err:#}");
        assert!(text.contains("ConfigMap streams/plugins"), "{text}");
        assert!(text.contains(expect), "{text}");
        server.join().unwrap();
    }
}

#[test]
fn a_mirror_refuses_a_directory_holding_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), b"mine").unwrap();
    let err = wasmpipe::reload::kubelet_update(dir.path(), &[("a.wasm", b"new")]).unwrap_err();
    assert!(err.to_string().contains("is a regular file"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("a.wasm")).unwrap(), b"mine");
}

#[test]
fn the_alerts_and_dashboard_use_only_metrics_wasmpipe_exports() {
    // Every family with one series, so every metric is in the exposition.
    use std::time::Duration;
    use wasmpipe::ops::events::*;
    let t = wasmpipe::ops::Telemetry::default();
    let (plugin, kind, reason, record) = ("p", "trap", "trap", "t/0@0");
    t.emit(BatchRun {
        topic: "t",
        records: 1,
        took: Duration::from_millis(1),
    });
    t.emit(OutputsProduced {
        per_topic: &[("t", 1)],
    });
    t.emit(RecordFailed {
        plugin,
        kind,
        reason,
    });
    let failed = Failed {
        record,
        plugin,
        kind,
        reason,
        error: "e",
    };
    t.emit(RecordDeadLettered {
        failed,
        dlq: "dlq",
        dropped: None,
    });
    t.emit(RecordSkipped(failed));
    t.emit(LagReported {
        lags: &[("t".into(), 0, 0)],
    });
    t.emit(Rebalanced::Assigned(&[]));
    t.emit(SetRunning {
        version: 2,
        sha256: "s",
        plugins: &[("p".into(), "s".into())],
    });
    t.emit(TransactionCommitted {
        took: Duration::from_millis(50),
    });
    t.emit(Recovery::ProducerFailed);
    let m = &t.metrics;
    let exported: std::collections::BTreeSet<String> = m
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert!(exported.contains("wasmpipe_consumer_lag"), "{exported:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/monitoring");
    let mut used = 0;
    for file in ["prometheus-rules.yaml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (at, _) in text.match_indices("wasmpipe_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exported.contains(base),
                "{file} uses {name}, which wasmpipe does not export"
            );
            used += 1;
        }
    }
    assert!(used > 10, "the files name the metrics they use");
}

mod deploy {
    use super::*;
    use wasmpipe::k8s::CONFIGMAP_LIMIT;
    use wasmpipe::k8s::deploy::{File, apply, configmap, fit};

    fn file(name: &str, bytes: Vec<u8>) -> File {
        File {
            name: name.into(),
            bytes,
        }
    }

    #[test]
    fn a_set_that_fits_is_kept_as_it_is() {
        let redact = std::fs::read(wasmpipe_test_guests::FLAT_REDACT).unwrap();
        let pipeline = file(
            "pipeline.yaml",
            b"plugins:\n  - file: redact.wasm\n".to_vec(),
        );
        let files = fit(
            vec![file("redact.wasm", redact.clone())],
            Some(pipeline.clone()),
        )
        .unwrap();
        assert_eq!(files, [file("redact.wasm", redact), pipeline]);
    }

    #[test]
    fn the_largest_plugins_are_compressed_until_the_set_fits() {
        let redact = std::fs::read(wasmpipe_test_guests::FLAT_REDACT).unwrap();
        // 1.2 MB that compresses well, as a large plugin does.
        let big: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8 / 8).collect();
        let files = fit(
            vec![
                file("redact.wasm", redact.clone()),
                file("big.wasm", big.clone()),
            ],
            None,
        )
        .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["redact.wasm", "big.wasm.zst"]);
        assert_eq!(files[0].bytes, redact, "what fits stays raw");
        assert_eq!(zstd::decode_all(&files[1].bytes[..]).unwrap(), big);
        assert!(files.iter().map(|f| f.bytes.len()).sum::<usize>() <= CONFIGMAP_LIMIT);
    }

    #[test]
    fn a_set_too_large_even_compressed_is_refused_with_its_sizes() {
        // Incompressible: bytes of a hash chain.
        let mut noise = Vec::with_capacity(1_100_000);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while noise.len() < 1_100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.extend_from_slice(&x.to_le_bytes());
        }
        let err = fit(vec![file("noise.wasm", noise)], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("noise.wasm.zst"), "{err}");
        assert!(err.contains("a ConfigMap holds 1048576"), "{err}");
    }

    #[test]
    fn the_configmap_is_server_side_applied_as_wasmpipe() {
        let redact = std::fs::read(wasmpipe_test_guests::FLAT_REDACT).unwrap();
        let files = vec![
            file("redact.wasm", redact.clone()),
            file(
                "pipeline.yaml",
                b"plugins:\n  - file: redact.wasm\n".to_vec(),
            ),
        ];
        let cm = configmap("plugins", "streams", &files);
        let mut answer = serde_json::to_value(&cm).unwrap();
        answer["metadata"]["resourceVersion"] = json!("42");
        let (service, server) = scripted(vec![
            Exchange::new(
                "PATCH",
                "/api/v1/namespaces/streams/configmaps/plugins",
                200,
                answer,
            )
            .query("fieldManager=wasmpipe")
            .query("force=true"),
            Exchange::new(
                "PATCH",
                "/api/v1/namespaces/streams/configmaps/plugins",
                403,
                status(403, "Forbidden", "configmaps \"plugins\" is forbidden"),
            ),
        ]);
        let err = run(async {
            let client = Client::new(service, "default");
            let applied = apply(client.clone(), &cm).await.unwrap();
            assert_eq!(applied.metadata.resource_version.as_deref(), Some("42"));
            apply(client, &cm).await.unwrap_err()
        });
        let text = format!("{err:#}");
        assert!(text.contains("ConfigMap streams/plugins"), "{text}");
        assert!(
            text.contains("grant get, create and patch on configmaps"),
            "{text}"
        );
        let seen = server.join().unwrap();
        assert_eq!(
            seen[0].content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(sent["kind"], "ConfigMap");
        assert_eq!(
            sent["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "wasmpipe"
        );
        assert_eq!(
            sent["data"]["pipeline.yaml"],
            "plugins:\n  - file: redact.wasm\n"
        );
        use base64::Engine as _;
        let wasm = base64::engine::general_purpose::STANDARD
            .decode(sent["binaryData"]["redact.wasm"].as_str().unwrap())
            .unwrap();
        assert_eq!(wasm, redact);
    }
}

mod scale {
    use super::*;
    use wasmpipe::k8s::scale::{ScaleError, replicas_for, set_replicas};

    #[test]
    fn replicas_follow_partitions_and_never_exceed_them() {
        assert_eq!(replicas_for("orders", 6, None).unwrap(), 6);
        assert_eq!(replicas_for("orders", 6, Some(3)).unwrap(), 3);
        let err = replicas_for("orders", 6, Some(8)).unwrap_err();
        assert!(matches!(
            err,
            ScaleError::AbovePartitions {
                replicas: 8,
                partitions: 6,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("2 would sit idle"), "{text}");
        assert!(text.contains("add partitions to the topic first"), "{text}");
        assert!(matches!(
            replicas_for("orders", 6, Some(0)),
            Err(ScaleError::Zero)
        ));
    }

    fn scale(replicas: i32) -> Value {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "wasmpipe", "namespace": "streams"},
               "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
    }

    #[test]
    fn the_scale_subresource_is_patched_only_when_it_differs() {
        let path = "/apis/apps/v1/namespaces/streams/deployments/wasmpipe/scale";
        let (service, server) = scripted(vec![
            Exchange::new("GET", path, 200, scale(2)),
            Exchange::new("PATCH", path, 200, scale(3)),
            Exchange::new("GET", path, 200, scale(3)),
            Exchange::new(
                "GET",
                "/apis/apps/v1/namespaces/streams/deployments/nope/scale",
                404,
                status(404, "NotFound", "deployments.apps \"nope\" not found"),
            ),
        ]);
        let err = run(async {
            let client = Client::new(service, "default");
            assert_eq!(
                set_replicas(client.clone(), "streams", "wasmpipe", 3)
                    .await
                    .unwrap(),
                2
            );
            // Already there: read, not written.
            assert_eq!(
                set_replicas(client.clone(), "streams", "wasmpipe", 3)
                    .await
                    .unwrap(),
                3
            );
            set_replicas(client, "streams", "nope", 3)
                .await
                .unwrap_err()
        });
        let text = format!("{err:#}");
        assert!(
            text.contains("Deployment streams/nope does not exist"),
            "{text}"
        );
        let seen = server.join().unwrap();
        assert_eq!(
            seen[1].content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
        assert_eq!(body, json!({"spec": {"replicas": 3}}));
    }
}

mod operator {
    use super::*;
    use std::sync::Arc;
    use wasmpipe::k8s::operator::{Change, Elector, Options, Partitions, reconcile};

    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/streams/leases";

    fn options(identity: &str) -> Options {
        Options {
            namespace: "streams".into(),
            identity: identity.into(),
            lease: "wasmpipe-operator".into(),
            lease_duration: Duration::from_secs(15),
            resync: Duration::from_secs(30),
        }
    }

    fn lease(holder: &str, renewed_secs_ago: i64, transitions: i32) -> Value {
        let renewed = k8s_openapi::jiff::Timestamp::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(
                renewed_secs_ago,
            ))
            .unwrap();
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "wasmpipe-operator", "namespace": "streams", "resourceVersion": "7"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                        "acquireTime": renewed.to_string(), "renewTime": renewed.to_string(),
                        "leaseTransitions": transitions}})
    }

    #[test]
    fn a_free_lease_is_taken_a_held_one_respected_an_expired_one_raced_for() {
        let name = format!("{LEASES}/wasmpipe-operator");
        let (service, server) = scripted(vec![
            // Absent: created, leading.
            Exchange::new(
                "GET",
                &name,
                404,
                status(404, "NotFound", "leases \"wasmpipe-operator\" not found"),
            ),
            Exchange::new("POST", LEASES, 201, lease("op-a", 0, 0)),
            // Held by another copy and fresh: following, nothing written.
            Exchange::new("GET", &name, 200, lease("op-b", 2, 0)),
            // Held by another copy that stopped renewing: taken over, but
            // a third copy wrote first.
            Exchange::new("GET", &name, 200, lease("op-b", 60, 3)),
            Exchange::new(
                "PUT",
                &name,
                409,
                status(409, "Conflict", "the object has been modified"),
            ),
            // Its own: renewed.
            Exchange::new("GET", &name, 200, lease("op-a", 5, 4)),
            Exchange::new("PUT", &name, 200, lease("op-a", 0, 4)),
        ]);
        let results = run(async {
            let elector = Elector::new(Client::new(service, "default"), options("op-a"));
            let mut r = Vec::new();
            for _ in 0..4 {
                r.push(elector.try_lead().await.unwrap());
            }
            r
        });
        assert_eq!(results, [true, false, false, true]);
        let seen = server.join().unwrap();
        let created: Value = serde_json::from_slice(&seen[1].body).unwrap();
        assert_eq!(created["spec"]["holderIdentity"], "op-a");
        assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
        let takeover: Value = serde_json::from_slice(&seen[4].body).unwrap();
        assert_eq!(takeover["spec"]["holderIdentity"], "op-a");
        assert_eq!(
            takeover["spec"]["leaseTransitions"], 4,
            "a new holder is a transition"
        );
        assert_eq!(
            takeover["metadata"]["resourceVersion"], "7",
            "written only over what was read"
        );
        let renewal: Value = serde_json::from_slice(&seen[6].body).unwrap();
        assert_eq!(
            renewal["spec"]["leaseTransitions"], 4,
            "a renewal is not a transition"
        );
    }

    fn deployment(name: &str, topic: Option<&str>, replicas: i32) -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "streams"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        if let Some(t) = topic {
            d["metadata"]["annotations"] = json!({"wasmpipe.dev/topic": t});
        }
        d
    }

    /// Partition counts from the real broker.
    #[test]
    fn annotated_deployments_follow_their_topics_partitions() {
        let (grown, steady) = (
            crate::kafka::topic("op-grown"),
            crate::kafka::topic("op-steady"),
        );
        crate::kafka::create_topics(&[(&grown, 3), (&steady, 2)]);
        let missing = crate::kafka::topic("op-missing");
        let deployments = "/apis/apps/v1/namespaces/streams/deployments";
        let list = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "9"},
            "items": [deployment("orders", Some(&grown), 2), deployment("payments", Some(&steady), 2),
                      deployment("other", None, 5), deployment("broken", Some(&missing), 1)]});
        let (service, server) = scripted(vec![
            Exchange::new("GET", deployments, 200, list),
            Exchange::new(
                "PATCH",
                format!("{deployments}/orders/scale"),
                200,
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 3}}),
            ),
        ]);
        let kafka = wasmpipe::kafka::KafkaConfig {
            brokers: crate::kafka::bootstrap(),
            properties: vec![],
            token_source: None,
        };
        let partitions: Partitions = Arc::new(move |topic: &str| {
            wasmpipe::kafka::partition_count(&kafka, topic, Duration::from_secs(10))
        });
        let changes =
            run(async { reconcile(Client::new(service, "default"), "streams", &partitions).await })
                .unwrap();
        assert_eq!(
            changes,
            [Change {
                deployment: "orders".into(),
                topic: grown.clone(),
                before: 2,
                after: 3
            }]
        );
        let seen = server.join().unwrap();
        assert_eq!(
            seen.len(),
            2,
            "only the deployment behind its partitions is patched"
        );
        let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
        assert_eq!(body, json!({"spec": {"replicas": 3}}));
    }
}
