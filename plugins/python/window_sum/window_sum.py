"""Sums a number per key in tumbling windows on event time and emits each
window once, when it closes — as Kafka Streams'
``windowedBy(TimeWindows.ofSizeAndGrace(size, grace)).aggregate(...)
.suppress(untilWindowCloses(...))`` and the Rust ``window-sum`` example,
output for output. A window closes when the partition's stream time (its
highest record timestamp) reaches its end plus ``grace``; a record for a
closed window is late and fails (dead-lettered), or is dropped with
``late: drop``.

Each result: the window's key, the value ``{"start":…,"end":…,"sum":…,
"count":…}`` (ms since the epoch, end exclusive), timestamped at the
window's end.

Config: ``size`` (default ``1m``), ``grace`` (default ``0s``), ``field`` (a
dotted JSON path to the number; default the whole value), ``late``
(``reject`` or ``drop``). Records without a key are summed under the empty
key. The aggregate is kept as the Rust example keeps it (an f64 and a u64,
big-endian), so either reads the other's windows.
"""

import json
import struct

import wasmpipe
from wasmpipe.window import Windows, duration

windows = None
field = None


def init(config: wasmpipe.Config) -> None:
    global windows, field
    config.only("size", "grace", "field", "late")
    try:
        size = duration(config.get("size", "1m"))
        grace = duration(config.get("grace", "0s"))
    except ValueError as e:
        raise wasmpipe.ConfigError(f"config: {e}") from None
    if size == 0:
        raise wasmpipe.ConfigError("config 'size' is 0: a window must last")
    late = config.get("late", "reject")
    if late not in ("reject", "drop"):
        raise wasmpipe.ConfigError(f"config 'late' = '{late}': write reject (dead-letter late records) or drop")
    windows = Windows.tumbling(size, grace=grace, late=late)
    path = config.get("field")
    field = path.split(".") if path else None


def _number(doc):
    node = doc
    for part in field or []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
            break
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        where = ".".join(field) if field else "the value"
        raise ValueError(f"no number at {where}")
    return float(node)


def _add(n):
    def add(acc):
        total, count = struct.unpack(">dQ", acc) if acc and len(acc) == 16 else (0.0, 0)
        return struct.pack(">dQ", total + n, count + 1)

    return add


def transform(record: wasmpipe.Record):
    n = _number(record.json())
    update = windows.update(record.key or b"", record.timestamp, _add(n))
    out = []
    for w in update.closed:
        total, count = struct.unpack(">dQ", w.value)
        value = json.dumps({"start": w.start, "end": w.end, "sum": total, "count": count}, separators=(",", ":"))
        out.append(wasmpipe.Output(key=w.key or None, value=value, timestamp=w.end))
    return out
