"""The priors published regression models use (issue 30): flat, Student-t, Cauchy, per-term and centred-intercept
weight priors; HalfCauchy, HalfStudentT, Exponential and flat noise priors. Each against an independent reference:

* flat weights, known sigma: the exact posterior is least squares (numpy ``lstsq``, ``sigma^2 (X^T X)^-1``) on a
  raw-scale design, and NUTS through :func:`bayeslin_jax.fit` agrees within MCSE-derived margins;
* learned sigma with each new noise prior: the generalised quadrature (:func:`nig.unknown_noise_reference`) against
  scipy ``quad`` of densities written out here, and NUTS against the quadrature;
* Student-t / Cauchy / centred-intercept weights: NUTS through ``fit`` against a long plain-NumPyro MCMC run of the
  same model written independently here (two-sample agreement within combined MCSEs); log densities against
  ``scipy.stats`` at ``u = L w``;
* validation: one-line errors for bad values, improper priors refused for simulation, ``posterior_is_proper``.

Agreement checks aggregate z-scores (a chi-square test over all compared quantities plus a per-quantity bound), so
no single lucky seed decides them.
"""

import json

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.integrate
import scipy.stats
import xarray as xr
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import initialize_model

import bayeslin_jax as bl
from bayeslin_jax.core import exact, nig, priors, simulate
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import linear as linear_model

CONFIG = bl.NutsConfig(num_warmup=500, num_draws=1000, num_chains=4)  # slow tests
FAST = bl.NutsConfig(num_warmup=300, num_draws=500, num_chains=4)  # default suite


def _agree(estimate, reference, mcse, z_max: float = 4.5) -> None:
    """Aggregated z-scores: chi-square over all of them (p > 1e-4) and each |z| below ``z_max``."""
    z = (np.ravel(estimate) - np.ravel(reference)) / np.ravel(mcse)
    p_value = scipy.stats.chi2.sf(np.sum(z**2), z.size)
    assert p_value > 1e-4 and np.max(np.abs(z)) < z_max, f"z = {np.round(z, 2)}, chi2 p = {p_value:.2g}"


def _draws(tree, site):
    post = tree["posterior"]
    return post[site].values


def _mcse(tree, site, method):
    return np.asarray(azs.mcse(tree, var_names=[site], method=method)[site].values)


