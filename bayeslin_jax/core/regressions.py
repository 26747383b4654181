"""The NumPyro model: ``w ~ prior``, ``mu = phi @ w``, ``y ~ Normal(mu, sigma)``.

The observation site ``y`` sits in a plate over data points, so
:func:`numpyro.infer.log_likelihood` returns pointwise log-likelihoods for ArviZ LOO.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array

from bayeslin_jax.core.priors import KnownNoise, Noise, WeightPrior


class InferenceOnly(dist.Distribution):
    """An improper prior (flat weights, flat sigma) as a site of a model that is only *inferred*.

    ``support`` and ``log_prob`` are the base distribution's (what NUTS, ``init_to_uniform`` and the engine's
    potential energy use); ``sample`` returns a fixed placeholder in the support (the image of 0 in unconstrained
    space: 0 for real weights, 1 for sigma) instead of refusing, because the engine traces a model once with
    random values only to read its sites' shapes (:func:`bayeslin_jax.engine.sampling.inspect_model`). It is no
    draw from the prior: simulating such a model is refused up front (:mod:`bayeslin_jax.core.simulate`).

    Parameters
    ----------
    base : numpyro.distributions.Distribution
        The improper prior (its ``support`` and ``log_prob`` are used as they are).
    """

    pytree_data_fields = ("base",)

    def __init__(self, base: dist.Distribution):
        self.base = base
        super().__init__(batch_shape=base.batch_shape, event_shape=base.event_shape)

    @property
    def support(self):
        """The base distribution's support.

        Returns
        -------
        numpyro.distributions.constraints.Constraint
            ``base.support``.
        """
        return self.base.support

    def log_prob(self, value: Array) -> Array:
        """The base distribution's log density.

        Parameters
        ----------
        value : array
            Points in the support.

        Returns
        -------
        array
            ``base.log_prob(value)``.
        """
        return self.base.log_prob(value)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """A fixed placeholder in the support (no draw): the image of 0 in unconstrained space.

        Parameters
        ----------
        key : jax.Array
            PRNG key (unused).
        sample_shape : tuple of int, optional
            Leading shape.

        Returns
        -------
        (\\*sample_shape, \\*batch_shape, \\*event_shape) array
            0 for real weights, 1 for sigma.
        """
        transform = dist.biject_to(self.support)
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        return transform(jnp.zeros(transform.inverse_shape(shape)))


def _site_dist(spec_part) -> dist.Distribution:
    """``spec_part.distribution()``, wrapped in :class:`InferenceOnly` when it is improper."""
    base = spec_part.distribution()
    return base if spec_part.is_proper else InferenceOnly(base)


def _weights(prior: WeightPrior) -> Array:
    """The site ``w ~ prior``: ``(d,)``."""
    return numpyro.sample("w", _site_dist(prior))


def _noise_sd(noise: Noise) -> Array:
    """Known sigma, or the site ``sigma ~ noise prior``."""
    return noise.sigma if isinstance(noise, KnownNoise) else numpyro.sample("sigma", _site_dist(noise))


def linear_regression(phi: Array, y: Array | None, prior: WeightPrior, noise: Noise) -> None:
    """The Gaussian regression of one dataset: ``w ~ prior``, ``y ~ Normal(phi @ w, sigma)``.

    Sites: ``w: (d,)``; ``sigma: ()`` (unknown noise only); ``y: (n,)`` (observed); deterministic ``mu: (n,)``
    when simulating.

    Parameters
    ----------
    phi : (n, d) array
        The design.
    y : (n,) array or None
        Observations, or None (prior predictive).
    prior : WeightPrior
        The weight prior (improper ones are inferred only).
    noise : Noise
        Known sigma or a prior on sigma.
    """
    w = _weights(prior)
    sigma = _noise_sd(noise)
    mu = numpyro.deterministic("mu", jnp.matmul(phi, w)) if y is None else phi @ w
    with numpyro.plate("obs", phi.shape[-2]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


# ---------------------------------------------------------------------------------------------
# Beyond the conjugate case (issue 11): robust noise, shrinkage priors, GLMs.
# Each is a NumPyro model of one dataset, ``model(phi, y=None, **kw)``; the general engine
# (:mod:`bayeslin_jax.engine.sampling`) batches it over datasets. Every latent site has a fixed
# shape and a continuous support, and the observations sit in a plate (pointwise log-likelihood).
# ---------------------------------------------------------------------------------------------

#: Gamma(2, 0.1) prior on the Student-t degrees of freedom (Juárez & Steel 2010; Stan's recommendation).
NU_PRIOR_SHAPE = 2.0
NU_PRIOR_RATE = 0.1


def student_t_regression(
    phi: Array, y: Array | None = None, *, prior: WeightPrior, noise: Noise, nu: Array | None = None
) -> None:
    """Robust regression: ``y ~ StudentT(nu, phi @ w, sigma)``. ``phi: (n, d)``, ``y: (n,)`` or None.

    Sites: ``w: (d,)``; ``sigma: ()`` (unknown noise only); ``nu: ()`` when ``nu`` is None
    (learned, ``nu ~ Gamma(2, 0.1)``), else ``nu`` is the fixed degrees of freedom; ``y: (n,)``.

    Parameters
    ----------
    phi : (n, d) array
        The design.
    y : (n,) array, optional
        Observations; None simulates.
    prior : WeightPrior
        The weight prior.
    noise : Noise
        Known sigma or a prior on sigma.
    nu : () array, optional
        Fixed degrees of freedom; None learns them.
    """
    w = _weights(prior)
    sigma = _noise_sd(noise)
    if nu is None:
        nu = numpyro.sample("nu", dist.Gamma(NU_PRIOR_SHAPE, NU_PRIOR_RATE))
    with numpyro.plate("obs", phi.shape[-2]):
        numpyro.sample("y", dist.StudentT(nu, phi @ w, sigma), obs=y)


def _half_cauchy(name: str, size: int | None) -> Array:
    """``HalfCauchy(1)`` as ``a sqrt(b)``, ``a ~ HalfNormal(1)``, ``b ~ InvGamma(1/2, 1/2)`` (sites ``{name}_a``,
    ``{name}_b``): the auxiliary form brms and Piironen & Vehtari use, with fewer divergences than sampling
    the Cauchy's heavy tail directly."""
    a_dist, b_dist = dist.HalfNormal(1.0), dist.InverseGamma(0.5, 0.5)
    if size is not None:
        a_dist, b_dist = a_dist.expand([size]).to_event(1), b_dist.expand([size]).to_event(1)
    return numpyro.sample(f"{name}_a", a_dist) * jnp.sqrt(numpyro.sample(f"{name}_b", b_dist))


