#!/usr/bin/env bash
# Build the documentation site into docs/_build/html (Sphinx, warnings are errors).
# Sets up .venv like scripts/bootstrap.sh, adds the `docs` extra (pinned by requirements.lock; re-installed only
# when pyproject.toml or requirements.lock changed), regenerates the tables of docs/performance.md and
# docs/testing.md from scripts/results/*.json (scripts/docs_tables.py -> docs/_generated/tables/), then builds.
# Extra args go to sphinx-build, e.g. `bash scripts/docs.sh -E` (rebuild every page).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

stamp=".venv/.bayeslin-docs-stamp"
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet -c requirements.lock -e ".[test,docs]" 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
fi

.venv/bin/python scripts/docs_tables.py --out docs/_generated/tables
.venv/bin/python -m sphinx -W --keep-going -q -b html "$@" docs docs/_build/html
echo "docs built: docs/_build/html/index.html"
