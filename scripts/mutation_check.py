"""Mutation check: deliberate one-line bugs, each of which some default-suite test must catch.

For every mutation the package and the tests are copied to a temporary directory, one line of the copy
is changed (the text must occur exactly once), and a small chosen subset of pytest runs in a subprocess
against the copy (``PYTHONPATH`` and the working directory point at it; the import path is recorded).
The unmutated subset runs first: every chosen test must pass there, so a failure under a mutation is the
mutation's doing. Results: ``scripts/results/mutation.json`` (bug -> tests that failed).

Run: ``.venv/bin/python scripts/mutation_check.py`` (a few minutes on 2 cores);
``--only NAME`` runs one mutation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "scripts" / "results" / "mutation.json"

# name -> (file, original text, mutated text, tests that should catch it)
MUTATIONS: dict[str, tuple[str, str, str, list[str]]] = {
    "exact draws: transposed Cholesky factor": (
        "bayeslin_jax/core/exact.py", "return post.mean + z @ inv_tril", "return post.mean + z @ inv_tril.T",
        ["tests/test_exact_evidence.py::test_exact_draws_have_the_posterior_mean_and_covariance"],
    ),
    "posterior sd: sqrt dropped": (
        "bayeslin_jax/core/exact.py", "return jnp.sqrt(jnp.diagonal(self.cov, axis1=-2, axis2=-1))",
        "return jnp.diagonal(self.cov, axis1=-2, axis2=-1)",
        ["tests/test_infer.py::test_nuts_matches_exact_posterior[1-independent]",
         "tests/test_sbc.py::test_distorted_exact_draws_are_flagged"],
    ),
    "SBC rank: off by one (L instead of L + 1 rank values)": (
        "bayeslin_jax/workflows/sbc/run.py", "rank = jnp.minimum(jnp.floor(pit * (num_ranks + 1)), num_ranks)",
        "rank = jnp.minimum(jnp.floor(pit * num_ranks), num_ranks)",
        ["tests/test_sbc.py::test_rank_and_pit_convention_with_ties",
         "tests/test_sbc.py::test_exact_sampler_false_alarms_within_binomial_bound"],
    ),
    "diagnostics: tail ESS at another quantile than ArviZ's": (
        "bayeslin_jax/diagnostics/host.py", "return float(validate_ci_prob(None))", "return 0.95",
        ["tests/test_sbc.py::test_tail_ess_is_arviz_default_everywhere",
         "tests/test_study.py::test_stored_diagnostics_equal_arviz_on_the_draws"],
    ),
    "engine: vmap path ignores batch_size": (
        "bayeslin_jax/engine/nuts.py", "return min(self.batch_size or num_runs, num_runs)", "return num_runs",
        ["tests/test_infer.py::test_vmap_path_uses_batch_size_with_remainder"],
    ),
    "engine: max_tree_depth ignored": (
        "bayeslin_jax/engine/nuts.py", "max_tree_depth=config.max_tree_depth,", "max_tree_depth=10,",
        ["tests/test_infer.py::test_result_shapes_and_stats"],
    ),
    "engine: device blocks gathered in reverse order": (
        "bayeslin_jax/engine/sampling.py", "jnp.concatenate([jax.device_get(a) for a in per_dataset])",
        "jnp.concatenate([jax.device_get(a) for a in per_dataset[::-1]])",
        ["tests/test_study.py::test_uneven_split_over_two_devices_keeps_datasets_in_order"],
    ),
    "NIG: covariance scale b/a instead of b/(a-1)": (
        "bayeslin_jax/core/nig.py", "return (self.b / (self.a - 1.0))[..., None, None] * self.cov",
        "return (self.b / self.a)[..., None, None] * self.cov",
        ["tests/test_nig.py::test_nig_draws_match_closed_forms"],
    ),
    "Holm: step-down monotonicity dropped": (
        "bayeslin_jax/workflows/sbc/stats.py", "np.maximum.accumulate((m - np.arange(m)) * flat[order])",
        "(m - np.arange(m)) * flat[order]",
        ["tests/test_sbc.py::test_chi2_and_holm_known_values"],
    ),
    "SBC: gated simulations ranked anyway": (
        "bayeslin_jax/workflows/sbc/stats.py", "used = np.ones(total, dtype=bool) if include_failed else gate_ok",
        "used = np.ones(total, dtype=bool)",
        ["tests/test_sbc.py::test_gated_simulations_are_excluded_reported_and_too_many_fail"],
    ),
    "study report: NaN R-hat passes": (
        "bayeslin_jax/workflows/studies/report.py", '"rhat": ~(rhat <= checks.max_rhat),  # NaN fails',
        '"rhat": rhat > checks.max_rhat,',
        ["tests/test_study.py::test_report_lists_each_failing_check_in_csv_and_json"],
    ),
    # ---- issue 18: the three survivors and the two weak spots of the earlier round
    "whitening: fixed-design back-transform with A instead of A^T": (
        "bayeslin_jax/engine/whitening.py", 'samples["w"] @ jnp.asarray(white.matrix.T, dtype=dtype)',
        'samples["w"] @ jnp.asarray(white.matrix, dtype=dtype)',
        ["tests/test_real_data.py::test_fixed_design_whitened_sampler_matches_exact"],
    ),
    "calibrated warm-up: step update on the acceptance curve inverted": (
        "bayeslin_jax/engine/nuts.py", "jnp.sqrt(spread(target) / spread(accept))",
        "jnp.sqrt(spread(accept) / spread(target))",
        ["tests/test_infer.py::test_calibrated_step_size_inverts_the_asymptotic_acceptance_curve",
         "tests/test_infer.py::test_target_accept_is_honoured"],
    ),
    "barrier-free calibrated warm-up: rounds end one iteration early": (
        "bayeslin_jax/engine/barrier_free.py", "(lane.i - adaptive + 1) % round_length == 0",
        "(lane.i - adaptive) % round_length == 0",
        ["tests/test_barrier_free.py::test_float64_calibrated_warmup_follows_numpyro_path"],
    ),
    "engine: target_accept ignored (hard-coded 0.8)": (
        "bayeslin_jax/engine/nuts.py", "target_accept_prob=config.target_accept,", "target_accept_prob=0.8,",
        ["tests/test_infer.py::test_target_accept_is_honoured"],
    ),
    "design: transform rebuilds the formula from the new table": (
        "bayeslin_jax/workflows/design.py", "_evaluate(self.model_spec.get_model_matrix, table, self.formula)",
        '_evaluate(lambda t: __import__("formulaic").model_matrix(self.formula, t), table, self.formula)',
        ["tests/test_real_data.py::test_design_transform_uses_the_stored_formula_and_serves_prediction"],
    ),
    "exact: prior-mean term of the posterior mean dropped": (
        "bayeslin_jax/core/exact.py", "rhs = prior_precision @ prior.mean + phi.T @ y / sigma**2",
        "rhs = phi.T @ y / sigma**2",
        ["tests/test_exact_evidence.py::test_prior_mean_enters_both_oracles"],
    ),
    "SBC: rank jitter keyed by chunk position": (
        "bayeslin_jax/workflows/sbc/samplers.py", "jitter = _jitter(seed, indices, len(names))",
        "jitter = _jitter(seed, np.arange(len(indices)), len(names))",
        ["tests/test_sbc_user.py::test_rank_jitter_is_keyed_by_simulation_index_not_chunk_position"],
    ),
    # ---- ten more of our own (adaptation, whitening, design/formula, general engine, store, SBC verdict)
    "engine adaptation: warm-up scan runs a tenth of num_warmup": (
        "bayeslin_jax/engine/nuts.py", "state, (n_steps, _) = jax.lax.scan(warmup_step, state, length=adaptive)",
        "state, (n_steps, _) = jax.lax.scan(warmup_step, state, length=max(1, adaptive // 10))",
        ["tests/test_infer.py::test_target_accept_is_honoured",
         "tests/test_infer.py::test_nuts_matches_exact_posterior[1-independent]"],
    ),
    "whitening: data not shifted by the prior mean on a fixed design": (
        "bayeslin_jax/engine/whitening.py", "y_z = jnp.asarray(y) - jnp.asarray(design @ m0, dtype=dtype)",
        "y_z = jnp.asarray(y)",
        ["tests/test_real_data.py::test_fixed_design_whitened_sampler_matches_exact"],
    ),
    "whitening: log-Jacobian added to lp instead of subtracted": (
        "bayeslin_jax/engine/whitening.py", 'stats["lp"] = stats["lp"] - jnp.asarray(white.log_abs_det',
        'stats["lp"] = stats["lp"] + jnp.asarray(white.log_abs_det',
        ["tests/test_real_data.py::test_fixed_design_whitened_sampler_matches_exact"],
    ),
    "design: constant term next to the intercept accepted": (
        "bayeslin_jax/workflows/design.py", "if name != INTERCEPT and has_intercept and np.ptp(column) == 0:",
        "if name != INTERCEPT and has_intercept and np.ptp(column) < 0:",
        ["tests/test_real_data.py::test_bad_designs_are_one_line_errors"],
    ),
    "design: rank deficiency by one column missed": (
        "bayeslin_jax/workflows/design.py", "    if rank < d:", "    if rank < d - 1:",
        ["tests/test_real_data.py::test_bad_designs_are_one_line_errors"],
    ),
    "general engine: per-point arguments not sliced with the points": (
        "bayeslin_jax/core/model.py", "jax.tree.map(lambda a: a[rows], v) if k in sliced else v",
        "v", ["tests/test_user_hierarchical.py::test_per_point_arguments_detected_sliced_and_checked"],
    ),
    "general engine: n-dependent deterministic sites kept": (
        "bayeslin_jax/engine/sampling.py", 'and jnp.shape(smaller[name]["value"]) == jnp.shape(site["value"]))',
        "and True)", ["tests/test_user_hierarchical.py::test_per_point_arguments_detected_sliced_and_checked"],
    ),
    "store: every chunk verified against chunk 0's file": (
        "bayeslin_jax/workflows/store.py", "got = _crc(file(name, int(c)))", "got = _crc(file(name, 0))",
        ["tests/test_store_integrity.py::test_flipped_bytes_are_named_on_read_and_recomputed_on_resume"],
    ),
    "store: damaged chunks kept on resume": (
        "bayeslin_jax/workflows/store.py", "        _unmark(path, chunk)\n        done[chunk] = False",
        "        pass",
        ["tests/test_store_integrity.py::test_flipped_bytes_are_named_on_read_and_recomputed_on_resume"],
    ),
    "SBC verdict: an unconverged sampler reported as a calibration failure": (
        "bayeslin_jax/workflows/sbc/stats.py", 'verdict = "fail" if verdict == "fail" else "not converged"',
        'verdict = "fail"', ["tests/test_sbc.py::test_gated_simulations_are_excluded_reported_and_too_many_fail"],
    ),
    "device diagnostics: tail ESS at the lower quantile only": (
        "bayeslin_jax/diagnostics/device.py", "ess_tail = jnp.where(ess[2] < ess[1], ess[2], ess[1])",
        "ess_tail = ess[1]",
        ["tests/test_device_diagnostics.py", "tests/test_study.py::test_stored_diagnostics_equal_arviz_on_the_draws"],
    ),
    "device diagnostics: R-hat without the folded (tail) R-hat": (
        "bayeslin_jax/diagnostics/device.py", "rhat = jnp.where(rhats[1] > rhats[0], rhats[1], rhats[0])",
        "rhat = rhats[0]",
        ["tests/test_device_diagnostics.py"],
    ),
    "study summaries: dataset rows of a chunk computed at another chunk's position": (
        "bayeslin_jax/diagnostics/device.py", "return {key: jnp.concatenate([p[key] for p in parts])[:count]",
        "return {key: jnp.concatenate([p[key] for p in parts[::-1]])[:count]",
        ["tests/test_study.py::test_chunk_size_does_not_change_results",
         "tests/test_device_diagnostics.py::test_summarize_rows_is_draw_summaries_independent_of_row_count_and_position"],
    ),
}


def _copy_tree(dest: Path) -> None:
    for name in ("bayeslin_jax", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts" / "user_models", dest / "scripts" / "user_models",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _run_pytest(where: Path, tests: list[str], timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=str(where), JAX_PLATFORMS="cpu")
    start = time.perf_counter()
    probe = subprocess.run([sys.executable, "-c", "import bayeslin_jax; print(bayeslin_jax.__file__)"],
                           cwd=where, env=env, capture_output=True, text=True, check=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-rfE"],
                          cwd=where, env=env, capture_output=True, text=True, timeout=timeout)
    failed = sorted({m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)})
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return {"imported_from": probe.stdout.strip(), "returncode": proc.returncode, "failed": failed,
            "summary": summary, "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutations whose name contains this text (updates their rows)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    args = parser.parse_args()
    chosen = {k: v for k, v in MUTATIONS.items() if not args.only or args.only in k}
    results = {"command": "python scripts/mutation_check.py", "mutations": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        _copy_tree(base)
        all_tests = sorted({t for *_, tests in chosen.values() for t in tests})
        print(f"unmutated: {len(all_tests)} tests ...", flush=True)
        clean = _run_pytest(base, all_tests, args.timeout)
        results["unmutated"] = clean
        print(f"  {clean['summary']} ({clean['seconds']} s)", flush=True)
        if clean["returncode"] != 0:
            print("the chosen tests fail without any mutation:", clean["failed"], file=sys.stderr)
            return 1
        for name, (rel, original, mutated, tests) in chosen.items():
            work = Path(tmp) / "mutant"
            shutil.rmtree(work, ignore_errors=True)
            _copy_tree(work)
            target = work / rel
            text = target.read_text()
            if text.count(original) != 1:
                raise SystemExit(f"{name}: expected exactly one {original!r} in {rel}, found {text.count(original)}")
            target.write_text(text.replace(original, mutated))
            outcome = _run_pytest(work, tests, args.timeout)
            outcome.update(file=rel, original=original, mutated=mutated, tests=tests, caught=bool(outcome["failed"]))
            results["mutations"][name] = outcome
            verdict = "CAUGHT by " + ", ".join(outcome["failed"]) if outcome["caught"] else "NOT CAUGHT"
            print(f"{name}: {verdict} ({outcome['seconds']} s)", flush=True)
    if args.only and OUT.exists():  # update the chosen rows of the saved table, keep the others
        saved = json.loads(OUT.read_text())
        kept = {k: v for k, v in saved.get("mutations", {}).items() if k in MUTATIONS and k not in chosen}
        results["mutations"] = {**kept, **results["mutations"]}
        results["unmutated_subset"] = results["unmutated"]  # this run's: the chosen mutations' tests only
        results["unmutated"] = saved.get("unmutated", results["unmutated"])  # the full run's
    results["all_caught"] = all(m["caught"] for m in results["mutations"].values())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0 if results["all_caught"] else 1


if __name__ == "__main__":
    sys.exit(main())
