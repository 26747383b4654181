"""The general-model engine on every layout: the barrier-free FSM runs any Model exactly as ``map`` does.

* float64, Student-t regression (nu = 4) with unknown sigma (a constrained latent: its Jacobian is in the
  potential): with the same run keys a barrier-free lane follows the ``map`` engine's chain (NumPyro's
  ``hmc``) up to rounding, with the same tree sizes, here seen through the summaries that the FSM
  accumulates in its lanes for ``draw_stats=False`` (equal to :func:`summarize_draw_stats` of ``map``'s
  per-draw statistics). The FSM's summaries against its own per-draw statistics: tests/test_barrier_free.py.
* (slow) float32, the conjugate special cases (Student-t with nu = 1e6; the horseshoe with its global scale
  fixed large): barrier-free draws agree with the exact posterior within ``Z_MAX`` MCSE.

Cost: ~13 s of CPU time (two compilations) in the default suite.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayeslin_jax.core import exact
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.model import horseshoe, student_t
from bayeslin_jax.core.priors import ModelSpec, half_normal_noise, independent_normal, known_noise, tutorial_spec
from bayeslin_jax.core.simulate import tutorial_data
from bayeslin_jax.diagnostics.host import chain_diagnostics
from bayeslin_jax.engine import SUMMARY_STAT_NAMES, NutsConfig, summarize_draw_stats
from bayeslin_jax.engine.sampling import sample_model

Z_MAX = 4.0  # standard errors (<= 44 comparisons per test: a false alarm below 0.3 %)


def _z_against(draws: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``draws: (C, S, k)`` vs reference moments ``(k,)`` -> z of the mean and of the sd (ArviZ MCSE)."""
    diag = chain_diagnostics(np.moveaxis(draws, -1, 0))
    z_mean = (draws.mean(axis=(0, 1)) - ref_mean) / diag["mcse_mean"]
    z_sd = (draws.std(axis=(0, 1), ddof=1) - ref_sd) / diag["mcse_sd"]
    return z_mean, z_sd


@pytest.fixture(scope="module")
def float64_runs():
    """Student-t (nu = 4, sigma ~ HalfNormal) on 2 datasets x 2 chains, 30 + 40 iterations, max tree depth 3
    (often hit), float64: the FSM with 3 lanes for 4 runs (a queue) with ``draw_stats=False``, and ``map``."""
    base = {"num_warmup": 30, "num_draws": 40, "num_chains": 2, "max_tree_depth": 3}
    with jax.enable_x64(True):
        spec = ModelSpec(Polynomial(1), independent_normal(0.0, 1.0, 2), half_normal_noise(1.0))
        data = tutorial_data(0, np.arange(2))
        x = spec.basis(data.x)
        model = student_t(spec, 4.0)
        fsm = sample_model(3, x, data.y, model, NutsConfig(method="barrier_free", batch_size=3, **base),
                           draw_stats=False)
        ref = sample_model(3, x, data.y, model, NutsConfig(method="map", **base))
        reduced = summarize_draw_stats(ref.stats, base["max_tree_depth"])
        return jax.tree.map(np.asarray, {"barrier_free": fsm, "map": ref, "reduced": reduced})


@pytest.mark.slow  # the Gaussian model's FSM runs the same generic driver in the default suite
def test_barrier_free_follows_numpyro_chains_on_a_general_model(float64_runs) -> None:
    """Same keys, same kernel: positions equal up to rounding, per chain. Rounding differences can grow
    along a chain of a heavy-tailed model (1e-13 to 1e-4 in 70 iterations was seen with nu learned), so
    the typical chain is compared to 1e-6 and every chain to 1e-2; the tree sizes are compared exactly."""
    fsm, ref = float64_runs["barrier_free"], float64_runs["map"]
    assert set(fsm.samples) == set(ref.samples) == {"w", "sigma"}
    for site in ("w", "sigma"):
        assert fsm.samples[site].dtype == np.float64 and fsm.samples[site].shape == ref.samples[site].shape
        diff = np.abs(fsm.samples[site] - ref.samples[site]).reshape(4, -1).max(-1)  # per chain
        assert np.median(diff) < 1e-6 and diff.max() < 1e-2, (site, diff)
    (counts,) = fsm.lanes  # LaneCounts, as for sample_nuts
    assert int(counts.lanes) == 3 and counts.sampling_steps.shape == (4,)
    np.testing.assert_array_equal(counts.sampling_steps.reshape(2, 2), ref.stats["n_steps"].sum(-1))
    assert ref.lanes is None


