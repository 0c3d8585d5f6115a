//! Record formats: what the host decodes each input's key and value from,
//! and encodes each output's into. Plugins see JSON; the host speaks the
//! schema registry's wire format (Avro, Protobuf, JSON Schema) with
//! schemas from a registry, so no Avro or Protobuf library runs in the
//! sandbox. Nothing here knows wasmtime or Kafka.
//!
//! - [`registry`]: where schemas come from (a registry's REST API, or
//!   local files for `wasmpipe plugin test`);
//! - [`wire`]: the magic byte, schema id and Protobuf message indexes;
//! - [`avro`], [`protobuf`]: each format's mapping to JSON.

pub mod avro;
mod cache;
pub mod protobuf;
pub mod registry;
pub mod wire;

use cache::{Parsed, Schemas};
use registry::{SchemaSource, SourceError, Version};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The header a plugin reads the value's schema id from (decimal text);
/// `wasmpipe.schema.name` holds the record's full name when the schema
/// names it, `.subject` and `.version` a subject and version the registry
/// has it as. The key's are `wasmpipe.key.schema.*`. The host sets them on
/// every decoded input and removes them from every output.
pub const SCHEMA_ID_HEADER: &str = "wasmpipe.schema.id";
pub const SCHEMA_NAME_HEADER: &str = "wasmpipe.schema.name";
pub const KEY_SCHEMA_ID_HEADER: &str = "wasmpipe.key.schema.id";
pub const KEY_SCHEMA_NAME_HEADER: &str = "wasmpipe.key.schema.name";

/// Whether a header is one the host sets from a record's schemas.
pub fn is_reserved_header(name: &[u8]) -> bool {
    name.starts_with(b"wasmpipe.schema.") || name.starts_with(b"wasmpipe.key.schema.")
}

/// A key's or value's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Bytes as they are (no decoding).
    #[default]
    Raw,
    /// JSON text, checked.
    Json,
    /// Avro in the schema registry's wire format.
    Avro,
    /// Protobuf in the schema registry's wire format.
    Protobuf,
    /// JSON in the schema registry's wire format, validated by its schema.
    JsonSchema,
}

impl Format {
    fn kind(self) -> Option<SchemaKind> {
        match self {
            Format::Raw | Format::Json => None,
            Format::Avro => Some(SchemaKind::Avro),
            Format::Protobuf => Some(SchemaKind::Protobuf),
            Format::JsonSchema => Some(SchemaKind::Json),
        }
    }

    /// Whether records of this format carry a registry's schema id.
    pub fn is_registry(self) -> bool {
        self.kind().is_some()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Json => "json",
            Format::Avro => "avro",
            Format::Protobuf => "protobuf",
            Format::JsonSchema => "json-schema",
        }
    }
}

/// A registry schema's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    Avro,
    Protobuf,
    Json,
}

impl SchemaKind {
    /// The kind a registry's `schemaType` names (absent: Avro).
    pub fn of(schema_type: Option<&str>) -> Option<SchemaKind> {
        match schema_type {
            None | Some("AVRO") => Some(SchemaKind::Avro),
            Some("PROTOBUF") => Some(SchemaKind::Protobuf),
            Some("JSON") => Some(SchemaKind::Json),
            Some(_) => None,
        }
    }

    fn format(self) -> Format {
        match self {
            SchemaKind::Avro => Format::Avro,
            SchemaKind::Protobuf => Format::Protobuf,
            SchemaKind::Json => Format::JsonSchema,
        }
    }
}

/// How an output's subject is named (Confluent's naming strategies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectStrategy {
    /// `<topic>-value` and `<topic>-key`.
    #[default]
    Topic,
    /// The record's full name.
    Record,
    /// `<topic>-<record full name>`.
    TopicRecord,
}

