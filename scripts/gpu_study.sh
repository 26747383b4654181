#!/usr/bin/env bash
# GPU benchmark and study: the same JSON fields as scripts/results/benchmark_cpu.json, measured on a GPU.
#
#   scripts/gpu_study.sh [OUT_DIR] [DATASETS]
#
# Writes OUT_DIR/benchmark_gpu.json (scripts/benchmark.py's report: environment, summary, results) with
#   * engine (method "auto" = the barrier-free FSM on a GPU) and engine_vmap (lock-step) at B = 1000,
#     10000 and DATASETS: per-dataset time, compile time, slope ESS/s, peak device and host memory,
#     lane utilization (warm-up, sampling, overall);
#   * engine_barrier_free with 4000 lanes at B = 1000 and 10000 (4000 and 40000 runs queued on 4000 lanes);
#   * study: bayeslin_jax.workflows.studies.run_study end to end at each of STUDY_SIZES (default DATASETS and
#     10^6; simulate, NUTS, exact posterior, diagnostics on the device, checksummed zarr store), against issue
#     20's targets: 10^5 datasets x 4 chains x 2000 iterations in <= 30 s, 10^6 in <= 5 min, compile <= 10 s;
#   * exact: the conjugate posterior (the lower bound).
# Defaults: OUT_DIR=out/gpu_study, DATASETS=100000, the tutorial model, 4 chains x (1000 warm-up + 1000 draws).
# A size whose predicted time exceeds MAX_SECONDS (default 360: the 10^6 study's 5-minute target) is skipped and recorded.
# DRY_RUN=1 runs the same pipeline on the CPU with tiny settings (tests/test_gpu.py does; no GPU needed).
# Needs a CUDA build of JAX: pip install -e '.[cuda]' (or PYTHON=... an interpreter that has one).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu_study}
DATASETS=${2:-100000}
PY=${PYTHON:-.venv/bin/python}
MAX_SECONDS=${MAX_SECONDS:-360}

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  settings=(--chains 2 --warmup 20 --draws 20 --lanes 2)
  sizes="2,$DATASETS"
  study_sizes=${STUDY_SIZES:-$DATASETS}
  engines=${ENGINES:-engine,study,exact}
else
  "$PY" - <<'EOF'
import sys
import jax
devices = jax.devices()
print("JAX", jax.__version__, "devices:", devices)
if devices[0].platform != "gpu":
    sys.exit("error: no GPU visible to JAX: install the CUDA build (pip install -e '.[cuda]'), "
             "check CUDA_VISIBLE_DEVICES, or run with DRY_RUN=1 on a CPU")
EOF
  settings=(--chains 4 --warmup 1000 --draws 1000 --lanes 4000)
  sizes="1000,10000,$DATASETS"
  study_sizes=${STUDY_SIZES:-$DATASETS,1000000}
  engines=${ENGINES:-engine,engine_vmap,engine_barrier_free,study,exact,diagnostics}
fi

mkdir -p "$OUT"
"$PY" scripts/benchmark.py --engines "$engines" --sizes "$sizes" --study-sizes "$study_sizes" "${settings[@]}" \
  --chain-variants "" --cpu-devices 1 --max-seconds "$MAX_SECONDS" --out "$OUT/benchmark_gpu.json"
echo "done: $OUT/benchmark_gpu.json"
