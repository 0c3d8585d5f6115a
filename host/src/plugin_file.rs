//! A plugin file's name: what the file holds, and the plugin's name when
//! the pipeline gives none. One place for the endings every reader of a
//! plugin directory goes by.

/// What a plugin file holds, by its name's ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// A component, `.wasm`.
    Wasm,
    /// A gzip-compressed component, `.wasm.gz` (for the ConfigMap's 1 MiB).
    WasmGzip,
    /// A zstd-compressed component, `.wasm.zst`.
    WasmZstd,
    /// A Python script, `.py`, run by the Python script runtime.
    Python,
    /// A JavaScript script, `.js`, run by the JavaScript script runtime.
    JavaScript,
}

/// Every ending, longest first where one ends another.
const ENDINGS: [(&str, PluginKind); 5] = [
    (".wasm.gz", PluginKind::WasmGzip),
    (".wasm.zst", PluginKind::WasmZstd),
    (".wasm", PluginKind::Wasm),
    (".py", PluginKind::Python),
    (".js", PluginKind::JavaScript),
];

/// The endings, as errors and help name them.
pub const ENDINGS_TEXT: &str = ".wasm, .wasm.gz, .wasm.zst, .py or .js";

/// A plugin file's name, split into the plugin's default name and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginFile<'a> {
    stem: &'a str,
    kind: PluginKind,
}

impl<'a> PluginFile<'a> {
    /// The file `file_name` (no directory) as a plugin, or `None` when no
    /// plugin is named so (a hidden file, another ending).
    pub fn parse(file_name: &'a str) -> Option<PluginFile<'a>> {
        if file_name.starts_with('.') {
            return None;
        }
        ENDINGS.iter().find_map(|(ending, kind)| {
            file_name
                .strip_suffix(ending)
                .filter(|stem| !stem.is_empty())
                .map(|stem| PluginFile { stem, kind: *kind })
        })
    }

    /// The plugin's name when the pipeline gives none: the file's name
    /// without its ending.
    pub fn stem(&self) -> &'a str {
        self.stem
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// A component, compressed or not (not a script).
    pub fn is_wasm(&self) -> bool {
        matches!(
            self.kind,
            PluginKind::Wasm | PluginKind::WasmGzip | PluginKind::WasmZstd
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_names_its_kind_and_stem() {
        for (name, stem, kind) in [
            ("redact.wasm", "redact", PluginKind::Wasm),
            ("redact.wasm.gz", "redact", PluginKind::WasmGzip),
            ("redact.wasm.zst", "redact", PluginKind::WasmZstd),
            ("mask.v2.py", "mask.v2", PluginKind::Python),
            ("route.js", "route", PluginKind::JavaScript),
        ] {
            let file = PluginFile::parse(name).unwrap();
            assert_eq!((file.stem(), file.kind()), (stem, kind), "{name}");
        }
    }

    #[test]
    fn other_files_are_not_plugins() {
        for name in [
            "pipeline.yaml",
            "README.md",
            ".wasm",
            ".hidden.wasm",
            "..data",
            "redact.wasm.bak",
            "redact.gz",
            "",
        ] {
            assert_eq!(PluginFile::parse(name), None, "{name}");
        }
    }
}
