"""The barrier-free (finite-state-machine) NUTS against NumPyro's kernel, exact posteriors and SBC.

* float64: with the same run keys a lane follows the ``map`` engine's chain (NumPyro's ``hmc``) draw
  for draw, up to rounding (the FSM consumes NumPyro's keys in NumPyro's order); in float32 the
  vectorized rounding eventually takes NUTS down another path, so the rest is statistical;
* lane bookkeeping: the per-lane leapfrog counts equal the recorded ``n_steps``;
* (slow) every built-in spec against its exact posterior (unknown sigma: the quadrature reference)
  within 4 MCSE; distributions of draws, tree sizes and adapted step sizes against NumPyro's kernel
  on independent seeds; an SBC pass.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.stats

from bayeslin_jax.core import exact, nig, priors, simulate
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import linear as linear_model
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.engine import SUMMARY_STAT_NAMES, NutsConfig, sample_nuts, summarize_draw_stats
from bayeslin_jax.engine.barrier_free import lane_utilization


def _config(method: str, **kw) -> NutsConfig:
    return NutsConfig(**{"num_warmup": 500, "num_draws": 1000, "num_chains": 4, "method": method, **kw})


@pytest.fixture(scope="module")
def float64_pair():
    """Both engines on 4 datasets x 2 chains, 50 + 100 iterations, in float64; the FSM has 3 lanes
    for the 8 runs (a lane that finishes its run takes the next one from the queue)."""
    config = {"num_warmup": 50, "num_draws": 100, "num_chains": 2}
    with jax.enable_x64(True):
        spec = priors.tutorial_spec()
        data = simulate.tutorial_data(0, np.arange(4))
        phi = spec.basis(data.x)
        fsm = _config("barrier_free", batch_size=3, **config)
        runs = {
            "barrier_free": sample_nuts(3, phi, data.y, spec.prior, spec.noise, fsm),
            "map": sample_nuts(3, phi, data.y, spec.prior, spec.noise, _config("map", **config)),
        }
        runs["reduced"] = summarize_draw_stats(runs["barrier_free"].stats, fsm.max_tree_depth)
        return runs


def test_float64_same_chains_as_numpyro(float64_pair) -> None:
    fsm, ref = float64_pair["barrier_free"], float64_pair["map"]
    assert fsm.samples["w"].dtype == np.float64
    # rounding differs (vectorized vs one run at a time): ~1e-9 after warm-up, far below 1e-6
    np.testing.assert_allclose(np.asarray(fsm.samples["w"]), np.asarray(ref.samples["w"]), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(np.asarray(fsm.stats["n_steps"]), np.asarray(ref.stats["n_steps"]))
    np.testing.assert_allclose(np.asarray(fsm.stats["step_size"]), np.asarray(ref.stats["step_size"]), rtol=1e-6)


def test_shapes_and_lane_counts(float64_pair) -> None:
    result = float64_pair["barrier_free"]
    assert result.samples["w"].shape == (4, 2, 100, 2)
    assert set(result.stats) == set(float64_pair["map"].stats)
    for name, value in result.stats.items():
        assert value.shape == (4, 2, 100), name
        assert value.dtype == float64_pair["map"].stats[name].dtype, name
    (counts,) = result.lanes
    assert counts.warmup_steps.shape == (8,) and int(counts.lanes) == 3
    # every sampling-phase leapfrog of a run is one of its recorded n_steps
    np.testing.assert_array_equal(
        np.asarray(counts.sampling_steps).reshape(4, 2), np.asarray(result.stats["n_steps"]).sum(-1)
    )
    busy = np.asarray(counts.warmup_steps) + np.asarray(counts.sampling_steps)
    loop_steps = int(counts.loop_steps)
    assert busy.max() <= loop_steps < busy.sum() / 3 + busy.max()  # the queue keeps the lanes busy
    util = lane_utilization(*result.lanes)
    assert util["overall"] == pytest.approx(busy.sum() / (3 * loop_steps))
    assert int(counts.idle_warmup) + int(counts.idle_sampling) == 3 * loop_steps - busy.sum()
    assert all(0 < util[k] <= 1 for k in ("overall", "warmup", "sampling"))
    assert float64_pair["map"].lanes is None


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_float64_calibrated_warmup_follows_numpyro_path() -> None:
    """With ``calibrate_step_size`` both engines run the same rounds: the same adapted step sizes and draws.

    Over 200 warm-up iterations rounding already takes some float64 chains down another tree (measured: up to
    3e-3 relative in the step size of 1 or 2 of 8 runs, with or without calibration), so most runs, not all,
    must agree to rounding; a misplaced round would move every run's step by percents.
    """
    config = {"num_warmup": 200, "num_draws": 100, "num_chains": 2, "calibrate_step_size": True}
    with jax.enable_x64(True):
        spec = priors.tutorial_spec()
        data = simulate.tutorial_data(0, np.arange(4))
        phi = spec.basis(data.x)
        fsm = sample_nuts(4, phi, data.y, spec.prior, spec.noise, _config("barrier_free", batch_size=3, **config))
        ref = sample_nuts(4, phi, data.y, spec.prior, spec.noise, _config("map", **config))
    step, ref_step = (np.asarray(r.stats["step_size"])[..., -1].ravel() for r in (fsm, ref))
    rel = np.abs(step / ref_step - 1)
    assert np.mean(rel < 1e-5) >= 0.5 and rel.max() < 0.05, rel
    same = np.abs(np.asarray(fsm.samples["w"]) - np.asarray(ref.samples["w"])).max((2, 3)).ravel() < 1e-5
    assert same.mean() >= 0.5, same


@pytest.mark.slow  # one more float64 compile (~6 s)
def test_fsm_summaries_equal_the_reduction_of_its_per_draw_stats(float64_pair) -> None:
    """``draw_stats=False``: the FSM accumulates the summaries in its lanes (no (R, S) statistics); they equal
    ``summarize_draw_stats`` of its per-draw statistics (the mean acceptance up to summation order), and the
    draws are the same."""
    config = {"num_warmup": 50, "num_draws": 100, "num_chains": 2}
    with jax.enable_x64(True):  # the fixture's run once more, with draw_stats=False
        spec = priors.tutorial_spec()
        data = simulate.tutorial_data(0, np.arange(4))
        reduced = sample_nuts(3, spec.basis(data.x), data.y, spec.prior, spec.noise,
                              _config("barrier_free", batch_size=3, **config), draw_stats=False)
    expected, full = float64_pair["reduced"], float64_pair["barrier_free"]
    np.testing.assert_array_equal(np.asarray(reduced.samples["w"]), np.asarray(full.samples["w"]))
    assert set(reduced.stats) == set(SUMMARY_STAT_NAMES)
    for name in SUMMARY_STAT_NAMES:
        got, want = np.asarray(reduced.stats[name]), np.asarray(expected[name])
        assert got.shape == (4, 2) and got.dtype == want.dtype, name
        if name == "mean_accept":
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
        else:  # counts, means of integers (exact sums), the last step size
            np.testing.assert_array_equal(got, want, err_msg=name)
    assert np.all(np.asarray(expected["mean_leapfrog"]) > 1.0)


@pytest.mark.slow
def test_float64_same_chains_dense_mass_unknown_noise() -> None:
    """The dense mass matrix (Welford covariance, Cholesky momenta) and a constrained site (sigma)."""
    config = {"num_warmup": 60, "num_draws": 100, "num_chains": 2, "dense_mass": True}
    with jax.enable_x64(True):
        spec = priors.ModelSpec(Polynomial(2), priors.independent_normal(0.0, 1.0, 3), priors.half_normal_noise(1.0))
        data = simulate.prior_data(4, np.arange(3), spec)
        phi = spec.basis(data.x)
        fsm = sample_nuts(5, phi, data.y, spec.prior, spec.noise, _config("barrier_free", batch_size=4, **config))
        ref = sample_nuts(5, phi, data.y, spec.prior, spec.noise, _config("map", **config))
    for site in ("w", "sigma"):
        np.testing.assert_allclose(np.asarray(fsm.samples[site]), np.asarray(ref.samples[site]), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(np.asarray(fsm.stats["n_steps"]), np.asarray(ref.stats["n_steps"]))


def test_bad_method_raises() -> None:
    with pytest.raises(BayeslinError, match="barrier_free"):
        NutsConfig(method="fsm")


# ---------------------------------------------------------------------------------------------
# Slow statistical checks
# ---------------------------------------------------------------------------------------------

NUM_DATASETS = 3


def _ar1_mvn(dim: int, scale: float = 0.2, rho: float = -0.5):
    lags = np.abs(np.subtract.outer(np.arange(dim), np.arange(dim)))
    return priors.mvn(np.zeros(dim), scale**2 * rho**lags)


def _spec(name: str) -> priors.ModelSpec:
    if name == "linear":
        return priors.tutorial_spec()
    if name == "linear_mvn":
        return priors.tutorial_spec("mvn")
    if name == "half_normal":
        return priors.ModelSpec(Polynomial(1), priors.independent_normal(0.0, 1.0, 2), priors.half_normal_noise(1.0))
    degree = int(name[4])  # "polyK" or "polyK_mvn"
    prior = priors.independent_normal(0.0, 0.2, degree + 1) if "mvn" not in name else _ar1_mvn(degree + 1)
    return priors.ModelSpec(Polynomial(degree), prior, priors.known_noise(0.1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "linear_mvn", "poly3", "poly4_mvn", "poly5", "half_normal"])
def test_matches_exact_posterior(name: str) -> None:
    spec = _spec(name)
    if spec.basis.degree == 1:
        data = simulate.tutorial_data(5, np.arange(NUM_DATASETS))
    else:
        data = simulate.prior_data(5, np.arange(NUM_DATASETS), spec)
    phi = spec.basis(data.x)
    result = sample_nuts(6, phi, data.y, spec.prior, spec.noise, _config("barrier_free"))
    table = diagnostics.posterior_summary(
        model_datatree(result, linear_model(spec), phi, data.y, include_log_likelihood=False)
    )
    assert int(table["divergences"].sum()) == 0
    assert float(table["rhat"].max()) < 1.01
    if spec.known_sigma:
        post = exact.posterior(phi, data.y, spec.prior, spec.noise.sigma)
        mean, sd = np.asarray(post.mean), np.asarray(post.sd)
    else:
        ref = nig.unknown_noise_reference(phi, data.y, spec.prior, spec.noise)
        mean, sd = ref.mean, np.sqrt(np.diagonal(ref.cov, axis1=-2, axis2=-1))
        sigma = table.sel(parameter="sigma")
        sigma_err = np.abs(sigma["mean"].values - ref.sigma_mean)
        assert np.all(sigma_err < 4 * sigma["mcse_mean"].values), sigma_err
        sigma_sd_err = np.abs(sigma["sd"].values - ref.sigma_sd)
        assert np.all(sigma_sd_err < 4 * sigma["mcse_sd"].values), sigma_sd_err
    table = table.sel(parameter=list(spec.feature_names))
    assert np.all(np.abs(table["mean"].values - mean) < 4 * table["mcse_mean"].values)
    assert np.all(np.abs(table["sd"].values - sd) < 4 * table["mcse_sd"].values)


@pytest.fixture(scope="module")
def independent_pair():
    """Both engines on the same 50 datasets x 4 chains with independent seeds (200 runs each)."""
    spec = priors.tutorial_spec()
    data = simulate.tutorial_data(9, np.arange(50))
    phi = spec.basis(data.x)
    post = exact.posterior(phi, data.y, spec.prior, spec.noise.sigma)
    config = {"num_warmup": 300, "num_draws": 200}
    fsm = sample_nuts(10, phi, data.y, spec.prior, spec.noise, _config("barrier_free", **config))
    ref = sample_nuts(11, phi, data.y, spec.prior, spec.noise, _config("map", **config))
    return fsm, ref, post


def _welch_z(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


@pytest.mark.slow
def test_statistically_equivalent_to_numpyro(independent_pair) -> None:
    assert_equivalent(*independent_pair)


def assert_equivalent(fsm, ref, post) -> None:
    """The FSM's draws, tree sizes, acceptance and adapted step sizes against NumPyro's kernel (``ref``,
    independent seeds) on the tutorial model; ``post``: the exact posterior. Also used by tests/test_gpu.py."""
    num_draws = np.shape(fsm.stats["tree_depth"])[-1]
    mean, sd = np.asarray(post.mean)[:, None, None], np.asarray(post.sd)[:, None, None]
    # draws standardized by the exact posterior, every 20th draw (NUTS on these posteriors has
    # ESS near the number of draws, so the thinned draws are close to independent)
    z = {name: ((np.asarray(r.samples["w"]) - mean) / sd)[:, :, ::20].reshape(-1, 2) for name, r in
         (("fsm", fsm), ("ref", ref))}  # fmt: skip
    for k in range(2):
        assert scipy.stats.ks_2samp(z["fsm"][:, k], z["ref"][:, k]).pvalue > 1e-4
        assert scipy.stats.kstest(z["fsm"][:, k], "norm").pvalue > 1e-4
    # one value per run (runs are independent): tree sizes, depths, adapted step sizes
    for stat in ("n_steps", "tree_depth", "acceptance_rate"):
        a = np.asarray(fsm.stats[stat], dtype=float).mean(-1).ravel()
        b = np.asarray(ref.stats[stat], dtype=float).mean(-1).ravel()
        assert abs(_welch_z(a, b)) < 4, stat
    step_a = np.log(np.asarray(fsm.stats["step_size"])[..., 0].ravel())
    step_b = np.log(np.asarray(ref.stats["step_size"])[..., 0].ravel())
    assert abs(_welch_z(step_a, step_b)) < 4
    assert scipy.stats.ks_2samp(step_a, step_b).pvalue > 1e-4
    # tree-depth histograms: a run's draws share its step size, so the run (not the draw) is the
    # independent unit (a pooled chi-square over draws is overdispersed); per depth, compare the
    # per-run fractions of draws at that depth across the runs
    depth_a, depth_b = (np.asarray(r.stats["tree_depth"]).reshape(-1, num_draws) for r in (fsm, ref))
    for level in np.union1d(depth_a, depth_b):
        frac_a, frac_b = (depth_a == level).mean(-1), (depth_b == level).mean(-1)
        if max(frac_a.mean(), frac_b.mean()) > 0.01:
            assert abs(_welch_z(frac_a, frac_b)) < 4, level


@pytest.mark.slow
def test_sbc_passes() -> None:
    from bayeslin_jax.workflows.sbc import run as sbc
    from bayeslin_jax.workflows.sbc import stats as sbc_stats

    config = sbc.SbcConfig(engine="nuts", nuts=_config("barrier_free", num_warmup=500, num_draws=500))
    ds = sbc.run_sbc(300, seed=31, sim_spec=priors.tutorial_spec(), config=config)
    report = sbc_stats.summarize(ds, alpha=0.01)
    assert report.verdict == "pass", report.table()
    assert float(report.holm_min().min()) > 0.01, report.table()
    assert report.gates["num_failed"] <= 0.05 * 300


@pytest.mark.slow
def test_study_with_barrier_free(tmp_path) -> None:
    """A study chunk slices the result's samples and stats per dataset (the lane counts are per device)."""
    from bayeslin_jax.workflows.studies import run as study

    nuts = _config("barrier_free", num_warmup=200, num_draws=200, num_chains=2)
    config = study.StudyConfig(num_datasets=5, seed=2, nuts=nuts, simulator="tutorial", chunk_size=3)
    ds = study.run_study(tmp_path / "s.zarr", priors.tutorial_spec(), config, progress=False)
    assert ds.sizes["dataset"] == 5
    assert int(ds["divergences"].sum()) == 0
    z = (ds["nuts_mean"] - ds["exact_mean"]) / ds["mcse_mean"]
    assert float(np.abs(z).max()) < 5
