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

Other priors (a :class:`~bayeslin_jax.core.priors.TermPrior`: Student-t, Cauchy, flat or mixed coefficients, a
centred intercept): ``A`` and ``c`` come from the precision-form whitening of a Gaussian stand-in (Student-t ->
normal of the same scale, flat -> zero precision; :func:`bayeslin_jax.core.exact.whitening`), and the whitened
model evaluates the *true* prior at ``w = c + A z`` (``numpyro.factor``) plus the likelihood, run by the general
engine (:func:`bayeslin_jax.engine.sampling.sample_model`, same random streams per dataset). ``A`` is fixed, so the
posterior of ``w`` is exactly the model's; for a flat prior with known noise ``z | y ~ N(0, I)``, for Student-t
priors ``z`` is isotropic where the data dominate the prior.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.exact import Whitening, design_matrix64, plugin_sigma, posterior64, whitening
from bayeslin_jax.core.priors import KnownNoise, ModelSpec, Noise, TermPrior, WeightPrior, independent_normal
from bayeslin_jax.core.regressions import InferenceOnly, _noise_sd


def _reference_sigma(noise: Noise, phi, y) -> np.ndarray:
    if isinstance(noise, KnownNoise):
        return np.broadcast_to(np.asarray(noise.sigma, dtype=np.float64), np.shape(y)[:-1])
    return plugin_sigma(phi, y, fallback=noise.reference_scale)


def _stand_in(prior: WeightPrior) -> WeightPrior:
    """The Gaussian-family prior the whitening of ``prior`` is computed from."""
    return prior.gaussian_stand_in() if isinstance(prior, TermPrior) else prior


def whitened_regression(phi_z: Array, y: Array | None = None, *, shift: Array, matrix: Array, prior: WeightPrior,
                        noise: Noise) -> None:
    """The Gaussian regression of one dataset in whitened coordinates ``w = c + A z``, for any weight prior.

    Site ``w: (d,)`` is ``z`` (flat; the prior enters as ``numpyro.factor("prior", log p(c + A z))``), then
    ``sigma: ()`` (unknown noise) and the observed ``y ~ N(phi_z z, sigma)`` in a plate.

    Parameters
    ----------
    phi_z : array, shape ``(n, d)``
        The whitened design ``phi A``.
    y : array, shape ``(n,)``, optional
        The shifted observations ``y - phi c`` (None: prior predictive).
    shift : array, shape ``(d,)``
        The shift ``c``.
    matrix : array, shape ``(d, d)``
        The whitening matrix ``A``.
    prior : WeightPrior
        The true prior of ``w``, evaluated at ``c + A z``.
    noise : Noise
        Known sigma or its prior.
    """
    z = numpyro.sample("w", InferenceOnly(dist.ImproperUniform(dist.constraints.real_vector, (), (phi_z.shape[-1],))))
    numpyro.factor("prior", prior.distribution().log_prob(shift + matrix @ z))
    sigma = _noise_sd(noise)
    with numpyro.plate("obs", phi_z.shape[-2]):
        numpyro.sample("y", dist.Normal(phi_z @ z, sigma), obs=y)


def _sample_factor_model(seed, phi_z, y_z, shift, matrix, prior, noise, config, *, dataset_indices, num_devices,
                         draw_stats):
    """NUTS on :func:`whitened_regression` for B datasets through the general engine (``phi_z: (B, n, d)``,
    shared ``shift: (d,)``, ``matrix: (d, d)``); the same random streams as :func:`~bayeslin_jax.engine.sample_nuts`."""
    import jax.numpy as jnp

    from bayeslin_jax.core.model import Model
    from bayeslin_jax.engine.sampling import ModelSites, sample_model

    dim = phi_z.shape[-1]
    dtype = phi_z.dtype
    params = {"shift": jnp.asarray(shift, dtype=dtype), "matrix": jnp.asarray(matrix, dtype=dtype),
              "prior": jax.tree.map(lambda a: jnp.asarray(a, dtype=dtype), prior), "noise": noise}
    model = Model(whitened_regression, "linear_whitened", params, per_point=())
    known = isinstance(noise, KnownNoise)
    sites = ModelSites(
        latent=(("w", (dim,)),) if known else (("sigma", ()), ("w", (dim,))),
        kept=("w",) if known else ("w", "sigma"),
        shapes=((dim,),) if known else ((dim,), ()),
    )
    return sample_model(seed, phi_z, y_z, model, config, dataset_indices=dataset_indices, num_devices=num_devices,
                        sites=sites, draw_stats=draw_stats)


