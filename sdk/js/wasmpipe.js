// wasmpipe's JavaScript SDK: write a transform as one function over a record.
//
//   function init(config) {              // optional; throw to refuse the config
//     config.only("field");
//     field = config.get("field", "email");
//   }
//   function transform(record) {         // null drops; throw to dead-letter
//     const doc = record.json();
//     doc[field] = "***";
//     return record.forward({ value: JSON.stringify(doc) });
//   }
//
// A plugin file declares those functions at its top level (no imports or
// exports needed): `node sdk/js/build.mjs plugin.js -o plugin.wasm` makes a
// component of it, and a pipeline can also name the .js file itself (a
// script plugin). This module is plain JavaScript: the same code runs in
// the component and natively under Node (see testing.js).

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function bytes(v) {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return encoder.encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer || Array.isArray(v)) return new Uint8Array(v);
  throw new TypeError(
    `expected a string, a Uint8Array or null, got ${Object.prototype.toString.call(v)}`,
  );
}

export class ConfigError extends Error {}

export class Config {
  constructor(pairs) {
    this.pairs = new Map(pairs);
  }
  get(key, fallback = null) {
    return this.pairs.has(key) ? this.pairs.get(key) : fallback;
  }
  require(key) {
    if (!this.pairs.has(key)) throw new ConfigError(`missing config key '${key}'`);
    return this.pairs.get(key);
  }
  only(...keys) {
    for (const k of this.pairs.keys()) {
      if (!keys.includes(k)) {
        throw new ConfigError(`unknown config key '${k}' (known: ${keys.join(", ")})`);
      }
    }
  }
}

export class Output {
  constructor({ key = null, value = null, headers = [], timestamp = null, topic = null } = {}) {
    Object.assign(this, { key, value, headers, timestamp, topic });
  }
}

/** A record as consumed. `value === null` is a tombstone; headers are
 * [name, Uint8Array | null] pairs in order, names may repeat. */
export class Record {
  constructor({ key, value, headers, timestamp, timestampType, topic, partition, offset }) {
    Object.assign(this, { key, value, headers, timestamp, timestampType, topic, partition, offset });
    Object.freeze(this);
  }
  isTombstone() {
    return this.value === null;
  }
  text() {
    if (this.value === null) throw new Error("record has no value (tombstone); expected text");
    return strictUtf8.decode(this.value);
  }
  json() {
    if (this.value === null) {
      throw new Error("record has no value (tombstone); expected a JSON document");
    }
    try {
      // Standard JSON as the other SDKs read it: strict UTF-8, and no
      // unpaired surrogate escapes (they cannot be written back as UTF-8).
      return JSON.parse(strictUtf8.decode(this.value), (k, v) => {
        if ((typeof v === "string" && !v.isWellFormed()) || !k.isWellFormed()) {
          throw new SyntaxError("unpaired surrogate in a string");
        }
        return v;
      });
    } catch (e) {
      throw new Error(`value is not JSON: ${e.message}`);
    }
  }
  header(name) {
    const h = this.headers.find(([n]) => n === name);
    return h ? h[1] : null;
  }
  /** This record as an output, with `changes` applied. */
  forward(changes = {}) {
    for (const k of Object.keys(changes)) {
      if (!["key", "value", "headers", "timestamp", "topic"].includes(k)) {
        throw new TypeError(`an output has no field '${k}'`);
      }
    }
    return new Output({ key: this.key, value: this.value, headers: [...this.headers], ...changes });
  }
}

/** What `transform` returned, as normalized outputs. */
export function outputs(result) {
  if (result === null || result === undefined) return [];
  if (Array.isArray(result)) return result.flatMap(outputs);
  if (result instanceof Record) return outputs(result.forward());
  if (result instanceof Output) {
    return [
      {
        key: bytes(result.key),
        value: bytes(result.value),
        headers: result.headers.map(([n, v]) => [String(n), bytes(v)]),
        timestamp: result.timestamp,
        topic: result.topic,
      },
    ];
  }
  throw new TypeError(
    `transform returned ${typeof result}; return null, an Output, a Record (forwarded) or an array of them`,
  );
}

let logger = (level, message, fields) => {
  const extra = Object.entries(fields).map(([k, v]) => ` ${k}=${v}`).join("");
  console.error(`${level.toUpperCase()} ${message}${extra}`);
};

export function setLogger(f) {
  logger = f;
}

export const trace = (message, fields = {}) => logger("trace", message, fields);
export const debug = (message, fields = {}) => logger("debug", message, fields);
export const info = (message, fields = {}) => logger("info", message, fields);
export const warn = (message, fields = {}) => logger("warn", message, fields);
export const error = (message, fields = {}) => logger("error", message, fields);

/** A plugin's source as functions: evaluates `source` (top-level `init`
 * and `transform` declarations) with `wasmpipe` in scope. `name` is the
 * file name errors and stack traces show. */
export function evaluate(source, name, wasmpipe) {
  const body =
    `${source}\n;return { init: typeof init === "function" ? init : undefined, ` +
    `transform: typeof transform === "function" ? transform : undefined };\n//# sourceURL=${name}`;
  return new Function("wasmpipe", body)(wasmpipe);
}

// `new Function` puts two lines ("function anonymous(wasmpipe", ") {")
// before the plugin's source, in SpiderMonkey as in V8.
const HEADER_LINES = 2;

