"""Issue 11: Student-t, regularized horseshoe, GLMs and user NumPyro models on the batched engine.

References are independent of the NumPyro model code: the exact conjugate posterior
(:mod:`bayeslin_jax.core.exact`) in each model's conjugate special case, and grid quadrature of log densities
written with SciPy for low-dimensional posteriors. NUTS agrees when ``|mean_nuts - mean_ref| / MCSE`` and
``|sd_nuts - sd_ref| / MCSE_sd`` stay below ``Z_MAX`` (4 standard errors: with the <= 30 comparisons here
the chance of a false alarm is below 0.2 %). SBC at 1000 simulations per model is under ``-m slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.special
import scipy.stats

import bayeslin_jax as bl
from bayeslin_jax.core import exact
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import glm, horseshoe, student_t, user_model
from bayeslin_jax.core.priors import ModelSpec, independent_normal, known_noise, tutorial_spec
from bayeslin_jax.core.simulate import ModelSimulator, simulate_model, tutorial_data
from bayeslin_jax.diagnostics.host import chain_diagnostics
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.engine.sampling import inspect_model
from bayeslin_jax.workflows.fit import fit

Z_MAX = 4.0
FAST = NutsConfig(num_warmup=400, num_draws=500, num_chains=2)


def _z_against(draws: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``draws: (C, S, k)`` vs reference moments ``(k,)`` -> z of the mean and of the sd (ArviZ MCSE)."""
    diag = chain_diagnostics(np.moveaxis(draws, -1, 0))
    z_mean = (draws.mean(axis=(0, 1)) - ref_mean) / diag["mcse_mean"]
    z_sd = (draws.std(axis=(0, 1), ddof=1) - ref_sd) / diag["mcse_sd"]
    return z_mean, z_sd


