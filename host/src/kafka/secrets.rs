//! Which librdkafka property values must never be logged or printed, and
//! the places they could be: the configuration's `Debug` and the errors a
//! client's creation returns.

use super::KafkaConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use std::fmt;

/// What a secret's value is shown as.
pub const REDACTED: &str = "<redacted>";

/// The properties librdkafka itself treats as sensitive (declared
/// `_RK_SENSITIVE` in its configuration table, and blanked in its own
/// dumps), plus the Java clients' JAAS configuration, which holds
/// credentials and is sometimes passed along by habit.
const SENSITIVE: &[&str] = &[
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.ca.pem",
    "ssl.keystore.password",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.jaas.config",
];

/// Properties whose last word is one of these hold a secret (or a key),
/// whatever librdkafka adds next: `*.password`, `*.passphrase`,
/// `*.secret`, `*.pem`, `*_key`…
const SECRET_WORDS: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "pem",
    "key",
    "token",
    "credentials",
];

/// Properties under these prefixes hold the JWT assertion or its key.
const SECRET_PREFIXES: &[&str] = &[
    "sasl.oauthbearer.assertion.private.",
    "sasl.oauthbearer.assertion.file",
    "sasl.jaas.",
];

/// Whether a librdkafka property (optionally prefixed `consumer.` or
/// `producer.`) holds a secret that must not be logged.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let key = ["consumer.", "producer."]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(&key);
    let last = key.rsplit(['.', '_']).next().unwrap_or(key);
    SENSITIVE.contains(&key)
        || SECRET_WORDS.contains(&last)
        || SECRET_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A client's creation error, without the value of a secret property, or
/// of an unknown one (it may be a secret's name misspelt). librdkafka's
/// own description quotes only values of typed properties (numbers,
/// enumerations), and secrets are strings.
pub fn redact_error(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(code, desc, key, value)
            if is_secret(&key) || code == RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN =>
        {
            let desc = if value.is_empty() {
                desc
            } else {
                desc.replace(&value, REDACTED)
            };
            KafkaError::ClientConfig(code, desc, key, REDACTED.to_owned())
        }
        e => e,
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}={REDACTED}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &props)
            .field("token_source", &self.token_source.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn secrets_never_reach_the_debug_output() {
        let config = KafkaConfig {
            brokers: "b:9092".into(),
            properties: vec![
                ("sasl.password".into(), "hunter2".into()),
                ("sasl.jaas.config".into(), "x password=y".into()),
                ("ssl.key.password".into(), "k".into()),
                ("producer.sasl.oauthbearer.client.secret".into(), "s".into()),
                ("security.protocol".into(), "SASL_SSL".into()),
            ],
            token_source: None,
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "password=y", "=k\"", "=s\""] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("security.protocol=SASL_SSL"), "{shown}");
        assert!(shown.contains("sasl.password=<redacted>"), "{shown}");
    }

    #[test]
    fn future_secrets_are_known_by_their_last_word() {
        for key in [
            "ssl.truststore.password",
            "sasl.oauthbearer.client.credentials.client.secret",
            "ssl.certificate.pem",
            "sasl.oauthbearer.assertion.private.key.algorithm",
            "some.new.passphrase",
            "some.new.token",
            "consumer.sasl.password",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "sasl.oauthbearer.token.endpoint.url",
            "ssl.keystore.location",
            "sasl.oauthbearer.client.id",
            "key.serializer",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn a_client_config_error_keeps_secret_and_unknown_values_out() {
        let create = |k: &str, v: &str| {
            let mut c = rdkafka::ClientConfig::new();
            c.set(k, v);
            let e = c
                .create::<rdkafka::consumer::BaseConsumer>()
                .err()
                .expect("refused");
            redact_error(e).to_string()
        };
        let shown = create("sasl.pasword", "hunter2");
        assert!(
            !shown.contains("hunter2") && shown.contains("sasl.pasword"),
            "{shown}"
        );
        // A typed property's value is the clue to the fix: kept.
        let shown = create("fetch.max.bytes", "lots");
        assert!(shown.contains("lots"), "{shown}");
    }

    /// The `rdkafka_conf.c` of the librdkafka this crate links: in the
    /// registry's sources of the rdkafka-sys version `Cargo.lock` names.
    fn rdkafka_conf_c() -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("reading Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"rdkafka-sys\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .expect("rdkafka-sys in Cargo.lock");
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
            .expect("CARGO_HOME or HOME");
        let registry = home.join("registry/src");
        let found = std::fs::read_dir(&registry)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| {
                e.path().join(format!(
                    "rdkafka-sys-{version}/librdkafka/src/rdkafka_conf.c"
                ))
            })
            .find(|p| p.is_file());
        found.unwrap_or_else(|| {
            panic!(
                "librdkafka's rdkafka_conf.c of rdkafka-sys {version} is not under {}/*/: fetch the crate's sources (cargo fetch) or set CARGO_HOME",
                registry.display()
            )
        })
    }

    /// Every property of librdkafka's configuration table, and whether it
    /// is declared `_RK_SENSITIVE`.
    fn librdkafka_properties(source: &str) -> Vec<(String, bool)> {
        let mut props = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find("{_RK_") {
            rest = &rest[at + 1..];
            let Some((flags, after)) = rest.split_once(',') else {
                break;
            };
            let is_flags = flags
                .chars()
                .all(|c| c.is_ascii_uppercase() || "_| \t\n".contains(c));
            let Some(name) = after.trim_start().strip_prefix('"') else {
                continue;
            };
            if let (true, Some((name, _))) = (is_flags, name.split_once('"')) {
                props.push((name.to_owned(), flags.contains("_RK_SENSITIVE")));
            }
        }
        props
    }

    #[test]
    fn every_property_librdkafka_calls_sensitive_is_redacted() {
        let path = rdkafka_conf_c();
        let source = std::fs::read_to_string(&path).unwrap();
        let props = librdkafka_properties(&source);
        let sensitive: Vec<&str> = props
            .iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(
            props.len() > 100 && sensitive.contains(&"sasl.password"),
            "{} does not read as librdkafka's configuration table",
            path.display()
        );
        let missed: Vec<&&str> = sensitive.iter().filter(|n| !is_secret(n)).collect();
        assert!(
            missed.is_empty(),
            "sensitive in librdkafka but not redacted: {missed:?}"
        );
        let names: Vec<&str> = props.iter().map(|(n, _)| n.as_str()).collect();
        for ordinary in [
            "bootstrap.servers",
            "group.id",
            "ssl.ca.location",
            "sasl.mechanism",
            "security.protocol",
            "sasl.oauthbearer.token.endpoint.url",
        ] {
            assert!(names.contains(&ordinary), "{ordinary} is not a property");
            assert!(!is_secret(ordinary), "{ordinary} is redacted");
        }
    }
}
