//! Script plugins: a `.py` file run by the Python script runtime. These
//! need the runtime component, which `tests/polyglot/run` builds with the
//! Python SDK and passes in WASMPIPE_SCRIPT_RUNTIMES; it runs them with
//! `cargo test -- --ignored script`.

use crate::{batch, run, runtime, values};
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmpipe::config::load_snapshot;
use wasmpipe::reload::{kubelet_update, read_snapshot};
use wasmpipe::runtime::{Failure, Limits, LoadError, read_plugin_file};

const V1: &str = "\
import wasmpipe

def init(config):
    global suffix
    suffix = config.get('suffix', '!')

def transform(record):
    return record.forward(value=record.text() + suffix)
";

const V2: &str = "\
def transform(record):
    return [record.forward(value=record.text().upper()), record.forward(topic='copies')]
";

fn runtime_dir() -> String {
    std::env::var("WASMPIPE_SCRIPT_RUNTIMES").expect(
        "WASMPIPE_SCRIPT_RUNTIMES: run these through tests/polyglot/run, which builds the script runtime",
    )
}

fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs the Python script runtime: tests/polyglot/run"]
fn script_plugins_run_their_source_and_reload_by_rerunning_init() {
    runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let files = |text: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            ("shout.py".into(), text.as_bytes().to_vec()),
            (
                "pipeline.yaml".into(),
                b"plugins:\n  - file: shout.py\n    config: { suffix: '?' }\n".to_vec(),
            ),
        ]
    };
    let write = |text: &str| {
        let f = files(text);
        let refs: Vec<(&str, &[u8])> = f.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        kubelet_update(dir.path(), &refs).unwrap();
    };
    let input = batch(&[r#"{"value":"a"}"#, r#"{"value":"b"}"#]);

    write(V1);
    let first = read_snapshot(dir.path(), None).unwrap();
    let chain = load_snapshot(&runtime(), &first, Limits::default()).unwrap();
    let plugin = &chain.plugins[0];
    assert_eq!(plugin.name, "shout");
    // The identity is the script's, so metrics and dead letters name what
    // the user wrote.
    assert_eq!(plugin.sha256, hex::encode(Sha256::digest(V1.as_bytes())));
    assert_eq!(values(&run(chain.plugins.clone(), &input)), ["a?", "b?"]);

    // A new script is a new set: same interpreter (the compile cache's
    // key), new source, init run again.
    write(V2);
    let second = read_snapshot(dir.path(), None).unwrap();
    assert_ne!(first.sha256, second.sha256);
    assert_eq!(
        first.plugins[0].1.wasm_sha256,
        second.plugins[0].1.wasm_sha256
    );
    let chain = load_snapshot(&runtime(), &second, Limits::default()).unwrap();
    let out = run(chain.plugins.clone(), &input);
    assert_eq!(values(&out), ["A", "a", "B", "b"]);
    let routed: Vec<Option<&str>> = out.records().map(|r| r.topic).collect();
    assert_eq!(routed, [None, Some("copies"), None, Some("copies")]);
}

#[test]
#[ignore = "needs the Python script runtime: tests/polyglot/run"]
fn script_errors_name_the_file_and_line() {
    runtime_dir();
    let dir = tempfile::tempdir().unwrap();

    let bad = script(
        dir.path(),
        "broken.py",
        "def transform(record):\n    x = 1 +\n",
    );
    let source = read_plugin_file(&bad).unwrap();
    let err = runtime()
        .load(&source, vec![], Limits::default())
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::InitRefused { message, .. } if message == "broken.py line 2: invalid syntax"),
        "{err}"
    );

    let raising = script(
        dir.path(),
        "lookup.py",
        "import json\n\ndef transform(record):\n    doc = json.loads(record.value)\n    return record.forward(value=doc['missing'])\n",
    );
    let source = read_plugin_file(&raising).unwrap();
    let plugin = runtime().load(&source, vec![], Limits::default()).unwrap();
    let out = run(vec![plugin], &batch(&[r#"{"value":"{\"a\":1}"}"#]));
    assert_eq!(out.failures.len(), 1);
    assert_eq!(
        out.failures[0].failure,
        Failure::Guest("lookup.py line 5: KeyError: 'missing'".into())
    );

    let refused = script(
        dir.path(),
        "strict.py",
        "import wasmpipe\n\ndef init(config):\n    config.only('field')\n\ndef transform(record):\n    return record\n",
    );
    let source = read_plugin_file(&refused).unwrap();
    let err = runtime()
        .load(
            &source,
            vec![("feild".into(), "x".into())],
            Limits::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown config key 'feild' (known: field)"),
        "{err}"
    );
}

#[test]
#[ignore = "needs the JavaScript script runtime: tests/polyglot/run"]
fn javascript_scripts_run_reload_and_name_the_line_of_an_error() {
    runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let v1 = script(
        dir.path(),
        "tag.js",
        "let tag;\nfunction init(config) {\n  tag = config.require('tag');\n}\nfunction transform(record) {\n  return record.forward({ headers: [...record.headers, ['tag', tag]] });\n}\n",
    );
    let source = read_plugin_file(&v1).unwrap();
    assert_eq!(source.name, "tag");
    let err = runtime()
        .load(&source, vec![], Limits::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("missing config key 'tag'"),
        "{err}"
    );
    let plugin = runtime()
        .load(
            &source,
            vec![("tag".into(), "t1".into())],
            Limits::default(),
        )
        .unwrap();
    let out = run(
        vec![plugin],
        &batch(&[r#"{"value":"v","headers":[["h","1"]]}"#]),
    );
    assert_eq!(
        crate::lines(&out),
        [r#"{"value":"v","headers":[["h","1"],["tag","t1"]]}"#]
    );

    let broken = script(
        dir.path(),
        "lookup.js",
        "function transform(record) {\n  const doc = record.json();\n  return record.forward({ value: doc.missing.field });\n}\n",
    );
    let plugin = runtime()
        .load(
            &read_plugin_file(&broken).unwrap(),
            vec![],
            Limits::default(),
        )
        .unwrap();
    let out = run(vec![plugin], &batch(&[r#"{"value":"{\"a\":1}"}"#]));
    assert_eq!(
        out.failures[0].failure,
        Failure::Guest(
            "lookup.js line 3: TypeError: can't access property \"field\", doc.missing is undefined"
                .into()
        )
    );
}

/// A Python script that sleeps for an hour (`time.sleep`, a blocking WASI
/// poll on a clock) costs its deadline, in `transform` and in `init`, as a
/// Rust plugin's `std::thread::sleep` does.
#[test]
#[ignore = "needs the Python script runtime: tests/polyglot/run"]
fn script_sleeping_in_python_costs_the_deadline() {
    runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        deadline: std::time::Duration::from_secs(2),
        ..Limits::default()
    };
    let sleepy = script(
        dir.path(),
        "sleepy.py",
        "import time\n\ndef transform(record):\n    if record.text() == 'poison':\n        time.sleep(3600)\n    return record.forward()\n",
    );
    let plugin = runtime()
        .load(&read_plugin_file(&sleepy).unwrap(), vec![], limits)
        .unwrap();
    let started = std::time::Instant::now();
    let out = run(
        vec![plugin],
        &batch(&[
            r#"{"value":"a"}"#,
            r#"{"value":"poison"}"#,
            r#"{"value":"c"}"#,
        ]),
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(values(&out), ["a", "c"]);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].index, 1);
    assert_eq!(
        out.failures[0].failure,
        Failure::Deadline(std::time::Duration::from_secs(2))
    );

    let sleepy_init = script(
        dir.path(),
        "sleepy_init.py",
        "import time\n\ndef init(config):\n    time.sleep(3600)\n\ndef transform(record):\n    return record.forward()\n",
    );
    let started = std::time::Instant::now();
    let err = runtime()
        .load(&read_plugin_file(&sleepy_init).unwrap(), vec![], limits)
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(
        matches!(
            &err,
            LoadError::InitFailed {
                failure: Failure::Deadline(_),
                ..
            }
        ),
        "{err}"
    );
}
