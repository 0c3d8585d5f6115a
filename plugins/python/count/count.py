"""The running count of records per key, as Kafka Streams'
``groupByKey().count()`` and the Rust ``count`` example: each record with a
key emits one output with that key and, as its value, how many records of
the key the partition has seen, in decimal. Records without a key are
skipped. The count is kept in wasmpipe's keyed state as a u64, big-endian
(the Rust example's layout: either reads the other's state)."""

import wasmpipe
from wasmpipe import state


def init(config: wasmpipe.Config) -> None:
    config.only()


def transform(record: wasmpipe.Record):
    if record.key is None:
        return None
    stored = state.get(record.key)
    count = (int.from_bytes(stored, "big") if stored and len(stored) == 8 else 0) + 1
    state.put(record.key, count.to_bytes(8, "big"))
    return record.forward(value=str(count))
