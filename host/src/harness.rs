//! The local harness: `wasmpipe plugin check` and `wasmpipe plugin test`
//! run a plugin through the same runtime, limits and batch layout that
//! production uses, over JSON-lines records instead of Kafka.

use crate::format::registry::LocalSchemas;
use crate::format::{Codec, FormatConfig, FormatError, Part, is_reserved_header};
use crate::jsonl;
use crate::record::{Batch, RecordParts};
use crate::runtime::{Chain, ChainInstance, Inspection, Limits, Runtime, read_plugin_file};
use crate::state::{PartitionState, StateLimits, StoreMemory, Stores};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::k8s::CONFIGMAP_LIMIT;

/// What `plugin check` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub file_bytes: usize,
    pub wasm_bytes: usize,
    pub gzip_bytes: usize,
    pub zstd_bytes: usize,
    /// A script plugin: sizes are the script's; `wasm_bytes` its runtime's.
    pub script: bool,
    #[serde(flatten)]
    pub inspection: Option<Inspection>,
    /// `None` when the plugin loads (its `init` accepted the config).
    pub load_error: Option<String>,
}

impl CheckReport {
    pub fn loads(&self) -> bool {
        self.load_error.is_none()
    }

    /// How the plugin can be shipped in a ConfigMap, or why not.
    pub fn configmap_fit(&self) -> String {
        let fits = |n: usize| n <= CONFIGMAP_LIMIT;
        if fits(self.file_bytes) {
            format!(
                "fits a ConfigMap ({} of {} bytes)",
                self.file_bytes, CONFIGMAP_LIMIT
            )
        } else if fits(self.zstd_bytes) {
            format!(
                "too large for a ConfigMap ({} bytes > 1 MiB); compressed it fits: ship it as .wasm.zst ({} bytes){}",
                self.file_bytes,
                self.zstd_bytes,
                if fits(self.gzip_bytes) {
                    format!(" or .wasm.gz ({} bytes)", self.gzip_bytes)
                } else {
                    String::new()
                }
            )
        } else {
            format!(
                "too large for a ConfigMap even compressed (zstd {} bytes > 1 MiB): mount it from a volume instead",
                self.zstd_bytes
            )
        }
    }

    pub fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "plugin   {} ({})", self.name, self.path.display())?;
        writeln!(out, "sha256   {}", self.sha256)?;
        if let Some(i) = &self.inspection {
            let world = match (i.world, i.version) {
                (Some(w), Some(v)) => format!(
                    "{w} (wasmpipe:transform@{v}){}",
                    if i.stateful { ", keeps state" } else { "" }
                ),
                _ => "none (not a wasmpipe plugin)".into(),
            };
            writeln!(out, "world    {world}")?;
            writeln!(out, "imports  {}", i.imports.join("\n         "))?;
            writeln!(out, "exports  {}", i.exports.join("\n         "))?;
        }
        if self.script {
            writeln!(
                out,
                "size     {} bytes; gzip {}; zstd {} (a script; its runtime component is {} bytes, in the image)",
                self.file_bytes, self.gzip_bytes, self.zstd_bytes, self.wasm_bytes
            )?;
        } else {
            writeln!(
                out,
                "size     {} bytes; gzip {}; zstd {}",
                self.wasm_bytes, self.gzip_bytes, self.zstd_bytes
            )?;
        }
        writeln!(out, "         {}", self.configmap_fit())?;
        match &self.load_error {
            None => writeln!(out, "loads    yes"),
            Some(e) => writeln!(out, "loads    NO: {e}"),
        }
    }
}

/// Checks that `path` is a component of our world and version, that it
/// links, and that its `init` accepts `config`.
pub fn check(
    runtime: &Arc<Runtime>,
    path: &Path,
    config: Vec<(String, String)>,
    limits: Limits,
) -> anyhow::Result<CheckReport> {
    let source = read_plugin_file(path)?;
    // What would be shipped: the component, or a script's source.
    let shipped = match &source.script {
        Some(s) => s.text.as_bytes(),
        None => &source.wasm[..],
    };
    let gzip_bytes = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(shipped)?;
        enc.finish()?.len()
    };
    let zstd_bytes = zstd::bulk::compress(shipped, 19)
        .context("compressing with zstd")?
        .len();
    // Compiled once: the report's inspection and the load share it.
    let (inspection, load_error) = match runtime.compile(&source) {
        Err(e) => (None, Some(e.to_string())),
        Ok((component, inspection)) => {
            let loaded = runtime.load_compiled(&source, component, &inspection, config, limits);
            (Some(inspection), loaded.err().map(|e| e.to_string()))
        }
    };
    Ok(CheckReport {
        name: source.name.clone(),
        path: path.to_owned(),
        sha256: source.sha256.clone(),
        file_bytes: source.file_bytes,
        wasm_bytes: source.wasm.len(),
        gzip_bytes,
        zstd_bytes,
        script: source.script.is_some(),
        inspection,
        load_error,
    })
}

