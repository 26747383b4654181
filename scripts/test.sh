#!/usr/bin/env bash
# The test suite (CPU, default markers: slow and gpu tests skipped). Extra args go to pytest, e.g. -m slow.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check bayeslin_jax tests scripts
exec .venv/bin/python -m pytest "$@"
