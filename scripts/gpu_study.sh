#!/usr/bin/env bash
# Run a simulation study on this machine's GPU(s), write its report, optionally benchmark.
#
#   scripts/gpu_study.sh [OUT_DIR] [DATASETS] [extra `bayeslin study` flags ...]
#
# Defaults: OUT_DIR=out/gpu_study, DATASETS=100000, the tutorial model, 4 chains x (1000 warm-up +
# 1000 draws). The dataset axis is split over every visible GPU (CUDA_VISIBLE_DEVICES picks them).
# Rerunning the same command resumes an interrupted study. BENCH=1 also runs scripts/benchmark.py
# for B = 1 .. 10^6 (engine and exact sampler) into OUT_DIR/benchmark_gpu.json.
# Needs a CUDA build of JAX in the environment: pip install -e '.[cuda]'.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu_study}
DATASETS=${2:-100000}
shift $(( $# < 2 ? $# : 2 ))
PY=${PYTHON:-.venv/bin/python}

"$PY" - <<'EOF'
import sys
import jax
devices = jax.devices()
print("JAX", jax.__version__, "devices:", devices)
if devices[0].platform != "gpu":
    sys.exit("no GPU visible to JAX: install the CUDA build (pip install -e '.[cuda]') or check CUDA_VISIBLE_DEVICES")
EOF

mkdir -p "$OUT"
# --method vmap: runs advance in lock-step blocks (the GPU default of --method auto, stated explicitly).
"$PY" -m bayeslin_jax.cli study --datasets "$DATASETS" --out "$OUT/study.zarr" --method vmap "$@"
"$PY" -m bayeslin_jax.cli report "$OUT/study.zarr" --out "$OUT/report"

if [[ "${BENCH:-0}" == "1" ]]; then
  "$PY" scripts/benchmark.py --engines engine,exact,jit_loop,mcmc_loop --sizes 1,100,10000,100000,1000000 \
    --chain-variants 1 --chain-variant-sizes 1,100,10000 --max-seconds 500 --out "$OUT/benchmark_gpu.json"
fi
echo "done: store $OUT/study.zarr, report $OUT/report/report.txt"
