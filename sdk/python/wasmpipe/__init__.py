"""wasmpipe's Python SDK: write a transform as one function over a record.

    import json
    import wasmpipe

    def init(config: wasmpipe.Config) -> None:      # optional
        global field
        field = config.require("field")

    def transform(record: wasmpipe.Record):
        doc = record.json()
        doc[field] = "***"
        return record.forward(value=json.dumps(doc))

``transform`` returns ``None`` (drop the record), one ``Output`` or a list
of them; raising dead-letters that record alone, with the exception as the
reason. ``init`` raising ``ConfigError`` (or anything) refuses the config:
the host reports it and loads nothing.

``python -m wasmpipe.build plugin.py -o plugin.wasm`` makes the component;
``wasmpipe.testing`` runs the same functions natively, for unit tests.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Iterable, Iterator, Optional, Union

__all__ = [
    "Config",
    "ConfigError",
    "Output",
    "Record",
    "TimestampType",
    "debug",
    "error",
    "info",
    "trace",
    "warn",
]

Bytes = Optional[bytes]
Header = tuple[str, Optional[bytes]]


class TimestampType(Enum):
    """How Kafka set a record's timestamp."""

    NOT_AVAILABLE = 0
    CREATE_TIME = 1
    LOG_APPEND_TIME = 2


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _bytes(v: Union[str, bytes, bytearray, None]) -> Bytes:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, bytearray):
        return bytes(v)
    raise TypeError(f"expected str, bytes or None, got {type(v).__name__}")


@dataclass(frozen=True)
class Record:
    """A record as consumed, with its full Kafka metadata. ``value is None``
    is a tombstone; headers keep their order and may repeat."""

    key: Bytes
    value: Bytes
    headers: tuple[Header, ...] = ()
    timestamp: int = 0
    timestamp_type: TimestampType = TimestampType.CREATE_TIME
    topic: str = ""
    partition: int = 0
    offset: int = 0

    def is_tombstone(self) -> bool:
        return self.value is None

    def text(self) -> str:
        """The value as UTF-8 text; an error (a dead letter) otherwise."""
        if self.value is None:
            raise ValueError("record has no value (tombstone); expected text")
        return self.value.decode("utf-8")

    def json(self) -> Any:
        """The value parsed as JSON; an error (a dead letter) otherwise."""
        if self.value is None:
            raise ValueError("record has no value (tombstone); expected a JSON document")
        try:
            # Strict UTF-8 and standard JSON only (no NaN or Infinity), as
            # the other SDKs read it.
            return _json.loads(self.value.decode("utf-8"), parse_constant=_not_json)
        except ValueError as e:
            raise ValueError(f"value is not JSON: {e}") from None

    def header(self, name: str) -> Bytes:
        """The first header called ``name``, or None."""
        return next((v for n, v in self.headers if n == name), None)

    def forward(self, **changes: Any) -> "Output":
        """This record as an output, with ``changes`` (key, value, headers,
        timestamp, topic) applied; everything else is kept."""
        out = Output(key=self.key, value=self.value, headers=list(self.headers))
        for name, v in changes.items():
            if name not in ("key", "value", "headers", "timestamp", "topic"):
                raise TypeError(f"an output has no field '{name}'")
            setattr(out, name, v)
        return out


@dataclass
class Output:
    """A record to produce. ``timestamp=None`` keeps the input's;
    ``topic=None`` sends it to the pipeline's output topic. ``key`` and
    ``value`` take bytes or str (written as UTF-8)."""

    key: Union[bytes, str, None] = None
    value: Union[bytes, str, None] = None
    headers: list[tuple[str, Union[bytes, str, None]]] = field(default_factory=list)
    timestamp: Optional[int] = None
    topic: Optional[str] = None

    def normalized(self) -> "Output":
        return replace(
            self,
            key=_bytes(self.key),
            value=_bytes(self.value),
            headers=[(str(n), _bytes(v)) for n, v in self.headers],
        )


class ConfigError(ValueError):
    """A refused config: say which key and what would be right."""


class Config:
    """The plugin's config: string keys to string values."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._pairs = dict(pairs)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self._pairs.get(key, default)

    def require(self, key: str) -> str:
        if key not in self._pairs:
            raise ConfigError(f"missing config key '{key}'")
        return self._pairs[key]

    def only(self, *keys: str) -> None:
        """Refuses keys other than ``keys`` (a typo is not silently ignored)."""
        for k in self._pairs:
            if k not in keys:
                allowed = ", ".join(keys)
                raise ConfigError(f"unknown config key '{k}' (known: {allowed})")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs.items())

    def __contains__(self, key: str) -> bool:
        return key in self._pairs


# Logging goes to the host (tagged with the plugin's name) inside the
# component, to stderr when the plugin runs natively.
def _native_log(level: str, message: str, fields: dict[str, Any]) -> None:
    import sys

    extra = "".join(f" {k}={v}" for k, v in fields.items())
    print(f"{level.upper()} {message}{extra}", file=sys.stderr)


_log = _native_log


def trace(message: str, **fields: Any) -> None:
    _log("trace", message, fields)


def debug(message: str, **fields: Any) -> None:
    _log("debug", message, fields)


def info(message: str, **fields: Any) -> None:
    _log("info", message, fields)


def warn(message: str, **fields: Any) -> None:
    _log("warn", message, fields)


def error(message: str, **fields: Any) -> None:
    _log("error", message, fields)


def outputs(result: Any) -> list[Output]:
    """What a ``transform`` returned, as a list of outputs."""
    if result is None:
        return []
    if isinstance(result, Output):
        return [result.normalized()]
    if isinstance(result, Record):
        return [result.forward().normalized()]
    if isinstance(result, (list, tuple)):
        out = []
        for r in result:
            out.extend(outputs(r))
        return out
    raise TypeError(
        f"transform returned {type(result).__name__}; return None, an Output, "
        "a Record (forwarded as it is) or a list of them"
    )
