#!/usr/bin/env python
"""Benchmark the models beyond the conjugate case: this batched engine against a loop of PyMC's pm.sample.

For each built-in model (Student-t with nu = 4 and with nu learned, the regularized horseshoe on a
degree-10 polynomial, Bernoulli-logit, Poisson-log) with the settings of the README's SBC table
(``tests/test_models_beyond.py::sbc_setups``: 20 points per dataset, 4 chains x 500 warm-up + 500
draws; the horseshoe 1000 warm-up + 500 draws at target_accept 0.99), on prior-predictive datasets
(``general.simulate_model``, seed 0):

* ``engine``: ``engine.general.sample_model`` on B datasets at once (one CPU device, ``draw_stats=False``);
  compile time is the union of JAX's compile-event intervals during the call (as scripts/benchmark.py),
  run time = wall - compile;
* ``pymc``: ``pm.sample`` per dataset (model built once, data swapped with ``pm.set_data``, ``cores=1``,
  same chains, warm-up, draws and target_accept, the same non-centred parameterisation) on the first
  ``--pymc-datasets + 1`` datasets; the first call (PyTensor compilation) is reported as compile and left out.

Each measurement runs in a fresh subprocess (PyMC in ``--pymc-python``, e.g. ``.venv-pymc/bin/python``
from ``scripts/setup_pymc.sh``). ESS/s: mean bulk ESS of ``w_1`` (slope; the horseshoe's ``x`` coefficient)
per dataset divided by the per-dataset run time. Example::

    bash scripts/setup_pymc.sh
    python scripts/benchmark_models.py --pymc-python .venv-pymc/bin/python \\
        --out scripts/results/benchmark_models_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmark import _CompileClock, _run_task  # scripts/ is on sys.path when this file runs

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("student_t_nu4", "student_t_learn_nu", "bernoulli", "poisson", "horseshoe_poly10")
SEED = 0


# ============================================================================ worker side (engine)


def _setup(name: str):
    """(model, NutsConfig) of the README's SBC table."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_models_beyond import sbc_setups

    model, sbc_config = sbc_setups()[name]
    return model, sbc_config.nuts


def _datasets(name: str, num: int):
    """``x, y: (num, 20)`` prior-predictive datasets of the model (dataset i from (SEED, i))."""
    import numpy as np

    from bayeslin_jax.core.simulate import simulate_model

    model, _ = _setup(name)
    data = simulate_model(SEED, np.arange(num), model, num_points=20)
    return np.asarray(data.x), np.asarray(data.y)


def _ess_w1(w_draws) -> float:
    """Mean bulk ESS of ``w[..., 1]``. ``w_draws: (B, C, S, d)``."""
    import numpy as np

    from bayeslin_jax.diagnostics.host import chain_diagnostics

    return float(np.nanmean(chain_diagnostics(np.asarray(w_draws)[..., 1])["ess_bulk"]))


def work_engine(task: dict) -> dict:
    import jax
    import jax.numpy as jnp

    from bayeslin_jax.engine.sampling import sample_model

    clock = _CompileClock()
    model, config = _setup(task["model"])
    x, y = _datasets(task["model"], task["B"])
    inputs, y = model.design(jnp.asarray(x)), jnp.asarray(y)
    clock.reset()  # compiles of the setup above are not the engine's
    t0 = time.perf_counter()
    result = sample_model(SEED, inputs, y, model, config, num_devices=1, draw_stats=False)
    jax.block_until_ready(result.samples)
    wall = time.perf_counter() - t0
    compile_s = clock.reset()
    run = wall - compile_s
    divergences = int(jax.numpy.sum(result.stats["divergences"]))
    return {"wall_s": wall, "compile_s": compile_s, "run_s": run, "datasets_timed": task["B"],
            "ess_bulk_w1": _ess_w1(result.samples["w"]), "divergences": divergences}


# ============================================================================ worker side (PyMC; no JAX here)


def _pymc_model(name: str, x, y, info: dict):
    """The same model in PyMC, data as ``pm.Data`` (``x: (n,)``, ``y: (n,)``)."""
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        x_data = pm.Data("x", x)
        y_data = pm.Data("y", y)
        if name == "horseshoe_poly10":
            phi = x_data[:, None] ** np.arange(11.0)
            sigma = pm.HalfNormal("sigma", 1.0)
            w0 = pm.Normal("w0", 0.0, info["intercept_scale"])
            z = pm.Normal("z", 0.0, 1.0, shape=10)
            lam = pm.HalfNormal("lambda_a", 1.0, shape=10) * pt.sqrt(pm.InverseGamma("lambda_b", 0.5, 0.5, shape=10))
            tau = info["tau0"] * sigma * pm.HalfNormal("tau_a", 1.0) * pt.sqrt(pm.InverseGamma("tau_b", 0.5, 0.5))
            df, scale = info["slab_df"], info["slab_scale"]
            c2 = pm.InverseGamma("c2", 0.5 * df, 0.5 * df * scale**2)
            lam_tilde = pt.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
            w = pm.Deterministic("w", pt.concatenate([w0[None], z * tau * lam_tilde]))
            pm.Normal("obs", mu=pt.dot(phi, w), sigma=sigma, observed=y_data)
            return model
        w = pm.Normal("w", 0.0, 1.0, shape=2)
        eta = w[0] + w[1] * x_data
        if name.startswith("student_t"):
            sigma = pm.HalfNormal("sigma", 1.0)
            nu = 4.0 if name == "student_t_nu4" else pm.Gamma("nu", alpha=2.0, beta=0.1)
            pm.StudentT("obs", nu=nu, mu=eta, sigma=sigma, observed=y_data)
        elif name == "bernoulli":
            pm.Bernoulli("obs", logit_p=eta, observed=y_data)
        else:
            pm.Poisson("obs", mu=pt.exp(eta), observed=y_data)
    return model


