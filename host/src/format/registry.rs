//! Where schemas come from: a schema registry's Confluent-compatible REST
//! API (Confluent Cloud and Platform, Apicurio, Karapace and Redpanda all
//! serve it), or schema files given locally (`wasmpipe plugin test`).
//! Other registries (AWS Glue, Azure Schema Registry) are further
//! implementations of [`SchemaSource`].

use super::SchemaKind;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A schema as a registry serves it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSchema {
    pub id: u32,
    pub kind: SchemaKind,
    pub text: String,
    /// The schemas it imports or names: (reference name, schema).
    pub references: Vec<(String, RawSchema)>,
}

/// Why a schema could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The registry says it has no such schema, subject or version.
    #[error("{0}")]
    NotFound(String),
    /// The registry could not be reached or answered with an error, for
    /// longer than the retry budget.
    #[error("{0}")]
    Unavailable(String),
}

/// A version of a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Latest,
    Number(u32),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Number(n) => write!(f, "{n}"),
        }
    }
}

pub trait SchemaSource: Send + Sync {
    fn by_id(&self, id: u32) -> Result<RawSchema, SourceError>;
    fn version(&self, subject: &str, version: Version) -> Result<RawSchema, SourceError>;
    /// A subject and version schema `id` is registered as, if the source
    /// says (asked once per schema, not retried: it only names the schema
    /// to plugins).
    fn subject_of(&self, _id: u32) -> Option<(String, u32)> {
        None
    }
    /// Where the schemas come from, for messages.
    fn describe(&self) -> String;
    /// One request, not retried, to find a wrong address or credentials
    /// at start rather than at the first record; why it failed, if it did.
    fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// The base URL of the Confluent-compatible API.
    pub url: String,
    /// `KEY:SECRET` for HTTP basic authentication (Confluent Cloud's API keys).
    pub user_info: Option<String>,
    /// A bearer token.
    pub bearer_token: Option<String>,
    /// PEM certificates to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// How long a request is retried (with backoff) before records are
    /// dead-lettered as `registry_unavailable`.
    pub retry: Duration,
}

/// Called while a request waits to be retried: the pipeline is waiting
/// on the registry, not stalled (its liveness probe passes).
pub type Waiting = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A registry over its REST API.
pub struct HttpRegistry {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
    retry: Duration,
    waiting: Option<Waiting>,
}

#[derive(Deserialize)]
struct SchemaBody {
    #[serde(default)]
    id: Option<u32>,
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<ReferenceBody>,
}

#[derive(Deserialize)]
struct ReferenceBody {
    name: String,
    subject: String,
    version: u32,
}

impl HttpRegistry {
    pub fn new(config: &RegistryConfig, waiting: Option<Waiting>) -> anyhow::Result<HttpRegistry> {
        use anyhow::Context as _;
        let base = config.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!(
                "schema registry URL '{}' must start with http:// or https:// (give the \
                 Confluent-compatible API's base, e.g. https://psrc-xxxx.region.aws.confluent.cloud \
                 or http://apicurio:8080/apis/ccompat/v7)",
                config.url
            );
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the registry's CA file {}", path.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                anyhow::bail!(
                    "the registry's CA file {} has no PEM certificate",
                    path.display()
                );
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .tls_config(tls.build())
            .build()
            .new_agent();
        use base64::Engine as _;
        let authorization = match (&config.user_info, &config.bearer_token) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the schema registry either basic credentials (--registry-user-info) or a bearer token (--registry-bearer-token), not both"
            ),
            (Some(info), None) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(info)
            )),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        Ok(HttpRegistry {
            agent,
            base,
            authorization,
            retry: config.retry,
            waiting,
        })
    }

    /// GETs `path`, retrying what may pass (no answer, 5xx, 429, 401/403
    /// while credentials rotate) with backoff until the retry budget is
    /// spent. A 404 is final.
    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let why = match self.try_get(&url) {
                Ok(body) => return Ok(body),
                Err(Attempt::NotFound(m)) => return Err(SourceError::NotFound(m)),
                Err(Attempt::Retry(m)) => m,
            };
            if started.elapsed() + backoff > self.retry {
                return Err(SourceError::Unavailable(format!(
                    "{why} (retried for {:.0?}; the budget is --registry-retry)",
                    started.elapsed()
                )));
            }
            tracing::warn!(url = %url, error = %why, retry_in = ?backoff, "schema registry request failed; retrying");
            if let Some(waiting) = &self.waiting {
                waiting();
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn try_get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Attempt> {
        let mut request = self.agent.get(url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let mut response = request.call().map_err(|e| {
            Attempt::Retry(format!("schema registry at {} unreachable: {e}", self.base))
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        match status {
            200 => serde_json::from_str(&body).map_err(|e| {
                Attempt::Retry(format!(
                    "schema registry answered {url} with a body that is not a schema: {e}"
                ))
            }),
            404 => Err(Attempt::NotFound(format!(
                "the schema registry has no {}: {}",
                url.strip_prefix(&self.base).unwrap_or(url),
                error_message(&body)
            ))),
            401 | 403 => Err(Attempt::Retry(format!(
                "the schema registry refused the credentials ({status}: {}): check \
                 --registry-user-info or --registry-bearer-token",
                error_message(&body)
            ))),
            _ => Err(Attempt::Retry(format!(
                "the schema registry answered {status}: {}",
                error_message(&body)
            ))),
        }
    }

    fn resolve(&self, body: SchemaBody, id: u32) -> Result<RawSchema, SourceError> {
        let kind = SchemaKind::of(body.schema_type.as_deref()).ok_or_else(|| {
            SourceError::NotFound(format!(
                "schema {id} is of type {}, which wasmpipe does not read (AVRO, PROTOBUF or JSON)",
                body.schema_type.as_deref().unwrap_or_default()
            ))
        })?;
        let mut references = Vec::new();
        for r in body.references {
            let schema = self.version(&r.subject, Version::Number(r.version))?;
            references.push((r.name, schema));
        }
        Ok(RawSchema {
            id,
            kind,
            text: body.schema,
            references,
        })
    }
}

enum Attempt {
    NotFound(String),
    Retry(String),
}

/// The registry's `message` from an error body, or the body itself.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Error {
        message: String,
    }
    let text = serde_json::from_str::<Error>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| body.to_owned());
    crate::text::capped(&text).into_owned()
}

