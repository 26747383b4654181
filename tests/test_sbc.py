"""Simulation-based calibration: the statistics, the runner, and proof that the checks work.

* The uniformity tests hold their level under exactly uniform ranks and agree with ArviZ's band.
* Correct inference passes (exact sampler; NUTS) at a fixed seed; deliberately broken inference
  (wrong prior, under-dispersed draws, shifted draws) fails. Sizes come from
  scripts/sbc_power.py (scripts/results/sbc_power.json, 100 seeds per setup): the exact-engine
  "detected" tests use >= 4x the smallest N flagged in >= 90% of seeds ((a) 400 -> 3000,
  (b) 100 -> 400, (c) 200 -> 800; all three were flagged in 100% of seeds at those sizes), and
  the under-dispersed NUTS test uses 150 (exact-engine (b) was flagged in 100/100 seeds at 100).
  The "no false alarm" tests run at family level 0.01 and also assert the smallest Holm-adjusted
  p-value; the family's false-alarm rate at level 0.05, measured over 1000 seeds, is 0.021-0.052
  for N from 25 to 6400 (largest at N = 400: 95% interval 0.039-0.068), i.e. at the nominal level.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from arviz_stats.ecdf_utils import simulate_confidence_bands

from bayeslin_jax import simulate
from bayeslin_jax.cli import main
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.priors import tutorial_spec
from bayeslin_jax.sbc import plots as sbc_plots
from bayeslin_jax.sbc import run as sbc
from bayeslin_jax.sbc import stats as sbc_stats

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


def test_ecdf_test_level_and_band_agreement() -> None:
    rng = np.random.default_rng(11)
    num, num_ranks, reps = 200, 19, 400
    ranks = rng.integers(0, num_ranks + 1, size=(num, reps))  # reps independent uniform rank sets
    _, p = sbc_stats.ecdf_test(ranks, num_ranks)
    rejected = (p < 0.05).mean()
    # level 0.05 (slightly conservative for discrete ranks): binomial 4-sigma window
    assert rejected <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / reps), rejected
    assert rejected >= 0.05 - 4 * np.sqrt(0.05 * 0.95 / reps), rejected
    # outside the simultaneous 95% band <=> p < 0.05 (up to Monte-Carlo ties of the null)
    _, lower, upper = sbc_stats.ecdf_band(num, num_ranks, 0.95)
    counts = np.cumsum(sbc_stats.rank_counts(ranks, num_ranks), axis=-1)[:, :-1]
    outside = ((counts < lower) | (counts > upper)).any(-1)
    assert np.mean(outside == (p < 0.05)) >= 0.99


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


def test_store_equals_in_memory_for_any_chunking(tmp_path) -> None:
    stored = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")
    again = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")  # resume
    memory = sbc.run_sbc(300, seed=4, sim_spec=SPEC, config=EXACT, chunk_size=300)
    np.testing.assert_array_equal(again["pit"].values, stored["pit"].values)  # resume: bit for bit
    np.testing.assert_array_equal(stored["rank"].values, memory["rank"].values)
    for name in ("pit", "truth", "post_mean"):  # other batch shapes: equal up to float32 rounding
        np.testing.assert_allclose(stored[name].values, memory[name].values, rtol=1e-5, atol=1e-6)
    with pytest.raises(BayeslinError, match="seed"):
        sbc.run_sbc(300, seed=5, sim_spec=SPEC, config=EXACT, chunk_size=100, store=tmp_path / "s")


def test_bad_settings_raise() -> None:
    with pytest.raises(BayeslinError, match="chains x draws >= L"):
        sbc.SbcConfig(engine="nuts", num_ranks=99, nuts=NutsConfig(num_draws=20, num_chains=2))
    with pytest.raises(BayeslinError, match="known noise"):
        from bayeslin_jax.priors import ModelSpec, half_normal_noise

        sbc.run_sbc(10, sim_spec=ModelSpec(SPEC.basis, SPEC.prior, half_normal_noise(0.2)), config=EXACT)
    with pytest.raises(BayeslinError, match="sd_scale"):
        sbc.Distortion(sd_scale=0.0)


# ---------------------------------------------------------------------------------------------
# Correct inference passes
# ---------------------------------------------------------------------------------------------


def test_exact_sampler_passes() -> None:
    ds = sbc.run_sbc(1000, seed=20, sim_spec=SPEC, config=EXACT)
    ranks = ds["rank"].values
    assert ranks.min() == 0 and ranks.max() == 99  # ranks live on {0..L}
    report = sbc_stats.summarize(ds, alpha=NO_FALSE_ALARM_ALPHA)
    holm_min = float(report.holm_min().min())
    assert report.verdict == "pass" and holm_min > 0.2, report.table()
    # coverage within the exact 95% binomial interval everywhere except by chance (24 intervals)
    inside = (report.coverage["lower"] <= np.array(sbc_stats.COVERAGE_LEVELS)) & (
        np.array(sbc_stats.COVERAGE_LEVELS) <= report.coverage["upper"])
    assert inside.mean() >= 0.8


def test_nuts_passes_and_matches_exact() -> None:
    ds = sbc.run_sbc(150, seed=21, sim_spec=SPEC, config=NUTS)
    report = sbc_stats.summarize(ds, alpha=NO_FALSE_ALARM_ALPHA)
    assert report.verdict == "pass", report.table()
    assert float(report.holm_min().min()) > 0.05, report.table()
    assert report.gates["num_failed"] <= 0.05 * 150
    # NUTS vs exact on the same datasets: z = (mean error) / MCSE ~ N(0, 1) per linear quantity
    comp = report.compare
    linear = ~np.isnan(comp["z_mean"])
    used = report.num_used
    assert np.all(np.abs(comp["z_mean"][linear]) < 4 * 1.2 / np.sqrt(used))  # 4 SE, z sd up to 1.2
    assert np.all(np.abs(comp["z_sd"][linear] - 1.0) < 4 / np.sqrt(2 * (used - 1)) + 0.1)  # 4 SE + MCSE bias
    assert np.all(np.abs(comp["sd_ratio_median"][linear] - 1.0) < 0.05)
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
    assert code == 1 and "overall: FAIL" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tmp_path, capsys) -> None:
    code = main(["sbc", "--out", str(tmp_path / "x"), "--engine", "exact", "--sigma-prior-scale", "0.5",
                 "--simulations", "10"])
    assert code == 2 and "known noise" in capsys.readouterr().err
    code = main(["sbc", "--out", str(tmp_path / "y"), "--chains", "1", "--draws", "50", "--simulations", "10"])
    assert code == 2 and "chains x draws >= L" in capsys.readouterr().err