def work_pymc(task: dict) -> dict:
    import numpy as np

    try:
        import arviz as az
        import pymc as pm
    except ImportError as err:
        return {"skipped": f"pymc not importable: {err}"}
    data = np.load(task["data_file"])
    x, y = data["x"], data["y"]
    model = _pymc_model(task["model"], x[0], y[0], task["info"])
    times, ess, divergences = [], [], 0
    for i in range(len(x)):
        t0 = time.perf_counter()
        with model:
            pm.set_data({"x": x[i], "y": y[i]})
            idata = pm.sample(draws=task["draws"], tune=task["warmup"], chains=task["chains"], cores=1,
                              target_accept=task["target_accept"], random_seed=i, progressbar=False,
                              compute_convergence_checks=False)
        times.append(time.perf_counter() - t0)
        ess.append(float(az.ess(np.asarray(idata.posterior["w"])[..., 1], method="bulk")))  # (chain, draw)
        divergences += int(idata.sample_stats["diverging"].sum())
    warm = times[1:]
    return {"wall_s": float(sum(times)), "run_s": float(sum(warm)), "datasets_timed": len(warm),
            "compile_s": times[0] - float(np.mean(warm)), "first_dataset_s": times[0],
            "ess_bulk_w1": float(np.mean(ess[1:])), "divergences": divergences, "pymc_version": pm.__version__}


# ============================================================================ driver side


def _run(task: dict, python: str, timeout: float) -> dict:
    return _run_task(task, python, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}, timeout,
                     script=Path(__file__))


def _per_dataset(row: dict) -> dict:
    if row.get("datasets_timed") and "run_s" in row:
        row["per_dataset_s"] = row["run_s"] / row["datasets_timed"]
        if row.get("ess_bulk_w1"):
            row["ess_w1_per_s"] = row["ess_bulk_w1"] / row["per_dataset_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--sizes", default="1000", help="B per model: one value, or one per model (comma-separated)")
    parser.add_argument("--pymc-datasets", type=int, default=3, help="timed PyMC datasets (after one for compile)")
    parser.add_argument("--pymc-python", default=sys.executable, help="interpreter that has PyMC (default: this one)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    parser.add_argument("--out", help="JSON file")
    args = parser.parse_args(argv)
    if args.worker:
        task = json.loads(args.worker)
        print(json.dumps((work_pymc if task["engine"] == "pymc" else work_engine)(task)))
        return 0

    import numpy as np

    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}")
    sizes = [int(s) for s in args.sizes.split(",")]
    sizes = sizes * len(models) if len(sizes) == 1 else sizes
    if len(sizes) != len(models):
        parser.error("--sizes: one value, or one per model")
    env_info = {"command": " ".join(["scripts/benchmark_models.py", *(argv or sys.argv[1:])]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
                "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(),
                "python": platform.python_version(), "cpu_devices": 1}
    rows, summary = [], {}
    for name, size in zip(models, sizes, strict=True):
        model, config = _setup(name)
        settings = {"model": name, "chains": config.num_chains, "warmup": config.num_warmup,
                    "draws": config.num_draws, "target_accept": config.target_accept, "num_points": 20}
        print(f"{name}: engine B={size} ...", file=sys.stderr, flush=True)
        engine = _per_dataset({"engine": "engine", "B": size, **settings,
                               **_run({"engine": "engine", "B": size, **settings}, sys.executable, args.timeout)})
        print(f"  {json.dumps(engine)[:400]}", file=sys.stderr, flush=True)
        x, y = _datasets(name, args.pymc_datasets + 1)
        with tempfile.TemporaryDirectory() as tmp:
            data_file = str(Path(tmp) / "data.npz")
            np.savez(data_file, x=x, y=y)
            task = {"engine": "pymc", **settings, "data_file": data_file, "info": model.info}
            print(f"{name}: pymc {args.pymc_datasets} + 1 datasets ...", file=sys.stderr, flush=True)
            pymc = _per_dataset({"engine": "pymc", **settings, **_run(task, args.pymc_python, args.timeout)})
        print(f"  {json.dumps(pymc)[:400]}", file=sys.stderr, flush=True)
        rows += [engine, pymc]
        if "per_dataset_s" in engine and "per_dataset_s" in pymc:
            summary[name] = {"engine_per_dataset_s": engine["per_dataset_s"],
                             "pymc_per_dataset_s": pymc["per_dataset_s"],
                             "speedup": pymc["per_dataset_s"] / engine["per_dataset_s"],
                             "engine_compile_s": engine["compile_s"], "pymc_compile_s": pymc["compile_s"],
                             "engine_ess_w1_per_s": engine.get("ess_w1_per_s"),
                             "pymc_ess_w1_per_s": pymc.get("ess_w1_per_s")}
        if args.out:  # after every model, so that a long run leaves what it measured
            env_info["load_average_end"] = os.getloadavg()
            report = {"environment": env_info, "summary": summary, "results": rows}
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
