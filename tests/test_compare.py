"""Model comparison: ArviZ LOO/compare next to the exact evidence and the exact LOO.

* ``diagnostics.correlation_table``: NUTS covariance within 4 MCSE of the exact posterior covariance;
* ``exact_loo``: vs refitting without each point (numpy);
* ``compare_models``: a clearly wrong model (degree 0; prior mean far off) ranks below the right one,
  by LOO and by evidence; PSIS-LOO ELPD within Monte-Carlo error of the exact LOO ELPD;
* ``batch_loo`` equals ``arviz_stats.loo`` dataset by dataset; ``batch_model_wins``: the true model
  wins the majority by evidence and by LOO.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import xarray as xr

from bayeslin_jax import engine
from bayeslin_jax.core import exact, nig, priors, simulate
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import linear as linear_model
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.workflows import compare

SIGMA = 0.1
CONFIG = engine.NutsConfig(num_warmup=500, num_draws=1000, num_chains=4)


def _wide(degree: int, noise=None) -> priors.ModelSpec:
    """Weakly informative N(0, 3) prior on every weight; known sigma = 0.1 unless ``noise``."""
    dim = degree + 1
    prior = priors.independent_normal(0.0, 3.0, dim)
    return priors.ModelSpec(priors.Polynomial(degree), prior, noise or priors.known_noise(SIGMA))


MODELS = {
    "linear": _wide(1),
    "constant": _wide(0),
    "far_prior": priors.ModelSpec(
        priors.Polynomial(1), priors.independent_normal([-2.0, -1.0], 0.05, 2), priors.known_noise(SIGMA)
    ),
    "linear_unknown_sigma": _wide(1, priors.half_normal_noise(1.0)),
}


@pytest.fixture(scope="module")
def data():
    sim = simulate.tutorial_data(seed=5, indices=[0], num_points=30)
    return np.asarray(sim.x[0]), np.asarray(sim.y[0])


@pytest.fixture(scope="module")
def comparison(data, tmp_path_factory):
    x, y = data
    path = tmp_path_factory.mktemp("compare") / "compare.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k warnings of the far-off prior
        result = compare.compare_models(MODELS, x, y, seed=0, config=CONFIG, plot_path=path)
    return result, path


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_correlation_table_matches_exact(comparison, data):
    result, _ = comparison
    x, y = data
    spec = MODELS["linear"]
    post = exact.posterior(spec.basis(jnp.asarray(x)), jnp.asarray(y), spec.prior, SIGMA)
    draws = result.trees["linear"]["posterior"]["w"].transpose("chain", "draw", "feature").values
    table = diagnostics.correlation_table(post, draws, spec.feature_names)
    assert list(table.index) == ["b,b", "b,m", "m,m"]
    assert np.all(np.abs(table["cov_nuts"] - table["cov_exact"]) < 4 * table["cov_mcse"])
    np.testing.assert_allclose(table["corr_exact"], [1.0, float(post.corr[0, 1]), 1.0], rtol=1e-5)
    with pytest.raises(BayeslinError, match="expected exact cov"):
        diagnostics.correlation_table(post, draws[..., :1], spec.feature_names)


def test_exact_loo_matches_refits(data):
    x, y = data
    spec = MODELS["linear"]
    phi = np.asarray(spec.basis(jnp.asarray(x)), dtype=np.float64)
    m0, v0 = np.zeros(2), 9.0 * np.eye(2)
    expected = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        precision = np.linalg.inv(v0) + phi[keep].T @ phi[keep] / SIGMA**2
        cov = np.linalg.inv(precision)
        mean = cov @ (np.linalg.inv(v0) @ m0 + phi[keep].T @ y[keep] / SIGMA**2)
        expected.append(scipy.stats.norm.logpdf(y[i], phi[i] @ mean, np.sqrt(phi[i] @ cov @ phi[i] + SIGMA**2)))
    with jax.enable_x64(True):
        prior = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), spec.prior)
        got = np.asarray(compare.exact_loo(jnp.asarray(phi), jnp.asarray(y, dtype=jnp.float64), prior, SIGMA))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_compare_ranks_wrong_models_below_the_right_one(comparison, data):
    result, path = comparison
    table = result.table
    assert set(table.index) == set(MODELS)
    # LOO (ArviZ): the right model beats the clearly wrong ones by more than 2 standard errors.
    for wrong in ("constant", "far_prior"):
        assert table.loc[wrong, "elpd"] < table.loc["linear", "elpd"]
        gap = table.loc["linear", "elpd"] - table.loc[wrong, "elpd"]
        dse = np.hypot(table.loc[wrong, "dse"], table.loc["linear", "dse"])
        assert gap > 2 * dse
    # the exact evidence agrees on the ranking of the known-noise models
    evidence = table["log_evidence"]
    assert evidence["linear"] > evidence["constant"] > evidence["far_prior"]
    assert table.loc["linear", "evidence_rank"] < table.loc["constant", "evidence_rank"]
    # unknown sigma: the evidence is the quadrature over sigma of the package's model
    spec = MODELS["linear_unknown_sigma"]
    x, y = data
    phi = np.asarray(x, dtype=np.float64)[:, None] ** np.arange(2)
    reference = nig.unknown_noise_reference(phi, np.asarray(y, dtype=np.float64), spec.prior, spec.noise)
    assert evidence["linear_unknown_sigma"] == pytest.approx(float(reference.log_evidence), abs=1e-9)
    assert np.isnan(table.loc["linear_unknown_sigma", "elpd_loo_exact"])
    assert path.is_file() and path.stat().st_size > 10_000


def _loo_mcse(tree) -> float:
    """MCSE of the (unsmoothed) importance-sampling LOO estimate, delta method.

    elpd = -sum_i log mean_s r_is with r_is = 1 / p(y_i | theta_s); linearising, its error is
    -mean_s(sum_i r_is / mu_i) + const, so the MCSE is ArviZ's MCSE of the mean of that draw-wise
    function (which accounts for autocorrelation across chains/draws).
    """
    loglik = tree["log_likelihood"]["y"]
    inv = np.exp(-(loglik - loglik.max(["chain", "draw"])))
    summed = (inv / inv.mean(["chain", "draw"])).sum("obs")
    return float(summed.azstats.mcse(sample_dims=["chain", "draw"], method="mean"))


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_psis_loo_matches_exact_loo(comparison):
    result, _ = comparison
    row = result.table.loc["linear"]
    assert float(result.loo["linear"].pareto_k.max()) < 0.5  # PSIS is reliable here, smoothing bias negligible
    assert abs(row["elpd"] - row["elpd_loo_exact"]) < 4 * _loo_mcse(result.trees["linear"])


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_batch_loo_matches_exact_loo_per_dataset():
    spec = _wide(1)
    sim = simulate.tutorial_data(seed=2, indices=np.arange(4), num_points=30)
    phi = spec.basis(sim.x)
    config = engine.NutsConfig(num_warmup=300, num_draws=500, num_chains=2)
    tree = model_datatree(engine.sample_nuts(0, phi, sim.y, spec.prior, spec.noise, config), linear_model(spec), phi,
                          sim.y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto-k warnings on individual points
        batch = compare.batch_loo(tree)
    assert batch["elpd_loo"].dims == ("dataset",)
    reliable = np.flatnonzero(batch["pareto_k_max"].values < 0.5)  # PSIS smoothing bias negligible there
    assert reliable.size >= 2
    for i in reliable:
        exact = float(compare._spec_exact_loo(spec, np.asarray(sim.x[i]), np.asarray(sim.y[i])))
        mcse = _loo_mcse(diagnostics.select_dataset(tree, i))
        assert abs(float(batch["elpd_loo"][i]) - exact) < 4 * mcse, (i, float(batch["elpd_loo"][i]), exact)
        assert float(batch["p_loo"][i]) > 0


def test_batch_model_wins():
    specs = {"constant": _wide(0), "linear": _wide(1), "cubic": _wide(3)}
    evidence_only = compare.batch_model_wins(specs, seed=0, num_datasets=200)
    rates = evidence_only.table["evidence_win_rate"]
    assert rates.sum() == pytest.approx(1.0)
    assert rates["linear"] > 0.5  # the true model wins the majority
    assert evidence_only.per_dataset["log_evidence"].dims == ("dataset", "model")
    with pytest.raises(BayeslinError, match="at least 2 named models"):
        compare.batch_model_wins({"linear": specs["linear"]}, seed=0, num_datasets=3)


@pytest.mark.slow
def test_batch_model_wins_by_loo():
    specs = {"constant": _wide(0), "linear": _wide(1), "cubic": _wide(3)}
    evidence_only = compare.batch_model_wins(specs, seed=0, num_datasets=12)
    config = engine.NutsConfig(num_warmup=300, num_draws=300, num_chains=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with_loo = compare.batch_model_wins(specs, seed=0, num_datasets=12, loo=True, config=config)
    # the first 12 datasets agree with the big evidence-only run (same keys)
    xr.testing.assert_allclose(
        with_loo.per_dataset["log_evidence"], evidence_only.per_dataset["log_evidence"].isel(dataset=slice(0, 12))
    )
    assert with_loo.table["loo_win_rate"]["linear"] > 0.5
    assert with_loo.table["loo_win_rate"]["constant"] < with_loo.table["loo_win_rate"]["linear"]
