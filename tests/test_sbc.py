"""Simulation-based calibration: the statistics, the runner, and proof that the checks work.

* The uniformity tests hold their level under exactly uniform ranks and agree with ArviZ's band.
* Correct inference passes: the exact sampler over 40 independent runs, false alarms within the 0.999
  binomial quantile at level 0.05; NUTS at family level 0.001 (false-failure probability <= 0.001).
  Deliberately broken inference (wrong prior, wrong fit sigma, under-dispersed draws, shifted draws;
  too many gated simulations) fails. Sizes come from
  scripts/sbc_power.py (scripts/results/sbc_power.json, 100 seeds per setup): the exact-engine
  "detected" tests use >= 4x the smallest N flagged in >= 90% of seeds ((a) 400 -> 3000,
  (b) 100 -> 400, (c) 200 -> 800; all three were flagged in 100% of seeds at those sizes), and
  the under-dispersed NUTS test uses 150 (exact-engine (b) was flagged in 100/100 seeds at 100).
  The family's false-alarm rate at level 0.05, measured over 1000 seeds, is 0.021-0.052
  for N from 25 to 6400 (largest at N = 400: 95% interval 0.039-0.068), i.e. at the nominal level.
  Note: with 5000 null simulations the ECDF p-value is at least 1/5001, so Holm over ~22 tests cannot
  reject on the ECDF alone below alpha ~ 0.0044 (power checks run at alpha >= 0.01).
"""

from __future__ import annotations

import json

import arviz_stats as azs
import numpy as np
import pytest
import scipy.stats
import xarray as xr
from arviz_stats.base.array import array_stats
from arviz_stats.ecdf_utils import simulate_confidence_bands

from bayeslin_jax.core import nig, simulate
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import ModelSpec, half_normal_noise, known_noise, tutorial_spec
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows.sbc import plots as sbc_plots
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.sbc import stats as sbc_stats

SPEC = tutorial_spec()
EXACT = sbc.SbcConfig(engine="exact")
NUTS = sbc.SbcConfig(engine="nuts", nuts=NutsConfig(num_warmup=500, num_draws=500, num_chains=4))
NO_FALSE_ALARM_ALPHA = 0.01


# ---------------------------------------------------------------------------------------------
# Ranks and uniformity tests
# ---------------------------------------------------------------------------------------------


def test_rank_and_pit_convention_with_ties() -> None:
    # truth 0.5 among [0.1, 0.5, 0.5, 0.9]: 1 below, 2 tied -> rank uniform on {1, 2, 3}, L = 4
    draws = np.array([[[0.1], [0.5], [0.5], [0.9]]] * 3)
    truth = np.full((3, 1), 0.5)
    jitter = np.array([[0.0], [0.5], [0.999]])
    rank, pit = sbc.rank_and_pit(truth, draws, jitter, 4)
    np.testing.assert_allclose(np.asarray(pit)[:, 0], (1 + jitter[:, 0] * 3) / 5, rtol=1e-6)
    assert np.asarray(rank)[:, 0].tolist() == [1, 2, 3]
    assert sbc.thin_positions(400, 4).tolist() == [50, 150, 250, 350]


def _level_window(level: float, reps: int, null_sims: int) -> float:
    """4 binomial SEs of the rejection rate over ``reps`` rank sets plus 4 SEs of the Monte-Carlo null quantile."""
    return 4 * np.sqrt(level * (1 - level) / reps) + 4 * np.sqrt(level * (1 - level) / null_sims)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_ecdf_test_level_and_band_agreement() -> None:
    rng = np.random.default_rng(11)
    num, num_ranks, reps, null_sims = 200, 19, 20000, 20000
    ranks = rng.integers(0, num_ranks + 1, size=(num, reps))  # reps independent uniform rank sets
    _, p = sbc_stats.ecdf_test(ranks, num_ranks, num_sims=null_sims, seed=0)
    counts = np.cumsum(sbc_stats.rank_counts(ranks, num_ranks), axis=-1)[:, :-1]
    for level in (0.05, 0.01):
        window = _level_window(level, reps, null_sims)  # 0.012 at 0.05, 0.0056 at 0.01
        rejected = (p < level).mean()
        assert abs(rejected - level) <= window, (level, rejected, window)
        # the band from an independent null simulation (seed 1) holds the same level
        _, lower, upper = sbc_stats.ecdf_band(num, num_ranks, 1 - level, num_sims=null_sims, seed=1)
        outside = ((counts < lower) | (counts > upper)).any(-1)
        assert abs(outside.mean() - level) <= window, (level, outside.mean(), window)
        # band and p-value from the same null: the same decision (up to Monte-Carlo ties of the null)
        _, lower, upper = sbc_stats.ecdf_band(num, num_ranks, 1 - level, num_sims=null_sims, seed=0)
        outside = ((counts < lower) | (counts > upper)).any(-1)
        assert np.mean(outside == (p < level)) >= 0.995


