"""Builds a wasmpipe plugin component from a Python module.

    python -m wasmpipe.build redact.py -o redact.wasm
    python -m wasmpipe.build --script-runtime -o python-script.wasm

The module defines ``transform(record)`` and maybe ``init(config)`` (see
``wasmpipe``); it may import the standard library and pure-Python packages
found on ``--path`` directories. The component exports wasmpipe's
``typed-plugin`` world. ``--script-runtime`` builds the interpreter
component that runs ``.py`` files named in a pipeline (script plugins).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

SDK = os.path.dirname(os.path.abspath(__file__))
WIT = os.path.join(SDK, "wit")

APP = """\
from wasmpipe._export import Export
import {module} as _plugin


class TypedTransform(Export):
    module = _plugin
"""

SCRIPT_APP = """\
from wasmpipe._script import ScriptExport as TypedTransform
"""


def componentize_py() -> str:
    found = shutil.which("componentize-py") or os.path.join(os.path.dirname(sys.executable), "componentize-py")
    if not os.path.exists(found):
        sys.exit(
            "wasmpipe.build: componentize-py not found: pip install componentize-py==0.25.1 "
            "(see sdk/python/README.md)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wasmpipe.build", description=__doc__.split("\n\n")[0])
    p.add_argument("plugin", nargs="?", help="the plugin's module file, e.g. redact.py")
    p.add_argument("-o", "--output", required=True, help="the component to write, e.g. redact.wasm")
    p.add_argument("--path", action="append", default=[], help="another directory to import from")
    p.add_argument("--script-runtime", action="store_true", help="build the script plugin runtime")
    args = p.parse_args(argv)
    if bool(args.plugin) == args.script_runtime:
        p.error("give a plugin file, or --script-runtime")

    with tempfile.TemporaryDirectory(prefix="wasmpipe-build-") as work:
        paths = [work, os.path.dirname(SDK)] + args.path
        if args.plugin:
            plugin = os.path.abspath(args.plugin)
            if not os.path.isfile(plugin):
                sys.exit(f"wasmpipe.build: {args.plugin}: no such file")
            module = os.path.splitext(os.path.basename(plugin))[0]
            if not module.isidentifier():
                sys.exit(f"wasmpipe.build: {args.plugin}: the file name must be a Python module name (letters, digits, _)")
            paths.insert(1, os.path.dirname(plugin))
            app = APP.format(module=module)
        else:
            app = SCRIPT_APP
        with open(os.path.join(work, "wasmpipe_app.py"), "w") as f:
            f.write(app)
        command = [componentize_py(), "-d", WIT, "-w", "typed-plugin", "componentize", "wasmpipe_app"]
        for d in paths:
            command += ["-p", d]
        command += ["-o", os.path.abspath(args.output)]
        started = time.monotonic()
        done = subprocess.run(command, cwd=work)
        if done.returncode != 0:
            print(f"wasmpipe.build: componentize-py failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        size = os.path.getsize(args.output)
        print(f"wrote {args.output} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
