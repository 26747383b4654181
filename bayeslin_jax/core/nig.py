"""Unknown noise: exact references for the noise sd ``sigma`` and the weights ``w``.

Two references, both exact up to quadrature / floating point:

1. :func:`unknown_noise_reference` -- the package's own unknown-noise model
   (``w ~ prior`` independent of ``sigma``, ``sigma ~`` any noise prior with a log density: HalfNormal,
   HalfCauchy, HalfStudentT, Exponential, or the improper flat one; the weight prior normal, MVN, or a
   :class:`~bayeslin_jax.core.priors.TermPrior` of normal and flat coefficients). That model is not
   conjugate, but for a *fixed* sigma it is: ``w | sigma, y`` is the Gaussian of
   :func:`bayeslin_jax.core.exact.posterior` and ``p(y | sigma)`` is :func:`bayeslin_jax.core.exact.log_evidence`
   (:func:`~bayeslin_jax.core.exact.log_integrated_likelihood` for flat coefficients).
   So ``p(sigma | y) ∝ p(sigma) p(y | sigma)`` is a 1-D density; on a fine grid in ``log sigma``
   it gives the posterior of sigma, the posterior mean/covariance of ``w`` (a Gaussian mixture over
   the grid) and the log evidence. This is the oracle NUTS unknown-noise runs are checked against.
2. The conjugate normal-inverse-gamma (NIG) variant, ``w | s2 ~ N(m0, s2 V0)``, ``s2 ~ InvGamma(a0, b0)``
   (:func:`nig_posterior`, :func:`nig_log_evidence`, :func:`nig_sample`, ...): closed forms; a different
   prior from the package's model, so it agrees with it only where the data dominate (large n).

Both return numpy float64 (the quadrature runs under a local ``jax.enable_x64``): the log evidence
of a large dataset involves cancelling terms that float32 cannot resolve.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import numpyro  # noqa: F401  (first: after arviz, importing numpyro.distributions alone leaves its .distribution unset)
import numpyro.distributions as dist
import scipy.special
import scipy.stats
from jax import Array

from bayeslin_jax.core import exact
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import (
    ExponentialNoise,
    FlatNoise,
    HalfCauchyNoise,
    HalfNormalNoise,
    HalfStudentTNoise,
    KnownNoise,
    Noise,
    WeightPrior,
    half_normal_noise,
    is_gaussian_prior,
    mvn,
    posterior_is_proper,
)

# Coarse bracketing grid in t = log(sigma / s_ref), s_ref = max(prior reference scale, rms(y)).
_COARSE_T = (-20.0, 4.0)
_COARSE_POINTS = 600
# Other noise priors may have heavier right tails (HalfCauchy, flat): the grid reaches further up, same spacing.
_COARSE_T_WIDE = (-20.0, 120.0)
_COARSE_POINTS_WIDE = 3500
# Grid points whose log density is this far below the maximum carry < e^-50 of the mass.
_DROP = 50.0
#: The noise models with a prior on sigma (every one but KnownNoise).
type _UnknownNoise = HalfNormalNoise | HalfCauchyNoise | HalfStudentTNoise | ExponentialNoise | FlatNoise


def _to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), tree)


# ---------------------------------------------------------------------------------------------
# 1. The package's unknown-noise model by 1-D quadrature over sigma
# ---------------------------------------------------------------------------------------------


class SigmaGridPosterior(NamedTuple):  # numpydoc ignore=PR02
    """Quadrature posterior of the unknown-noise model; leading batch axes ``...``; numpy float64.

    ``sigma: (..., G)`` grid (uniform in log sigma); ``density: (..., G)`` posterior density
    ``p(sigma | y)`` on the grid; ``weights: (..., G)`` quadrature probabilities (sum to 1), so
    ``E[f(sigma)] = sum(weights * f(sigma))``; ``log_evidence: (...)``; ``sigma_mean, sigma_sd: (...)``;
    ``mean: (..., d)`` and ``cov: (..., d, d)``: posterior mean and covariance of ``w``.

    Parameters
    ----------
    sigma : (..., G) ndarray
        The grid of sigma values (uniform in ``log sigma``).
    density : (..., G) ndarray
        Posterior density ``p(sigma | y)`` on the grid.
    weights : (..., G) ndarray
        Quadrature probabilities (sum to 1).
    log_evidence : (...) ndarray
        ``log p(y)`` (NaN for an improper prior).
    sigma_mean, sigma_sd : (...) ndarray
        Posterior mean and sd of sigma.
    mean : (..., d) ndarray
        Posterior mean of ``w``.
    cov : (..., d, d) ndarray
        Posterior covariance of ``w``.
    """

    sigma: np.ndarray
    density: np.ndarray
    weights: np.ndarray
    log_evidence: np.ndarray
    sigma_mean: np.ndarray
    sigma_sd: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        """Posterior sds of ``w``: ``(..., d)``.

        Returns
        -------
        (..., d) ndarray
            ``sqrt(diag(cov))``.
        """
        return np.sqrt(np.diagonal(self.cov, axis1=-2, axis2=-1))

    @property
    def corr(self) -> np.ndarray:
        """Posterior correlation of ``w``: ``(..., d, d)``.

        Returns
        -------
        (..., d, d) ndarray
            ``cov_ij / (sd_i sd_j)``.
        """
        sd = self.sd
        return self.cov / (sd[..., :, None] * sd[..., None, :])

    def sigma_quantile(self, q) -> np.ndarray:
        """Posterior quantiles of sigma. ``q: (k,)`` in (0, 1) -> ``(..., k)``.

        Linear interpolation of the quadrature CDF (cumulative trapezoid in log sigma).

        Parameters
        ----------
        q : float or (k,) array_like
            Probabilities in (0, 1).

        Returns
        -------
        (..., k) ndarray
            The quantiles.
        """
        q = np.atleast_1d(np.asarray(q, dtype=float))
        u = np.log(self.sigma).reshape(-1, self.sigma.shape[-1])
        dens_u = (self.density * self.sigma).reshape(u.shape)  # density of log sigma
        out = np.empty((u.shape[0], q.size))
        for i in range(u.shape[0]):
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens_u[i, 1:] + dens_u[i, :-1]) * np.diff(u[i]))])
            out[i] = np.exp(np.interp(q, cdf / cdf[-1], u[i]))
        return out.reshape(*self.sigma.shape[:-1], q.size)


def _log_joint(phi: Array, y: Array, prior: WeightPrior, noise: _UnknownNoise, u: Array) -> Array:
    """``log p(sigma) + log p(y | sigma) + log sigma`` at ``u = log sigma``. ``u: (G,)`` -> ``(G,)``."""
    sigma = jnp.exp(u)
    log_ev = jax.vmap(lambda s: exact.log_integrated_likelihood(phi, y, prior, s))(sigma)
    value = log_ev + noise.distribution().log_prob(sigma) + u
    return jnp.where(jnp.isnan(value), -jnp.inf, value)


def _conditional_moments(phi: Array, y: Array, prior: WeightPrior, u: Array) -> tuple[Array, Array]:
    """Gaussian ``w | sigma, y`` on the grid: means ``(G, d)``, covariances ``(G, d, d)``."""
    post = jax.vmap(lambda s: exact.posterior(phi, y, prior, s))(jnp.exp(u))
    return post.mean, post.cov


# Batched over datasets: phi (B, n, d), y (B, n), u (B, G).
_batched_log_joint = jax.jit(jax.vmap(_log_joint, in_axes=(0, 0, None, None, 0)))
_batched_conditional_moments = jax.jit(jax.vmap(_conditional_moments, in_axes=(0, 0, None, 0)))


def unknown_noise_reference(phi, y, prior: WeightPrior, noise: Noise | float, grid_size: int = 1001
                            ) -> SigmaGridPosterior:
    """Exact posterior of the package's unknown-noise model by quadrature over sigma (float64).

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    prior : WeightPrior
        Gaussian-family: normal, MVN, or a TermPrior of normal and flat coefficients (``w | sigma, y`` Gaussian).
    noise : Noise or float
        The spec's noise prior (any but known: HalfNormal, HalfCauchy, HalfStudentT, Exponential, Flat), or a
        HalfNormal scale.
    grid_size : int, optional
        Quadrature points (at least 16; default 1001).

    Returns
    -------
    SigmaGridPosterior
        ``log_evidence`` is NaN for an improper prior (flat weights or flat sigma): the evidence is undefined,
        the posterior is not.

    Notes
    -----
    A coarse grid over ``sigma in s_ref * [e^-20, e^4]`` (HalfNormal; ``[e^-20, e^120]`` for the other priors,
    whose right tails can be heavy; ``s_ref = max(noise.reference_scale, rms(y))``) brackets the region holding
    all but ``~e^-50`` of the mass; ``grid_size`` points uniform in ``log sigma`` cover it (trapezoid rule).

    Raises
    ------
    BayeslinError
        Known noise, a non-Gaussian weight prior, an improper posterior
        (:func:`~bayeslin_jax.core.priors.posterior_is_proper`), or mass at the edge of the coarse grid.
    """
    if not hasattr(noise, "distribution"):
        if isinstance(noise, KnownNoise):
            raise BayeslinError("the unknown-noise reference needs a prior on sigma, not a known sigma")
        noise = half_normal_noise(cast(float, noise))
    noise = cast(_UnknownNoise, noise)  # a prior on sigma from here on
    if not is_gaussian_prior(prior):
        raise BayeslinError("the unknown-noise reference needs normal or flat weight priors (w | sigma Gaussian), "
                            "not Student-t coefficients")
    if grid_size < 16:
        raise BayeslinError(f"grid_size must be at least 16, got {grid_size}")
    phi_np, y_np = np.asarray(phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if phi_np.ndim < 2 or phi_np.shape[:-1] != y_np.shape:
        raise BayeslinError(f"expected phi (..., n, d) and y (..., n), got {phi_np.shape} and {y_np.shape}")
    reason = posterior_is_proper(prior, noise, phi_np)
    if reason is not None:
        raise BayeslinError(reason)
    coarse_t, coarse_points = (_COARSE_T, _COARSE_POINTS) if isinstance(noise, HalfNormalNoise) else (
        _COARSE_T_WIDE, _COARSE_POINTS_WIDE)
    batch_shape, (n, d) = y_np.shape[:-1], phi_np.shape[-2:]
    with jax.enable_x64(True):
        phi64 = jnp.asarray(phi_np.reshape(-1, n, d))
        y64 = jnp.asarray(y_np.reshape(-1, n))
        prior64 = _to64(prior)
        noise64 = _to64(noise)
        scale64 = jnp.asarray(noise.reference_scale, dtype=jnp.float64)

        s_ref = jnp.maximum(scale64, jnp.sqrt(jnp.mean(y64**2, axis=-1)))
        u_coarse = jnp.log(s_ref)[:, None] + jnp.linspace(*coarse_t, coarse_points)
        f_coarse = _batched_log_joint(phi64, y64, prior64, noise64, u_coarse)
        keep = f_coarse > jnp.max(f_coarse, axis=-1, keepdims=True) - _DROP
        if bool(jnp.any(keep[:, 0] | keep[:, -1])):
            raise BayeslinError("posterior of sigma reaches the edge of the reference grid (sigma near 0 or huge)")
        first = jnp.argmax(keep, axis=-1) - 1
        last = coarse_points - jnp.argmax(keep[:, ::-1], axis=-1)
        lo = jnp.take_along_axis(u_coarse, first[:, None], axis=-1)
        hi = jnp.take_along_axis(u_coarse, last[:, None], axis=-1)
        u = lo + (hi - lo) * jnp.linspace(0.0, 1.0, grid_size)  # (B, G)

        f = _batched_log_joint(phi64, y64, prior64, noise64, u)
        trap = jnp.ones(grid_size).at[0].set(0.5).at[-1].set(0.5) * (hi - lo) / (grid_size - 1)
        f_max = jnp.max(f, axis=-1, keepdims=True)
        log_z = f_max[:, 0] + jnp.log(jnp.sum(trap * jnp.exp(f - f_max), axis=-1))
        weights = trap * jnp.exp(f - log_z[:, None])
        sigma = jnp.exp(u)
        sigma_mean = jnp.sum(weights * sigma, axis=-1)
        sigma_sd = jnp.sqrt(jnp.sum(weights * (sigma - sigma_mean[:, None]) ** 2, axis=-1))

        means, covs = _batched_conditional_moments(phi64, y64, prior64, u)
        w_mean = jnp.einsum("bg,bgd->bd", weights, means)
        second = jnp.einsum("bg,bgde->bde", weights, covs + means[..., :, None] * means[..., None, :])
        w_cov = second - w_mean[:, :, None] * w_mean[:, None, :]
        density = jnp.exp(f - log_z[:, None] - u)
        if not (prior.is_proper and noise.is_proper):
            log_z = jnp.full_like(log_z, jnp.nan)
        out = [np.asarray(a) for a in (sigma, density, weights, log_z, sigma_mean, sigma_sd, w_mean, w_cov)]
    tails = [(grid_size,)] * 3 + [()] * 3 + [(d,), (d, d)]
    return SigmaGridPosterior(*(a.reshape(batch_shape + tail) for a, tail in zip(out, tails, strict=True)))


# ---------------------------------------------------------------------------------------------
# 2. Conjugate normal-inverse-gamma variant (numpy float64)
# ---------------------------------------------------------------------------------------------


class NIGPrior(NamedTuple):  # numpydoc ignore=PR02
    """``w | s2 ~ N(mean, s2 * cov)``, ``s2 = sigma^2 ~ InvGamma(a, b)``. ``mean: (d,)``, ``cov: (d, d)``.

    Build it with :func:`nig_prior` (which validates).

    Parameters
    ----------
    mean : (d,) ndarray
        Prior mean of ``w``.
    cov : (d, d) ndarray
        ``V0``: the prior covariance of ``w`` is ``s2 * cov``.
    a, b : float
        Inverse-gamma shape and scale of ``s2``.
    """

    mean: np.ndarray
    cov: np.ndarray
    a: float
    b: float


class NIGPosterior(NamedTuple):  # numpydoc ignore=PR02
    """Posterior of the same form: ``w | s2, y ~ N(mean, s2 * cov)``, ``s2 | y ~ InvGamma(a, b)``.

    ``mean: (..., d)``, ``cov: (..., d, d)`` (V_N), ``a, b: (...)``; numpy float64. Marginally
    ``w | y ~ Student-t(2a, mean, (b / a) cov)``.

    Parameters
    ----------
    mean : (..., d) ndarray
        ``m_N``.
    cov : (..., d, d) ndarray
        ``V_N``.
    a, b : (...) ndarray
        ``a_N``, ``b_N``.
    """

    mean: np.ndarray
    cov: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @property
    def df(self) -> np.ndarray:
        """Degrees of freedom of the Student-t marginal of ``w``: ``(...)``.

        Returns
        -------
        (...) ndarray
            ``2 a``.
        """
        return 2.0 * self.a

    @property
    def w_cov(self) -> np.ndarray:
        """Marginal posterior covariance of ``w`` (needs ``a > 1``): ``(..., d, d)``.

        Returns
        -------
        (..., d, d) ndarray
            ``b / (a - 1) cov``.
        """
        return (self.b / (self.a - 1.0))[..., None, None] * self.cov

    @property
    def w_sd(self) -> np.ndarray:
        """Marginal posterior sds of ``w`` (needs ``a > 1``): ``(..., d)``.

        Returns
        -------
        (..., d) ndarray
            ``sqrt(diag(w_cov))``.
        """
        return np.sqrt(np.diagonal(self.w_cov, axis1=-2, axis2=-1))

    @property
    def sigma2_mean(self) -> np.ndarray:
        """``E[sigma^2 | y] = b / (a - 1)``: ``(...)``.

        Returns
        -------
        (...) ndarray
            The posterior mean of ``sigma^2``.
        """
        return self.b / (self.a - 1.0)

    @property
    def sigma_mean(self) -> np.ndarray:
        """``E[sigma | y] = sqrt(b) Gamma(a - 1/2) / Gamma(a)``: ``(...)``.

        Returns
        -------
        (...) ndarray
            The posterior mean of sigma.
        """
        return np.sqrt(self.b) * np.exp(scipy.special.gammaln(self.a - 0.5) - scipy.special.gammaln(self.a))

    @property
    def sigma_sd(self) -> np.ndarray:
        """Posterior sd of sigma: ``(...)``.

        Returns
        -------
        (...) ndarray
            ``sqrt(E[sigma^2] - E[sigma]^2)`` (clipped at 0).
        """
        return np.sqrt(np.maximum(self.sigma2_mean - self.sigma_mean**2, 0.0))

    def sigma_quantile(self, q) -> np.ndarray:
        """Posterior quantiles of sigma (``sigma^2 ~ InvGamma(a, b)``). ``q: (k,)`` -> ``(..., k)``.

        Parameters
        ----------
        q : float or (k,) array_like
            Probabilities in (0, 1).

        Returns
        -------
        (..., k) ndarray
            The quantiles.
        """
        q = np.atleast_1d(np.asarray(q, dtype=float))
        return np.sqrt(scipy.stats.invgamma.ppf(q, self.a[..., None], scale=self.b[..., None]))


def nig_prior(mean, cov, a: float, b: float) -> NIGPrior:
    """Validated NIG prior; ``cov`` symmetric positive-definite, ``a, b > 0``.

    Parameters
    ----------
    mean : float or (d,) array_like
        Prior mean of ``w``.
    cov : (d, d) array_like
        ``V0`` (symmetric positive-definite).
    a : float
        Inverse-gamma shape (positive).
    b : float
        Inverse-gamma scale (positive).

    Returns
    -------
    NIGPrior
        The prior (float64).

    Raises
    ------
    BayeslinError
        One line: a bad ``mean``/``cov`` (as :func:`~bayeslin_jax.core.priors.mvn`) or a non-positive ``a``, ``b``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> from bayeslin_jax.core import nig
    >>> x = np.linspace(-1.0, 1.0, 30)
    >>> y = 2.0 + 0.3 * x + 0.1 * np.sin(20 * x)
    >>> post = nig.nig_posterior(bl.linear()(x), y, nig.nig_prior([0.0, 0.0], np.eye(2), 2.0, 1.0))
    >>> float(post.a), post.mean.shape
    (17.0, (2,))
    """
    base = mvn(mean, cov)
    for name, value in (("a", a), ("b", b)):
        if not np.isfinite(value) or value <= 0:
            raise BayeslinError(f"inverse-gamma {name} must be positive and finite, got {value}")
    return NIGPrior(np.asarray(base.mean, dtype=float), np.asarray(cov, dtype=float), float(a), float(b))


def nig_posterior(phi, y, prior: NIGPrior) -> NIGPosterior:
    """Conjugate update. ``phi: (..., n, d)``, ``y: (..., n)``.

    ``Λ_N = V0^-1 + phi^T phi``, ``m_N = Λ_N^-1 (V0^-1 m0 + phi^T y)``, ``a_N = a0 + n/2``,
    ``b_N = b0 + (|y - phi m_N|^2 + (m_N - m0)^T V0^-1 (m_N - m0)) / 2`` (the cancellation-free form).

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    prior : NIGPrior
        The conjugate prior.

    Returns
    -------
    NIGPosterior
        ``m_N``, ``V_N``, ``a_N``, ``b_N`` (float64).
    """
    phi, y = np.asarray(phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    prior_precision = np.linalg.inv(prior.cov)
    phi_t = np.swapaxes(phi, -1, -2)
    precision = prior_precision + phi_t @ phi
    rhs = prior_precision @ prior.mean + (phi_t @ y[..., None])[..., 0]
    mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
    cov = np.linalg.inv(precision)
    resid = y - np.einsum("...nd,...d->...n", phi, mean)
    shift = mean - prior.mean
    quad = np.sum(resid**2, axis=-1) + np.einsum("...d,de,...e->...", shift, prior_precision, shift)
    a = np.broadcast_to(prior.a + 0.5 * y.shape[-1], quad.shape).astype(float)
    return NIGPosterior(mean, 0.5 * (cov + np.swapaxes(cov, -1, -2)), a, prior.b + 0.5 * quad)


def nig_log_evidence(phi, y, prior: NIGPrior) -> np.ndarray:
    """``log p(y)`` under the NIG model (multivariate Student-t marginal), shape ``(...)``.

    ``log Γ(a_N) - log Γ(a0) + a0 log b0 - a_N log b_N + (log|V_N| - log|V0|)/2 - (n/2) log 2π``.

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    prior : NIGPrior
        The conjugate prior.

    Returns
    -------
    (...) ndarray
        The log evidence per dataset (float64).
    """
    post = nig_posterior(phi, y, prior)
    n = np.shape(y)[-1]
    gammaln = scipy.special.gammaln
    return (
        gammaln(post.a)
        - gammaln(prior.a)
        + prior.a * np.log(prior.b)
        - post.a * np.log(post.b)
        + 0.5 * (np.linalg.slogdet(post.cov)[1] - np.linalg.slogdet(prior.cov)[1])
        - 0.5 * n * np.log(2.0 * np.pi)
    )


def nig_w_marginal(post: NIGPosterior) -> dist.MultivariateStudentT:
    """Marginal posterior of ``w``: Student-t with ``2a`` dof, location ``mean``, scale ``(b/a) cov``.

    Parameters
    ----------
    post : NIGPosterior
        The posterior.

    Returns
    -------
    numpyro.distributions.MultivariateStudentT
        Event shape ``(d,)``.
    """
    scale = (post.b / post.a)[..., None, None] * post.cov
    return dist.MultivariateStudentT(post.df, post.mean, np.linalg.cholesky(scale))


def nig_sample(key: Array, post: NIGPosterior, num_draws: int) -> tuple[Array, Array]:
    """Exact joint draws for one dataset (default jax dtype): ``w: (num_draws, d)``, ``sigma: (num_draws,)``.

    Parameters
    ----------
    key : jax.Array
        PRNG key.
    post : NIGPosterior
        The posterior of one dataset.
    num_draws : int
        Number of draws.

    Returns
    -------
    w : (num_draws, d) array
        Draws of the weights.
    sigma : (num_draws,) array
        The matching draws of the noise sd.
    """
    s2_key, w_key = jax.random.split(key)
    s2 = dist.InverseGamma(jnp.asarray(post.a), jnp.asarray(post.b)).sample(s2_key, (num_draws,))
    z = jax.random.normal(w_key, (num_draws, post.mean.shape[-1]))
    w = jnp.asarray(post.mean) + jnp.sqrt(s2)[:, None] * (z @ jnp.asarray(np.linalg.cholesky(post.cov)).T)
    return w, jnp.sqrt(s2)
