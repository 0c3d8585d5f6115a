//! `wasmpipe run` processes configured as the Deployment configures them
//! (environment variables only), scaled up and down the way the operator
//! does, observed only through their ops endpoints.

use crate::chaos::{Proc, terminate};
use crate::kafka::{bootstrap, consume, create_topics, numbered, produce, sequence, topic};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GET `path` from `port`: (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replica as the Deployment starts it.
struct Replica {
    child: Proc,
    port: u16,
}

fn replica(name: &str, input: &str, output: &str, plugins: &std::path::Path) -> Replica {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{input}-{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_wasmpipe"))
        .arg("run")
        .env("WASMPIPE_BROKERS", bootstrap())
        .env("WASMPIPE_GROUP", format!("ops-{input}"))
        .env("WASMPIPE_INPUT_TOPIC", input)
        .env("WASMPIPE_OUTPUT_TOPIC", output)
        .env("WASMPIPE_PLUGIN_DIR", plugins)
        .env("WASMPIPE_DELIVERY", "exactly-once")
        .env("WASMPIPE_ON_ERROR", "skip")
        .env("WASMPIPE_OPS_ADDR", format!("127.0.0.1:{port}"))
        .env("HOSTNAME", format!("wasmpipe-{name}"))
        .env("WASMPIPE_KAFKA_CONSUMER_STATISTICS_INTERVAL_MS", "500")
        .env("WASMPIPE_KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000")
        .env("WASMPIPE_KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "500")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Replica {
        child: Proc(child),
        port,
    }
}

/// `wasmpipe_consumer_lag` of one process: partition -> lag.
fn lags(metrics: &str) -> BTreeMap<i32, i64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("wasmpipe_consumer_lag{"))
        .map(|l| {
            let partition = l
                .split("partition=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = l.rsplit(' ').next().unwrap();
            (partition.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

/// Waits until every replica is ready and healthy, the replicas together
/// report a lag for each of `partitions` partitions exactly once, every lag
/// is zero, and the replicas own `owning` partitions (in any order).
fn settled(replicas: &[&Replica], partitions: usize, owning: &[usize], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut owned = Vec::new();
        let mut all: Vec<(i32, i64)> = Vec::new();
        let mut ok = true;
        for r in replicas {
            let ready = get(r.port, "/readyz").map(|(c, _)| c);
            let healthy = get(r.port, "/healthz").map(|(c, _)| c);
            ok &= ready == Some(200) && healthy == Some(200);
            let l = get(r.port, "/metrics")
                .map(|(_, b)| lags(&b))
                .unwrap_or_default();
            owned.push(l.len());
            all.extend(l);
        }
        let distinct: BTreeSet<i32> = all.iter().map(|(p, _)| *p).collect();
        owned.sort();
        if ok
            && owned == owning
            && all.len() == partitions
            && distinct.len() == partitions
            && all.iter().all(|(_, lag)| *lag == 0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not settled within 90 s (owned {owned:?}, lags {all:?}, logs in {})",
            std::env::temp_dir().display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn replicas_report_ready_healthy_and_lag_falling_to_zero_as_they_scale() {
    let _heavy = crate::heavy();
    let (input, output) = (topic("ops-in"), topic("ops-out"));
    create_topics(&[(&input, 3), (&output, 3)]);
    let (_dir, plugins) = crate::kafka::plugin_dir(wasmpipe_test_guests::FLAT_IDENTITY, None);
    let records = numbered(3, 900);
    let waves: Vec<&[(i32, crate::kafka::Rec)]> = records.chunks(900).collect();

    // Two replicas on three partitions: one of them owns two.
    let mut a = replica("a", &input, &output, &plugins);
    let b = replica("b", &input, &output, &plugins);
    produce(&input, waves[0]);
    settled(&[&a, &b], 3, &[1, 2], "two replicas");

    // Scaled to the partition count: one partition each.
    let c = replica("c", &input, &output, &plugins);
    produce(&input, waves[1]);
    settled(&[&a, &b, &c], 3, &[1, 1, 1], "three replicas");

    // The running set, as /plugins and /metrics name it.
    let (code, body) = get(b.port, "/plugins").unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sha = wasmpipe::runtime::read_plugin_file(std::path::Path::new(
        wasmpipe_test_guests::FLAT_IDENTITY,
    ))
    .unwrap()
    .sha256;
    assert_eq!(status["plugins"][0]["sha256"], sha.as_str(), "{body}");
    let name = std::path::Path::new(wasmpipe_test_guests::FLAT_IDENTITY)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(status["plugins"][0]["name"], name.as_str(), "{body}");
    let metrics = get(c.port, "/metrics").unwrap().1;
    assert!(
        metrics.contains(&format!(
            "wasmpipe_plugin_info{{plugin=\"{name}\",sha256=\"{sha}\"}} 1"
        )),
        "{metrics}"
    );

    // Scaled down: the replica that leaves stops cleanly, the others take
    // its partition.
    terminate(&mut a.child, &input);
    produce(&input, waves[2]);
    settled(&[&b, &c], 3, &[1, 2], "scaled down to two");

    let got = consume(&output, records.len(), true, Duration::from_secs(60));
    let seen: BTreeSet<(i64, i64)> = got.iter().filter_map(sequence).collect();
    assert_eq!(
        got.len(),
        records.len(),
        "every input once under exactly-once"
    );
    assert_eq!(seen.len(), records.len());
    for mut r in [b, c] {
        terminate(&mut r.child, &input);
    }
}
