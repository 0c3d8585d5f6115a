// Types of wasmpipe's JavaScript SDK, for plugins written in TypeScript.
// A plugin file is a script: the SDK is in scope as `wasmpipe`, and the file
// declares `transform` (and maybe `init`) at its top level:
//
//   /// <reference path="path/to/sdk/js/wasmpipe.d.ts" />
//   function transform(record: wasmpipe.Record): wasmpipe.Result {
//     return record.forward({ headers: [...record.headers, ["seen", "1"]] });
//   }
//
// `tsc` compiles it to a .js plugin file (compiled by build.mjs, or used as
// a script plugin as it is).

declare namespace wasmpipe {
  /** Bytes a record carries; null is absent (a null key, a tombstone). */
  type Bytes = Uint8Array | null;
  /** What an output accepts for bytes: strings are UTF-8 encoded. */
  type BytesLike = Uint8Array | ArrayBufferView | ArrayBuffer | number[] | string | null;
  type TimestampType = "not-available" | "create-time" | "log-append-time";
  type Fields = { [name: string]: unknown };

  /** Thrown by init to refuse the config; the message names the fix. */
  class ConfigError extends Error {}

  /** The plugin's KEY=VALUE config from the pipeline file. */
  class Config {
    get(key: string): string | null;
    get(key: string, fallback: string): string;
    /** The value, or a ConfigError naming the missing key. */
    require(key: string): string;
    /** Refuses keys other than these, so a misspelt key fails at load. */
    only(...keys: string[]): void;
  }

  interface OutputFields {
    key?: BytesLike;
    value?: BytesLike;
    headers?: [string, BytesLike][];
    /** ms since the epoch; null keeps the input record's. */
    timestamp?: number | null;
    /** Another topic (one the pipeline allows); null is the output topic. */
    topic?: string | null;
  }

  class Output {
    constructor(fields?: OutputFields);
    key: BytesLike;
    value: BytesLike;
    headers: [string, BytesLike][];
    timestamp: number | null;
    topic: string | null;
  }

  /** A record as consumed, with its full Kafka metadata. Frozen. */
  class Record {
    readonly key: Bytes;
    /** null is a tombstone. */
    readonly value: Bytes;
    /** In order; names may repeat. */
    readonly headers: [string, Bytes][];
    /** ms since the epoch. */
    readonly timestamp: number;
    readonly timestampType: TimestampType;
    readonly topic: string;
    readonly partition: number;
    readonly offset: number;
    isTombstone(): boolean;
    /** The value as strict UTF-8 text; throws on a tombstone or bad UTF-8. */
    text(): string;
    /** The value as standard JSON; throws "value is not JSON: …" otherwise. */
    json(): any;
    /** The first header of that name's value, or null. */
    header(name: string): Bytes;
    /** This record as an output, with `changes` applied. */
    forward(changes?: OutputFields): Output;
  }

  /** What transform returns: null drops the record, a Record forwards it. */
  type Result = Output | Record | null | undefined | Result[];

  function bytes(v: BytesLike): Bytes;
  function trace(message: string, fields?: Fields): void;
  function debug(message: string, fields?: Fields): void;
  function info(message: string, fields?: Fields): void;
  function warn(message: string, fields?: Fields): void;
  function error(message: string, fields?: Fields): void;

  /** A state call the host refused (too large, full, unavailable): thrown
   * out of transform, it fails the record. */
  class StateError extends Error {}

  /** Keyed state, per plugin and input partition, durable in Kafka. A
   * record that fails leaves none of its writes behind; a time to live
   * counts in stream time (the highest record timestamp seen). */
  const state: {
    /** The value, or null if unset or expired. */
    get(key: BytesLike): Uint8Array | null;
    /** Sets `key`; with `ttlMs`, until that much stream time has passed. */
    put(key: BytesLike, value: BytesLike, ttlMs?: number | null): void;
    delete(key: BytesLike): void;
    /** Live [key, value] pairs in key order. */
    scan(range?: { start?: BytesLike | null; end?: BytesLike | null; prefix?: BytesLike | null }): IterableIterator<[Uint8Array, Uint8Array]>;
    /** The partition's stream time in ms, or null before any record. */
    streamTime(): number | null;
  };
}
