"""SBC of any sampler: the user-sampler contract, adapters, and the chunked, resumable runner.

.. rubric:: The contract

A *sampler* is a callable::

    sampler(keys, data, num_draws) -> {param: draws}      # or a SamplerResult

* ``keys: (B,)`` JAX PRNG keys, one per dataset; dataset ``i``'s key depends only on
  ``(seed, i)`` (it is ``keys.dataset_keys(seed, keys.INFER, i)``), so a sampler that uses
  ``keys[b]`` for dataset ``b`` gives the same draws whatever the chunking, and a resumed run
  equals an uninterrupted one.
* ``data``: a batch of B simulated datasets, :class:`bayeslin_jax.core.simulate.SimulatedData`
  (``x, y: (B, n)``; also the truth ``w: (B, d)``, ``sigma: (B,)``, which a sampler must of
  course not look at).
* ``num_draws``: L, the number of draws the truth is ranked among. Return at least L draws per
  dataset: ``{"w": (B, S, d)}`` (plus ``"sigma": (B, S)`` if the noise is learnt), ``S >= L``,
  near-independent. With ``S > L`` the draws are thinned to L at evenly spaced positions
  (:func:`bayeslin_jax.workflows.sbc.run.thin_positions`; e.g. MCMC draws flattened chain-major).
  Parameters the sampler does not return are treated as known: the truth is used for every
  draw (e.g. ``sigma`` of a known-noise model).
* A sampler may also accept a keyword ``indices`` (the ``(B,)`` global dataset indices), and
  may return a :class:`SamplerResult` with a per-dataset ``gate_ok`` (e.g. convergence checks
  passed); datasets failing it are reported and left out of the verdict, as for NUTS.
* Name and version: give the callable an attribute ``info = SamplerInfo(name, version)`` (or use
  :func:`with_info`); they go into the store's metadata, so a store is resumed only by the same
  sampler version. Without it the qualified function name is used, version ``"unversioned"``.

Bad output (a missing or unknown parameter, wrong shape, fewer than L draws, NaN/inf) raises a
one-line :class:`~bayeslin_jax.core.errors.BayeslinError` naming the expected and the received shape.

Precomputed draws work too: a dict ``{param: (N, S, ...)}`` for datasets ``0..N-1`` or an ArviZ
``DataTree`` whose ``posterior`` group has a ``dataset`` dimension (:class:`PrecomputedDraws`);
the datasets themselves must come from the same simulator and seed (or a
:class:`DatasetSimulator` over stored arrays).

The built-in model's batched NUTS engine through this contract: :func:`nuts_sampler`. A model
other than the built-in one plugs in the same way: any function that runs its engine on the batch
(one key per dataset) and returns ``{param: (B, C * S, ...)}`` draws.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array

from bayeslin_jax.core import exact, simulate, validation
from bayeslin_jax.core import keys as keyring
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import KnownNoise, ModelSpec
from bayeslin_jax.core.simulate import SimulatedData
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.workflows.sbc import quantities as qmod
from bayeslin_jax.workflows.sbc.run import (
    _jitter,
    chunk_dataset,
    convergence_gate,
    rank_and_pit,
    run_chunks,
    thin_positions,
)
from bayeslin_jax.workflows.store import versions


@dataclass(frozen=True)
class SamplerInfo:  # numpydoc ignore=PR02
    """A sampler's declared identity: ``name`` and ``version`` (store metadata; resume key).

    Parameters
    ----------
    name : str
        The sampler's name.
    version : str
        Its version: a store is resumed only by the same name and version.
    details : mapping
        More JSON-serialisable settings recorded with it (e.g. the NUTS settings).
    """

    name: str
    version: str = "unversioned"
    details: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict:
        """The identity as a JSON-serialisable dict (store metadata).

        Returns
        -------
        dict
            ``name``, ``version`` and the ``details``.
        """
        return {"name": str(self.name), "version": str(self.version), **dict(self.details)}


class SamplerResult(NamedTuple):  # numpydoc ignore=PR02
    """What a sampler may return instead of a plain dict: draws and an optional per-dataset gate.

    Parameters
    ----------
    draws : dict of (B, S, ...) arrays
        ``{param: draws}``, at least L near-independent draws per dataset.
    gate_ok : (B,) bool array, optional
        Which datasets' draws to trust (e.g. convergence checks passed); None: all.
    """

    draws: Mapping[str, Array]
    gate_ok: Array | np.ndarray | None = None


class Sampler(Protocol):  # numpydoc ignore=PR01
    """``sampler(keys: (B,), data: SimulatedData, num_draws: int) -> {param: (B, S >= L, ...)}``."""

    def __call__(self, keys: Array, data: SimulatedData, num_draws: int) -> Mapping[str, Array] | SamplerResult: ...


def with_info(sampler: Callable, name: str, version: str = "unversioned", **details) -> Callable:
    """Attach :class:`SamplerInfo` to a callable (returns it, wrapped if attributes cannot be set).

    Parameters
    ----------
    sampler : callable
        A sampler (see the module docstring).
    name : str
        Its name.
    version : str
        Its version (a store is resumed only by the same version).
    **details
        More settings to record (JSON-serialisable).

    Returns
    -------
    callable
        ``sampler`` itself with an ``info`` attribute, or a wrapper with the same signature.
    """
    info = SamplerInfo(name, version, details)
    try:
        cast(Any, sampler).info = info
        return sampler
    except (AttributeError, TypeError):
        def wrapped(*args, **kwargs):
            return sampler(*args, **kwargs)

        cast(Any, wrapped).info = info
        cast(Any, wrapped).__signature__ = inspect.signature(sampler)
        return wrapped


def sampler_info(sampler: Callable) -> SamplerInfo:
    """The declared :class:`SamplerInfo` of a sampler (``info`` attribute, else its qualified name).

    Parameters
    ----------
    sampler : callable
        A sampler (a ``functools.partial`` is named after its function).

    Returns
    -------
    SamplerInfo
        Its ``info``, else its ``name``/``version`` attributes or qualified name, version ``"unversioned"``.
    """
    info = getattr(sampler, "info", None)
    if isinstance(info, SamplerInfo):
        return info
    func = getattr(sampler, "func", sampler)
    name = getattr(sampler, "name", None) or (
        f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}")
    return SamplerInfo(str(name), str(getattr(sampler, "version", "unversioned")))


# ---------------------------------------------------------------------------------------------
# Adapters: the batched NUTS engine, precomputed draws, stored datasets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NutsSampler:  # numpydoc ignore=PR02
    """The batched NUTS engine of the built-in model as an SBC sampler (see :func:`nuts_sampler`).

    Parameters
    ----------
    spec : ModelSpec
        The fit model.
    config : NutsConfig
        The NUTS settings.
    rhat_max : float
        Gate: the largest R-hat that passes.
    max_divergences : int
        Gate: the most divergent transitions that pass.
    """

    spec: ModelSpec
    config: NutsConfig = field(default_factory=NutsConfig)
    rhat_max: float = 1.01
    max_divergences: int = 0

    @property
    def info(self) -> SamplerInfo:
        """The sampler's identity: name ``bayeslin.nuts``, the NUTS settings, the spec and the gate.

        Returns
        -------
        SamplerInfo
            Name, version and details.
        """
        return SamplerInfo("bayeslin.nuts", "1", {"nuts": self.config.identity(), "spec": self.spec.describe(),
                                                  "rhat_max": self.rhat_max, "max_divergences": self.max_divergences})

    def __call__(self, keys: Array, data: SimulatedData, num_draws: int) -> SamplerResult:
        chains, draws = self.config.num_chains, self.config.num_draws
        if chains * draws < num_draws:
            raise BayeslinError(f"NUTS keeps {chains * draws} draws per dataset (chains x draws) but SBC ranks "
                                f"among L={num_draws}: need chains x draws >= L")
        phi = self.spec.basis(data.x)
        result = sample_nuts(0, phi, data.y, self.spec.prior, self.spec.noise, self.config, dataset_keys=keys,
                             draw_stats=False)
        samples = result.samples  # (B, C, S, ...)
        flat = {k: v.reshape(v.shape[0], chains * draws, *v.shape[3:]) for k, v in samples.items()}  # chain-major
        # convergence gate on every scalar parameter: R-hat, min(bulk, tail ESS) >= L, divergences
        scalars = jnp.concatenate([v.reshape(*v.shape[:3], -1) for v in samples.values()], axis=-1)  # (B, C, S, P)
        _, _, gate_ok = convergence_gate(jnp.moveaxis(scalars, -1, 1), result.stats["divergences"],
                                         num_ranks=num_draws, rhat_max=self.rhat_max,
                                         max_divergences=self.max_divergences)
        return SamplerResult(flat, gate_ok)


def nuts_sampler(spec: ModelSpec, config: NutsConfig | None = None, rhat_max: float = 1.01,
                 max_divergences: int = 0) -> NutsSampler:
    """The batched NUTS engine (all datasets of a chunk in one compiled program) as an SBC sampler.

    For another model on the same engine: write a sampler that calls it with ``keys`` (one per
    dataset) and returns its flattened draws the same way; nothing else changes.

    Parameters
    ----------
    spec : ModelSpec
        The fit model.
    config : NutsConfig, optional
        The NUTS settings (default ``NutsConfig()``); chains x draws must be at least L.
    rhat_max : float
        Gate: the largest R-hat that passes.
    max_divergences : int
        Gate: the most divergent transitions that pass.

    Returns
    -------
    NutsSampler
        A sampler returning ``{"w": (B, C * S, d)[, "sigma": (B, C * S)]}`` (chains concatenated,
        chain-major; the runner thins them evenly to L) and a gate per dataset: R-hat <= ``rhat_max``,
        min(bulk, tail ESS) >= L over the parameters, divergences <= ``max_divergences``. The draws are
        those of ``run_sbc(config=SbcConfig(engine="nuts", nuts=config))`` for the same seed and datasets.
    """
    return NutsSampler(spec, NutsConfig() if config is None else config, rhat_max, max_divergences)


@partial(jax.jit, static_argnames=("basis", "num_draws", "num_points", "ignore_correlation"))
def _exact_draws(keys, x, y, prior, sigma, sd_scale, *, basis, num_draws: int, num_points: int,
                 ignore_correlation: bool):
    phi = basis(x[:, :num_points])
    post = exact.posterior(phi, y[:, :num_points], prior, sigma)
    if ignore_correlation:  # independent draws from the exact marginals
        z = jax.vmap(lambda k: jax.random.normal(k, (num_draws, phi.shape[-1]), dtype=phi.dtype))(keys)
        draws = post.mean[:, None] + post.sd[:, None] * z
    else:
        draws = exact.sample_batch(keys, post, num_draws)
    return post.mean[:, None] + sd_scale * (draws - post.mean[:, None])


@dataclass(frozen=True)
class ExactSampler:  # numpydoc ignore=PR02
    """Exact conjugate draws of the built-in model (known noise) as an SBC sampler.

    Optionally deliberately broken (for power studies and tests).

    Parameters
    ----------
    spec : ModelSpec
        The fit model (known noise).
    sd_scale : float
        Draws scaled about the posterior mean (under-/over-dispersed).
    ignore_correlation : bool
        Independent draws from the exact *marginals* (every weight's marginal is exact; the joint is
        wrong wherever the posterior is correlated).
    data_fraction : float
        Condition on the first ``ceil(fraction * n)`` points only (a calibrated posterior for every
        parameter, but of less data: only data-dependent quantities see it).

    Raises
    ------
    BayeslinError
        The spec learns sigma, ``sd_scale <= 0`` or ``data_fraction`` outside (0, 1].
    """

    spec: ModelSpec
    sd_scale: float = 1.0
    ignore_correlation: bool = False
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        """Check the fields (raises :class:`BayeslinError`)."""
        if not self.spec.known_sigma:
            raise BayeslinError("the exact sampler needs known noise (the spec learns sigma)")
        if not (self.sd_scale > 0 and 0 < self.data_fraction <= 1):
            raise BayeslinError(f"need sd_scale > 0 and 0 < data_fraction <= 1, got {self.sd_scale}, "
                                f"{self.data_fraction}")

    @property
    def info(self) -> SamplerInfo:
        """The sampler's identity: name ``bayeslin.exact``, the spec and the deliberate breakages.

        Returns
        -------
        SamplerInfo
            Name, version and details.
        """
        return SamplerInfo("bayeslin.exact", "1", {"spec": self.spec.describe(), "sd_scale": self.sd_scale,
                                                   "ignore_correlation": self.ignore_correlation,
                                                   "data_fraction": self.data_fraction})

    def __call__(self, keys: Array, data: SimulatedData, num_draws: int) -> dict[str, Array]:
        num_points = max(1, math.ceil(self.data_fraction * data.x.shape[-1]))
        w = _exact_draws(keys, data.x, data.y, self.spec.prior, cast(KnownNoise, self.spec.noise).sigma,
                         jnp.asarray(self.sd_scale, dtype=data.x.dtype), basis=self.spec.basis,
                         num_draws=num_draws, num_points=num_points, ignore_correlation=self.ignore_correlation)
        return {"w": w}


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def draws_from_datatree(tree, group: str = "posterior", dataset_dim: str = "dataset") -> dict[str, np.ndarray]:
    """Per-dataset draws from an ArviZ DataTree whose ``group`` has dims ``(chain, draw, dataset, ...)``.

    Parameters
    ----------
    tree : DataTree
        The draws; the dims may come in any order.
    group : str
        The group holding them.
    dataset_dim : str
        The name of the dataset dimension.

    Returns
    -------
    dict of (N, C * S, ...) arrays
        ``{var: draws}``, chains concatenated, chain-major.

    Raises
    ------
    BayeslinError
        No such group, a variable without the chain, draw or dataset dim, or no variables.
    """
    try:
        ds = tree[group].to_dataset() if hasattr(tree[group], "to_dataset") else tree[group]
    except KeyError:
        raise BayeslinError(f"the DataTree has no {group!r} group") from None
    out = {}
    for name, var in ds.data_vars.items():
        missing = [d for d in ("chain", "draw", dataset_dim) if d not in var.dims]
        if missing:
            raise BayeslinError(f"posterior variable {name!r} has dims {var.dims}; expected "
                                f"('chain', 'draw', '{dataset_dim}', ...): missing {missing}")
        rest = [d for d in var.dims if d not in ("chain", "draw", dataset_dim)]
        arr = var.transpose(dataset_dim, "chain", "draw", *rest).values
        out[str(name)] = arr.reshape(arr.shape[0], arr.shape[1] * arr.shape[2], *arr.shape[3:])
    if not out:
        raise BayeslinError(f"the DataTree's {group!r} group has no variables")
    return out


class PrecomputedDraws:
    """Draws computed elsewhere as an SBC sampler: ``{param: (N, S, ...)}`` for datasets ``0..N-1``.

    Also accepts an ArviZ DataTree (see :func:`draws_from_datatree`). Its identity (store
    metadata) is a hash of the arrays. Dataset ``i``'s draws must be the posterior of the dataset
    ``i`` that the run's simulator and seed produce.

    Parameters
    ----------
    draws : dict of (N, S, ...) arrays or DataTree
        The draws of datasets ``0..N-1``, one N for all parameters.
    name : str
        The sampler's name (store metadata).
    version : str, optional
        Its version (default: a hash of the arrays).

    Raises
    ------
    BayeslinError
        Not a non-empty dict or DataTree, or arrays that are not all ``(N, S, ...)`` with one N; when
        called, a dataset index beyond N.
    """

    def __init__(self, draws, name: str = "precomputed", version: str | None = None) -> None:
        if isinstance(draws, xr.DataTree):
            draws = draws_from_datatree(draws)
        if not isinstance(draws, Mapping) or not draws:
            raise BayeslinError(f"precomputed draws must be a non-empty dict of arrays or a DataTree, got "
                                f"{type(draws).__name__}")
        self.draws = {str(k): np.asarray(v) for k, v in draws.items()}
        sizes = {k: (v.shape[0] if v.ndim >= 2 else None) for k, v in self.draws.items()}
        if any(s is None for s in sizes.values()) or len(set(sizes.values())) != 1:
            shapes = {k: v.shape for k, v in self.draws.items()}
            raise BayeslinError(f"precomputed draws must all be (N, S, ...) with one N, got shapes {shapes}")
        self.num_datasets = cast(int, next(iter(sizes.values())))  # checked just above: never None
        self.info = SamplerInfo(name, version or _digest(self.draws), {"num_datasets": int(self.num_datasets)})

    def __call__(self, keys: Array, data: SimulatedData, num_draws: int, *, indices: np.ndarray) -> dict:
        indices = np.asarray(indices)
        if indices.max() >= self.num_datasets:
            raise BayeslinError(f"precomputed draws cover datasets 0..{self.num_datasets - 1}; SBC asked for "
                                f"dataset {int(indices.max())}: run at most {self.num_datasets} simulations")
        return {k: v[indices] for k, v in self.draws.items()}


@dataclass(frozen=True, eq=False)
class DatasetSimulator:  # numpydoc ignore=PR02
    """Stored datasets as a simulator: ``simulator(seed, indices, spec)`` returns rows ``indices``.

    The seed is ignored.

    Parameters
    ----------
    data : SimulatedData
        N datasets (``SimulatedData`` with leading N).
    """

    data: SimulatedData

    def __call__(self, seed: int, indices, spec: ModelSpec | None = None) -> SimulatedData:
        idx = np.asarray(indices)
        if idx.max() >= self.data.x.shape[0]:
            raise BayeslinError(f"only {self.data.x.shape[0]} stored datasets; asked for dataset {int(idx.max())}")
        return SimulatedData(*(jnp.asarray(np.asarray(a)[idx]) for a in self.data))

    def describe(self) -> dict:
        """The simulator's identity (store metadata).

        Returns
        -------
        dict
            ``name``, ``num_datasets`` and a ``digest`` of the arrays.
        """
        arrays = {name: np.asarray(v) for name, v in self.data._asdict().items()}
        return {"name": "stored datasets", "num_datasets": int(self.data.x.shape[0]), "digest": _digest(arrays)}


def as_sampler(sampler) -> Callable:
    """A callable sampler from a callable, a dict of precomputed draws or a DataTree.

    Parameters
    ----------
    sampler : callable, dict of arrays or DataTree
        A sampler, or precomputed draws (:class:`PrecomputedDraws`).

    Returns
    -------
    callable
        The sampler.

    Raises
    ------
    BayeslinError
        Anything else.
    """
    if isinstance(sampler, Mapping | xr.DataTree):
        return PrecomputedDraws(sampler)
    if not callable(sampler):
        raise BayeslinError(f"sampler must be a callable, a dict of draws or a DataTree, got {type(sampler).__name__}")
    return sampler


# ---------------------------------------------------------------------------------------------
# Validation of user output
# ---------------------------------------------------------------------------------------------


def truth_params(data: SimulatedData) -> dict[str, Array]:
    """The true parameters of a simulated batch.

    Parameters
    ----------
    data : SimulatedData
        B simulated datasets.

    Returns
    -------
    dict
        ``{"w": (B, d), "sigma": (B,)}``.
    """
    return {"w": data.w, "sigma": data.sigma}


def _check_data(data, num: int) -> SimulatedData:
    if not all(hasattr(data, f) for f in SimulatedData._fields):
        raise BayeslinError(f"simulator must return SimulatedData(x, y, w, sigma), got {type(data).__name__}")
    data = SimulatedData(*(jnp.asarray(getattr(data, f)) for f in SimulatedData._fields))
    expected = {"x": (num, "n"), "y": (num, "n"), "w": (num, "d"), "sigma": (num,)}
    for name, want in expected.items():
        got = getattr(data, name).shape
        if len(got) != len(want) or got[0] != num or (name == "y" and got != data.x.shape):
            raise BayeslinError(
                f"simulator output {name!r} has shape {got}; expected {_fmt_shape(want)} for B={num} datasets")
    return data


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_draws(out, truth: Mapping[str, Array], num: int, num_draws: int) -> tuple[dict, np.ndarray | None]:
    """Validate a sampler's output -> ``({param: (B, S, ...)}, gate_ok or None)``."""
    gate_ok = None
    if isinstance(out, SamplerResult):
        out, gate_ok = out.draws, out.gate_ok
    if not isinstance(out, Mapping) or not out:
        raise BayeslinError(f"sampler must return a dict {{param: (B, L, ...) draws}}, got {type(out).__name__}")
    unknown = sorted(set(out) - set(truth))
    if unknown:
        raise BayeslinError(f"sampler returned unknown parameter(s) {unknown}; the simulated truth has {sorted(truth)}")
    draws, sizes = {}, set()
    for name, value in out.items():
        value = jnp.asarray(value)
        tail = tuple(truth[name].shape[1:])
        expected = _fmt_shape(("B", "L", *tail)) + f" = {_fmt_shape((num, num_draws, *tail))} or more draws"
        if value.ndim != 2 + len(tail) or value.shape[0] != num or tuple(value.shape[2:]) != tail:
            raise BayeslinError(f"sampler output {name!r} has shape {_fmt_shape(value.shape)}; expected {expected}")
        if value.shape[1] < num_draws:
            raise BayeslinError(f"sampler output {name!r} has shape {_fmt_shape(value.shape)}: too few draws; "
                                f"expected {expected}")
        bad = ~np.isfinite(np.asarray(value)).reshape(num, -1).all(-1)
        if bad.any():
            raise BayeslinError(f"sampler output {name!r} (shape {_fmt_shape(value.shape)}) has NaN or inf draws in "
                                f"{int(bad.sum())} of {num} datasets (first: batch row {int(np.argmax(bad))})")
        draws[name] = value
        sizes.add(value.shape[1])
    if len(sizes) != 1:
        raise BayeslinError(f"sampler outputs have different numbers of draws: "
                            f"{ {k: v.shape[1] for k, v in draws.items()} }")
    if gate_ok is not None:
        gate_ok = np.asarray(gate_ok, dtype=bool)
        if gate_ok.shape != (num,):
            raise BayeslinError(f"sampler gate_ok has shape {gate_ok.shape}; expected ({num},)")
    return draws, gate_ok