def _grid_moments(log_density, lower, upper, points: int = 201, refine: bool = True):
    """Mean and sd of a density on a box by the tensor-product midpoint rule (``log_density(*grids)``).

    With ``refine`` a first pass finds the box holding all but e^-25 of the mass and a second pass
    integrates over it (so the grid resolves a posterior much narrower than the prior).
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    for _ in range(2 if refine else 1):
        axes = [lo + (np.arange(points) + 0.5) * (hi - lo) / points for lo, hi in zip(lower, upper, strict=True)]
        mesh = np.meshgrid(*axes, indexing="ij")
        logp = log_density(*mesh)
        weights = np.exp(logp - logp.max())
        keep = logp > logp.max() - 25.0
        step = (upper - lower) / points
        lower = np.array([m[keep].min() for m in mesh]) - 2 * step
        upper = np.array([m[keep].max() for m in mesh]) + 2 * step
    weights /= weights.sum()
    mean = np.array([np.sum(weights * m) for m in mesh])
    sd = np.sqrt(np.array([np.sum(weights * (m - mu) ** 2) for m, mu in zip(mesh, mean, strict=True)]))
    return mean, sd


def _loglik_student(b, m, x, y, nu, sigma):
    mu = b[..., None] + m[..., None] * x
    nu = np.asarray(nu)
    return scipy.stats.t.logpdf(y, nu[..., None] if nu.ndim else nu, loc=mu, scale=sigma).sum(-1)


def _loglik_glm(b, m, x, y, family):
    eta = b[..., None] + m[..., None] * x
    if family == "bernoulli":
        return (y * eta - np.logaddexp(0.0, eta)).sum(-1)
    return (y * eta - np.exp(eta) - scipy.special.gammaln(y + 1.0)).sum(-1)


def _normal_logprior(b, m, scale):
    return scipy.stats.norm.logpdf(b, 0.0, scale) + scipy.stats.norm.logpdf(m, 0.0, scale)


# ---------------------------------------------------------------------------------------------
# The user-model contract: what the engine rejects, in one line naming the site
# ---------------------------------------------------------------------------------------------


def _xy(num_datasets: int = 2, n: int = 11):
    data = tutorial_data(0, np.arange(num_datasets), num_points=n)
    return data.x, data.y


def _discrete(x, y=None):
    k = numpyro.sample("k", dist.Bernoulli(0.5))
    with numpyro.plate("obs", x.shape[-1]):
        numpyro.sample("y", dist.Normal(k * x, 1.0), obs=y)


def _with_param(x, y=None):
    scale = numpyro.param("scale", 1.0)
    with numpyro.plate("obs", x.shape[-1]):
        numpyro.sample("y", dist.Normal(x, scale), obs=y)


def _value_shaped(x, y=None):
    size = int(np.sum(np.asarray(y) > 2.0)) + 1  # shape from data values: cannot be batched
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([size]).to_event(1))
    with numpyro.plate("obs", x.shape[-1]):
        numpyro.sample("y", dist.Normal(z.sum() * x, 1.0), obs=y)


def _branchy(x, y=None):
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    if y is not None and float(y.sum()) > 0:  # Python control flow on data values
        b = b + 1.0
    with numpyro.plate("obs", x.shape[-1]):
        numpyro.sample("y", dist.Normal(b, 1.0), obs=y)


def _no_obs(x, y=None):
    numpyro.sample("b", dist.Normal(0.0, 1.0))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_discrete, "latent site 'k' is discrete"),
        (_with_param, "site 'scale' is a numpyro.param"),
        (_value_shaped, "latent site 'z' changes shape between datasets"),
        (_branchy, "cannot be batched"),
        (_no_obs, "no observed site 'y'"),
    ],
)
def test_unsupported_user_models_get_one_line_errors(fn, message):
    x, y = _xy(3)
    y = y.at[1].add(5.0)  # dataset 1 lies above y = 2 everywhere, dataset 0 only in part
    with pytest.raises(BayeslinError, match=message) as info:
        inspect_model(user_model(fn), x, y)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("family", "bad", "message"), [("bernoulli", 0.5, "BernoulliLogits: Boolean"),
                                                        ("poisson", -1.0, "Poisson: IntegerNonnegative"),
                                                        ("poisson", 2.5, "Poisson: IntegerNonnegative")])
def test_observations_outside_the_likelihood_support_are_refused(family, bad, message):
    model = glm(independent_normal(0.0, 1.0, 2), Polynomial(1), family)
    y = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, bad]], dtype=np.float32)
    with pytest.raises(BayeslinError, match=rf"y\[1, 2\] = {bad:g} is outside the support of 'y' \({message}\)"):
        inspect_model(model, model.design(np.full((2, 3), 0.5)), y)


def test_model_arguments_split_into_traced_and_static():
    model = user_model(_discrete, scale=np.float32(2.0), family="x", size=3)
    assert set(model.params) == {"scale"}
    assert dict(model.static) == {"family": "x", "size": 3}
    # Models differing only in traced values share one compiled program (equal and same hash).
    other = user_model(_discrete, scale=np.float32(5.0), family="x", size=3)
    assert model == other and hash(model) == hash(other)
    with pytest.raises(BayeslinError, match="hashable"):
        user_model(_discrete, bad=[1, 2])


# ---------------------------------------------------------------------------------------------
# Default suite: conjugate special cases, through the front door for general models
# ---------------------------------------------------------------------------------------------


def _robust_line(x, y=None, *, nu, sigma, prior_sd):
    """A user model written from scratch: straight line, Student-t noise."""
    b = numpyro.sample("b", dist.Normal(0.0, prior_sd))
    m = numpyro.sample("m", dist.Normal(0.0, prior_sd))
    with numpyro.plate("obs", x.shape[-1]):
        numpyro.sample("y", dist.StudentT(nu, b + m * x, sigma), obs=y)


@pytest.mark.slow
def test_user_model_batched_matches_exact_posterior_for_huge_nu():
    """A user model over B = 2 datasets; with nu = 1e6 its posterior is the conjugate Gaussian one."""
    spec = tutorial_spec()
    x, y = _xy(2)
    model = user_model(_robust_line, nu=np.float32(1e6), sigma=np.float32(0.1), prior_sd=np.float32(0.2))
    result = fit(x, y, model, seed=3, config=FAST)
    post = exact.posterior(spec.basis(x), y, spec.prior, spec.noise.sigma)
    posterior = result.tree["posterior"]
    assert posterior["b"].dims == ("chain", "draw", "dataset")
    for i in range(2):
        draws = np.stack([posterior["b"].isel(dataset=i).values, posterior["m"].isel(dataset=i).values], -1)
        z_mean, z_sd = _z_against(draws, np.asarray(post.mean[i]), np.asarray(post.sd[i]))
        assert np.all(np.abs(z_mean) < Z_MAX), z_mean
        assert np.all(np.abs(z_sd) < Z_MAX), z_sd
    assert result.tree["log_likelihood"]["y"].sizes == {"chain": 2, "draw": 500, "dataset": 2, "obs": 11}


def test_student_t_huge_nu_matches_exact_and_reports():
    """Built-in Student-t with nu = 1e6 and known sigma: the conjugate posterior; summary, LOO, divergences."""
    import arviz_stats as azs

    spec = tutorial_spec()
    data = tutorial_data(5, np.arange(1))
    x, y = np.asarray(data.x[0]), np.asarray(data.y[0])
    result = bl.fit(x, y, student_t(spec, 1e6), seed=1, config=FAST)  # the front door takes any Model
    post = exact.posterior(spec.basis(x), y, spec.prior, spec.noise.sigma)
    z_mean, z_sd = _z_against(result.draws("w"), np.asarray(post.mean), np.asarray(post.sd))
    assert np.all(np.abs(z_mean) < Z_MAX) and np.all(np.abs(z_sd) < Z_MAX), (z_mean, z_sd)
    table = result.diagnostics()
    assert int(table["divergences"].sum()) == int(result.tree["sample_stats"]["diverging"].sum())
    assert list(result.summary().index) == ["b", "m"]
    assert result.to_dict()["spec"]["model"] == "student_t"
    loo = azs.loo(result.tree)
    assert np.isfinite(loo.elpd) and loo.n_data_points == 11


def test_simulator_is_keyed_per_dataset():
    """Dataset i depends only on (seed, i): two overlapping batches agree; Poisson counts are counts."""
    spec = ModelSpec(Polynomial(1), independent_normal(0.0, 1.0, 2), known_noise(0.5))
    model = glm(spec.prior, spec.basis, "poisson")
    whole = simulate_model(4, np.arange(6), model, 9)
    part = ModelSimulator(model, 9)(4, np.arange(3, 9))
    np.testing.assert_array_equal(np.asarray(whole.y[3:]), np.asarray(part.y[:3]))
    np.testing.assert_array_equal(np.asarray(whole.truth["w"][3:]), np.asarray(part.truth["w"][:3]))
    counts = np.asarray(whole.y)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0 and counts.max() > 0


def _cli_args(*argv: str):
    import argparse

    from bayeslin_jax.interfaces.commands.common import add_sampler_arguments, add_spec_arguments
    from bayeslin_jax.interfaces.commands.models import add_model_arguments

    parser = argparse.ArgumentParser()
    add_spec_arguments(parser)
    add_model_arguments(parser)
    add_sampler_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_flags_build_the_models():
    from bayeslin_jax.interfaces.commands.models import model_from_args

    assert model_from_args(_cli_args(), 11) is None  # the Gaussian linear model, as before
    robust = model_from_args(_cli_args("--likelihood", "student-t", "--nu", "4", "--sigma-prior-scale", "1"), 11)
    assert robust.name == "student_t" and float(robust.params["nu"]) == 4.0
    assert "nu" not in model_from_args(_cli_args("--likelihood", "student-t"), 11).params
    shrink = model_from_args(_cli_args("--prior", "horseshoe", "--basis", "poly10", "--expected-nonzero", "3"), 40)
    assert shrink.name == "horseshoe" and shrink.basis.dim == 11
    assert float(shrink.params["tau_scale"]) == pytest.approx(3 / 7 / np.sqrt(40))
    assert model_from_args(_cli_args("--family", "poisson", "--prior-scale", "1"), 11).name == "poisson"
    for argv, message in [
        (("--likelihood", "student-t", "--family", "poisson"), "cannot be combined"),
        (("--likelihood", "student-t", "--nu", "-1"), "nu must be a positive number"),
        (("--family", "bernoulli", "--sigma", "0.3"), "has no noise sd"),
        (("--prior", "horseshoe", "--expected-nonzero", "5"), r"must lie in \(0, 1\)"),
    ]:
        with pytest.raises(BayeslinError, match=message):
            model_from_args(_cli_args(*argv), 11)


# ---------------------------------------------------------------------------------------------
# Slow: independent references per model
# ---------------------------------------------------------------------------------------------

REFERENCE = NutsConfig(num_warmup=1000, num_draws=2000, num_chains=4)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [4.0, "learn"])
def test_student_t_matches_quadrature(nu):
    """Student-t (nu = 4 fixed: 2-D grid; nu learned, nu ~ Gamma(2, 0.1): 3-D grid in b, m, log nu),
    known sigma, on three datasets with an outlier each."""
    sigma, prior_sd = 0.1, 0.5
    spec = ModelSpec(Polynomial(1), independent_normal(0.0, prior_sd, 2), known_noise(sigma))
    data = tutorial_data(7, np.arange(3), num_points=15)
    y = np.asarray(data.y).copy()
    y[:, 0] += 1.0  # one gross outlier per dataset
    x = np.asarray(data.x)
    result = fit(x, y, student_t(spec, nu), seed=2, config=REFERENCE)
    for i in range(3):
        if nu == "learn":
            def logp(b, m, t, i=i):
                v = np.exp(t)
                return (_normal_logprior(b, m, prior_sd) + _loglik_student(b, m, x[i], y[i], v, sigma)
                        + scipy.stats.gamma.logpdf(v, 2.0, scale=10.0) + t)

            mean, sd = _grid_moments(logp, [-1.0, -1.5, np.log(0.05)], [4.0, 1.5, np.log(500.0)], points=81)
            draws = np.stack([*np.moveaxis(result.draws("w")[i], -1, 0), np.log(result.draws("nu")[i])], -1)
        else:
            def logp(b, m, i=i):
                return _normal_logprior(b, m, prior_sd) + _loglik_student(b, m, x[i], y[i], nu, sigma)

            mean, sd = _grid_moments(logp, [-1.0, -1.5], [4.0, 1.5], points=401)
            draws = result.draws("w")[i]
        z_mean, z_sd = _z_against(draws, mean, sd)
        assert np.all(np.abs(z_mean) < Z_MAX), (i, z_mean)
        assert np.all(np.abs(z_sd) < Z_MAX), (i, z_sd)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_glm_matches_quadrature(family):
    """Bernoulli-logit and Poisson-log regression with two weights: 2-D grid quadrature, three datasets."""
    prior_sd = 1.0
    model = glm(independent_normal(0.0, prior_sd, 2), Polynomial(1), family)
    data = simulate_model(21, np.arange(3), model, 30)
    x, y = np.asarray(data.x), np.asarray(data.y)
    result = fit(x, y, model, seed=4, config=REFERENCE)
    assert int(result.diagnostics()["divergences"].sum()) == 0
    for i in range(3):
        def logp(b, m, i=i):
            return _normal_logprior(b, m, prior_sd) + _loglik_glm(b, m, x[i], y[i], family)

        mean, sd = _grid_moments(logp, [-5.0, -6.0], [5.0, 6.0], points=401)
        z_mean, z_sd = _z_against(result.draws("w")[i], mean, sd)
        assert np.all(np.abs(z_mean) < Z_MAX), (i, z_mean)
        assert np.all(np.abs(z_sd) < Z_MAX), (i, z_sd)


@pytest.mark.slow
def test_horseshoe_conjugate_special_case_matches_exact():
    """Global scale fixed large (tau = 1e4) and the slab fixed (c = slab_scale): lambda~_j = c for all but
    a vanishing prior fraction of lambda, so w ~ N(0, diag(intercept_scale^2, c^2, ...)): exact posterior."""
    basis, sigma = Polynomial(10), 0.3
    model = horseshoe(basis, known_noise(sigma), expected_nonzero=2, num_points=25, slab_scale=1.0, slab_df=None,
                      intercept_scale=2.0, tau=1e4)
    data = tutorial_data(9, np.arange(2), num_points=25, sigma=sigma)
    x, y = np.asarray(data.x), np.asarray(data.y)
    result = fit(x, y, model, seed=5, config=REFERENCE)
    prior = independent_normal(0.0, np.r_[2.0, np.ones(basis.dim - 1)], basis.dim)
    post = exact.posterior(basis(x), y, prior, sigma)
    for i in range(2):
        z_mean, z_sd = _z_against(result.draws("w")[i], np.asarray(post.mean[i]), np.asarray(post.sd[i]))
        assert np.all(np.abs(z_mean) < Z_MAX), (i, z_mean)
        assert np.all(np.abs(z_sd) < Z_MAX), (i, z_sd)


@pytest.mark.slow
def test_horseshoe_matches_long_numpyro_mcmc():
    """The batched engine vs NumPyro's own MCMC driver (a separate code path), 8 x 20000 draws, degree 10."""
    from jax import random
    from numpyro.infer import MCMC, NUTS

    basis = Polynomial(10)
    model = horseshoe(basis, known_noise(0.3), expected_nonzero=2, num_points=30)
    data = tutorial_data(13, np.arange(1), num_points=30, sigma=0.3)
    x, y = np.asarray(data.x[0]), np.asarray(data.y[0])
    config = NutsConfig(num_warmup=1000, num_draws=2000, num_chains=4, target_accept=0.95)
    result = fit(x, y, model, seed=6, config=config)
    mcmc = MCMC(NUTS(model.bound, target_accept_prob=0.99), num_warmup=2000, num_samples=20000, num_chains=8,
                chain_method="sequential", progress_bar=False)
    mcmc.run(random.key(1), basis(x), y=y, **model.params)
    ref = np.asarray(mcmc.get_samples(group_by_chain=True)["w"])
    ref_diag = chain_diagnostics(np.moveaxis(ref, -1, 0))
    draws = result.draws("w")
    diag = chain_diagnostics(np.moveaxis(draws, -1, 0))
    mcse = np.hypot(diag["mcse_mean"], ref_diag["mcse_mean"])
    z = (draws.mean(axis=(0, 1)) - ref.mean(axis=(0, 1))) / mcse
    assert np.all(np.abs(z) < Z_MAX), z
    mcse_sd = np.hypot(diag["mcse_sd"], ref_diag["mcse_sd"])
    z_sd = (draws.std(axis=(0, 1), ddof=1) - ref.std(axis=(0, 1), ddof=1)) / mcse_sd
    assert np.all(np.abs(z_sd) < Z_MAX), z_sd


