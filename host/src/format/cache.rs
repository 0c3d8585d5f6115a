//! Parsed schemas, cached by id with a bound on how many are kept, and
//! subjects' versions, the latest looked up again after a while.

use super::avro::AvroSchema;
use super::protobuf::ProtoSchema;
use super::registry::{RawSchema, SchemaSource, Version};
use super::{CacheLimits, FormatError, Misfit, SchemaKind, Shared};
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value as Json;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A schema ready to decode and encode with.
pub struct Parsed {
    id: u32,
    name: Option<String>,
    /// A subject and version it is registered as, when known.
    subject: Option<(String, u32)>,
    body: Body,
}

enum Body {
    Avro(Box<AvroSchema>),
    Protobuf(ProtoSchema),
    Json(jsonschema::Validator),
}

impl Parsed {
    fn parse(raw: &RawSchema) -> Result<Parsed, String> {
        let (body, name) = match raw.kind {
            SchemaKind::Avro => {
                let refs: Vec<String> =
                    raw.references.iter().map(|(_, r)| r.text.clone()).collect();
                let schema = AvroSchema::parse(&raw.text, &refs)?;
                let name = schema.name();
                (Body::Avro(Box::new(schema)), name)
            }
            SchemaKind::Protobuf => {
                let refs: Vec<(String, String)> = raw
                    .references
                    .iter()
                    .map(|(n, r)| (n.clone(), r.text.clone()))
                    .collect();
                (Body::Protobuf(ProtoSchema::parse(&raw.text, &refs)?), None)
            }
            SchemaKind::Json => {
                if !raw.references.is_empty() {
                    return Err("JSON Schemas with references are not read yet: inline the referenced definitions".into());
                }
                let schema: Json = serde_json::from_str(&raw.text)
                    .map_err(|e| format!("the JSON Schema is not JSON: {e}"))?;
                let name = schema
                    .get("title")
                    .and_then(Json::as_str)
                    .map(str::to_owned);
                let validator = jsonschema::validator_for(&schema)
                    .map_err(|e| format!("not a JSON Schema: {e}"))?;
                (Body::Json(validator), name)
            }
        };
        Ok(Parsed {
            id: raw.id,
            name,
            subject: None,
            body,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn subject(&self) -> Option<&(String, u32)> {
        self.subject.as_ref()
    }

    pub fn kind(&self) -> SchemaKind {
        match self.body {
            Body::Avro(_) => SchemaKind::Avro,
            Body::Protobuf(_) => SchemaKind::Protobuf,
            Body::Json(_) => SchemaKind::Json,
        }
    }

    /// The payload (frame removed) as JSON, with the record's full name.
    /// The record's `payload` as JSON text in `out`, and the name of the
    /// message or record it holds.
    pub fn decode(
        &self,
        indexes: &[i32],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<String>, String> {
        let text = |json: &Json, out: &mut Vec<u8>| {
            serde_json::to_writer(out, json).map_err(|e| e.to_string())
        };
        match &self.body {
            Body::Avro(s) => {
                s.decode(payload, out)?;
                Ok(self.name.clone())
            }
            Body::Protobuf(s) => {
                let message = s.message(indexes)?;
                text(&s.decode(&message, payload)?, out)?;
                Ok(Some(message.full_name().to_owned()))
            }
            Body::Json(v) => {
                let json: Json =
                    serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
                if let Err(e) = v.validate(&json) {
                    return Err(format!(
                        "not valid by its JSON Schema: {e} (at {})",
                        e.instance_path()
                    ));
                }
                text(&json, out)?;
                Ok(self.name.clone())
            }
        }
    }

    /// `json` (text) framed and encoded with this schema into `out`;
    /// `name` picks a Protobuf file's message. Fields the schema lacks are
    /// dropped, unless `strict`.
    pub fn encode(
        &self,
        json: &[u8],
        name: Option<&str>,
        out: &mut Vec<u8>,
        strict: bool,
    ) -> Result<(), Misfit> {
        let parsed = || serde_json::from_slice::<Json>(json).map_err(Misfit::NotJson);
        match &self.body {
            Body::Avro(s) => {
                super::wire::frame(self.id, None, out);
                s.encode(json, out, strict)
            }
            Body::Protobuf(s) => {
                let json = parsed()?;
                let indexes = name
                    .and_then(|n| s.indexes_of(n))
                    .unwrap_or_else(|| vec![0]);
                let message = s.message(&indexes).map_err(Misfit::Schema)?;
                super::wire::frame(self.id, Some(&indexes), out);
                s.encode(&message, &json, out, strict)
                    .map_err(Misfit::Schema)
            }
            Body::Json(v) => {
                let json = parsed()?;
                if let Err(e) = v.validate(&json) {
                    return Err(Misfit::Schema(format!(
                        "not valid by the JSON Schema: {e} (at {})",
                        e.instance_path()
                    )));
                }
                super::wire::frame(self.id, None, out);
                serde_json::to_writer(&mut *out, &json).map_err(|e| Misfit::Schema(e.to_string()))
            }
        }
    }
}

/// The cache over a [`SchemaSource`].
pub struct Schemas {
    source: Box<dyn SchemaSource>,
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Schemas by id, with when each was last used.
    by_id: HashMap<u32, (Shared, u64)>,
    /// Subject versions: the id, and when a latest was looked up.
    versions: HashMap<String, HashMap<Version, (u32, Instant)>>,
    /// Ids refused (unknown or unreadable), and when; at most as many as
    /// schemas are kept.
    refused: HashMap<u32, (FormatError, Instant)>,
    /// A use counter, for least-recently-used eviction.
    clock: u64,
}

impl Schemas {
    pub fn new(source: Box<dyn SchemaSource>, limits: CacheLimits) -> Schemas {
        Schemas {
            source,
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn source(&self) -> &dyn SchemaSource {
        self.source.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The schema of `id`, from the cache or the source.
    pub fn by_id(&self, id: u32) -> Result<Shared, FormatError> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        if let Some(e) = self.refused(id) {
            return Err(e);
        }
        let found =
            self.source
                .by_id(id)
                .map_err(|e| match e {
                    super::registry::SourceError::NotFound(m) => FormatError::UnknownSchema(
                        format!("schema id {id} is not in {}: {m}", self.source.describe()),
                    ),
                    e => e.into(),
                })
                .and_then(|raw| self.insert(&raw, self.source.subject_of(id)));
        if let Err(e @ FormatError::UnknownSchema(_)) = &found {
            self.refuse(id, e.clone());
        }
        found
    }

    /// Why id `id` was refused (not in the registry, or not readable), if
    /// that was less than `latest_ttl` ago: a topic full of records of such
    /// an id costs one lookup and one parse a while, not one a record.
    fn refused(&self, id: u32) -> Option<FormatError> {
        let inner = self.lock();
        let (e, at) = inner.refused.get(&id)?;
        (at.elapsed() < self.limits.latest_ttl).then(|| e.clone())
    }

    fn refuse(&self, id: u32, e: FormatError) {
        let ttl = self.limits.latest_ttl;
        let mut inner = self.lock();
        if inner.refused.len() >= self.limits.schemas.max(1) {
            inner.refused.retain(|_, (_, at)| at.elapsed() < ttl);
            if inner.refused.len() >= self.limits.schemas.max(1) {
                inner.refused.clear();
            }
        }
        inner.refused.insert(id, (e, Instant::now()));
    }

    /// `version` of `subject`; the latest is looked up again once it is
    /// older than the cache's `latest_ttl`.
    pub fn version(&self, subject: &str, version: Version) -> Result<Shared, FormatError> {
        let known = self
            .lock()
            .versions
            .get(subject)
            .and_then(|v| v.get(&version))
            .copied();
        if let Some((id, at)) = known
            && (version != Version::Latest || at.elapsed() < self.limits.latest_ttl)
            && let Some(s) = self.cached(id)
        {
            return Ok(s);
        }
        let raw = self.source.version(subject, version).map_err(|e| match e {
            super::registry::SourceError::NotFound(m) => FormatError::IncompatibleOutput(format!(
                "subject {subject} version {version} is not in {}: register the output's schema \
                 there ({m})",
                self.source.describe()
            )),
            e => e.into(),
        })?;
        let number = match version {
            Version::Number(n) => Some(n),
            Version::Latest => None,
        };
        let parsed = self.insert(&raw, number.map(|n| (subject.to_owned(), n)))?;
        self.lock()
            .versions
            .entry(subject.to_owned())
            .or_default()
            .insert(version, (raw.id, Instant::now()));
        Ok(parsed)
    }

    fn cached(&self, id: u32) -> Option<Shared> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.by_id.get_mut(&id).map(|(s, used)| {
            *used = now;
            s.clone()
        })
    }

    fn insert(
        &self,
        raw: &RawSchema,
        subject: Option<(String, u32)>,
    ) -> Result<Shared, FormatError> {
        let mut parsed = Parsed::parse(raw).map_err(|e| {
            FormatError::UnknownSchema(format!(
                "schema id {} from {} cannot be read: {e}",
                raw.id,
                self.source.describe()
            ))
        })?;
        parsed.subject = subject;
        let parsed = Arc::new(parsed);
        let mut inner = self.lock();
        while inner.by_id.len() >= self.limits.schemas.max(1) {
            let Some(oldest) = inner
                .by_id
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            inner.by_id.remove(&oldest);
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.by_id.insert(raw.id, (parsed.clone(), now));
        Ok(parsed)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}