def test_ecdf_band_matches_arviz_simultaneous_band() -> None:
    # with L = N - 1 the rank grid i/(L+1) is ArviZ's grid i/N for N continuous PIT values
    num = 100
    eval_points = np.arange(1, num) / num
    rng = np.random.default_rng(3)
    arviz_prob = simulate_confidence_bands(num, 1, eval_points, 0.95, 4000, rng)
    mine = 1.0 - np.quantile(sbc_stats._gamma_null(num, num - 1, 4000, 0), 0.05)
    # both Monte-Carlo quantiles (4000 draws) of the same statistic's distribution
    assert abs(arviz_prob - mine) < 0.002, (arviz_prob, mine)


def test_chi2_and_holm_known_values() -> None:
    ranks = np.repeat(np.arange(100), 3)[:, None]  # perfectly flat
    stat, p, bins = sbc_stats.chi2_test(ranks, 99)
    assert bins == 20 and stat[0] == 0.0 and p[0] == 1.0
    # skewed ranks on 0..22 (23 values: 5 bins of 5, 5, 5, 4, 4 values) against scipy on hand-made bins
    rng = np.random.default_rng(2)
    skewed = np.stack([np.minimum(rng.geometric(0.15, 150) - 1, 22), rng.integers(0, 23, 150)], axis=-1)
    stat, p, bins = sbc_stats.chi2_test(skewed, 22, num_bins=5)
    edges = [0, 5, 10, 15, 19, 23]
    for q in range(2):
        observed = np.histogram(skewed[:, q], bins=edges)[0]
        expected = 150 * np.diff(edges) / 23
        ref = scipy.stats.chisquare(observed, expected)
        assert stat[q] == pytest.approx(ref.statistic, rel=1e-12) and p[q] == pytest.approx(ref.pvalue, rel=1e-9)
    assert p[0] < 1e-6 < p[1]  # the skewed column is rejected
    assert sbc_stats.chi2_test(skewed, 22)[2] == 20  # default: min(20, L + 1, N / 5) bins
    adjusted = sbc_stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(sbc_stats.holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])


def test_coverage_of_uniform_grid_is_nominal() -> None:
    pit = ((np.arange(1000) + 0.5) / 1000)[:, None]
    cov = sbc_stats.coverage(pit)
    np.testing.assert_allclose(cov["observed"][0], sbc_stats.COVERAGE_LEVELS, atol=1e-3)
    assert np.all(cov["lower"][0] < sbc_stats.COVERAGE_LEVELS) and np.all(cov["upper"][0] > sbc_stats.COVERAGE_LEVELS)


# ---------------------------------------------------------------------------------------------
# Simulation and runner
# ---------------------------------------------------------------------------------------------


def test_simulation_is_keyed_by_index_and_scales_x() -> None:
    unit = simulate.prior_data(3, np.arange(8), SPEC, 11)
    part = simulate.prior_data(3, np.arange(5, 8), SPEC, 11, x_scale=5.0)
    full = simulate.prior_data(3, np.arange(8), SPEC, 11, x_scale=5.0)
    np.testing.assert_allclose(np.asarray(full.x), 5.0 * np.asarray(unit.x), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(full.w), np.asarray(unit.w))
    np.testing.assert_array_equal(np.asarray(part.y), np.asarray(full.y)[5:])
    np.testing.assert_allclose(np.abs(np.asarray(full.x)).max(), 5.0, atol=0.5)


