#!/usr/bin/env python
"""Engine layouts on a GPU in one process (used to choose the barrier-free lane default).

    python scripts/gpu_probe.py '[{"B": 1000, "method": "barrier_free"}, {"B": 1000, "method": "vmap"}]'

Each entry: ``B`` datasets of the tutorial model, ``method``, optional ``lanes`` (batch_size), ``warm``,
``draws``, ``chains`` (default 1000, 1000, 4) and ``draw_stats``. Prints one JSON row per entry (wall,
compile from JAX's compile events as scripts/benchmark.py counts them, run time per dataset, peak
device memory, lane utilization, and the RMS z of the posterior means against the exact posterior on
the first 200 datasets); with ``$OUT`` set, also writes ``$OUT/probe.json``. ``BUDGET_S`` (default 200)
skips entries once exceeded.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np
import numpyro
from benchmark import _CompileClock  # scripts/ is on sys.path when this file runs

from bayeslin_jax import tutorial_spec
from bayeslin_jax.core import exact
from bayeslin_jax.core.simulate import tutorial_data
from bayeslin_jax.engine import NutsConfig, lane_utilization, sample_nuts


def main() -> None:
    clock = _CompileClock()
    print("jax", jax.__version__, "numpyro", numpyro.__version__, jax.devices(), flush=True)
    spec = tutorial_spec()
    rows = []
    started = time.time()
    for entry in json.loads(sys.argv[1]):
        if time.time() - started > float(os.environ.get("BUDGET_S", "200")):
            print("budget reached, skipping", entry)
            continue
        num, lanes = entry["B"], entry.get("lanes")
        data = tutorial_data(0, np.arange(num))
        phi = spec.basis(data.x)
        config = NutsConfig(num_warmup=entry.get("warm", 1000), num_draws=entry.get("draws", 1000),
                            num_chains=entry.get("chains", 4), method=entry["method"], batch_size=lanes)
        clock.reset()
        t0 = time.perf_counter()
        result = sample_nuts(0, phi, data.y, spec.prior, spec.noise, config, draw_stats=entry.get("draw_stats", True))
        jax.block_until_ready(result)
        wall = time.perf_counter() - t0
        compile_s = clock.reset()
        post = exact.posterior(phi[:200], data.y[:200], spec.prior, spec.noise.sigma)
        z = (np.asarray(result.samples["w"][:200]).mean((1, 2)) - np.asarray(post.mean)) / np.asarray(post.sd)
        row = {**entry, "wall_s": wall, "compile_s": compile_s, "run_s": wall - compile_s,
               "per_dataset_ms": 1e3 * (wall - compile_s) / num, "z_rms_vs_exact": float(np.sqrt((z**2).mean())),
               "peak_bytes": (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")}
        if result.lanes:
            row["util"] = lane_utilization(*result.lanes)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "probe.json"), "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
