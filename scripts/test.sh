#!/usr/bin/env bash
# The test suite (CPU, default markers: slow and gpu tests skipped). Extra args go to pytest, e.g. -m slow.
# Two pytest-xdist workers, one test file each at a time (module fixtures computed once); PYTEST_WORKERS=0
# runs in one process. Prints the pytest wall time last (budget: <= 200 s idle on 2 cores, default suite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check bayeslin_jax tests scripts
start=$(date +%s%N)
status=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@" || status=$?
tenths=$(( ($(date +%s%N) - start) / 100000000 ))
echo "pytest wall time: $((tenths / 10)).$((tenths % 10)) s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$status"
