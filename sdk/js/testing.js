// Run a plugin's functions natively under Node, for unit tests:
//
//   import { load, record } from "../../../sdk/js/testing.js";
//   const plugin = load("redact.js", { mask: "user.email" });
//   const [out] = plugin.run(record({ key: "k", value: '{"user":{"email":"a@b"}}' }));
//
// The plugin is evaluated exactly as in the component, with the same
// conversions on what it returns.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import * as wasmpipe from "./wasmpipe.js";

export function record({ key = null, value = null, headers = [], timestamp = 0, topic = "test", partition = 0, offset = 0 } = {}) {
  return new wasmpipe.Record({
    key: wasmpipe.bytes(key),
    value: wasmpipe.bytes(value),
    headers: headers.map(([n, v]) => [n, wasmpipe.bytes(v)]),
    timestamp,
    timestampType: "create-time",
    topic,
    partition,
    offset,
  });
}

export function load(path, config = {}) {
  const name = basename(path);
  const plugin = wasmpipe.evaluate(readFileSync(path, "utf8"), name, wasmpipe);
  if (typeof plugin.init === "function") plugin.init(new wasmpipe.Config(Object.entries(config)));
  return {
    /** The outputs of one record; what it throws is what would be
     * dead-lettered (and its state writes are undone, as the host does). */
    run(r) {
      wasmpipe.beginRecord(0, r.timestamp);
      try {
        const out = wasmpipe.outputs(plugin.transform(r));
        wasmpipe.endRecord(false);
        return out;
      } catch (e) {
        wasmpipe.endRecord(true);
        throw e;
      }
    },
  };
}

/** Empties the native state double and its stream time. */
export const resetState = () => wasmpipe.setStateBackend(null);

/** Every live [key, value] of the native state double, in key order. */
export const stateEntries = () => [...wasmpipe.state.scan()];

export const text = (bytes) => new TextDecoder().decode(bytes);
