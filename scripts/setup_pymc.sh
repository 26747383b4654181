#!/usr/bin/env bash
# Optional PyMC environment for the reference benchmark (scripts/benchmark_models.py --pymc-python):
# .venv-pymc next to the project's .venv, with PyMC and nutpie (PyTensor compiles with the system C compiler).
# Idempotent; the folder is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.12}
if [ ! -x .venv-pymc/bin/python ]; then
    "$python" -m venv .venv-pymc
fi
.venv-pymc/bin/python -m pip install --quiet --upgrade pip
.venv-pymc/bin/python -m pip install --quiet "pymc>=5.10" "nutpie>=0.13" 2> >(grep -v "is ignored: it is neither" >&2)
.venv-pymc/bin/python -c 'import pymc, nutpie; print("pymc", pymc.__version__, "nutpie", nutpie.__version__)'
