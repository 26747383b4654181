"""SBC's family-wise false-alarm rate under exact calibration: is the verdict's rate <= alpha?

For each setup and each of ``--seeds`` seeds, one SBC run of ``max(N)`` simulations with *exact* posterior
draws (the inference is correct by construction), whose first ``N`` simulations give the verdict at ``N``:

* ``tutorial``  the built-in path: ``run_sbc(engine="exact")`` on the tutorial model (linear basis, N(0, 0.2)
                priors, known sigma 0.1, 11 points), default quantities (b, m, loglik, three mu(x));
* ``poly3``     the user-sampler path: ``run_sampler_sbc(ExactSampler(tutorial_spec(degree=3)))``, default
                quantities (w0..w3, loglik, log_joint, two random projections).

Reported per setup and N: the false-alarm rate of the verdict (``summarize(...).verdict == "fail"``), of the
rank tests alone (ECDF, chi-square) and of the data-averaged-posterior (DAP) tests alone (each Holm-adjusted
within its own group), with exact 95 % (Clopper-Pearson) intervals and the one-sided binomial p-value of
"rate > alpha". Writes ``scripts/results/sbc_false_alarms.json``.

    python scripts/sbc_false_alarms.py [--seeds 400] [--sizes 100,200,1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy import stats

from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.sbc.samplers import ExactSampler, run_sampler_sbc
from bayeslin_jax.workflows.sbc.stats import holm, summarize

RESULTS = Path(__file__).resolve().parent / "results" / "sbc_false_alarms.json"


def run_setup(name: str, num: int, seed: int):
    if name == "tutorial":
        return sbc.run_sbc(num, seed=seed, sim_spec=tutorial_spec(), config=sbc.SbcConfig(engine="exact"),
                           chunk_size=num)
    spec = tutorial_spec(degree=3)
    return run_sampler_sbc(ExactSampler(spec), num, seed=seed, spec=spec, chunk_size=num)


def rejections(ds, alpha: float) -> dict[str, bool]:
    """The verdict, the rank tests alone and the DAP tests alone (each group Holm-adjusted on its own)."""
    report = summarize(ds, alpha=alpha)
    uni, dap = report.uniformity, report.dap
    ranks = holm(np.stack([uni["ecdf_p"], uni["chi2_p"]]))
    dap_p = np.stack([np.where(np.isnan(dap["p_mean_holm"]), np.nan, dap["p_mean"]),
                      np.where(np.isnan(dap["p_moment_holm"]), np.nan, dap["p_moment"])])
    return {"verdict": report.verdict == "fail", "ranks": bool(np.nanmin(ranks) < alpha),
            "dap": bool(np.any(~np.isnan(dap_p)) and np.nanmin(holm(dap_p)) < alpha)}


def rate(hits: int, total: int, alpha: float) -> dict:
    ci = stats.binomtest(hits, total).proportion_ci(method="exact")
    return {"rejected": hits, "seeds": total, "rate": hits / total, "ci95": [ci.low, ci.high],
            "p_rate_above_alpha": stats.binomtest(hits, total, alpha, alternative="greater").pvalue}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--sizes", default="100,200,1000")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--setups", default="tutorial,poly3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    started = time.time()
    out: dict = {"command": "python scripts/sbc_false_alarms.py " + " ".join(
        f"--{k} {v}" for k, v in (("seeds", args.seeds), ("sizes", args.sizes), ("setups", args.setups))),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "alpha": args.alpha, "setups": {}}
    for name in args.setups.split(","):
        hits = {n: {"verdict": 0, "ranks": 0, "dap": 0} for n in sizes}
        for seed in range(args.seeds):
            ds = run_setup(name, max(sizes), 10_000 + seed)
            for n in sizes:
                for key, value in rejections(ds.isel(dataset=slice(0, n)), args.alpha).items():
                    hits[n][key] += value
        out["setups"][name] = {str(n): {key: rate(h, args.seeds, args.alpha) for key, h in hits[n].items()}
                               for n in sizes}
        for n in sizes:
            row = out["setups"][name][str(n)]
            verdict = row["verdict"]
            print(f"{name} N={n}: verdict {verdict['rate']:.4f} (p of rate > alpha {verdict['p_rate_above_alpha']:.3f})"
                  f"  ranks {row['ranks']['rate']:.4f}  dap {row['dap']['rate']:.4f}", flush=True)
    out["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
