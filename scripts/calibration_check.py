"""What the calibrated warm-up (``NutsConfig(calibrate_step_size=True)``) buys and costs, against NumPyro's.

NumPyro's (Stan's) dual averaging ends warm-up with an achieved acceptance well above ``target_accept`` (0.92
for 0.8 on the tutorial model); the calibrated warm-up lands near the target, with larger steps. For each setup,
both warm-ups (4 chains x 1000 + 1000, target 0.8 unless stated) on the same datasets and keys:

* ``tutorial``       the tutorial model (known noise, 2-d Gaussian posterior), 200 tutorial datasets;
* ``poly5_mvn``      degree-5 polynomial, AR(1) MVN prior, known noise (an ill-conditioned Gaussian), 100 datasets;
* ``unknown_noise``  linear, N(0, 1) weights, half-normal(1) noise (sigma learned), 100 tutorial datasets;
* ``hierarchical``   the varying-intercept model (scripts/user_models/varying_intercept.py), 100 SBC simulations,
                     at target 0.8 and 0.95.

Reported: achieved acceptance, step size, leapfrogs per dataset (sampling), divergences, the smallest bulk ESS
over parameters, R-hat > 1.01 share and, where an exact or quadrature reference exists, the RMS of the
posterior-mean errors in MCSE units (about 1 when the draws are right). Writes
``scripts/results/calibration_check_cpu.json``.

    python scripts/calibration_check.py   # about 8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "user_models"))
OUT = ROOT / "scripts" / "results" / "calibration_check_cpu.json"


def _ar1_mvn(dim: int, scale: float = 0.2, rho: float = -0.5):
    from bayeslin_jax.core import priors

    lags = np.abs(np.subtract.outer(np.arange(dim), np.arange(dim)))
    return priors.mvn(np.zeros(dim), scale**2 * rho**lags)


def gaussian_row(name: str, num: int, calibrate: bool) -> dict:
    """One Gaussian-regression setup: engine draws against the exact (or quadrature) posterior."""
    import jax.numpy as jnp

    from bayeslin_jax.core import exact, nig, priors, simulate
    from bayeslin_jax.core.basis import Polynomial
    from bayeslin_jax.diagnostics.device import summarize_rows
    from bayeslin_jax.engine import NutsConfig, sample_nuts

    if name == "tutorial":
        spec = priors.tutorial_spec()
    elif name == "poly5_mvn":
        spec = priors.ModelSpec(Polynomial(5), _ar1_mvn(6), priors.known_noise(0.1))
    else:
        spec = priors.ModelSpec(Polynomial(1), priors.independent_normal(0.0, 1.0, 2), priors.half_normal_noise(1.0))
    data = (simulate.prior_data(0, np.arange(num), spec) if name == "poly5_mvn"
            else simulate.tutorial_data(0, np.arange(num)))
    phi = spec.basis(data.x)
    start = time.perf_counter()
    result = sample_nuts(1, phi, data.y, spec.prior, spec.noise, NutsConfig(calibrate_step_size=calibrate))
    w = np.asarray(result.samples["w"])
    seconds = time.perf_counter() - start
    stats = {k: np.asarray(v) for k, v in result.stats.items()}
    dim = w.shape[-1]
    table = summarize_rows(jnp.asarray(np.moveaxis(w, -1, 1).reshape(num * dim, *w.shape[1:3])))
    mean, mcse = (np.asarray(table[k]).reshape(num, dim) for k in ("mean", "mcse_mean"))
    rhat, ess = (np.asarray(table[k]).reshape(num, dim) for k in ("rhat", "ess_bulk"))
    if spec.known_sigma:
        reference = np.asarray(exact.posterior(phi, data.y, spec.prior, spec.noise.sigma).mean)
    else:
        reference = nig.unknown_noise_reference(phi, data.y, spec.prior, spec.noise).mean
    return {
        "setup": name, "calibrate_step_size": calibrate, "target_accept": 0.8, "datasets": num,
        "seconds_with_compile": seconds,
        "mean_accept": float(stats["acceptance_rate"].mean()), "mean_step_size": float(stats["step_size"].mean()),
        "sampling_leapfrogs_per_dataset": float(stats["n_steps"].sum((1, 2)).mean()),
        "divergences": int(stats["diverging"].sum()),
        "datasets_with_divergences": float((stats["diverging"].sum((1, 2)) > 0).mean()),
        "min_ess_bulk_mean": float(ess.min(1).mean()), "rhat_above_1.01": float((rhat.max(1) > 1.01).mean()),
        "weights_mean_error_rms_in_mcse": float(np.sqrt((((mean - reference) / mcse) ** 2).mean())),
    }


def hierarchical_row(num: int, target: float, calibrate: bool) -> dict:
    from varying_intercept import MODEL, NUM_POINTS

    from bayeslin_jax.engine import NutsConfig
    from bayeslin_jax.workflows.sbc import run as sbc

    config = sbc.SbcConfig(num_points=NUM_POINTS,
                           nuts=NutsConfig(target_accept=target, calibrate_step_size=calibrate))
    start = time.perf_counter()
    ds = sbc.run_sbc(num, seed=0, sim_spec=MODEL, config=config, chunk_size=50)
    div = ds["divergences"].values
    ess = np.minimum(ds["ess_bulk"].values, ds["ess_tail"].values).min(-1)
    return {
        "setup": "hierarchical", "calibrate_step_size": calibrate, "target_accept": target, "simulations": num,
        "seconds_with_compile": time.perf_counter() - start,
        "divergences_per_simulation": float(div.mean()), "simulations_with_divergences": float((div > 0).mean()),
        "simulations_with_over_10_divergences": float((div > 10).mean()),
        "rhat_above_1.01": float((ds["rhat"].values.max(-1) > 1.01).mean()), "min_ess_mean": float(ess.mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    out = {"command": " ".join(["python", *sys.argv]), "machine": platform.platform(), "cores": os.cpu_count(),
           "load_average_start": os.getloadavg(), "rows": []}
    for name, num in (("tutorial", 200), ("poly5_mvn", 100), ("unknown_noise", 100)):
        for calibrate in (False, True):
            out["rows"].append(gaussian_row(name, num, calibrate))
            print(json.dumps(out["rows"][-1]), flush=True)
    for target in (0.8, 0.95):
        for calibrate in (False, True):
            out["rows"].append(hierarchical_row(100, target, calibrate))
            print(json.dumps(out["rows"][-1]), flush=True)
    out["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