def _raw_data(n: int = 25, seed: int = 0):
    """A raw-scale design (x in [20, 80], intercept far from the data)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(20.0, 80.0, n)
    return x, 3.0 + 0.5 * x + rng.normal(0.0, 2.0, n)


def _design(x, degree: int = 1):
    return np.asarray(x, dtype=np.float64)[:, None] ** np.arange(degree + 1)


# ---------------------------------------------------------------------------------------------
# Flat weights, known sigma: least squares
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [1, 2])
def test_flat_prior_exact_posterior_is_least_squares(degree):
    x, y = _raw_data()
    phi = _design(x, degree)
    sigma = 2.0
    prior = bl.flat_prior(degree + 1)
    post = exact.posterior64(phi, y, prior, sigma)
    ols = np.linalg.lstsq(phi, y, rcond=None)[0]
    cov = sigma**2 * np.linalg.inv(phi.T @ phi)
    np.testing.assert_allclose(post.mean, ols, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.cov, cov, rtol=1e-7)
    np.testing.assert_allclose(post.precision_tril @ post.precision_tril.T, phi.T @ phi / sigma**2, rtol=1e-7)
    # the whitening: phi A / sigma has orthonormal columns, so z | y ~ N(0, I)
    white = exact.whitening(phi, y, prior, sigma)
    q = phi @ white.matrix / sigma
    np.testing.assert_allclose(q.T @ q, np.eye(degree + 1), atol=1e-9)
    # the Model's exact capability, from raw x
    model = linear_model(bl.ModelSpec(bl.polynomial(degree), prior, bl.known_noise(sigma)))
    assert model.has_exact
    np.testing.assert_allclose(model.exact(x, y).mean, ols, rtol=1e-9, atol=1e-12)


def test_flat_prior_nuts_matches_least_squares():
    x, y = _raw_data()
    spec = bl.ModelSpec(bl.linear(), bl.flat_prior(2), bl.known_noise(2.0))
    result = bl.fit(x, y, spec, config=FAST)
    phi = _design(x)
    ols = np.linalg.lstsq(phi, y, rcond=None)[0]
    sd = np.sqrt(np.diag(4.0 * np.linalg.inv(phi.T @ phi)))
    np.testing.assert_allclose(result.exact.mean, ols, rtol=1e-6)
    w = _draws(result.tree, "w").reshape(-1, 2)
    assert int(result.tree["sample_stats"]["diverging"].sum()) == 0
    _agree(np.concatenate([w.mean(0), w.std(0, ddof=1)]), np.concatenate([ols, sd]),
           np.concatenate([_mcse(result.tree, "w", "mean"), _mcse(result.tree, "w", "sd")]))


def test_precision_form_with_centred_intercept_and_flat_slope():
    """Normal intercept on the centred predictors, flat slope: closed form from P0 = L^T diag(lambda) L."""
    x, y = _raw_data(12)
    phi = _design(x)
    prior = bl.term_prior(["normal", "flat"], [30.0, 0.0], [5.0, 1.0], intercept=0, shift=[0.0, x.mean()])
    xbar = float(prior.shift[1])  # as stored (float32)
    assert isinstance(prior, priors.TermPrior) and prior.is_gaussian and not prior.is_proper
    tril = np.array([[1.0, xbar], [0.0, 1.0]])
    p0 = tril.T @ np.diag([1 / 25.0, 0.0]) @ tril
    precision = p0 + phi.T @ phi / 4.0
    mean = np.linalg.solve(precision, tril.T @ np.array([30.0 / 25.0, 0.0]) + phi.T @ y / 4.0)
    post = exact.posterior64(phi, y, prior, 2.0)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(post.cov, np.linalg.inv(precision), rtol=1e-8)
    with jax.enable_x64(True):
        post32 = exact.posterior(jnp.asarray(phi), jnp.asarray(y), jax.tree.map(jnp.float64, prior), 2.0)
    np.testing.assert_allclose(np.asarray(post32.mean), mean, rtol=1e-8)
    # the integrated likelihood (flat coefficient at density 1) against its Gaussian integral written out
    with jax.enable_x64(True):
        value = float(exact.log_integrated_likelihood(jnp.asarray(phi), jnp.asarray(y),
                                                      jax.tree.map(jnp.float64, prior), 2.0))
    resid = y - phi @ mean
    u0 = (tril @ mean)[0]
    expected = (-0.5 * len(y) * np.log(2 * np.pi * 4.0) - 0.5 * np.log(2 * np.pi * 25.0) + 0.5 * 2 * np.log(2 * np.pi)
                - 0.5 * np.linalg.slogdet(precision)[1] - 0.5 * (resid @ resid / 4.0 + (u0 - 30.0) ** 2 / 25.0))
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    with pytest.raises(BayeslinError, match="evidence of an improper prior"):
        exact.log_evidence(phi, y, prior, 2.0)


# ---------------------------------------------------------------------------------------------
# Log densities against scipy
# ---------------------------------------------------------------------------------------------


def test_term_prior_log_density_is_scipy_at_centred_coordinates():
    shift = np.array([0.0, 45.0, 3.0])
    prior = bl.term_prior(["student_t", "normal", "flat"], [150.0, 0.0, 0.0], [190.0, 12.3, 1.0], [3.0, 1.0, 1.0],
                          intercept=0, shift=shift)
    rng = np.random.default_rng(1)
    w = rng.normal(0.0, 20.0, (5, 3))
    u = w.copy()
    u[:, 0] = w[:, 0] + w @ shift
    expected = scipy.stats.t.logpdf(u[:, 0], 3.0, 150.0, 190.0) + scipy.stats.norm.logpdf(u[:, 1], 0.0, 12.3)
    with jax.enable_x64(True):
        got = prior.distribution().log_prob(jnp.asarray(w))
        got_jit = jax.jit(lambda p, v: p.distribution().log_prob(v))(jax.tree.map(jnp.float64, prior), w[0])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)  # the prior's values are float32
    np.testing.assert_allclose(float(got_jit), expected[0], rtol=1e-5)
    assert prior.text(["Intercept", "age", "bmi"]) == [
        "Intercept ~ StudentT(3, 150, 190) (at the predictor means)", "age ~ Normal(0, 12.3)", "bmi ~ Flat"]
    json.dumps(bl.ModelSpec(bl.polynomial(2), prior, bl.flat_noise()).describe())


def test_all_normal_centred_prior_is_the_equivalent_mvn():
    shift = np.array([0.0, 40.0, -2.0])
    mean, scale = np.array([100.0, 1.0, 0.0]), np.array([50.0, 2.0, 3.0])
    prior = bl.term_prior("normal", mean, scale, intercept=0, shift=shift)
    assert isinstance(prior, priors.MultivariateNormal)
    w = np.random.default_rng(2).normal(0.0, 5.0, (4, 3))
    u = w.copy()
    u[:, 0] += w @ shift
    expected = scipy.stats.norm.logpdf(u, mean, scale).sum(-1)
    with jax.enable_x64(True):
        got = jax.tree.map(jnp.float64, prior).distribution().log_prob(jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
    assert isinstance(bl.term_prior("normal", mean, scale), priors.IndependentNormal)


def test_noise_log_densities_are_scipy():
    s = np.array([0.3, 1.0, 4.0])
    cases = [(bl.half_cauchy_noise(2.0), scipy.stats.halfcauchy(scale=2.0).logpdf(s)),
             (bl.half_t_noise(3.0, 2.0), np.log(2.0) + scipy.stats.t(3.0, scale=2.0).logpdf(s)),
             (bl.exponential_noise(0.5), scipy.stats.expon(scale=2.0).logpdf(s)),
             (bl.flat_noise(), np.zeros(3))]
    for noise, expected in cases:
        np.testing.assert_allclose(np.asarray(noise.distribution().log_prob(jnp.asarray(s))), expected, rtol=1e-5)
    draws = np.asarray(bl.half_t_noise(3.0, 2.0).distribution().sample(jax.random.key(0), (4000,)))
    assert draws.min() > 0 and abs(np.median(draws) - scipy.stats.t(3.0, scale=2.0).ppf(0.75)) < 0.16


def test_numpyro_initialize_model_works_with_the_new_distributions():
    prior = bl.term_prior(["student_t", "flat"], 0.0, 1.0, 3.0)

    def model():
        numpyro.sample("w", prior.distribution())
        numpyro.sample("sigma", bl.flat_noise().distribution())

    info = initialize_model(jax.random.key(0), model)[0]
    assert info.z["w"].shape == (2,) and np.isfinite(float(info.potential_energy))


# ---------------------------------------------------------------------------------------------
# Learned sigma: the generalised quadrature, and NUTS against it
# ---------------------------------------------------------------------------------------------

NOISES = {
    "half_cauchy": bl.half_cauchy_noise(2.0),
    "half_t": bl.half_t_noise(3.0, 2.0),
    "exponential": bl.exponential_noise(0.5),
    "flat": bl.flat_noise(),
}


def _sigma_log_prior(name, s):
    return {"half_cauchy": scipy.stats.halfcauchy(scale=2.0).logpdf(s),
            "half_t": np.log(2.0) + scipy.stats.t(3.0, scale=2.0).logpdf(s),
            "exponential": scipy.stats.expon(scale=2.0).logpdf(s), "flat": 0.0}[name]


def _small_data():
    data = simulate.tutorial_data(seed=3, indices=[0], num_points=10, sigma=1.0)
    x = np.asarray(data.x[0], dtype=np.float64)
    return x, np.asarray(data.y[0], dtype=np.float64)


@pytest.mark.parametrize("name", [n if n in ("half_t", "flat") else pytest.param(n, marks=pytest.mark.extended)
                                  for n in NOISES])  # half_cauchy, exponential: .ci/run's 'extended' step
def test_quadrature_matches_scipy_for_flat_weights(name):
    """Flat weights: p(sigma | y) ∝ p(sigma) sigma^-(n - d) exp(-RSS / 2 sigma^2), E[w | y] = OLS,
    cov(w | y) = E[sigma^2 | y] (X^T X)^-1."""
    x, y = _small_data()
    phi = _design(x)
    n, d = phi.shape
    ols = np.linalg.lstsq(phi, y, rcond=None)[0]
    rss = float(np.sum((y - phi @ ols) ** 2))

    def log_density(s):
        return _sigma_log_prior(name, s) - (n - d) * np.log(s) - rss / (2 * s**2)

    top = max(log_density(s) for s in np.linspace(0.05, 10, 400))
    moments = [scipy.integrate.quad(lambda s, k=k: s**k * np.exp(log_density(s) - top), 0, np.inf, limit=400)[0]
               for k in range(3)]
    ref = nig.unknown_noise_reference(phi, y, bl.flat_prior(2), NOISES[name])
    np.testing.assert_allclose(ref.sigma_mean, moments[1] / moments[0], rtol=1e-6)
    np.testing.assert_allclose(ref.mean, ols, rtol=1e-9)
    np.testing.assert_allclose(ref.cov, moments[2] / moments[0] * np.linalg.inv(phi.T @ phi), rtol=1e-6)
    assert np.isnan(ref.log_evidence)


@pytest.mark.parametrize("name", ["half_t", pytest.param("flat", marks=pytest.mark.slow)])
def test_quadrature_matches_scipy_for_normal_weights(name):
    """Normal weights: p(y | sigma) = N(y | phi m0, sigma^2 I + phi V0 phi^T) (scipy), integrated over sigma."""
    x, y = _small_data()
    phi = _design(x)
    prior = bl.independent_normal(0.0, 3.0, 2)
    shared = phi @ (9.0 * np.eye(2)) @ phi.T

    def log_joint(s):
        return scipy.stats.multivariate_normal(np.zeros(len(y)), s**2 * np.eye(len(y)) + shared).logpdf(y) + \
            _sigma_log_prior(name, s)

    top = max(log_joint(s) for s in np.linspace(0.05, 10, 200))
    mass = scipy.integrate.quad(lambda s: np.exp(log_joint(s) - top), 0, np.inf, limit=400)[0]
    first = scipy.integrate.quad(lambda s: s * np.exp(log_joint(s) - top), 0, np.inf, limit=400)[0]
    ref = nig.unknown_noise_reference(phi, y, prior, NOISES[name])
    np.testing.assert_allclose(ref.sigma_mean, first / mass, rtol=1e-6)
    if name == "flat":
        assert np.isnan(ref.log_evidence)
    else:
        np.testing.assert_allclose(ref.log_evidence, top + np.log(mass), rtol=1e-8)


def _check_learned_sigma(name, prior, config=CONFIG):
    x, y = _small_data()
    spec = bl.ModelSpec(bl.linear(), prior, NOISES[name])
    result = bl.fit(x, y, spec, config=config)
    ref = nig.unknown_noise_reference(_design(x), y, prior, NOISES[name])
    tree = result.tree
    assert result.exact is None
    sigma = _draws(tree, "sigma").ravel()
    w = _draws(tree, "w").reshape(-1, 2)
    _agree(np.concatenate([[sigma.mean(), sigma.std(ddof=1)], w.mean(0)]),
           np.concatenate([[ref.sigma_mean, ref.sigma_sd], ref.mean]),
           np.concatenate([[_mcse(tree, "sigma", "mean"), _mcse(tree, "sigma", "sd")], _mcse(tree, "w", "mean")]))


@pytest.mark.slow  # ~6 s each; the quadrature checks (and Student-t weights with HalfCauchy noise) stay in the default
@pytest.mark.parametrize("name, flat", [("half_cauchy", False), ("half_t", False), ("exponential", False),
                                        ("flat", False), ("flat", True), ("half_cauchy", True)])
def test_nuts_learned_sigma_matches_quadrature(name, flat):
    _check_learned_sigma(name, bl.flat_prior(2) if flat else bl.independent_normal(0.0, 3.0, 2))


# ---------------------------------------------------------------------------------------------
# Student-t / Cauchy / centred-intercept weights against plain NumPyro
# ---------------------------------------------------------------------------------------------


def _numpyro_reference(log_prior, phi, y, sigma, seed=0):
    """A long plain-NumPyro NUTS run of ``w ~ exp(log_prior)``, ``y ~ N(phi w, sigma)``; draws ``(4, S, d)``."""

    def model(phi, y):
        w = numpyro.sample("w", dist.ImproperUniform(dist.constraints.real_vector, (), (phi.shape[1],)))
        numpyro.factor("prior", log_prior(w))
        numpyro.sample("y", dist.Normal(phi @ w, sigma), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=4000, num_chains=4, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.key(seed), jnp.asarray(phi), jnp.asarray(y))
    return np.asarray(mcmc.get_samples(group_by_chain=True)["w"], dtype=np.float64)


def _two_sample(tree, reference) -> None:
    ref_set = xr.Dataset({"w": (("chain", "draw", "k"), reference)})
    w = _draws(tree, "w").reshape(-1, reference.shape[-1])
    ref_flat = reference.reshape(-1, reference.shape[-1])
    mcse = np.sqrt(np.concatenate([_mcse(tree, "w", "mean"), _mcse(tree, "w", "sd")]) ** 2
                   + np.concatenate([azs.mcse(ref_set, method="mean")["w"].values,
                                     azs.mcse(ref_set, method="sd")["w"].values]) ** 2)
    _agree(np.concatenate([w.mean(0), w.std(0, ddof=1)]),
           np.concatenate([ref_flat.mean(0), ref_flat.std(0, ddof=1)]), mcse)


def _heavy_data(n: int = 5):
    """Few points, an intercept four prior scales out: a Student-t prior shrinks it much less than a normal one."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.0, 1.0, n)
    return x, 4.0 + 1.0 * x + rng.normal(0.0, 1.0, n)


