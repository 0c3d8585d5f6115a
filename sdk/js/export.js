// The component side: wasmpipe's `typed-transform` export over a plugin's
// functions. Imported only inside the component (the host import below
// exists nowhere else).
import { log } from "wasmpipe:transform/host@0.2.0";
import * as host from "wasmpipe:transform/state@0.2.0";
import * as wasmpipe from "./wasmpipe.js";

/** A refused state call, as the plugin sees it (jco throws the `err`
 * payload, wrapped). */
function refused(e) {
  const p = e?.payload ?? e;
  if (p && typeof p === "object" && "tag" in p) {
    return new wasmpipe.StateError(`state: ${p.tag.replace("-", " ")}: ${p.val}`);
  }
  return e;
}

const bound = (b) =>
  b === null ? { tag: "unbounded" } : { tag: b[1] ? "included" : "excluded", val: Uint8Array.from(b[0], (c) => c.charCodeAt(0)) };

/** The state calls, to the host: the record's index is told once, before
 * its first call. */
function hostState() {
  let untold = null;
  const tell = () => {
    if (untold !== null) {
      host.atRecord(untold);
      untold = null;
    }
  };
  const call = (f) => {
    tell();
    try {
      return f();
    } catch (e) {
      throw refused(e);
    }
  };
  return {
    get: (key) => call(() => host.get(key) ?? null),
    put: (key, value, ttlMs) => call(() => host.put(key, value, ttlMs === null ? undefined : BigInt(ttlMs))),
    delete: (key) => call(() => host.delete(key)),
    scan: (start, end, limit) => call(() => host.scan(bound(start), bound(end), limit)),
    streamTime: () =>
      call(() => {
        const t = host.streamTime();
        return t === -(2n ** 63n) ? null : Number(t);
      }),
    begin(index) {
      untold = index;
    },
    // The host drops a failed record's writes itself.
    end() {
      untold = null;
    },
  };
}

wasmpipe.setStateBackend(hostState());

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
      return batch.map((r, i) => {
        wasmpipe.beginRecord(i, Number(r.timestamp));
        try {
          const out = { tag: "ok", val: wasmpipe.outputs(state.plugin.transform(record(r))).map(output) };
          wasmpipe.endRecord(false);
          return out;
        } catch (e) {
          wasmpipe.endRecord(true);
          return { tag: "err", val: wasmpipe.describe(e, state.name) };
        }
      });
    },
  };
}

export { wasmpipe };