def sample_whitened(seed, phi, y, prior: WeightPrior, noise: Noise, config, num_devices: int | None = None,
                    sampler=None, draw_stats: bool = True, progress: bool = False):
    """Run NUTS on the whitened model of each dataset; return the draws of ``w`` on the original scale.

    Each dataset gets its own whitening (from its own data) and its own engine call. Dataset ``i`` uses the same
    random stream as :func:`bayeslin_jax.engine.sample_nuts` would give it.

    Parameters
    ----------
    seed : int or key array
        Root of the ``INFER`` stream, as for :func:`bayeslin_jax.engine.sample_nuts`.
    phi : array, shape ``(B, n, d)``
        Design matrices (converted to float64 NumPy for accuracy).
    y : array, shape ``(B, n)``
        Observations (converted to float64 NumPy).
    prior : WeightPrior
        Prior of the weights (a :class:`~bayeslin_jax.core.priors.TermPrior` runs the general engine on
        :func:`whitened_regression`).
    noise : Noise
        Known sigma or its prior.
    config : NutsConfig
        Sampler settings.
    num_devices : int, optional
        Local devices to split over (default all).
    sampler : callable, optional
        :func:`bayeslin_jax.engine.sample_nuts` (the default) or a stand-in with its signature.
    draw_stats : bool, default True
        False: per-run summaries of the statistics instead (as :func:`~bayeslin_jax.engine.sample_nuts`; no
        ``lp``).
    progress : bool, default False
        A tqdm bar of datasets done, on stderr (one engine call per dataset: the draws do not depend on it).

    Returns
    -------
    result : NutsResult
        Float64 ``w: (B, C, S, d)`` (and ``sigma`` for unknown noise); ``lp`` the log density of ``w`` (the
        sampler's ``lp`` of ``z`` less ``log |det A|``).
    white : Whitening
        The whitenings, batched over datasets.

    Raises
    ------
    BayeslinError
        The whitening of the design is not finite.
    """
    import sys

    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from bayeslin_jax.engine import NutsResult, sample_nuts

    sampler = sample_nuts if sampler is None else sampler
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    factor = isinstance(prior, TermPrior)  # the true prior at w = c + A z (sampler not used: the general engine)
    white = whitening(phi, y, _stand_in(prior), _reference_sigma(noise, phi, y))
    if not (np.all(np.isfinite(white.matrix)) and np.all(np.isfinite(white.shift))):
        raise BayeslinError("the whitening of the design is not finite: check the data and prior scales")
    dim = phi.shape[-1]
    parts = []
    for i in tqdm(range(phi.shape[0]), desc="datasets", unit="dataset", disable=not progress, file=sys.stderr):
        one = jax.tree.map(lambda a, i=i: a[i], white)
        phi_z = phi[i] @ one.matrix
        y_z = y[i] - phi[i] @ one.shift
        if factor:
            out = _sample_factor_model(seed, jnp.asarray(phi_z[None]), jnp.asarray(y_z[None]), one.shift, one.matrix,
                                       prior, noise, config, dataset_indices=jnp.asarray([i]),
                                       num_devices=num_devices, draw_stats=draw_stats)
        else:
            z_prior = independent_normal(one.z_mean, one.z_scale, dim)
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
    """Run NUTS for B datasets that share one fixed design (a study or SBC of the user's design), in one call.

    One whitening for the whole batch, ``w = m0 + A z`` with ``A`` from the design, the prior and the known
    sigma (the noise prior's scale for learned noise), so dataset ``i`` depends on ``(seed, i)`` only, not on
    its batch. The prior on ``z`` is ``N(0, diag(z_scale^2))``, the same for every dataset; the posterior of
    ``z`` is isotropic (known noise) around ``A^-1 (posterior mean - m0)``. Same signature and output as
    :func:`bayeslin_jax.engine.sample_nuts`.

    Parameters
    ----------
    seed : int or key array
        Root of the ``INFER`` stream.
    phi : array, shape ``(B, n, d)``
        Design matrices, all equal (``phi[i] == phi[0]``; only ``phi[0]`` is whitened).
    y : array, shape ``(B, n)``
        Observations.
    prior : WeightPrior
        Prior of the weights.
    noise : Noise
        Known sigma or its prior.
    config : NutsConfig
        Sampler settings.
    dataset_indices : int array, shape ``(B,)``, optional
        Global dataset indices keying the randomness (default ``0..B-1``).
    num_devices : int, optional
        Local devices to split over (default all).
    draw_stats : bool, default True
        False: per-run summaries of the statistics.

    Returns
    -------
    NutsResult
        ``w: (B, C, S, d)`` on the original scale (``sigma`` for unknown noise); ``lp`` the log density of ``w``.
    """
    import jax.numpy as jnp

    from bayeslin_jax.engine import NutsResult, sample_nuts

    design = np.asarray(phi[0], dtype=np.float64)
    sigma = noise.reference_scale
    white = whitening(design, np.zeros(design.shape[0]), _stand_in(prior), sigma)
    dtype = jnp.asarray(phi).dtype
    phi_z = jnp.broadcast_to(jnp.asarray(design @ white.matrix, dtype=dtype), jnp.shape(phi))
    if isinstance(prior, TermPrior):  # w = c0 + A z (c0: the stand-in posterior mean at y = 0), the true prior
        m0 = white.shift
        y_z = jnp.asarray(y) - jnp.asarray(design @ m0, dtype=dtype)
        out = _sample_factor_model(seed, phi_z, y_z, m0, white.matrix, prior, noise, config,
                                   dataset_indices=dataset_indices, num_devices=num_devices, draw_stats=draw_stats)
    else:
        m0 = np.asarray(prior.mean, dtype=np.float64)
        z_prior = independent_normal(0.0, white.z_scale, design.shape[-1])
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
    """Choose the engine call for batches of ``spec``.

    Parameters
    ----------
    spec : ModelSpec
        The Gaussian model.

    Returns
    -------
    callable
        :func:`sample_design_whitened` for a fixed design basis (:class:`bayeslin_jax.workflows.design.Design`),
        else :func:`bayeslin_jax.engine.sample_nuts`; both with :func:`~bayeslin_jax.engine.sample_nuts`'s
        signature.
    """
    from bayeslin_jax.engine import sample_nuts

    return sample_design_whitened if getattr(spec.basis, "num_rows", None) is not None else sample_nuts


__all__ = [
    "Whitening", "design_matrix64", "plugin_sigma", "posterior64", "sample_design_whitened", "sample_whitened",
    "sampler_for", "whitened_regression", "whitening",
]
