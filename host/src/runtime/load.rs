//! Reading, checking and compiling a plugin file into a [`Plugin`]: a
//! compiled component of a known world, pre-linked, ready to instantiate.

use super::bindings::{self, flat, flat_v2, typed, typed_v2};
use super::compile::CompileError;
use super::error::LoadError;
use super::state::HostState;
use super::{Limits, Runtime};
use crate::plugin_file::{PluginFile, PluginKind};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, InstancePre};

/// The largest plugin file accepted, as stored (compressed or not).
pub const MAX_PLUGIN_FILE_BYTES: u64 = 128 << 20;
/// The largest plugin accepted, after decompression.
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// Which world a plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    Flat,
    Typed,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Flat => "flat",
            World::Typed => "typed",
        }
    }
}

/// A plugin's bytes and where they came from.
#[derive(Clone, Debug)]
pub struct PluginSource {
    /// The name in logs, metrics and dead letters (the file stem by default).
    pub name: String,
    pub path: PathBuf,
    /// The component, decompressed (for a script, its interpreter).
    pub wasm: Vec<u8>,
    /// sha256 of the file the user wrote, hex: the component's, or the
    /// script's for a script plugin.
    pub sha256: String,
    /// sha256 of `wasm`: what the compile cache is keyed by.
    pub wasm_sha256: String,
    /// Size of the file as stored (compressed or not).
    pub file_bytes: usize,
    /// For a script plugin: the source its interpreter runs.
    pub script: Option<Script>,
}

/// A script plugin's source. The interpreter component receives it through
/// `init`, under the config keys [`SCRIPT_SOURCE_KEY`] and
/// [`SCRIPT_NAME_KEY`], so a new script needs no compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub file_name: String,
    pub text: String,
}

pub const SCRIPT_SOURCE_KEY: &str = "wasmpipe.script";
pub const SCRIPT_NAME_KEY: &str = "wasmpipe.script-name";

/// A language a plugin can be written in as a script: the file extension,
/// the language, its interpreter component and how to build that.
struct ScriptRuntime {
    kind: PluginKind,
    language: &'static str,
    file: &'static str,
    build: &'static str,
}

const SCRIPT_RUNTIMES: &[ScriptRuntime] = &[
    ScriptRuntime {
        kind: PluginKind::Python,
        language: "Python",
        file: "python-script.wasm",
        build: "python -m wasmpipe.build --script-runtime -o python-script.wasm (sdk/python)",
    },
    ScriptRuntime {
        kind: PluginKind::JavaScript,
        language: "JavaScript",
        file: "js-script.wasm",
        build: "node sdk/js/build.mjs --script-runtime -o js-script.wasm",
    },
];

/// Where script runtimes are looked for: `WASMPIPE_SCRIPT_RUNTIMES`, then
/// `../lib/wasmpipe` beside the executable, then `/usr/lib/wasmpipe` (the
/// image's).
fn script_runtime_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("WASMPIPE_SCRIPT_RUNTIMES") {
        return std::env::split_paths(&dir).collect();
    }
    let mut dirs = Vec::new();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        dirs.push(bin.join("../lib/wasmpipe"));
    }
    dirs.push(PathBuf::from("/usr/lib/wasmpipe"));
    dirs
}

