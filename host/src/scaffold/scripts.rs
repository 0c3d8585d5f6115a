//! Script plugins: Python, JavaScript and TypeScript projects.

use super::write_sample;
use std::path::Path;

pub(super) fn write_python(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
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
    let setup = format!("export PYTHONPATH={}", sdk.display());
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
fn js_sdk_dir(sdk: &Path) -> String {
    sdk.display().to_string()
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

pub(super) fn write_js(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
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

pub(super) fn write_ts(root: &Path, name: &str, sdk: &Path) -> std::io::Result<String> {
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
