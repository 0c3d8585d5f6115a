// Unit tests of the count logic, natively: node --test
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { load, record, resetState, stateEntries, text } from "../../../sdk/js/testing.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PLUGIN = fileURLToPath(new URL("./count.js", import.meta.url));

const be = (n) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};

test("counts each key and skips records without one", () => {
  resetState();
  const plugin = load(PLUGIN);
  const values = ["a", "b", null, "a", "a"].flatMap((k) =>
    plugin.run(record({ key: k, value: "v" })).map((o) => text(o.value)),
  );
  assert.deepEqual(values, ["1", "1", "2", "3"]);
  assert.deepEqual(
    stateEntries().map(([k, v]) => [text(k), v]),
    [["a", be(3)], ["b", be(1)]],
  );
});

test("a record that fails leaves no state behind", () => {
  resetState();
  const dir = mkdtempSync(join(tmpdir(), "wasmpipe-count-"));
  const path = join(dir, "failing.js");
  writeFileSync(
    path,
    'function transform(r) { wasmpipe.state.put(r.key, "written"); throw new Error("refused after writing"); }',
  );
  assert.throws(() => load(path).run(record({ key: "a" })), /refused after writing/);
  assert.deepEqual(stateEntries(), []);
  assert.deepEqual(load(PLUGIN).run(record({ key: "a" })).map((o) => text(o.value)), ["1"]);
});
