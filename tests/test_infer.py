"""The batched NUTS engine against the exact conjugate posterior.

Tolerances come from Monte-Carlo standard errors reported by ArviZ: means within 4 MCSE,
sds within 4 MCSE(sd), the b-m correlation within 4 (1 - rho^2) / sqrt(ESS).
"""

from __future__ import annotations

import numpy as np
import pytest

from bayeslin_jax import diagnostics, exact, simulate
from bayeslin_jax.basis import Polynomial
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.priors import ModelSpec, independent_normal, known_noise, mvn, tutorial_spec

CONFIG = NutsConfig(num_warmup=500, num_draws=1000, num_chains=4)
NUM_DATASETS = 3


def ar1_mvn(dim: int, scale: float = 0.2, rho: float = -0.5):
    """MVN prior with AR(1) correlation rho^|i-j| (positive-definite for |rho| < 1)."""
    lags = np.abs(np.subtract.outer(np.arange(dim), np.arange(dim)))
    return mvn(np.zeros(dim), scale**2 * rho**lags)


def make_spec(degree: int, prior: str) -> ModelSpec:
    if degree == 1:
        return tutorial_spec(prior)
    basis = Polynomial(degree)
    weight_prior = independent_normal(0.0, 0.2, basis.dim) if prior == "independent" else ar1_mvn(basis.dim)
    return ModelSpec(basis, weight_prior, known_noise(0.1))


def fit(spec: ModelSpec, seed: int = 0):
    if spec.basis.degree == 1:
        data = simulate.tutorial_data(seed, np.arange(NUM_DATASETS))
    else:
        data = simulate.prior_data(seed, np.arange(NUM_DATASETS), spec)
    phi = spec.basis(data.x)
    result = sample_nuts(seed + 1, phi, data.y, spec, CONFIG)
    tree = diagnostics.to_datatree(result, spec, phi, data.y, include_log_likelihood=False)
    post = exact.posterior(phi, data.y, spec.prior, spec.noise.sigma)
    return result, diagnostics.dataset_summary(tree), post


@pytest.mark.parametrize("degree", [1, 3, 5])
@pytest.mark.parametrize("prior", ["independent", "mvn"])
def test_nuts_matches_exact_posterior(degree: int, prior: str) -> None:
    result, table, post = fit(make_spec(degree, prior))
    assert int(table["divergences"].sum()) == 0
    assert float(table["rhat"].max()) < 1.01

    mean_err = np.abs(table["mean"].values - np.asarray(post.mean))
    assert np.all(mean_err < 4 * table["mcse_mean"].values), (mean_err, table["mcse_mean"].values)
    sd_err = np.abs(table["sd"].values - np.asarray(post.sd))
    assert np.all(sd_err < 4 * table["mcse_sd"].values), (sd_err, table["mcse_sd"].values)

    draws = np.asarray(result.samples["w"]).reshape(NUM_DATASETS, -1, post.mean.shape[-1])
    for i in range(NUM_DATASETS):
        nuts_corr = np.corrcoef(draws[i, :, 0], draws[i, :, 1])[0, 1]
        exact_corr = float(post.corr[i, 0, 1])
        ess = float(table["ess_bulk"].isel(dataset=i).min())
        assert abs(nuts_corr - exact_corr) < 4 * (1 - exact_corr**2) / np.sqrt(ess), (nuts_corr, exact_corr)


def test_mvn_prior_correlation_shows_in_posterior() -> None:
    """The MVN prior's negative b-m correlation pulls the posterior correlation down."""
    data = simulate.tutorial_data(0, np.arange(NUM_DATASETS))
    phi = tutorial_spec().basis(data.x)
    independent = exact.posterior(phi, data.y, tutorial_spec("independent").prior, 0.1)
    correlated = exact.posterior(phi, data.y, tutorial_spec("mvn", corr=-0.9).prior, 0.1)
    assert np.all(np.asarray(correlated.corr[:, 0, 1]) < np.asarray(independent.corr[:, 0, 1]))


def test_result_shapes_and_stats() -> None:
    spec = tutorial_spec()
    config = NutsConfig(num_warmup=100, num_draws=50, num_chains=3)
    data = simulate.tutorial_data(0, np.arange(2))
    result = sample_nuts(0, spec.basis(data.x), data.y, spec, config)
    assert result.samples["w"].shape == (2, 3, 50, 2)
    for name in ("diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate", "energy", "lp"):
        assert result.stats[name].shape == (2, 3, 50), name
    # step size is adapted separately per (dataset, chain) and fixed after warm-up
    step = np.asarray(result.stats["step_size"])
    assert np.all(step[..., :1] == step)
    assert len(np.unique(step[..., 0])) == 6
    depth = np.asarray(result.stats["tree_depth"])
    assert np.all(2 ** (depth - 1) <= np.asarray(result.stats["n_steps"]))


def test_vmap_and_map_agree() -> None:
    """Both batching strategies run the same per-run algorithm (floating-point order may differ)."""
    spec = tutorial_spec()
    data = simulate.tutorial_data(0, np.arange(4))
    phi = spec.basis(data.x)
    base = NutsConfig(num_warmup=300, num_draws=300, num_chains=2)
    by_map = sample_nuts(0, phi, data.y, spec, NutsConfig(**{**base.__dict__, "method": "map"}))
    by_vmap = sample_nuts(0, phi, data.y, spec, NutsConfig(**{**base.__dict__, "method": "vmap"}))
    np.testing.assert_allclose(
        np.asarray(by_map.samples["w"]).mean((1, 2)), np.asarray(by_vmap.samples["w"]).mean((1, 2)), atol=0.02
    )
