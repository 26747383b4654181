"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023): simulate, fit, rank.

For each simulation ``i``: ``w ~ prior`` (the *simulation* spec), ``x ~ U(-x_scale, x_scale)``,
``y ~ N(phi(x) w, sigma)``; fit with the *fit* spec (normally the same) by NUTS or by exact
conjugate sampling; then, for every test quantity ``f`` (each weight, ``sigma`` when learnt, the
log-likelihood of the simulated data ``log p(y | w, sigma)`` and the mean function at a few x),
the rank of ``f(truth)`` among ``L`` near-independent posterior draws.

Rank convention (explicit, because plotting code guesses otherwise): with ``less`` draws below
the truth and ``equal`` draws tied with it, the randomised PIT is
``pit = (less + V * (equal + 1)) / (L + 1)`` with ``V ~ U(0, 1)`` (keyed per dataset), and the
rank is ``floor(pit * (L + 1))`` in ``{0, ..., L}``. Under calibration the rank is uniform on
``{0..L}`` and the PIT is exactly ``U(0, 1)``; ties are broken at random.

Thinning (NUTS): the ``C * S`` draws of a dataset (chain-major) are thinned to ``L`` draws at
evenly spaced positions ``floor((l + 1/2) C S / L)``, i.e. the largest common stride
``C S / L``. That stride is at least ``C S / ESS`` (the usual near-independence rule) exactly when
``min(bulk ESS, tail ESS) >= L`` over the dataset's quantities, which is one of the gates below.
So every dataset has the same, known ``L`` (no ragged thinning) and the gate says which datasets'
ranks are trustworthy. Gates per dataset: R-hat <= ``rhat_max``, min ESS >= ``L``, divergences
<= ``max_divergences``. Datasets failing a gate are reported (and by default left out of the
verdict), never silently ranked.

Deliberately broken inference (to prove the checks have power): a *fit* spec that differs from
the simulation spec (e.g. prior sd 0.4 vs 0.2), or a :class:`Distortion` of the posterior draws
(sd scaled, mean shifted) applied to the weights after sampling.

The per-chunk work (simulate, fit, quantities, ranks) is vectorised over simulations in compiled
programs; dataset ``i`` depends only on ``(seed, i)``, so chunking and resuming change nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array
from scipy.special import ndtr
from tqdm.auto import tqdm

from bayeslin_jax.core import exact, simulate, validation
from bayeslin_jax.core import keys as keyring
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model
from bayeslin_jax.core.priors import (
    IndependentNormal,
    KnownNoise,
    ModelSpec,
    MultivariateNormal,
    Noise,
    TermPrior,
    WeightPrior,
)
from bayeslin_jax.core.simulate import simulate_model
from bayeslin_jax.diagnostics.datatree import pointwise_log_likelihood
from bayeslin_jax.diagnostics.device import summarize_rows
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.engine import whitening as reparam
from bayeslin_jax.engine.sampling import ModelSites, inspect_model, sample_model
from bayeslin_jax.workflows.store import open_store, read_identity, run_chunked, sampler_identity, versions

ENGINES = ("nuts", "exact")


@dataclass(frozen=True)
class Distortion:  # numpydoc ignore=PR02
    """A deliberately wrong posterior: ``w' = m + sd_scale (w - m) + shift_sd * s``.

    ``m``, ``s``: posterior mean and marginal sds of the weights (exact ones for the exact engine,
    the draws' own for NUTS). Identity by default. Applies to the weights only.

    Parameters
    ----------
    sd_scale : float
        Factor on the draws' spread about the posterior mean (``< 1`` under-, ``> 1`` over-dispersed).
    shift_sd : float
        Shift of every draw, in posterior sds.

    Raises
    ------
    BayeslinError
        ``sd_scale`` not positive and finite, or ``shift_sd`` not finite.
    """

    sd_scale: float = 1.0
    shift_sd: float = 0.0

    def __post_init__(self) -> None:
        """Check the fields (raises :class:`BayeslinError`)."""
        if not (math.isfinite(self.sd_scale) and self.sd_scale > 0):
            raise BayeslinError(f"distortion sd_scale must be positive, got {self.sd_scale}")
        if not math.isfinite(self.shift_sd):
            raise BayeslinError(f"distortion shift_sd must be finite, got {self.shift_sd}")

    @property
    def is_identity(self) -> bool:
        """Whether the distortion changes nothing (``sd_scale == 1`` and ``shift_sd == 0``).

        Returns
        -------
        bool
            True for the identity.
        """
        return self.sd_scale == 1.0 and self.shift_sd == 0.0


