//! `wasmpipe plugin new`: a plugin project that builds with one command and
//! passes its own test.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// Languages a plugin can be scaffolded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
}

/// Where the scaffold takes the Rust SDK from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A checkout of the SDK (`sdk/rust`).
    Path(PathBuf),
    /// The published crate.
    Registry,
}

impl SdkSource {
    /// The `sdk/rust` of a wasmpipe checkout at or above `dir`, else the
    /// published crate.
    pub fn discover(dir: &Path) -> SdkSource {
        dir.ancestors()
            .map(|d| d.join("sdk/rust"))
            .find(|d| d.join("Cargo.toml").is_file() && d.join("src/flat.rs").is_file())
            .map_or(SdkSource::Registry, SdkSource::Path)
    }

    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(p) => format!(
                "wasmpipe-sdk = {{ version = \"{}\", path = {:?} }}",
                env!("CARGO_PKG_VERSION"),
                p.display().to_string()
            ),
            SdkSource::Registry => format!("wasmpipe-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Creates the plugin project `dir/name` and returns its path.
pub fn scaffold(name: &str, lang: Lang, dir: &Path, sdk: &SdkSource) -> anyhow::Result<PathBuf> {
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
    match lang {
        Lang::Rust => write_rust(&root, name, sdk)
            .with_context(|| format!("writing the plugin project {}", root.display()))?,
    }
    Ok(root)
}

fn write_rust(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<()> {
    let lib = name.replace('-', "_");
    let ty: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
name = "{lib}"
crate-type = ["cdylib", "rlib"]

[dependencies]
{dependency}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true

# A plugin is a project of its own, not part of an enclosing workspace.
[workspace]
"#,
            dependency = sdk.dependency()
        ),
    )?;
    std::fs::write(
        root.join("src/lib.rs"),
        format!(
            r#"//! {name}: a wasmpipe transform. It tags every record with a header
//! `processed-by` (its value set by the `tag` config key) and passes it on.

use wasmpipe_sdk::{{Config, Error, Outputs, Record, Transform}};

pub struct {ty} {{
    tag: String,
}}

impl Transform for {ty} {{
    fn init(config: &Config) -> Result<Self, Error> {{
        config.only(&["tag"])?;
        Ok({ty} {{
            tag: config.get("tag").unwrap_or("{name}").to_owned(),
        }})
    }}

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {{
        out.emit(&record.to_output().set_header("processed-by", Some(self.tag.as_bytes())));
        Ok(())
    }}
}}

wasmpipe_sdk::export!({ty});

#[cfg(test)]
mod tests {{
    use super::*;
    use wasmpipe_sdk::testing::{{self, TestRecord}};

    #[test]
    fn tags_every_record_and_keeps_the_rest() {{
        let mut plugin: {ty} = testing::init(&[("tag", "t1")]).unwrap();
        let out = testing::run_one(&mut plugin, TestRecord::new().key("k").value("v")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out[0].headers, [("processed-by".to_owned(), Some(b"t1".to_vec()))]);
    }}
}}
"#
        ),
    )?;
    std::fs::write(
        root.join("sample.jsonl"),
        "{\"key\":\"1\",\"value\":\"{\\\"msg\\\":\\\"hello\\\"}\"}\n{\"key\":\"2\",\"value\":null}\n",
    )?;
    std::fs::write(
        root.join("README.md"),
        format!(
            "# {name}\n\nA wasmpipe transform.\n\n```sh\ncargo test                                          # unit tests, natively\n\
             cargo build --target wasm32-wasip2 --release        # the plugin component\n\
             wasmpipe plugin test target/wasm32-wasip2/release/{lib}.wasm --input sample.jsonl\n```\n"
        ),
    )?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    Ok(())
}
