"""Windows on event time, over :mod:`wasmpipe.state`: tumbling, hopping
and session windows with a grace period, closed by stream time — the Rust
SDK's ``wasmpipe_sdk::window``, with the same rules and the same keys in
state (a plugin may move between the two languages and keep its windows).

A window ``[start, end)`` takes the records of its key whose timestamp
falls in it. It closes when the partition's stream time — the highest
record timestamp seen — reaches ``end + grace``; a record for a window
already closed is *late*. Each update returns the aggregates it changed
and those of every window the record's time closed, so a plugin emits
every update, or only final results, as it chooses::

    from wasmpipe.window import Windows

    windows = Windows.tumbling(60_000, grace=10_000)

    def transform(record):
        n = record.json()["amount"]
        update = windows.update(record.key or b"", record.timestamp,
                                lambda acc: _add(acc, n))
        return [wasmpipe.Output(key=w.key, value=..., timestamp=w.end)
                for w in update.closed]

Durations are in milliseconds (``duration()`` reads "1m", "10s", "500ms"
and the like from a config). Aggregates are bytes, folded by the function
given to ``update``.

Aggregates live in state under keys the windows own (prefixes ``\\x00w``
and ``\\x00s``), ordered by window end, so closing windows is one ordered
scan; the key ``\\x00w`` itself holds where that scan starts, past every
window already closed. Keep the plugin's own keys off those prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import state

__all__ = ["LateRecord", "Update", "Window", "Windows", "duration"]

_PREFIX = b"\x00w"
_SESSIONS = b"\x00s"
#: Windows closed at most per update: the rest close with the next.
_CLOSE_PAGE = 1000
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration(text: str) -> int:
    """Milliseconds in ``text``: a number and a unit (ms, s, m or min, h,
    d), several summed ("1m30s"); a bare number is milliseconds."""
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    parts = re.findall(r"(\d+)\s*(ms|min|s|m|h|d)\s*", t)
    if not parts or "".join(re.findall(r"\d+\s*(?:ms|min|s|m|h|d)\s*", t)) != t:
        raise ValueError(f"'{text}' is not a duration: write a number and a unit, as 1m, 10s or 500ms")
    return sum(int(n) * _UNITS[u] for n, u in parts)


class LateRecord(ValueError):
    """A record for a window already closed, with ``late="reject"``: raised
    out of ``transform``, it fails the record (dead-lettered by the
    pipeline's policy)."""


@dataclass
class Window:
    """One window's aggregate: ``[start, end)`` in ms since the epoch."""

    key: bytes
    start: int
    end: int
    value: bytes


@dataclass
class Update:
    """What one record did to the windows."""

    #: The windows the record went into, with their new aggregates.
    updated: list[Window] = field(default_factory=list)
    #: The windows that closed (their final aggregates), oldest first.
    closed: list[Window] = field(default_factory=list)
    #: The record was late and left out (``late="drop"``).
    late: bool = False


def _sat(n: int) -> int:
    return max(_I64_MIN, min(_I64_MAX, n))


def _ordered(t: int) -> bytes:
    """An i64 as 8 bytes that sort as the numbers do."""
    return ((t + (1 << 63)) & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")


def _unordered(b: bytes) -> int:
    return int.from_bytes(b[:8].rjust(8, b"\0"), "big") - (1 << 63)


def _state_key(end: int, start: int, key: bytes) -> bytes:
    return _PREFIX + _ordered(end) + _ordered(start) + key


def _session_index(key: bytes) -> bytes:
    return _SESSIONS + len(key).to_bytes(4, "big") + key


def _parse_key(k: bytes) -> Optional[tuple[int, int, bytes]]:
    if not k.startswith(_PREFIX) or len(k) < len(_PREFIX) + 16:
        return None
    rest = k[len(_PREFIX):]
    return _unordered(rest[:8]), _unordered(rest[8:16]), rest[16:]


class Windows:
    """A window definition: build one with :meth:`tumbling`,
    :meth:`hopping` or :meth:`session`."""

    def __init__(self, shape: tuple, grace: int = 0, late: str = "reject"):
        if late not in ("reject", "drop"):
            raise ValueError(f"late='{late}': write reject (fail late records) or drop")
        if grace < 0:
            raise ValueError(f"grace={grace}: a grace period is 0 ms or more")
        self._shape = shape
        self.grace = grace
        self.late = late

    @classmethod
    def tumbling(cls, size_ms: int, *, grace: int = 0, late: str = "reject") -> "Windows":
        """Contiguous windows of ``size_ms``: each record is in exactly one."""
        return cls(("tumbling", max(1, size_ms), max(1, size_ms)), grace, late)

    @classmethod
    def hopping(cls, size_ms: int, advance_ms: int, *, grace: int = 0, late: str = "reject") -> "Windows":
        """Windows of ``size_ms`` starting every ``advance_ms``."""
        size = max(1, size_ms)
        return cls(("hopping", size, min(max(1, advance_ms), size)), grace, late)

    @classmethod
    def session(cls, gap_ms: int, *, grace: int = 0, late: str = "reject") -> "Windows":
        """Per key, records less than ``gap_ms`` apart share a window, which
        grows (and merges with its neighbours) as records come."""
        return cls(("session", max(1, gap_ms)), grace, late)

    def _fixed(self, t: int) -> list[tuple[int, int]]:
        _, size, advance = self._shape
        start = t - t % advance
        out = []
        while start > t - size:
            out.append((start, _sat(start + size)))
            start -= advance
        out.reverse()
        return out

    def _is_closed(self, end: int, now: int) -> bool:
        return _sat(end + self.grace) <= now

    def update(self, key: state.Key, timestamp: int, add: Callable[[Optional[bytes]], bytes]) -> Update:
        """Adds the record with ``key`` at ``timestamp`` to its windows, with
        ``add`` folding it into each window's aggregate (``None`` for a new
        window), then closes every window stream time has passed. For
        session windows use :meth:`update_session`."""
        if self._shape[0] == "session":
            raise TypeError("session windows merge aggregates: call update_session")
        key = state._b(key)
        now = state.stream_time()
        now = timestamp if now is None else now
        update = Update()
        for start, end in self._fixed(timestamp):
            if self._is_closed(end, now):
                continue
            k = _state_key(end, start, key)
            value = bytes(add(state.get(k)))
            state.put(k, value)
            update.updated.append(Window(key, start, end, value))
        if not update.updated:
            self._on_late(update, key, timestamp)
        update.closed = self._close(now)
        return update

    def update_session(
        self,
        key: state.Key,
        timestamp: int,
        add: Callable[[Optional[bytes]], bytes],
        merge: Callable[[bytes, bytes], bytes],
    ) -> Update:
        """:meth:`update` for session windows: ``add`` folds the record into
        an aggregate, ``merge`` joins two sessions' aggregates when the
        record bridges them."""
        if self._shape[0] != "session":
            raise TypeError("update_session is for session windows")
        gap = self._shape[1]
        key = state._b(key)
        now = state.stream_time()
        now = timestamp if now is None else now
        update = Update()
        if self._is_closed(_sat(timestamp + gap), now):
            self._on_late(update, key, timestamp)
            update.closed = self._close(now)
            return update
        # A session [start, end) ends `gap` after its last record: this
        # record joins each open session of its key it is less than `gap`
        # from, found through the key's own index.
        start, end = timestamp, _sat(timestamp + gap)
        joined: Optional[bytes] = None
        index = _session_index(key)
        merged = []
        for k, _ in state.scan(prefix=index):
            times = k[len(index):]
            if len(times) != 16:
                continue
            e, s = _unordered(times[:8]), _unordered(times[8:])
            if self._is_closed(e, now) or e <= timestamp or _sat(s - gap) >= timestamp:
                continue
            merged.append((k, e, s))
        for index_key, e, s in merged:
            k = _state_key(e, s, key)
            v = state.get(k)
            if v is not None:
                joined = v if joined is None else bytes(merge(joined, v))
            state.delete(k)
            state.delete(index_key)
            start, end = min(start, s), max(end, e)
        value = bytes(add(joined))
        state.put(_state_key(end, start, key), value)
        state.put(index + _ordered(end) + _ordered(start), b"")
        update.updated.append(Window(key, start, end, value))
        update.closed = self._close(now)
        return update

    def _on_late(self, update: Update, key: bytes, timestamp: int) -> None:
        if self.late == "drop":
            update.late = True
            return
        raise LateRecord(
            f"late record: key {key.decode('utf-8', 'replace')} at {timestamp} ms is for a "
            f"window closed by stream time (grace {self.grace} ms)"
        )

    def _close(self, now: int) -> list[Window]:
        """Removes and returns every window closed at stream time ``now``."""
        stored = state.get(_PREFIX)
        floor = _I64_MIN if stored is None else _unordered(stored)
        start = _state_key(floor, _I64_MIN, b"")
        end = _state_key(_sat(_sat(now - self.grace) + 1), _I64_MIN, b"")
        closed: list[Window] = []
        paged = False
        for k, value in state.scan(start, end):
            parsed = _parse_key(k)
            if parsed is None:
                continue
            w_end, w_start, key = parsed
            if not self._is_closed(w_end, now):
                break
            closed.append(Window(key, w_start, w_end, value))
            state.delete(k)
            if self._shape[0] == "session":
                state.delete(_session_index(key) + _ordered(w_end) + _ordered(w_start))
            if len(closed) == _CLOSE_PAGE:
                paged = True
                break
        if closed:
            last = closed[-1].end
            nxt = last if paged else _sat(last + 1)
            if nxt > floor:
                state.put(_PREFIX, _ordered(nxt))
        return closed
