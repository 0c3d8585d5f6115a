// The component side: wasmpipe's `typed-transform` export over a plugin's
// functions. Imported only inside the component (the host import below
// exists nowhere else).
import { log } from "wasmpipe:transform/host@0.1.0";
import * as wasmpipe from "./wasmpipe.js";

wasmpipe.setLogger((level, message, fields) =>
  log(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)])),
);

const opt = (v) => (v === undefined || v === null ? null : wasmpipe.bytes(v));

function record(r) {
  return new wasmpipe.Record({
    key: opt(r.key),
    value: opt(r.value),
    headers: r.headers.map((h) => [h.name, opt(h.value)]),
    timestamp: Number(r.timestamp),
    timestampType: r.timestampType,
    topic: r.topic,
    partition: r.partition,
    offset: Number(r.offset),
  });
}

function output(o) {
  return {
    key: o.key ?? undefined,
    value: o.value ?? undefined,
    headers: o.headers.map(([name, value]) => ({ name, value: value ?? undefined })),
    timestamp: o.timestamp === null || o.timestamp === undefined ? undefined : BigInt(o.timestamp),
    topic: o.topic ?? undefined,
  };
}

/** The export over `state`: `{ plugin: {init, transform}, name }`, filled
 * in before `init` (compiled plugins) or by `prepare(config)` (scripts). */
export function makeExport(state, prepare = () => {}) {
  return {
    init(config) {
      try {
        const rest = prepare(config) ?? config;
        if (typeof state.plugin.transform !== "function") {
          throw new Error(`${state.name} defines no transform(record) function`);
        }
        if (typeof state.plugin.init === "function") {
          state.plugin.init(new wasmpipe.Config(rest));
        }
      } catch (e) {
        throw wasmpipe.describe(e, state.name);
      }
    },
    transform(batch) {
      return batch.map((r) => {
        try {
          return { tag: "ok", val: wasmpipe.outputs(state.plugin.transform(record(r))).map(output) };
        } catch (e) {
          return { tag: "err", val: wasmpipe.describe(e, state.name) };
        }
      });
    },
  };
}

export { wasmpipe };
