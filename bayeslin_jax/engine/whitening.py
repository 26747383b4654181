"""Stable float64 exact posterior and the affine whitening that lets NUTS sample raw-scale designs.

Both come from one factorisation, computed in float64 NumPy whatever JAX's precision. With prior
``w ~ N(m0, L0 L0^T)`` and ``y | w ~ N(phi w, sigma^2 I)``, take the thin SVD of the prior-scaled
design ``M = phi L0 / sigma = U diag(s) V^T`` and ``g = (1 + s^2)^(-1/2)``. Then::

    A   = L0 V diag(g)                      (so A A^T = (L0^-T L0^-1 + phi^T phi / sigma^2)^-1)
    c   = A (g * (V^T L0^-1 m0 + s * U^T y / sigma))       posterior mean
    A A^T                                                  posterior covariance

with no normal equations formed, so the condition number is not squared: NIST's Wampler1 (a degree-5
polynomial, ``cond(phi) ~ 6e6``) comes out to ~1e-9 of the certified values.

Whitening: NUTS samples ``z`` with ``w = c + A z``. Any fixed invertible ``A`` leaves the posterior of ``w``
unchanged; the prior on ``z`` is the exact linear image of the Gaussian prior on ``w``,
``N(A^-1 (m0 - c), diag(1 / g^2))`` (diagonal because ``V`` is orthogonal), and the likelihood is
``y - phi c ~ N((phi A) z, sigma^2 I)``. For known noise the posterior of ``z`` is ``N(0, I)``: the
sampler sees an isotropic target whatever the scales and correlations of the raw predictors (rstanarm's
``QR = TRUE`` and brms' centring do the same job). For learned noise, ``A`` and ``c`` use a plug-in
``sigma`` (the least-squares residual sd), and ``z | sigma`` is close to isotropic.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.exact import GaussianPosterior
from bayeslin_jax.core.priors import IndependentNormal, KnownNoise, ModelSpec, Noise, WeightPrior, independent_normal


class Whitening(NamedTuple):
    """``w = shift + matrix @ z``; ``z ~ N(z_mean, diag(z_scale^2))`` a priori. Shapes ``(..., d)``, ``(..., d, d)``."""

    shift: np.ndarray
    matrix: np.ndarray
    z_mean: np.ndarray
    z_scale: np.ndarray

    def to_weights(self, z: np.ndarray) -> np.ndarray:
        """``z: (..., d)`` draws -> ``w = shift + matrix z`` in float64; leading axes of ``z`` are free."""
        return self.shift + np.einsum("de,...e->...d", self.matrix, np.asarray(z, dtype=np.float64))

    @property
    def log_abs_det(self) -> float:
        """``log |det A|`` (what the log density of ``z`` exceeds that of ``w`` by)."""
        return float(np.linalg.slogdet(self.matrix)[1])


def _prior_factors(prior: WeightPrior) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean ``(d,)`` and a square root ``L0 (d, d)`` of its covariance, float64."""
    mean = np.asarray(prior.mean, dtype=np.float64)
    if isinstance(prior, IndependentNormal):
        return mean, np.diag(np.asarray(prior.scale, dtype=np.float64))
    return mean, np.asarray(prior.scale_tril, dtype=np.float64)