def _grid_moments(log_prior, log_sigma_prior, phi, y, num_sigma: int = 300, points: int = 101):
    """Posterior mean and sd of ``(w0, w1, sigma)`` by quadrature written out in numpy: a grid in ``log sigma``
    and, at each sigma, a ``points x points`` grid over ``w`` (+-10 conditional likelihood sds around least
    squares). ``log_prior(w0, w1)``, ``log_sigma_prior(sigma)`` are log densities."""
    n = len(y)
    ols = np.linalg.lstsq(phi, y, rcond=None)[0]
    unit_sd = np.sqrt(np.diag(np.linalg.inv(phi.T @ phi)))
    log_sigmas = np.linspace(np.log(0.01), np.log(50.0), num_sigma)
    slices = []
    for log_s in log_sigmas:
        s = np.exp(log_s)
        axes = [np.linspace(m - 10 * s * u, m + 10 * s * u, points) for m, u in zip(ols, unit_sd, strict=True)]
        w0, w1 = np.meshgrid(*axes, indexing="ij")
        resid = y - w0[..., None] * phi[:, 0] - w1[..., None] * phi[:, 1]
        log_f = (log_prior(w0, w1) - n * log_s - 0.5 * np.sum(resid**2, axis=-1) / s**2 + log_sigma_prior(s)
                 + log_s + np.log((axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])))
        top = log_f.max()
        f = np.exp(log_f - top)
        slices.append((top, [np.sum(f * g) for g in (1.0, w0, w1, w0**2, w1**2)], s))
    tops = np.array([t for t, _, _ in slices])
    scale = np.exp(tops - tops.max())
    sums = np.array([m for _, m, _ in slices]) * scale[:, None]  # (G, 5)
    sig = np.array([s for _, _, s in slices])
    mass = sums[:, 0].sum()
    mean = np.array([sums[:, 1].sum(), sums[:, 2].sum(), np.sum(sums[:, 0] * sig)]) / mass
    second = np.array([sums[:, 3].sum(), sums[:, 4].sum(), np.sum(sums[:, 0] * sig**2)]) / mass
    assert sums[0, 0] / mass < 1e-8 and sums[-1, 0] / mass < 1e-8  # the sigma grid holds the mass
    return mean, np.sqrt(second - mean**2)