# ---------------------------------------------------------------------------------------------
# Slow: simulation-based calibration at 1000 simulations per model (and power against a wrong prior)
# ---------------------------------------------------------------------------------------------

SBC_NUTS = NutsConfig(num_warmup=500, num_draws=500, num_chains=4)
_SBC_SPEC = ModelSpec(Polynomial(1), independent_normal(0.0, 1.0, 2), known_noise(1.0))


def sbc_setups() -> dict:
    """Model and SBC settings per built-in (``scripts``-free: the slow tests and the reported runs share them).

    20 points per simulation, L = 99. The horseshoe (degree 10) samples with ``target_accept = 0.99`` and a
    gate of R-hat <= 1.02 and <= 20 divergent transitions of 2000: its funnel gives a few divergences in
    about a quarter of prior draws, and those simulations must stay in the test.
    """
    from bayeslin_jax.core.priors import half_normal_noise
    from bayeslin_jax.workflows.sbc import SbcConfig

    learned = ModelSpec(Polynomial(1), independent_normal(0.0, 1.0, 2), half_normal_noise(1.0))
    plain = SbcConfig(num_ranks=99, nuts=SBC_NUTS, num_points=20)
    return {
        "student_t_nu4": (student_t(learned, 4.0), plain),
        "student_t_learn_nu": (student_t(learned, "learn"), plain),
        "bernoulli": (glm(_SBC_SPEC.prior, _SBC_SPEC.basis, "bernoulli"), plain),
        "poisson": (glm(_SBC_SPEC.prior, _SBC_SPEC.basis, "poisson"), plain),
        "horseshoe_poly10": (
            horseshoe(Polynomial(10), half_normal_noise(1.0), expected_nonzero=2, num_points=20),
            SbcConfig(num_ranks=99, num_points=20, rhat_max=1.02, max_divergences=20,
                      nuts=NutsConfig(num_warmup=1000, num_draws=500, num_chains=4, target_accept=0.99)),
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["student_t_nu4", "student_t_learn_nu", "bernoulli", "poisson", "horseshoe_poly10"])
def test_sbc_passes_at_1000_simulations(name, tmp_path):
    from bayeslin_jax.workflows.sbc import summarize
    from bayeslin_jax.workflows.sbc.run import run_sbc

    model, config = sbc_setups()[name]
    ds = run_sbc(1000, sim_spec=model, seed=11, config=config, chunk_size=250, store=tmp_path / "sbc.zarr")
    report = summarize(ds)
    print(f"\n{name}\n{report.table()}\ndivergent simulations: {int((ds['divergences'] > 0).sum())}")
    assert report.num_simulations == 1000
    assert report.passed, report.reasons


@pytest.mark.slow
def test_general_engine_batch_member_equals_single_fit():
    """Dataset i gives the same draws in a batch as alone (keys from the global index), as for the Gaussian engine."""
    import jax.numpy as jnp

    from bayeslin_jax.engine.sampling import sample_model

    model = glm(independent_normal(0.0, 1.0, 2), Polynomial(1), "bernoulli")
    data = simulate_model(3, np.arange(6), model, 15)
    inputs = model.design(data.x)
    config = NutsConfig(num_warmup=200, num_draws=200, num_chains=2)
    batch = sample_model(7, inputs, data.y, model, config)
    for i in (0, 4):
        single = sample_model(7, inputs[i : i + 1], data.y[i : i + 1], model, config, dataset_indices=jnp.array([i]))
        np.testing.assert_array_equal(np.asarray(single.samples["w"][0]), np.asarray(batch.samples["w"][i]))
        np.testing.assert_array_equal(np.asarray(single.stats["n_steps"][0]), np.asarray(batch.stats["n_steps"][i]))


@pytest.mark.slow
def test_model_study_store_and_report(tmp_path):
    """A Poisson study through the CLI: store with per-dataset divergences, report command reads it."""
    from bayeslin_jax.interfaces.cli import main
    from bayeslin_jax.workflows.studies.run import open_study

    out = tmp_path / "study.zarr"
    argv = ["study", "--family", "poisson", "--prior-scale", "1", "--datasets", "6", "--chunk-size", "3",
            "--chains", "2", "--warmup", "200", "--draws", "200", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    ds = open_study(out)
    assert ds.attrs["complete"] and ds.sizes["dataset"] == 6
    assert ds["divergences"].dims == ("dataset",) and np.all(ds["divergences"].values >= 0)
    assert np.all(np.abs(ds["nuts_mean"] - ds["true_w"]) < 6 * ds["nuts_sd"] + 0.1)
    assert ds.attrs["meta"]["spec"]["model"] == "poisson"
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0


@pytest.mark.slow
def test_sbc_detects_a_wrong_prior():
    """Power: simulate from N(0, 1) weights, fit Student-t with N(0, 0.3) weights: SBC must fail."""
    from bayeslin_jax.core.priors import half_normal_noise
    from bayeslin_jax.workflows.sbc import SbcConfig, summarize
    from bayeslin_jax.workflows.sbc.run import run_sbc

    sim = student_t(ModelSpec(Polynomial(1), independent_normal(0.0, 1.0, 2), half_normal_noise(1.0)), 4.0)
    fit = student_t(ModelSpec(Polynomial(1), independent_normal(0.0, 0.3, 2), half_normal_noise(1.0)), 4.0)
    ds = run_sbc(200, sim_spec=sim, fit_spec=fit, seed=12, config=SbcConfig(nuts=SBC_NUTS, num_points=20))
    report = summarize(ds)
    assert not report.passed
    assert any("b" in r or "m" in r for r in report.reasons), report.reasons


BEYOND_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "beyond.ipynb"


def execute_beyond_notebook(jupyter_dir):
    """Execute notebooks/beyond.ipynb with the test kernelspec (see tests/test_notebook.py); returns it."""
    import nbformat
    from nbclient import NotebookClient
    from test_notebook import KERNEL_NAME, TIMEOUT_S, write_kernelspec

    write_kernelspec(jupyter_dir)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_dir), os.environ.get("JUPYTER_PATH")]))
    nb = nbformat.read(BEYOND_NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=KERNEL_NAME,
                   resources={"metadata": {"path": str(BEYOND_NOTEBOOK.parent)}}).execute()
    return nb


@pytest.mark.slow
def test_beyond_notebook_executes(tmp_path, monkeypatch):
    """Robust regression (Normal vs Student-t, LOO) and horseshoe notebook: its assert cells pass."""
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    nb = execute_beyond_notebook(tmp_path / "jupyter")
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]


if __name__ == "__main__":  # python tests/test_models_beyond.py: execute notebooks/beyond.ipynb, save outputs in place
    import sys
    import tempfile

    import nbformat

    sys.path.insert(0, str(BEYOND_NOTEBOOK.parents[1] / "tests"))
    with tempfile.TemporaryDirectory() as tmp:
        nbformat.write(execute_beyond_notebook(Path(tmp)), BEYOND_NOTEBOOK)
        print(f"executed and saved {BEYOND_NOTEBOOK}")