def _accepts_indices(sampler: Callable) -> bool:
    try:
        return "indices" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


def sampler_chunk(indices, *, sampler: Callable, simulator: simulate.Simulator, spec: ModelSpec | None,
                  quantities: tuple[qmod.Quantity, ...], seed: int, num_ranks: int) -> xr.Dataset:
    """SBC of ``sampler`` for the simulations ``indices``, one chunk of :func:`run_sampler_sbc`.

    Parameters
    ----------
    indices : (B,) int array
        Global simulation indices.
    sampler : callable
        The sampler (see the module docstring).
    simulator : Simulator
        ``simulator(seed, indices, spec) -> SimulatedData``.
    spec : ModelSpec or None
        The model, passed to the simulator.
    quantities : tuple of Quantity
        The test quantities.
    seed : int
        The run's seed.
    num_ranks : int
        L.

    Returns
    -------
    xr.Dataset
        ``(dataset, quantity)``; variables as :func:`bayeslin_jax.workflows.sbc.run.sbc_chunk`: ``rank``,
        ``pit``, ``truth``, ``post_mean``, ``post_sd`` (over all returned draws), ``gate_ok``.

    Raises
    ------
    BayeslinError
        Bad simulator or sampler output (wrong shapes, too few draws, NaN or inf), or a test quantity that
        is NaN or inf.
    """
    indices = np.asarray(indices, dtype=np.int64)
    num = len(indices)
    data = _check_data(simulator(seed, indices, spec), num)
    idx32 = jnp.asarray(indices, dtype=jnp.uint32)
    keys = keyring.dataset_keys(seed, keyring.INFER, idx32)
    extra = {"indices": indices} if _accepts_indices(sampler) else {}
    truth = truth_params(data)
    draws, gate_ok = _check_draws(sampler(keys, data, num_ranks, **extra), truth, num, num_ranks)
    total = next(iter(draws.values())).shape[1]
    params = {k: draws.get(k, jnp.broadcast_to(v[:, None], (num, total, *v.shape[1:]))) for k, v in truth.items()}
    params = {k: v.astype(truth[k].dtype) for k, v in params.items()}
    q_draws, q_true = (np.asarray(a) for a in qmod.evaluate(quantities, params, truth, data))
    names = [q.name for q in quantities]
    for values, what in ((q_true, "the truth"), (q_draws.reshape(num, -1, len(names)), "the draws")):
        bad = ~np.isfinite(values).reshape(num, -1, len(names)).all((0, 1))
        if bad.any():
            raise BayeslinError(f"test quantity {names[int(np.argmax(bad))]!r} is NaN or inf on {what}")
    thinned = q_draws[:, thin_positions(total, num_ranks)]  # (B, L, Q)
    jitter = _jitter(seed, indices, len(names))
    rank, pit = jax.jit(rank_and_pit, static_argnames="num_ranks")(q_true, thinned, jitter, num_ranks=num_ranks)
    return chunk_dataset(indices, names, rank, pit, q_true, q_draws.mean(1), q_draws.std(1, ddof=1), gate_ok)


