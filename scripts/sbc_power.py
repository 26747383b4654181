"""Power of the SBC checks: how many simulations it takes to flag deliberately broken inference.

Setups (tutorial model: linear basis, N(0, 0.2) priors, known sigma 0.1, 11 points):

* ``correct``    exact posterior draws (the false-alarm rate; should stay <= alpha);
* ``(a) prior``  fit with prior sd 0.4 while the simulation uses 0.2;
* ``(b) sd0.7``  posterior draws under-dispersed: sd scaled by 0.7;
* ``(c) shift``  biased draws: shifted by +0.25 posterior sd.

Errors that marginal ranks cannot see, run through the user-sampler contract
(:func:`bayeslin_jax.workflows.sbc.run_sampler_sbc`, default test quantities: weights, loglik, log_joint,
two random projections) on the poly3 design (features 1, x, x^2, x^3 on x ~ U(-1, 1), N(0, 0.2)
priors, sigma 0.1, 11 points: x and x^3, 1 and x^2 are strongly correlated, so is the posterior):

* ``poly3 correct``       exact conjugate draws (false-alarm rate of the new quantities);
* ``(e) correlation``     draws from the exact *marginals*, independently: every weight's marginal
                          is exact, the joint is not;
* ``(f) half the data``   the exact posterior given the first 6 of the 11 points: a calibrated
                          posterior for every parameter (of less data); only quantities that
                          depend on the data can see it;
* ``(g) sd x 0.8``        under-dispersed draws (visible in the marginals too): how much sooner
                          the joint quantities see it.

For every setup the rejection rate per quantity is reported too (a quantity is flagged when one
of its Holm-adjusted tests is below alpha): the power of each default quantity.

For each setup and each of ``--repeats`` seeds one SBC run of ``max(grid)`` simulations (exact
engine + the transformation) is made; its first ``N`` simulations give the verdict at ``N`` for
every ``N`` in the grid. Reported per ``N``: the rejection rate of the full verdict (Holm over
ECDF, chi-square and data-averaged-posterior tests) and of the rank tests alone, with exact 95%
intervals, and the smallest ``N`` rejecting in >= 90% of seeds.

Then, with NUTS (4 chains, 500 warm-up + 500 draws): the correct sampler and (b), (c) applied to
NUTS draws, a few seeds at ``--nuts-sims``; and (d) NUTS with too short warm-up on the badly scaled
poly5 problem (x ~ U(-5, 5), unscaled x^k features) over a grid of warm-up lengths.

The correct setup uses ``--false-alarm-repeats`` seeds (default 1000) so that its false-alarm
rate is known to about +-0.7%.

ECDF p-values as in the library (``stats.ecdf_pvalues``): the simulated p-value first, refined
(exact, or the union bound where that is below 1e-8) below 0.1, where decisions are made.

Writes ``scripts/results/sbc_power.json`` (parts not recomputed are kept from an existing file).
    python -u scripts/sbc_power.py [--quick] [--repeats 100] [--grid 25,50,...] [--skip-nuts] [--skip-poly]
The committed file: ``--repeats 100 --false-alarm-repeats 400 --grid 25,50,100,200,400,800,1600,3200
--skip-nuts --skip-poly`` (20 min on 2 shared CPU cores), then ``... --setups "(g)"`` (5 min);
the NUTS parts are those of the previous run. ``--quick``: 2.5 min (writes sbc_power_quick.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats

from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.sbc.samplers import ExactSampler, run_sampler_sbc
from bayeslin_jax.workflows.sbc.stats import calibration_tests, dap_in_family, holm, summarize

RESULTS = Path(__file__).resolve().parent / "results" / "sbc_power.json"
NUTS_CONFIG = NutsConfig(num_warmup=500, num_draws=500, num_chains=4)


def setups() -> dict[str, dict]:
    spec = tutorial_spec()
    return {
        "correct": {"fit_spec": spec, "distortion": sbc.Distortion()},
        "(a) fit prior sd 0.4 vs 0.2": {"fit_spec": sbc.with_prior_scale(spec, 0.4), "distortion": sbc.Distortion()},
        "(b) draws sd x 0.7": {"fit_spec": spec, "distortion": sbc.Distortion(sd_scale=0.7)},
        "(c) draws shifted +0.25 sd": {"fit_spec": spec, "distortion": sbc.Distortion(shift_sd=0.25)},
    }


POLY3 = tutorial_spec(degree=3)
SAMPLER_SETUPS = {  # run through the user-sampler contract with the default test quantities
    "poly3 correct": ExactSampler(POLY3),
    "(e) poly3 correlation ignored (exact marginals)": ExactSampler(POLY3, ignore_correlation=True),
    "(f) poly3 half the data ignored": ExactSampler(POLY3, data_fraction=0.5),
    "(g) poly3 draws sd x 0.8": ExactSampler(POLY3, sd_scale=0.8),
}


def run_setup(name: str, num: int, seed: int, num_ranks: int):
    """One SBC run of ``num`` simulations for a named setup (exact engine or user sampler)."""
    if name in SAMPLER_SETUPS:
        return run_sampler_sbc(SAMPLER_SETUPS[name], num, seed=seed, spec=POLY3, num_ranks=num_ranks,
                               chunk_size=num)
    setup = setups()[name]
    config = sbc.SbcConfig(engine="exact", num_ranks=num_ranks, distortion=setup["distortion"])
    return sbc.run_sbc(num, seed=seed, sim_spec=tutorial_spec(), fit_spec=setup["fit_spec"], config=config,
                       chunk_size=num)


def rejections(ds, grid: list[int], alpha: float, num_ranks: int) -> dict[str, list]:
    """Verdicts on the first N simulations for each N: full family, rank tests only, DAP tests only
    (each sub-family Holm-adjusted on its own), and per quantity (flagged in the full family)."""
    out = {"any": [], "ranks": [], "dap": [], "quantity": []}
    meta = json.loads(ds.attrs["meta"])
    mask = dap_in_family(ds["quantity"].values, meta.get("linear_quantities"))
    for n in grid:
        sub = ds.isel(dataset=slice(0, n))
        tests = calibration_tests(sub["rank"].values, sub["truth"].values, sub["post_mean"].values,
                                  sub["post_sd"].values, num_ranks, mask)
        dap = np.stack([tests["dap"]["p_mean"][mask], tests["dap"]["p_moment"][mask]])
        out["any"].append(bool(np.nanmin(tests["holm"]) < alpha))
        out["ranks"].append(bool(holm(np.stack([tests["ecdf_p"], tests["chi2_p"]])).min() < alpha))
        out["dap"].append(bool(holm(dap).min() < alpha))
        out["quantity"].append(np.nanmin(tests["holm"], axis=0) < alpha)
    return out


def rate_summary(hits: np.ndarray) -> dict:
    k, n = int(hits.sum()), int(hits.size)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"rate": k / n, "lower95": ci.low, "upper95": ci.high, "rejected": k, "repeats": n}


def min_n(grid: list[int], rates: list[float], target: float = 0.9):
    for n, r in zip(grid, rates, strict=True):
        if r >= target:
            return n
    return None


def exact_power(grid: list[int], repeats: int, alpha: float, false_alarm_repeats: int,
                num_ranks: int = 99, names: list[str] | None = None) -> dict:
    out = {}
    sims, seconds = 0, 0.0
    for name in names or [*setups(), *SAMPLER_SETUPS]:
        reps = false_alarm_repeats if "correct" in name else repeats
        hits = {key: np.zeros((reps, len(grid)), dtype=bool) for key in ("any", "ranks", "dap")}
        per_quantity, quantities = None, None
        for r in range(reps):
            t0 = time.perf_counter()
            ds = run_setup(name, max(grid), 1000 + r, num_ranks)
            if r > 0:  # the first run of each setup includes compilation
                seconds += time.perf_counter() - t0
                sims += max(grid)
            result = rejections(ds, grid, alpha, num_ranks)
            for key in hits:
                hits[key][r] = result[key]
            if per_quantity is None:
                quantities = [str(q) for q in ds["quantity"].values]
                per_quantity = np.zeros((reps, len(grid), len(quantities)), dtype=bool)
            per_quantity[r] = np.stack(result["quantity"])
        entry = {"repeats": reps, "per_n": {}, "min_n_90": {}, "quantities": quantities,
                 "quantity_min_n_90": {}, "quantity_rate": {}}
        for key in hits:
            rates = hits[key].mean(0).tolist()
            entry["min_n_90"][key] = min_n(grid, rates)
            for j, n in enumerate(grid):
                entry["per_n"].setdefault(str(n), {})[key] = rate_summary(hits[key][:, j])
        q_rates = per_quantity.mean(0)  # (grid, Q)
        for k, q in enumerate(quantities):
            entry["quantity_min_n_90"][q] = min_n(grid, q_rates[:, k].tolist())
            entry["quantity_rate"][q] = {str(n): float(q_rates[j, k]) for j, n in enumerate(grid)}
        out[name] = entry
        print(f"{name:<48} ({reps} seeds) min N for >=90% detection: all tests {entry['min_n_90']['any']}, "
              f"ranks only {entry['min_n_90']['ranks']}, DAP only {entry['min_n_90']['dap']}")
        print("   rejection rate (all tests) by N: "
              + ", ".join(f"{n}: {entry['per_n'][str(n)]['any']['rate']:.2f}" for n in grid))
        print("   per quantity, min N for >=90% (rate at the largest N): "
              + ", ".join(f"{q}: {entry['quantity_min_n_90'][q]} ({q_rates[-1, k]:.2f})"
                          for k, q in enumerate(quantities)))
    return {"setups": out, "simulations_per_second": sims / seconds if seconds else None}


def nuts_checks(num_sims: int, repeats: int, alpha: float) -> dict:
    """Correct NUTS and (b), (c) on NUTS draws: verdicts over a few seeds."""
    spec = tutorial_spec()
    out = {}
    for name in ("correct", "(b) draws sd x 0.7", "(c) draws shifted +0.25 sd"):
        setup = setups()[name]
        config = sbc.SbcConfig(engine="nuts", nuts=NUTS_CONFIG, distortion=setup["distortion"])
        runs = []
        for r in range(repeats):
            t0 = time.perf_counter()
            ds = sbc.run_sbc(num_sims, seed=2000 + r, sim_spec=spec, config=config, chunk_size=num_sims)
            seconds = time.perf_counter() - t0
            report = summarize(ds, alpha=alpha)
            runs.append({
                "seed": 2000 + r, "verdict": report.verdict, "reasons": report.reasons,
                "min_holm_p": float(report.holm_min().min()), "gate_failed": report.gates["num_failed"],
                "seconds": seconds,
                "z_sd": [None if np.isnan(v) else float(v) for v in report.compare["z_sd"]],
            })
            print(f"NUTS {name:<28} seed {2000 + r}: {report.verdict} (min Holm p {runs[-1]['min_holm_p']:.2g}, "
                  f"{report.gates['num_failed']} gate failures, {seconds:.1f} s)")
        out[name] = {"num_simulations": num_sims, "runs": runs,
                     "rejection_rate": float(np.mean([run["verdict"] == "fail" for run in runs]))}
    return {"config": {"num_warmup": NUTS_CONFIG.num_warmup, "num_draws": NUTS_CONFIG.num_draws,
                       "num_chains": NUTS_CONFIG.num_chains}, "setups": out}


def poly_warmup_study(warmups: list[int], num_sims: int, alpha: float, draws: int = 500) -> dict:
    """(d): NUTS on poly5 with x ~ U(-5, 5) (badly scaled features) and short warm-up."""
    spec = tutorial_spec(degree=5)
    out = {}
    for warmup in warmups:
        config = sbc.SbcConfig(engine="nuts", x_scale=5.0,
                               nuts=NutsConfig(num_warmup=warmup, num_draws=draws, num_chains=4))
        t0 = time.perf_counter()
        ds = sbc.run_sbc(num_sims, seed=3000, sim_spec=spec, config=config, chunk_size=num_sims)
        seconds = time.perf_counter() - t0
        gated = summarize(ds, alpha=alpha)
        everything = summarize(ds, alpha=alpha, include_failed=True)
        rhat = ds["rhat"].values.max(-1)
        ess = np.minimum(ds["ess_bulk"].values, ds["ess_tail"].values).min(-1)
        entry = {
            "seconds": seconds,
            "gate_failed": gated.gates["num_failed"],
            "gate_detail": {k: gated.gates.get(k) for k in ("rhat_fail", "ess_fail", "divergence_fail")},
            "median_max_rhat": float(np.median(rhat)),
            "median_min_ess": float(np.median(ess)),
            "mean_divergences": float(ds["divergences"].values.mean()),
            "verdict": gated.verdict,
            "reasons": gated.reasons,
            "ranks_all_simulations": {
                "verdict_tests_only": "fail" if everything.holm_min().min() < alpha else "pass",
                "min_holm_p": float(everything.holm_min().min()),
                "rejected_quantities": [q for q, v in zip(everything.quantities, everything.quantity_verdicts(),
                                                          strict=True) if v == "FAIL"],
            },
            "ranks_gated_simulations": (
                {"num_used": gated.num_used, "min_holm_p": float(gated.holm_min().min())}
                if gated.num_used >= 2 else None
            ),
            "nuts_vs_exact_z_sd": [None if np.isnan(v) else round(float(v), 3) for v in everything.compare["z_sd"]],
            "median_sd_ratio": [None if np.isnan(v) else round(float(v), 3)
                                for v in everything.compare["sd_ratio_median"]],
        }
        mask = dap_in_family(ds["quantity"].values)
        entry["tests_on_first_n"] = {}
        for n in (10, 25, 50, 100, 200):
            if n > num_sims:
                break
            sub = ds.isel(dataset=slice(0, n))
            tests = calibration_tests(sub["rank"].values, sub["truth"].values, sub["post_mean"].values,
                                      sub["post_sd"].values, config.num_ranks, mask)
            entry["tests_on_first_n"][str(n)] = {
                "rejected": bool(np.nanmin(tests["holm"]) < alpha),
                "min_holm_p": float(np.nanmin(tests["holm"])),
                "gate_failed_fraction": float(1.0 - sub["gate_ok"].values.mean()),
            }
        out[str(warmup)] = entry
        print(f"(d) poly5 x~U(-5,5) warmup {warmup:>5}: gate failures {entry['gate_failed']}/{num_sims}, "
              f"median max R-hat {entry['median_max_rhat']:.3f}, median min ESS {entry['median_min_ess']:.0f}, "
              f"rank/DAP tests on all sims: {entry['ranks_all_simulations']['verdict_tests_only']} "
              f"(min Holm p {entry['ranks_all_simulations']['min_holm_p']:.2g}), verdict {gated.verdict}, "
              f"{seconds:.0f} s")
    return {"num_simulations": num_sims, "draws": draws, "chains": 4, "x_scale": 5.0, "basis": "poly5",
            "warmups": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="seeds per broken setup")
    parser.add_argument("--false-alarm-repeats", type=int, default=1000, help="seeds for the correct setup")
    parser.add_argument("--grid", default="25,50,100,200,400,800,1600,3200,6400")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--nuts-sims", type=int, default=200)
    parser.add_argument("--nuts-repeats", type=int, default=3)
    parser.add_argument("--poly-sims", type=int, default=100)
    parser.add_argument("--poly-warmups", default="10,50,100,300,1000")
    parser.add_argument("--skip-exact", action="store_true", help="keep the exact-engine part of an existing --out")
    parser.add_argument("--skip-nuts", action="store_true")
    parser.add_argument("--skip-poly", action="store_true")
    parser.add_argument("--setups", default="",
                        help="comma-separated names (or prefixes, e.g. '(g)') of the setups to recompute; "
                             "the others are kept from --out")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: 20 seeds (100 for correct setups), N up to 800, no NUTS parts; "
                             "writes sbc_power_quick.json unless --out")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.false_alarm_repeats, args.grid = 20, 100, "25,50,100,200,400,800"
        args.skip_nuts = args.skip_poly = True
        if args.out == str(RESULTS):
            args.out = str(RESULTS.with_name("sbc_power_quick.json"))
    grid = [int(v) for v in args.grid.split(",")]
    result = {
        "alpha": args.alpha,
        "grid": grid,
        "repeats": args.repeats,
        "false_alarm_repeats": args.false_alarm_repeats,
        "criterion": "smallest N in the grid whose rejection rate over repeats is >= 0.9",
        "machine": {"platform": platform.platform(), "backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()]},
    }
    out = Path(args.out)
    if out.is_file() and (args.skip_exact or args.skip_nuts or args.skip_poly):  # keep the parts not recomputed
        kept = json.loads(out.read_text())
        result = {**kept, **{k: v for k, v in result.items() if not (args.skip_exact and k == "grid")}}
    t0 = time.perf_counter()
    if args.setups:
        wanted = [w.strip() for w in args.setups.split(",")]
        names = [n for n in [*setups(), *SAMPLER_SETUPS] if any(n.startswith(w) for w in wanted)]
        kept = json.loads(out.read_text()) if out.is_file() else {}
        if kept.get("grid", grid) != grid:
            parser.error(f"--setups must use the grid of {out}: {kept['grid']}")
        result = {**kept, **result}
        part = exact_power(grid, args.repeats, args.alpha, args.false_alarm_repeats, names=names)
        result.setdefault("exact", {"setups": {}}).setdefault("setups", {}).update(part["setups"])
    elif not args.skip_exact:
        result["exact"] = exact_power(grid, args.repeats, args.alpha, args.false_alarm_repeats)
    if not args.skip_nuts:
        result["nuts"] = nuts_checks(args.nuts_sims, args.nuts_repeats, args.alpha)
    if not args.skip_poly:
        result["poly_short_warmup"] = poly_warmup_study([int(v) for v in args.poly_warmups.split(",")],
                                                        args.poly_sims, args.alpha)
    result["seconds"] = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
