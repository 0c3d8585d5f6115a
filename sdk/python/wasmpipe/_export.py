"""The component side: wasmpipe's `typed-transform` export over a module
that defines ``transform`` (and maybe ``init``). Imported only inside the
component, where componentize-py's bindings (``wit_world``) exist."""

from __future__ import annotations

import os
import traceback
from types import ModuleType
from typing import Any, Callable, Optional

import wasmpipe
from componentize_py_types import Err, Ok
from wasmpipe import state as _state
from wit_world.imports import host, types
from wit_world.imports import state as _host_state

_SDK_DIR = os.path.dirname(os.path.abspath(wasmpipe.__file__))

_LEVELS = {
    "trace": host.Level.TRACE,
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}


def _host_log(level: str, message: str, fields: dict[str, Any]) -> None:
    host.log(_LEVELS[level], message, [(k, str(v)) for k, v in fields.items()])


wasmpipe._log = _host_log


def _refused(e: Err) -> _state.StateError:
    v = e.value
    kind = {
        "StateError_TooLarge": "too large",
        "StateError_Full": "full",
        "StateError_Unavailable": "unavailable",
    }.get(type(v).__name__, "refused")
    return _state.StateError(f"state: {kind}: {getattr(v, 'value', v)}")


def _bound(b: "tuple[bytes, bool] | None") -> Any:
    if b is None:
        return _host_state.Bound_Unbounded()
    return _host_state.Bound_Included(b[0]) if b[1] else _host_state.Bound_Excluded(b[0])


class _HostState:
    """The state calls, to the host; the record's index is told once, before
    the record's first call."""

    def __init__(self) -> None:
        self.untold: Optional[int] = None

    def _tell(self) -> None:
        if self.untold is not None:
            _host_state.at_record(self.untold)
            self.untold = None

    def get(self, key: bytes) -> Optional[bytes]:
        self._tell()
        try:
            return _host_state.get(key)
        except Err as e:
            raise _refused(e) from None

    def put(self, key: bytes, value: bytes, ttl_ms: Optional[int]) -> None:
        self._tell()
        try:
            _host_state.put(key, value, ttl_ms)
        except Err as e:
            raise _refused(e) from None

    def delete(self, key: bytes) -> None:
        self._tell()
        try:
            _host_state.delete(key)
        except Err as e:
            raise _refused(e) from None

    def scan(self, start: Any, end: Any, limit: int) -> list[tuple[bytes, bytes]]:
        self._tell()
        try:
            return list(_host_state.scan(_bound(start), _bound(end), limit))
        except Err as e:
            raise _refused(e) from None

    def stream_time(self) -> Optional[int]:
        self._tell()
        t = _host_state.stream_time()
        return None if t == -(1 << 63) else t

    def begin(self, index: int, timestamp: int) -> None:
        self.untold = index

    def end(self, failed: bool) -> None:
        # The host drops a failed record's writes itself.
        self.untold = None


_state._backend = _HostState()

_TS = {
    types.TimestampType.NOT_AVAILABLE: wasmpipe.TimestampType.NOT_AVAILABLE,
    types.TimestampType.CREATE_TIME: wasmpipe.TimestampType.CREATE_TIME,
    types.TimestampType.LOG_APPEND_TIME: wasmpipe.TimestampType.LOG_APPEND_TIME,
}


def describe(e: BaseException) -> str:
    """An exception as a dead-letter reason: the message (with its type
    unless it is a plain ValueError), and where in the plugin it was
    raised."""
    text = str(e) if type(e) in (ValueError, wasmpipe.ConfigError) else f"{type(e).__name__}: {e}"
    if isinstance(e, SyntaxError) and e.filename:
        return f"{e.filename} line {e.lineno}: {e.msg}"
    where: Optional[str] = None
    for frame in traceback.extract_tb(e.__traceback__):
        if not os.path.abspath(frame.filename).startswith(_SDK_DIR) and "/wit_world/" not in frame.filename:
            where = f"{os.path.basename(frame.filename)} line {frame.lineno}"
    return f"{where}: {text}" if where else text


def _record(r: types.Record) -> wasmpipe.Record:
    return wasmpipe.Record(
        key=r.key,
        value=r.value,
        headers=tuple((h.name, h.value) for h in r.headers),
        timestamp=r.timestamp,
        timestamp_type=_TS[r.timestamp_type],
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
    )


def _output(o: wasmpipe.Output) -> types.OutputRecord:
    return types.OutputRecord(
        key=o.key,
        value=o.value,
        headers=[types.Header(name=n, value=v) for n, v in o.headers],
        timestamp=o.timestamp,
        topic=o.topic,
    )


class Export:
    """Subclassed by the build with ``module`` set to the plugin's module
    (or, for script plugins, filled in by ``init``)."""

    module: Optional[ModuleType] = None

    def _functions(self) -> tuple[Optional[Callable[..., Any]], Callable[..., Any]]:
        m = self.module
        fn = getattr(m, "transform", None)
        if not callable(fn):
            raise Err(f"{getattr(m, '__file__', 'the plugin')} defines no transform(record) function")
        return getattr(m, "init", None), fn

    def init(self, config: list[tuple[str, str]]) -> None:
        init, _ = self._functions()
        if init is not None:
            try:
                init(wasmpipe.Config(config))
            except Exception as e:
                raise Err(describe(e))

    def transform(self, batch: list[types.Record]) -> list[Any]:
        try:
            _, fn = self._functions()
        except Err as e:
            return [e for _ in batch]
        results: list[Any] = []
        for i, r in enumerate(batch):
            _state._begin(i, r.timestamp)
            try:
                results.append(Ok([_output(o) for o in wasmpipe.outputs(fn(_record(r)))]))
                _state._end(False)
            except Exception as e:
                _state._end(True)
                results.append(Err(describe(e)))
        return results