/// Which version of the output's subject encodes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputSchema {
    /// The subject's latest version (looked up again after `latest_ttl`).
    #[default]
    Latest,
    /// The schema the input came with, when the output still fits it;
    /// otherwise the subject's latest.
    Input,
    /// This version of the subject.
    Version(u32),
}

impl std::str::FromStr for OutputSchema {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(OutputSchema::Latest),
            "input" => Ok(OutputSchema::Input),
            n => n.parse().map(OutputSchema::Version).map_err(|_| {
                format!("output schema '{s}': write latest, input or a version number")
            }),
        }
    }
}

impl<'de> Deserialize<'de> for OutputSchema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Number(u32),
            Text(String),
        }
        match Given::deserialize(d)? {
            Given::Number(n) => Ok(OutputSchema::Version(n)),
            Given::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A pipeline's formats: `format:` in the pipeline file, or flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    #[serde(default)]
    pub key: Format,
    #[serde(default)]
    pub value: Format,
    /// The outputs' key format (default: the input's).
    #[serde(default)]
    pub output_key: Option<Format>,
    /// The outputs' value format (default: the input's).
    #[serde(default)]
    pub output_value: Option<Format>,
    #[serde(default)]
    pub subject: SubjectStrategy,
    #[serde(default)]
    pub schema: OutputSchema,
}

impl FormatConfig {
    pub fn output(&self, part: Part) -> Format {
        match part {
            Part::Key => self.output_key.unwrap_or(self.key),
            Part::Value => self.output_value.unwrap_or(self.value),
        }
    }

    pub fn input(&self, part: Part) -> Format {
        match part {
            Part::Key => self.key,
            Part::Value => self.value,
        }
    }

    /// Whether every part is raw: records pass as they are.
    pub fn is_raw(&self) -> bool {
        [Part::Key, Part::Value]
            .iter()
            .all(|&p| self.input(p) == Format::Raw && self.output(p) == Format::Raw)
    }

    /// Whether a schema registry is needed.
    pub fn needs_registry(&self) -> bool {
        [Part::Key, Part::Value]
            .iter()
            .any(|&p| self.input(p).kind().is_some() || self.output(p).kind().is_some())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    fn suffix(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }

    /// The headers that carry this part's schema id and name.
    pub fn headers(self) -> (&'static str, &'static str) {
        match self {
            Part::Key => (KEY_SCHEMA_ID_HEADER, KEY_SCHEMA_NAME_HEADER),
            Part::Value => (SCHEMA_ID_HEADER, SCHEMA_NAME_HEADER),
        }
    }

    /// The headers that carry this part's subject and version.
    fn subject_headers(self) -> (&'static str, &'static str) {
        match self {
            Part::Key => ("wasmpipe.key.schema.subject", "wasmpipe.key.schema.version"),
            Part::Value => ("wasmpipe.schema.subject", "wasmpipe.schema.version"),
        }
    }
}

/// Why JSON was not encoded with a schema.
#[derive(Debug)]
pub enum Misfit {
    NotJson(serde_json::Error),
    Schema(String),
}

/// Why a record could not be decoded or an output encoded: dead-lettered
/// with `wasmpipe.error.kind` `format` and [`FormatError::reason`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    UnknownSchema(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    IncompatibleOutput(String),
    #[error("{0}")]
    RegistryUnavailable(String),
}

impl FormatError {
    pub fn malformed(message: impl Into<String>) -> FormatError {
        FormatError::Malformed(message.into())
    }

    pub fn reason(&self) -> &'static str {
        match self {
            FormatError::UnknownSchema(_) => "unknown_schema",
            FormatError::Malformed(_) => "malformed",
            FormatError::IncompatibleOutput(_) => "incompatible_output",
            FormatError::RegistryUnavailable(_) => "registry_unavailable",
        }
    }

    fn from_source(e: SourceError) -> FormatError {
        match e {
            SourceError::NotFound(m) => FormatError::UnknownSchema(m),
            SourceError::Unavailable(m) => FormatError::RegistryUnavailable(m),
        }
    }
}

