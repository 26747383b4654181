"""Exact conjugate posterior for known noise: the oracle every sampler is checked against.

With prior ``w ~ N(m0, V0)`` and ``y | w ~ N(phi w, sigma^2 I)``::

    P   = V0^-1 + phi^T phi / sigma^2              (posterior precision)
    V_N = P^-1 = sigma^2 (sigma^2 V0^-1 + phi^T phi)^-1
    w_N = V_N (V0^-1 m0 + phi^T y / sigma^2)

All functions broadcast over leading batch axes (``phi: (..., n, d)``, ``y: (..., n)``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayeslin_jax.priors import IndependentNormal, WeightPrior


class GaussianPosterior(NamedTuple):
    """``mean: (..., d)``, ``cov: (..., d, d)``, ``precision_tril: (..., d, d)`` (chol of P)."""

    mean: Array
    cov: Array
    precision_tril: Array

    @property
    def sd(self) -> Array:
        """Marginal posterior sds ``(..., d)``."""
        return jnp.sqrt(jnp.diagonal(self.cov, axis1=-2, axis2=-1))

    @property
    def corr(self) -> Array:
        """Posterior correlation matrix ``(..., d, d)``."""
        sd = self.sd
        return self.cov / (sd[..., :, None] * sd[..., None, :])


def _prior_logdet_cov(prior: WeightPrior) -> Array:
    if isinstance(prior, IndependentNormal):
        return 2.0 * jnp.sum(jnp.log(prior.scale))
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(prior.scale_tril)))


def _cho_solve(tril: Array, rhs: Array) -> Array:
    """Solve ``(L L^T) x = rhs`` for a batch; ``tril: (..., d, d)``, ``rhs: (..., d, k)``."""
    half = jax.scipy.linalg.solve_triangular(tril, rhs, lower=True)
    return jax.scipy.linalg.solve_triangular(jnp.swapaxes(tril, -1, -2), half, lower=False)


def posterior(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> GaussianPosterior:
    """Conjugate posterior of ``w``. ``phi: (..., n, d)``, ``y: (..., n)`` -> mean ``(..., d)``."""
    prior_precision = prior.precision
    phi_t = jnp.swapaxes(phi, -1, -2)
    precision = prior_precision + phi_t @ phi / sigma**2
    tril = jnp.linalg.cholesky(precision)
    rhs = prior_precision @ prior.mean + (phi_t @ y[..., None])[..., 0] / sigma**2
    mean = _cho_solve(tril, rhs[..., None])[..., 0]
    eye = jnp.broadcast_to(jnp.eye(phi.shape[-1], dtype=precision.dtype), precision.shape)
    cov = _cho_solve(tril, eye)
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return GaussianPosterior(mean, cov, tril)


def predictive(post: GaussianPosterior, phi_new: Array, sigma: Array | float) -> tuple[Array, Array, Array]:
    """Posterior predictive at new inputs. ``phi_new: (m, d)`` or ``(..., m, d)``.

    Returns ``(mean, sd_mean, sd_obs)``, each ``(..., m)``: the mean function's sd is
    ``sqrt(phi V_N phi^T)``; a new observation's sd adds the noise, ``sqrt(... + sigma^2)``.
    """
    mean = jnp.einsum("...md,...d->...m", phi_new, post.mean)
    var_mean = jnp.einsum("...md,...de,...me->...m", phi_new, post.cov, phi_new)
    var_mean = jnp.maximum(var_mean, 0.0)
    return mean, jnp.sqrt(var_mean), jnp.sqrt(var_mean + sigma**2)


def log_evidence(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> Array:
    """Log marginal likelihood ``log p(y | phi, prior, sigma)``, shape ``(...)``."""
    post = posterior(phi, y, prior, sigma)
    n = y.shape[-1]
    logdet_precision = 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.precision_tril, axis1=-2, axis2=-1)), axis=-1)
    # residual form of  y'y/s^2 + m0'V0^-1 m0 - w_N' P w_N  (no cancellation between large terms)
    residual = y - jnp.einsum("...nd,...d->...n", phi, post.mean)
    shift = post.mean - prior.mean
    prior_quad = jnp.einsum("...d,de,...e->...", shift, prior.precision, shift)
    return (
        -0.5 * n * jnp.log(2.0 * jnp.pi * sigma**2)
        - 0.5 * _prior_logdet_cov(prior)
        - 0.5 * logdet_precision
        - 0.5 * (jnp.sum(residual**2, axis=-1) / sigma**2 + prior_quad)
    )


def sample(key: Array, post: GaussianPosterior, num_draws: int) -> Array:
    """Exact independent draws for one dataset: ``(num_draws, d)``.

    Uses ``w = mean + L^-T z`` with ``L = chol(P)``, so ``cov(w) = P^-1``; ``L^-T`` is formed once
    (one small triangular solve) and applied to all draws as a matrix product.
    """
    dim = post.mean.shape[-1]
    z = jax.random.normal(key, (num_draws, dim), dtype=post.mean.dtype)
    inv_tril = jax.scipy.linalg.solve_triangular(post.precision_tril, jnp.eye(dim, dtype=z.dtype), lower=True)
    return post.mean + z @ inv_tril


def sample_batch(keys: Array, post: GaussianPosterior, num_draws: int) -> Array:
    """Exact draws for a batch: ``keys: (B,)`` (one per dataset) -> ``(B, num_draws, d)``."""
    return jax.vmap(sample, in_axes=(0, 0, None))(keys, post, num_draws)