def test_store_resumes_after_a_failed_chunk_and_equals_in_memory(tmp_path, monkeypatch) -> None:
    full = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "full")
    real_chunk, calls, fail_at = sbc.sbc_chunk, [], {200}

    def counting_chunk(indices, **kwargs):
        calls.append(int(indices[0]))
        if calls[-1] in fail_at:
            raise RuntimeError("injected failure in the last chunk")
        return real_chunk(indices, **kwargs)

    monkeypatch.setattr(sbc, "sbc_chunk", counting_chunk)
    with pytest.raises(RuntimeError, match="injected"):
        sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")
    assert calls == [0, 100, 200]
    fail_at.clear()
    calls.clear()
    resumed = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")
    assert calls == [200]  # only the chunk that failed is computed again
    for name in resumed.data_vars:  # same chunk shapes, same compiled program: bit for bit
        np.testing.assert_array_equal(resumed[name].values, full[name].values, err_msg=name)
    memory = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=300)
    np.testing.assert_array_equal(resumed["rank"].values, memory["rank"].values)
    for name in ("pit", "truth", "post_mean"):  # other batch shapes: equal up to float32 rounding
        np.testing.assert_allclose(resumed[name].values, memory[name].values, rtol=1e-5, atol=1e-6)
    with pytest.raises(BayeslinError, match="seed"):
        sbc.run_sbc(300, seed=5, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")


def test_bad_settings_raise() -> None:
    with pytest.raises(BayeslinError, match="chains x draws >= L"):
        sbc.SbcConfig(engine="nuts", num_ranks=99, nuts=NutsConfig(num_draws=20, num_chains=2))
    with pytest.raises(BayeslinError, match="known noise"):
        sbc.run_sbc(10, sim_spec=ModelSpec(SPEC.basis, SPEC.prior, half_normal_noise(0.2)), config=EXACT)
    with pytest.raises(BayeslinError, match="sd_scale"):
        sbc.Distortion(sd_scale=0.0)


# ---------------------------------------------------------------------------------------------
# Correct inference passes
# ---------------------------------------------------------------------------------------------


FALSE_ALARM_RUNS, FALSE_ALARM_N, FALSE_ALARM_LEVEL = 40, 100, 0.05


def test_exact_sampler_false_alarms_within_binomial_bound() -> None:
    """40 independent SBC runs of N = 100 (disjoint simulation indices, one vectorised exact-engine call).

    Each run's verdict family (Holm over ECDF, chi-square, DAP tests) rejects a calibrated sampler with
    probability <= 0.05 (measured 0.021-0.052, module docstring); the test allows up to the 0.999 binomial
    quantile of false alarms, so it fails a correct sampler with probability <= 0.001.
    """
    ds = sbc.run_sbc(FALSE_ALARM_RUNS * FALSE_ALARM_N, seed=20, sim_spec=SPEC, config=EXACT)
    ranks = ds["rank"].values
    assert ranks.min() == 0 and ranks.max() == 99  # ranks live on {0..L}
    dap_mask = sbc_stats.dap_in_family(ds["quantity"].values)
    alarms = 0
    for run in np.split(np.arange(ranks.shape[0]), FALSE_ALARM_RUNS):
        sub = ds.isel(dataset=run)
        tests = sbc_stats.calibration_tests(sub["rank"].values, sub["truth"].values, sub["post_mean"].values,
                                            sub["post_sd"].values, 99, dap_mask)
        alarms += int(np.nanmin(tests["holm"]) < FALSE_ALARM_LEVEL)
    bound = scipy.stats.binom.ppf(0.999, FALSE_ALARM_RUNS, FALSE_ALARM_LEVEL)  # 7 of 40
    assert alarms <= bound, (alarms, bound)
    # the whole set (N = 4000): the verdict, and coverage inside its exact 95% intervals but for chance (24)
    report = sbc_stats.summarize(ds, alpha=NO_FALSE_ALARM_ALPHA)
    assert report.verdict == "pass", report.table()
    inside = (report.coverage["lower"] <= np.array(sbc_stats.COVERAGE_LEVELS)) & (
        np.array(sbc_stats.COVERAGE_LEVELS) <= report.coverage["upper"])
    assert inside.mean() >= 0.8


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_nuts_passes_and_matches_exact() -> None:
    ds = sbc.run_sbc(150, seed=21, sim_spec=SPEC, config=NUTS)
    report = sbc_stats.summarize(ds, alpha=0.001)  # fails a calibrated sampler with probability <= 0.001
    assert report.verdict == "pass", report.table()
    assert report.gates["num_failed"] <= 0.05 * 150
    # NUTS vs exact on the same datasets: z = (mean error) / MCSE ~ N(0, 1) per linear quantity
    comp = report.compare
    linear = ~np.isnan(comp["z_mean"])
    used = report.num_used
    assert np.all(np.abs(comp["z_mean"][linear]) < 4 * 1.2 / np.sqrt(used))  # 4 SE, z sd up to 1.2
    assert np.all(np.abs(comp["z_sd"][linear] - 1.0) < 4 / np.sqrt(2 * (used - 1)) + 0.1)  # 4 SE + MCSE bias
    # median of sd_nuts / sd_exact within 4 SE of 1 (SE of a median: 1.2533 sd / sqrt(N)), ~0.01 here,
    # so draws 4% too narrow fail
    used_ds = ds.isel(dataset=np.flatnonzero(ds["gate_ok"].values))
    ratio = (used_ds["post_sd"] / used_ds["exact_sd"]).values[:, linear]
    bound = 4 * 1.2533 * ratio.std(0, ddof=1) / np.sqrt(used)
    assert np.all(bound < 0.02), bound
    assert np.all(np.abs(comp["sd_ratio_median"][linear] - 1.0) < bound), (comp["sd_ratio_median"], bound)
    pc = sbc_plots.plot_nuts_vs_exact(ds)  # one ECDF panel per linear quantity
    assert len([ax for ax in pc.viz["figure"].item().axes if ax.get_visible()]) == int(linear.sum())


# ---------------------------------------------------------------------------------------------
# Broken inference is flagged
# ---------------------------------------------------------------------------------------------


def test_wrong_fit_prior_is_flagged() -> None:
    # (a) fit prior sd 0.4, simulation prior sd 0.2: flagged via the data-averaged posterior
    ds = sbc.run_sbc(3000, seed=22, sim_spec=SPEC, fit_spec=sbc.with_prior_scale(SPEC, 0.4), config=EXACT)
    report = sbc_stats.summarize(ds)
    assert report.verdict == "fail", report.table()
    assert report.dap["p_moment_holm"][list(report.quantities).index("m")] < 1e-3
    assert report.dap["dap_sd"][1] > report.dap["prior_sd"][1]  # too-wide prior -> too-wide average posterior


@pytest.mark.parametrize(
    ("distortion", "num", "flagged"),
    [
        (sbc.Distortion(sd_scale=0.7), 400, ["b", "m", "loglik", "mu(x=-1)", "mu(x=0.5)", "mu(x=1.5)"]),
        (sbc.Distortion(shift_sd=0.25), 800, ["b", "m", "mu(x=0.5)", "mu(x=1.5)"]),
    ],
    ids=["underdispersed", "shifted"],
)
def test_distorted_exact_draws_are_flagged(distortion, num, flagged) -> None:
    config = sbc.SbcConfig(engine="exact", distortion=distortion)
    report = sbc_stats.summarize(sbc.run_sbc(num, seed=23, sim_spec=SPEC, config=config))
    assert report.verdict == "fail", report.table()
    verdicts = dict(zip(report.quantities, report.quantity_verdicts(), strict=True))
    assert all(verdicts[q] == "FAIL" for q in flagged), report.table()
    if distortion.sd_scale < 1:  # under-dispersion: too few truths inside the central intervals
        assert np.all(report.coverage["upper"][:2] < np.array(sbc_stats.COVERAGE_LEVELS))


def test_underdispersed_nuts_is_flagged() -> None:
    config = sbc.SbcConfig(engine="nuts", nuts=NUTS.nuts, distortion=sbc.Distortion(sd_scale=0.7))
    report = sbc_stats.summarize(sbc.run_sbc(150, seed=21, sim_spec=SPEC, config=config))
    assert report.verdict == "fail", report.table()
    verdicts = dict(zip(report.quantities, report.quantity_verdicts(), strict=True))
    assert verdicts["b"] == verdicts["m"] == "FAIL", report.table()  # both weights' ranks, at family alpha
    assert np.all(report.coverage["upper"][:2] < np.array(sbc_stats.COVERAGE_LEVELS))  # too few truths covered


def test_wrong_fit_sigma_is_flagged() -> None:
    """A fit that assumes sigma = 0.2 for data made with 0.1: posteriors twice too wide, truths bunch mid-rank."""
    fit_spec = ModelSpec(SPEC.basis, SPEC.prior, known_noise(0.2))
    report = sbc_stats.summarize(sbc.run_sbc(400, seed=25, sim_spec=SPEC, fit_spec=fit_spec, config=EXACT))
    assert report.verdict == "fail", report.table()
    verdicts = dict(zip(report.quantities, report.quantity_verdicts(), strict=True))
    assert verdicts["b"] == verdicts["m"] == "FAIL", report.table()
    assert np.all(report.coverage["lower"][:2] > np.array(sbc_stats.COVERAGE_LEVELS))  # over-coverage


def _gated(ds, failed: np.ndarray):
    """An exact-engine SBC dataset relabelled as NUTS output whose ``failed`` simulations miss the gate;
    their ranks are replaced by 0 (what a stuck sampler gives), so ranking them would fail uniformity."""
    out = ds.copy(deep=True)
    meta = json.loads(out.attrs["meta"])
    meta["config"].update(engine="nuts", rhat_max=1.01, max_divergences=0)
    out.attrs["meta"] = json.dumps(meta)
    num = out.sizes["dataset"]
    out["rhat"] = (("dataset", "quantity"), np.where(failed[:, None], 1.2, 1.001) * np.ones((1, out.sizes["quantity"])))
    out["ess_bulk"] = xr.full_like(out["rhat"], 800.0)
    out["ess_tail"] = xr.full_like(out["rhat"], 700.0)
    out["divergences"] = ("dataset", np.zeros(num, dtype=np.int32))
    out["gate_ok"] = ("dataset", ~failed)
    out["rank"] = out["rank"].where(~failed[:, None], 0)
    return out


def test_gated_simulations_are_excluded_reported_and_too_many_fail() -> None:
    ds = sbc.run_sbc(400, seed=26, sim_spec=SPEC, config=EXACT)
    few, many = np.zeros(400, dtype=bool), np.zeros(400, dtype=bool)
    few[::25] = True  # 16 of 400 = 4% gated
    many[::10] = True  # 40 of 400 = 10% gated
    # alpha 0.001: a calibrated sampler's ranks fail with probability <= 0.001
    report = sbc_stats.summarize(_gated(ds, few), alpha=0.001)
    assert report.verdict == "pass" and report.num_used == 384, report.table()
    assert report.gates["num_failed"] == report.gates["rhat_fail"] == 16 and not report.gates["included"]
    assert report.gates["failed_examples"] == list(range(0, 400, 25))
    assert "16 of 400 simulations failed" in report.table() and "excluded from the tests" in report.table()
    # ranked anyway: 16 extra zeros among 400 ranks on 0..99 (expected 4 per value) are caught
    # (at alpha 0.01: the ECDF p-value floor 1/5001, times 22 Holm tests, is 0.0044)
    included = sbc_stats.summarize(_gated(ds, few), alpha=0.01, include_failed=True)
    assert included.num_used == 400 and included.gates["included"]
    assert included.verdict == "fail" and included.reasons[0].startswith("ranks not uniform"), included.table()
    # more than 5% gated: unreliable inference, whatever the ranks of the others say
    report = sbc_stats.summarize(_gated(ds, many), alpha=0.001)
    assert report.num_used == 360
    assert report.verdict == "not converged" and not report.passed, report.table()
    assert report.reasons == ["sampler did not converge on 10.0 % of simulations (40/400 failed the diagnostics "
                              "gate: R-hat 40)"], report.table()
    assert report.gates["fraction_failed"] == 0.1 and report.gates["by_check"]["R-hat"] == 40
    assert "overall: NOT CONVERGED" in report.table() and "R-hat 40 (10.0 %)" in report.table()


@pytest.mark.slow  # compiles NUTS with learnt sigma: keeps the default suite within its budget
def test_learnt_sigma_is_a_test_quantity_with_the_right_values() -> None:
    """Unknown noise: ``sigma`` is ranked; its truth is the simulated sigma, its posterior mean matches the
    quadrature reference within 5 MCSE (sd / sqrt(ESS)), and loglik uses the true sigma."""
    spec = ModelSpec(SPEC.basis, SPEC.prior, half_normal_noise(0.2))
    config = sbc.SbcConfig(engine="nuts", nuts=NutsConfig(num_warmup=400, num_draws=500, num_chains=4))
    indices = np.arange(3)
    ds = sbc.sbc_chunk(indices, seed=27, sim_spec=spec, config=config)
    names = [str(q) for q in ds["quantity"].values]
    assert names == ["b", "m", "sigma", "loglik", "mu(x=-1)", "mu(x=0.5)", "mu(x=1.5)"]
    assert "exact_mean" not in ds
    data = simulate.prior_data(27, indices, spec, 11)
    x, y, sigma = (np.asarray(a, dtype=np.float64) for a in (data.x, data.y, data.sigma))
    truth = ds["truth"].sel(quantity="sigma").values
    np.testing.assert_allclose(truth, sigma, rtol=1e-6)
    w = np.asarray(data.w, dtype=np.float64)
    loglik = scipy.stats.norm.logpdf(y, w[:, :1] + w[:, 1:] * x, sigma[:, None]).sum(-1)
    np.testing.assert_allclose(ds["truth"].sel(quantity="loglik").values, loglik, rtol=1e-4)
    ref = nig.unknown_noise_reference(np.stack([np.ones_like(x), x], -1), y, spec.prior, spec.noise)
    mcse = ds["post_sd"].sel(quantity="sigma").values / np.sqrt(ds["ess_bulk"].sel(quantity="sigma").values)
    err = np.abs(ds["post_mean"].sel(quantity="sigma").values - ref.sigma_mean)
    assert np.all(err < 5 * mcse), (err, mcse)
    rank = ds["rank"].sel(quantity="sigma").values
    assert np.all((rank >= 0) & (rank <= 99))


def test_tail_ess_is_arviz_default_everywhere() -> None:
    """One tail ESS: ArviZ's own ``ess(method="tail")`` default, i.e. the min of the quantile ESS at ``1 - p``
    and ``p`` (p = ci_prob), on the host (fits) and on the device (studies, the SBC gate)."""
    rng = np.random.default_rng(4)
    draws = np.cumsum(rng.normal(size=(3, 2, 4, 200)), axis=-1) * 0.1 + rng.normal(size=(3, 2, 4, 200))
    got = diagnostics.chain_diagnostics(draws)["ess_tail"]
    p = diagnostics.tail_prob()
    ref = np.minimum(array_stats.ess(draws, method="quantile", prob=1 - p),
                     array_stats.ess(draws, method="quantile", prob=p))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    arviz = azs.ess(xr.DataArray(draws, dims=["a", "q", "chain", "draw"]), method="tail").values
    np.testing.assert_allclose(got, arviz, rtol=1e-12)
    assert not np.allclose(got, array_stats.ess(draws, method="tail", prob=0.05))
    # the gate's (B, P, C, S) = 3 simulations x 2 quantities x 4 chains x 200 draws, in float32 on the device
    gate_diag, _, _ = sbc.convergence_gate(draws.astype(np.float32), np.zeros((3, 4)), num_ranks=50, rhat_max=1.01,
                                           max_divergences=0)
    np.testing.assert_allclose(gate_diag["ess_tail"], arviz, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_pass_fail_json_and_plots(tmp_path, capsys) -> None:
    out, js, plots = tmp_path / "store", tmp_path / "sbc.json", tmp_path / "plots"
    code = main(["sbc", "--out", str(out), "--engine", "exact", "--simulations", "400", "--json", str(js),
                 "--plots", str(plots), "--no-progress", "--alpha", "0.01", "--seed", "24"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "overall: PASS" in text and "simulations/s" in text
    payload = json.loads(js.read_text())
    assert isinstance(payload["gates"]["included"], bool)
    assert payload["verdict"] == "pass" and payload["num_simulations"] == 400
    assert set(payload["quantities"]) == {"b", "m", "loglik", "mu(x=-1)", "mu(x=0.5)", "mu(x=1.5)"}
    for name in ("sbc_ecdf_pit.png", "sbc_rank_hist.png", "sbc_coverage.png"):
        assert (plots / name).stat().st_size > 10_000
    code = main(["sbc", "--out", str(tmp_path / "broken"), "--engine", "exact", "--simulations", "400",
                 "--distort-sd", "0.7", "--no-progress"])
    assert code == 1 and "overall: calibration FAIL" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tmp_path, capsys) -> None:
    code = main(["sbc", "--out", str(tmp_path / "x"), "--engine", "exact", "--sigma-prior-scale", "0.5",
                 "--simulations", "10"])
    assert code == 2 and "known noise" in capsys.readouterr().err
    code = main(["sbc", "--out", str(tmp_path / "y"), "--chains", "1", "--draws", "50", "--simulations", "10"])
    assert code == 2 and "chains x draws >= L" in capsys.readouterr().err
