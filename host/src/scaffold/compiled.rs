//! Compiled plugins: Go, C and Rust projects.

use super::{camel, rust_dependency, write_sample};
use std::path::Path;

/// The Go SDK's module, and the checksums of the module its bindings use.
const GO_SDK_MODULE: &str = "github.com/wasmpipe/wasmpipe/sdk/go";
const GO_SUM: &str = include_str!("../../../sdk/go/go.sum");

pub(super) fn write_go(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
    let ty = camel(name);
    let replace = format!("\nreplace {GO_SDK_MODULE} => {}\n", sdk.display());
    let build = format!("{}/build", sdk.display());
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

pub(super) fn write_c(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
    let module = name.replace('-', "_");
    let sdk_dir = sdk.display().to_string();
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

pub(super) fn write_rust(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
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
            dependency = rust_dependency(sdk)
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
