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
    /// TypeScript: a script compiled by `tsc` to a JavaScript plugin.
    Ts,
    Go,
    C,
}

impl Lang {
    /// The SDK's directory in a checkout and a file that marks it.
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
        Lang::Ts => write_ts(&root, name, sdk),
        Lang::Go => write_go(&root, name, sdk),
        Lang::C => write_c(&root, name, sdk),
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

/// The JavaScript SDK's folder as a JavaScript or TypeScript project names it.
fn js_sdk_dir(sdk: &SdkSource) -> String {
    match sdk {
        SdkSource::Path(p) => p.display().to_string(),
        SdkSource::Registry => "node_modules/wasmpipe-sdk".to_owned(),
    }
}

/// The scaffolded plugin's native test, over `{name}.js` (for TypeScript,
/// what `tsc` compiled).
fn write_js_test(root: &Path, name: &str, sdk_dir: &str) -> std::io::Result<()> {
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
    )
}

fn write_js(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let sdk_dir = js_sdk_dir(sdk);
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
    write_js_test(root, name, &sdk_dir)?;
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

/// TypeScript compiles the plugin file with this `tsc` (npm's typescript).
const TYPESCRIPT: &str = "7.0.2";

fn write_ts(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let sdk_dir = js_sdk_dir(sdk);
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join(format!("{name}.ts")),
        format!(
            r#"// {name}: a wasmpipe transform. It tags every record with a header
// `processed-by` (its value set by the `tag` config key) and passes it on.
// A script, not a module: the SDK is in scope as `wasmpipe` (its types are
// in {sdk_dir}/wasmpipe.d.ts); `tsc` compiles this to {name}.js.

let tag = "{name}";

function init(config: wasmpipe.Config): void {{
  config.only("tag");
  tag = config.get("tag", "{name}");
}}

function transform(record: wasmpipe.Record): wasmpipe.Result {{
  // Return null to drop the record, an Output (or an array) to produce;
  // throw to dead-letter it.
  return record.forward({{ headers: [...record.headers, ["processed-by", tag]] }});
}}
"#
        ),
    )?;
    std::fs::write(
        root.join("tsconfig.json"),
        format!(
            r#"{{
  "compilerOptions": {{
    "target": "es2022",
    "lib": ["es2022"],
    "types": [],
    "strict": true,
    "noEmitOnError": true,
    "moduleDetection": "legacy"
  }},
  "files": ["{name}.ts", "{sdk_dir}/wasmpipe.d.ts"]
}}
"#
        ),
    )?;
    std::fs::write(
        root.join("package.json"),
        format!(
            r#"{{
  "name": "{name}",
  "private": true,
  "scripts": {{
    "build": "tsc && node {sdk_dir}/build.mjs {name}.js -o {name}.wasm",
    "test": "tsc && node --test"
  }},
  "devDependencies": {{
    "typescript": "{TYPESCRIPT}"
  }}
}}
"#
        ),
    )?;
    write_js_test(root, name, &sdk_dir)?;
    write_sample(root)?;
    let commands = [
        format!("(cd {sdk_dir} && npm install) && npm install   # the toolchains, once"),
        "npm test   # tsc, then the unit tests natively".to_owned(),
        format!("npm run build   # tsc, then the component {name}.wasm"),
        format!("wasmpipe plugin test {name}.wasm --input sample.jsonl"),
        format!("wasmpipe plugin test {name}.js --input sample.jsonl   # or as a script plugin"),
    ]
    .join("\n");
    std::fs::write(
        root.join("README.md"),
        format!("# {name}\n\nA wasmpipe transform in TypeScript.\n\n```sh\n{commands}\n```\n"),
    )?;
    std::fs::write(
        root.join(".gitignore"),
        format!("*.wasm\nnode_modules/\n{name}.js\n"),
    )?;
    Ok(commands)
}

/// The Go SDK's module, and the checksums of the module its bindings use.
const GO_SDK_MODULE: &str = "github.com/wasmpipe/wasmpipe/sdk/go";
const GO_SUM: &str = include_str!("../../sdk/go/go.sum");