def horseshoe_regression(
    phi: Array,
    y: Array | None = None,
    *,
    intercept_scale: Array,
    tau_scale: Array,
    slab_scale: Array,
    noise: Noise,
    slab_df: float | None = 4.0,
    tau: Array | None = None,
) -> None:
    """Regularized-horseshoe regression (Piironen & Vehtari 2017), non-centred.

    Feature 0 of ``phi: (n, d)`` is the intercept, ``w_0 ~ Normal(0, intercept_scale)``; the other
    ``D = d - 1`` weights are ``w_j = z_j tau lambda~_j`` with ``z_j ~ N(0, 1)``,
    ``lambda_j ~ HalfCauchy(1)``, ``lambda~_j^2 = c^2 lambda_j^2 / (c^2 + tau^2 lambda_j^2)``,
    ``tau ~ HalfCauchy(tau_scale * sigma)`` (as ``tau_scale * sigma * HalfCauchy(1)``) and the slab
    ``c^2 ~ InvGamma(slab_df / 2, slab_df slab_scale^2 / 2)``.

    ``slab_df=None`` fixes ``c = slab_scale``; ``tau`` (not None) fixes the global scale. With both
    fixed and ``tau`` large the prior on ``w_1..`` is ``N(0, slab_scale^2)``: the conjugate special case.

    Each half-Cauchy is sampled as ``a sqrt(b)`` (:func:`_half_cauchy`). Sites: ``w0: ()``, ``z: (D,)``,
    ``lambda_a, lambda_b: (D,)``, ``tau_a, tau_b, c2: ()`` (unless fixed), ``sigma: ()`` (unknown noise);
    deterministic ``tau: ()`` (unless fixed) and ``w: (d,)``; observed ``y: (n,)``.

    Parameters
    ----------
    phi : (n, d) array
        The design; column 0 is the intercept.
    y : (n,) array, optional
        Observations; None simulates.
    intercept_scale : () array
        ``w_0 ~ Normal(0, intercept_scale)``.
    tau_scale : () array
        ``tau0``: the global scale's scale, times sigma.
    slab_scale : () array
        The slab's scale.
    noise : Noise
        Known sigma or a prior on sigma.
    slab_df : float or None, optional
        The slab's degrees of freedom (static); None fixes ``c = slab_scale``.
    tau : () array, optional
        A fixed global scale; None learns it.
    """
    num_coef = phi.shape[-1] - 1
    sigma = _noise_sd(noise)
    w0 = numpyro.sample("w0", dist.Normal(0.0, intercept_scale))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([num_coef]).to_event(1))
    lam = _half_cauchy("lambda", num_coef)
    if tau is None:
        tau = numpyro.deterministic("tau", tau_scale * sigma * _half_cauchy("tau", None))
    if slab_df is None:
        c2 = jnp.square(slab_scale)
    else:
        c2 = numpyro.sample("c2", dist.InverseGamma(0.5 * slab_df, 0.5 * slab_df * jnp.square(slab_scale)))
    lam_tilde = jnp.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
    w = numpyro.deterministic("w", jnp.concatenate([w0[None], z * tau * lam_tilde]))
    with numpyro.plate("obs", phi.shape[-2]):
        numpyro.sample("y", dist.Normal(phi @ w, sigma), obs=y)