def sampler_meta(seed: int, sampler: Callable, simulator: simulate.Simulator, spec: ModelSpec | None,
                 quantities: tuple[qmod.Quantity, ...], num_ranks: int) -> dict:
    """Identity of a user-sampler SBC run (store metadata; what a resumed store must match).

    Parameters
    ----------
    seed : int
        The run's seed.
    sampler : callable
        The sampler (its :func:`sampler_info`).
    simulator : Simulator
        The simulator (its description).
    spec : ModelSpec or None
        The model.
    quantities : tuple of Quantity
        The test quantities (their descriptions; the linear ones are listed).
    num_ranks : int
        L.

    Returns
    -------
    dict
        ``kind``, ``seed``, ``sampler``, ``simulator``, ``spec``, ``quantities``, ``linear_quantities``,
        ``config``, ``x64`` and ``versions``.
    """
    info = sampler_info(sampler)
    return {
        "kind": "sbc",
        "seed": int(seed),
        "sampler": info.describe(),
        "simulator": simulate.describe_simulator(simulator),
        "spec": None if spec is None else spec.describe(),
        "quantities": [q.describe() for q in quantities],
        "linear_quantities": [q.name for q in quantities if q.linear],
        "config": {"engine": "sampler", "sampler": info.name, "num_ranks": int(num_ranks)},
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions(),
    }


