// The running count of records per key, as Kafka Streams'
// `groupByKey().count()` and the Rust and Python `count` examples: each
// record with a key emits one output with that key and, as its value, how
// many records of the key the partition has seen, in decimal. Records
// without a key are skipped. The count is kept in wasmpipe's keyed state as
// a u64, big-endian (the other examples' layout).

function init(config) {
  config.only();
}

function transform(record) {
  if (record.key === null) return null;
  const stored = wasmpipe.state.get(record.key);
  const view = stored && stored.length === 8 ? new DataView(stored.buffer, stored.byteOffset, 8) : null;
  const count = (view ? view.getBigUint64(0) : 0n) + 1n;
  const next = new Uint8Array(8);
  new DataView(next.buffer).setBigUint64(0, count);
  wasmpipe.state.put(record.key, next);
  return record.forward({ value: String(count) });
}
