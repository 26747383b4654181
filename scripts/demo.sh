#!/usr/bin/env bash
# The main job: reproduce the tutorial end to end. Figures and the summary go to ${1:-out/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/bayeslin demo --out "${1:-out/demo}"
