//! Amazon MSK IAM end to end: `wasmpipe run --aws-msk-iam` takes its AWS
//! credentials from an EKS Pod Identity agent (a loopback stand-in serving
//! the agent's protocol), signs SASL/OAUTHBEARER tokens with them, and the
//! local broker's MSK IAM listener (`tests/kafka/MskIamValidator.java`)
//! verifies each signature the way MSK does before it lets a client in.

use crate::chaos::{Proc, terminate};
use crate::kafka::{consume, create_topics, numbered, plugin_dir, produce, sequence, topic};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The identity the broker's MSK IAM listener accepts (tests/kafka/broker).
const ACCESS_KEY: &str = "AKIAWASMPIPETESTKEY1";
const SECRET: &str = "wasmpipe-test-secret/not-a-real-key";
const AGENT_TOKEN: &str = "pod-identity-agent-token";

/// The MSK IAM listener: 50 above the plain one.
fn iam_bootstrap() -> String {
    let plain = crate::kafka::bootstrap();
    let (host, port) = plain.split(',').next().unwrap().rsplit_once(':').unwrap();
    format!("{host}:{}", port.parse::<u16>().unwrap() + 50)
}

/// Serves AWS credentials as the EKS Pod Identity agent does: only to a
/// caller presenting the agent's token. Returns its URL and how many
/// credential requests it answered.
fn pod_identity_agent(secret: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/credentials", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization:")
                    && line.split_once(':').unwrap().1.trim() == AGENT_TOKEN
                {
                    authorized = true;
                }
            }
            let (status, body) = if authorized {
                count.fetch_add(1, Ordering::SeqCst);
                let expiry = humantime::format_rfc3339_seconds(
                    std::time::SystemTime::now() + Duration::from_secs(3600),
                );
                (
                    "200 OK",
                    format!(
                        r#"{{"AccessKeyId":"{ACCESS_KEY}","SecretAccessKey":"{secret}","Token":"session-token-1","Expiration":"{expiry}"}}"#
                    ),
                )
            } else {
                ("401 Unauthorized", r#"{"message":"no token"}"#.to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, served)
}

fn spawn_iam(
    input: &str,
    output: &str,
    delivery: &str,
    agent: &str,
    token_file: &std::path::Path,
) -> Proc {
    let (dir, plugins) = plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    // The directory lives as long as the process needs it to start.
    std::mem::forget(dir);
    let log = std::env::temp_dir().join(format!("{input}-iam.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
    // Only the Pod Identity agent is a credential source here.
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            command.env_remove(k);
        }
    }
    let child = command
        .args(["run", "--brokers", &iam_bootstrap(), "--aws-msk-iam"])
        .args(["--aws-region", "us-east-1"])
        // MSK's IAM listener is TLS; the local one is plain TCP.
        .args(["--kafka", "security.protocol=SASL_PLAINTEXT"])
        .args(["--group", &format!("iam-{input}")])
        .args(["--input-topic", input, "--output-topic", output])
        .args(["--plugin-dir", plugins.to_str().unwrap()])
        .args(["--delivery", delivery, "--on-error", "skip"])
        .args(["--ops-addr", "127.0.0.1:0"])
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc(child)
}

fn token_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, "{AGENT_TOKEN}").unwrap();
    f
}

#[test]
fn exactly_once_through_an_msk_iam_listener_with_pod_identity_credentials() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("iam-in"), topic("iam-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let records = numbered(3, 300);
    produce(&input, &records);

    let (agent, served) = pod_identity_agent(SECRET);
    let token = token_file();
    let mut proc = spawn_iam(&input, &output, "exactly-once", &agent, token.path());
    let out = consume(&output, records.len(), true, Duration::from_secs(90));
    terminate(&mut proc, &input);

    let seen: Vec<(i64, i64)> = out.iter().filter_map(sequence).collect();
    let unique: BTreeSet<_> = seen.iter().copied().collect();
    assert_eq!(
        (seen.len(), unique.len()),
        (records.len(), records.len()),
        "every record exactly once through the IAM listener (log: {}/{input}-iam.log)",
        std::env::temp_dir().display()
    );
    // The consumer, the transactional producer and the partition lookup
    // each signed with the agent's credentials.
    assert!(served.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_signature_msk_would_refuse_is_reported_and_the_process_stays_up() {
    let (input, output) = (topic("iam-bad-in"), topic("iam-bad-out"));
    create_topics(&[(&input, 1), (&output, 1)]);
    // Credentials MSK does not know: the signature cannot verify.
    let (agent, _) = pod_identity_agent("a-secret-the-broker-does-not-know");
    let token = token_file();
    let mut proc = spawn_iam(&input, &output, "at-least-once", &agent, token.path());
    let log = std::env::temp_dir().join(format!("{input}-iam.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("SASL authentication error") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("SASL authentication error") && text.contains("invalid_token"),
        "no authentication error in the log:\n{text}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        proc.try_wait().unwrap().is_none(),
        "the process must keep retrying, not exit:\n{text}"
    );
}
