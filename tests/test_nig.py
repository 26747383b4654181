"""Unknown noise: the quadrature reference, the NIG variant, and NUTS checked against them.

* ``unknown_noise_reference`` vs scipy ``quad`` over sigma of the Gaussian marginal likelihood
  (independent of exact.py), and grid-size convergence;
* NUTS (``HalfNormalNoise``) vs that reference: posterior mean/sd of sigma and mean of w within
  4 ArviZ MCSEs;
* large dataset: NUTS posterior mean of sigma near the truth (within 4 posterior sds + 4 MCSE), and
  the NIG variant agrees with the package's model where the prior hardly matters;
* NIG closed forms vs quadrature and vs its own exact draws.
"""

import arviz_stats as azs
import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from bayeslin_jax import engine, fit
from bayeslin_jax.core import nig, priors, simulate
from bayeslin_jax.core.errors import BayeslinError

SIGMA_SCALE = 1.0
WIDE = priors.ModelSpec(
    priors.Polynomial(1), priors.independent_normal(0.0, 1.0, 2), priors.half_normal_noise(SIGMA_SCALE)
)
CONFIG = engine.NutsConfig(num_warmup=500, num_draws=1000, num_chains=4)


def _data(num_points: int, index: int = 0):
    data = simulate.tutorial_data(seed=1, indices=[index], num_points=num_points)
    return np.asarray(data.x[0], dtype=np.float64), np.asarray(data.y[0], dtype=np.float64)


def _phi(x):
    return x[:, None] ** np.arange(2)


def _prior_moments(prior):
    return np.asarray(prior.mean, dtype=np.float64), np.diag(np.asarray(prior.scale, dtype=np.float64) ** 2)


def _quad_reference(phi, y, prior):
    """Independent reference: p(y | sigma) = N(y | phi m0, sigma^2 I + phi V0 phi^T) (scipy), integrated
    against HalfNormal(sigma) with adaptive quadrature. Returns (log evidence, E[sigma], E[w])."""
    m0, v0 = _prior_moments(prior)
    shared = phi @ v0 @ phi.T

    def log_joint(s):
        cov = s**2 * np.eye(len(y)) + shared
        log_prior = scipy.stats.halfnorm(scale=SIGMA_SCALE).logpdf(s)
        return scipy.stats.multivariate_normal(phi @ m0, cov).logpdf(y) + log_prior

    grid = np.linspace(1e-3, 5.0, 5000)
    top = max(log_joint(s) for s in grid[::50])
    mode = grid[::50][np.argmax([log_joint(s) for s in grid[::50]])]
    points = [mode]

    def integral(f):
        return scipy.integrate.quad(lambda s: f(s) * np.exp(log_joint(s) - top), 0.0, 10.0, points=points, limit=200)[0]

    z = integral(lambda s: 1.0)

    def cond_mean(s):
        v0_inv = np.linalg.inv(v0)
        v_n = np.linalg.inv(v0_inv + phi.T @ phi / s**2)
        return v_n @ (v0_inv @ m0 + phi.T @ y / s**2)

    w_mean = [integral(lambda s, k=k: cond_mean(s)[k]) / z for k in range(2)]
    return top + np.log(z), integral(lambda s: s) / z, np.array(w_mean)


@pytest.fixture(scope="module")
def small():
    """Tutorial data (11 points), wide prior, sigma ~ HalfNormal(1): reference and a NUTS run."""
    x, y = _data(11)
    phi = _phi(x)
    ref = nig.unknown_noise_reference(phi, y, WIDE.prior, WIDE.noise)
    tree = fit(x, y, WIDE, config=CONFIG).tree
    return phi, y, ref, tree


def test_reference_matches_scipy_quadrature(small):
    phi, y, ref, _ = small
    log_z, sigma_mean, w_mean = _quad_reference(phi, y, WIDE.prior)
    assert float(ref.log_evidence) == pytest.approx(log_z, abs=1e-6)
    assert float(ref.sigma_mean) == pytest.approx(sigma_mean, rel=1e-6)
    np.testing.assert_allclose(ref.mean, w_mean, rtol=1e-6)
    assert float(ref.weights.sum()) == pytest.approx(1.0, abs=1e-12)