fn read_script(
    path: &Path,
    file_name: &str,
    stem: &str,
    raw: Vec<u8>,
    runtime: &ScriptRuntime,
) -> Result<PluginSource, LoadError> {
    let text = String::from_utf8(raw).map_err(|e| LoadError::ScriptText {
        path: path.to_owned(),
        reason: e.utf8_error().to_string(),
    })?;
    let dirs = script_runtime_dirs();
    let found = dirs
        .iter()
        .map(|d| d.join(runtime.file))
        .find(|p| p.is_file());
    let Some(runtime_path) = found else {
        return Err(LoadError::ScriptRuntime {
            path: path.to_owned(),
            language: runtime.language,
            file: runtime.file,
            build: runtime.build,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let interpreter = read_plugin_file(&runtime_path)?;
    Ok(PluginSource {
        name: stem.to_owned(),
        path: path.to_owned(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        wasm_sha256: interpreter.wasm_sha256,
        file_bytes: text.len(),
        wasm: interpreter.wasm,
        script: Some(Script {
            file_name: file_name.to_owned(),
            text,
        }),
    })
}

/// Reads a `.wasm`, `.wasm.gz` or `.wasm.zst` file, or a script plugin
/// (`.py`) with its interpreter.
pub fn read_plugin_file(path: &Path) -> Result<PluginSource, LoadError> {
    let read = |error| LoadError::Read {
        path: path.to_owned(),
        error,
    };
    let raw = read_regular_file(path, MAX_PLUGIN_FILE_BYTES)?;
    let file_bytes = raw.len();
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("plugin");
    let file = PluginFile::parse(file_name);
    let stem = file.map_or(file_name, |f| f.stem());
    let kind = file.map_or(PluginKind::Wasm, |f| f.kind());
    if let Some(runtime) = SCRIPT_RUNTIMES.iter().find(|r| r.kind == kind) {
        return read_script(path, file_name, stem, raw, runtime);
    }
    let decompress = |reader: &mut dyn Read, codec: &str| -> Result<Vec<u8>, LoadError> {
        let mut out = Vec::new();
        reader
            .take(MAX_PLUGIN_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| LoadError::Decompress {
                path: path.to_owned(),
                reason: format!("not valid {codec}: {e}"),
            })?;
        if out.len() as u64 > MAX_PLUGIN_BYTES {
            return Err(LoadError::TooLarge {
                path: path.to_owned(),
                what: "decompressed",
                limit: MAX_PLUGIN_BYTES,
            });
        }
        Ok(out)
    };
    let wasm = match kind {
        PluginKind::WasmGzip => decompress(&mut flate2::read::GzDecoder::new(&raw[..]), "gzip")?,
        PluginKind::WasmZstd => {
            let mut decoder = zstd::Decoder::new(&raw[..]).map_err(read)?;
            decompress(&mut decoder, "zstd")?
        }
        PluginKind::Wasm | PluginKind::Python | PluginKind::JavaScript => raw,
    };
    let sha256 = hex::encode(Sha256::digest(&wasm));
    Ok(PluginSource {
        name: stem.to_owned(),
        path: path.to_owned(),
        wasm_sha256: sha256.clone(),
        sha256,
        file_bytes,
        wasm,
        script: None,
    })
}

/// Reads `path` if it is a regular file of at most `limit` bytes. Opened
/// without blocking, so a FIFO or a device named as a plugin is refused
/// instead of hanging the reader.
fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    let read = |error| LoadError::Read {
        path: path.to_owned(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile {
            path: path.to_owned(),
        });
    }
    if meta.len() > limit {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            what: "as stored",
            limit,
        });
    }
    let mut raw = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read.
    file.take(limit + 1).read_to_end(&mut raw).map_err(read)?;
    if raw.len() as u64 > limit {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            what: "as stored",
            limit,
        });
    }
    Ok(raw)
}

/// A compiled, checked plugin. Cheap to instantiate many times.
#[derive(Clone)]
pub struct Plugin {
    pub name: String,
    pub sha256: String,
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    /// A script plugin's source, passed to `init` after `config`.
    pub script: Option<Script>,
    pub(super) runtime: Arc<Runtime>,
    pub(super) pre: InstancePre<HostState>,
    pub(super) exports: Exports,
    stateful: bool,
    /// Where its state lives, if it keeps any (the pipeline file's `state:`).
    pub state: crate::state::changelog::ChangelogSpec,
}

/// A plugin's world and version, with where its exports are in the
/// component.
#[derive(Clone)]
pub(super) enum Exports {
    Flat(flat::GuestIndices),
    Typed(typed::GuestIndices),
    FlatV2(flat_v2::GuestIndices),
    TypedV2(typed_v2::GuestIndices),
}

impl Plugin {
    pub fn world(&self) -> World {
        match self.exports {
            Exports::Flat(_) | Exports::FlatV2(_) => World::Flat,
            Exports::Typed(_) | Exports::TypedV2(_) => World::Typed,
        }
    }

    /// The plugin, its state kept where `state` says.
    pub fn with_state(
        self: Arc<Self>,
        state: crate::state::changelog::ChangelogSpec,
    ) -> Arc<Plugin> {
        Arc::new(Plugin {
            state,
            ..Arc::unwrap_or_clone(self)
        })
    }

    /// Whether the plugin imports the state interface: it then gets a
    /// store and a changelog topic per input partition.
    pub fn is_stateful(&self) -> bool {
        self.stateful
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("world", &self.world())
            .finish_non_exhaustive()
    }
}

