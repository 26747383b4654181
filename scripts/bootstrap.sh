#!/usr/bin/env bash
# Create (or refresh) .venv with the project, its test extras and the pinned versions in requirements.lock.
# Idempotent: re-installs only when pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
    for candidate in python3.12 python3.13 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    # pyenv installs 3.12 but may not put it on PATH outside this folder's .python-version
    if command -v pyenv >/dev/null 2>&1; then
        local prefix
        prefix=$(pyenv prefix 3.12 2>/dev/null || true)
        if [ -n "$prefix" ] && [ -x "$prefix/bin/python3" ]; then
            echo "$prefix/bin/python3"
            return
        fi
    fi
    echo "error: Python >= 3.12 not found (install it, e.g. 'pyenv install 3.12')" >&2
    exit 1
}

stamp=".venv/.bayeslin-install-stamp"
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    python=$(pick_python)
    echo "creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c requirements.lock -e ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
echo "$want" > "$stamp"
