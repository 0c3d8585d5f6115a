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
from wit_world.imports import host, types

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
        for r in batch:
            try:
                results.append(Ok([_output(o) for o in wasmpipe.outputs(fn(_record(r)))]))
            except Exception as e:
                results.append(Err(describe(e)))
        return results
