//! The Kubernetes side against a scripted API server: every request is
//! checked against the script (method, path, query) and answered from it.

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
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
    let mirror = ConfigMapMirror::start_with(
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
        (
            403,
            "Forbidden",
            "grant the ServiceAccount get, list and watch",
        ),
        (404, "NotFound", "does not exist"),
    ] {
        let (service, server) = scripted(vec![Exchange::new(
            "GET",
            "/api/v1/namespaces/streams/configmaps/plugins",
            code,
            status(code, reason, "configmaps \"plugins\" is not allowed"),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let err = ConfigMapMirror::start_with(
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
    let exported: std::collections::BTreeSet<String> = wasmpipe::ops::Metrics::default()
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