@pytest.mark.slow  # ~10 s (a compile of the whitened Student-t model); the flat-prior fit covers that path by default
def test_student_t_prior_with_half_cauchy_noise_matches_grid_posterior():
    x, y = _heavy_data(8)
    phi = _design(x)
    spec = bl.ModelSpec(bl.linear(), bl.student_t_prior(3.0, 0.0, 1.0, 2), bl.half_cauchy_noise(1.0))
    result = bl.fit(x, y, spec, config=FAST)
    tree = result.tree
    assert result.exact is None and int(tree["sample_stats"]["diverging"].sum()) == 0
    half_cauchy = scipy.stats.halfcauchy(scale=1.0).logpdf
    mean, sd = _grid_moments(lambda a, b: scipy.stats.t.logpdf(a, 3.0) + scipy.stats.t.logpdf(b, 3.0), half_cauchy,
                             phi, y)
    w = _draws(tree, "w").reshape(-1, 2)
    sigma = _draws(tree, "sigma").ravel()
    draws = np.column_stack([w, sigma])
    mcse = [np.concatenate([_mcse(tree, "w", method), [_mcse(tree, "sigma", method)]]) for method in ("mean", "sd")]
    _agree(np.concatenate([draws.mean(0), draws.std(0, ddof=1)]), np.concatenate([mean, sd]), np.concatenate(mcse))
    # power: a normal prior of the same scale gives a clearly different posterior (the true prior is what is used)
    normal_mean, _ = _grid_moments(lambda a, b: scipy.stats.norm.logpdf(a) + scipy.stats.norm.logpdf(b), half_cauchy,
                                   phi, y, num_sigma=150, points=61)
    assert mean[0] - normal_mean[0] > 20 * mcse[0][0]