def test_reference_grid_has_converged(small):
    phi, y, ref, _ = small
    coarse = nig.unknown_noise_reference(phi, y, WIDE.prior, WIDE.noise, grid_size=201)
    for field in ("log_evidence", "sigma_mean", "sigma_sd", "mean", "cov"):
        np.testing.assert_allclose(getattr(coarse, field), getattr(ref, field), rtol=1e-9, atol=1e-12)
    lo, med, hi = ref.sigma_quantile([0.05, 0.5, 0.95])
    assert lo < float(ref.sigma_mean) < hi and lo < med < hi


def test_reference_batches_like_single_datasets():
    data = [_data(11, i) for i in range(3)]
    phi = np.stack([_phi(x) for x, _ in data])
    y = np.stack([yi for _, yi in data])
    batch = nig.unknown_noise_reference(phi, y, WIDE.prior, WIDE.noise)
    assert batch.mean.shape == (3, 2) and batch.cov.shape == (3, 2, 2) and batch.sigma_mean.shape == (3,)
    for i in range(3):
        one = nig.unknown_noise_reference(phi[i], y[i], WIDE.prior, WIDE.noise)
        np.testing.assert_allclose(batch.sigma_mean[i], one.sigma_mean, rtol=1e-12)
        np.testing.assert_allclose(batch.mean[i], one.mean, rtol=1e-12)


def test_nuts_unknown_noise_matches_reference(small):
    _, _, ref, tree = small
    post = tree["posterior"]
    assert int(tree["sample_stats"]["diverging"].sum()) == 0
    sigma = post["sigma"]
    mcse_mean = float(azs.mcse(tree, var_names=["sigma"], method="mean")["sigma"])
    mcse_sd = float(azs.mcse(tree, var_names=["sigma"], method="sd")["sigma"])
    assert abs(float(sigma.mean()) - float(ref.sigma_mean)) < 4 * mcse_mean
    assert abs(float(sigma.std(ddof=1)) - float(ref.sigma_sd)) < 4 * mcse_sd
    w_mcse = azs.mcse(tree, var_names=["w"], method="mean")["w"].values
    w_mean = post["w"].mean(["chain", "draw"]).values
    assert np.all(np.abs(w_mean - ref.mean) < 4 * w_mcse)


@pytest.mark.slow  # ~7 s; the closed forms and the quadrature reference stay in the default suite
def test_large_dataset_sigma_near_truth_and_nig_agrees():
    """n = 2000, true sigma = 0.1: the posterior sd of sigma is ~ 0.1 / sqrt(2n) = 0.0016."""
    x, y = _data(2000)
    phi = _phi(x)
    config = engine.NutsConfig(num_warmup=300, num_draws=500, num_chains=2)
    tree = fit(x, y, WIDE, config=config, log_likelihood=False).tree
    sigma = tree["posterior"]["sigma"]
    mcse = float(azs.mcse(tree, var_names=["sigma"], method="mean")["sigma"])
    post_sd = float(sigma.std())
    assert 0.001 < post_sd < 0.0025
    # Bernstein-von Mises: the posterior mean is within a few posterior sds of the truth.
    assert abs(float(sigma.mean()) - simulate.TUTORIAL_SIGMA) < 4 * post_sd + 4 * mcse

    ref = nig.unknown_noise_reference(phi, y, WIDE.prior, WIDE.noise)
    assert abs(float(sigma.mean()) - float(ref.sigma_mean)) < 4 * mcse
    # NIG with a vague prior: differs from the package's model by O(d / 2n) relative in sigma
    # (~0.03 posterior sd here), so a quarter of a posterior sd is a safe bound.
    nig_prior = nig.nig_prior([0.0, 0.0], 100.0 * np.eye(2), a=2.0, b=0.01)
    nig_post = nig.nig_posterior(phi, y, nig_prior)
    assert abs(float(nig_post.sigma_mean) - float(ref.sigma_mean)) < 0.25 * float(ref.sigma_sd)
    assert float(nig_post.sigma_sd) == pytest.approx(float(ref.sigma_sd), rel=0.05)
    np.testing.assert_allclose(nig_post.mean, ref.mean, atol=0.25 * ref.sd.min())