@dataclass(frozen=True)
class SbcConfig:  # numpydoc ignore=PR02
    """How to run SBC (hashable; part of a store's identity).

    Parameters
    ----------
    engine : {"nuts", "exact"}
        ``"nuts"``: the batched NUTS engine (any model); ``"exact"``: exact conjugate draws (the
        Gaussian model with known noise only).
    num_ranks : int
        L, the posterior draws each truth is ranked among (ranks in ``0..L``).
    nuts : NutsConfig
        The NUTS settings (engine ``"nuts"``); chains x draws must be at least L and draws per
        chain at least 4 (for R-hat and ESS).
    num_points : int, optional
        Data points per simulation. None: the model's ``Model.num_points`` (fixed by per-point
        arguments), else 11 (:meth:`points_for`).
    x_scale : float
        The simulated inputs are ``x ~ U(-x_scale, x_scale)``.
    predict_at : tuple of float
        x values (in units of ``x_scale``) where the mean function is a test quantity.
    distortion : Distortion
        A deliberately wrong posterior (identity by default), to show the checks have power.
    rhat_max : float
        Convergence gate: a simulation's R-hat must be at most this (above 1).
    max_divergences : int
        Convergence gate: at most this many divergent transitions per simulation.

    Raises
    ------
    BayeslinError
        An unknown engine, L not a positive integer, fewer NUTS draws than L (or fewer than 4 per
        chain), a non-positive ``num_points`` or ``x_scale``, non-finite ``predict_at``,
        ``rhat_max <= 1`` or ``max_divergences < 0``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> config = bl.SbcConfig(engine="exact", num_ranks=19)
    >>> config.points_for()
    11
    >>> config.describe()["num_ranks"]
    19
    >>> bl.SbcConfig(engine="nuts", num_ranks=999, nuts=bl.NutsConfig(num_chains=2, num_draws=100))
    Traceback (most recent call last):
    ...
    bayeslin_jax.core.errors.BayeslinError: NUTS keeps 200 draws per dataset ... need chains x draws >= L
    """

    engine: str = "nuts"
    num_ranks: int = 99
    nuts: NutsConfig = field(default_factory=NutsConfig)
    num_points: int | None = None  # None: the model's Model.num_points (fixed by per-point arguments), else 11
    x_scale: float = 1.0
    predict_at: tuple[float, ...] = (-1.0, 0.5, 1.5)
    distortion: Distortion = field(default_factory=Distortion)
    rhat_max: float = 1.01
    max_divergences: int = 0

    def points_for(self, model: Model | None = None) -> int:
        """Points per simulation: ``num_points``, else ``model.num_points`` (per-point arguments), else 11.

        Parameters
        ----------
        model : Model, optional
            The simulation model, whose per-point arguments may fix the number of points.

        Returns
        -------
        int
            The number of data points of every simulated dataset.
        """
        if self.num_points is not None:
            return self.num_points
        return (model.num_points if model is not None else None) or simulate.TUTORIAL_N

    def __post_init__(self) -> None:
        """Check the fields (raises :class:`BayeslinError`)."""
        if self.engine not in ENGINES:
            raise BayeslinError(f"unknown engine {self.engine!r}: use 'nuts' or 'exact'")
        validation.integer("number of ranked draws L", self.num_ranks)
        if self.num_points is not None and (not isinstance(self.num_points, int) or self.num_points < 1):
            raise BayeslinError(f"need at least 1 data point per simulation, got {self.num_points!r}")
        if not (math.isfinite(self.x_scale) and self.x_scale > 0):
            raise BayeslinError(f"x_scale must be positive, got {self.x_scale}")
        if not all(math.isfinite(float(v)) for v in self.predict_at):
            raise BayeslinError(f"predict_at values must be finite, got {self.predict_at}")
        if self.engine == "nuts":
            total = self.nuts.num_chains * self.nuts.num_draws
            if total < self.num_ranks:
                raise BayeslinError(
                    f"NUTS keeps {total} draws per dataset (chains x draws) but SBC ranks among L={self.num_ranks}:"
                    " need chains x draws >= L"
                )
            if self.nuts.num_draws < 4:
                raise BayeslinError("SBC with NUTS needs at least 4 draws per chain (for R-hat/ESS)")
        if not self.rhat_max > 1.0:
            raise BayeslinError(f"rhat_max must exceed 1, got {self.rhat_max}")
        if self.max_divergences < 0:
            raise BayeslinError(f"max_divergences must be >= 0, got {self.max_divergences}")

    def describe(self) -> dict:
        """JSON-serialisable description (store metadata, result files).

        Returns
        -------
        dict
            The fields; ``nuts`` (engine ``"nuts"`` only) is the same sampler record as a study store's
            (:func:`~bayeslin_jax.workflows.store.sampler_identity`): every setting that changes the bits, the
            resolved ``method`` included, not ``batch_size`` (speed only).
        """
        out = asdict(self)
        out["predict_at"] = [float(v) for v in self.predict_at]
        if self.engine == "exact":
            out.pop("nuts")
        else:
            out["nuts"] = sampler_identity(self.nuts)
        return out


# ---------------------------------------------------------------------------------------------
# Specs and simulation
# ---------------------------------------------------------------------------------------------


