# Sourced by the scripts that build components from the Python and
# JavaScript SDKs (tests/polyglot/run, k8s/image): installs each toolchain,
# pinned, into the cache outside the clone, once.
#
#   . sdk/toolchains.sh
#   python_toolchain "$cache"   # sets $venv (componentize-py) and PYTHONPATH
#   js_toolchain "$cache"       # sets $jsdir (componentize-js) and NODE_PATH
#   script_runtimes "$out"      # builds python-script.wasm and js-script.wasm

toolchains_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

python_toolchain() {
    venv="$1/py-sdk"
    local pins="componentize-py==0.25.1"
    if [ ! -x "$venv/bin/componentize-py" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q $pins
        echo "$pins" > "$venv/.pins"
    fi
    export PYTHONPATH="$toolchains_root/sdk/python"
}

js_toolchain() {
    jsdir="$1/js-sdk"
    local pins="@bytecodealliance/componentize-js@0.23.0 typescript@7.0.2"
    if [ ! -d "$jsdir/node_modules/@bytecodealliance/componentize-js" ] || [ "$(cat "$jsdir/.pins" 2>/dev/null)" != "$pins" ]; then
        rm -rf "$jsdir" && mkdir -p "$jsdir"
        (cd "$jsdir" && npm init -y >/dev/null && npm install --no-audit --no-fund -q $pins)
        echo "$pins" > "$jsdir/.pins"
    fi
    export NODE_PATH="$jsdir/node_modules"
    # build.mjs resolves componentize-js from the toolchain's node_modules.
    ln -sfn "$jsdir/node_modules" "$toolchains_root/sdk/js/node_modules"
}

# The runtimes that run .py and .js files named by a pipeline; the image
# carries them in /usr/lib/wasmpipe.
script_runtimes() {
    "$venv/bin/python" -m wasmpipe.build --script-runtime -o "$1/python-script.wasm"
    node "$toolchains_root/sdk/js/build.mjs" --script-runtime -o "$1/js-script.wasm"
}