/// What `plugin check` reports about a component.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Inspection {
    pub world: Option<&'static str>,
    /// The `wasmpipe:transform` version the plugin is built against.
    pub version: Option<&'static str>,
    /// Whether it imports the state interface.
    pub stateful: bool,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Runtime {
    /// Compiles (or loads from the cache) and checks `source`, without
    /// running it. Errors name the file and the fix.
    pub fn compile(&self, source: &PluginSource) -> Result<(Component, Inspection), LoadError> {
        let path = || source.path.clone();
        match source.wasm.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                return Err(LoadError::CoreModule { path: path() });
            }
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm { path: path() }),
        }
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &source.wasm_sha256, |dir| {
                self.compile_wasm(&source.wasm, Some(dir))
            }),
            None => self.compile_wasm(&source.wasm, None),
        };
        let component = compiled.map_err(|e| match e {
            CompileError::Time(limit) => LoadError::CompileBudget {
                path: path(),
                spent: format!("more than {limit:?}"),
                flag: "--compile-timeout (WASMPIPE_COMPILE_TIMEOUT)",
            },
            CompileError::Memory(bytes) => LoadError::CompileBudget {
                path: path(),
                spent: format!("more than {} MiB of memory", bytes >> 20),
                flag: "--compile-memory-mib (WASMPIPE_COMPILE_MEMORY_MIB)",
            },
            CompileError::Killed => LoadError::CompileKilled { path: path() },
            CompileError::Failed(message) => LoadError::Compile {
                path: path(),
                message,
            },
        })?;
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exported = |names: [&'static str; 2]| {
            names
                .iter()
                .zip(bindings::WIT_VERSIONS)
                .find(|(name, _)| exports.iter().any(|e| e == *name))
                .map(|(_, version)| version)
        };
        let (world, version) = match (
            exported(bindings::FLAT_EXPORTS),
            exported(bindings::TYPED_EXPORTS),
        ) {
            (Some(v), _) => (Some("flat"), Some(v)),
            (None, Some(v)) => (Some("typed"), Some(v)),
            (None, None) => (None, None),
        };
        let stateful = imports.iter().any(|i| i == bindings::STATE_IMPORT);
        Ok((
            component,
            Inspection {
                world,
                version,
                stateful,
                imports,
                exports,
            },
        ))
    }

    /// Loads `source` as a plugin: compiles, checks its world and imports,
    /// links it, and instantiates it once to run `init` with `config` so a
    /// bad config is refused now rather than on the first batch.
    pub fn load(
        self: &Arc<Self>,
        source: &PluginSource,
        config: Vec<(String, String)>,
        limits: Limits,
    ) -> Result<Arc<Plugin>, LoadError> {
        let (component, inspection) = self.compile(source)?;
        self.load_compiled(source, component, &inspection, config, limits)
    }

    /// [`Runtime::load`] for a component [`Runtime::compile`] already made.
    pub fn load_compiled(
        self: &Arc<Self>,
        source: &PluginSource,
        component: Component,
        inspection: &Inspection,
        config: Vec<(String, String)>,
        limits: Limits,
    ) -> Result<Arc<Plugin>, LoadError> {
        let path = || source.path.clone();
        let world = match inspection.world {
            Some("flat") => World::Flat,
            Some(_) => World::Typed,
            None => return Err(wrong_world(path(), &inspection.exports)),
        };
        if let Some(import) = inspection.imports.iter().find(|i| !import_allowed(i)) {
            return Err(LoadError::UnsupportedImport {
                path: path(),
                import: import.clone(),
            });
        }
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path(),
            message: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let v2 = inspection.version == Some("0.2.0");
        let exports = match (world, v2) {
            (World::Flat, false) => Exports::Flat(flat::GuestIndices::new(&pre).map_err(link)?),
            (World::Typed, false) => Exports::Typed(typed::GuestIndices::new(&pre).map_err(link)?),
            (World::Flat, true) => Exports::FlatV2(flat_v2::GuestIndices::new(&pre).map_err(link)?),
            (World::Typed, true) => {
                Exports::TypedV2(typed_v2::GuestIndices::new(&pre).map_err(link)?)
            }
        };
        let plugin = Arc::new(Plugin {
            name: source.name.clone(),
            sha256: source.sha256.clone(),
            config,
            limits,
            script: source.script.clone(),
            runtime: self.clone(),
            pre,
            exports,
            stateful: inspection.stateful,
            state: Default::default(),
        });
        plugin.instantiate()?;
        Ok(plugin)
    }
}

fn wrong_world(path: PathBuf, exports: &[String]) -> LoadError {
    if let Some(found) = exports
        .iter()
        .find(|e| e.starts_with("wasmpipe:transform/"))
    {
        return LoadError::WrongVersion {
            path,
            found: found.clone(),
            supported: bindings::WIT_VERSION,
        };
    }
    let hint = if exports.iter().any(|e| e.starts_with("wasi:cli/run")) {
        " — this is a WASI command (a `bin` crate or a `main`); a plugin is a library (`cdylib`)"
    } else {
        ""
    };
    LoadError::WrongWorld {
        path,
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
        hint,
    }
}

/// Interfaces the linker provides. Filesystem and sockets are linked so
/// that language runtimes which import them load, but grant nothing.
fn import_allowed(name: &str) -> bool {
    [
        "wasmpipe:transform/",
        "wasi:cli/",
        "wasi:io/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
        "wasi:sockets/",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}
