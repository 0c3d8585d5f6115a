// Unit tests of the redact logic, natively: node --test
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { load, record, text } from "../../../sdk/js/testing.js";

const PLUGIN = fileURLToPath(new URL("./redact.js", import.meta.url));

function run(config, value) {
  const [out] = load(PLUGIN, config).run(record({ key: "k", value, headers: [["h", "1"]] }));
  assert.equal(text(out.key), "k");
  assert.deepEqual(out.headers.map(([n, v]) => [n, text(v)]), [["h", "1"]]);
  return text(out.value);
}

test("masks nested and wildcard fields keeping order", () => {
  assert.equal(
    run({ mask: "user.email, cards.*.number" },
      '{"user":{"name":"Ann","email":"a@x.io"},"cards":[{"number":"4111","exp":"12/30"},{"number":"5500"}]}'),
    '{"user":{"name":"Ann","email":"***"},"cards":[{"number":"***","exp":"12/30"},{"number":"***"}]}',
  );
});

test("drops fields and uses a custom mask", () => {
  assert.equal(run({ drop: "ssn", mask: "name", mask_with: "X" }, '{"name":"Ann","ssn":"1","age":3}'),
    '{"name":"X","age":3}');
});

test("non-JSON is an error, not a leak", () => {
  assert.throws(() => run({ mask: "a" }, "not json"), /^Error: value is not JSON/);
});

test("config errors name the fix", () => {
  assert.throws(() => run({}, "{}"), /set 'mask'/);
  assert.throws(() => run({ mask: "a..b" }, "{}"), /'a\.\.b'/);
  assert.throws(() => run({ masks: "a" }, "{}"), /unknown config key 'masks'/);
});