@pytest.mark.slow  # ~10 s each: a fit and a long reference run
@pytest.mark.parametrize("case", ["student_t", "cauchy", "centred"])
def test_heavy_tailed_priors_match_plain_numpyro(case):
    if case == "student_t":
        x, y = _heavy_data()
        prior = bl.student_t_prior(3.0, 0.0, 1.0, 2)

        def log_prior(w):
            return dist.StudentT(3.0, 0.0, 1.0).log_prob(w).sum()
    elif case == "cauchy":
        x, y = _heavy_data()
        prior = bl.cauchy_prior(0.0, 1.0, 2)

        def log_prior(w):
            return dist.Cauchy(0.0, 1.0).log_prob(w).sum()
    else:  # rstanarm-style: Student-t on the intercept at the predictor means, normal slope, raw x far from 0
        x, y = _raw_data(8)
        xbar = float(x.mean())
        prior = bl.term_prior(["student_t", "normal"], [20.0, 0.0], [10.0, 1.0], [3.0, 1.0], intercept=0,
                              shift=[0.0, xbar])

        def log_prior(w):
            return dist.StudentT(3.0, 20.0, 10.0).log_prob(w[0] + xbar * w[1]) + dist.Normal(0.0, 1.0).log_prob(w[1])
    phi = _design(x)
    sigma = 1.0 if case == "cauchy" else 2.0
    result = bl.fit(x, y, bl.ModelSpec(bl.linear(), prior, bl.known_noise(sigma)), config=CONFIG)
    _two_sample(result.tree, _numpyro_reference(log_prior, phi, y, sigma))


