"""The regularized horseshoe recovers the polynomial degree of the sibling post's data (issue 11, item 4).

Data: ``y = 0.5 + 3x - 2x^2 + N(0, 0.4^2)``, 10 points with ``x ~ U(-2, -1)`` and 10 with ``x ~ U(2, 3)``
(``simulate.basis_post_data``), fitted with a degree-10 polynomial in the basis orthonormal on the data
(``basis.OrthogonalPolynomial``): the truth has exactly two nonzero non-intercept coefficients (Q1, Q2).
Fast checks: the basis and the shrinkage factors against exact formulas. Slow: NUTS on 8 datasets.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from bayeslin_jax.core import simulate
from bayeslin_jax.core.basis import OrthogonalPolynomial, Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.regressions import highest_active, horseshoe_shrinkage

DEGREE = 10
N = 20


def _post_data(num: int = 1):
    data = simulate.basis_post_data(0, np.arange(num), N)
    return np.asarray(data.x, dtype=np.float64), np.asarray(data.y, dtype=np.float64)


def test_basis_post_data_is_the_posts_quadratic_on_two_clusters():
    x, y = _post_data(3)
    assert np.all((x[:, :10] >= -2) & (x[:, :10] <= -1)) and np.all((x[:, 10:] >= 2) & (x[:, 10:] <= 3))
    residual = y - (0.5 + 3 * x - 2 * x**2)
    assert 0.25 < residual.std() < 0.6  # sigma 0.4 from 60 draws: sd of the sd ~0.04
    again = simulate.basis_post_data(0, [2], N)
    np.testing.assert_array_equal(np.asarray(again.x[0]), x[2].astype(np.float32))


def test_orthogonal_polynomials_are_orthonormal_on_the_data_and_span_the_monomials():
    x, _y = _post_data()
    basis = OrthogonalPolynomial.fit(x[0], DEGREE)
    phi = np.asarray(basis(x[0]), dtype=np.float64)
    assert phi.shape == (N, DEGREE + 1) and basis.feature_names[-1] == "Q10"
    np.testing.assert_allclose(phi.T @ phi / N, np.eye(DEGREE + 1), atol=1e-5)
    # Same function space: least squares of the noise-free quadratic puts weight on Q0..Q2 only.
    quadratic = 0.5 + 3 * x[0] - 2 * x[0] ** 2
    coef = phi.T @ quadratic / N
    assert np.all(np.abs(coef[:3]) > 0.1) and np.max(np.abs(coef[3:])) < 1e-3 * np.max(np.abs(coef))
    # and the monomial design is ill-conditioned where this one is not
    assert np.linalg.cond(np.asarray(Polynomial(DEGREE)(x[0]), dtype=np.float64)) > 1e6
    with pytest.raises(BayeslinError, match="distinct"):
        OrthogonalPolynomial.fit(np.ones(5), 2)


def test_shrinkage_factor_is_the_exact_posterior_shrinkage_for_orthonormal_features():
    """Fixed sigma, tau, lambda, c: w ~ N(0, diag(tau^2 lambda~^2)), so E[w | y] = (1 - kappa) * w_ols exactly."""
    x, y = _post_data()
    phi = np.asarray(OrthogonalPolynomial.fit(x[0], DEGREE)(x[0]), dtype=np.float64)[:, 1:]
    phi -= phi.mean(0)  # centred (already, to rounding)
    y0 = y[0] - y[0].mean()
    sigma, tau, c2 = 0.4, 0.05, 4.0
    lam = np.geomspace(0.1, 100.0, DEGREE)
    prior_var = tau**2 * c2 * lam**2 / (c2 + tau**2 * lam**2)
    exact_mean = np.linalg.solve(phi.T @ phi / sigma**2 + np.diag(1 / prior_var), phi.T @ y0 / sigma**2)
    w_ols = np.linalg.lstsq(phi, y0, rcond=None)[0]
    kappa = horseshoe_shrinkage(sigma, tau, lam, c2, phi.var(0), N)
    np.testing.assert_allclose(exact_mean, (1 - kappa) * w_ols, rtol=1e-4, atol=1e-8)
    assert highest_active(np.array([[0.1, 0.2, 0.9, 0.6], [0.9, 0.9, 0.9, 0.9]])).tolist() == [2, 0]


@pytest.mark.slow
def test_horseshoe_recovers_the_degree_of_the_posts_quadratic():
    """8 datasets, 4 chains x 1000 + 1000, target_accept 0.99 (the notebook's settings).

    Degree estimate: the largest j with posterior mean 1 - kappa_j > 1/2 (Carvalho, Polson & Scott 2010).
    m_eff = (1 - kappa_1) + (1 - kappa_2) + eight positive terms, so its interval lies above 2 (it cannot cover
    the truth from below). Measured (seed 0, first 4 datasets): E[1 - kappa] of Q1, Q2 >= 0.98, of Q3..Q10 at
    most 0.44, m_eff's 90 % intervals about [2.4, 7]. Thresholds: degree 2 in at least 7 of 8 datasets; every
    interval above 1.9 and below 9 (the full model is 10); the mean over datasets of P(m_eff < 8) > 0.9.
    """
    from bayeslin_jax.core.model import horseshoe
    from bayeslin_jax.core.priors import half_normal_noise
    from bayeslin_jax.engine import NutsConfig
    from bayeslin_jax.engine.sampling import sample_model

    num = 8
    x, y = _post_data(num)
    phis = np.stack([np.asarray(OrthogonalPolynomial.fit(xi, DEGREE)(xi)) for xi in x])
    model = horseshoe(Polynomial(DEGREE), half_normal_noise(1.0), expected_nonzero=2, num_points=N)
    model = dataclasses.replace(model, basis=None)  # one basis per dataset: pass the features
    config = NutsConfig(num_warmup=1000, num_draws=1000, num_chains=4, target_accept=0.99)
    result = sample_model(0, jnp.asarray(phis, jnp.float32), jnp.asarray(y, jnp.float32), model, config,
                          draw_stats=False)
    s = {k: np.asarray(v, dtype=np.float64) for k, v in result.samples.items()}
    lam = s["lambda_a"] * np.sqrt(s["lambda_b"])
    degrees, inside, below8 = [], [], []
    for b in range(num):
        kappa = horseshoe_shrinkage(s["sigma"][b], s["tau"][b], lam[b], s["c2"][b], phis[b, :, 1:].var(0), N)
        m_eff = (1 - kappa).sum(-1)
        low, high = np.quantile(m_eff, [0.05, 0.95])
        degrees.append(int(highest_active(kappa.mean((0, 1)))))
        inside.append(1.9 < low and high < 9)
        below8.append(np.mean(m_eff < 8))
    assert sum(d == 2 for d in degrees) >= num - 1, degrees
    assert all(inside), inside
    assert np.mean(below8) > 0.9