/// A decoded part's schema, for the plugin's headers.
#[derive(Debug)]
pub struct SchemaOf {
    pub id: u32,
    pub name: Option<String>,
    /// A subject and version the registry has it as, when it says.
    pub subject: Option<(String, u32)>,
}

/// What an output's headers say of the input's schema (kept by the plugin).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hint<'a> {
    pub id: Option<u32>,
    pub name: Option<&'a str>,
}

/// Decodes inputs and encodes outputs by a pipeline's formats. Shared by
/// every partition's worker; schemas are cached by id.
pub struct Codec {
    config: FormatConfig,
    schemas: Option<Schemas>,
}

/// Bounds of the schema cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Schemas kept by id (least recently used go first).
    pub schemas: usize,
    /// How long a subject's latest version is used before it is looked up again.
    pub latest_ttl: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            schemas: 1000,
            latest_ttl: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Everything about formats `wasmpipe run` is given.
#[derive(Clone, Debug, Default)]
pub struct Formats {
    pub config: FormatConfig,
    pub registry: Option<registry::RegistryConfig>,
    pub cache: CacheLimits,
}

impl Formats {
    /// The codec these settings describe; the registry is not reached
    /// yet. `waiting` is called while a registry request waits to be retried.
    pub fn codec(&self, waiting: Option<registry::Waiting>) -> anyhow::Result<Codec> {
        let source: Option<Box<dyn SchemaSource>> = match &self.registry {
            Some(r) if !r.url.is_empty() => {
                Some(Box::new(registry::HttpRegistry::new(r, waiting)?))
            }
            _ => None,
        };
        Codec::new(self.config.clone(), source, self.cache)
    }
}

impl Codec {
    /// A codec of `config`, its schemas from `source` (needed unless
    /// every format is raw or json).
    pub fn new(
        config: FormatConfig,
        source: Option<Box<dyn SchemaSource>>,
        limits: CacheLimits,
    ) -> anyhow::Result<Codec> {
        if config.needs_registry() && source.is_none() {
            anyhow::bail!(
                "format {} needs a schema registry: give --registry-url (WASMPIPE_REGISTRY_URL)",
                [Part::Key, Part::Value]
                    .iter()
                    .flat_map(|&p| [config.input(p), config.output(p)])
                    .find(|f| f.kind().is_some())
                    .map_or("", Format::as_str)
            );
        }
        Ok(Codec {
            config,
            schemas: source.map(|s| Schemas::new(s, limits)),
        })
    }

    /// A codec that passes records as they are.
    pub fn raw() -> Codec {
        Codec {
            config: FormatConfig::default(),
            schemas: None,
        }
    }

    pub fn config(&self) -> &FormatConfig {
        &self.config
    }

    /// Asks the schema registry once (no retries) whether it answers;
    /// `None` without one. Where it is and why not, if not.
    pub fn probe(&self) -> Option<(String, Result<(), String>)> {
        let schemas = self.schemas.as_ref()?;
        Some((schemas.source().describe(), schemas.source().probe()))
    }

    pub fn is_raw(&self) -> bool {
        self.config.is_raw()
    }

    fn schemas(&self) -> Result<&Schemas, FormatError> {
        self.schemas.as_ref().ok_or_else(|| {
            FormatError::UnknownSchema("no schema registry is configured (--registry-url)".into())
        })
    }

