#!/usr/bin/env python
"""Benchmark: per-dataset NUTS cost of this engine against the usual ways of fitting many datasets.

Engines (same model and settings for all: the tutorial model, N(0, 0.2) priors, known sigma 0.1,
11 points per dataset from the tutorial generator, diagonal mass matrix (--dense-mass: dense), target accept 0.8):

* ``engine``      bayeslin_jax.engine.sample_nuts on B datasets at once (one compiled program);
* ``engine_vmap`` the same engine with ``method="vmap"`` (runs in lock-step, the GPU layout) on the CPU;
* ``engine_barrier_free`` the same engine with ``method="barrier_free"`` (NUTS as a per-lane state
                  machine, one batched leapfrog per step, lanes never wait; ``--lanes`` lanes, runs queue up);
                  its row adds ``lane_utilization`` (useful leapfrogs / (steps x lanes), overall, warm-up, sampling);
* ``engine_target_accept`` the engine at the lower target acceptance rates of --target-accepts: NumPyro's dual
                  averaging ends warm-up with an achieved acceptance well above its target (the rows report
                  ``mean_accept`` and ``mean_step_size``, as the engine row does), so these show what a warm-up
                  that hits the target would buy (leapfrogs and slope ESS per dataset);
* ``engine_calibrated`` the engine with ``NutsConfig(calibrate_step_size=True)``: the warm-up that does hit its
                  target (NumPyro's adaptation, then 3 rounds of fixed-step calibration in the last 15 %);
* ``study``       bayeslin_jax.workflows.studies.run_study end to end (engine + diagnostics + exact + zarr store);
* ``mcmc_loop``   a Python loop of numpyro.infer.MCMC.run, one dataset per call (the common way;
                  ``jit_model_args=False``, numpyro's default, so each new dataset retraces);
* ``mcmc_loop_jit_args``  the same with ``jit_model_args=True`` (numpyro's advice for many datasets);
* ``jit_loop``    a Python loop over a hand-jitted single-dataset kernel (numpyro's functional
                  NUTS, chains vmapped), compiled once;
* ``pymc``        pm.sample per dataset (model built once, data swapped with pm.set_data; optional,
                  run with --pymc-python if PyMC lives in another environment);
* ``nutpie``      nutpie.sample per dataset (the PyMC model compiled once with ``nutpie.compile_pymc_model``,
                  numba backend; data swapped with ``compiled.with_data``), one row per --nutpie-cores value
                  (``cores``: chains run in that many threads), --nutpie-datasets datasets; nutpie's default
                  adaptation (diagonal mass matrix from draw and gradient variance), target accept 0.8;
                  leapfrogs per dataset from its ``n_steps`` (warm-up and sampling, all chains), and
                  ``raw_trace_per_dataset_s``: the same calls returning nutpie's raw trace (no conversion
                  to an xarray DataTree); optional, in the PyMC environment (``scripts/setup_pymc.sh``);
* ``exact``       the exact conjugate posterior + 4 x draws independent draws (lower bound);
* ``iterations``  the engine (its default method: ``lax.map`` on CPU) at several iteration counts
                  (--iterations, half warm-up, half draws) at --iterations-size datasets: warm calls
                  (best of --repeats) fit the time per (dataset, chain) run = ``intercept`` (fixed
                  s per run) + ``slope`` x iterations (counts >= 20; the fewest, 2, bounds the fixed
                  software cost directly); the leapfrog steps per run (warm-up counted
                  with NumPyro's kernel from the engine's own keys and initial points, sampling from
                  the engine's summaries) split the intercept into an algorithmic part (leapfrogs
                  beyond the per-iteration rate: deep early trees, short warm-ups) and software
                  overhead (initialisation, adaptation state, outputs);
* ``diagnostics`` diagnostics (R-hat, bulk/tail ESS, MCSE of mean and sd) per dataset at
                  4 chains x 100 and x 1000 draws: ArviZ on the host against the JAX twin that studies
                  and the SBC gate run on the device (its compile reported apart), and their largest difference;
                  AR(1) draws (autocorrelation 0.5). Wall and process CPU time (``*_cpu_*``; the
                  sweep reports both too): on a shared machine the CPU time is the steadier one.
* ``blackjax_map``, ``blackjax_vmap``  BlackJAX's ``window_adaptation`` + ``nuts`` on the same potential and settings,
                  over datasets with ``lax.map`` / lock-step ``vmap`` (chains vmapped), with its leapfrogs per
                  dataset (optional: ``pip install blackjax``);
* ``floor``       the floor of the engine's cost: a jitted ``lax.fori_loop`` of bare leapfrog steps (NumPyro's
                  velocity Verlet on the potential the engine differentiates, ``potential_energy`` of
                  ``linear_regression``; diagonal inverse mass of ones, float32), vmapped over --floor-lanes
                  lanes (one dataset per lane; 1 lane: unbatched, the per-run layout of ``"map"``), best of 3
                  warm calls: ``floor_s_per_leapfrog`` (seconds per leapfrog per lane, at the most lanes).
                  With ``floor`` in --engines the engine rows (``engine``, ``engine_vmap``,
                  ``engine_barrier_free``) also count their leapfrogs per dataset (all chains; sampling from
                  the draws' ``n_steps``, warm-up with NumPyro's kernel from the engine's keys on the first
                  --count-datasets datasets; barrier-free: its own lane counts, also the lane-steps it
                  executes) and the summary's ``floor`` entry gives ``floor_s_per_dataset`` = leapfrogs per
                  dataset x ``floor_s_per_leapfrog`` and ``engine_over_floor`` = engine s per dataset / that.

Every measurement runs in a fresh subprocess (clean peak memory and compile caches). Compile time
is the sum of JAX's compile events (trace + lowering + backend compile) during the call; run time
is wall time minus compile. The loops are timed on a few datasets (--baseline-datasets); their
per-dataset time is what a loop over B datasets would cost per dataset. ESS/s: mean bulk ESS of the
slope per dataset divided by the per-dataset run time. Memory: ``peak_rss_bytes`` (the worker's peak
resident set, including the ~0.3-0.5 GB of the imported libraries) and ``peak_device_bytes``
(``memory_stats()["peak_bytes_in_use"]`` of device 0; None on CPU, which has no such statistic), each
also divided by the datasets of the row (``*_per_dataset``), and ``peak_rss_above_imports_bytes_per_dataset``:
the peak less the resident set after importing the libraries, per dataset.

Examples::

    python scripts/benchmark.py --out scripts/results/benchmark_cpu.json        # CPU defaults
    python scripts/benchmark.py --quick --out /tmp/bench.json                     # smoke test
    python scripts/benchmark.py --sizes 1,1000,100000,1000000 --engines engine,exact --out gpu.json
    python scripts/benchmark.py --engines iterations,diagnostics --out /tmp/fixed.json  # fixed cost, diagnostics
    python scripts/benchmark.py --sizes 1000 --engines engine,floor --out scripts/results/benchmark_floor_cpu.json

The JSON's ``environment`` states the machine (CPU model, cores, ``platform.platform()``), the load
average at the start and the end, the command line (``argv``), the library versions and the dates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL_ENGINES = (
    "engine",
    "engine_vmap",
    "engine_barrier_free",
    "engine_target_accept",
    "engine_calibrated",
    "study",
    "mcmc_loop",
    "mcmc_loop_jit_args",
    "jit_loop",
    "pymc",
    "nutpie",
    "exact",
    "iterations",
    "diagnostics",
    "floor",
    "blackjax_map",
    "blackjax_vmap",
)
# rows of sample_nuts itself (floor: leapfrogs)
ENGINE_ROWS = ("engine", "engine_vmap", "engine_barrier_free", "engine_target_accept", "engine_calibrated")
LOOP_ENGINES = ("mcmc_loop", "mcmc_loop_jit_args", "jit_loop", "pymc")
FOREIGN_ENGINES = ("pymc", "nutpie")  # run in the PyMC environment (--pymc-python): numpy + PyMC, no JAX
SEED = 0


# ============================================================================ worker side


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _tutorial_data(num: int):
    """x, y: (num, 11) numpy arrays from the tutorial generator (dataset i from (SEED, i))."""
    import numpy as np

    from bayeslin_jax.core import simulate

    data = simulate.tutorial_data(SEED, np.arange(num))
    return np.asarray(data.x), np.asarray(data.y)


class _CompileClock:
    """Time spent compiling: the union of JAX's compile-event intervals (tracing, lowering, backend compile).

    Events nest (every jitted ``jnp`` function traced inside an outer trace reports its own tracing), so
    their durations are not summed: each event is the interval ``[end - duration, end]`` and overlapping
    intervals count once.
    """

    EVENTS = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration")

    def __init__(self) -> None:
        import jax

        self.intervals: list[tuple[float, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_) -> None:
        if event.rsplit("/", 1)[-1] in self.EVENTS:
            end = time.perf_counter()
            self.intervals.append((end - duration, end))

    @property
    def seconds(self) -> float:
        total, reach = 0.0, -float("inf")
        for start, end in sorted(self.intervals):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total

    def reset(self) -> float:
        seconds, self.intervals = self.seconds, []
        return seconds


def _slope_ess(w_draws, max_datasets: int = 1000) -> float:
    """Mean bulk ESS of the slope over the first ``max_datasets`` datasets. ``w_draws: (B, C, S, 2)``."""
    import numpy as np

    from bayeslin_jax.diagnostics.device import summarize_rows

    return float(np.nanmean(np.asarray(summarize_rows(w_draws[:max_datasets][..., 1])["ess_bulk"])))


def _device_peak() -> int | None:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _nuts_config(task: dict):
    from bayeslin_jax.engine import NutsConfig

    return NutsConfig(
        num_warmup=task["warmup"],
        num_draws=task["draws"],
        num_chains=task["chains"],
        dense_mass=task["dense_mass"],
        target_accept=task.get("target_accept", 0.8),
        calibrate_step_size=task["engine"] == "engine_calibrated",
        method={"engine_vmap": "vmap", "engine_barrier_free": "barrier_free"}.get(task["engine"], "auto"),
        batch_size=task.get("lanes") if task["engine"] == "engine_barrier_free" else None,
    )


def _batch_result(wall: float, compile_s: float, num_datasets: int, slope_ess: float) -> dict:
    """One timed call over a whole batch: run time is wall time minus compile time."""
    import jax

    return {
        "wall_s": wall,
        "compile_s": compile_s,
        "run_s": wall - compile_s,
        "datasets_timed": num_datasets,
        "slope_ess_bulk": slope_ess,
        "devices": jax.local_device_count(),
    }


def work_engine(task: dict) -> dict:
    import jax
    import numpy as np

    from bayeslin_jax.core import priors
    from bayeslin_jax.engine import sample_nuts

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["B"])
    phi, y = spec.basis(jax.numpy.asarray(x)), jax.numpy.asarray(y)
    clock.reset()
    t0 = time.perf_counter()
    result = sample_nuts(SEED, phi, y, spec.prior, spec.noise, _nuts_config(task))
    jax.block_until_ready(result)
    wall = time.perf_counter() - t0
    out = _batch_result(wall, clock.reset(), task["B"], _slope_ess(result.samples["w"]))
    out["mean_accept"] = float(np.mean(np.asarray(result.stats["acceptance_rate"])))  # achieved, after warm-up
    out["mean_step_size"] = float(np.mean(np.asarray(result.stats["step_size"])))
    if result.lanes is not None:
        from bayeslin_jax.engine.barrier_free import lane_utilization

        out["lane_utilization"] = lane_utilization(*result.lanes)
    if task.get("count_leapfrogs"):  # after the timed call (its compile is not in the row's times)
        out |= _engine_leapfrogs(result, phi, y, spec, _nuts_config(task), min(task["B"], task["count_leapfrogs"]))
    return out


def _engine_leapfrogs(result, phi, y, spec, config, counted: int) -> dict:
    """Leapfrog steps per dataset (all chains) of an engine call: warm-up, sampling and their sum.

    Sampling: the draws' ``n_steps`` over all datasets. Warm-up (the engine keeps no warm-up statistics):
    NumPyro's kernel from the engine's keys and initial points (:func:`_warmup_leapfrogs`) on the first
    ``counted`` datasets: the engine's chains up to rounding (another compiled program, and NUTS turns an ulp
    into another trajectory: the counts agree in distribution, not draw by draw).
    ``"barrier_free"``: its own lane counts, exact, and ``executed_lane_steps_per_dataset`` (lanes x loop
    steps, idle lanes included: what the FSM computes).
    """
    import numpy as np

    num_datasets = result.samples["w"].shape[0]
    if result.lanes is not None:
        warm = sum(float(np.asarray(c.warmup_steps).sum()) for c in result.lanes)
        sampling = sum(float(np.asarray(c.sampling_steps).sum()) for c in result.lanes)
        executed = sum(int(c.lanes) * int(c.loop_steps) for c in result.lanes)
        return {
            "warmup_leapfrogs_per_dataset": warm / num_datasets,
            "sampling_leapfrogs_per_dataset": sampling / num_datasets,
            "leapfrogs_per_dataset": (warm + sampling) / num_datasets,
            "executed_lane_steps_per_dataset": executed / num_datasets,
            "leapfrogs_counted_datasets": num_datasets,
            "leapfrogs_source": "barrier_free lane counts",
        }
    sampling = float(np.asarray(result.stats["n_steps"], dtype=np.float64).sum((1, 2)).mean())
    warm = float(np.asarray(_warmup_leapfrogs(phi, y, spec, config, counted), dtype=np.float64).sum()) / counted
    return {
        "warmup_leapfrogs_per_dataset": warm,
        "sampling_leapfrogs_per_dataset": sampling,
        "leapfrogs_per_dataset": warm + sampling,
        "leapfrogs_counted_datasets": counted,
        "leapfrogs_source": "sampling: draws' n_steps (all datasets); warm-up: NumPyro's kernel, engine's keys",
    }


def work_study(task: dict) -> dict:

    from bayeslin_jax.core import priors
    from bayeslin_jax.workflows.studies import run as study

    clock = _CompileClock()
    with tempfile.TemporaryDirectory() as tmp:
        clock.reset()
        t0 = time.perf_counter()
        settings = study.StudyConfig(num_datasets=task["B"], seed=SEED, simulator="tutorial", nuts=_nuts_config(task))
        ds = study.run_study(Path(tmp) / "s.zarr", priors.tutorial_spec(), settings, progress=False)
        wall = time.perf_counter() - t0
        ess = float(ds["ess_bulk"].sel(feature="m").mean())
        timings = dict(ds.attrs["run_timings"])
    return {**_batch_result(wall, clock.reset(), task["B"], ess), "stage_seconds": timings}


def work_exact(task: dict) -> dict:
    import jax
    import jax.numpy as jnp

    from bayeslin_jax.core import exact, keys, priors

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["B"])
    num_draws = task["chains"] * task["draws"]

    @jax.jit
    def run(x, y, idx):
        phi = spec.basis(x)
        post = exact.posterior(phi, y, spec.prior, spec.noise.sigma)
        return exact.sample_batch(keys.dataset_keys(SEED, keys.EXACT, idx), post, num_draws)

    args = (jnp.asarray(x), jnp.asarray(y), jnp.arange(task["B"]))
    clock.reset()
    t0 = time.perf_counter()
    jax.block_until_ready(run(*args))
    wall = time.perf_counter() - t0
    compile_s = clock.reset()
    warm = []
    while len(warm) < 5 and sum(warm) < 5.0:  # fast and noisy: best of a few warm calls
        t0 = time.perf_counter()
        jax.block_until_ready(run(*args))
        warm.append(time.perf_counter() - t0)
    return {
        "wall_s": wall,
        "compile_s": compile_s,
        "run_s": min(warm),
        "datasets_timed": task["B"],
        "slope_ess_bulk": float(num_draws),
        "devices": 1,
    }


def _loop_result(times: list[float], compile_s: float, ess: float) -> dict:
    import numpy as np

    warm = times[1:] if len(times) > 1 else times
    return {
        "wall_s": float(sum(times)),
        "compile_s": compile_s,
        "run_s": float(np.sum(warm)),
        "datasets_timed": len(warm),
        "first_dataset_s": times[0],
        "per_dataset_all_s": float(np.mean(times)),
        "slope_ess_bulk": ess,
    }


def work_mcmc_loop(task: dict) -> dict:
    import jax
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    from bayeslin_jax.core import priors
    from bayeslin_jax.core.regressions import linear_regression

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["n"])
    kernel = NUTS(linear_regression, dense_mass=task["dense_mass"], target_accept_prob=0.8, max_tree_depth=10)
    mcmc = MCMC(
        kernel,
        num_warmup=task["warmup"],
        num_samples=task["draws"],
        num_chains=task["chains"],
        chain_method="sequential",
        progress_bar=False,
        jit_model_args=task["engine"] == "mcmc_loop_jit_args",
    )
    times, ess = [], []
    clock.reset()
    for i in range(task["n"]):
        phi = np.asarray(spec.basis(x[i]))
        t0 = time.perf_counter()
        mcmc.run(jax.random.key(i), phi, y[i], spec.prior, spec.noise)
        w = mcmc.get_samples(group_by_chain=True)["w"]
        jax.block_until_ready(w)
        times.append(time.perf_counter() - t0)
        ess.append(_slope_ess(np.asarray(w)[None]))
    out = _loop_result(times, clock.reset(), float(np.mean(ess)))
    out["compile_s_per_dataset"] = out["compile_s"] / task["n"]
    return out


def work_jit_loop(task: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import potential_energy

    from bayeslin_jax.core import priors
    from bayeslin_jax.core.regressions import linear_regression

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["n"])
    warmup, draws, chains = task["warmup"], task["draws"], task["chains"]

    def one_chain(key, phi, y_obs):
        args = (phi, y_obs, spec.prior, spec.noise)
        init_key, run_key = jax.random.split(key)
        init_kernel, sample_kernel = hmc(
            potential_fn_gen=lambda *a: lambda z: potential_energy(linear_regression, a, {}, z), algo="NUTS"
        )
        z0 = {"w": jax.random.uniform(init_key, (2,), minval=-2.0, maxval=2.0)}
        state = init_kernel(
            z0,
            warmup,
            dense_mass=task["dense_mass"],
            target_accept_prob=0.8,
            max_tree_depth=10,
            model_args=args,
            rng_key=run_key,
        )
        state, _ = jax.lax.scan(lambda s, _: (sample_kernel(s, model_args=args), None), state, length=warmup)

        def draw(s, _):
            s = sample_kernel(s, model_args=args)
            return s, s.z["w"]

        return jax.lax.scan(draw, state, length=draws)[1]

    @jax.jit
    def fit_one(key, phi, y_obs):
        return jax.vmap(one_chain, in_axes=(0, None, None))(jax.random.split(key, chains), phi, y_obs)

    times, ess = [], []
    clock.reset()
    for i in range(task["n"]):
        phi = spec.basis(jnp.asarray(x[i]))
        t0 = time.perf_counter()
        w = jax.block_until_ready(fit_one(jax.random.key(i), phi, jnp.asarray(y[i])))
        times.append(time.perf_counter() - t0)
        ess.append(_slope_ess(np.asarray(w)[None]))
    return _loop_result(times, clock.reset(), float(np.mean(ess)))


def _pymc_tutorial_model(data_file: str):
    """``(x, y, model)``: the datasets of ``data_file`` and the tutorial model in PyMC, data as ``pm.Data`` x, y."""
    import numpy as np
    import pymc as pm

    data = np.load(data_file)
    x, y = data["x"], data["y"]
    with pm.Model() as model:
        x_data = pm.Data("x", x[0])
        y_data = pm.Data("y", y[0])
        b = pm.Normal("b", 0.0, 0.2)
        m = pm.Normal("m", 0.0, 0.2)
        pm.Normal("obs", mu=m * x_data + b, sigma=0.1, observed=y_data)
    return x, y, model


def work_pymc(task: dict) -> dict:
    """Needs only numpy + PyMC (may run in another environment); data comes in task['data_file']."""
    import numpy as np

    try:
        import pymc as pm
    except ImportError as err:
        return {"skipped": f"pymc not importable: {err}"}
    x, y, model = _pymc_tutorial_model(task["data_file"])
    times, ess = [], []
    for i in range(task["n"]):
        t0 = time.perf_counter()
        with model:
            pm.set_data({"x": x[i], "y": y[i]})
            init = "jitter+adapt_full" if task["dense_mass"] else "jitter+adapt_diag"
            idata = pm.sample(
                draws=task["draws"],
                tune=task["warmup"],
                chains=task["chains"],
                cores=1,
                init=init,
                random_seed=i,
                progressbar=False,
                compute_convergence_checks=False,
                target_accept=0.8,
            )
        times.append(time.perf_counter() - t0)
        try:
            from bayeslin_jax.diagnostics.host import chain_diagnostics

            slope = np.asarray(idata.posterior["m"])  # (chain, draw)
            ess.append(float(chain_diagnostics(slope[None])["ess_bulk"][0]))
        except ImportError:  # PyMC's own environment (no JAX): its ArviZ computes the same bulk ESS
            import arviz as az

            ess.append(float(az.ess(idata, var_names=["m"])["m"]))
    out = _loop_result(times, 0.0, float(np.mean(ess)))
    out["compile_s"] = times[0] - out["run_s"] / max(out["datasets_timed"], 1)  # first call minus a warm one
    out["pymc_version"] = pm.__version__
    return out


def work_nutpie(task: dict) -> dict:
    """nutpie on the PyMC model of :func:`work_pymc`, compiled once; needs only numpy + PyMC + nutpie.

    Per dataset (data from task['data_file']): ``compiled.with_data(x=..., y=...)`` and ``nutpie.sample``
    (``task['cores']`` threads, seed = dataset index, nutpie's default ``"diag"`` adaptation, target accept 0.8,
    ``save_warmup=True`` for the warm-up statistics), timed together. The first dataset is reported apart:
    ``compile_s`` = ``compile_model_s`` (``compile_pymc_model``) + the first call's time minus a warm one's.
    Leapfrogs per dataset (all chains): the sum of ``n_steps`` in ``warmup_sample_stats`` and ``sample_stats``.
    ``raw_trace_per_dataset_s``: the warm datasets again with ``return_raw_trace=True`` (the sampler without the
    conversion of its Arrow trace to an xarray DataTree).
    """
    import numpy as np

    try:
        import nutpie
        import pymc as pm
    except ImportError as err:
        return {"skipped": f"nutpie not importable: {err}"}
    x, y, model = _pymc_tutorial_model(task["data_file"])
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_model_s = time.perf_counter() - t0
    settings = {"draws": task["draws"], "tune": task["warmup"], "chains": task["chains"], "cores": task["cores"],
                "progress_bar": False, "save_warmup": True, "target_accept": 0.8, "maxdepth": 10}
    if task["dense_mass"]:
        settings["adaptation"] = "low_rank"  # nutpie has no dense adaptation; low rank + diagonal is the closest

    def call(i: int, **extra):
        return nutpie.sample(compiled.with_data(x=x[i], y=y[i]), seed=i, **settings, **extra)

    times, ess, warm_steps, draw_steps = [], [], [], []
    for i in range(task["n"]):
        t0 = time.perf_counter()
        trace = call(i)
        times.append(time.perf_counter() - t0)
        warm_steps.append(float(np.asarray(trace["warmup_sample_stats"]["n_steps"], np.float64).sum()))
        draw_steps.append(float(np.asarray(trace["sample_stats"]["n_steps"], np.float64).sum()))
        try:
            from bayeslin_jax.diagnostics.host import chain_diagnostics

            slope = np.asarray(trace["posterior"]["m"])  # (chain, draw)
            ess.append(float(chain_diagnostics(slope[None])["ess_bulk"][0]))
        except ImportError:  # PyMC's own environment (no JAX): its ArviZ computes the same bulk ESS
            import arviz as az

            ess.append(float(az.ess(trace, var_names=["m"])["m"]))
    raw = []
    for i in range(1, task["n"]):
        t0 = time.perf_counter()
        call(i, return_raw_trace=True)
        raw.append(time.perf_counter() - t0)
    out = _loop_result(times, 0.0, float(np.mean(ess)))
    first_extra = times[0] - out["run_s"] / max(out["datasets_timed"], 1)  # first call minus a warm one
    warm, sampling = float(np.mean(warm_steps)), float(np.mean(draw_steps))
    out |= {
        "compile_s": compile_model_s + first_extra,
        "compile_model_s": compile_model_s,
        "first_call_extra_s": first_extra,
        "raw_trace_per_dataset_s": float(np.mean(raw)) if raw else None,
        "warmup_leapfrogs_per_dataset": warm,
        "sampling_leapfrogs_per_dataset": sampling,
        "leapfrogs_per_dataset": warm + sampling,
        "leapfrogs_counted_datasets": task["n"],
        "leapfrogs_source": "nutpie's n_steps (warmup_sample_stats + sample_stats, all chains)",
        "adaptation": settings.get("adaptation", "diag"),
        "nutpie_version": nutpie.__version__,
        "pymc_version": pm.__version__,
    }
    return out


def _warmup_leapfrogs(phi, y, spec, config, num_datasets: int):
    """Leapfrog steps per warm-up iteration ``(R, num_warmup)`` of the first runs, from the engine's initial points.

    The engine's own :func:`~bayeslin_jax.engine.nuts.warmup` with its settings, keys and initial points
    (``initial_point``): the same Markov chains as the engine's warm-up (the engine keeps no warm-up statistics).
    """
    from functools import partial

    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from bayeslin_jax.core.regressions import linear_regression
    from bayeslin_jax.engine.nuts import initial_point, run_keys, warmup

    chains = config.num_chains
    dim = phi.shape[-1]
    latent = (("w", (dim,)),) if spec.known_sigma else (("sigma", ()), ("w", (dim,)))

    def potential_fn_gen(*args, **kwargs):  # as the engine's (engine.sampling): NumPyro's potential of the model
        return partial(potential_energy, linear_regression, args, kwargs)

    def one(key, phi_run, y_run):
        z0, sample_key = initial_point(key, latent, phi_run.dtype, config)
        kwargs = {"y": y_run, "prior": spec.prior, "noise": spec.noise}
        return warmup(potential_fn_gen, z0, sample_key, config, (phi_run,), kwargs)[2]

    keys = run_keys(SEED, jnp.arange(num_datasets), chains)
    runs = (keys, jnp.repeat(phi[:num_datasets], chains, axis=0), jnp.repeat(y[:num_datasets], chains, axis=0))
    return jax.jit(lambda k, p, yy: jax.lax.map(lambda xs: one(*xs), (k, p, yy)))(*runs)


def _fit_line(x, y) -> tuple[float, float]:
    """Least-squares ``y = intercept + slope * x`` -> (slope, intercept)."""
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


def work_iterations(task: dict) -> dict:
    """Engine time per run against iterations; leapfrog counts split the intercept."""
    import jax
    import numpy as np

    from bayeslin_jax.core import priors
    from bayeslin_jax.engine import NutsConfig, sample_nuts

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["B"])
    phi, y = spec.basis(jax.numpy.asarray(x)), jax.numpy.asarray(y)
    runs = task["B"] * task["chains"]
    points = []
    for iterations in sorted(task["iterations"]):
        warmup = max(iterations // 2, 1)
        config = NutsConfig(num_warmup=warmup, num_draws=max(iterations - warmup, 1), num_chains=task["chains"],
                            dense_mass=task["dense_mass"])

        def call(config=config):
            return jax.block_until_ready(sample_nuts(SEED, phi, y, spec.prior, spec.noise, config, draw_stats=False))

        clock.reset()
        t0 = time.perf_counter()
        result = call()
        cold, compile_s = time.perf_counter() - t0, clock.reset()
        warm, warm_cpu = [], []
        for _ in range(task["repeats"]):
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            warm.append(time.perf_counter() - t0)
            warm_cpu.append(time.process_time() - c0)
        counted = min(task["B"], task["count_datasets"])
        warmup_steps = np.asarray(_warmup_leapfrogs(phi, y, spec, config, counted))  # (R', warmup)
        sampling = float(np.asarray(result.stats["mean_leapfrog"]).mean()) * config.num_draws
        points.append({
            "iterations": config.num_warmup + config.num_draws,
            "warmup": config.num_warmup,
            "draws": config.num_draws,
            "compile_s": compile_s,
            "cold_run_s": cold - compile_s,
            "run_s": min(warm),
            "per_run_s": min(warm) / runs,
            "per_run_cpu_s": min(warm_cpu) / runs,  # the process's CPU time: less disturbed on a shared machine
            "warmup_leapfrogs_per_run": float(warmup_steps.sum(1).mean()),
            "warmup_leapfrogs_first_10_per_run": float(warmup_steps[:, :10].sum(1).mean()),
            "sampling_leapfrogs_per_run": sampling,
            "leapfrogs_per_run": float(warmup_steps.sum(1).mean()) + sampling,
        })
    # the fixed cost of a call (keys, layout, dispatch): one dataset at the fewest iterations, best of 5 warm calls
    one = NutsConfig(num_warmup=points[0]["warmup"], num_draws=points[0]["draws"], num_chains=task["chains"],
                     dense_mass=task["dense_mass"])
    per_call = []
    for _ in range(6):
        t0 = time.perf_counter()
        jax.block_until_ready(sample_nuts(SEED, phi[:1], y[:1], spec.prior, spec.noise, one, draw_stats=False))
        per_call.append(time.perf_counter() - t0)
    fit = [p for p in points if p["iterations"] >= 20]  # fewer: warm-up too short to adapt, kept as a bound
    fit = fit if len(fit) >= 2 else points
    iters = [p["iterations"] for p in fit]
    slope, intercept = _fit_line(iters, [p["per_run_s"] for p in fit])
    leap_slope, leap_intercept = _fit_line(iters, [p["leapfrogs_per_run"] for p in fit])
    cpu_slope, cpu_intercept = _fit_line(iters, [p["per_run_cpu_s"] for p in fit])
    # the leapfrogs beyond the per-iteration rate, valued at the average cost of a leapfrog in an iteration
    algorithmic = leap_intercept * slope / leap_slope
    algorithmic_cpu = leap_intercept * cpu_slope / leap_slope
    return {
        "datasets_timed": task["B"],
        "runs": runs,
        "leapfrogs_counted_runs": min(task["B"], task["count_datasets"]) * task["chains"],
        "points": points,
        "fit_iterations": iters,
        "slope_s_per_iteration": slope,
        "intercept_s_per_run": intercept,
        "intercept_in_iterations": intercept / slope,
        "cpu_slope_s_per_iteration": cpu_slope,
        "cpu_intercept_s_per_run": cpu_intercept,
        "leapfrogs_per_iteration": leap_slope,
        "leapfrog_intercept_per_run": leap_intercept,
        "fixed_algorithmic_s_per_run": algorithmic,
        "fixed_software_s_per_run": intercept - algorithmic,
        "fixed_algorithmic_cpu_s_per_run": algorithmic_cpu,
        "fixed_software_cpu_s_per_run": cpu_intercept - algorithmic_cpu,
        # direct bounds, robust to a noisy fit: a run of the fewest iterations (init, adaptation state, outputs
        # and those few iterations) bounds the software part; the first call's extra (allocation, first
        # execution) is paid once per call (per chunk), not per run
        "fewest_iterations": points[0]["iterations"],
        "per_run_s_at_fewest_iterations": points[0]["per_run_s"],
        "per_run_cpu_s_at_fewest_iterations": points[0]["per_run_cpu_s"],
        "first_call_extra_s": float(np.median([p["cold_run_s"] - p["run_s"] for p in points])),
        "call_s_one_dataset_fewest_iterations": min(per_call[1:]),
        "method": config.resolved_method(),
        "devices": jax.local_device_count(),
    }


def _ar1_draws(num: int, chains: int, draws: int, seed: int = 0):
    """``(num, chains, draws)`` AR(1) series (autocorrelation 0.5, unit variance), like NUTS draws."""
    import numpy as np

    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(num, chains, draws))
    out = np.empty_like(noise)
    out[..., 0] = noise[..., 0]
    for t in range(1, draws):
        out[..., t] = 0.5 * out[..., t - 1] + np.sqrt(0.75) * noise[..., t]
    return out


def work_diagnostics(task: dict) -> dict:
    """Diagnostics per dataset: ArviZ on the host (``diagnostics.host``) against the JAX twin studies and the
    SBC gate run on the device (``diagnostics.device.summarize_rows``, compile reported apart), one process."""
    import jax
    import numpy as np

    from bayeslin_jax.diagnostics import device, host

    out: dict = {"datasets_timed": task["B"], "chains": task["chains"], "platform": jax.default_backend()}
    for draws in task["draws_list"]:
        x = _ar1_draws(task["B"], task["chains"], draws)
        t0 = time.perf_counter()
        jax.block_until_ready(device.summarize_rows(x[:1].astype(np.float32)))  # the one block program
        entry = {"device_compile_s": time.perf_counter() - t0}
        results = {}
        for name, fn in (("host", host.chain_diagnostics),
                         ("device", lambda a: jax.block_until_ready(device.summarize_rows(a.astype(np.float32))))):
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = {k: np.asarray(v, dtype=float) for k, v in fn(x).items()}
            entry[f"{name}_ms_per_dataset"] = (time.perf_counter() - t0) / task["B"] * 1e3
            entry[f"{name}_cpu_ms_per_dataset"] = (time.process_time() - c0) / task["B"] * 1e3
        entry["device_speedup"] = entry["host_ms_per_dataset"] / entry["device_ms_per_dataset"]
        entry["max_rel_diff"] = max(
            float(np.nanmax(np.abs(results["device"][k] - results["host"][k]) / np.abs(results["host"][k])))
            for k in host.DIAGNOSTIC_NAMES
        )
        out[f"draws_{draws}"] = entry
    return out


def work_blackjax(task: dict) -> dict:
    """BlackJAX (``window_adaptation`` + ``nuts``), the peer a JAX user would pick, on the same model and settings.

    The log density is ``-potential_energy`` of ``linear_regression`` (the engine's own potential); per dataset,
    ``chains`` chains vmapped, each ``window_adaptation(blackjax.nuts, target_acceptance_rate=0.8)`` for ``warmup``
    steps (Stan's windows: fast, slow doubling, fast), then ``draws`` NUTS steps with the adapted step size and
    diagonal inverse mass. Layouts over datasets: ``"map"`` (``lax.map``, as the engine on CPU) and ``"vmap"``
    (lock-step). Initial points uniform on [-2, 2] as the engine's. Leapfrogs per dataset from the infos'
    ``num_integration_steps`` (warm-up and sampling, all chains). Needs ``pip install blackjax``.
    """
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer.util import potential_energy

    from bayeslin_jax.core import priors
    from bayeslin_jax.core.regressions import linear_regression

    clock = _CompileClock()
    spec = priors.tutorial_spec()
    x, y = _tutorial_data(task["B"])
    phi, y = spec.basis(jnp.asarray(x)), jnp.asarray(y)
    warmup, draws, chains = task["warmup"], task["draws"], task["chains"]

    def one_dataset(key, phi_i, y_i):
        def logdensity(w):
            return -potential_energy(linear_regression, (phi_i,), {"y": y_i, "prior": spec.prior, "noise": spec.noise},
                                     {"w": w})

        def one_chain(chain_key):
            init_key, warm_key, draw_key = jax.random.split(chain_key, 3)
            position = jax.random.uniform(init_key, (phi_i.shape[-1],), phi_i.dtype, -2.0, 2.0)
            adaptation = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=0.8)
            (state, params), warm_info = adaptation.run(warm_key, position, num_steps=warmup)
            kernel = blackjax.nuts(logdensity, **params).step

            def step(state, step_key):
                state, info = kernel(step_key, state)
                return state, (state.position, info.num_integration_steps)

            _, (positions, steps) = jax.lax.scan(step, state, jax.random.split(draw_key, draws))
            return positions, warm_info.info.num_integration_steps.sum(), steps.sum()

        positions, warm_steps, draw_steps = jax.vmap(one_chain)(jax.random.split(key, chains))
        return positions, warm_steps.sum(), draw_steps.sum()

    keys = jax.random.split(jax.random.key(SEED), task["B"])
    layout = task["engine"].removeprefix("blackjax_")
    if layout == "map":
        fn = jax.jit(lambda k, p, yy: jax.lax.map(lambda a: one_dataset(*a), (k, p, yy)))
    else:
        fn = jax.jit(jax.vmap(one_dataset))
    clock.reset()
    t0 = time.perf_counter()
    positions, warm_steps, draw_steps = jax.block_until_ready(fn(keys, phi, y))
    wall = time.perf_counter() - t0
    out = _batch_result(wall, clock.reset(), task["B"], _slope_ess(positions))
    warm, sampling = float(np.asarray(warm_steps, np.float64).mean()), float(np.asarray(draw_steps, np.float64).mean())
    out |= {"warmup_leapfrogs_per_dataset": warm, "sampling_leapfrogs_per_dataset": sampling,
            "leapfrogs_per_dataset": warm + sampling, "layout": layout, "blackjax": blackjax.__version__}
    return out


def work_floor(task: dict) -> dict:
    """The floor: bare leapfrog steps of the tutorial model in a jitted ``fori_loop``, vmapped over lanes.

    One step is NumPyro's velocity Verlet (half kick, drift with a diagonal inverse mass, ``value_and_grad`` of
    the potential, half kick) on the potential the engine differentiates: ``potential_energy`` of
    ``linear_regression`` with ``(phi,)``, ``y``, ``prior`` and ``noise`` as arguments (prior and noise
    shared, phi and y one tutorial dataset per lane). Float32, step size 0.02 (stable: the posterior's
    smallest sd is ~0.03). Per lane count: ``steps`` steps (default ~2^22 lane-steps, at most 2^18 steps),
    the first call compiles, then the best of 3 warm calls (wall and process CPU time).
    """
    from functools import partial

    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer.util import potential_energy

    from bayeslin_jax.core import priors
    from bayeslin_jax.core.regressions import linear_regression

    clock = _CompileClock()
    spec = priors.tutorial_spec()

    def potential(z, phi, y_obs, prior, noise):
        return potential_energy(linear_regression, (phi,), {"y": y_obs, "prior": prior, "noise": noise}, {"w": z})

    value_and_grad = jax.value_and_grad(potential)

    def leapfrogs(z, r, phi, y_obs, prior, noise, *, num_steps: int):
        inv_mass, step_size = jnp.ones_like(z), jnp.asarray(0.02, z.dtype)

        def step(_, state):
            z, r, _pe, grad = state
            r = r - 0.5 * step_size * grad
            z = z + step_size * inv_mass * r
            pe, grad = value_and_grad(z, phi, y_obs, prior, noise)
            return z, r - 0.5 * step_size * grad, pe, grad

        pe, grad = value_and_grad(z, phi, y_obs, prior, noise)
        return jax.lax.fori_loop(0, num_steps, step, (z, r, pe, grad))

    def unbatched(one, z, r, phi, y_obs, prior, noise):
        return jax.tree.map(lambda a: a[None], one(z[0], r[0], phi[0], y_obs[0], prior, noise))

    by_lanes = []
    for lanes in task["lanes_list"]:
        steps = task.get("steps") or int(np.clip(2**22 // lanes, 256, 2**18))
        x, y = _tutorial_data(lanes)
        phi, y = spec.basis(jnp.asarray(x)), jnp.asarray(y)
        key_z, key_r = jax.random.split(jax.random.key(SEED))
        z0 = jax.random.uniform(key_z, (lanes, phi.shape[-1]), phi.dtype, -2.0, 2.0)
        r0 = jax.random.normal(key_r, (lanes, phi.shape[-1]), phi.dtype)
        one = partial(leapfrogs, num_steps=steps)
        # 1 lane: unbatched, one run's leapfrogs as the engine's "map" layout runs them
        fn = jax.jit(partial(unbatched, one) if lanes == 1 else jax.vmap(one, in_axes=(0, 0, 0, 0, None, None)))
        args = (z0, r0, phi, y, spec.prior, spec.noise)
        clock.reset()
        t0 = time.perf_counter()
        final = jax.block_until_ready(fn(*args))
        first, compile_s = time.perf_counter() - t0, clock.reset()
        warm, warm_cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            warm.append(time.perf_counter() - t0)
            warm_cpu.append(time.process_time() - c0)
        lane_steps = steps * lanes
        by_lanes.append({
            "lanes": lanes,
            "steps": steps,
            "compile_s": compile_s,
            "first_call_s": first,
            "best_s": min(warm),
            "best_cpu_s": min(warm_cpu),
            "s_per_leapfrog": min(warm) / lane_steps,  # per lane: one lane's leapfrog
            "cpu_s_per_leapfrog": min(warm_cpu) / lane_steps,
            "s_per_loop_step": min(warm) / steps,  # one step of all lanes
            "finite": bool(np.isfinite(np.asarray(final[2])).all()),
        })
    widest = max(by_lanes, key=lambda e: e["lanes"])
    out = {
        "floor_lanes": widest["lanes"],
        "floor_s_per_leapfrog": widest["s_per_leapfrog"],
        "floor_cpu_s_per_leapfrog": widest["cpu_s_per_leapfrog"],
        "by_lanes": by_lanes,
        "compile_s": sum(e["compile_s"] for e in by_lanes),
        "dtype": str(jnp.zeros(()).dtype),
    }
    single = [e for e in by_lanes if e["lanes"] == 1]
    if single:
        out["floor_s_per_leapfrog_1_lane"] = single[0]["s_per_leapfrog"]
    return out


def worker_main(task: dict) -> dict:
    fn = {
        "engine": work_engine,
        "engine_vmap": work_engine,
        "engine_barrier_free": work_engine,
        "engine_target_accept": work_engine,
        "engine_calibrated": work_engine,
        "study": work_study,
        "exact": work_exact,
        "mcmc_loop": work_mcmc_loop,
        "mcmc_loop_jit_args": work_mcmc_loop,
        "jit_loop": work_jit_loop,
        "pymc": work_pymc,
        "nutpie": work_nutpie,
        "iterations": work_iterations,
        "diagnostics": work_diagnostics,
        "floor": work_floor,
        "blackjax_map": work_blackjax,
        "blackjax_vmap": work_blackjax,
    }[task["engine"]]
    baseline = None
    if task["engine"] not in FOREIGN_ENGINES:  # the libraries' share of the peak: imported before any work
        import bayeslin_jax.diagnostics.host  # noqa: F401  (imports jax, numpyro, arviz)

        baseline = _peak_rss_bytes()
    out = fn(task)
    out["peak_rss_bytes"] = _peak_rss_bytes()
    out["rss_after_imports_bytes"] = baseline
    if task["engine"] not in (*FOREIGN_ENGINES, "diagnostics"):
        out["peak_device_bytes"] = _device_peak()
    return out


# ============================================================================ driver side


def _run_task(task: dict, python: str, env_extra: dict[str, str], timeout: float, script: Path | None = None) -> dict:
    """``script --worker TASK`` (this file by default) in a fresh process; its last JSON line, or an error row."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env_extra}
    cmd = [python, str(Path(script or __file__).resolve()), "--worker", json.dumps(task)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout:.0f} s"}
    total = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    out = json.loads(lines[-1])
    out["process_s"] = total
    return out


def _derive(row: dict) -> dict:
    datasets = row.get("B", row.get("n"))
    for key in ("peak_rss_bytes", "peak_device_bytes"):
        if datasets and row.get(key) is not None:
            row[f"{key}_per_dataset"] = row[key] / datasets
    if datasets and row.get("rss_after_imports_bytes") is not None and "peak_rss_bytes" in row:
        above = row["peak_rss_bytes"] - row["rss_after_imports_bytes"]  # includes XLA's compile-time peak
        row["peak_rss_above_imports_bytes_per_dataset"] = above / datasets
    if row.get("engine") in ("iterations", "diagnostics", "floor"):
        return row
    n = row.get("datasets_timed")
    if n and "run_s" in row:
        row["per_dataset_s"] = row["run_s"] / n
        row["datasets_per_s"] = n / row["run_s"] if row["run_s"] > 0 else None
        if row.get("slope_ess_bulk"):
            row["slope_ess_per_s"] = row["slope_ess_bulk"] / row["per_dataset_s"]
    return row


def _cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``; else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() in ("model name", "Model", "cpu model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _environment(args) -> dict:
    import jax
    import jaxlib
    import numpyro

    import bayeslin_jax

    info = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "argv": list(sys.argv),
        "python_executable": sys.executable,
        "cwd": os.getcwd(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "machine": platform.machine(),
        "platform_string": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_start": os.getloadavg(),
        "env": {k: os.environ[k] for k in ("XLA_FLAGS", "JAX_ENABLE_X64", "JAX_PLATFORMS", "OMP_NUM_THREADS")
                if k in os.environ},
        "python": platform.python_version(),
        "versions": {"bayeslin_jax": bayeslin_jax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "numpyro": numpyro.__version__},
        "platform": jax.default_backend(),
        "devices": [str(d) for d in jax.local_devices()],
        "device_kind": jax.local_devices()[0].device_kind,
        "settings": {
            "model": "tutorial (linear, N(0, 0.2) priors, known sigma 0.1, 11 points)",
            "chains": args.chains,
            "warmup": args.warmup,
            "draws": args.draws,
            "dense_mass": args.dense_mass,
            "target_accept": 0.8,
            "max_tree_depth": 10,
        },
    }
    return info


def _summary(rows: list[dict], sizes: list[int]) -> dict:
    def find(engine: str, size: int | None = None, chains: int | None = None, devices: int = 1):
        for r in rows:
            if r["engine"] != engine or "per_dataset_s" not in r or r.get("cpu_devices", 1) != devices:
                continue
            if (size is None or r.get("B") == size) and (chains is None or r["chains"] == chains):
                return r
        return None

    chains = rows[0]["chains"] if rows else 4
    out: dict = {}
    floor = next((r for r in rows if r["engine"] == "floor" and "floor_s_per_leapfrog" in r), None)

    def over_floor(row: dict) -> dict:
        """An engine row against the floor: its leapfrogs per dataset at the floor's cost per leapfrog."""
        if floor is None or not row.get("leapfrogs_per_dataset") or "per_dataset_s" not in row:
            return {}
        leapfrogs, per_dataset = row["leapfrogs_per_dataset"], row["per_dataset_s"]
        floor_s = leapfrogs * floor["floor_s_per_leapfrog"]
        item = {
            "leapfrogs_per_dataset": leapfrogs,
            "engine_s_per_leapfrog": per_dataset / leapfrogs,
            "floor_s_per_dataset": floor_s,
            "engine_over_floor": per_dataset / floor_s,
        }
        if floor.get("floor_s_per_leapfrog_1_lane"):  # the floor of the per-run ("map") layout
            item["engine_over_floor_1_lane"] = per_dataset / (leapfrogs * floor["floor_s_per_leapfrog_1_lane"])
        if row.get("executed_lane_steps_per_dataset"):  # barrier-free: idle lanes compute too
            item["engine_over_floor_executed"] = per_dataset / (
                row["executed_lane_steps_per_dataset"] * floor["floor_s_per_leapfrog"])
        return item

    for size in sizes:
        engine = find("engine", size, chains)
        if engine is None:
            continue
        entry = {"per_dataset_s": engine["per_dataset_s"], "compile_s": engine["compile_s"]}
        entry |= over_floor(engine)
        entry |= {key: engine.get(key) for key in ("peak_rss_bytes_per_dataset", "peak_device_bytes_per_dataset",
                                                   "peak_rss_above_imports_bytes_per_dataset")}
        for name in LOOP_ENGINES:
            base = find(name, chains=chains)
            if base:
                entry[f"speedup_vs_{name}"] = base["per_dataset_s"] / engine["per_dataset_s"]
                if name.startswith("mcmc_loop"):
                    entry[f"speedup_vs_{name}_incl_compile"] = base["per_dataset_all_s"] / engine["per_dataset_s"]
        for peer in rows:  # nutpie, one row per cores value
            if peer["engine"] != "nutpie" or "per_dataset_s" not in peer or peer["chains"] != chains:
                continue
            name = f"nutpie_cores{peer['cores']}"
            entry[f"speedup_vs_{name}"] = peer["per_dataset_s"] / engine["per_dataset_s"]
            entry[f"{name}_per_dataset_s"] = peer["per_dataset_s"]
            if peer.get("raw_trace_per_dataset_s"):  # the sampler without the DataTree conversion
                entry[f"speedup_vs_{name}_raw_trace"] = peer["raw_trace_per_dataset_s"] / engine["per_dataset_s"]
                entry[f"{name}_raw_trace_per_dataset_s"] = peer["raw_trace_per_dataset_s"]
            entry[f"{name}_slope_ess_per_s"] = peer.get("slope_ess_per_s")
            entry["engine_slope_ess_per_s"] = engine.get("slope_ess_per_s")
            entry[f"{name}_leapfrogs_per_dataset"] = peer.get("leapfrogs_per_dataset")
            if engine.get("leapfrogs_per_dataset") and peer.get("leapfrogs_per_dataset"):
                entry[f"leapfrogs_engine_over_{name}"] = engine["leapfrogs_per_dataset"] / peer["leapfrogs_per_dataset"]
                entry[f"s_per_leapfrog_{name}_over_engine"] = (
                    peer["per_dataset_s"] / peer["leapfrogs_per_dataset"]
                ) / (engine["per_dataset_s"] / engine["leapfrogs_per_dataset"])
        vmapped = find("engine_vmap", size, chains)
        if vmapped:
            entry["speedup_vs_engine_vmap"] = vmapped["per_dataset_s"] / engine["per_dataset_s"]
        for name in ("blackjax_map", "blackjax_vmap"):  # the peer, same model and settings
            peer = find(name, size, chains)
            if peer:
                entry[f"speedup_vs_{name}"] = peer["per_dataset_s"] / engine["per_dataset_s"]
                entry[f"{name}_per_dataset_s"] = peer["per_dataset_s"]
                entry[f"{name}_leapfrogs_per_dataset"] = peer.get("leapfrogs_per_dataset")
                entry[f"{name}_slope_ess_per_s"] = peer.get("slope_ess_per_s")
        for other in (r for r in rows if r["engine"] == "engine_target_accept" and r.get("B") == size
                      and "per_dataset_s" in r):
            key = f"target_accept_{other['target_accept']:g}"
            entry[f"{key}_speedup_vs_engine"] = engine["per_dataset_s"] / other["per_dataset_s"]
            entry[f"{key}_slope_ess_per_s_over_engine"] = other["slope_ess_per_s"] / engine["slope_ess_per_s"]
            entry[f"{key}_mean_accept"] = other.get("mean_accept")
            entry["engine_mean_accept"] = engine.get("mean_accept")
        calibrated = find("engine_calibrated", size, chains)
        if calibrated:
            entry["calibrated_speedup_vs_engine"] = engine["per_dataset_s"] / calibrated["per_dataset_s"]
            entry["calibrated_slope_ess_per_s_over_engine"] = calibrated["slope_ess_per_s"] / engine["slope_ess_per_s"]
            entry["calibrated_mean_accept"] = calibrated.get("mean_accept")
            entry["calibrated_leapfrogs_per_dataset"] = calibrated.get("leapfrogs_per_dataset")
            entry["engine_mean_accept"] = engine.get("mean_accept")
        barrier_free = find("engine_barrier_free", size, chains)
        if barrier_free:
            entry["barrier_free_per_dataset_s"] = barrier_free["per_dataset_s"]
            entry["barrier_free_speedup_vs_engine"] = engine["per_dataset_s"] / barrier_free["per_dataset_s"]
            entry["barrier_free_slope_ess_per_s"] = barrier_free.get("slope_ess_per_s")
            entry["engine_slope_ess_per_s"] = engine.get("slope_ess_per_s")
            entry["barrier_free_lane_utilization"] = barrier_free.get("lane_utilization")
        two = find("engine", size, chains, devices=2)
        mcmc = find("mcmc_loop", chains=chains)
        if two and mcmc:
            entry["speedup_vs_mcmc_loop_2_cpu_devices"] = mcmc["per_dataset_s"] / two["per_dataset_s"]
        exact = find("exact", size, chains)
        if exact:
            entry["engine_over_exact"] = engine["per_dataset_s"] / exact["per_dataset_s"]
        out[f"engine_B{size}"] = entry
    at_1000 = out.get("engine_B1000")
    if at_1000:
        mc, jl = at_1000.get("speedup_vs_mcmc_loop"), at_1000.get("speedup_vs_jit_loop")
        out["targets"] = {
            "B1000_at_least_200x_faster_than_mcmc_loop": None if mc is None else mc >= 200,
            "B1000_no_slower_than_jit_loop": None if jl is None else jl >= 1.0,
            "compile_under_10s": at_1000["compile_s"] < 10.0,
        }
    for r in rows:
        if r["engine"] == "iterations" and "intercept_s_per_run" in r:
            out["fixed_cost"] = {
                key: r[key]
                for key in ("datasets_timed", "slope_s_per_iteration", "intercept_s_per_run", "intercept_in_iterations",
                            "cpu_slope_s_per_iteration", "cpu_intercept_s_per_run",
                            "leapfrogs_per_iteration", "leapfrog_intercept_per_run", "fixed_algorithmic_s_per_run",
                            "fixed_software_s_per_run", "fixed_algorithmic_cpu_s_per_run",
                            "fixed_software_cpu_s_per_run", "fewest_iterations", "per_run_s_at_fewest_iterations",
                            "per_run_cpu_s_at_fewest_iterations",
                            "first_call_extra_s", "call_s_one_dataset_fewest_iterations")
            }
        elif r["engine"] == "diagnostics" and "datasets_timed" in r:
            out["diagnostics_ms_per_dataset"] = {
                key: value for key, value in r.items() if key.startswith("draws_") and key != "draws_list"
            }
    for r in rows:
        if r["engine"] == "study" and "per_dataset_s" in r:
            out[f"study_B{r['B']}"] = {key: r.get(key) for key in (
                "wall_s", "compile_s", "per_dataset_s", "slope_ess_per_s", "stage_seconds",
                "peak_rss_bytes_per_dataset", "peak_device_bytes_per_dataset")}
    queued = [r for r in rows if r["engine"] == "engine_barrier_free" and r.get("lane_utilization")
              and r["lane_utilization"]["runs"] > r["lane_utilization"]["lanes"]]
    if queued:  # the FSM with more runs than lanes (the target: >= 0.9 at 4000 lanes)
        out["barrier_free_lane_utilization_with_queue"] = {
            f"lanes={r['lane_utilization']['lanes']},runs={r['lane_utilization']['runs']}": r["lane_utilization"]
            for r in queued
        }
    big = [r for r in rows if r["engine"] == "study" and r.get("B", 0) >= 100_000 and "wall_s" in r]
    full = [r for r in big if (r.get("warmup"), r.get("draws"), r.get("chains")) == (1000, 1000, 4)]
    if full:
        study_row = full[0]  # the GPU target: 10^5 datasets x 4 chains x 2000 iterations < 60 s, compile < 10 s
        out.setdefault("targets", {}).update({
            f"study_B{study_row['B']}_under_60s": study_row["wall_s"] < 60.0,
            "study_compile_under_10s": study_row["compile_s"] < 10.0,
        })
    if floor is not None:
        engines = {}
        for r in rows:
            item = over_floor(r) if r["engine"] in ENGINE_ROWS else {}
            if item:
                label = f"{r['engine']},B={r['B']},chains={r['chains']},devices={r.get('cpu_devices', 1)}"
                engines[label] = {"per_dataset_s": r["per_dataset_s"], **item,
                                  **{k: r[k] for k in ("warmup_leapfrogs_per_dataset", "sampling_leapfrogs_per_dataset",
                                                       "executed_lane_steps_per_dataset") if k in r}}
        out["floor"] = {
            "floor_s_per_leapfrog": floor["floor_s_per_leapfrog"],
            "floor_cpu_s_per_leapfrog": floor["floor_cpu_s_per_leapfrog"],
            "floor_lanes": floor["floor_lanes"],
            "s_per_leapfrog_by_lanes": {str(e["lanes"]): e["s_per_leapfrog"] for e in floor["by_lanes"]},
            "engines": engines,
        }
    out["engine_per_dataset_s_by_chains"] = {
        f"chains={r['chains']},B={r['B']},devices={r.get('cpu_devices', 1)}": r["per_dataset_s"]
        for r in rows
        if r["engine"] == "engine" and "per_dataset_s" in r
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1,10,100,1000,10000", help="B values for engine, study and exact")
    parser.add_argument("--engines", default=",".join(ALL_ENGINES), help=f"subset of {','.join(ALL_ENGINES)}")
    parser.add_argument("--study-sizes", default="1000", help="B values for the end-to-end study (subset of sizes)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument(
        "--dense-mass",
        action="store_true",
        help="adapt a dense mass matrix in every engine (default: diagonal, as NumPyro/PyMC/Stan)",
    )
    parser.add_argument(
        "--baseline-datasets",
        type=int,
        default=5,
        help="datasets timed per loop baseline (one more is run first and reported apart)",
    )
    parser.add_argument("--pymc-datasets", type=int, default=3)
    parser.add_argument("--nutpie-datasets", type=int, default=20,
                        help="datasets timed per nutpie row (one more is run first and reported apart)")
    parser.add_argument("--target-accepts", default="0.7,0.65",
                        help="engine_target_accept rows: the engine at these target acceptance rates (the rest at 0.8)")
    parser.add_argument("--nutpie-cores", default="1,2", help="nutpie rows: threads its chains run in (cores=)")
    parser.add_argument(
        "--lanes", type=int, default=None, help="lanes of engine_barrier_free (default: the engine's, 1024 on CPU)"
    )
    parser.add_argument(
        "--chain-variants", default="1", help="extra chain counts for the engine at --chain-variant-sizes ('' for none)"
    )
    parser.add_argument("--chain-variant-sizes", default="1,100,1000")
    parser.add_argument(
        "--cpu-devices",
        default="1",
        help="forced CPU device counts for the engine (XLA_FLAGS), e.g. 1,2 on a 2-core machine",
    )
    parser.add_argument("--pymc-python", default=sys.executable,
                        help="interpreter that has PyMC (and nutpie) (default: this one)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=180.0,
        help="skip a size whose predicted time (from the previous size) exceeds this",
    )
    parser.add_argument(
        "--iterations", default="2,100,200,600,2000", help="iteration counts (half warm-up) of the iterations sweep"
    )
    parser.add_argument("--iterations-size", type=int, default=500, help="datasets B of the iterations sweep")
    parser.add_argument("--repeats", type=int, default=2, help="warm calls per point of the iterations sweep (best)")
    parser.add_argument(
        "--count-datasets", type=int, default=50,
        help="datasets whose warm-up leapfrogs the sweep (and, with floor, the engine rows) count",
    )
    parser.add_argument("--floor-lanes", default="4096,1024,1", help="lane counts of the floor (1: unbatched)")
    parser.add_argument("--floor-steps", type=int, default=None,
                        help="leapfrog steps per floor call (default: ~2^22 lane-steps, at most 2^18 steps)")
    parser.add_argument("--diagnostics-datasets", type=int, default=200, help="datasets of the diagnostics row")
    parser.add_argument("--diagnostics-draws", default="100,1000", help="draws per chain of the diagnostics row")
    parser.add_argument("--timeout", type=float, default=1800.0, help="kill one measurement after this many seconds")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 chains, 200 + 200 iterations, small B")
    parser.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    parser.add_argument(
        "--update", action="store_true", help="keep the rows of --out for engines not run now (re-measure one engine)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker_main(json.loads(args.worker))))
        return 0
    if args.quick:
        args.chains, args.warmup, args.draws = 2, 200, 200
        args.sizes, args.study_sizes, args.baseline_datasets, args.pymc_datasets = "1,10,100", "100", 2, 2
        args.nutpie_datasets = 3
        args.chain_variant_sizes = "1,100"
        args.iterations, args.iterations_size, args.count_datasets = "2,100,400", 50, 10
        args.diagnostics_datasets = 50
    ints = lambda text: [int(v) for v in text.split(",") if v.strip()]  # noqa: E731
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ALL_ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {ALL_ENGINES}")
    sizes = ints(args.sizes)
    base = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws, "dense_mass": args.dense_mass}
    if "engine_barrier_free" in engines:
        base["lanes"] = args.lanes
    env_info = _environment(args)
    rows: list[dict] = []

    def record(task: dict, python: str = sys.executable, env_extra: dict | None = None, devices: int = 1) -> dict:
        label = f"{task['engine']:<20} B={task.get('B', task.get('n'))!s:<8} chains={task['chains']} devices={devices}"
        label += f" cores={task['cores']}" if "cores" in task else ""
        print(f"running {label} ...", flush=True, file=sys.stderr)
        out = _derive({**task, "cpu_devices": devices, **_run_task(task, python, env_extra or {}, args.timeout)})
        out.pop("data_file", None)
        rows.append(out)
        if args.out:  # rows so far, in case a later measurement is killed (a device lease running out)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(f"{args.out}.partial").write_text(json.dumps({"environment": env_info, "results": rows}, indent=2))
        keys = ("per_dataset_s", "compile_s", "datasets_per_s", "intercept_s_per_run", "slope_s_per_iteration",
                "draws_100", "floor_s_per_leapfrog", "leapfrogs_per_dataset", "skipped", "error")
        shown = {k: out[k] for k in keys if k in out}
        print(f"  {label} {json.dumps(shown)[:300]}", flush=True, file=sys.stderr)
        return out

    def sweep(engine: str, chains: int, sweep_sizes: list[int], devices: int = 1, extra: dict | None = None) -> None:
        env_extra = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"} if devices > 1 else {}
        per = None
        for size in sweep_sizes:
            if per is not None and per * size > args.max_seconds:
                rows.append(
                    {
                        "engine": engine,
                        "B": size,
                        **base,
                        "chains": chains,
                        "cpu_devices": devices,
                        "skipped": f"predicted {per * size:.0f} s > --max-seconds {args.max_seconds:.0f}",
                    }
                )
                print(f"  skip {engine} B={size}: predicted {per * size:.0f} s", file=sys.stderr)
                continue
            task = {"engine": engine, "B": size, **base, "chains": chains, **(extra or {})}
            if engine in ENGINE_ROWS and "floor" in engines:  # leapfrogs per dataset, for engine / floor
                task["count_leapfrogs"] = args.count_datasets
            out = record(task, env_extra=env_extra, devices=devices)
            per = out.get("per_dataset_s", per)

    for engine in engines:
        if engine == "engine":
            for devices in ints(args.cpu_devices):
                sweep("engine", args.chains, sizes, devices)
            for chains in ints(args.chain_variants):
                if chains != args.chains:
                    sweep("engine", chains, ints(args.chain_variant_sizes))
        elif engine == "engine_vmap":
            sweep("engine_vmap", args.chains, sizes)
        elif engine == "engine_barrier_free":
            sweep("engine_barrier_free", args.chains, sizes)
        elif engine == "engine_target_accept":
            for target in (float(v) for v in args.target_accepts.split(",") if v):
                sweep("engine_target_accept", args.chains, sizes, extra={"target_accept": target})
        elif engine in ("blackjax_map", "blackjax_vmap", "engine_calibrated"):
            sweep(engine, args.chains, sizes)
        elif engine == "exact":
            sweep("exact", args.chains, sizes)
        elif engine == "iterations":
            iterations = {"iterations": ints(args.iterations), "repeats": args.repeats}
            record({"engine": engine, "B": args.iterations_size, **base, **iterations,
                    "count_datasets": args.count_datasets})
        elif engine == "diagnostics":
            record({"engine": engine, "B": args.diagnostics_datasets, "chains": args.chains,
                    "draws_list": ints(args.diagnostics_draws)})
        elif engine == "floor":
            record({"engine": engine, "chains": args.chains, "lanes_list": ints(args.floor_lanes),
                    "steps": args.floor_steps})
        elif engine == "study":
            sweep("study", args.chains, [s for s in ints(args.study_sizes)])
        elif engine == "pymc":
            import numpy as np

            x, y = _tutorial_data(args.pymc_datasets + 1)
            with tempfile.TemporaryDirectory() as tmp:
                data_file = str(Path(tmp) / "data.npz")
                np.savez(data_file, x=x, y=y)
                record(
                    {"engine": "pymc", "n": args.pymc_datasets + 1, **base, "data_file": data_file},
                    python=args.pymc_python,
                )
        elif engine == "nutpie":
            import numpy as np

            x, y = _tutorial_data(args.nutpie_datasets + 1)
            with tempfile.TemporaryDirectory() as tmp:
                data_file = str(Path(tmp) / "data.npz")
                np.savez(data_file, x=x, y=y)
                for cores in ints(args.nutpie_cores):
                    record(
                        {"engine": "nutpie", "n": args.nutpie_datasets + 1, **base, "cores": cores,
                         "data_file": data_file},
                        python=args.pymc_python,
                    )
        else:
            record({"engine": engine, "n": args.baseline_datasets + 1, **base})
    env_info["load_average_end"] = os.getloadavg()
    env_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if args.update and args.out and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text())
        kept = [r for r in old["results"] if r["engine"] not in engines]
        rows = kept + rows
        sizes = sorted({*sizes, *(r["B"] for r in kept if "B" in r)})
        env_info = {**old["environment"], "updated": {"engines": engines, **env_info}}
    report = {"environment": env_info, "summary": _summary(rows, sizes), "results": rows}
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        Path(f"{args.out}.partial").unlink(missing_ok=True)
        print(f"wrote {args.out}", file=sys.stderr)
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