fn write_go(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let ty = camel(name);
    let (replace, build) = match sdk {
        SdkSource::Path(p) => (
            format!("\nreplace {GO_SDK_MODULE} => {}\n", p.display()),
            format!("{}/build", p.display()),
        ),
        SdkSource::Registry => (String::new(), "path/to/wasmpipe/sdk/go/build".to_owned()),
    };
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("go.mod"),
        format!(
            "module {name}\n\ngo 1.25\n\nrequire {GO_SDK_MODULE} v{version}\n\n\
             require go.bytecodealliance.org/pkg v0.2.3 // indirect\n{replace}",
            version = env!("CARGO_PKG_VERSION")
        ),
    )?;
    std::fs::write(root.join("go.sum"), GO_SUM)?;
    std::fs::write(
        root.join("main.go"),
        format!(
            r#"// Command {name} is a wasmpipe transform. It tags every record with a
// header `processed-by` (its value set by the `tag` config key) and passes
// it on.
package main

import wasmpipe "{GO_SDK_MODULE}"

type {ty} struct{{ tag string }}

func (p *{ty}) Init(config *wasmpipe.Config) error {{
	if err := config.Only("tag"); err != nil {{
		return err
	}}
	p.tag = config.GetOr("tag", "{name}")
	return nil
}}

// Transform returns no outputs to drop the record, one or more to produce;
// an error dead-letters it.
func (p *{ty}) Transform(record *wasmpipe.Record) ([]*wasmpipe.Output, error) {{
	out := record.Forward()
	out.Headers = append(out.Headers, wasmpipe.Header{{Name: "processed-by", Value: []byte(p.tag)}})
	return []*wasmpipe.Output{{out}}, nil
}}

func init() {{ wasmpipe.Register(&{ty}{{}}) }}

func main() {{}}
"#
        ),
    )?;
    std::fs::write(
        root.join("main_test.go"),
        format!(
            r#"package main

import (
	"testing"

	"{GO_SDK_MODULE}/wasmpipetest"
)

func TestTagsEveryRecordAndKeepsTheRest(t *testing.T) {{
	p := &{ty}{{}}
	if err := wasmpipetest.Init(p, map[string]string{{"tag": "t1"}}); err != nil {{
		t.Fatal(err)
	}}
	out, err := p.Transform(wasmpipetest.Record("k", "v"))
	if err != nil || len(out) != 1 {{
		t.Fatalf("got %v, %v; want one output", out, err)
	}}
	if string(out[0].Value) != "v" || len(out[0].Headers) != 1 ||
		out[0].Headers[0].Name != "processed-by" || string(out[0].Headers[0].Value) != "t1" {{
		t.Fatalf("got %+v", out[0])
	}}
}}
"#
        ),
    )?;
    write_sample(root)?;
    let commands = [
        "# Go 1.25+ and wasm-tools (cargo install wasm-tools --locked): see sdk/go/README.md"
            .to_owned(),
        "go test ./...   # unit tests, natively".to_owned(),
        format!("{build} -o {name}.wasm   # the component"),
        format!("wasmpipe plugin test {name}.wasm --input sample.jsonl"),
    ]
    .join("\n");
    std::fs::write(
        root.join("README.md"),
        format!("# {name}\n\nA wasmpipe transform in Go.\n\n```sh\n{commands}\n```\n"),
    )?;
    std::fs::write(root.join(".gitignore"), "*.wasm\n")?;
    Ok(commands)
}

/// `mask-emails` as a type name: `MaskEmails`.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn write_c(root: &Path, name: &str, sdk: &SdkSource) -> std::io::Result<String> {
    let module = name.replace('-', "_");
    let sdk_dir = match sdk {
        SdkSource::Path(p) => p.display().to_string(),
        SdkSource::Registry => {
            "$(error set WASMPIPE_C_SDK to the sdk/c folder of a wasmpipe checkout)".to_owned()
        }
    };
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join(format!("{module}.c")),
        format!(
            r#"/*
 * {name}: a wasmpipe transform. It tags every record with a header
 * `processed-by` (its value set by the `tag` config key) and passes it on.
 */
#include <string.h>

#include "wasmpipe.h"

static const char *tag = "{name}";

bool wasmpipe_init(const wasmpipe_config *config, wasmpipe_error *error) {{
    static const char *const known[] = {{"tag", NULL}};
    if (!wasmpipe_config_only(config, known, error)) return false;
    tag = wasmpipe_config_get_or(config, "tag", "{name}"); /* lives as long as the plugin */
    return true;
}}

bool wasmpipe_transform(const wasmpipe_record *record, wasmpipe_outputs *out,
                        wasmpipe_error *error) {{
    /* Emit nothing to drop the record, one or more outputs to produce;
     * return wasmpipe_fail(error, "why") to dead-letter it. */
    (void)error;
    wasmpipe_output *o = wasmpipe_emit(out, record);
    wasmpipe_output_add_header(o, "processed-by", (const uint8_t *)tag, strlen(tag));
    return true;
}}
"#
        ),
    )?;
    std::fs::write(
        root.join(format!("test_{module}.c")),
        format!(
            r#"/* Unit tests, natively: make test */
#include <stdio.h>

#include "wasmpipe_testing.h"

int main(void) {{
    char *refused = wasmpipe_test_init((const char *const[]){{"tag", "t1", NULL}});
    WASMPIPE_EXPECT_STR(refused, NULL);

    /* tags every record and keeps the rest */
    wasmpipe_record record = wasmpipe_test_record("k", "v");
    wasmpipe_test_result r = wasmpipe_test_run(&record);
    WASMPIPE_EXPECT_STR(r.error, NULL);
    WASMPIPE_EXPECT(r.count == 1);
    if (r.count == 1) {{
        const wasmpipe_output *out = r.outputs[0];
        WASMPIPE_EXPECT_STR((const char *)out->value.data, "v");
        WASMPIPE_EXPECT(out->header_count == 1);
        WASMPIPE_EXPECT_STR(out->headers[0].name, "processed-by");
        WASMPIPE_EXPECT_STR((const char *)out->headers[0].value.data, "t1");
    }}

    printf("{name}: %s\n", wasmpipe_test_failures() ? "FAILED" : "ok");
    return wasmpipe_test_failures() != 0;
}}
"#
        ),
    )?;
    std::fs::write(
        root.join("Makefile"),
        format!(
            "# make: the component {module}.wasm; make test: the unit tests, natively.\n\
             WASMPIPE_C_SDK ?= {sdk_dir}\n\
             NAME    = {module}\n\
             SOURCES = {module}.c\n\
             TESTS   = test_{module}.c\n\
             include $(WASMPIPE_C_SDK)/plugin.mk\n"
        ),
    )?;
    write_sample(root)?;
    let commands = [
        "# clang, lld, wasi-libc and wit-bindgen 0.61: see sdk/c/README.md".to_owned(),
        "make test   # unit tests, natively".to_owned(),
        format!("make   # the component {module}.wasm"),
        format!("wasmpipe plugin test {module}.wasm --input sample.jsonl"),
    ]
    .join("\n");
    std::fs::write(
        root.join("README.md"),
        format!("# {name}\n\nA wasmpipe transform in C.\n\n```sh\n{commands}\n```\n"),
    )?;
    std::fs::write(root.join(".gitignore"), "*.wasm\nbuild/\n")?;
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
    let ty = camel(name);
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