@pytest.mark.slow  # the Gaussian model's FSM runs the same generic driver in the default suite
def test_fsm_summaries_equal_the_reduction_of_per_draw_stats(float64_runs) -> None:
    """The FSM's in-lane summaries vs ``summarize_draw_stats`` of ``map``'s per-draw statistics: counts and
    means of integers exactly (the trees are the same), step size and acceptance up to the chains' rounding."""
    got, want = float64_runs["barrier_free"].stats, float64_runs["reduced"]
    assert set(got) == set(SUMMARY_STAT_NAMES)
    for name in SUMMARY_STAT_NAMES:
        assert got[name].shape == (2, 2) and got[name].dtype == want[name].dtype, name
        if name in ("step_size", "mean_accept"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert 0 < want["max_tree_depth_hits"].sum() < 4 * 40  # a depth of 3 is hit by some draws, not all
    assert np.all(want["mean_accept"] > 0.1)  # the sums are not trivially zero


@pytest.mark.slow
def test_barrier_free_student_t_huge_nu_matches_exact_posterior() -> None:
    """nu = 1e6, known sigma: the conjugate posterior. 2 datasets x 4 chains x 500 draws, 8 lanes."""
    spec = tutorial_spec()
    data = tutorial_data(5, np.arange(2))
    x = spec.basis(data.x)
    config = NutsConfig(num_warmup=500, num_draws=500, num_chains=4, method="barrier_free")
    result = sample_model(4, x, data.y, student_t(spec, 1e6), config)
    post = exact.posterior(x, data.y, spec.prior, spec.noise.sigma)
    draws = np.asarray(result.samples["w"], dtype=float)
    for i in range(2):
        z_mean, z_sd = _z_against(draws[i], np.asarray(post.mean[i]), np.asarray(post.sd[i]))
        assert np.all(np.abs(z_mean) < Z_MAX), (i, z_mean)
        assert np.all(np.abs(z_sd) < Z_MAX), (i, z_sd)


@pytest.mark.slow
def test_barrier_free_horseshoe_conjugate_special_case_matches_exact() -> None:
    """Horseshoe with tau = 1e4 and the slab fixed: w ~ N(0, diag(2^2, 1, ...)), degree 10 (12 latent vectors'
    worth of constrained sites), on the FSM; exact posterior within Z_MAX MCSE."""
    basis, sigma = Polynomial(10), 0.3
    model = horseshoe(basis, known_noise(sigma), expected_nonzero=2, num_points=25, slab_scale=1.0, slab_df=None,
                      intercept_scale=2.0, tau=1e4)
    data = tutorial_data(9, np.arange(2), num_points=25, sigma=sigma)
    config = NutsConfig(num_warmup=1000, num_draws=1000, num_chains=4, method="barrier_free")
    result = sample_model(5, basis(data.x), data.y, model, config)
    prior = independent_normal(0.0, np.r_[2.0, np.ones(basis.dim - 1)], basis.dim)
    post = exact.posterior(basis(data.x), data.y, prior, sigma)
    draws = np.asarray(result.samples["w"], dtype=float)
    for i in range(2):
        z_mean, z_sd = _z_against(draws[i], np.asarray(post.mean[i]), np.asarray(post.sd[i]))
        assert np.all(np.abs(z_mean) < Z_MAX), (i, z_mean)
        assert np.all(np.abs(z_sd) < Z_MAX), (i, z_sd)
