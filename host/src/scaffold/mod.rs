//! `wasmpipe plugin new`: a plugin project that builds with one command and
//! passes its own test.

mod bundle;
mod compiled;
mod scripts;

use anyhow::{Context as _, bail};
use compiled::{write_c, write_go, write_rust};
use scripts::{write_js, write_python, write_ts};
use std::path::{Path, PathBuf};

/// Languages a plugin can be scaffolded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    /// TypeScript: a script compiled by `tsc` to a JavaScript plugin.
    Ts,
    Go,
    C,
}

impl Lang {
    /// The SDK's directory in a checkout (and in a bundle) and a file that
    /// marks it.
    fn sdk_dir(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("sdk/rust", "src/flat.rs"),
            Lang::Python => ("sdk/python", "wasmpipe/__init__.py"),
            Lang::Js | Lang::Ts => ("sdk/js", "wasmpipe.js"),
            Lang::Go => ("sdk/go", "wasmpipe.go"),
            Lang::C => ("sdk/c", "wasmpipe.h"),
        }
    }
}

/// Where the scaffold takes the language's SDK from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A checkout of the SDK (`sdk/rust`, `sdk/python`, ...).
    Path(PathBuf),
    /// The SDK this binary carries, written into the project (under
    /// `wasmpipe/`), so that it builds with no checkout and no SDK package
    /// from a registry.
    Bundled,
}

impl SdkSource {
    /// The language's SDK (`sdk/rust`, `sdk/python`) of a wasmpipe
    /// checkout at or above `dir`, else the one this binary carries.
    pub fn discover(dir: &Path, lang: Lang) -> SdkSource {
        let (sdk, marker) = lang.sdk_dir();
        dir.ancestors()
            .map(|d| d.join(sdk))
            .find(|d| d.join(marker).is_file())
            .map_or(SdkSource::Bundled, SdkSource::Path)
    }
}

/// Creates the plugin project `dir/name`; returns its path and the
/// commands that test and build it.
pub fn scaffold(
    name: &str,
    lang: Lang,
    dir: &Path,
    sdk: &SdkSource,
) -> anyhow::Result<(PathBuf, String)> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "plugin name '{name}': use lowercase letters, digits, '-' and '_', starting with a letter (e.g. mask-emails)"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists: pick another name or remove it",
            root.display()
        );
    }
    let sdk = &match sdk {
        SdkSource::Path(p) => p.clone(),
        SdkSource::Bundled => bundle::write(&root, lang)
            .with_context(|| format!("writing the {lang:?} SDK into {}", root.display()))?,
    };
    let next = match lang {
        Lang::Rust => write_rust(&root, name, sdk),
        Lang::Python => write_python(&root, name, sdk),
        Lang::Js => write_js(&root, name, sdk),
        Lang::Ts => write_ts(&root, name, sdk),
        Lang::Go => write_go(&root, name, sdk),
        Lang::C => write_c(&root, name, sdk),
    }
    .with_context(|| format!("writing the plugin project {}", root.display()))?;
    Ok((root, next))
}

pub(crate) fn write_sample(root: &Path) -> std::io::Result<()> {
    std::fs::write(
        root.join("sample.jsonl"),
        "{\"key\":\"1\",\"value\":\"{\\\"msg\\\":\\\"hello\\\"}\"}\n{\"key\":\"2\",\"value\":null}\n",
    )
}

/// `mask-emails` as a type name: `MaskEmails`.
pub(crate) fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The SDK crate as a Rust project at `sdk` depends on it.
pub(crate) fn rust_dependency(sdk: &Path) -> String {
    format!(
        "wasmpipe-sdk = {{ version = \"{}\", path = {:?} }}",
        env!("CARGO_PKG_VERSION"),
        sdk.display().to_string()
    )
}
