"""Exact conjugate posterior for known noise: the oracle every sampler is checked against.

With prior ``w ~ N(m0, V0)`` and ``y | w ~ N(phi w, sigma^2 I)``::

    P   = V0^-1 + phi^T phi / sigma^2              (posterior precision)
    V_N = P^-1 = sigma^2 (sigma^2 V0^-1 + phi^T phi)^-1
    w_N = V_N (V0^-1 m0 + phi^T y / sigma^2)

All functions broadcast over leading batch axes (``phi: (..., n, d)``, ``y: (..., n)``). A batch is
computed one dataset at a time by one compiled per-dataset program
(:func:`bayeslin_jax.core.batching.map_datasets`), so dataset *i*'s numbers are bit-identical whatever
batch, chunk or device it is computed in (on one machine).

Gaussian-family priors only (:func:`bayeslin_jax.core.priors.is_gaussian_prior`): the normal priors and a
:class:`~bayeslin_jax.core.priors.TermPrior` whose coefficients are normal or flat. The latter is handled in
precision form, ``V0^-1 = P0 = L^T diag(lambda) L`` with ``lambda_j = 1 / scale_j^2`` and 0 for flat coefficients
(``u = L w`` the centring), ``V0^-1 m0 = L^T diag(lambda) mean``: the posterior is proper when ``P`` is
positive-definite (flat coefficients identified by the design, e.g. full column rank); the flat prior's posterior
is least squares, ``w_N = (phi^T phi)^-1 phi^T y``, ``V_N = sigma^2 (phi^T phi)^-1``. An improper prior has no
evidence: :func:`log_evidence` refuses it (:func:`log_integrated_likelihood` is ``∫ p(y | w) p(w) dw`` with flat
coefficients taken at density 1, the quantity the unknown-noise quadrature integrates over sigma).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayeslin_jax.core.batching import map_datasets
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import IndependentNormal, MultivariateNormal, TermPrior, WeightPrior, is_gaussian_prior


class GaussianPosterior(NamedTuple):  # numpydoc ignore=PR02
    """A Gaussian posterior of the weights: ``w | y ~ N(mean, cov)``, with the Cholesky factor of its precision.

    JAX arrays from :func:`posterior`, NumPy float64 from :func:`posterior64`.

    Parameters
    ----------
    mean : (..., d) array
        Posterior mean.
    cov : (..., d, d) array
        Posterior covariance.
    precision_tril : (..., d, d) array
        Lower Cholesky factor of the posterior precision ``P = cov^-1``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> from bayeslin_jax.core import exact
    >>> x = np.linspace(-1.0, 1.0, 11)
    >>> phi = exact.design_matrix64(bl.linear(), x)
    >>> post = exact.posterior64(phi, 2.0 + 0.3 * x, bl.tutorial_spec().prior, 0.1)
    >>> np.round(post.mean, 3).tolist(), post.cov.shape
    ([1.956, 0.284], (2, 2))
    """

    mean: Array
    cov: Array
    precision_tril: Array

    @property
    def sd(self) -> Array:
        """Marginal posterior sds ``(..., d)``.

        Returns
        -------
        (..., d) array
            ``sqrt(diag(cov))``.
        """
        return jnp.sqrt(jnp.diagonal(self.cov, axis1=-2, axis2=-1))

    @property
    def corr(self) -> Array:
        """Posterior correlation matrix ``(..., d, d)``.

        Returns
        -------
        (..., d, d) array
            ``cov_ij / (sd_i sd_j)``.
        """
        sd = self.sd
        return self.cov / (sd[..., :, None] * sd[..., None, :])


def _require_gaussian(prior: WeightPrior, what: str) -> None:
    """One line unless ``prior`` is Gaussian-family (normal or flat coefficients)."""
    if not is_gaussian_prior(prior):
        raise BayeslinError(f"the exact {what} needs normal or flat weight priors, not {prior.kind} priors with "
                            "Student-t coefficients: sample it with NUTS")


def _prior_logdet_cov(prior: WeightPrior) -> Array:
    if isinstance(prior, IndependentNormal):
        return 2.0 * jnp.sum(jnp.log(prior.scale))
    if isinstance(prior, TermPrior):  # proper coefficients only (a flat one has density 1)
        proper = np.asarray(prior.family) != "flat"
        return 2.0 * jnp.sum(jnp.where(jnp.asarray(proper), jnp.log(prior.scale), 0.0))
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(prior.scale_tril)))


def _prior_linear(prior: WeightPrior) -> Array:
    """``V0^-1 m0: (d,)``."""
    return prior.precision_mean if isinstance(prior, TermPrior) else prior.precision @ prior.mean


def _prior_quadratic(prior: WeightPrior, w: Array) -> Array:
    """``(w - m0)^T V0^-1 (w - m0)`` (for a TermPrior: ``sum_j lambda_j ((L w)_j - mean_j)^2``)."""
    if isinstance(prior, TermPrior):
        return jnp.sum(prior.precision_diag * jnp.square(prior.to_centred(w) - prior.mean))
    shift = w - prior.mean
    return shift @ prior.precision @ shift


def _cho_solve(tril: Array, rhs: Array) -> Array:
    """Solve ``(L L^T) x = rhs``; ``tril: (d, d)``, ``rhs: (d, k)``."""
    half = jax.scipy.linalg.solve_triangular(tril, rhs, lower=True)
    return jax.scipy.linalg.solve_triangular(tril.T, half, lower=False)


def _per_dataset(fn, *arrays: ArrayLike, core_ndims: tuple[int, ...]):
    """``fn`` on one dataset at a time: ``arrays[k]`` has ``core_ndims[k]`` trailing per-dataset axes;
    leading axes broadcast together into the batch."""
    jax_arrays = tuple(jnp.asarray(a) for a in arrays)
    batch = jnp.broadcast_shapes(*(a.shape[: a.ndim - k] for a, k in zip(jax_arrays, core_ndims, strict=True)))
    if not batch:
        return fn(*jax_arrays)
    full = (jnp.broadcast_to(a, batch + a.shape[a.ndim - k :]) for a, k in zip(jax_arrays, core_ndims, strict=True))
    return map_datasets(fn, *full, batch_ndim=len(batch))


def _posterior_one(phi: Array, y: Array, sigma: Array, prior: WeightPrior) -> GaussianPosterior:
    prior_precision = prior.precision
    precision = prior_precision + phi.T @ phi / sigma**2
    tril = jnp.linalg.cholesky(precision)
    if isinstance(prior, TermPrior):
        rhs = prior.precision_mean + phi.T @ y / sigma**2
    else:
        rhs = prior_precision @ prior.mean + phi.T @ y / sigma**2
    mean = _cho_solve(tril, rhs[:, None])[:, 0]
    cov = _cho_solve(tril, jnp.eye(phi.shape[-1], dtype=precision.dtype))
    return GaussianPosterior(mean, 0.5 * (cov + cov.T), tril)


def posterior(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> GaussianPosterior:
    """Conjugate posterior of ``w`` (in JAX's working precision).

    Gaussian-family priors only (flat coefficients need a design that identifies them, else the Cholesky factor
    is NaN). For float64 whatever JAX's precision, and stability on ill-conditioned designs, use
    :func:`posterior64`.

    Parameters
    ----------
    phi : (..., n, d) array
        The design.
    y : (..., n) array
        Observations.
    prior : WeightPrior
        A Gaussian-family weight prior (:func:`~bayeslin_jax.core.priors.is_gaussian_prior`).
    sigma : float or (...) array
        The known noise sd.

    Returns
    -------
    GaussianPosterior
        ``mean (..., d)``, ``cov`` and ``precision_tril`` ``(..., d, d)``.

    Raises
    ------
    BayeslinError
        For a prior with Student-t coefficients.
    """
    _require_gaussian(prior, "posterior")
    return _per_dataset(lambda p, v, s: _posterior_one(p, v, s, prior), phi, y, sigma, core_ndims=(2, 1, 0))


def _predictive_one(mean: Array, cov: Array, phi_new: Array, sigma: Array) -> tuple[Array, Array, Array]:
    var_mean = jnp.maximum(jnp.einsum("md,de,me->m", phi_new, cov, phi_new), 0.0)
    return phi_new @ mean, jnp.sqrt(var_mean), jnp.sqrt(var_mean + sigma**2)


def predictive(post: GaussianPosterior, phi_new: Array, sigma: Array | float) -> tuple[Array, Array, Array]:
    """Posterior predictive at new inputs. ``phi_new: (m, d)`` or ``(..., m, d)``.

    Returns ``(mean, sd_mean, sd_obs)``, each ``(..., m)``: the mean function's sd is
    ``sqrt(phi V_N phi^T)``; a new observation's sd adds the noise, ``sqrt(... + sigma^2)``.

    Parameters
    ----------
    post : GaussianPosterior
        The posterior of ``w`` (leading axes ``...``).
    phi_new : (m, d) or (..., m, d) array
        The design at the new inputs.
    sigma : float or (...) array
        The noise sd.

    Returns
    -------
    mean : (..., m) array
        Posterior mean of ``phi_new @ w``.
    sd_mean : (..., m) array
        Posterior sd of the mean function.
    sd_obs : (..., m) array
        Predictive sd of a new observation.
    """
    return _per_dataset(_predictive_one, post.mean, post.cov, phi_new, sigma, core_ndims=(1, 2, 2, 0))


def _log_evidence_one(phi: Array, y: Array, sigma: Array, prior: WeightPrior) -> Array:
    post = _posterior_one(phi, y, sigma, prior)
    logdet_precision = 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.precision_tril)))
    # residual form of  y'y/s^2 + m0'V0^-1 m0 - w_N' P w_N  (no cancellation between large terms)
    residual = y - phi @ post.mean
    if isinstance(prior, TermPrior):
        # flat coefficients: density 1, so each adds (2 pi)^(1/2) from the Gaussian integral and nothing else
        num_flat = int(prior.flat_indices.size)
        return (
            -0.5 * y.shape[-1] * jnp.log(2.0 * jnp.pi * sigma**2)
            + 0.5 * num_flat * jnp.log(2.0 * jnp.pi)
            - 0.5 * _prior_logdet_cov(prior)
            - 0.5 * logdet_precision
            - 0.5 * (jnp.sum(residual**2) / sigma**2 + _prior_quadratic(prior, post.mean))
        )
    shift = post.mean - prior.mean
    return (
        -0.5 * y.shape[-1] * jnp.log(2.0 * jnp.pi * sigma**2)
        - 0.5 * _prior_logdet_cov(prior)
        - 0.5 * logdet_precision
        - 0.5 * (jnp.sum(residual**2) / sigma**2 + shift @ prior.precision @ shift)
    )


def log_evidence(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> Array:
    """Log marginal likelihood ``log p(y | phi, prior, sigma)``, shape ``(...)``.

    Parameters
    ----------
    phi : (..., n, d) array
        The design.
    y : (..., n) array
        Observations.
    prior : WeightPrior
        A proper Gaussian-family weight prior.
    sigma : float or (...) array
        The known noise sd.

    Returns
    -------
    (...) array
        The log evidence per dataset.

    Raises
    ------
    BayeslinError
        For an improper (flat) prior, whose evidence is undefined, and for non-Gaussian priors.
    """
    _require_gaussian(prior, "evidence")
    if not prior.is_proper:
        raise BayeslinError("the evidence of an improper prior (flat weights) is undefined: compare models with "
                            "proper priors")
    return _per_dataset(lambda p, v, s: _log_evidence_one(p, v, s, prior), phi, y, sigma, core_ndims=(2, 1, 0))


def log_integrated_likelihood(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> Array:
    """``log ∫ p(y | w, sigma) p(w) dw`` with flat coefficients at density 1, shape ``(...)``.

    Equals :func:`log_evidence` for proper priors; for flat coefficients it is defined up to the arbitrary constant
    of an improper prior, so only its dependence on ``sigma`` (the unknown-noise quadrature) is meaningful.

    Parameters
    ----------
    phi : (..., n, d) array
        The design.
    y : (..., n) array
        Observations.
    prior : WeightPrior
        A Gaussian-family weight prior (normal or flat coefficients).
    sigma : float or (...) array
        The noise sd.

    Returns
    -------
    (...) array
        ``log ∫ p(y | w, sigma) p(w) dw`` per dataset.

    Raises
    ------
    BayeslinError
        For a prior with Student-t coefficients.
    """
    _require_gaussian(prior, "integrated likelihood")
    return _per_dataset(lambda p, v, s: _log_evidence_one(p, v, s, prior), phi, y, sigma, core_ndims=(2, 1, 0))


def sample(key: Array, post: GaussianPosterior, num_draws: int) -> Array:
    """Exact independent draws for one dataset: ``(num_draws, d)``.

    Uses ``w = mean + L^-T z`` with ``L = chol(P)``, so ``cov(w) = P^-1``; ``L^-T`` is formed once
    (one small triangular solve) and applied to all draws as a matrix product.

    Parameters
    ----------
    key : jax.Array
        PRNG key.
    post : GaussianPosterior
        The posterior of one dataset (``mean: (d,)``).
    num_draws : int
        Number of draws.

    Returns
    -------
    (num_draws, d) array
        Independent posterior draws of ``w``.
    """
    dim = post.mean.shape[-1]
    z = jax.random.normal(key, (num_draws, dim), dtype=post.mean.dtype)
    inv_tril = jax.scipy.linalg.solve_triangular(post.precision_tril, jnp.eye(dim, dtype=z.dtype), lower=True)
    return post.mean + z @ inv_tril


def sample_batch(keys: Array, post: GaussianPosterior, num_draws: int) -> Array:
    """Exact draws for a batch: ``keys: (B,)`` (one per dataset) -> ``(B, num_draws, d)``.

    Parameters
    ----------
    keys : (B,) array
        One PRNG key per dataset.
    post : GaussianPosterior
        The posteriors of the batch (``mean: (B, d)``).
    num_draws : int
        Draws per dataset.

    Returns
    -------
    (B, num_draws, d) array
        Independent posterior draws, dataset by dataset (:func:`sample`).
    """
    # one dataset at a time everywhere: blocks of 4096 would pad a single fit's draws 8192-fold on a GPU
    return map_datasets(lambda key, *p: sample(key, GaussianPosterior(*p), num_draws), keys, *post, sequential=True)


# --------------------------------------------------------------------------------------------
# The same posterior in float64 NumPy from one SVD (and the whitening w = c + A z it gives the engine)
# --------------------------------------------------------------------------------------------


class Whitening(NamedTuple):  # numpydoc ignore=PR02
    """``w = shift + matrix @ z``; ``z ~ N(z_mean, diag(z_scale^2))`` a priori. Shapes ``(..., d)``, ``(..., d, d)``.

    Parameters
    ----------
    shift : (..., d) ndarray
        ``c``: the posterior mean at the whitening's ``sigma``.
    matrix : (..., d, d) ndarray
        ``A``: ``A A^T`` is the posterior covariance at that ``sigma``.
    z_mean : (..., d) ndarray
        Prior mean of ``z`` (NaN in the precision form).
    z_scale : (..., d) ndarray
        Prior sds of ``z`` (NaN in the precision form).
    """

    shift: np.ndarray
    matrix: np.ndarray
    z_mean: np.ndarray
    z_scale: np.ndarray

    def to_weights(self, z: np.ndarray) -> np.ndarray:
        """``z: (..., d)`` draws -> ``w = shift + matrix z`` in float64; leading axes of ``z`` are free.

        Parameters
        ----------
        z : (..., d) array_like
            Whitened draws (for one dataset's whitening).

        Returns
        -------
        (..., d) ndarray
            The weights, float64.
        """
        return self.shift + np.einsum("de,...e->...d", self.matrix, np.asarray(z, dtype=np.float64))

    @property
    def log_abs_det(self) -> float:
        """``log |det A|`` (what the log density of ``z`` exceeds that of ``w`` by).

        Returns
        -------
        float
            ``log |det matrix|``.
        """
        return float(np.linalg.slogdet(self.matrix)[1])


def _precision_whitening(phi: np.ndarray, y: np.ndarray, prior: TermPrior, sigma: np.ndarray) -> Whitening:
    """The whitening in precision form (a TermPrior, flat coefficients allowed); ``sigma: (..., 1)``.

    Stack ``B = [diag(lambda^1/2) L; phi / sigma]`` (``(d + n, d)``) and ``b = [lambda^1/2 mean; y / sigma]`` so that
    ``P = B^T B`` and ``P w_N = B^T b``: with the thin SVD ``B = U diag(s) V^T``, ``A = V diag(1/s)`` (``A A^T =
    P^-1``) and ``c = A U^T b`` (the least-squares solution of ``B w = b``; no normal equations). For known
    ``sigma`` the posterior of ``z = A^-1 (w - c)`` is ``N(0, I)``; with a flat prior ``phi A / sigma = U`` has
    orthonormal columns (least squares' whitening). ``z_mean``/``z_scale`` are NaN: the prior of ``z`` is not
    diagonal here, and the sampler evaluates the prior at ``w = c + A z`` instead.
    """
    dim = phi.shape[-1]
    lam_half = np.sqrt(np.asarray(prior.precision_diag, dtype=np.float64))
    tril = np.asarray(prior.centring, dtype=np.float64)
    mean = np.asarray(prior.mean, dtype=np.float64)
    batch = phi.shape[:-2]
    top = np.broadcast_to(lam_half[:, None] * tril, (*batch, dim, dim))
    stacked = np.concatenate([top, phi / sigma[..., None]], axis=-2)
    rhs = np.concatenate([np.broadcast_to(lam_half * mean, (*batch, dim)), y / sigma], axis=-1)
    u, s, vt = np.linalg.svd(stacked, full_matrices=False)
    if np.any(~np.isfinite(s)) or np.any(s <= np.max(s, axis=-1, keepdims=True) * 1e-14 * max(stacked.shape[-2:])):
        raise BayeslinError("the posterior is improper: flat weight priors need a design whose columns (of the flat "
                            "coefficients) are linearly independent")
    matrix = np.swapaxes(vt, -1, -2) / s[..., None, :]
    shift = np.einsum("...de,...e->...d", matrix, np.einsum("...nd,...n->...d", u, rhs))
    nan = np.full((*batch, dim), np.nan)
    return Whitening(shift, matrix, nan, nan.copy())


def _prior_factors(prior: WeightPrior) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean ``(d,)`` and a square root ``L0 (d, d)`` of its covariance, float64."""
    mean = np.asarray(prior.mean, dtype=np.float64)
    if isinstance(prior, IndependentNormal):
        return mean, np.diag(np.asarray(prior.scale, dtype=np.float64))
    return mean, np.asarray(cast(MultivariateNormal, prior).scale_tril, dtype=np.float64)  # TermPriors: not here


def whitening(phi, y, prior: WeightPrior, sigma) -> Whitening:
    """The whitening (and exact posterior) of one dataset or a batch, in float64.

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    prior : WeightPrior
        A Gaussian-family weight prior.
    sigma : float or (...) array_like
        Noise sd (known, or a plug-in value for learned noise).

    Returns
    -------
    Whitening
        ``shift`` is the posterior mean at this ``sigma``, ``matrix @ matrix^T`` its covariance. For a
        :class:`~bayeslin_jax.core.priors.TermPrior` (normal and flat coefficients) the precision form
        (:func:`_precision_whitening`; ``z_mean``, ``z_scale`` NaN).

    Raises
    ------
    BayeslinError
        Non-Gaussian priors (whiten with their Gaussian stand-in), or flat coefficients the design does not identify.
    """
    _require_gaussian(prior, "whitening")
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)[..., None]
    if isinstance(prior, TermPrior):
        batch = np.broadcast_shapes(phi.shape[:-2], y.shape[:-1], sigma.shape[:-1])
        phi = np.broadcast_to(phi, batch + phi.shape[-2:])
        return _precision_whitening(phi, np.broadcast_to(y, batch + y.shape[-1:]),
                                    prior, np.broadcast_to(sigma, (*batch, 1)))
    m0, l0 = _prior_factors(prior)
    u, s, vt = np.linalg.svd(phi @ l0 / sigma[..., None], full_matrices=False)
    g = 1.0 / np.sqrt(1.0 + s**2)
    prior_part = vt @ np.linalg.solve(l0, m0)
    data_part = s * np.einsum("...nd,...n->...d", u, y) / sigma
    matrix = l0 @ (np.swapaxes(vt, -1, -2) * g[..., None, :])
    shift = np.einsum("...de,...e->...d", matrix, g * (prior_part + data_part))
    z_mean = (vt @ np.linalg.solve(l0, (m0 - shift)[..., None]))[..., 0] / g
    return Whitening(shift, matrix, z_mean, 1.0 / g)


def posterior64(phi, y, prior: WeightPrior, sigma) -> GaussianPosterior:
    """The exact conjugate posterior in float64 (NumPy arrays), stable on ill-conditioned designs.

    Same fields as :func:`bayeslin_jax.core.exact.posterior`: ``mean (..., d)``, ``cov (..., d, d)``,
    ``precision_tril (..., d, d)``; the oracle of :func:`bayeslin_jax.fit` whatever JAX's precision.

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    prior : WeightPrior
        A Gaussian-family weight prior.
    sigma : float or (...) array_like
        The known noise sd.

    Returns
    -------
    GaussianPosterior
        NumPy float64 arrays.

    Raises
    ------
    BayeslinError
        Non-Gaussian priors, or flat coefficients the design does not identify (:func:`whitening`).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> from bayeslin_jax.core import exact
    >>> x = np.linspace(-1.0, 1.0, 11)
    >>> phi = exact.design_matrix64(bl.linear(), x)
    >>> post = exact.posterior64(phi, 2.0 + 0.3 * x, bl.flat_prior(2), 0.1)  # flat prior: least squares
    >>> np.round(post.mean, 3).tolist(), post.mean.dtype
    ([2.0, 0.3], dtype('float64'))
    """
    white = whitening(phi, y, prior, sigma)
    a = white.matrix
    cov = a @ np.swapaxes(a, -1, -2)
    # chol of the precision A^-T A^-1 from the QR of A^-1 (no squaring of the condition number)
    a_inv = np.linalg.inv(a)
    _, r = np.linalg.qr(a_inv)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    tril = np.swapaxes(r * signs[..., :, None], -1, -2)
    # NumPy float64 arrays in the fields typed as JAX arrays: every consumer converts with np/jnp.asarray
    return GaussianPosterior(cast(Array, white.shift), cast(Array, 0.5 * (cov + np.swapaxes(cov, -1, -2))),
                             cast(Array, tril))


def design_matrix64(basis, x) -> np.ndarray:
    """``basis(x)`` evaluated in float64 (NumPy), whatever JAX's default precision.

    Parameters
    ----------
    basis : Polynomial
        The basis (any callable ``x -> phi``).
    x : (..., n) array_like
        Raw inputs.

    Returns
    -------
    (..., n, d) ndarray
        The design, float64.
    """
    with jax.enable_x64(True):
        return np.asarray(basis(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def plugin_sigma(phi, y, fallback: float) -> np.ndarray:
    """Least-squares residual sd per dataset ``(...)``: the plug-in noise of the whitening for learned noise.

    Parameters
    ----------
    phi : (..., n, d) array_like
        The design.
    y : (..., n) array_like
        Observations.
    fallback : float
        Used where the residual sd is 0 (an exact fit).

    Returns
    -------
    (...) ndarray
        ``sqrt(RSS / max(n - d, 1))``, float64.
    """
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = phi.shape[-2:]
    coef = np.linalg.pinv(phi) @ y[..., None]
    resid = y - (phi @ coef)[..., 0]
    sd = np.sqrt(np.sum(resid**2, axis=-1) / max(n - d, 1))
    return np.where(sd > 0, sd, fallback)