    /// Decodes an input's `part` into JSON text in `out` (emptied first);
    /// returns its schema, if it has one. `None` bytes (a null key or a
    /// tombstone) stay null and are not given here.
    pub fn decode(
        &self,
        part: Part,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<SchemaOf>, FormatError> {
        self.decode_as(self.config.input(part), part, bytes, out)
    }

    /// [`Codec::decode`] of an encoded output (by the output's format).
    pub fn decode_output(
        &self,
        part: Part,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<SchemaOf>, FormatError> {
        self.decode_as(self.config.output(part), part, bytes, out)
    }

    fn decode_as(
        &self,
        format: Format,
        part: Part,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<SchemaOf>, FormatError> {
        out.clear();
        let Some(kind) = format.kind() else {
            if format == Format::Json {
                serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
                    FormatError::malformed(format!(
                        "the record's {} is not JSON: {e}",
                        part.suffix()
                    ))
                })?;
            }
            out.extend_from_slice(bytes);
            return Ok(None);
        };
        let framed = wire::unframe(bytes, kind == SchemaKind::Protobuf)?;
        let schema = self.schemas()?.by_id(framed.id)?;
        if schema.kind() != kind {
            return Err(FormatError::malformed(format!(
                "the record's {} has schema {} of type {}, but the pipeline reads {} as {}",
                part.suffix(),
                framed.id,
                schema.kind().format().as_str(),
                part.suffix(),
                format.as_str()
            )));
        }
        let name = schema
            .decode(&framed.indexes, framed.payload, out)
            .map_err(|e| {
                FormatError::malformed(format!(
                    "the record's {} (schema {}) is {e}",
                    part.suffix(),
                    framed.id
                ))
            })?;
        Ok(Some(SchemaOf {
            id: framed.id,
            name,
            subject: schema.subject().cloned(),
        }))
    }

    /// Encodes an output's `part`, JSON text the plugin wrote, for `topic`
    /// into `out` (emptied first).
    pub fn encode(
        &self,
        part: Part,
        topic: &str,
        json: &[u8],
        hint: Hint<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        out.clear();
        let format = self.config.output(part);
        let Some(kind) = format.kind() else {
            if format == Format::Json {
                serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(|e| {
                    FormatError::IncompatibleOutput(format!(
                        "the output's {} is not JSON, which topic '{topic}' is written in: {e}",
                        part.suffix()
                    ))
                })?;
            }
            out.extend_from_slice(json);
            return Ok(());
        };
        let schemas = self.schemas()?;
        if self.config.schema == OutputSchema::Input
            && let Some(id) = hint.id
        {
            let schema = schemas.by_id(id)?;
            if schema.kind() == kind && schema.encode(json, hint.name, out, true).is_ok() {
                return Ok(());
            }
            out.clear();
        }
        let subject = match (self.config.subject, hint.name) {
            (SubjectStrategy::Topic, _) => format!("{topic}-{}", part.suffix()),
            (SubjectStrategy::Record, Some(name)) => name.to_owned(),
            (SubjectStrategy::TopicRecord, Some(name)) => format!("{topic}-{name}"),
            (_, None) => {
                return Err(FormatError::IncompatibleOutput(format!(
                    "the record-name subject strategy needs the output's record name, from its \
                     '{}' header (the input's, kept by the plugin, or set by it)",
                    part.headers().1
                )));
            }
        };
        let version = match self.config.schema {
            OutputSchema::Version(n) => Version::Number(n),
            OutputSchema::Latest | OutputSchema::Input => Version::Latest,
        };
        let schema = schemas.version(&subject, version)?;
        if schema.kind() != kind {
            return Err(FormatError::IncompatibleOutput(format!(
                "subject {subject} version {version} is a {} schema, but the pipeline writes {} as {}",
                schema.kind().format().as_str(),
                part.suffix(),
                format.as_str()
            )));
        }
        schema
            .encode(json, hint.name, out, false)
            .map_err(|e| match e {
                Misfit::NotJson(e) => FormatError::IncompatibleOutput(format!(
                    "the output's {} is not JSON, so it cannot be encoded as {}: {e}",
                    part.suffix(),
                    format.as_str()
                )),
                Misfit::Schema(e) => FormatError::IncompatibleOutput(format!(
                    "the output's {} does not fit schema {} (subject {subject}, version {version}): {e}",
                    part.suffix(),
                    schema.id()
                )),
            })
    }
}

/// A record's key and value decoded: which stayed as they came (null, or
/// raw), and the schema headers for the plugin.
pub struct DecodedRecord {
    pub key_raw: bool,
    pub value_raw: bool,
    pub headers: Vec<(&'static str, String)>,
}

impl Codec {
    /// A decoded part (JSON) encoded again with the schema it came with,
    /// for a dead letter to carry the record as it was read.
    pub fn restore(&self, part: Part, json: &[u8], hint: Hint<'_>) -> Option<Vec<u8>> {
        match self.config.input(part).kind() {
            None => Some(json.to_vec()),
            Some(_) => self.frame(part, json, hint.id?, hint.name).ok(),
        }
    }

