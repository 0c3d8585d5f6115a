#!/usr/bin/env node
// Builds a wasmpipe plugin component from a JavaScript file, or the
// script runtime:
//
//   node sdk/js/build.mjs redact.js -o redact.wasm
//   node sdk/js/build.mjs --script-runtime -o js-script.wasm
//
// Needs @bytecodealliance/componentize-js@0.23.0 (npm install in sdk/js).
import { componentize } from "@bytecodealliance/componentize-js";
import { readFileSync, writeFileSync, mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const sdk = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const out = args.includes("-o") ? args[args.indexOf("-o") + 1] : null;
const scriptRuntime = args.includes("--script-runtime");
const plugin = args.find((a, i) => !a.startsWith("-") && args[i - 1] !== "-o");
if (!out || Boolean(plugin) === scriptRuntime) {
  console.error("usage: node build.mjs PLUGIN.js -o PLUGIN.wasm | --script-runtime -o js-script.wasm");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "wasmpipe-js-"));
try {
  for (const f of ["wasmpipe.js", "export.js", "script.js"]) copyFileSync(join(sdk, f), join(work, f));
  let entry = join(work, "script.js");
  if (plugin) {
    const name = basename(plugin);
    const source = readFileSync(resolve(plugin), "utf8");
    // Evaluated the same way a script plugin is, so errors name the same
    // file and line in both forms.
    writeFileSync(
      join(work, "plugin.js"),
      `import { makeExport, wasmpipe } from "./export.js";\n` +
        `const name = ${JSON.stringify(name)};\n` +
        `const state = { plugin: wasmpipe.evaluate(${JSON.stringify(source)}, name, wasmpipe), name };\n` +
        `export const typedTransform = makeExport(state);\n`,
    );
    entry = join(work, "plugin.js");
  }
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: entry,
    witPath: join(sdk, "wit"),
    worldName: "typed-plugin",
    disableFeatures: ["http", "fetch-event"],
  });
  writeFileSync(out, component);
  console.log(`wrote ${out} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