def run_sampler_sbc(
    sampler,
    num_simulations: int,
    *,
    seed: int = 0,
    spec: ModelSpec | None = None,
    simulator: str | simulate.Simulator = "prior",
    quantities=None,
    num_ranks: int = 99,
    chunk_size: int = 1000,
    store: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """SBC of any sampler over simulations ``0, ..., num_simulations - 1`` (see the module docstring).

    Parameters
    ----------
    sampler : callable, dict of arrays or DataTree
        ``sampler(keys (B,), data, num_draws) -> {param: (B, S >= L, ...)}``, or precomputed draws.
    num_simulations : int
        N, the number of simulated datasets.
    seed : int
        Seeds the simulator, the sampler's keys and the rank tie-breaks.
    spec : ModelSpec, optional
        The model: the built-in prior simulator draws the truth from it, and the default test
        quantities use it (log prior, basis). Needed unless both are given by the user.
    simulator : str or Simulator
        ``"prior"`` (default), ``"tutorial"``, or a callable ``(seed, indices, spec) -> SimulatedData``.
    quantities : None, mapping or sequence
        Test quantities ``f(params, data) -> scalar`` (:mod:`bayeslin_jax.workflows.sbc.quantities`);
        None: :func:`~bayeslin_jax.workflows.sbc.quantities.default_quantities` of ``spec``.
    num_ranks : int
        L, the number of draws each truth is ranked among (ranks in ``0..L``).
    chunk_size : int
        Simulations per sampler call (the batch B).
    store : path, optional
        Resumable zarr store (:func:`bayeslin_jax.workflows.store.run_chunked`): rerunning after an
        interruption computes only the missing chunks. The sampler's name and version are part
        of its identity.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    xr.Dataset
        ``(dataset, quantity)`` variables ``rank``, ``pit``, ``truth``, ``post_mean``,
        ``post_sd`` and ``gate_ok``; attrs ``meta`` (JSON). Feed it to
        :func:`bayeslin_jax.workflows.sbc.summarize` and the plots of :mod:`bayeslin_jax.workflows.sbc.plots`.

    Raises
    ------
    BayeslinError
        Invalid counts; a sampler that is not a callable or draws; bad test quantities; bad simulator or
        sampler output (a one-line message naming the expected and the received shape); a ``store``
        written with different settings.
    StoreError
        A damaged or locked ``store``.
    """
    validation.integer("number of ranked draws L", num_ranks)
    validation.integer("number of simulations", num_simulations)
    validation.integer("chunk size", chunk_size)
    sampler = as_sampler(sampler)
    simulator = simulate.get_simulator(simulator)
    quantities = qmod.as_quantities(quantities, spec)
    meta = sampler_meta(seed, sampler, simulator, spec, quantities, int(num_ranks))

    def compute(indices: np.ndarray) -> xr.Dataset:
        """One chunk: :func:`sampler_chunk` of ``indices``.

        Parameters
        ----------
        indices : (B,) int array
            Global simulation indices.

        Returns
        -------
        xr.Dataset
            The chunk's results.
        """
        return sampler_chunk(indices, sampler=sampler, simulator=simulator, spec=spec, quantities=quantities,
                             seed=seed, num_ranks=int(num_ranks))

    return run_chunks(compute, int(num_simulations), int(chunk_size), meta=meta, store=store, progress=progress)


__all__ = [
    "DatasetSimulator",
    "ExactSampler",
    "NutsSampler",
    "PrecomputedDraws",
    "Sampler",
    "SamplerInfo",
    "SamplerResult",
    "as_sampler",
    "draws_from_datatree",
    "nuts_sampler",
    "run_sampler_sbc",
    "sampler_chunk",
    "sampler_info",
    "sampler_meta",
    "truth_params",
    "with_info",
]
