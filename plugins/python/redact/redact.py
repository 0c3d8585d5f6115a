"""Masks or drops JSON fields by path, for PII — the Python twin of the
Rust `redact` plugin, held to the same conformance suite.

Config:
- ``mask``: comma-separated field paths whose values are replaced by
  ``mask_with`` (default ``"***"``), e.g. ``user.email,cards.*.number``;
- ``drop``: comma-separated field paths removed from the document;
- ``mask_with``: the replacement string.

A path is fields separated by dots; ``*`` is every element of an array or
every field of an object on the way, a number indexes an array. Tombstones
pass through. A value that is not JSON is an error, so it is dead-lettered
rather than leaked unredacted.
"""

import json

import wasmpipe

mask: list = []
drop: list = []
mask_with = "***"


def parse_path(text: str) -> list:
    segments = text.split(".")
    if not text.strip() or any(s == "" for s in segments):
        raise wasmpipe.ConfigError(
            f"invalid field path '{text}': write fields separated by dots, like 'user.email'"
        )
    return segments


def paths(value):
    return [parse_path(p) for p in (s.strip() for s in (value or "").split(",")) if p]


def init(config: wasmpipe.Config) -> None:
    global mask, drop, mask_with
    config.only("mask", "drop", "mask_with")
    mask, drop = paths(config.get("mask")), paths(config.get("drop"))
    mask_with = config.get("mask_with", "***")
    if not mask and not drop:
        raise wasmpipe.ConfigError(
            "set 'mask' and/or 'drop' to the field paths to redact, e.g. mask=user.email"
        )


def parents(node, path, visit):
    """Calls visit(parent, last) wherever ``path`` ends in ``node``."""
    head, rest = path[0], path[1:]
    if not rest:
        visit(node, head)
        return
    if isinstance(node, dict):
        children = list(node.values()) if head == "*" else [node[head]] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            children = node
        else:
            i = index(head)
            children = [node[i]] if i is not None and i < len(node) else []
    else:
        children = []
    for child in children:
        parents(child, rest, visit)


def index(text: str):
    """An array index as Rust's usize parse reads it (an optional '+')."""
    digits = text[1:] if text.startswith("+") else text
    return int(digits) if digits.isascii() and digits.isdigit() else None


def mask_field(parent, last):
    if isinstance(parent, dict):
        if last in parent:
            parent[last] = mask_with
    elif isinstance(parent, list):
        if last == "*":
            parent[:] = [mask_with] * len(parent)
        else:
            i = index(last)
            if i is not None and i < len(parent):
                parent[i] = mask_with


def drop_field(parent, last):
    if isinstance(parent, dict):
        if last == "*":
            parent.clear()
        else:
            parent.pop(last, None)


def transform(record: wasmpipe.Record):
    if record.is_tombstone():
        return record
    doc = record.json()
    for path in mask:
        parents(doc, path, mask_field)
    for path in drop:
        parents(doc, path, drop_field)
    return record.forward(value=json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
