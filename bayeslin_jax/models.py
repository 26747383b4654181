"""The NumPyro model: ``w ~ prior``, ``mu = phi @ w``, ``y ~ Normal(mu, sigma)``.

The observation site ``y`` sits in a plate over data points, so
:func:`numpyro.infer.log_likelihood` returns pointwise log-likelihoods for ArviZ LOO.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array

from bayeslin_jax.priors import KnownNoise, Noise, WeightPrior


def linear_regression(phi: Array, y: Array | None, prior: WeightPrior, noise: Noise) -> None:
    """One dataset. ``phi: (n, d)``, ``y: (n,)`` or None (prior predictive).

    Sites: ``w: (d,)``; ``sigma: ()`` (unknown noise only); ``y: (n,)`` (observed).
    """
    w = numpyro.sample("w", prior.distribution())
    if isinstance(noise, KnownNoise):
        sigma = noise.sigma
    else:
        sigma = numpyro.sample("sigma", noise.distribution())
    mu = numpyro.deterministic("mu", jnp.matmul(phi, w)) if y is None else phi @ w
    with numpyro.plate("obs", phi.shape[-2]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