/** An error as a dead-letter reason: the message, and where in the plugin
 * it was thrown (`redact.js line 12`). */
export function describe(e, name) {
  const plain = e instanceof Error && (e.constructor === Error || e instanceof ConfigError);
  const text = e instanceof Error ? (plain ? e.message : `${e.name}: ${e.message}`) : String(e);
  let line = null;
  if (e instanceof SyntaxError && typeof e.lineNumber === "number") {
    line = e.lineNumber - HEADER_LINES;
  } else if (e instanceof Error && typeof e.stack === "string") {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const m = e.stack.match(new RegExp(`${escaped}:(\\d+)`));
    if (m) line = Number(m[1]) - HEADER_LINES;
  }
  return line !== null && line > 0 ? `${name} line ${line}: ${text}` : text;
}

// Keyed state: bytes under bytes, kept by the host per plugin and input
// partition, durable in Kafka with the outputs. A record that fails leaves
// none of its writes behind; time to live counts in stream time (the
// highest record timestamp seen, up to the record being transformed).
// Natively (in tests) the same calls work on an in-memory double with the
// host's rules.

export class StateError extends Error {}

/** Bytes as a string of one char per byte: such strings sort as the bytes. */
const asKey = (b) => String.fromCharCode(...b);
const fromKey = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));

function stateBytes(v, what) {
  const b = bytes(v);
  if (b === null) throw new TypeError(`a state ${what} is a string or a Uint8Array, not null`);
  return b;
}

/** The native double. */
function memoryState() {
  const entries = new Map(); // key string -> [value, expiry | null]
  let time = null;
  let undo = [];
  const live = (expiry) => expiry === null || time === null || time < expiry;
  const write = (k, entry) => {
    undo.push([k, entries.has(k) ? entries.get(k) : undefined]);
    if (entry === undefined) entries.delete(k);
    else entries.set(k, entry);
  };
  return {
    get(key) {
      const found = entries.get(asKey(key));
      return found !== undefined && live(found[1]) ? found[0] : null;
    },
    put(key, value, ttlMs) {
      const expiry = ttlMs === null ? null : Math.max(time ?? 0, 0) + ttlMs;
      write(asKey(key), [value, expiry]);
    },
    delete(key) {
      write(asKey(key), undefined);
    },
    scan(start, end, limit) {
      const keys = [...entries.keys()].sort();
      const out = [];
      for (const k of keys) {
        if (start && (k < start[0] || (k === start[0] && !start[1]))) continue;
        if (end && (k > end[0] || (k === end[0] && !end[1]))) break;
        const [v, expiry] = entries.get(k);
        if (live(expiry)) out.push([fromKey(k), v]);
        if (out.length === limit) break;
      }
      return out;
    },
    streamTime: () => time,
    begin(_index, timestamp) {
      undo = [];
      time = time === null ? timestamp : Math.max(time, timestamp);
    },
    end(failed) {
      const done = undo;
      undo = [];
      if (failed) {
        for (const [k, old] of done.reverse()) {
          if (old === undefined) entries.delete(k);
          else entries.set(k, old);
        }
      }
    },
  };
}

let stateBackend = memoryState();

/** The component's glue installs the host's backend; tests reset the double. */
export function setStateBackend(backend) {
  stateBackend = backend ?? memoryState();
}

/** Record `index` of the batch, at `timestamp`, is next; then it ended. */
export const beginRecord = (index, timestamp) => stateBackend.begin(index, timestamp);
export const endRecord = (failed) => stateBackend.end(failed);

const SCAN_PAGE = 256;

function prefixEnd(p) {
  const end = [...p];
  while (end.length > 0) {
    const last = end.pop();
    if (last < 0xff) {
      end.push(last + 1);
      return String.fromCharCode(...end);
    }
  }
  return null;
}

export const state = {
  /** The value of `key` (a Uint8Array), or null if unset or expired. */
  get(key) {
    return stateBackend.get(stateBytes(key, "key"));
  },
  /** Sets `key`; with `ttlMs`, until that much stream time has passed. */
  put(key, value, ttlMs = null) {
    if (ttlMs !== null && !(Number.isInteger(ttlMs) && ttlMs >= 0)) {
      throw new TypeError("ttlMs is a whole number of milliseconds, or null");
    }
    stateBackend.put(stateBytes(key, "key"), stateBytes(value, "value"), ttlMs);
  },
  delete(key) {
    stateBackend.delete(stateBytes(key, "key"));
  },
  /** Live [key, value] pairs in key order: `start` (included) to `end`
   * (excluded), or every key starting with `prefix`. */
  *scan({ start = null, end = null, prefix = null } = {}) {
    let lo = start === null ? null : [asKey(stateBytes(start, "key")), true];
    let hi = end === null ? null : [asKey(stateBytes(end, "key")), false];
    if (prefix !== null) {
      const p = stateBytes(prefix, "key");
      lo = [asKey(p), true];
      const past = prefixEnd(p);
      hi = past === null ? null : [past, false];
    }
    for (;;) {
      const page = stateBackend.scan(lo, hi, SCAN_PAGE);
      yield* page;
      if (page.length < SCAN_PAGE) return;
      lo = [asKey(page[page.length - 1][0]), false];
    }
  },
  /** The partition's stream time in ms, or null before any record. */
  streamTime() {
    return stateBackend.streamTime();
  },
};
