"""The script plugin runtime: a Python interpreter component whose plugin
arrives as source through ``init`` (config keys ``wasmpipe.script`` and
``wasmpipe.script-name``, set by the host from a ``.py`` pipeline entry).
A reload re-runs ``init`` with the new source: no compile."""

from __future__ import annotations

import types as _types

from componentize_py_types import Err

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