def horseshoe_shrinkage(sigma, tau, lam, c2, feature_var, num_points: int):
    """Shrinkage factors ``kappa_j = 1 / (1 + n sigma^-2 s_j^2 tau^2 lambda~_j^2)`` (Piironen & Vehtari 2017).

    With the regularized ``lambda~_j^2 = c^2 lambda_j^2 / (c^2 + tau^2 lambda_j^2)``. ``1 - kappa_j`` is how much
    of the data's estimate of ``w_j`` survives the prior (0: switched off, 1: free); exact for features with
    ``Phi^T Phi = n diag(s^2)`` (orthogonal features). NumPy, any leading draw axes.

    Parameters
    ----------
    sigma, tau : (...) array
        Per draw (or scalars when fixed).
    lam : (..., D) array
        Local scales ``lambda_j`` (``lambda_a * sqrt(lambda_b)`` for :func:`horseshoe_regression`).
    c2 : (...) array
        The slab's ``c^2`` per draw (or a scalar when fixed).
    feature_var : (D,) array
        ``s_j^2``: the variance of feature ``j`` over the data points.
    num_points : int
        ``n``.

    Returns
    -------
    (..., D) ndarray
        ``kappa`` in (0, 1).
    """
    sigma, tau, c2 = (np.asarray(v, dtype=float)[..., None] for v in (sigma, tau, c2))
    lam2 = np.square(np.asarray(lam, dtype=float))
    lam_tilde2 = c2 * lam2 / (c2 + tau**2 * lam2)
    return 1.0 / (1.0 + num_points * np.asarray(feature_var) * tau**2 * lam_tilde2 / sigma**2)


def highest_active(kappa, threshold: float = 0.5):
    """Per draw, the largest ``j`` (1-based, i.e. the degree for a polynomial basis) with ``1 - kappa_j > threshold``.

    0 when none is. ``kappa: (..., D)`` -> ``(...)`` ints. Thresholding ``1 - kappa`` at 1/2 is Carvalho, Polson &
    Scott's (2010) decision rule for the horseshoe.

    Parameters
    ----------
    kappa : (..., D) array_like
        Shrinkage factors (:func:`horseshoe_shrinkage`).
    threshold : float, optional
        How much of ``1 - kappa_j`` counts as active (default 1/2).

    Returns
    -------
    (...) ndarray of int
        The highest active index per draw (0: none).

    Examples
    --------
    >>> import numpy as np
    >>> from bayeslin_jax.core.regressions import highest_active
    >>> highest_active(np.array([[0.1, 0.2, 0.9], [0.9, 0.9, 0.9]])).tolist()
    [2, 0]
    """
    active = (1.0 - np.asarray(kappa)) > threshold
    degree = np.arange(1, active.shape[-1] + 1)
    return np.max(np.where(active, degree, 0), axis=-1)


GLM_FAMILIES = ("bernoulli", "poisson")


def glm_regression(phi: Array, y: Array | None = None, *, prior: WeightPrior, family: str = "bernoulli") -> None:
    """Generalized linear model on the linear predictor ``eta = phi @ w``.

    ``family="bernoulli"``: ``y ~ Bernoulli(logit^-1(eta))``; ``"poisson"``: ``y ~ Poisson(exp(eta))``.
    Sites: ``w: (d,)``; observed ``y: (n,)`` (0/1 or counts, as floats or ints).

    Parameters
    ----------
    phi : (n, d) array
        The design.
    y : (n,) array, optional
        Observations (0/1 or counts); None simulates.
    prior : WeightPrior
        The weight prior.
    family : {"bernoulli", "poisson"}, optional
        The observation family (static; default ``"bernoulli"``).
    """
    w = _weights(prior)
    eta = phi @ w
    likelihood = dist.BernoulliLogits(eta) if family == "bernoulli" else dist.Poisson(jnp.exp(eta))
    with numpyro.plate("obs", phi.shape[-2]):
        numpyro.sample("y", likelihood, obs=y)
