"""The conjugate oracle (exact.py) against independent numpy/scipy computations.

* ``log_evidence`` vs a brute-force 2-D grid integral of prior x likelihood (linear basis, both
  priors, plus a prior with non-zero mean so the prior-mean terms are exercised);
* ``log_evidence`` vs the Gaussian marginal ``y ~ N(phi m0, s^2 I + phi V0 phi^T)`` (scipy), any degree;
* ``posterior`` / ``predictive`` vs the tutorial's formulas written out in numpy.

Float64 checks run inside ``jax.enable_x64(True)`` (never flipped globally); float32 checks use
tolerances scaled by float32 eps and the size of the terms that cancel.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from bayeslin_jax.core import exact, priors, simulate
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.priors import ModelSpec, known_noise, mvn

EPS32 = float(np.finfo(np.float32).eps)
SIGMA = 0.1


def _x64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), tree)


def _prior_moments(prior) -> tuple[np.ndarray, np.ndarray]:
    """(m0, V0) in float64 from the (float32) prior pytree, so the references use the very numbers the
    package uses (for MVN the package works from ``scale_tril``, so V0 = L L^T, not the rounded ``cov``)."""
    mean = np.asarray(prior.mean, dtype=np.float64)
    if isinstance(prior, priors.IndependentNormal):
        return mean, np.diag(np.asarray(prior.scale, dtype=np.float64) ** 2)
    tril = np.asarray(prior.scale_tril, dtype=np.float64)
    return mean, tril @ tril.T


def _numpy_posterior(phi, y, m0, v0, s):
    """Tutorial formula: V_N = s^2 (s^2 V0^-1 + Phi^T Phi)^-1, w_N = V_N V0^-1 w0 + V_N Phi^T y / s^2."""
    v0_inv = np.linalg.inv(v0)
    v_n = s**2 * np.linalg.inv(s**2 * v0_inv + phi.T @ phi)
    w_n = v_n @ v0_inv @ m0 + v_n @ phi.T @ y / s**2
    return w_n, v_n


def _data(index: int = 0, num_points: int = 11):
    data = simulate.tutorial_data(seed=0, indices=[index], num_points=num_points)
    return np.asarray(data.x[0], dtype=np.float64), np.asarray(data.y[0], dtype=np.float64)


def _phi(x, degree=1):
    return x[:, None] ** np.arange(degree + 1)


PRIORS = {
    "independent": priors.tutorial_spec("independent").prior,
    "mvn": priors.tutorial_spec("mvn", corr=-0.5).prior,
    "shifted_mvn": priors.mvn([1.8, 0.2], [[0.09, 0.03], [0.03, 0.25]]),
}


def _grid_log_evidence(phi, y, m0, v0, s, half_width=10.0, points=401) -> float:
    """log of the integral of N(w | m0, V0) prod_i N(y_i | phi_i w, s) over a 2-D grid.

    The box is the posterior mean +- ``half_width`` posterior sds per axis (outside it the integrand
    is < e^-50 of its peak); a uniform grid + the rectangle rule is spectrally accurate for this
    smooth, rapidly decaying integrand.
    """
    w_n, v_n = _numpy_posterior(phi, y, m0, v0, s)
    sd = np.sqrt(np.diag(v_n))
    axes = [np.linspace(w_n[k] - half_width * sd[k], w_n[k] + half_width * sd[k], points) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prior = scipy.stats.multivariate_normal(m0, v0).logpdf(grid)
    log_lik = scipy.stats.norm.logpdf(y[None, :], grid @ phi.T, s).sum(axis=-1)
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    return float(scipy.special.logsumexp(log_prior + log_lik) + np.log(cell))


@pytest.mark.parametrize("name", list(PRIORS))
def test_log_evidence_matches_2d_grid_integral(name):
    prior = PRIORS[name]
    x, y = _data()
    phi = _phi(x)
    m0, v0 = _prior_moments(prior)
    grid = _grid_log_evidence(phi, y, m0, v0, SIGMA)
    coarser = _grid_log_evidence(phi, y, m0, v0, SIGMA, points=201)
    assert abs(grid - coarser) < 1e-9  # the quadrature has converged
    with jax.enable_x64(True):
        exact64 = float(exact.log_evidence(jnp.asarray(phi), jnp.asarray(y), _x64(prior), SIGMA))
    assert abs(exact64 - grid) < 1e-8
    # float32 (the package default): the formula cancels terms of size ~ sum(y^2)/sigma^2.
    exact32 = float(exact.log_evidence(jnp.asarray(phi, jnp.float32), jnp.asarray(y, jnp.float32), prior, SIGMA))
    assert abs(exact32 - grid) < 16 * EPS32 * np.sum(y**2) / SIGMA**2


@pytest.mark.parametrize("degree", [0, 1, 3, 5])
def test_log_evidence_matches_gaussian_marginal(degree):
    """y ~ N(Phi m0, s^2 I + Phi V0 Phi^T) (scipy) for every degree, batched over datasets."""
    prior = priors.independent_normal(np.linspace(-0.5, 0.5, degree + 1), 0.2 + 0.1 * np.arange(degree + 1), degree + 1)
    m0, v0 = _prior_moments(prior)
    data = [_data(i) for i in range(4)]
    phi = np.stack([_phi(x, degree) for x, _ in data])
    y = np.stack([yi for _, yi in data])
    expected = [
        scipy.stats.multivariate_normal(p @ m0, SIGMA**2 * np.eye(len(yi)) + p @ v0 @ p.T).logpdf(yi)
        for p, yi in zip(phi, y, strict=True)
    ]
    with jax.enable_x64(True):
        got = np.asarray(exact.log_evidence(jnp.asarray(phi), jnp.asarray(y), _x64(prior), SIGMA))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", list(PRIORS))
def test_posterior_matches_tutorial_formula(name):
    prior = PRIORS[name]
    x, y = _data(3)
    phi = _phi(x)
    m0, v0 = _prior_moments(prior)
    w_n, v_n = _numpy_posterior(phi, y, m0, v0, SIGMA)
    with jax.enable_x64(True):
        post = exact.posterior(jnp.asarray(phi), jnp.asarray(y), _x64(prior), SIGMA)
        np.testing.assert_allclose(np.asarray(post.mean), w_n, rtol=1e-11)
        np.testing.assert_allclose(np.asarray(post.cov), v_n, rtol=1e-10, atol=1e-14)
        precision = np.asarray(post.precision_tril @ post.precision_tril.T)
        np.testing.assert_allclose(precision, np.linalg.inv(v_n), rtol=1e-10)
    # float32: relative error bounded by (condition number of the precision) x eps, with margin 10.
    precision = np.linalg.inv(v_n)
    tol = 10 * np.linalg.cond(precision) * EPS32
    post32 = exact.posterior(jnp.asarray(phi, jnp.float32), jnp.asarray(y, jnp.float32), prior, SIGMA)
    np.testing.assert_allclose(np.asarray(post32.mean), w_n, rtol=tol)
    np.testing.assert_allclose(np.asarray(post32.cov), v_n, rtol=tol, atol=tol * np.abs(v_n).max())
    corr = v_n[0, 1] / np.sqrt(v_n[0, 0] * v_n[1, 1])
    assert float(post32.corr[0, 1]) == pytest.approx(corr, abs=tol)


def test_predictive_matches_numpy():
    prior = PRIORS["mvn"]
    x, y = _data(1)
    phi = _phi(x)
    m0, v0 = _prior_moments(prior)
    w_n, v_n = _numpy_posterior(phi, y, m0, v0, SIGMA)
    x_new = np.linspace(-3.0, 3.0, 13)
    phi_new = _phi(x_new)
    var_mean = np.einsum("md,de,me->m", phi_new, v_n, phi_new)
    with jax.enable_x64(True):
        post = exact.posterior(jnp.asarray(phi), jnp.asarray(y), _x64(prior), SIGMA)
        mean, sd_mean, sd_obs = (np.asarray(a) for a in exact.predictive(post, jnp.asarray(phi_new), SIGMA))
    np.testing.assert_allclose(mean, phi_new @ w_n, rtol=1e-11)
    np.testing.assert_allclose(sd_mean, np.sqrt(var_mean), rtol=1e-9)
    np.testing.assert_allclose(sd_obs, np.sqrt(var_mean + SIGMA**2), rtol=1e-10)
    # the band widens away from the data (|x| <= 1)
    assert sd_mean[0] > 3 * sd_mean[6] and sd_mean[-1] > 3 * sd_mean[6]


def test_exact_draws_have_the_posterior_mean_and_covariance() -> None:
    """``exact.sample_batch``: mean and every covariance entry within 4 SE (SEs from the draws' own products)."""
    basis = Polynomial(2)
    spec = ModelSpec(basis, mvn([0.0, 0.0, 0.0], [[0.3, -0.1, 0.05], [-0.1, 0.2, 0.0], [0.05, 0.0, 0.1]]),
                     known_noise(0.3))
    data = simulate.prior_data(5, np.arange(2), spec, num_points=6)
    post = exact.posterior(basis(data.x), data.y, spec.prior, 0.3)
    num = 20000
    draws = np.asarray(exact.sample_batch(jax.random.split(jax.random.key(8), 2), post, num), dtype=np.float64)
    assert draws.shape == (2, num, 3)
    for i in range(2):
        cov = np.asarray(post.cov[i], dtype=np.float64)
        corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
        assert np.abs(corr - np.eye(3)).max() > 0.3  # correlated: a transposed factor would show
        centred = draws[i] - draws[i].mean(0)
        assert np.all(np.abs(draws[i].mean(0) - np.asarray(post.mean[i])) < 4 * np.sqrt(np.diag(cov) / num))
        products = centred[:, :, None] * centred[:, None, :]
        se = products.std(0, ddof=1) / np.sqrt(num)
        assert np.all(np.abs(np.cov(draws[i], rowvar=False) - cov) < 4 * se), (np.cov(draws[i], rowvar=False), cov)


@pytest.mark.parametrize("kind", ["independent", "mvn"])
def test_prior_mean_enters_both_oracles(kind):
    """The prior-mean term ``V0^-1 m0`` of the posterior mean, in ``exact.posterior`` (JAX) and in the float64
    oracle ``exact.posterior64`` (NumPy), on a cubic basis with a prior mean far from the data's weights.

    Dropping the term moves the mean by ``V_N V0^-1 m0`` (here > 1000 times the tolerance)."""
    x, y = _data(5)
    phi = _phi(x, degree=3)
    m0 = np.array([1.5, -0.7, 0.9, -1.2])
    if kind == "independent":
        prior = priors.independent_normal(m0, np.array([0.3, 0.2, 0.25, 0.4]), 4)
    else:
        lags = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
        prior = priors.mvn(m0, 0.09 * 0.6**lags)
    m0_used, v0 = _prior_moments(prior)
    w_n, v_n = _numpy_posterior(phi, y, m0_used, v0, SIGMA)
    w_zero, _ = _numpy_posterior(phi, y, np.zeros(4), v0, SIGMA)
    assert np.abs(w_n - w_zero).max() > 0.05  # what the prior-mean term contributes
    post64 = exact.posterior64(phi, y, prior, SIGMA)
    np.testing.assert_allclose(np.asarray(post64.mean), w_n, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(post64.cov), v_n, rtol=1e-9, atol=1e-14)
    with jax.enable_x64(True):
        post = exact.posterior(jnp.asarray(phi), jnp.asarray(y), _x64(prior), SIGMA)
        np.testing.assert_allclose(np.asarray(post.mean), w_n, rtol=1e-10, atol=1e-12)