def with_prior_scale(spec: ModelSpec, scale: float) -> ModelSpec:
    """The same spec with the weights' prior sds set to ``scale`` (an MVN keeps its correlations).

    Parameters
    ----------
    spec : ModelSpec
        The Gaussian model whose weight prior is rescaled.
    scale : float
        The new prior sd of every weight (flat coefficients of a term prior stay flat).

    Returns
    -------
    ModelSpec
        ``spec`` with the rescaled prior (e.g. a fit spec that is deliberately wrong).

    Raises
    ------
    BayeslinError
        ``scale`` not positive and finite.
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise BayeslinError(f"prior scale must be positive and finite, got {scale}")
    prior = spec.prior
    if isinstance(prior, IndependentNormal):
        new: WeightPrior = IndependentNormal(prior.mean, jnp.full_like(prior.scale, scale))
    elif isinstance(prior, TermPrior):  # every coefficient's scale (flat ones stay flat)
        new = replace(prior, scale=jnp.full_like(prior.scale, scale))
    else:
        sd = jnp.sqrt(jnp.diagonal(prior.cov))
        factor = scale / sd
        cov = prior.cov * factor[:, None] * factor[None, :]
        new = MultivariateNormal(prior.mean, cov, prior.scale_tril * factor[:, None])
    return replace(spec, prior=new)


# ---------------------------------------------------------------------------------------------
# Test quantities, distortion, ranks
# ---------------------------------------------------------------------------------------------


def quantity_names(fit_spec: ModelSpec, config: SbcConfig) -> list[str]:
    """Names of the test quantities, in storage order: weights, [sigma], loglik, mu(x=...).

    Parameters
    ----------
    fit_spec : ModelSpec
        The fit model (its feature names, and whether it learns sigma).
    config : SbcConfig
        Gives ``predict_at`` and ``x_scale`` (the mean function's x values).

    Returns
    -------
    list of str
        One name per quantity.
    """
    names = list(fit_spec.feature_names)
    if not fit_spec.known_sigma:
        names.append("sigma")
    names.append("loglik")
    names += [f"mu(x={v * config.x_scale:g})" for v in config.predict_at]
    return names


def evaluate_quantities(w: Array, sigma: Array, phi: Array, y: Array, phi_pred: Array, learn_sigma: bool) -> Array:
    """Test quantities of parameter values.

    Parameters
    ----------
    w : (B, ..., d) array
        Weights (the truth, or draws with sample axes after the batch axis).
    sigma : (B, ...) array
        Noise sds, one per weight vector.
    phi : (B, n, d) array
        Design matrices.
    y : (B, n) array
        Observations.
    phi_pred : (m, d) array
        Basis at the ``predict_at`` x values.
    learn_sigma : bool
        Whether ``sigma`` is a quantity (the fit learns it).

    Returns
    -------
    (B, ..., Q) array
        Weights, [sigma], ``log p(y | w, sigma)`` (summed over points), ``phi_pred @ w``.
    """
    extra = w.ndim - 2  # sample axes between the batch axis and d
    expand = (slice(None),) + (None,) * extra
    mu = jnp.einsum("bnd,b...d->b...n", phi, w)
    resid = (y[expand] - mu) / sigma[..., None]
    loglik = jnp.sum(-0.5 * resid**2 - jnp.log(sigma)[..., None] - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)
    parts = [w]
    if learn_sigma:
        parts.append(sigma[..., None])
    parts += [loglik[..., None], w @ phi_pred.T]
    return jnp.concatenate(parts, axis=-1)


def distort(w: Array, mean: Array, sd: Array, sd_scale: Array | float, shift_sd: Array | float) -> Array:
    """Apply a :class:`Distortion` (traced values).

    Parameters
    ----------
    w : (B, ..., d) array
        Posterior draws of the weights.
    mean, sd : (B, d) array
        Posterior mean and marginal sds of the weights.
    sd_scale, shift_sd : float or array
        The :class:`Distortion`'s fields.

    Returns
    -------
    (B, ..., d) array
        The distorted draws. The identity (``sd_scale = 1``, ``shift_sd = 0``) returns ``w`` unchanged,
        bit for bit.
    """
    expand = (slice(None),) + (None,) * (w.ndim - 2)
    m, s = mean[expand], sd[expand]
    distorted = m + sd_scale * (w - m) + shift_sd * s
    return jnp.where((sd_scale == 1.0) & (shift_sd == 0.0), w, distorted)


def rank_and_pit(truth: Array, draws: Array, jitter: Array, num_ranks: int) -> tuple[Array, Array]:
    """Randomised rank and PIT of the truth among L draws (see module docstring).

    Parameters
    ----------
    truth : (B, Q) array
        The test quantities of the truth.
    draws : (B, L, Q) array
        The test quantities of L posterior draws.
    jitter : (B, Q) array
        Uniforms on (0, 1) that break ties.
    num_ranks : int
        L.

    Returns
    -------
    rank : (B, Q) int32 array
        In ``0..L``.
    pit : (B, Q) array
        In (0, 1).
    """
    less = jnp.sum(draws < truth[:, None, :], axis=1)
    equal = jnp.sum(draws == truth[:, None, :], axis=1)
    pit = (less + jitter * (equal + 1)) / (num_ranks + 1)
    rank = jnp.minimum(jnp.floor(pit * (num_ranks + 1)), num_ranks).astype(jnp.int32)
    return rank, pit


def _jitter(seed: int, indices, num_quantities: int) -> Array:
    keys = keyring.dataset_keys(seed, keyring.SBC_JITTER, jnp.asarray(np.asarray(indices), dtype=jnp.uint32))
    return jax.vmap(lambda k: jax.random.uniform(k, (num_quantities,)))(keys)


def thin_positions(total: int, num_ranks: int) -> np.ndarray:
    """``L`` evenly spaced positions among ``total`` draws: ``floor((l + 1/2) total / L)``.

    Parameters
    ----------
    total : int
        The number of draws (chain-major).
    num_ranks : int
        L, the number of positions to keep.

    Returns
    -------
    (L,) int64 array
        The positions, increasing.
    """
    return np.floor((np.arange(num_ranks) + 0.5) * total / num_ranks).astype(np.int64)


def _bucket(num: int) -> int:
    """Padded batch size: the next power of two (at least 64), or a multiple of 1024 above 4096."""
    if num > 4096:
        return -(-num // 1024) * 1024
    return max(64, 1 << (num - 1).bit_length())


def _known_sigma(noise: Noise) -> Array:
    if not isinstance(noise, KnownNoise):
        raise BayeslinError("the exact engine needs known noise (the fit spec learns sigma): use --engine nuts")
    return noise.sigma


# ---------------------------------------------------------------------------------------------
# One chunk of simulations
# ---------------------------------------------------------------------------------------------


def _sbc_models(sim_spec, fit_spec, config: SbcConfig) -> tuple:
    """``(sim, fit)`` checked: Gaussian Models as their specs, both general or both Gaussian, engine and distortion."""
    sim_spec, fit_spec = (m.spec if isinstance(m, Model) and m.spec is not None else m for m in (sim_spec, fit_spec))
    fit_spec = sim_spec if fit_spec is None else fit_spec
    if isinstance(sim_spec, Model) != isinstance(fit_spec, Model):
        raise BayeslinError("SBC simulates and fits with two general Models or two Gaussian specs, not one of each")
    if isinstance(fit_spec, Model):
        if config.engine != "nuts" or not config.distortion.is_identity:
            raise BayeslinError("SBC of a general model runs the NUTS engine (no exact posterior), no distortion")
    else:
        _check_specs(sim_spec, fit_spec)
        if config.engine == "exact":
            _known_sigma(fit_spec.noise)
    return sim_spec, fit_spec


def _check_specs(sim_spec: ModelSpec, fit_spec: ModelSpec) -> None:
    if sim_spec.basis != fit_spec.basis:
        raise BayeslinError(
            f"simulation basis {sim_spec.basis.name} and fit basis {fit_spec.basis.name} differ:"
            " SBC needs one parameter space"
        )


@partial(jax.jit, static_argnames=("basis", "num_ranks"))
def _exact_chunk(exact_keys, jitter, fit_prior, sigma_fit, x, y, w_true, sigma_true, phi_pred, sd_scale, shift_sd,
                 *, basis: Polynomial, num_ranks: int):
    phi = basis(x)
    post = exact.posterior(phi, y, fit_prior, sigma_fit)
    draws = exact.sample_batch(exact_keys, post, num_ranks)  # (B, L, d)
    draws = distort(draws, post.mean, post.sd, sd_scale, shift_sd)
    sigma_draws = jnp.broadcast_to(sigma_fit, draws.shape[:-1]).astype(draws.dtype)
    q_draws = evaluate_quantities(draws, sigma_draws, phi, y, phi_pred, learn_sigma=False)  # (B, L, Q)
    q_true = evaluate_quantities(w_true, sigma_true, phi, y, phi_pred, learn_sigma=False)  # (B, Q)
    rank, pit = rank_and_pit(q_true, q_draws, jitter, num_ranks)
    return rank, pit, q_true, q_draws.mean(1), q_draws.std(1, ddof=1)


@partial(jax.jit, static_argnames=("learn_sigma",))
def _nuts_quantities(w, sigma, phi, y, w_true, sigma_true, phi_pred, sd_scale, shift_sd, *, learn_sigma: bool):
    mean = w.mean(axis=(1, 2))
    sd = w.std(axis=(1, 2))
    w = distort(w, mean, sd, sd_scale, shift_sd)
    return evaluate_quantities(w, sigma, phi, y, phi_pred, learn_sigma), evaluate_quantities(
        w_true, sigma_true, phi, y, phi_pred, learn_sigma
    )


def _linear_coefficients(fit_spec: ModelSpec, config: SbcConfig, phi_pred: Array) -> np.ndarray:
    """Rows ``a`` with quantity ``= a @ w`` (weights, mean function); NaN rows for the others."""
    dim = fit_spec.basis.dim
    rows = [np.eye(dim)]
    if not fit_spec.known_sigma:
        rows.append(np.full((1, dim), np.nan))
    rows += [np.full((1, dim), np.nan), np.asarray(phi_pred, dtype=float)]
    return np.concatenate(rows)


def _ks_normal(samples: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """KS distance of ``samples: (..., N)`` from ``N(mean, sd)`` (``mean, sd: (...)``)."""
    n = samples.shape[-1]
    cdf = ndtr((np.sort(samples, axis=-1) - mean[..., None]) / sd[..., None])
    grid = np.arange(1, n + 1) / n
    return np.maximum((grid - cdf).max(-1), (cdf - (grid - 1.0 / n)).max(-1))


def sbc_chunk(indices, *, seed: int, sim_spec: ModelSpec | Model, fit_spec: ModelSpec | Model | None = None,
              config: SbcConfig = SbcConfig()) -> xr.Dataset:
    """Run SBC for the simulations ``indices`` (global), one chunk of :func:`run_sbc`.

    A general :class:`Model` goes to :func:`model_sbc_chunk`.

    Parameters
    ----------
    indices : (B,) int array
        Global simulation indices (dataset ``i`` depends only on ``(seed, i)``).
    seed : int
        The run's seed.
    sim_spec : ModelSpec or Model
        The simulation model.
    fit_spec : ModelSpec or Model, optional
        The fit model (default: ``sim_spec``).
    config : SbcConfig
        Engine, L, NUTS settings, distortion and gates.

    Returns
    -------
    xr.Dataset
        Dims ``(dataset, quantity)``. Variables: ``rank`` (int, 0..L), ``pit``, ``truth``, ``post_mean``,
        ``post_sd`` (over all draws used) and ``gate_ok`` (dataset). NUTS adds ``rhat``, ``ess_bulk``,
        ``ess_tail``, ``divergences`` and, when the fit has known noise, the comparison with the exact
        posterior: ``exact_mean``, ``exact_sd``, ``mcse`` and ``ks`` (NaN for non-linear quantities).

    Raises
    ------
    BayeslinError
        The specs do not fit together (different bases; a general Model with a Gaussian spec) or the
        engine cannot fit them (the exact engine with learnt noise; a general Model with the exact
        engine or a distortion).
    """
    if isinstance(sim_spec, Model) and sim_spec.spec is None:
        # a Gaussian fit spec is refused there (one general Model and one Gaussian spec)
        return model_sbc_chunk(indices, seed=seed, model=sim_spec, fit_model=cast("Model | None", fit_spec),
                               config=config)
    # the Gaussian path: _sbc_models turns Models of a spec into specs and refuses a general fit Model
    sim_spec, fit_spec = cast("tuple[ModelSpec, ModelSpec]", _sbc_models(sim_spec, fit_spec, config))
    indices = np.asarray(indices, dtype=np.int64)
    num_datasets = len(indices)
    if config.engine == "exact":  # pad to a bucket size so that few shapes get compiled; sliced off below
        indices = np.concatenate([indices, np.full(_bucket(num_datasets) - num_datasets, indices[-1])])
    names = quantity_names(fit_spec, config)
    num_q, num_ranks = len(names), config.num_ranks
    scale, shift = (jnp.asarray(v, dtype=jnp.float32) for v in (config.distortion.sd_scale,
                                                                config.distortion.shift_sd))
    data = simulate.prior_data(seed, indices, sim_spec, config.points_for(), config.x_scale)
    phi_pred = fit_spec.basis(jnp.asarray(config.predict_at, dtype=data.x.dtype) * config.x_scale)
    jitter = _jitter(seed, indices, num_q)
    idx32 = jnp.asarray(indices, dtype=jnp.uint32)
    if config.engine == "exact":
        sigma_fit = _known_sigma(fit_spec.noise)
        rank, pit, truth, post_mean, post_sd = _exact_chunk(
            keyring.dataset_keys(seed, keyring.EXACT, idx32), jitter, fit_spec.prior, sigma_fit,
            data.x, data.y, data.w, data.sigma, phi_pred, scale, shift,
            basis=fit_spec.basis, num_ranks=num_ranks,
        )
        keep = slice(0, num_datasets)
        return chunk_dataset(indices[keep], names, rank[keep], pit[keep], truth[keep], post_mean[keep], post_sd[keep])
    phi = fit_spec.basis(data.x)
    result = reparam.sampler_for(fit_spec)(seed, phi, data.y, fit_spec.prior, fit_spec.noise, config.nuts,
                                           dataset_indices=idx32, draw_stats=False)
    w = result.samples["w"]
    learn_sigma = not fit_spec.known_sigma
    sigma = (result.samples["sigma"] if learn_sigma
             else jnp.broadcast_to(cast(KnownNoise, fit_spec.noise).sigma, w.shape[:-1]))
    q_draws, truth = _nuts_quantities(w, sigma.astype(w.dtype), phi, data.y, data.w, data.sigma, phi_pred,
                                      scale, shift, learn_sigma=learn_sigma)
    compare = None
    if fit_spec.known_sigma:
        def compare(flat, diag):
            return _compare_exact(flat, diag["mcse_mean"], phi, data.y, fit_spec, config, phi_pred)
    return ranked_nuts_chunk(indices, names, jnp.moveaxis(q_draws, -1, 1), truth, result.stats["divergences"],
                             jitter, config, compare)


def chunk_dataset(indices, names, rank, pit, truth, post_mean, post_sd, gate_ok=None,
                  extra: dict | None = None) -> xr.Dataset:
    """One chunk's SBC results as an ``xr.Dataset`` over ``(dataset, quantity)`` (every SBC path writes this).

    Parameters
    ----------
    indices : (B,) int array
        Global simulation indices (the ``dataset`` coordinate).
    names : sequence of str
        The Q quantity names (the ``quantity`` coordinate).
    rank, pit, truth, post_mean, post_sd : (B, Q) array
        Ranks in ``0..L``, PITs, the truth's quantities and the posterior mean and sd of each.
    gate_ok : (B,) bool array, optional
        The convergence gate per simulation (None: all pass).
    extra : dict, optional
        More variables, ``{name: (dims, values)}``.

    Returns
    -------
    xr.Dataset
        ``rank`` (int32), ``pit``, ``truth``, ``post_mean``, ``post_sd`` (float64), ``gate_ok`` and ``extra``.
    """
    dims = ("dataset", "quantity")
    out = dict(extra or {})
    out.update(
        rank=(dims, np.asarray(rank, dtype=np.int32)),
        pit=(dims, np.asarray(pit, dtype=np.float64)),
        truth=(dims, np.asarray(truth, dtype=np.float64)),
        post_mean=(dims, np.asarray(post_mean, dtype=np.float64)),
        post_sd=(dims, np.asarray(post_sd, dtype=np.float64)),
        gate_ok=(("dataset",), np.ones(len(indices), dtype=bool) if gate_ok is None else np.asarray(gate_ok, bool)),
    )
    return xr.Dataset(out, coords={"dataset": np.asarray(indices), "quantity": list(names)})


def ranked_nuts_chunk(indices, names, q_draws: Array, truth: Array | np.ndarray, chain_divergences: Array,
                      jitter: Array, config: SbcConfig, compare=None) -> xr.Dataset:
    """Gate, rank and summarise NUTS draws of the test quantities, for the Gaussian and any other model.

    Parameters
    ----------
    indices : (B,) int array
        Global simulation indices.
    names : sequence of str
        The Q quantity names.
    q_draws : (B, Q, C, S) array
        The quantities of the draws (on the device; only the summaries and ranks come to the host).
    truth : (B, Q) array
        The quantities of the truth.
    chain_divergences : (B, C) array
        Divergent transitions per chain.
    jitter : (B, Q) array
        Uniform tie-breaks.
    config : SbcConfig
        L and the gate's thresholds.
    compare : callable, optional
        ``compare(flat, diag) -> {name: (dims, values)}``: extra variables from the draws ``(B, Q, C*S)``
        and their diagnostics (the exact-posterior comparison of the Gaussian model).

    Returns
    -------
    xr.Dataset
        :func:`chunk_dataset`'s variables plus ``rhat``, ``ess_bulk``, ``ess_tail`` ``(dataset, quantity)``
        and ``divergences`` ``(dataset,)``.
    """
    diag, divergences, gate_ok, flat, rank, pit = gate_and_rank(q_draws, truth, chain_divergences, jitter, config)
    extra: dict[str, tuple[tuple[str, ...], Any]] = {
        k: (("dataset", "quantity"), diag[k].astype(np.float32)) for k in ("rhat", "ess_bulk", "ess_tail")}
    extra["divergences"] = (("dataset",), divergences.astype(np.int32))
    if compare is not None:
        extra.update(compare(flat, diag))
    return chunk_dataset(indices, names, rank, pit, truth, diag["mean"], diag["sd"], gate_ok, extra)


def convergence_gate(draws: Array, chain_divergences: Array | np.ndarray, *, num_ranks: int, rhat_max: float,
                     max_divergences: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """SBC's convergence gate of each simulation.

    The diagnostics are computed on the draws' device (:func:`~bayeslin_jax.diagnostics.device.summarize_rows`,
    ArviZ's definitions). A simulation passes with R-hat <= ``rhat_max``, min(bulk, tail ESS) >= ``num_ranks``
    (L) on every one of the ``P`` quantities and at most ``max_divergences`` divergent transitions.

    Parameters
    ----------
    draws : (B, P, C, S) array
        P quantities, C chains of S draws, for each of B simulations.
    chain_divergences : (B, C) array
        Divergent transitions per chain.
    num_ranks : int
        L, the ESS each quantity needs.
    rhat_max : float
        The largest R-hat that passes.
    max_divergences : int
        The most divergent transitions that pass.

    Returns
    -------
    diag : dict of (B, P) arrays
        The diagnostics (float64 on the host).
    divergences : (B,) array
        Divergent transitions per simulation.
    gate_ok : (B,) bool array
        Whether the simulation passes.
    """
    diag = {k: np.asarray(v, dtype=np.float64) for k, v in summarize_rows(draws).items()}
    divergences = np.asarray(chain_divergences).sum(axis=1)
    ess_min = np.minimum(diag["ess_bulk"], diag["ess_tail"]).min(-1)
    gate_ok = (
        (np.nan_to_num(diag["rhat"], nan=np.inf).max(-1) <= rhat_max)
        & (np.nan_to_num(ess_min, nan=0.0) >= num_ranks)
        & (divergences <= max_divergences)
    )
    return diag, divergences, gate_ok


def gate_and_rank(q_draws: Array, truth: Array | np.ndarray, chain_divergences: Array | np.ndarray, jitter: Array,
                  config: SbcConfig):
    """The convergence gate and the ranks of NUTS draws of the test quantities (any model).

    Parameters
    ----------
    q_draws : (B, Q, C, S) array
        The quantities of the draws.
    truth : (B, Q) array
        The quantities of the truth.
    chain_divergences : (B, C) array
        The engine's ``draw_stats=False`` summary ``divergences``.
    jitter : (B, Q) array
        Uniform tie-breaks.
    config : SbcConfig
        L and the gate's thresholds.

    Returns
    -------
    tuple
        ``(diag, divergences, gate_ok, flat, rank, pit)``: :func:`convergence_gate`'s diagnostics of each
        quantity ``(B, Q)``, divergences ``(B,)`` and gate ``(B,)``, the draws ``(B, Q, C*S)`` chain-major, and
        rank and PIT ``(B, Q)`` among ``L`` evenly thinned draws.

    Raises
    ------
    BayeslinError
        ``chain_divergences`` is not ``(B, C)`` (e.g. per-draw flags).
    """
    num_ranks = config.num_ranks
    chain_divergences = np.asarray(chain_divergences)
    if chain_divergences.shape != q_draws.shape[:1] + q_draws.shape[2:3]:  # per-draw flags would reduce wrongly
        raise BayeslinError(f"gate_and_rank: chain_divergences must be (B, C) = {(q_draws.shape[0], q_draws.shape[2])},"
                            f" got {chain_divergences.shape}")
    diag, divergences, gate_ok = convergence_gate(q_draws, chain_divergences, num_ranks=num_ranks,
                                                  rhat_max=config.rhat_max, max_divergences=config.max_divergences)
    flat = jnp.reshape(q_draws, (*q_draws.shape[:2], -1))  # (B, Q, C*S), chain-major, where the draws are
    thinned = jnp.moveaxis(flat[..., thin_positions(flat.shape[-1], num_ranks)], 1, 2)  # (B, L, Q)
    rank, pit = jax.jit(rank_and_pit, static_argnames="num_ranks")(truth, thinned, jitter, num_ranks=num_ranks)
    return diag, divergences, gate_ok, flat, rank, pit


def _compare_exact(flat: Array | np.ndarray, mcse: np.ndarray, phi: Array, y: Array, fit_spec: ModelSpec,
                   config: SbcConfig, phi_pred: Array) -> dict[str, tuple]:
    """NUTS draws vs the exact posterior, for the quantities linear in ``w``.

    ``flat: (B, Q, C*S)`` draws, ``mcse: (B, Q)`` their MCSE of the mean.
    """
    flat = np.asarray(flat)  # the KS distances run on the host
    post = exact.posterior(phi, y, fit_spec.prior, cast(KnownNoise, fit_spec.noise).sigma)  # known noise only
    coef = _linear_coefficients(fit_spec, config, phi_pred)  # (Q, d)
    linear = ~np.isnan(coef).any(-1)
    a = np.where(linear[:, None], coef, 0.0)
    mean = np.einsum("qd,bd->bq", a, np.asarray(post.mean, dtype=float))
    sd = np.sqrt(np.einsum("qd,bde,qe->bq", a, np.asarray(post.cov, dtype=float), a))
    mean[:, ~linear], sd[:, ~linear] = np.nan, np.nan
    num_b, num_q = flat.shape[:2]
    ks = np.full((num_b, num_q), np.nan)
    ks[:, linear] = _ks_normal(flat[:, linear].astype(float), mean[:, linear], sd[:, linear])
    dims = ("dataset", "quantity")
    return {"exact_mean": (dims, mean), "exact_sd": (dims, sd), "mcse": (dims, mcse), "ks": (dims, ks)}


# ---------------------------------------------------------------------------------------------
# Many chunks
# ---------------------------------------------------------------------------------------------


def default_chunk_size(config: SbcConfig) -> int:
    """Simulations per chunk: large for the exact engine, a few minutes of CPU NUTS otherwise.

    Parameters
    ----------
    config : SbcConfig
        Its engine decides.

    Returns
    -------
    int
        10000 for the exact engine; for NUTS 200 on CPU, 1000 on an accelerator.
    """
    if config.engine == "exact":
        return 10_000
    return 1000 if jax.default_backend() != "cpu" else 200


SBC_KIND = "sbc"


def store_meta(seed: int, sim_spec: ModelSpec | Model, fit_spec: ModelSpec | Model, config: SbcConfig) -> dict:
    """Identity of an SBC run (what a resumed store must match).

    Parameters
    ----------
    seed : int
        The run's seed.
    sim_spec, fit_spec : ModelSpec or Model
        The simulation and fit models.
    config : SbcConfig
        The run's settings.

    Returns
    -------
    dict
        ``kind``, ``seed``, both models' and the config's descriptions, ``x64`` and the package versions; a
        general model's also names its DAP quantities (``dap_quantities``).
    """
    meta = {
        "kind": SBC_KIND,
        "seed": int(seed),
        "sim_spec": sim_spec.describe(),
        "fit_spec": fit_spec.describe(),
        "config": config.describe(),
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions(),
    }
    if isinstance(fit_spec, Model):
        meta["dap_quantities"] = list(fit_spec.feature_names if fit_spec.dap_quantities is None
                                      else fit_spec.dap_quantities)
    return meta


def run_sbc(
    num_simulations: int,
    *,
    seed: int = 0,
    sim_spec: ModelSpec | Model,
    fit_spec: ModelSpec | Model | None = None,
    config: SbcConfig = SbcConfig(),
    chunk_size: int | None = None,
    store: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """SBC over simulations ``0, ..., num_simulations - 1``.

    Parameters
    ----------
    num_simulations : int
        N, the number of simulated datasets (at most 2^32).
    seed : int
        Seeds everything: dataset ``i`` depends only on ``(seed, i)``, so chunking and resuming change nothing.
    sim_spec : ModelSpec or Model
        The simulation model: the Gaussian regression (a :class:`ModelSpec`, or the :class:`Model` of
        :func:`~bayeslin_jax.core.model.linear`), which has the exact engine and the distortions; any other
        :class:`Model` (a user's NumPyro model) is fitted by NUTS, every element of its SBC sites and
        ``loglik`` ranked (:func:`model_sbc_chunk`).
    fit_spec : ModelSpec or Model, optional
        The fit model (default: ``sim_spec``); it may differ (e.g. a wrong prior, to show the checks have
        power), but not in its basis.
    config : SbcConfig
        Engine, L, NUTS settings, distortion and convergence gates.
    chunk_size : int, optional
        Simulations per chunk (default :func:`default_chunk_size`).
    store : str or Path, optional
        A resumable zarr store: the chunks go through :func:`bayeslin_jax.workflows.store.run_chunked`
        (rerunning after an interruption computes only the missing chunks). Without, they are computed
        in memory.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    xr.Dataset
        The per-simulation dataset of :func:`sbc_chunk` (loaded), dims ``(dataset, quantity)``, with attrs
        ``meta`` (JSON of :func:`store_meta`). Feed it to :func:`~bayeslin_jax.workflows.sbc.stats.summarize`.

    Raises
    ------
    BayeslinError
        Invalid counts or seed; models that do not fit together or an engine that cannot fit them
        (:func:`sbc_chunk`); a chunk that would not fit in memory; a general model without an observed
        site; a ``store`` written with different settings.
    StoreError
        A damaged or locked ``store``.

    Examples
    --------
    A quick SBC of the tutorial model with exact conjugate draws, then with deliberately
    over-confident draws (sd halved), which the checks reject:

    >>> import bayeslin_jax as bl
    >>> from dataclasses import replace
    >>> from bayeslin_jax.workflows.sbc import Distortion, summarize
    >>> spec = bl.tutorial_spec()
    >>> config = bl.SbcConfig(engine="exact", num_ranks=19)
    >>> ds = bl.run_sbc(100, seed=1, sim_spec=spec, config=config)
    >>> dict(ds.sizes)
    {'dataset': 100, 'quantity': 6}
    >>> [str(q) for q in ds["quantity"].values]
    ['b', 'm', 'loglik', 'mu(x=-1)', 'mu(x=0.5)', 'mu(x=1.5)']
    >>> bool(ds["rank"].min() >= 0), bool(ds["rank"].max() <= 19)
    (True, True)
    >>> summarize(ds).passed
    True
    >>> broken = replace(config, distortion=Distortion(sd_scale=0.5))
    >>> summarize(bl.run_sbc(100, seed=1, sim_spec=spec, config=broken)).verdict
    'fail'
    """
    sim_spec, fit_spec = _sbc_models(sim_spec, fit_spec, config)
    config = replace(config, num_points=config.points_for(sim_spec if isinstance(sim_spec, Model) else None))
    validation.integer("number of simulations", num_simulations)
    validation.check_seed(seed)
    if num_simulations > 2**32:
        raise BayeslinError(f"at most 2^32 simulations (indices key the randomness), got {num_simulations}")
    chunk_size = default_chunk_size(config) if chunk_size is None else chunk_size
    validation.integer("chunk size", chunk_size)
    if store is not None:
        from bayeslin_jax.workflows.studies.run import check_study_memory

        params = 8 if isinstance(fit_spec, Model) else fit_spec.basis.dim + (0 if fit_spec.known_sigma else 1)
        nuts = config.nuts if config.engine == "nuts" else replace(config.nuts, num_chains=1,
                                                                    num_draws=config.num_ranks)
        check_study_memory(int(num_simulations), min(int(chunk_size), int(num_simulations)), nuts, params, False,
                           what="simulations")
    meta = store_meta(seed, sim_spec, fit_spec, config)

    def compute(indices: np.ndarray) -> xr.Dataset:
        """One chunk: :func:`sbc_chunk` of ``indices``.

        Parameters
        ----------
        indices : (B,) int array
            Global simulation indices.

        Returns
        -------
        xr.Dataset
            The chunk's results.

        Raises
        ------
        BayeslinError
            The simulation model has no observed site.
        """
        try:
            return sbc_chunk(indices, seed=seed, sim_spec=sim_spec, fit_spec=fit_spec, config=config)
        except KeyError as err:  # simulating a model whose prior trace lacks its observed site
            if isinstance(sim_spec, Model) and err.args[:1] == (sim_spec.obs,):
                raise BayeslinError(f"model {sim_spec.name!r} has no observed site {sim_spec.obs!r} "
                                    "(numpyro.sample(..., obs=y))") from None
            raise

    return run_chunks(compute, int(num_simulations), int(chunk_size), meta=meta, store=store, progress=progress)


def run_chunks(compute, num_simulations: int, chunk_size: int, *, meta: dict, store: str | Path | None = None,
               progress: bool = False) -> xr.Dataset:
    """``compute(indices)`` over simulations ``0, ..., num_simulations - 1`` in chunks.

    Parameters
    ----------
    compute : callable
        ``compute(indices: (B,) int64 array) -> xr.Dataset`` over ``(dataset, ...)``.
    num_simulations : int
        N.
    chunk_size : int
        Simulations per chunk.
    meta : dict
        The run's identity (a resumed store must match it).
    store : str or Path, optional
        Through the resumable store (:func:`bayeslin_jax.workflows.store.run_chunked`) when given, else in
        memory.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    xr.Dataset
        The concatenated dataset (loaded) with attrs ``meta`` (JSON).
    """
    if store is not None:
        ds = run_chunked(store, meta=meta, num_items=num_simulations, chunk_size=chunk_size,
                         compute=compute, progress=progress, desc="simulations").load()
    else:
        parts = []
        with tqdm(total=num_simulations, desc="simulations", disable=not progress) as bar:
            for start in range(0, num_simulations, chunk_size):
                stop = min(start + chunk_size, num_simulations)
                parts.append(compute(np.arange(start, stop, dtype=np.int64)))
                bar.update(stop - start)
        ds = xr.concat(parts, dim="dataset") if len(parts) > 1 else parts[0]
    ds.attrs["meta"] = json.dumps(meta)
    return ds


def open_sbc(path: str | Path) -> xr.Dataset:
    """Open an SBC store written by :func:`run_sbc` (every chunk verified; loaded).

    Parameters
    ----------
    path : str or Path
        The store's directory.

    Returns
    -------
    xr.Dataset
        The per-simulation dataset, as :func:`run_sbc` returned it, with attrs ``meta`` (JSON).

    Raises
    ------
    StoreError
        A damaged chunk (named in the message).
    BayeslinError
        An incomplete store, or one that is not an SBC store.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import bayeslin_jax as bl
    >>> config = bl.SbcConfig(engine="exact", num_ranks=19)
    >>> path = Path(tempfile.mkdtemp()) / "sbc"
    >>> ds = bl.run_sbc(100, seed=1, sim_spec=bl.tutorial_spec(), config=config, store=path)
    >>> back = bl.open_sbc(path)
    >>> dict(back.sizes)
    {'dataset': 100, 'quantity': 6}
    >>> bool((back["rank"] == ds["rank"]).all())
    True
    >>> import json
    >>> json.loads(back.attrs["meta"])["config"]["engine"]
    'exact'
    """
    meta = read_identity(path).get("meta", {})
    if meta.get("kind") != SBC_KIND:
        raise BayeslinError(f"{path} is not an SBC store (kind {meta.get('kind')!r})")
    ds = open_store(path).load()
    ds.attrs["meta"] = json.dumps(meta)
    return ds


def _sbc_sites(model: Model, sites: ModelSites) -> tuple[str, ...]:
    chosen = sites.kept if model.quantities is None else model.quantities
    missing = [s for s in chosen if s not in sites.kept]
    if missing:
        raise BayeslinError(f"SBC quantity site(s) {missing} are not sites of model {model.name!r}")
    return tuple(chosen)


def model_quantity_names(model: Model, sites: ModelSites) -> list[str]:
    """Names of the test quantities: every element of the SBC sites, then ``loglik``.

    Parameters
    ----------
    model : Model
        The fit model (its ``quantities``, else every kept site; its feature names).
    sites : ModelSites
        The model's sites (:func:`~bayeslin_jax.engine.sampling.inspect_model`).

    Returns
    -------
    list of str
        ``site`` for scalars, the feature names for the feature site, ``site[i,j]`` for other elements.

    Raises
    ------
    BayeslinError
        A quantity names a site the model does not have.
    """
    shapes = dict(zip(sites.kept, sites.shapes, strict=True))
    names: list[str] = []
    for site in _sbc_sites(model, sites):
        shape = shapes[site]
        if site == model.feature_site and len(shape) == 1 and len(model.feature_names) == shape[0]:
            names += list(model.feature_names)
        elif not shape:
            names.append(site)
        else:
            names += [f"{site}[{','.join(map(str, k))}]" for k in np.ndindex(*shape)]
    return [*names, "loglik"]


def _quantities(model: Model, sites: ModelSites, values: dict[str, Array], x: Array, y: Array) -> Array:
    """``values[site]: (B, C, S, ...)`` -> ``(B, C, S, Q)`` in :func:`model_quantity_names` order."""
    batch = values[sites.latent[0][0]].shape[:3]
    parts = [jnp.reshape(values[s], (*batch, -1)).astype(jnp.float32) for s in _sbc_sites(model, sites)]
    latent = tuple(name for name, _ in sites.latent)
    loglik = pointwise_log_likelihood(model, values, x, y, latent).sum(-1)
    return jnp.concatenate([*parts, loglik[..., None]], axis=-1)


def model_sbc_chunk(indices, *, seed: int, model: Model, fit_model: Model | None = None,
                    config: SbcConfig | None = None) -> xr.Dataset:
    """SBC of a general model (fitted by NUTS) for the simulations ``indices``.

    Parameters
    ----------
    indices : (B,) int array
        Global simulation indices.
    seed : int
        The run's seed.
    model : Model
        The simulation model (its prior trace draws the truth and the data).
    fit_model : Model, optional
        The fit model (default: ``model``).
    config : SbcConfig, optional
        NUTS settings, L and the gates (default ``SbcConfig()``).

    Returns
    -------
    xr.Dataset
        Dims ``(dataset, quantity)``. Variables: ``rank`` (0..L), ``pit``, ``truth``, ``post_mean``, ``post_sd``,
        ``rhat``, ``ess_bulk``, ``ess_tail``, ``divergences`` (dataset) and ``gate_ok`` (dataset), as
        :func:`sbc_chunk`.

    Raises
    ------
    BayeslinError
        The models do not fit together, or the simulation draws no truth for a latent site of the fit model.
    """
    config = SbcConfig() if config is None else config
    model, fit = _sbc_models(model, fit_model, config)  # the checks of run_sbc and sbc_chunk
    indices = np.asarray(indices, dtype=np.int64)
    data = simulate_model(seed, indices, model, config.points_for(model), config.x_scale)
    inputs = fit.design(data.x)
    sites = inspect_model(fit, inputs, data.y)
    missing = [name for name, _ in sites.latent if name not in data.truth]
    if missing:
        raise BayeslinError(f"the simulation model draws no truth for the fit model's latent site(s) {missing}")
    names = model_quantity_names(fit, sites)
    idx32 = jnp.asarray(indices, dtype=jnp.uint32)
    result = sample_model(seed, inputs, data.y, fit, config.nuts, dataset_indices=idx32, sites=sites,
                          draw_stats=False)
    q_draws = jnp.moveaxis(_quantities(fit, sites, result.samples, inputs, data.y), -1, 1)  # (B, Q, C, S), device
    truth_values = {k: v[:, None, None] for k, v in data.truth.items() if k in sites.kept}
    truth = np.asarray(_quantities(fit, sites, truth_values, inputs, data.y))[:, 0, 0]  # (B, Q)
    return ranked_nuts_chunk(indices, names, q_draws, truth, result.stats["divergences"],
                             _jitter(seed, indices, len(names)), config)


__all__ = [
    "ENGINES",
    "Distortion",
    "SbcConfig",
    "chunk_dataset",
    "default_chunk_size",
    "distort",
    "evaluate_quantities",
    "model_quantity_names",
    "model_sbc_chunk",
    "open_sbc",
    "quantity_names",
    "rank_and_pit",
    "ranked_nuts_chunk",
    "run_chunks",
    "run_sbc",
    "sbc_chunk",
    "store_meta",
    "thin_positions",
    "with_prior_scale",
]