    /// A part given as JSON encoded with schema `id` (all its fields kept),
    /// as a producer would have written it.
    pub fn frame(
        &self,
        part: Part,
        json: &[u8],
        id: u32,
        name: Option<&str>,
    ) -> Result<Vec<u8>, FormatError> {
        let schema = self.schemas()?.by_id(id)?;
        let mut out = Vec::new();
        schema
            .encode(json, name, &mut out, true)
            .map_err(|e| match e {
                Misfit::NotJson(e) => {
                    FormatError::malformed(format!("the {} is not JSON: {e}", part.suffix()))
                }
                Misfit::Schema(e) => FormatError::malformed(format!(
                    "the {} does not fit schema {id}: {e}",
                    part.suffix()
                )),
            })?;
        Ok(out)
    }

    /// Decodes a record's key and value into the buffers (those not raw
    /// and not null).
    pub fn decode_record(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        key_buf: &mut Vec<u8>,
        value_buf: &mut Vec<u8>,
    ) -> Result<DecodedRecord, FormatError> {
        let mut headers = Vec::new();
        let mut one = |part: Part, bytes: Option<&[u8]>, buf: &mut Vec<u8>| match bytes {
            Some(b) if self.config.input(part) != Format::Raw => {
                if let Some(of) = self.decode(part, b, buf)? {
                    let (id, name) = part.headers();
                    headers.push((id, of.id.to_string()));
                    if let Some(n) = of.name {
                        headers.push((name, n));
                    }
                    if let Some((subject, version)) = of.subject {
                        let (s, v) = part.subject_headers();
                        headers.push((s, subject));
                        headers.push((v, version.to_string()));
                    }
                }
                Ok::<_, FormatError>(false)
            }
            _ => Ok(true),
        };
        let key_raw = one(Part::Key, key, key_buf)?;
        let value_raw = one(Part::Value, value, value_buf)?;
        Ok(DecodedRecord {
            key_raw,
            value_raw,
            headers,
        })
    }

    /// Encodes an output's key and value for `topic` into `out` (those not
    /// raw and not null); `header` reads the output's headers, which may
    /// hold the input's schema. Returns which of key and value were.
    pub fn encode_record<'h>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
        out: &mut (Vec<u8>, Vec<u8>),
    ) -> Result<(bool, bool), FormatError> {
        let text = |name: &str| header(name).and_then(|v| std::str::from_utf8(v).ok());
        let one = |part: Part, bytes: Option<&[u8]>, buf: &mut Vec<u8>| match bytes {
            Some(b) if self.config.output(part) != Format::Raw => {
                let (id, name) = part.headers();
                let hint = Hint {
                    id: text(id).and_then(|v| v.parse().ok()),
                    name: text(name),
                };
                self.encode(part, topic, b, hint, buf)?;
                Ok::<_, FormatError>(true)
            }
            _ => Ok(false),
        };
        Ok((
            one(Part::Key, key, &mut out.0)?,
            one(Part::Value, value, &mut out.1)?,
        ))
    }
}

impl From<SourceError> for FormatError {
    fn from(e: SourceError) -> Self {
        FormatError::from_source(e)
    }
}

/// A parsed schema shared by the cache.
type Shared = Arc<Parsed>;

#[cfg(test)]
mod tests;
