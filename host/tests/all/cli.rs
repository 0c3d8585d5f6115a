//! The `wasmpipe` binary as a user runs it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use wasmpipe_test_guests::{FLAT_IDENTITY, FLAT_MISBEHAVE, FLAT_REDACT, FLAT_WRONG_WORLD};

fn wasmpipe(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_reports_a_plugin_and_exits_zero_when_it_loads() {
    let out = wasmpipe(&["plugin", "check", FLAT_IDENTITY], "");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("world    flat (wasmpipe:transform@0.2.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("wasmpipe:transform/flat-transform@0.2.0"));
    assert!(stdout.contains("fits a ConfigMap"));
    assert!(stdout.contains("loads    yes"));

    let json = wasmpipe(&["plugin", "check", FLAT_IDENTITY, "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let wasm = std::fs::read(FLAT_IDENTITY).unwrap();
    assert_eq!(report["wasm_bytes"], wasm.len());
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["world"], "flat");
}

#[test]
fn check_exits_non_zero_for_the_wrong_world_and_a_refused_config() {
    let out = wasmpipe(&["plugin", "check", FLAT_WRONG_WORLD], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("loads    NO: plugin"),
        "{}",
        text(&out.stdout)
    );

    let out = wasmpipe(&["plugin", "check", FLAT_REDACT], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("init refused its config: set 'mask' and/or 'drop'"),
        "{}",
        text(&out.stdout)
    );
    let out = wasmpipe(&["plugin", "check", FLAT_REDACT, "--config", "mask=a"], "");
    assert!(out.status.success());
}

#[test]
fn every_command_that_runs_a_plugin_refuses_an_impossible_limit_by_its_flag() {
    let refusal = "--plugin-output-mib (WASMPIPE_PLUGIN_OUTPUT_MIB) 4096 is more than one batch's outputs can hold (2047 MiB): set at most 2047 (default 16)";
    for args in [
        &["plugin", "check", FLAT_IDENTITY][..],
        &["plugin", "test", FLAT_IDENTITY],
    ] {
        let out = wasmpipe(&[args, &["--plugin-output-mib", "4096"]].concat(), "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(refusal),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn check_names_a_missing_file() {
    let out = wasmpipe(&["plugin", "check", "no/such/plugin.wasm"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "wasmpipe: plugin no/such/plugin.wasm: cannot read it: No such file or directory (os error 2)"
    );
}

#[test]
fn test_runs_stdin_through_the_plugin_and_reports_per_line() {
    let input = "{\"key\":\"a\",\"value\":\"{\\\"e\\\":\\\"x\\\"}\"}\n\n{\"value\":\"nope\"}\n{\"vaule\":1}\n";
    let out = wasmpipe(
        &["plugin", "test", FLAT_REDACT, "--config", "mask=e"],
        input,
    );
    assert_eq!(
        text(&out.stdout),
        "{\"key\":\"a\",\"value\":\"{\\\"e\\\":\\\"***\\\"}\"}\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 3: error in plugin redact: value is not JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4: not a record: unknown field `vaule`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wasmpipe: 2 records in, 1 out, 1 failed (guest_error 1), 1 bad lines"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "a bad input line fails the run");
}

#[test]
fn test_names_the_failing_line_and_kind_for_a_trap() {
    let input = "{\"value\":\"a\"}\n{\"value\":\"poison\"}\n";
    let out = wasmpipe(
        &["plugin", "test", FLAT_MISBEHAVE, "--config", "mode=panic"],
        input,
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "line 2: trap in plugin misbehave: trap: wasm `unreachable` instruction executed"
        ),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "{\"value\":\"a\"}\n");
    assert!(
        out.status.success(),
        "per-record failures are reported, not fatal"
    );
}

#[test]
fn test_compares_with_expected_output_and_shows_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"key\":\"1\",\"value\":\"v\",\"headers\":[[\"h\",\"1\"],[\"h\",\"2\"]],\"timestamp\":9}\n").unwrap();
    let expect = dir.path().join("expect.jsonl");
    // Same record, spelled with other key order: still a match.
    std::fs::write(&expect, "{\"timestamp\":9,\"value\":\"v\",\"key\":\"1\",\"headers\":[[\"h\",\"1\"],[\"h\",\"2\"]]}\n").unwrap();
    let args = |e: &Path| {
        vec![
            "plugin".to_owned(),
            "test".into(),
            FLAT_IDENTITY.into(),
            "--input".into(),
            input.display().to_string(),
            "--expect".into(),
            e.display().to_string(),
        ]
    };
    let run = |e: &Path| {
        let a = args(e);
        wasmpipe(&a.iter().map(String::as_str).collect::<Vec<_>>(), "")
    };
    let out = run(&expect);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("output matches the expected"));

    std::fs::write(&expect, "{\"key\":\"1\",\"value\":\"w\",\"headers\":[[\"h\",\"1\"],[\"h\",\"2\"]],\"timestamp\":9}\n").unwrap();
    let out = run(&expect);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("-{\"key\":\"1\",\"value\":\"w\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("+{\"key\":\"1\",\"value\":\"v\""),
        "{stderr}"
    );
    assert!(stderr.contains("OUTPUT DIFFERS"), "{stderr}");
}

#[test]
fn new_scaffolds_a_plugin_that_builds_and_passes_its_own_test() {
    // Outside this checkout, as a user runs it: the binary's own SDK.
    let dir = tempfile::tempdir().unwrap();
    let out = wasmpipe(
        &[
            "plugin",
            "new",
            "tag-it",
            "--lang",
            "rust",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let root = dir.path().join("tag-it");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"path = "./wasmpipe/sdk/rust""#),
        "{manifest}"
    );
    assert!(root.join("wasmpipe/wit/transform.wit").is_file());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = dir.path().join("target");
    for args in [
        vec!["test", "-q"],
        vec!["build", "-q", "--release", "--target", "wasm32-wasip2"],
    ] {
        let status = Command::new(&cargo)
            .args(&args)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .unwrap();
        assert!(status.success(), "cargo {args:?} in the scaffold failed");
    }
    let wasm = target.join("wasm32-wasip2/release/tag_it.wasm");
    let out = wasmpipe(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--config",
            "tag=demo",
        ],
        "{\"value\":\"v\"}\n",
    );
    assert_eq!(
        text(&out.stdout),
        "{\"value\":\"v\",\"headers\":[[\"processed-by\",\"demo\"]]}\n",
        "{}",
        text(&out.stderr)
    );

    let again = wasmpipe(
        &[
            "plugin",
            "new",
            "tag-it",
            "--lang",
            "rust",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(text(&again.stderr).contains("already exists"));
    let bad = wasmpipe(
        &[
            "plugin",
            "new",
            "Bad Name",
            "--lang",
            "rust",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(text(&bad.stderr).contains("use lowercase letters"));
}

#[test]
fn the_readme_demo_matches_its_expected_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/redact");
    let (input, expect) = (dir.join("sample.jsonl"), dir.join("sample.expected.jsonl"));
    let out = wasmpipe(
        &[
            "plugin",
            "test",
            FLAT_REDACT,
            "--config",
            "mask=user.email",
            "--config",
            "drop=card.number",
            "--input",
            input.to_str().unwrap(),
            "--expect",
            expect.to_str().unwrap(),
        ],
        "",
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 4: error in plugin redact: value is not JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 records in, 3 out, 1 failed (guest_error 1)"),
        "{stderr}"
    );
}

#[test]
fn deploy_dry_run_prints_the_configmap_with_the_chain_and_its_config() {
    // misbehave's init needs its mode: the pipeline file gives it.
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    let chain = "plugins:\n  - file: identity.wasm\n  - file: misbehave.wasm\n    config: { mode: error }\n";
    std::fs::write(&pipeline, chain).unwrap();
    let out = wasmpipe(
        &[
            "deploy",
            FLAT_IDENTITY,
            FLAT_MISBEHAVE,
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--configmap",
            "wasmpipe-plugins",
            "--namespace",
            "streams",
            "--dry-run",
        ],
        "",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let cm: serde_json::Value = serde_yaml::from_str(&stdout).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "wasmpipe-plugins");
    assert_eq!(cm["metadata"]["namespace"], "streams");
    assert_eq!(cm["data"]["pipeline.yaml"], chain);
    use base64::Engine as _;
    for path in [FLAT_IDENTITY, FLAT_MISBEHAVE] {
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        let sent = base64::engine::general_purpose::STANDARD
            .decode(cm["binaryData"][name].as_str().unwrap())
            .unwrap();
        assert_eq!(sent, std::fs::read(path).unwrap(), "{name}");
    }
}

#[test]
fn deploy_refuses_a_set_with_a_plugin_that_would_not_load() {
    let out = wasmpipe(
        &[
            "deploy",
            FLAT_IDENTITY,
            FLAT_WRONG_WORLD,
            "--configmap",
            "wasmpipe-plugins",
            "--dry-run",
        ],
        "",
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing printed or applied");
    assert!(stderr.contains("fails its check"), "{stderr}");
    assert!(stderr.contains("nothing was deployed"), "{stderr}");
}

#[test]
fn a_script_plugin_without_its_runtime_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tag.py");
    std::fs::write(&script, "def transform(record):\n    return record\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["plugin", "check", script.to_str().unwrap()])
        .env("WASMPIPE_SCRIPT_RUNTIMES", dir.path().join("nowhere"))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "tag.py: a Python script plugin needs the Python script runtime (python-script.wasm)"
        ) && stderr.contains("python -m wasmpipe.build --script-runtime"),
        "{stderr}"
    );
}

/// `wasmpipe run` from `orders` to `orders-clean` with no broker to reach,
/// plus `args` and the variables `env`; its output.
fn run_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
    cmd.args(["run", "--brokers", "127.0.0.1:1", "--group", "g"])
        .args(["--input-topic", "orders", "--output-topic", "orders-clean"])
        .args(["--ops-addr", "off"])
        .args(args)
        .arg("--plugin-dir")
        .arg(dir.path())
        .env_remove("WASMPIPE_DLQ_TOPIC")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn run_refuses_a_dead_letter_topic_that_is_the_output_before_connecting() {
    let out = run_with(&["--dlq-topic", "orders-clean"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "wasmpipe: --dlq-topic (WASMPIPE_DLQ_TOPIC) 'orders-clean' is also the output topic (--output-topic, WASMPIPE_OUTPUT_TOPIC): dead letters would mix with good records; give dead letters a topic of their own"
    );
}

#[test]
fn a_malformed_kafka_property_is_refused_without_showing_its_value() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["run", "--brokers", "127.0.0.1:1", "--group", "g"])
        .args(["--input-topic", "orders", "--output-topic", "orders-clean"])
        .args(["--kafka", "security.protocol=SASL_SSL"])
        .args(["--kafka", "sasl.password:hunter2", "--passthrough"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "wasmpipe: --kafka argument 2 is not KEY=VALUE (not shown, it may hold a secret): write each property as --kafka name=value"
    );
}

/// Logs piped to a file or a collector carry no colour codes: the plugin's
/// warning, as the host logs it, with its level and fields.
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let out = wasmpipe(
        &["plugin", "test", FLAT_MISBEHAVE, "--config", "mode=log"],
        "{\"value\":\"a\"}\n",
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("misbehave saw a record"), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in: {stderr:?}");
}

/// Compiling a plugin runs in a compiler process under a time and memory
/// budget: over either, the plugin is refused by name, with the limit and
/// the flag that raises it; within both it loads (from the cache the
/// second time, with no compile at all).
#[test]
fn compiling_a_plugin_has_a_time_and_a_memory_budget() {
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_str().unwrap();
    let out = wasmpipe(
        &["--compile-timeout", "1ms", "plugin", "check", FLAT_REDACT],
        "",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "plugin {FLAT_REDACT}: compiling it took more than 1ms, over its budget; a plugin that needs more is refused (raise --compile-timeout (WASMPIPE_COMPILE_TIMEOUT) if it is trusted)"
        )),
        "{stdout}"
    );

    let out = wasmpipe(
        &["--compile-memory-mib", "48", "plugin", "check", FLAT_REDACT],
        "",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("compiling it took more than 48 MiB of memory, over its budget")
            && stdout.contains("--compile-memory-mib (WASMPIPE_COMPILE_MEMORY_MIB)"),
        "{stdout}{}",
        text(&out.stderr)
    );

    for _ in 0..2 {
        let out = wasmpipe(
            &["--cache-dir", cache, "plugin", "check", FLAT_IDENTITY],
            "",
        );
        assert!(out.status.success(), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("loads    yes"));
    }
    // Within a budget too small to compile anything: the cached artifact.
    let out = wasmpipe(
        &[
            "--cache-dir",
            cache,
            "--compile-timeout",
            "1ms",
            "plugin",
            "check",
            FLAT_IDENTITY,
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// The environment the shipped manifests give the container: the base
/// Deployment's `env` (a `valueFrom` as a placeholder), its settings
/// ConfigMap, and each component's additions.
fn manifest_env(component: Option<&str>) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s");
    let yaml = |path: std::path::PathBuf| -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let container_env = |doc: &serde_yaml::Value| -> Vec<(String, String)> {
        doc["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .map(|env| {
                env.iter()
                    .map(|e| {
                        let value = e["value"].as_str().unwrap_or("from-the-downward-api");
                        (e["name"].as_str().unwrap().to_owned(), value.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut env = container_env(&yaml(root.join("base/deployment.yaml")));
    let kustomization = yaml(root.join("base/kustomization.yaml"));
    for generator in kustomization["configMapGenerator"].as_sequence().unwrap() {
        if generator["name"] == "wasmpipe-settings" {
            for literal in generator["literals"].as_sequence().unwrap() {
                let (k, v) = literal.as_str().unwrap().split_once('=').unwrap();
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    if let Some(c) = component {
        env.extend(container_env(&yaml(
            root.join(format!("components/{c}/deployment.yaml")),
        )));
    }
    env
}

#[test]
fn the_environment_the_manifests_set_is_accepted_by_run() {
    // Every pod of the base once crash-looped on a clap constraint between
    // two variables the manifests set: parse exactly what they set, and
    // stop at the first check after parsing (the dead-letter topic made
    // equal to the output), which exits 1 with its own message.
    for component in [None, Some("watch-configmap")] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        cmd.arg("run").stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("WASMPIPE_") {
                cmd.env_remove(k);
            }
        }
        let env = manifest_env(component);
        let output = &env
            .iter()
            .find(|(k, _)| k == "WASMPIPE_OUTPUT_TOPIC")
            .unwrap()
            .1;
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .env("WASMPIPE_BROKERS", "127.0.0.1:1")
            .env("WASMPIPE_PLUGIN_DIR", dir.path())
            .env("WASMPIPE_CACHE_DIR", dir.path())
            .env("WASMPIPE_OPS_ADDR", "off")
            .env("WASMPIPE_DLQ_TOPIC", output);
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{component:?}: {stderr}");
        assert!(
            stderr.contains("is also the output topic"),
            "{component:?}: the manifests' environment was refused before the configuration was read: {stderr}"
        );
    }
}

#[test]
fn a_kafka_variable_librdkafka_does_not_know_is_refused_by_its_name() {
    let out = run_with(&[], &[("WASMPIPE_KAFKA_PORT", "hunter2")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "wasmpipe: WASMPIPE_KAFKA_PORT sets the Kafka client property 'port', which librdkafka does not have: every WASMPIPE_KAFKA_* variable is passed to the Kafka client; unset WASMPIPE_KAFKA_PORT or fix its name (the properties are listed in librdkafka's CONFIGURATION.md)"
    );
}

#[test]
fn a_plugin_that_keeps_state_is_tested_with_fresh_state() {
    let plugin = wasmpipe_test_guests::FLAT_COUNT;
    let out = wasmpipe(&["plugin", "check", plugin], "");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("world    flat (wasmpipe:transform@0.2.0), keeps state"),
        "{stdout}"
    );
    let input = "{\"key\":\"a\"}\n{\"key\":\"b\"}\n{\"key\":\"a\"}\n{\"value\":\"no key\"}\n{\"key\":\"a\"}\n";
    for _ in 0..2 {
        // Each run starts from no state.
        let out = wasmpipe(&["plugin", "test", plugin, "--batch-records", "2"], input);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"1\"}\n\
             {\"key\":\"a\",\"value\":\"2\"}\n{\"key\":\"a\",\"value\":\"3\"}\n"
        );
    }
}

/// `wasmpipe topics create` against the test broker; its output.
fn topics_create(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .args(["topics", "create", "--brokers", &crate::kafka::bootstrap()])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("WASMPIPE_DLQ_TOPIC")
        .env_remove("WASMPIPE_OUTPUT_TOPIC")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn topics_create_makes_the_pipelines_topics_once_and_grows_the_input_only_when_asked() {
    use crate::kafka::{create_topics, partitions_of, topic};
    let (input, output, dlq) = (topic("tc-in"), topic("tc-out"), topic("tc-dlq"));
    let args = [
        "--input-topic",
        &input,
        "--output-topic",
        &output,
        "--dlq-topic",
        &dlq,
        "--partitions",
        "4",
        "--replication",
        "1",
        "--topic-config",
        "retention.ms=3600000",
    ];
    let first = topics_create(&args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stdout),
        format!(
            "topic '{input}': created, 4 partitions\ntopic '{output}': created, 4 partitions\n\
             topic '{dlq}': created, 4 partitions\n"
        )
    );
    // Again: nothing changes.
    let again = topics_create(&args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stdout),
        format!(
            "topic '{input}': exists, 4 partitions\ntopic '{output}': exists, 4 partitions\n\
             topic '{dlq}': exists, 4 partitions\n"
        )
    );
    assert_eq!(
        [&input, &output, &dlq].map(|t| partitions_of(t)),
        [Some(4); 3]
    );

    // An input with fewer partitions is grown only with --grow; an output
    // with fewer is left as it is.
    let (small, small_out) = (topic("tc-small"), topic("tc-small-out"));
    create_topics(&[(&small, 2), (&small_out, 1)]);
    let args = [
        "--input-topic",
        &small,
        "--output-topic",
        &small_out,
        "--partitions",
        "3",
    ];
    let refused = topics_create(&args);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr).trim(),
        format!(
            "wasmpipe: topic '{small}' has 2 partitions, not the 3 asked for: adding partitions \
             sends keys to other partitions (a key's records then run on two pods for a while, \
             and stateful plugins lose the key's state), so it is only done when asked: run \
             again with --grow, or ask for --partitions 2"
        )
    );
    assert_eq!(partitions_of(&small), Some(2));
    let grown = topics_create(&[&args[..], &["--grow"]].concat());
    assert_eq!(grown.status.code(), Some(0), "{}", text(&grown.stderr));
    assert_eq!(
        text(&grown.stdout),
        format!(
            "topic '{small}': grown from 2 to 3 partitions\ntopic '{small_out}': exists, 1 \
             partitions\n"
        )
    );
    assert_eq!(partitions_of(&small), Some(3));
    // More partitions than asked cannot be undone: named with the fix.
    let fewer = topics_create(&["--input-topic", &small, "--partitions", "2"]);
    assert_eq!(fewer.status.code(), Some(1));
    assert!(
        text(&fewer.stderr).contains("has 3 partitions, more than the 2 asked for"),
        "{}",
        text(&fewer.stderr)
    );
}