/// Options of `plugin test`.
#[derive(Clone, Debug)]
pub struct TestOptions {
    pub plugin: PathBuf,
    pub config: Vec<(String, String)>,
    pub input: Option<PathBuf>,
    pub expect: Option<PathBuf>,
    pub limits: Limits,
    pub batch_records: usize,
    pub batch_bytes: usize,
    /// Topic of records whose line names none.
    pub topic: String,
    /// Record formats, with schemas from files.
    pub formats: LocalFormats,
}

/// `plugin test`'s formats: the pipeline's, its schemas given as files
/// (`ID=FILE`; inputs written as JSON are encoded with the first, outputs
/// with the last).
#[derive(Clone, Debug, Default)]
pub struct LocalFormats {
    pub config: FormatConfig,
    pub schemas: Vec<String>,
}

impl LocalFormats {
    /// The codec, and the id JSON inputs are encoded with; `None` if every
    /// format is raw.
    fn codec(&self) -> anyhow::Result<Option<(Codec, u32)>> {
        if self.config.is_raw() {
            return Ok(None);
        }
        let local = LocalSchemas::read(&self.schemas)?;
        let first = local.schemas.first().map(|s| s.id);
        if self.config.needs_registry() && first.is_none() {
            bail!(
                "formats avro, protobuf and json-schema need their schema: give --schema ID=FILE (.avsc, .proto or .json; repeat it for an output schema, which comes last)"
            );
        }
        let codec = Codec::new(
            self.config.clone(),
            Some(Box::new(local)),
            Default::default(),
        )?;
        Ok(Some((codec, first.unwrap_or(0))))
    }
}

/// Counts of a `plugin test` run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSummary {
    pub records_in: u64,
    pub records_out: u64,
    pub failed: BTreeMap<&'static str, u64>,
    pub bad_lines: u64,
    /// `Some(false)` when `--expect` was given and the output differed.
    pub matched: Option<bool>,
}

impl TestSummary {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Whether the run should exit 0.
    pub fn ok(&self) -> bool {
        self.bad_lines == 0 && self.matched != Some(false)
    }
}