@pytest.mark.slow  # ~5 s
def test_student_t_regression_takes_improper_priors():
    """The general engine (no whitening) with flat weights and flat sigma: with nu huge the posterior mean of w is
    least squares (the flat-prior Gaussian posterior is centred there whatever sigma)."""
    x, y = _small_data()
    spec = bl.ModelSpec(bl.linear(), bl.flat_prior(2), bl.flat_noise())
    result = bl.fit(x, y, bl.student_t(spec, nu=1e6), config=FAST)
    ols = np.linalg.lstsq(_design(x), y, rcond=None)[0]
    w = _draws(result.tree, "w").reshape(-1, 2)
    _agree(w.mean(0), ols, _mcse(result.tree, "w", "mean"))


# ---------------------------------------------------------------------------------------------
# Validation, improper priors, posterior_is_proper
# ---------------------------------------------------------------------------------------------

BAD = [
    (lambda: bl.independent_normal(0.0, np.nan, 2), "NaN or inf"),
    (lambda: bl.independent_normal(0.0, np.inf, 2), "NaN or inf"),
    (lambda: bl.independent_normal(0.0, 0.0, 2), "must be positive"),
    (lambda: bl.independent_normal(0.0, 1e300, 2), "prior scale 1e+300 is too large"),
    (lambda: bl.independent_normal(0.0, 1e-300, 2), "too small"),
    (lambda: bl.mvn([0.0, 0.0], np.eye(2) * 1e310), "covariance contains NaN or inf"),
    (lambda: bl.student_t_prior(0.0, 0.0, 1.0, 2), "df must be positive"),
    (lambda: bl.student_t_prior(np.nan, 0.0, 1.0, 2), "df contains NaN"),
    (lambda: bl.student_t_prior(3.0, 0.0, [1.0, 2.0, 3.0], 2), "must have 2 entries"),
    (lambda: bl.student_t_prior(3.0, 0.0, 1e300, 2), "too large"),
    (lambda: bl.cauchy_prior(0.0, -1.0, 2), "must be positive"),
    (lambda: bl.term_prior(["normal", "laplace"], 0.0, 1.0), "unknown prior family 'laplace'"),
    (lambda: bl.term_prior(["student_t", "normal"], 0.0, 1.0), "needs its degrees of freedom"),
    (lambda: bl.term_prior(["normal", "flat"], 0.0, 1.0, intercept=0, shift=[1.0, 2.0]), "must be 0"),
    (lambda: bl.term_prior(["normal", "flat"], 0.0, 1.0, intercept=5, shift=[0.0, 2.0]), "intercept index"),
    (lambda: bl.term_prior(["normal", "flat"], 0.0, 1.0, shift=[0.0, 2.0]), "needs the intercept index"),
    (lambda: bl.term_prior(["normal", "flat"], 0.0, 1.0, intercept=0, shift=[0.0, np.inf]), "shift contains NaN"),
    (lambda: bl.flat_prior(0), "at least one coefficient"),
    (lambda: bl.half_cauchy_noise(0.0), "positive and finite"),
    (lambda: bl.half_t_noise(-1.0, 1.0), "positive and finite"),
    (lambda: bl.half_t_noise(3.0, np.nan), "positive and finite"),
    (lambda: bl.exponential_noise(np.inf), "positive and finite"),
    (lambda: bl.half_normal_noise(1e300), "too large"),
    (lambda: bl.known_noise(1e300), "too large"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_prior_values_raise_one_line(make, message):
    with pytest.raises(BayeslinError, match=message.replace("+", r"\+").replace("(", r"\(")) as err:
        make()
    assert "\n" not in str(err.value)


def test_improper_priors_cannot_be_simulated():
    with pytest.raises(BayeslinError, match=r"cannot simulate from an improper prior \(flat weights\)"):
        bl.flat_prior(2).distribution().sample(jax.random.key(0))
    with pytest.raises(BayeslinError, match=r"improper prior \(flat weights\)"):
        bl.term_prior(["student_t", "flat"], 0.0, 1.0, 3.0).distribution().sample(jax.random.key(0))
    with pytest.raises(BayeslinError, match=r"improper prior \(flat sigma\)"):
        bl.flat_noise().distribution().sample(jax.random.key(0))
    flat_w = bl.ModelSpec(bl.linear(), bl.flat_prior(2), bl.known_noise(1.0))
    flat_s = bl.ModelSpec(bl.linear(), bl.independent_normal(0.0, 1.0, 2), bl.flat_noise())
    for spec, what in ((flat_w, "flat weights"), (flat_s, "flat sigma")):
        with pytest.raises(BayeslinError, match=f"improper prior \\({what}\\): studies and SBC need a proper prior"):
            simulate.prior_data(0, [0, 1], spec)
        with pytest.raises(BayeslinError, match=what):
            simulate.simulate_model(0, [0], linear_model(spec))
    proper = bl.ModelSpec(bl.linear(), bl.student_t_prior(3.0, 0.0, 1.0, 2), bl.half_cauchy_noise(1.0))
    assert simulate.prior_data(0, [0, 1], proper).w.shape == (2, 2)


def test_posterior_is_proper_cases():
    x = np.linspace(0.0, 1.0, 6)
    phi = _design(x)
    normal, flat = bl.independent_normal(0.0, 1.0, 2), bl.flat_prior(2)
    known, half = bl.known_noise(1.0), bl.half_normal_noise(1.0)
    assert bl.posterior_is_proper(normal, known, phi[:1]) is None
    assert bl.posterior_is_proper(flat, known, phi) is None
    assert bl.posterior_is_proper(flat, half, phi[:2]) is None  # n = d: sigma | y is its prior, still proper
    rank_deficient = np.stack([np.ones(6), np.ones(6)], -1)
    assert "linearly independent" in bl.posterior_is_proper(flat, known, rank_deficient)
    assert "rank 2" in bl.posterior_is_proper(bl.flat_prior(3), known, _design(x, 2)[:2])
    # a flat sigma: n > k + 1 with k flat coefficients
    assert "more than 3 data points" in bl.posterior_is_proper(flat, bl.flat_noise(), phi[:3])
    assert bl.posterior_is_proper(flat, bl.flat_noise(), phi[:4]) is None
    assert "more than 1 data points" in bl.posterior_is_proper(normal, bl.flat_noise(), phi[:1])
    assert bl.posterior_is_proper(normal, bl.flat_noise(), phi[:2]) is None
    # only the flat block must be identified; in the centred coordinates its column is x - shift
    mixed = bl.term_prior(["normal", "flat"], 0.0, 1.0)
    assert bl.posterior_is_proper(mixed, known, np.stack([np.zeros(6), x], -1)) is None
    assert "linearly independent" in bl.posterior_is_proper(mixed, known, np.stack([x, np.zeros(6)], -1))
    centred = bl.term_prior(["normal", "flat"], 0.0, 1.0, intercept=0, shift=[0.0, 0.5])
    assert bl.posterior_is_proper(centred, known, phi) is None
    assert "linearly independent" in bl.posterior_is_proper(centred, known, _design(np.full(6, 0.5)))
    with pytest.raises(BayeslinError, match="linearly independent"):
        nig.unknown_noise_reference(rank_deficient, x, flat, half)
    with pytest.raises(BayeslinError, match="normal or flat"):
        exact.posterior64(phi, x, bl.student_t_prior(3.0, 0.0, 1.0, 2), 1.0)


def test_specs_describe_and_text():
    spec = bl.ModelSpec(bl.linear(), bl.cauchy_prior(0.0, 2.5, 2), bl.half_t_noise(3.0, 2.0))
    assert spec.prior_kind == "term" and spec.is_proper
    assert spec.text() == ["b ~ StudentT(1, 0, 2.5)", "m ~ StudentT(1, 0, 2.5)", "sigma ~ HalfStudentT(3, 2)"]
    described = json.loads(json.dumps(spec.describe()))
    assert described["prior"]["family"] == ["student_t", "student_t"] and described["noise"]["kind"] == "half_t"
    assert bl.exponential_noise(0.5).reference_scale == 2.0 and bl.flat_noise().reference_scale == 1.0
    assert not bl.ModelSpec(bl.linear(), bl.flat_prior(2), bl.known_noise(1.0)).is_proper
    # the existing descriptions are unchanged
    assert priors.tutorial_spec().describe()["prior"] == {"kind": "independent", "mean": [0.0, 0.0],
                                                          "scale": [0.2, 0.2]}
    assert linear_model(spec).dap_quantities == ()  # Cauchy: no finite fourth moment
    t5 = bl.ModelSpec(bl.linear(), bl.term_prior(["student_t", "flat"], 0.0, 1.0, [5.0, 1.0]), bl.known_noise(1.0))
    assert linear_model(t5).dap_quantities == ("b",)