/// A subject as a path segment.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl SchemaSource for HttpRegistry {
    fn by_id(&self, id: u32) -> Result<RawSchema, SourceError> {
        let body: SchemaBody = self.get(&format!("/schemas/ids/{id}"))?;
        self.resolve(body, id)
    }

    fn version(&self, subject: &str, version: Version) -> Result<RawSchema, SourceError> {
        let body: SchemaBody = self.get(&format!(
            "/subjects/{}/versions/{version}",
            segment(subject)
        ))?;
        let id = body.id.ok_or_else(|| {
            SourceError::NotFound(format!(
                "the registry gave no id for {subject} version {version}"
            ))
        })?;
        self.resolve(body, id)
    }

    fn subject_of(&self, id: u32) -> Option<(String, u32)> {
        #[derive(Deserialize)]
        struct SubjectVersion {
            subject: String,
            version: u32,
        }
        let url = format!("{}/schemas/ids/{id}/versions", self.base);
        let found: Vec<SubjectVersion> = self.try_get(&url).ok()?;
        found.into_iter().next().map(|v| (v.subject, v.version))
    }

    fn describe(&self) -> String {
        format!("the schema registry at {}", self.base)
    }

    fn probe(&self) -> Result<(), String> {
        // The schema types it serves: small, and readable by any principal.
        match self.try_get::<serde_json::Value>(&format!("{}/schemas/types", self.base)) {
            Ok(_) => Ok(()),
            Err(Attempt::NotFound(m) | Attempt::Retry(m)) => Err(m),
        }
    }
}

/// Schemas given as files, for testing plugins offline: each file is a
/// schema (`.avsc`, `.proto`, `.json`), its id the number given with it,
/// its subject every subject asked for.
pub struct LocalSchemas {
    pub schemas: Vec<RawSchema>,
}

impl LocalSchemas {
    /// Reads `ID=FILE` entries.
    pub fn read(entries: &[String]) -> anyhow::Result<LocalSchemas> {
        use anyhow::Context as _;
        let mut schemas = Vec::new();
        for entry in entries {
            let (id, file) = entry.split_once('=').with_context(|| {
                format!("--schema {entry}: write it ID=FILE, e.g. --schema 1=order.avsc")
            })?;
            let id: u32 = id
                .parse()
                .with_context(|| format!("--schema {entry}: the id '{id}' is not a number"))?;
            let kind = match file.rsplit_once('.').map(|(_, ext)| ext) {
                Some("avsc") => SchemaKind::Avro,
                Some("proto") => SchemaKind::Protobuf,
                Some("json") => SchemaKind::Json,
                _ => anyhow::bail!(
                    "--schema {entry}: name the file .avsc (Avro), .proto (Protobuf) or .json (JSON Schema)"
                ),
            };
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading schema file {file}"))?;
            schemas.push(RawSchema {
                id,
                kind,
                text,
                references: Vec::new(),
            });
        }
        Ok(LocalSchemas { schemas })
    }
}

impl SchemaSource for LocalSchemas {
    fn by_id(&self, id: u32) -> Result<RawSchema, SourceError> {
        self.schemas
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| {
                SourceError::NotFound(format!(
                    "no schema with id {id} was given (--schema {id}=FILE)"
                ))
            })
    }

    fn version(&self, subject: &str, _: Version) -> Result<RawSchema, SourceError> {
        // Offline, the last schema given stands for every subject.
        self.schemas.last().cloned().ok_or_else(|| {
            SourceError::NotFound(format!(
                "no schema was given for subject {subject} (--schema ID=FILE)"
            ))
        })
    }

    fn describe(&self) -> String {
        "the schema files given".into()
    }
}
