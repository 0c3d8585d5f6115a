"""The script plugin runtime: a Python interpreter component whose plugin
arrives as source through ``init`` (config keys ``wasmpipe.script`` and
``wasmpipe.script-name``, set by the host from a ``.py`` pipeline entry).
A reload re-runs ``init`` with the new source: no compile."""

from __future__ import annotations

import types as _types

from componentize_py_types import Err

# The runtime holds only the modules imported while it is built: a script
# may import these (the standard library's pure-Python and built-in modules
# a transform reaches for), and wasmpipe's own.
import base64  # noqa: F401
import binascii  # noqa: F401
import bisect  # noqa: F401
import calendar  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import csv  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import enum  # noqa: F401
import fractions  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import hmac  # noqa: F401
import html  # noqa: F401
import io  # noqa: F401
import ipaddress  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import operator  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401
import string  # noqa: F401
import struct  # noqa: F401
import textwrap  # noqa: F401
import time  # noqa: F401
import typing  # noqa: F401
import unicodedata  # noqa: F401
import urllib.parse  # noqa: F401
import uuid  # noqa: F401
import zlib  # noqa: F401

import wasmpipe.state  # noqa: F401
import wasmpipe.window  # noqa: F401

from wasmpipe._export import Export, describe

SOURCE = "wasmpipe.script"
NAME = "wasmpipe.script-name"


class ScriptExport(Export):
    def init(self, config: list[tuple[str, str]]) -> None:
        pairs = dict(config)
        source = pairs.get(SOURCE)
        if source is None:
            raise Err(
                "this is wasmpipe's Python script runtime: name a .py file in the pipeline "
                "and the host passes it here"
            )
        name = pairs.get(NAME, "script.py")
        module = _types.ModuleType(name.rsplit(".", 1)[0])
        module.__file__ = name
        try:
            exec(compile(source, name, "exec"), module.__dict__)
        except SyntaxError as e:
            raise Err(f"{name} line {e.lineno}: {e.msg}")
        except Exception as e:
            raise Err(describe(e))
        # componentize-py may make a new export object for each call: the
        # module is kept on the class.
        ScriptExport.module = module
        super().init([(k, v) for k, v in config if k not in (SOURCE, NAME)])
