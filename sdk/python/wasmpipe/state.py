"""Keyed state: bytes under bytes, kept by the host per plugin and input
partition, durable in Kafka with the outputs (exactly-once when the
pipeline is), restored wherever the partition goes next.

    from wasmpipe import state

    def transform(record):
        if record.key is None:
            return None
        count = int.from_bytes(state.get(record.key) or b"\\0" * 8, "big") + 1
        state.put(record.key, count.to_bytes(8, "big"))
        return record.forward(value=str(count))

A record that fails (raises, traps, hits a limit) leaves none of its
writes behind. Time to live is counted in stream time — the highest record
timestamp the partition has seen, up to the record being transformed — so
a replay reads the same state. Natively (in unit tests) the same calls work
on an in-memory double with the same rules; ``wasmpipe.testing`` resets
and reads it.

Keys and values are ``bytes``; a ``str`` is written as UTF-8.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

__all__ = ["StateError", "delete", "get", "put", "scan", "stream_time"]

Key = Union[str, bytes]

#: Entries fetched per host call while a scan iterates.
_SCAN_PAGE = 256


class StateError(Exception):
    """The host refused a state call: a key or value too large, too many
    writes held for one batch, or a store that cannot be read. Raised out
    of ``transform``, it fails the record."""


def _b(v: Key) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"state keys and values are str or bytes, not {type(v).__name__}")


class _Memory:
    """The native double: the host's rules, in memory."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[bytes, Optional[int]]] = {}
        self.time: Optional[int] = None
        self.undo: list[tuple[bytes, Optional[tuple[bytes, Optional[int]]]]] = []

    def _live(self, expiry: Optional[int]) -> bool:
        return expiry is None or self.time is None or self.time < expiry

    def get(self, key: bytes) -> Optional[bytes]:
        found = self.entries.get(key)
        return found[0] if found is not None and self._live(found[1]) else None

    def _write(self, key: bytes, entry: Optional[tuple[bytes, Optional[int]]]) -> None:
        self.undo.append((key, self.entries.get(key)))
        if entry is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = entry

    def put(self, key: bytes, value: bytes, ttl_ms: Optional[int]) -> None:
        expiry = None if ttl_ms is None else max(self.time or 0, 0) + ttl_ms
        self._write(key, (value, expiry))

    def delete(self, key: bytes) -> None:
        self._write(key, None)

    def scan(self, start: Optional[tuple[bytes, bool]], end: Optional[tuple[bytes, bool]], limit: int) -> list[tuple[bytes, bytes]]:
        out = []
        for k in sorted(self.entries):
            if start is not None and (k < start[0] or (k == start[0] and not start[1])):
                continue
            if end is not None and (k > end[0] or (k == end[0] and not end[1])):
                break
            v, expiry = self.entries[k]
            if self._live(expiry):
                out.append((k, v))
                if len(out) == limit:
                    break
        return out

    def stream_time(self) -> Optional[int]:
        return self.time

    def begin(self, index: int, timestamp: int) -> None:
        self.undo.clear()
        self.time = timestamp if self.time is None else max(self.time, timestamp)

    def end(self, failed: bool) -> None:
        undo, self.undo = self.undo, []
        if failed:
            for key, old in reversed(undo):
                if old is None:
                    self.entries.pop(key, None)
                else:
                    self.entries[key] = old


#: What the calls go to: the double natively, the host in a component
#: (installed by the component's glue).
_backend = _Memory()


def get(key: Key) -> Optional[bytes]:
    """The value of ``key``, if set and not expired."""
    return _backend.get(_b(key))


def put(key: Key, value: Key, ttl_ms: Optional[int] = None) -> None:
    """Sets ``key``; with ``ttl_ms``, until that much stream time has passed."""
    if ttl_ms is not None and ttl_ms < 0:
        raise ValueError("ttl_ms must not be negative")
    _backend.put(_b(key), _b(value), ttl_ms)


def delete(key: Key) -> None:
    _backend.delete(_b(key))


def stream_time() -> Optional[int]:
    """The partition's stream time in ms since the epoch: the highest record
    timestamp seen, up to the record being transformed; ``None`` before any."""
    return _backend.stream_time()


def _prefix_end(prefix: bytes) -> Optional[bytes]:
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return None


def scan(start: Optional[Key] = None, end: Optional[Key] = None, *, prefix: Optional[Key] = None) -> Iterator[tuple[bytes, bytes]]:
    """Live ``(key, value)`` pairs in key order: from ``start`` (included)
    to ``end`` (excluded), or every key starting with ``prefix``."""
    lo: Optional[tuple[bytes, bool]] = None if start is None else (_b(start), True)
    hi: Optional[tuple[bytes, bool]] = None if end is None else (_b(end), False)
    if prefix is not None:
        p = _b(prefix)
        lo = (p, True)
        past = _prefix_end(p)
        hi = None if past is None else (past, False)
    while True:
        page = _backend.scan(lo, hi, _SCAN_PAGE)
        yield from page
        if len(page) < _SCAN_PAGE:
            return
        lo = (page[-1][0], False)


def _begin(index: int, timestamp: int) -> None:
    _backend.begin(index, timestamp)


def _end(failed: bool) -> None:
    _backend.end(failed)


def _reset() -> None:
    global _backend
    if isinstance(_backend, _Memory):
        _backend = _Memory()
