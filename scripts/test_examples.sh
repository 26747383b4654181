#!/usr/bin/env bash
# Every example of the documentation, run as written (not part of the default suite; .ci/run runs it):
#   1. the code blocks of README.md, CONTRIBUTING.md and docs/**/*.md, through sybil (rules: conftest.py and
#      docs/testing.md): python and bash blocks run, each file in a fresh temporary directory with REPO set;
#      blocks marked <!-- skip: next "why" --> are only syntax-checked;
#   2. the Examples sections of the docstrings in bayeslin_jax/ (pytest --doctest-modules).
# Two pytest-xdist workers, one file at a time each (the blocks of a file share a namespace, in order);
# PYTEST_WORKERS=0 runs in one process. Extra args go to both pytest runs (e.g. -x, -k). Prints the wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
workers=${PYTEST_WORKERS:-2}
docs=(README.md docs)
[ -f CONTRIBUTING.md ] && docs=(README.md CONTRIBUTING.md docs)

start=$(date +%s%N)
status=0
echo "== code blocks: ${docs[*]}"
.venv/bin/python -m pytest -n "$workers" --dist loadfile -p no:cacheprovider -o addopts="" -q "${docs[@]}" "$@" \
    || status=$?
mid=$(date +%s%N)
echo "== docstring examples: bayeslin_jax"
.venv/bin/python -m pytest -n "$workers" --dist loadfile -p no:cacheprovider -o addopts="" -q --doctest-modules \
    bayeslin_jax "$@" || status=$?
end=$(date +%s%N)

tenths() { echo $(( ($2 - $1) / 100000000 )); }
show() { echo "$(($1 / 10)).$(($1 % 10)) s"; }
echo "examples wall time: $(show "$(tenths "$start" "$end")") (code blocks $(show "$(tenths "$start" "$mid")"), \
docstrings $(show "$(tenths "$mid" "$end")"); load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$status"
