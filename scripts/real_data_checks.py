"""Measure the real-data targets of issue 13 (ESS fractions, Wampler1 digits and R-hat, timings).

Usage: ``python scripts/real_data_checks.py [--seeds 4] [--x64]``; prints one JSON line per check.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--x64", action="store_true")
    args = parser.parse_args()
    import jax

    jax.config.update("jax_enable_x64", args.x64)
    import bayeslin_jax as bl
    from bayeslin_jax.core.priors import ModelSpec, independent_normal, known_noise

    diabetes = bl.datasets.load("diabetes")
    wampler = bl.datasets.load("wampler1")
    checks = {
        "diabetes_bmi": lambda seed: bl.fit(
            diabetes["bmi"], diabetes["y"], ModelSpec(bl.linear(), independent_normal(0, 1000, 2), known_noise(62.5)),
            seed=seed),
        "diabetes_8_correlated": lambda seed: bl.fit_formula(
            "y ~ bmi + bp + s1 + s2 + s3 + s4 + s5 + s6", diabetes, prior_scale=1000, sigma=55, seed=seed),
        "wampler1_poly5": lambda seed: bl.fit(
            wampler["x"], wampler["y"],
            ModelSpec(bl.polynomial(5), independent_normal(0, 1000, 6), known_noise(0.001)), seed=seed),
    }
    for name, run in checks.items():
        for seed in range(args.seeds):
            start = time.perf_counter()
            result = run(seed)
            wall = time.perf_counter() - start
            table = result.summary()
            draws = result.config.num_chains * result.config.num_draws
            record = {
                "check": name, "seed": seed, "x64": args.x64, "wall_s": round(wall, 2),
                "min_ess_bulk_fraction": float(table["ess_bulk"].min() / draws),
                "max_rhat": float(table["rhat"].max()),
                "max_abs_z": float(np.abs(table["z"]).max()),
                "exact_digits": float(-np.log10(np.abs(table["exact_mean"] - 1.0).max()))
                if name.startswith("wampler") else None,
                "problems": result.problems(),
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
