//! `wasmpipe plugin new`: a plugin project that builds with one command and
//! passes its own test.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// Languages a plugin can be scaffolded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// The SDK's directory in a checkout and a file that marks it.
    fn sdk_dir(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("sdk/rust", "src/flat.rs"),
            Lang::Python => ("sdk/python", "wasmpipe/__init__.py"),
            Lang::Js => ("sdk/js", "wasmpipe.js"),
        }
    }
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
    /// The language's SDK (`sdk/rust`, `sdk/python`) of a wasmpipe
    /// checkout at or above `dir`, else the published package.
    pub fn discover(dir: &Path, lang: Lang) -> SdkSource {
        let (sdk, marker) = lang.sdk_dir();
        dir.ancestors()
            .map(|d| d.join(sdk))
            .find(|d| d.join(marker).is_file())
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
    let next = match lang {
        Lang::Rust => write_rust(&root, name, sdk),
        Lang::Python => write_python(&root, name, sdk),
        Lang::Js => write_js(&root, name, sdk),
    }
    .with_context(|| format!("writing the plugin project {}", root.display()))?;
    Ok((root, next))
}

fn write_python(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let module = name.replace('-', "_");
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join(format!("{module}.py")),
        format!(
            r#""""{name}: a wasmpipe transform. It tags every record with a header
`processed-by` (its value set by the `tag` config key) and passes it on."""

import wasmpipe

tag = "{name}"


def init(config: wasmpipe.Config) -> None:
    global tag
    config.only("tag")
    tag = config.get("tag", "{name}")


def transform(record: wasmpipe.Record):
    # Return None to drop the record, an Output (or a list of them) to
    # produce; raise to dead-letter it.
    return record.forward(headers=[*record.headers, ("processed-by", tag)])
"#
        ),
    )?;
    std::fs::write(
        root.join(format!("test_{module}.py")),
        format!(
            r#""""Unit tests, natively: python -m unittest"""

import os
import unittest

from wasmpipe import testing

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{module}.py")


class Test(unittest.TestCase):
    def test_tags_every_record_and_keeps_the_rest(self):
        plugin = testing.load(PLUGIN, {{"tag": "t1"}})
        [out] = plugin.run(testing.record(key="k", value="v"))
        self.assertEqual(out.value, b"v")
        self.assertEqual(out.headers, [("processed-by", b"t1")])


if __name__ == "__main__":
    unittest.main()
"#
        ),
    )?;
    write_sample(root)?;
    let setup = match sdk {
        SdkSource::Path(p) => format!("export PYTHONPATH={}", p.display()),
        SdkSource::Registry => format!("pip install wasmpipe-sdk=={}", env!("CARGO_PKG_VERSION")),
    };
    let commands = [
        format!("{setup}   # the SDK; building also needs componentize-py==0.25.1"),
        "python -m unittest   # unit tests, natively".to_owned(),
        format!("python -m wasmpipe.build {module}.py -o {module}.wasm   # the component"),
        format!("wasmpipe plugin test {module}.wasm --input sample.jsonl"),
        format!("wasmpipe plugin test {module}.py --input sample.jsonl   # or as a script plugin"),
    ]
    .join("\n");
    std::fs::write(
        root.join("README.md"),
        format!(
            "# {name}

A wasmpipe transform in Python.

```sh
{commands}
```
"
        ),
    )?;
    std::fs::write(
        root.join(".gitignore"),
        "*.wasm
__pycache__/
",
    )?;
    Ok(commands)
}

fn write_js(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let sdk_dir = match sdk {
        SdkSource::Path(p) => p.display().to_string(),
        SdkSource::Registry => "node_modules/wasmpipe-sdk".to_owned(),
    };
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join(format!("{name}.js")),
        format!(
            r#"// {name}: a wasmpipe transform. It tags every record with a header
// `processed-by` (its value set by the `tag` config key) and passes it on.
// The SDK is in scope as `wasmpipe`; see sdk/js/README.md.

let tag = "{name}";

function init(config) {{
  config.only("tag");
  tag = config.get("tag", "{name}");
}}

function transform(record) {{
  // Return null to drop the record, an Output (or an array) to produce;
  // throw to dead-letter it.
  return record.forward({{ headers: [...record.headers, ["processed-by", tag]] }});
}}
"#
        ),
    )?;
    std::fs::write(
        root.join(format!("{name}.test.mjs")),
        format!(
            r#"// Unit tests, natively: node --test
import {{ test }} from "node:test";
import assert from "node:assert/strict";
import {{ fileURLToPath }} from "node:url";
import {{ load, record, text }} from "{sdk_dir}/testing.js";

const PLUGIN = fileURLToPath(new URL("./{name}.js", import.meta.url));

test("tags every record and keeps the rest", () => {{
  const [out] = load(PLUGIN, {{ tag: "t1" }}).run(record({{ key: "k", value: "v" }}));
  assert.equal(text(out.value), "v");
  assert.deepEqual(out.headers.map(([n, v]) => [n, text(v)]), [["processed-by", "t1"]]);
}});
"#
        ),
    )?;
    write_sample(root)?;
    let commands = [
        format!("(cd {sdk_dir} && npm install)   # the SDK's component toolchain, once"),
        "node --test   # unit tests, natively".to_owned(),
        format!("node {sdk_dir}/build.mjs {name}.js -o {name}.wasm   # the component"),
        format!("wasmpipe plugin test {name}.wasm --input sample.jsonl"),
        format!("wasmpipe plugin test {name}.js --input sample.jsonl   # or as a script plugin"),
    ]
    .join("\n");
    std::fs::write(
        root.join("README.md"),
        format!("# {name}\n\nA wasmpipe transform in JavaScript.\n\n```sh\n{commands}\n```\n"),
    )?;
    std::fs::write(root.join(".gitignore"), "*.wasm\nnode_modules/\n")?;
    Ok(commands)
}

fn write_sample(root: &Path) -> std::io::Result<()> {
    std::fs::write(
        root.join("sample.jsonl"),
        "{\"key\":\"1\",\"value\":\"{\\\"msg\\\":\\\"hello\\\"}\"}\n{\"key\":\"2\",\"value\":null}\n",
    )
}

fn write_rust(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
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
    write_sample(root)?;
    std::fs::write(
        root.join("README.md"),
        format!(
            "# {name}\n\nA wasmpipe transform.\n\n```sh\ncargo test                                          # unit tests, natively\n\
             cargo build --target wasm32-wasip2 --release        # the plugin component\n\
             wasmpipe plugin test target/wasm32-wasip2/release/{lib}.wasm --input sample.jsonl\n```\n"
        ),
    )?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    Ok("cargo test && cargo build --target wasm32-wasip2 --release".into())
}