/// Runs the plugin over JSON-lines records from `opts.input` (or `stdin`),
/// writing output lines to `out` and per-record errors to `err`.
pub fn test(
    runtime: &Arc<Runtime>,
    opts: &TestOptions,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<TestSummary> {
    let source = read_plugin_file(&opts.plugin)?;
    let plugin = runtime.load(&source, opts.config.clone(), opts.limits)?;
    let mut chain = Chain {
        plugins: vec![plugin],
    }
    .instantiate()?;
    // A plugin that keeps state starts from none, in a store of its own
    // that goes when the test ends.
    let state_dir = tempfile::tempdir().context("creating a directory for the plugin's state")?;
    let stores = std::cell::OnceCell::new();
    chain.lend_states(|p| -> anyhow::Result<PartitionState> {
        let stores = match stores.get() {
            Some(s) => s,
            None => {
                let opened = Stores::open(state_dir.path(), StoreMemory::default())?;
                stores.get_or_init(|| opened)
            }
        };
        let store = stores.partition(&p.name, &opts.topic, 0)?;
        Ok(PartitionState::new(store, StateLimits::default()))
    })?;

    let mut file_reader;
    let (input, progress): (&mut dyn BufRead, _) = match &opts.input {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening the input {}", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = std::io::stderr().is_terminal().then(|| progress_bar(len));
            file_reader = std::io::BufReader::new(file);
            (&mut file_reader, bar)
        }
        None => (stdin, None),
    };

    let codec = opts.formats.codec()?;
    let codec = codec.as_ref();
    let mut scratch = Batch::default();
    let started = Instant::now();
    let mut summary = TestSummary::default();
    let mut produced: Vec<String> = Vec::new();
    let mut batch = Batch::default();
    let mut lines: Vec<u64> = Vec::new();
    let keep = opts.expect.is_some();
    let mut text = String::new();
    let mut line_no = 0u64;
    let mut read_bytes = 0u64;
    loop {
        text.clear();
        let n = input
            .read_line(&mut text)
            .context("reading input records")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        read_bytes += n as u64;
        if let Some(bar) = &progress {
            bar.set_position(read_bytes);
        }
        if text.trim().is_empty() {
            continue;
        }
        let line = text.trim_end();
        let offset = line_no as i64 - 1;
        let pushed = match codec {
            None => jsonl::push_line(&mut batch, line, &opts.topic, offset).map(|()| None),
            Some((codec, id)) => push_formatted(
                &mut batch,
                &mut scratch,
                line,
                &opts.topic,
                offset,
                codec,
                *id,
            ),
        };
        match pushed {
            Ok(None) => lines.push(line_no),
            Ok(Some(e)) => {
                // Dead-lettered in a pipeline: counted as a failed record.
                summary.records_in += 1;
                *summary.failed.entry(e.reason()).or_default() += 1;
                writeln!(err, "line {line_no}: format ({}): {e}", e.reason())?;
            }
            Err(e) => {
                summary.bad_lines += 1;
                writeln!(err, "line {line_no}: {e}")?;
            }
        }
        if batch.len() >= opts.batch_records || batch.data_len() >= opts.batch_bytes {
            run_batch(
                &mut chain,
                &mut batch,
                &mut lines,
                &mut summary,
                keep.then_some(&mut produced),
                codec.map(|(c, _)| c),
                out,
                err,
            )?;
        }
    }
    if !batch.is_empty() {
        run_batch(
            &mut chain,
            &mut batch,
            &mut lines,
            &mut summary,
            keep.then_some(&mut produced),
            codec.map(|(c, _)| c),
            out,
            err,
        )?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    out.flush()?;

    if let Some(path) = &opts.expect {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the expected output {}", path.display()))?;
        let mut expected = Vec::new();
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match jsonl::canonical(l) {
                Ok(c) => expected.push(c),
                Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
            }
        }
        summary.matched = Some(expected == produced);
        if expected != produced {
            let (want, got) = (expected.join("\n") + "\n", produced.join("\n") + "\n");
            let diff = similar::TextDiff::from_lines(&want, &got);
            writeln!(
                err,
                "output differs from {} (- expected, + actual):",
                path.display()
            )?;
            write!(
                err,
                "{}",
                diff.unified_diff()
                    .context_radius(2)
                    .header("expected", "actual")
            )?;
        }
    }

    let secs = started.elapsed().as_secs_f64();
    let failed: Vec<String> = summary
        .failed
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(
        err,
        "wasmpipe: {} records in, {} out, {} failed{}, {} bad lines, in {:.0} ms ({:.0} records/s{}){}",
        summary.records_in,
        summary.records_out,
        summary.failed_total(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        },
        summary.bad_lines,
        secs * 1e3,
        summary.records_in as f64 / secs.max(1e-9),
        peak_rss().map_or(String::new(), |kib| format!(
            ", peak RSS {:.1} MiB",
            kib as f64 / 1024.0
        )),
        match summary.matched {
            Some(true) => "; output matches the expected",
            Some(false) => "; OUTPUT DIFFERS from the expected",
            None => "",
        }
    )?;
    Ok(summary)
}

