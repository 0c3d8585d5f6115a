"""Run a plugin's functions natively, for unit tests:

    from wasmpipe import testing

    plugin = testing.load("redact.py", {"mask": "user.email"})
    [out] = plugin.run(testing.record(key="k", value='{"user": {"email": "a@b"}}'))
    assert out.value == b'{"user":{"email":"***"}}'

The same conversions as in the component apply (str written as UTF-8,
Records forwarded, lists flattened), so what passes here behaves the same
under ``wasmpipe plugin test``.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any, Iterable, Mapping, Union

import wasmpipe
from wasmpipe import Config, Output, Record, TimestampType, state


def record(
    key: Union[str, bytes, None] = None,
    value: Union[str, bytes, None] = None,
    headers: Iterable[tuple[str, Union[str, bytes, None]]] = (),
    timestamp: int = 0,
    topic: str = "test",
    partition: int = 0,
    offset: int = 0,
) -> Record:
    return Record(
        key=wasmpipe._bytes(key),
        value=wasmpipe._bytes(value),
        headers=tuple((n, wasmpipe._bytes(v)) for n, v in headers),
        timestamp=timestamp,
        timestamp_type=TimestampType.CREATE_TIME,
        topic=topic,
        partition=partition,
        offset=offset,
    )


class Plugin:
    def __init__(self, module: ModuleType):
        self.module = module

    def run(self, r: Record) -> list[Output]:
        """The outputs of one record; an exception is what would be
        dead-lettered (and its state writes are undone, as the host does)."""
        state._begin(0, r.timestamp)
        try:
            out = wasmpipe.outputs(self.module.transform(r))
        except BaseException:
            state._end(True)
            raise
        state._end(False)
        return out


def reset_state() -> None:
    """Empties the native state double and its stream time."""
    state._reset()


def state_entries() -> list[tuple[bytes, bytes]]:
    """Every live entry of the native state double, in key order."""
    return list(state.scan())


def load(path: Union[str, ModuleType], config: Union[Mapping[str, str], Iterable[tuple[str, str]]] = ()) -> Plugin:
    """Imports the plugin (a fresh copy each call) and runs its ``init``."""
    if isinstance(path, ModuleType):
        module = path
    else:
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(f"wasmpipe_test_{name}", path)
        assert spec and spec.loader, f"cannot import {path}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    pairs: Any = config.items() if isinstance(config, Mapping) else config
    init = getattr(module, "init", None)
    if init is not None:
        init(Config(pairs))
    return Plugin(module)
