"""GPU checks (``-m gpu``; skipped without a GPU) and the CPU dry run of scripts/gpu_study.sh.

On a GPU the engine's default method is the barrier-free FSM: it must agree with the exact posterior,
be statistically equivalent to NumPyro's kernel (lock-step ``vmap`` of ``numpyro.infer.hmc``, the
same kernel as the CPU's ``map`` engine) and keep its lanes busy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from test_barrier_free import assert_equivalent

from bayeslin_jax.core import exact, priors, simulate
from bayeslin_jax.engine import NutsConfig, lane_utilization, sample_nuts

ROOT = Path(__file__).resolve().parents[1]
SPEC = priors.tutorial_spec()


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_gpu_study_script_dry_run(tmp_path) -> None:
    """``DRY_RUN=1 scripts/gpu_study.sh`` runs the GPU pipeline on the CPU at tiny sizes and writes a
    report with the fields of the CPU benchmark's (scripts/results/benchmark_cpu.json)."""
    env = {**os.environ, "DRY_RUN": "1", "ENGINES": "study", "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_study.sh"), str(tmp_path), "3"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "benchmark_gpu.json").read_text())
    reference = json.loads((ROOT / "scripts" / "results" / "benchmark_cpu.json").read_text())
    assert set(report) == set(reference)
    assert set(reference["environment"]) - {"updated", "load_average_end"} <= set(report["environment"])
    study_rows = [r for r in report["results"] if r["engine"] == "study"]
    assert [r["B"] for r in study_rows] == [3]
    row = study_rows[0]
    for field in ("per_dataset_s", "compile_s", "wall_s", "slope_ess_per_s", "peak_rss_bytes", "peak_device_bytes"):
        assert field in row, field
    assert row["per_dataset_s"] > 0 and row["slope_ess_bulk"] > 0


def _needs_gpu() -> None:
    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")


@pytest.mark.gpu
def test_gpu_default_is_barrier_free_and_matches_exact() -> None:
    """1000 datasets x 4 chains with the GPU default (barrier-free): posterior means within MCSE of the
    exact ones, in aggregate over the 2000 (dataset, weight) pairs."""
    _needs_gpu()
    config = NutsConfig(num_warmup=500, num_draws=500)
    assert config.resolved_method() == "barrier_free"
    data = simulate.tutorial_data(41, np.arange(1000))
    phi = SPEC.basis(data.x)
    result = sample_nuts(42, phi, data.y, SPEC.prior, SPEC.noise, config)
    post = exact.posterior(phi, data.y, SPEC.prior, SPEC.noise.sigma)
    from bayeslin_jax.diagnostics.device import summarize_rows

    w = np.moveaxis(np.asarray(result.samples["w"]), -1, 1)  # (B, d, C, S)
    diag = {k: np.asarray(v) for k, v in summarize_rows(w).items()}  # on the GPU
    z = ((w.mean((-2, -1)) - np.asarray(post.mean)) / diag["mcse_mean"]).ravel()
    assert float(np.mean(np.abs(z) > 4)) < 0.005, np.sort(np.abs(z))[-10:]
    assert abs(float(z.mean())) < 0.15  # 6.7 standard errors of the mean of 2000 N(0, 1)
    assert 0.8 < float(z.std()) < 1.25  # MCSE is honest
    assert float(diag["rhat"].max()) < 1.05


@pytest.mark.gpu
def test_gpu_barrier_free_equivalent_to_numpyro_kernel() -> None:
    """The FSM against lock-step vmap of NumPyro's kernel on the GPU, independent seeds, 200 datasets x 4 chains."""
    _needs_gpu()
    data = simulate.tutorial_data(9, np.arange(200))
    phi = SPEC.basis(data.x)
    post = exact.posterior(phi, data.y, SPEC.prior, SPEC.noise.sigma)
    config = {"num_warmup": 300, "num_draws": 200, "num_chains": 4}
    fsm = sample_nuts(10, phi, data.y, SPEC.prior, SPEC.noise, NutsConfig(method="barrier_free", **config))
    ref = sample_nuts(11, phi, data.y, SPEC.prior, SPEC.noise, NutsConfig(method="vmap", **config))
    assert_equivalent(fsm, ref, post)


@pytest.mark.gpu
def test_gpu_lane_utilization_with_a_queue() -> None:
    """4000 lanes serving 40000 runs (10^4 datasets x 4 chains): lanes refill from the queue, so they
    are busy nearly all the time (the idle tail is the last runs' spread)."""
    _needs_gpu()
    data = simulate.tutorial_data(3, np.arange(10_000))
    result = sample_nuts(4, SPEC.basis(data.x), data.y, SPEC.prior, SPEC.noise,
                         NutsConfig(method="barrier_free", batch_size=4000), draw_stats=False)
    util = lane_utilization(*result.lanes)
    assert util["lanes"] == 4000 and util["runs"] == 40_000
    assert util["warmup"] > 0.9 and util["overall"] > 0.85, util