/// Runs one batch and writes its outputs and failures; `lines` maps each
/// record of the batch to its input line. (The test's state, passed apart
/// to keep its borrows apart.)
#[allow(clippy::too_many_arguments)]
fn run_batch(
    chain: &mut ChainInstance,
    batch: &mut Batch,
    lines: &mut Vec<u64>,
    summary: &mut TestSummary,
    mut produced: Option<&mut Vec<String>>,
    codec: Option<&Codec>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let result = chain.run(batch);
    // Nothing to make durable here: what a batch wrote is the store's.
    for (_, state) in chain.states_mut() {
        if let Some((seq, _)) = state.pending().seal() {
            state.made_durable(seq, 0)?;
        }
    }
    for f in &result.failures {
        *summary.failed.entry(f.failure.label()).or_default() += 1;
        let kind = f.failure.kind().as_str();
        writeln!(
            err,
            "line {}: {kind} in plugin {}: {}",
            lines[f.index as usize], f.plugin, f.failure
        )?;
    }
    let mut encoded = Default::default();
    for r in result.records() {
        let (mut key, mut value) = (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec));
        if let Some(codec) = codec {
            // Encoded as the pipeline would, and shown as a consumer reads it.
            let topic = r.topic.unwrap_or("output");
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v)
            };
            match codec.encode_record(topic, r.key, r.value, &header, &mut encoded) {
                Ok((k, v)) => {
                    if k {
                        key = Some(read_back(codec, Part::Key, &encoded.0)?);
                    }
                    if v {
                        value = Some(read_back(codec, Part::Value, &encoded.1)?);
                    }
                }
                Err(e) => {
                    *summary.failed.entry(e.reason()).or_default() += 1;
                    writeln!(
                        err,
                        "line {}: format ({}) of an output to {topic}: {e}",
                        lines[r.origin as usize],
                        e.reason()
                    )?;
                    continue;
                }
            }
        }
        let headers = r
            .headers
            .iter()
            .filter(|(n, _)| codec.is_none() || !is_reserved_header(n.as_bytes()));
        let line = jsonl::output_line(
            key.as_deref(),
            value.as_deref(),
            headers,
            r.timestamp,
            r.topic,
        );
        writeln!(out, "{line}")?;
        if let Some(p) = produced.as_deref_mut() {
            p.push(line);
        }
        summary.records_out += 1;
    }
    summary.records_in += batch.len() as u64;
    batch.clear();
    lines.clear();
    Ok(())
}

/// An encoded output as JSON again, as a consumer of its topic reads it.
fn read_back(codec: &Codec, part: Part, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut json = Vec::new();
    codec
        .decode_output(part, bytes, &mut json)
        .map_err(|e| anyhow::anyhow!("reading an encoded output back: {e}"))?;
    Ok(json)
}

/// Parses a line into `batch`, its key and value decoded by `codec` as a
/// pipeline decodes them: given as wire-format bytes (`value_b64`), or as
/// JSON, first encoded with schema `id` as a producer would. A part that
/// does not decode is the returned error, the record left out.
fn push_formatted(
    batch: &mut Batch,
    scratch: &mut Batch,
    line: &str,
    topic: &str,
    offset: i64,
    codec: &Codec,
    id: u32,
) -> Result<Option<FormatError>, jsonl::LineError> {
    scratch.clear();
    jsonl::push_line(scratch, line, topic, offset)?;
    let Some(r) = scratch.get(0) else {
        return Ok(None);
    };
    let framed = |part: Part, bytes: Option<&[u8]>| -> Result<Option<Vec<u8>>, FormatError> {
        match bytes {
            Some(b) if codec.config().input(part).is_registry() && b.first() != Some(&0) => {
                codec.frame(part, b, id, None).map(Some)
            }
            b => Ok(b.map(<[u8]>::to_vec)),
        }
    };
    let (key, value) = match (framed(Part::Key, r.key()), framed(Part::Value, r.value())) {
        (Ok(k), Ok(v)) => (k, v),
        (Err(e), _) | (_, Err(e)) => return Ok(Some(e)),
    };
    let (mut key_buf, mut value_buf) = (Vec::new(), Vec::new());
    let decoded = match codec.decode_record(
        key.as_deref(),
        value.as_deref(),
        &mut key_buf,
        &mut value_buf,
    ) {
        Ok(d) => d,
        Err(e) => return Ok(Some(e)),
    };
    let parts = RecordParts {
        key: if decoded.key_raw {
            key.as_deref()
        } else {
            Some(&key_buf[..])
        },
        value: if decoded.value_raw {
            value.as_deref()
        } else {
            Some(&value_buf[..])
        },
        timestamp: r.timestamp(),
        timestamp_type: r.timestamp_type(),
        topic: r.topic(),
        partition: r.partition(),
        offset: r.offset(),
    };
    let headers = r
        .headers()
        .iter()
        .filter(|(n, _)| !is_reserved_header(n.as_bytes()))
        .chain(
            decoded
                .headers
                .iter()
                .map(|(n, v)| (*n, Some(v.as_bytes()))),
        );
    batch
        .push_parts(parts, headers)
        .map_err(|e| jsonl::LineError::Json(e.to_string()))?;
    Ok(None)
}

/// This process's peak resident set, in KiB (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