def _nig_quad(phi, y, prior: nig.NIGPrior):
    """Independent NIG reference: integrate N(y | phi m0, s2 (I + phi V0 phi^T)) InvGamma(s2 | a, b) over s2."""
    shared = np.eye(len(y)) + phi @ prior.cov @ phi.T
    ig = scipy.stats.invgamma(prior.a, scale=prior.b)

    def log_joint(s2):
        return scipy.stats.multivariate_normal(phi @ prior.mean, s2 * shared).logpdf(y) + ig.logpdf(s2)

    s2_grid = np.geomspace(1e-6, 10.0, 400)
    values = [log_joint(s) for s in s2_grid]
    top, mode = max(values), s2_grid[int(np.argmax(values))]

    def integral(f):
        integrand = lambda s2: f(s2) * np.exp(log_joint(s2) - top)  # noqa: E731
        return scipy.integrate.quad(integrand, 0.0, 50.0, points=[mode], limit=200)[0]

    z = integral(lambda s2: 1.0)
    return top + np.log(z), integral(np.sqrt) / z


def test_nig_closed_forms_match_quadrature():
    x, y = _data(11)
    phi = _phi(x)
    prior = nig.nig_prior([1.0, 0.0], [[4.0, 1.0], [1.0, 2.0]], a=3.0, b=0.05)
    log_z, sigma_mean = _nig_quad(phi, y, prior)
    assert float(nig.nig_log_evidence(phi, y, prior)) == pytest.approx(log_z, abs=1e-6)
    post = nig.nig_posterior(phi, y, prior)
    assert float(post.sigma_mean) == pytest.approx(sigma_mean, rel=1e-6)
    # Student-t marginal of w: its variance is the w_cov property.
    np.testing.assert_allclose(np.asarray(nig.nig_w_marginal(post).variance), np.diag(post.w_cov), rtol=1e-5)
    # batching over datasets
    phis = np.stack([phi, _phi(_data(11, 1)[0])])
    ys = np.stack([y, _data(11, 1)[1]])
    np.testing.assert_allclose(nig.nig_log_evidence(phis, ys, prior)[0], nig.nig_log_evidence(phi, y, prior))


def test_nig_draws_match_closed_forms():
    x, y = _data(11)
    post = nig.nig_posterior(_phi(x), y, nig.nig_prior([0.0, 0.0], np.eye(2), a=2.0, b=0.02))
    num = 20000
    w, sigma = nig.nig_sample(jax.random.key(3), post, num)
    w, sigma = np.asarray(w, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    # independent draws: MCSE = sd / sqrt(num)
    assert abs(sigma.mean() - post.sigma_mean) < 4 * post.sigma_sd / np.sqrt(num)
    assert np.all(np.abs(w.mean(axis=0) - post.mean) < 4 * post.w_sd / np.sqrt(num))
    # covariance of w (Student-t: (b / (a - 1)) V_N) within 4 SE per entry; SE from the draws' own products
    centred = w - w.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]
    cov_se = products.std(axis=0, ddof=1) / np.sqrt(num)
    assert np.all(np.abs(np.cov(w, rowvar=False) - post.w_cov) < 4 * cov_se), (np.cov(w, rowvar=False), post.w_cov)
    # whole marginals (fixed key; each KS test fails a correct sampler with probability 0.001)
    scale = np.sqrt(post.b / post.a * post.cov[1, 1])
    assert scipy.stats.kstest(w[:, 1], scipy.stats.t(post.df, post.mean[1], scale).cdf).pvalue > 0.001
    assert scipy.stats.kstest(sigma**2, scipy.stats.invgamma(post.a, scale=post.b).cdf).pvalue > 0.001
    q = post.sigma_quantile([0.1, 0.5, 0.9])
    empirical = np.quantile(sigma, [0.1, 0.5, 0.9])
    # quantile MCSE: sqrt(p (1 - p) / num) / density; density >= 0.5 / sd near these quantiles here.
    assert np.all(np.abs(empirical - q) < 4 * np.sqrt(0.25 / num) * 2 * post.sigma_sd)


def test_bad_inputs_raise():
    with pytest.raises(BayeslinError, match="inverse-gamma a"):
        nig.nig_prior([0.0], [[1.0]], a=0.0, b=1.0)
    with pytest.raises(BayeslinError, match="expected phi"):
        nig.unknown_noise_reference(np.ones((5, 2)), np.ones(4), WIDE.prior, WIDE.noise)
    with pytest.raises(BayeslinError, match="noise prior scale"):
        nig.unknown_noise_reference(np.ones((5, 2)), np.ones(5), WIDE.prior, -1.0)