def whitening(phi, y, prior: WeightPrior, sigma) -> Whitening:
    """The whitening (and exact posterior) of one dataset or a batch, in float64.

    Parameters
    ----------
    phi : array_like, shape ``(..., n, d)``
    y : array_like, shape ``(..., n)``
    prior : WeightPrior
    sigma : float or array_like, shape ``(...)``
        Noise sd (known, or a plug-in value for learned noise).

    Returns
    -------
    Whitening
        ``shift`` is the posterior mean at this ``sigma``, ``matrix @ matrix^T`` its covariance.
    """
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)[..., None]
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
    """
    white = whitening(phi, y, prior, sigma)
    a = white.matrix
    cov = a @ np.swapaxes(a, -1, -2)
    # chol of the precision A^-T A^-1 from the QR of A^-1 (no squaring of the condition number)
    a_inv = np.linalg.inv(a)
    _, r = np.linalg.qr(a_inv)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    tril = np.swapaxes(r * signs[..., :, None], -1, -2)
    return GaussianPosterior(white.shift, 0.5 * (cov + np.swapaxes(cov, -1, -2)), tril)


def design_matrix64(basis, x) -> np.ndarray:
    """``basis(x)`` evaluated in float64 (NumPy), whatever JAX's default precision."""
    with jax.enable_x64(True):
        return np.asarray(basis(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def plugin_sigma(phi, y, fallback: float) -> np.ndarray:
    """Least-squares residual sd per dataset ``(...)``: the plug-in noise of the whitening for learned noise."""
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = phi.shape[-2:]
    coef = np.linalg.pinv(phi) @ y[..., None]
    resid = y - (phi @ coef)[..., 0]
    sd = np.sqrt(np.sum(resid**2, axis=-1) / max(n - d, 1))
    return np.where(sd > 0, sd, fallback)


def _reference_sigma(noise: Noise, phi, y) -> np.ndarray:
    if isinstance(noise, KnownNoise):
        return np.broadcast_to(np.asarray(noise.sigma, dtype=np.float64), np.shape(y)[:-1])
    return plugin_sigma(phi, y, fallback=float(noise.scale))


def sample_whitened(seed, phi, y, prior: WeightPrior, noise: Noise, config, num_devices: int | None = None,
                    sampler=None, draw_stats: bool = True):
    """NUTS on the whitened model of each dataset; draws of ``w`` back on the original scale.

    ``phi: (B, n, d)``, ``y: (B, n)`` (float64 NumPy for accuracy). Dataset ``i`` uses the same random
    stream as :func:`bayeslin_jax.engine.sample_nuts` would give it (``sampler``: that function, or a stand-in
    with its signature). Returns a
    :class:`~bayeslin_jax.engine.NutsResult` with float64 ``w: (B, C, S, d)`` and ``lp`` the log density
    of ``w`` (the sampler's ``lp`` of ``z`` less ``log |det A|``), and the whitenings. ``draw_stats=False``:
    per-run summaries of the statistics instead (as :func:`~bayeslin_jax.engine.sample_nuts`; no ``lp``).
    """
    import jax.numpy as jnp

    from bayeslin_jax.engine import NutsResult, sample_nuts

    sampler = sample_nuts if sampler is None else sampler
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    white = whitening(phi, y, prior, _reference_sigma(noise, phi, y))
    if not (np.all(np.isfinite(white.matrix)) and np.all(np.isfinite(white.shift))):
        raise BayeslinError("the whitening of the design is not finite: check the data and prior scales")
    dim = phi.shape[-1]
    parts = []
    for i in range(phi.shape[0]):
        one = jax.tree.map(lambda a, i=i: a[i], white)
        z_prior = independent_normal(one.z_mean, one.z_scale, dim)
        phi_z = phi[i] @ one.matrix
        y_z = y[i] - phi[i] @ one.shift
        out = sampler(seed, jnp.asarray(phi_z[None]), jnp.asarray(y_z[None]), z_prior, noise, config,
                      dataset_indices=jnp.asarray([i]), num_devices=num_devices,
                      **({} if draw_stats else {"draw_stats": False}))
        samples = {k: np.asarray(v) for k, v in out.samples.items()}
        samples["w"] = one.to_weights(samples["w"])
        stats = {k: np.asarray(v) for k, v in out.stats.items()}
        if "lp" in stats:
            stats["lp"] = stats["lp"].astype(np.float64) - one.log_abs_det
        parts.append((samples, stats))
    join = lambda *arrays: np.concatenate(arrays, axis=0)  # noqa: E731
    samples = jax.tree.map(join, *[p[0] for p in parts])
    stats = jax.tree.map(join, *[p[1] for p in parts])
    return NutsResult(samples, stats), white


def sample_design_whitened(seed, phi, y, prior: WeightPrior, noise: Noise, config, dataset_indices=None,
                           num_devices: int | None = None, draw_stats: bool = True):
    """NUTS for B datasets that share one fixed design (a study or SBC of the user's design), in one engine call.

    One whitening for the whole batch, ``w = m0 + A z`` with ``A`` from the design, the prior and the known
    sigma (the noise prior's scale for learned noise), so dataset ``i`` depends on ``(seed, i)`` only, not on
    its batch. The prior on ``z`` is ``N(0, diag(z_scale^2))``, the same for every dataset; the posterior of
    ``z`` is isotropic (known noise) around ``A^-1 (posterior mean - m0)``. Same signature and output as
    :func:`bayeslin_jax.engine.sample_nuts`; ``phi: (B, n, d)`` with ``phi[i] == phi[0]``.
    """
    import jax.numpy as jnp

    from bayeslin_jax.engine import NutsResult, sample_nuts

    design = np.asarray(phi[0], dtype=np.float64)
    sigma = float(noise.sigma) if isinstance(noise, KnownNoise) else float(noise.scale)
    white = whitening(design, np.zeros(design.shape[0]), prior, sigma)
    m0 = np.asarray(prior.mean, dtype=np.float64)
    z_prior = independent_normal(0.0, white.z_scale, design.shape[-1])
    dtype = jnp.asarray(phi).dtype
    phi_z = jnp.broadcast_to(jnp.asarray(design @ white.matrix, dtype=dtype), jnp.shape(phi))
    y_z = jnp.asarray(y) - jnp.asarray(design @ m0, dtype=dtype)
    out = sample_nuts(seed, phi_z, y_z, z_prior, noise, config, dataset_indices=dataset_indices,
                      num_devices=num_devices, draw_stats=draw_stats)
    samples = dict(out.samples)
    samples["w"] = jnp.asarray(m0, dtype=dtype) + samples["w"] @ jnp.asarray(white.matrix.T, dtype=dtype)
    stats = dict(out.stats)
    if "lp" in stats:  # draw_stats=False keeps per-run summaries only
        stats["lp"] = stats["lp"] - jnp.asarray(white.log_abs_det, dtype=stats["lp"].dtype)
    return NutsResult(samples, stats)


def sampler_for(spec: ModelSpec):
    """The engine call for batches of ``spec``: :func:`sample_design_whitened` for a fixed design basis
    (:class:`bayeslin_jax.workflows.design.Design`), else :func:`bayeslin_jax.engine.sample_nuts`."""
    from bayeslin_jax.engine import sample_nuts

    return sample_design_whitened if getattr(spec.basis, "num_rows", None) is not None else sample_nuts


__all__ = [
    "Whitening", "design_matrix64", "plugin_sigma", "posterior64", "sample_design_whitened", "sample_whitened",
    "sampler_for", "whitening",
]
