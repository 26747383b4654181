"""SBC test quantities: functions of (parameters, data) ranked between the truth and the draws.

A test quantity is a callable ``f(params, data) -> scalar`` for ONE draw of ONE dataset:
``params`` is a dict of parameter values (``{"w": (d,), "sigma": ()}`` for the linear model) and
``data`` one dataset (a :class:`bayeslin_jax.core.simulate.SimulatedData` row: ``x, y: (n,)``,
``w: (d,)``, ``sigma: ()``). It must be written with ``jax.numpy`` (it is traced once and
``jax.vmap``-ed over draws and datasets). It is evaluated on the truth and on every posterior
draw; under calibration the truth's rank among the draws is uniform for *any* such function
(Talts et al. 2018), so each one is a test.

Why more than the parameters (Modrák et al. 2023, "Simulation-based calibration checking for
Bayesian computation: the choice of test quantities shapes sensitivity"): a sampler can have
exactly right marginals and still be wrong, e.g. ignore the posterior correlation between the
weights, or ignore part of the data (a posterior given half the data is still a calibrated
posterior for every parameter's marginal!). Quantities that see the joint posterior or the data
catch these. The defaults (:func:`default_quantities`):

* each weight ``w_k`` and ``sigma`` (if learnt): the marginals;
* ``loglik``: ``log p(y | w, sigma)`` of the simulated data (depends on the data and on all
  parameters jointly);
* ``log_joint``: ``log p(w, sigma) + log p(y | w, sigma)``, the unnormalised log posterior
  density (Modrák et al.'s recommended joint quantity);
* ``proj1, proj2, ...``: ``u_j . w`` for fixed unit directions ``u_j`` drawn once from a seeded
  normal (random projections; linear in ``w``, so their data-averaged-posterior tests count too);
* optionally the mean function ``mu(x=...)`` at given x (the built-in runner's quantities).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import KnownNoise, ModelSpec
from bayeslin_jax.workflows.sbc.run import _bucket

PROJECTION_SEED = 20230  # the default random projections' directions (fixed: part of the quantity's definition)


@dataclass(frozen=True)
class Quantity:  # numpydoc ignore=PR02
    """A named test quantity: ``fn(params, data) -> scalar`` for one draw of one dataset.

    Parameters
    ----------
    name : str
        The quantity's name (unique within a run).
    fn : callable
        ``fn(params, data) -> scalar``, written with ``jax.numpy`` (see the module docstring).
    linear : bool
        The quantity is linear in the parameters (then its data-averaged-posterior tests join the
        verdict family; for non-linear ones they are reported only, because their moment statistics
        are heavy-tailed).
    definition : str
        Human-readable; goes into store metadata (default: the function's qualified name).
    """

    name: str
    fn: Callable
    linear: bool = False
    definition: str = ""

    def describe(self) -> dict:
        """The quantity's identity (store metadata).

        Returns
        -------
        dict
            ``name``, ``linear`` and ``definition``.
        """
        func = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return {"name": self.name, "linear": self.linear,
                "definition": self.definition or f"{getattr(self.fn, '__module__', '?')}.{func}"}


def _loglik(spec: ModelSpec):
    basis = spec.basis

    def loglik(params, data):
        mu = basis(data.x) @ params["w"]
        sigma = params["sigma"]
        return jnp.sum(-0.5 * ((data.y - mu) / sigma) ** 2 - jnp.log(sigma) - 0.5 * jnp.log(2.0 * jnp.pi))

    return loglik


def _component(k: int):
    return lambda p, d: p["w"][k]


def projection_directions(dim: int, num: int, seed: int = PROJECTION_SEED) -> np.ndarray:
    """Unit vectors from a seeded standard normal (fixed, reproducible).

    Parameters
    ----------
    dim : int
        Their dimension (the number of weights).
    num : int
        How many.
    seed : int
        The generator's seed (part of the quantities' definition).

    Returns
    -------
    (num, dim) array
        The directions, one per row.
    """
    u = np.random.default_rng(seed).standard_normal((num, dim))
    return u / np.linalg.norm(u, axis=-1, keepdims=True)


def default_quantities(spec: ModelSpec, *, joint: bool = True, num_projections: int = 2,
                       predict_at: Sequence[float] = (), projection_seed: int = PROJECTION_SEED) -> list[Quantity]:
    """The default test quantities of the linear model ``spec`` (see the module docstring).

    ``joint=False, num_projections=0, predict_at=...`` gives the quantities of the built-in runner
    :func:`bayeslin_jax.workflows.sbc.run_sbc` (same names and order). The same spec and options give
    the same (cached) objects, so their compiled evaluation is reused.

    Parameters
    ----------
    spec : ModelSpec
        The model (its basis, prior and noise).
    joint : bool
        Include ``log_joint``, the unnormalised log posterior density.
    num_projections : int
        Random projections ``proj1..`` of the weights (``d >= 2`` only).
    predict_at : sequence of float
        x values where the mean function ``mu(x=...)`` is a quantity.
    projection_seed : int
        Seed of the projections' directions (:func:`projection_directions`).

    Returns
    -------
    list of Quantity
        In order: weights, [sigma], ``loglik``, [``log_joint``], ``proj1..``, ``mu(x=...)``.

    Raises
    ------
    BayeslinError
        ``num_projections < 0``.
    """
    leaves = tuple(np.asarray(leaf).tobytes() for leaf in jax.tree.leaves((spec.prior, spec.noise)))
    key = (spec.basis, type(spec.prior), type(spec.noise), leaves, joint, num_projections,
           tuple(float(v) for v in predict_at), projection_seed)
    if key not in _DEFAULTS:
        _DEFAULTS[key] = _default_quantities(spec, joint, num_projections, predict_at, projection_seed)
    return list(_DEFAULTS[key])


_DEFAULTS: dict[tuple, tuple[Quantity, ...]] = {}


def _default_quantities(spec: ModelSpec, joint: bool, num_projections: int, predict_at: Sequence[float],
                        projection_seed: int) -> tuple[Quantity, ...]:
    if num_projections < 0:
        raise BayeslinError(f"number of random projections must be >= 0, got {num_projections}")
    names = spec.feature_names
    out = [Quantity(name, _component(k), linear=True, definition=f"w[{k}]") for k, name in enumerate(names)]
    if not spec.known_sigma:
        out.append(Quantity("sigma", lambda p, d: p["sigma"], definition="sigma"))
    loglik = _loglik(spec)
    out.append(Quantity("loglik", loglik, definition="log p(y | w, sigma)"))
    if joint:
        prior, noise = spec.prior, spec.noise

        def log_joint(p, d):
            lp = prior.distribution().log_prob(p["w"]) + loglik(p, d)
            if not isinstance(noise, KnownNoise):
                lp = lp + noise.distribution().log_prob(p["sigma"])
            return lp

        out.append(Quantity("log_joint", log_joint, definition="log p(w, sigma) + log p(y | w, sigma)"))
    dim = spec.basis.dim
    if dim >= 2 and num_projections:
        for j, u in enumerate(projection_directions(dim, num_projections, projection_seed), start=1):
            coef = jnp.asarray(u, dtype=jnp.float32)
            out.append(Quantity(f"proj{j}", (lambda c: lambda p, d: c @ p["w"])(coef), linear=True,
                                definition=f"u . w, u = {np.round(u, 4).tolist()}"))
    for v in predict_at:
        row = spec.basis(jnp.asarray([float(v)], dtype=jnp.float32))[0]
        out.append(Quantity(f"mu(x={float(v):g})", (lambda r: lambda p, d: r @ p["w"])(row), linear=True,
                            definition=f"phi({float(v):g}) . w"))
    return tuple(out)


def as_quantities(quantities, spec: ModelSpec | None) -> tuple[Quantity, ...]:
    """Normalise user input to a tuple of :class:`Quantity`.

    Parameters
    ----------
    quantities : None, mapping or sequence
        None (the defaults of ``spec``), a mapping ``name -> callable`` (or :class:`Quantity`), or a
        sequence of :class:`Quantity` / named callables. Names must be unique.
    spec : ModelSpec or None
        The model whose defaults None stands for.

    Returns
    -------
    tuple of Quantity
        The test quantities.

    Raises
    ------
    BayeslinError
        None without a spec, an entry that is not callable, no quantities, or repeated names.
    """
    if quantities is None:
        if spec is None:
            raise BayeslinError("the default test quantities need a model spec: pass spec= or quantities=")
        out = default_quantities(spec)
    elif isinstance(quantities, Mapping):
        out = [q if isinstance(q, Quantity) else Quantity(str(name), q) for name, q in quantities.items()]
    else:
        out = []
        for q in quantities:
            if isinstance(q, Quantity):
                out.append(q)
            elif callable(q):
                out.append(Quantity(getattr(q, "__name__", f"q{len(out)}"), q))
            else:
                raise BayeslinError(
                    f"a test quantity must be a callable (params, data) -> scalar, got {type(q).__name__}")
    if not out:
        raise BayeslinError("need at least one test quantity")
    names = [q.name for q in out]
    if len(set(names)) != len(names):
        raise BayeslinError(f"test quantity names must be unique, got {names}")
    for q in out:
        if not callable(q.fn):
            raise BayeslinError(f"test quantity {q.name!r} is not callable")
    return tuple(out)


@lru_cache(maxsize=32)
def _compiled(quantities: tuple[Quantity, ...]):
    def stacked(params, data):
        values = []
        for q in quantities:
            value = jnp.asarray(q.fn(params, data))
            if value.shape != ():
                raise BayeslinError(f"test quantity {q.name!r} must return a scalar per draw, got shape {value.shape}")
            values.append(value.astype(jnp.result_type(float)))
        return jnp.stack(values)

    per_draws = jax.vmap(jax.vmap(stacked, in_axes=(0, None)), in_axes=(0, 0))  # (B, S, ...) x (B, ...)

    @jax.jit
    def evaluate(draws, truth, data):
        return per_draws(draws, data), jax.vmap(stacked)(truth, data)

    return evaluate


def evaluate(quantities: tuple[Quantity, ...], draws: Mapping[str, Array], truth: Mapping[str, Array],
             data) -> tuple[Array, Array]:
    """All quantities on every draw and on the truth.

    Parameters
    ----------
    quantities : tuple of Quantity
        The Q test quantities.
    draws : dict of (B, S, ...) arrays
        ``{param: draws}``.
    truth : dict of (B, ...) arrays
        ``{param: true value}``.
    data : SimulatedData
        A batch of datasets (leading axis B).

    Returns
    -------
    q_draws : (B, S, Q) array
        The quantities of every draw.
    q_true : (B, Q) array
        The quantities of the truth.

    Raises
    ------
    BayeslinError
        A quantity that does not return a scalar per draw.
    """
    num = data.x.shape[0]
    padded = _bucket(num)  # few batch shapes get compiled; padding rows repeat the last dataset

    def pad(a):
        """Repeat the last row up to the padded batch size.

        Parameters
        ----------
        a : (B, ...) array
            One leaf of the inputs.

        Returns
        -------
        (padded, ...) array
            ``a`` padded.
        """
        a = jnp.asarray(a)
        return jnp.concatenate([a, jnp.repeat(a[-1:], padded - num, axis=0)]) if padded > num else a

    q_draws, q_true = _compiled(tuple(quantities))(*jax.tree.map(pad, (dict(draws), dict(truth), data)))
    return q_draws[:num], q_true[:num]



__all__ = ["PROJECTION_SEED", "Quantity", "as_quantities", "default_quantities", "evaluate", "projection_directions"]
