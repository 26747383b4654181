"""The batched NUTS engine for any :class:`bayeslin_jax.core.model.Model` (user-model contract).

One driver, :func:`sample_runs`, serves every model, the Gaussian one of
:func:`bayeslin_jax.engine.nuts.sample_nuts` included: run ``r = i * C + c`` uses
``fold_in(fold_in(root, i), c)`` (:func:`~bayeslin_jax.engine.nuts.run_keys`) with ``i`` the global
dataset index, its own warm-up on the model's potential energy (``numpyro.infer.util.potential_energy``:
unconstrained space, Jacobians included), laid out per :class:`~bayeslin_jax.engine.nuts.NutsConfig`:
``lax.map`` (NumPyro's functional ``hmc``, one run at a time), lock-step ``vmap`` blocks, or the
barrier-free finite state machine (:mod:`bayeslin_jax.engine.barrier_free`, the default off CPU);
contiguous blocks of datasets per local device. Draws for dataset ``i`` therefore do not depend on
batch size, chunking or devices (bitwise with ``"map"``; in distribution with the vectorized layouts).

Before compiling, :func:`inspect_model` traces the model on real data and rejects, in one line naming
the site, what the engine cannot run: discrete latents, ``numpyro.param`` sites, latent shapes that
depend on data values, a missing observed site, a model that cannot be traced with abstract data, and
observations outside the support of the observed site's distribution.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpyro import handlers
from numpyro.distributions import biject_to
from numpyro.infer.util import constrain_fn, potential_energy
from tqdm.auto import tqdm

from bayeslin_jax.core.batching import map_datasets
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model
from bayeslin_jax.core.priors import KnownNoise, Noise, WeightPrior
from bayeslin_jax.core.regressions import linear_regression
from bayeslin_jax.engine import barrier_free
from bayeslin_jax.engine.nuts import (
    NutsConfig,
    NutsResult,
    chain_keys,
    initial_point,
    run_keys,
    summarize_draw_stats,
    warmup_and_draw,
)

#: Chunks a batch is split into for the progress bar (``"map"`` layout, :func:`sample_model`).
PROGRESS_CHUNKS = 20


class ModelSites(NamedTuple):  # numpydoc ignore=PR02
    """What the engine needs to know about a model's sites (:func:`inspect_model` reads them off a trace).

    Parameters
    ----------
    latent : tuple of (str, tuple of int) pairs
        ``(name, unconstrained shape)`` of each latent sample site, sorted by name.
    kept : tuple of str
        The sites returned as draws (latents and ``n``-independent deterministic sites), in trace order.
    shapes : tuple of tuple of int
        The constrained shapes of the ``kept`` sites.
    per_point : tuple of str, default ()
        The ``numpyro.deterministic`` sites whose shape depends on ``n`` (not drawn by the sampler:
        :func:`per_point_draws` recomputes them from the latent draws on the full data).
    plates : tuple of (str, tuple of str or None) pairs, default ()
        ``(site, axis labels)`` for every kept and per-point site, the label of an axis being the name of the
        ``numpyro.plate`` over it, or None.
    """

    latent: tuple[tuple[str, tuple[int, ...]], ...]
    kept: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    per_point: tuple[str, ...] = ()
    plates: tuple[tuple[str, tuple[str | None, ...]], ...] = ()


def _trace(model: Model, x: Array, y: Array, key: Array, params: dict | None = None) -> dict:
    params = model.params if params is None else params
    return handlers.trace(handlers.seed(model.bound, key)).get_trace(x, y=y, **params)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _check_trace(model: Model, trace: dict) -> None:
    for name, site in trace.items():
        if site["type"] == "param":
            raise BayeslinError(f"site {name!r} is a numpyro.param: the engine samples; give it a prior instead")
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if site["fn"].support.is_discrete or site.get("infer", {}).get("enumerate"):
            raise BayeslinError(
                f"latent site {name!r} is discrete ({type(site['fn']).__name__}): NUTS needs continuous latents;"
                " marginalise it out"
            )
    obs = trace.get(model.obs)
    if obs is None or obs["type"] != "sample" or not obs["is_observed"]:
        raise BayeslinError(f"model {model.name!r} has no observed site {model.obs!r} (numpyro.sample(..., obs=y))")


def _check_support(model: Model, obs_fn, y: Array) -> None:
    """Every observation must lie in the support of the observed site (0/1 for Bernoulli, counts for Poisson)."""
    inside = np.asarray(obs_fn.support(y))
    if not inside.all():
        dataset, point = np.argwhere(~inside)[0]
        raise BayeslinError(
            f"y[{dataset}, {point}] = {float(y[dataset, point]):g} is outside the support of {model.obs!r} "
            f"({type(obs_fn).__name__}: {type(obs_fn.support).__name__.lstrip('_')})"
        )


def _plate_axes(site: dict) -> tuple[str | None, ...]:
    """The plate name over each axis of a traced site's value (None where no plate is): a sample site's plates
    index its batch axes from the right (before the event axes), a deterministic site's its last axes."""
    shape = jnp.shape(site["value"])
    labels: list[str | None] = [None] * len(shape)
    event = len(site["fn"].event_shape) if site["type"] == "sample" else 0
    for frame in site.get("cond_indep_stack", ()):
        if frame.dim is None:
            continue
        axis = len(shape) - event + frame.dim
        if 0 <= axis < len(shape) - event and shape[axis] == frame.size:
            labels[axis] = frame.name
    return tuple(labels)


def inspect_model(model: Model, x: Array, y: Array) -> ModelSites:
    """Check ``model`` against the contract on real data and read its sites' shapes.

    Parameters
    ----------
    model : Model
        The model to check.
    x : array, shape ``(B, n, ...)``
        The model's inputs for B datasets (after the basis).
    y : array, shape ``(B, n)``
        Observations.

    Returns
    -------
    ModelSites
        The latent, kept and per-point sites with their shapes and plates.

    Raises
    ------
    BayeslinError
        One line naming the offending site (see the module docstring).
    """
    key = jax.random.key(0)
    n = x.shape[1]
    model.point_arguments(n)  # a declared per-point argument of the wrong length: one line, before any tracing
    try:
        first = _trace(model, x[0], y[0], key)
    except Exception as err:  # any failure of the user code becomes one line
        raise BayeslinError(f"model {model.name!r} failed on dataset 0: {_first_line(err)}") from None
    _check_trace(model, first)
    _check_support(model, first[model.obs]["fn"], y)
    latent_names = [n for n, s in first.items() if s["type"] == "sample" and not s["is_observed"]]
    # Shapes may depend on n (same for every dataset of a batch) but not on data values.
    for i in range(1, min(x.shape[0], 3)):
        other = _trace(model, x[i], y[i], key)
        for name in latent_names:
            if name not in other or jnp.shape(other[name]["value"]) != jnp.shape(first[name]["value"]):
                raise BayeslinError(
                    f"latent site {name!r} changes shape between datasets of the same size: the engine needs"
                    " fixed-shape latents"
                )
    # deterministic sites whose shape depends on n are per point (not kept): trace n - 1 points, per-point
    # arguments sliced with them
    smaller = first
    if n > 1:
        # a model with fixed-size plates cannot take n - 1 points with sliced arguments: then unsliced
        attempts = (model.params_at(slice(0, n - 1), n), model.params)
        for k, params in enumerate(attempts):
            try:
                smaller = _trace(model, x[0, : n - 1], y[0, : n - 1], key, params)
                break
            except Exception as err:
                if k == len(attempts) - 1:
                    raise BayeslinError(
                        f"model {model.name!r} failed on the first {n - 1} points of dataset 0 ({_first_line(err)}):"
                        " declare its per-point arguments (per_point=...)") from None
    kept = [
        name for name, site in first.items()
        if (site["type"] == "sample" and not site["is_observed"])
        or (site["type"] == "deterministic" and name in smaller
            and jnp.shape(smaller[name]["value"]) == jnp.shape(site["value"]))
    ]
    per_point = tuple(name for name, site in first.items() if site["type"] == "deterministic" and name not in kept)
    try:  # abstract tracing: what jit/vmap will do
        jax.eval_shape(lambda a, b: _trace(model, a, b, key)[model.obs]["value"], x[0], y[0])
    except Exception as err:
        raise BayeslinError(f"model {model.name!r} cannot be batched (traced with abstract data): "
                            f"{_first_line(err)}") from None
    latent = tuple(
        (name, tuple(jnp.shape(biject_to(first[name]["fn"].support).inv(first[name]["value"]))))
        for name in sorted(latent_names)
    )
    if not latent:
        raise BayeslinError(f"model {model.name!r} has no latent sites to sample")
    plates = tuple((name, _plate_axes(first[name])) for name in (*kept, *per_point))
    return ModelSites(latent, tuple(kept), tuple(tuple(jnp.shape(first[k]["value"])) for k in kept), per_point,
                      plates)


def _potential_fn_gen(fn):
    """``fn``'s potential-energy generator in NumPyro's ``hmc`` form: ``gen(*args, **kwargs) -> potential(z)``."""

    def potential_fn_gen(*args, **kwargs):
        return partial(potential_energy, fn, args, kwargs)

    return potential_fn_gen


def _constrain(z: dict, x: Array, y: Array, params: dict, *, model: Model, sites: ModelSites) -> dict:
    """One run's unconstrained draws ``{site: (S, ...)}`` -> its kept sites, constrained ``{site: (S, ...)}``."""
    kwargs = {"y": y, **params}
    constrained = jax.vmap(lambda p: constrain_fn(model.bound, (x,), kwargs, p, return_deterministic=True))(z)
    return {name: constrained[name] for name in sites.kept}


#: Draws recomputed together by :func:`per_point_draws` (one vectorized block; bounds the working memory).
PER_POINT_BLOCK = 256


@partial(jax.jit, static_argnames=("model", "names", "batch_size"))
def _per_point_all(draws: dict, x: Array, y: Array, params: dict, *, model: Model, names: tuple[str, ...],
                   batch_size: int) -> dict:
    """``draws[site]: (B, D, ...)``, ``x: (B, n, ...)``, ``y: (B, n)`` -> ``{name: (B, D, *shape)}``."""

    def one_draw(z: dict, x_i: Array, y_i: Array) -> dict:
        seeded = handlers.seed(handlers.substitute(model.bound, data=z), jax.random.key(0))
        trace = handlers.trace(seeded).get_trace(x_i, y=y_i, **params)
        return {name: trace[name]["value"] for name in names}

    def one_dataset(z: dict, x_i: Array, y_i: Array) -> dict:
        return jax.lax.map(lambda d: one_draw(d, x_i, y_i), z, batch_size=batch_size)

    return jax.lax.map(lambda args: one_dataset(*args), (draws, x, y))


def per_point_draws(model: Model, samples: Mapping[str, Array | np.ndarray], x: Array, y: Array, sites: ModelSites,
                    block: int = PER_POINT_BLOCK) -> dict[str, np.ndarray]:
    """The per-point ``numpyro.deterministic`` sites (``sites.per_point``), recomputed from the latent draws.

    Each draw of the latent sites is substituted into the model, traced on its dataset's full data, and the
    deterministic values read off: exactly what the model computes (the same function of the same draws),
    ``block`` draws at a time, one dataset at a time.

    Parameters
    ----------
    model : Model
        The fitted model.
    samples : dict
        ``{site: (B, C, S, *site_shape)}`` with every latent site of ``sites.latent`` (constrained).
    x : array, shape ``(B, n, ...)``
        The model's inputs (after the basis).
    y : array, shape ``(B, n)``
        Observations.
    sites : ModelSites
        From :func:`inspect_model`.
    block : int
        Draws vectorized together.

    Returns
    -------
    dict
        ``{site: (B, C, S, *site_shape)}`` NumPy, for each site of ``sites.per_point`` (empty if none).
    """
    if not sites.per_point:
        return {}
    latent = [name for name, _ in sites.latent]
    lead = jnp.shape(samples[latent[0]])[:3]
    flat = {k: jnp.reshape(jnp.asarray(samples[k]), (lead[0], lead[1] * lead[2], *jnp.shape(samples[k])[3:]))
            for k in latent}
    out = _per_point_all(flat, jnp.asarray(x), jnp.asarray(y), model.params, model=model, names=sites.per_point,
                         batch_size=max(1, min(block, lead[1] * lead[2])))
    return {k: np.asarray(v).reshape(*lead, *v.shape[2:]) for k, v in out.items()}


def _run_one(key: Array, x: Array, y: Array, params: dict, *, model: Model, sites: ModelSites, config: NutsConfig,
             dtype):
    """One (dataset, chain) run. ``x: (n, ...)``, ``y: (n,)`` -> draws ``{site: (S, ...)}``, stats ``(S,)``."""
    z0, sample_key = initial_point(key, sites.latent, dtype, config)
    z, stats = warmup_and_draw(_potential_fn_gen(model.bound), z0, sample_key, config, (x,), {"y": y, **params})
    return _constrain(z, x, y, params, model=model, sites=sites), stats


@partial(jax.jit, static_argnames=("model", "sites", "config", "batch_size", "draw_stats", "dtype"))
def _run_all(keys, x, y, params, *, model: Model, sites: ModelSites, config: NutsConfig, batch_size: int | None,
             draw_stats: bool, dtype):
    """All runs of one device. ``keys: (R,)``, ``x: (R, n, ...)``, ``y: (R, n)`` -> draws ``{site: (R, S, ...)}``,
    stats ``(R, S)`` (or summaries ``(R,)``) [, :class:`~bayeslin_jax.engine.barrier_free.LaneCounts`]."""
    if config.resolved_method() == "barrier_free":
        z0, sample_keys = jax.vmap(lambda key: initial_point(key, sites.latent, dtype, config))(keys)
        gen = _potential_fn_gen(model.bound)
        z, stats, lanes = barrier_free.run_block(
            sample_keys, z0, (x, y), params, potential=lambda run, shared: gen(run[0], y=run[1], **shared),
            config=config, batch_size=batch_size, draw_stats=draw_stats,
        )  # fmt: skip
        return jax.vmap(partial(_constrain, params=params, model=model, sites=sites))(z, x, y), stats, lanes

    def run(key, x_run, y_run):
        draws, stats = _run_one(key, x_run, y_run, params, model=model, sites=sites, config=config, dtype=dtype)
        return draws, (stats if draw_stats else summarize_draw_stats(stats, config.max_tree_depth))

    if batch_size is None:  # one run at a time: the compiled run does not depend on R
        return map_datasets(run, keys, x, y, sequential=True)
    return jax.lax.map(lambda xs: run(*xs), (keys, x, y), batch_size=batch_size)


def sample_runs(
    seed: int | Array,
    x: Array,
    y: Array,
    model: Model,
    sites: ModelSites,
    config: NutsConfig,
    *,
    dtype,
    dataset_indices: Array | None = None,
    dataset_keys: Array | None = None,
    num_devices: int | None = None,
    draw_stats: bool = True,
) -> NutsResult:
    """Run the engine's driver on validated inputs: every (dataset, chain) run, on every local device.

    Splits the datasets over local devices, keys and repeats them per chain, runs each device's compiled
    program (asynchronously) and gathers. Each device runs the same single-device program on its contiguous
    block of datasets (one partitioned program would round differently, and NUTS turns an ulp into another
    chain), so ``"map"`` results are bit-identical for any device count.

    Parameters
    ----------
    seed : int or key array
        Root of the ``INFER`` stream (unused with ``dataset_keys``).
    x : array, shape ``(B, n, ...)``
        The model's inputs (after the basis).
    y : array, shape ``(B, n)``
        Observations.
    model : Model
        The model to sample.
    sites : ModelSites
        From :func:`inspect_model`.
    config : NutsConfig
        Sampler settings and layout.
    dtype : dtype
        Of the initial points.
    dataset_indices : int array, shape ``(B,)``, optional
        Global dataset indices keying the randomness (default ``0..B-1``).
    dataset_keys : key array, shape ``(B,)``, optional
        One key per dataset, replacing ``(seed, dataset_indices)``.
    num_devices : int, optional
        Local devices to split the datasets over (default all).
    draw_stats : bool, default True
        Every draw's statistics ``(B, C, S)``; False: per-run summaries ``(B, C)``.

    Returns
    -------
    NutsResult
        ``samples[site]: (B, C, S, ...)``, ``stats``: ``(B, C, S)`` or ``(B, C)`` (``draw_stats``),
        ``lanes``: one :class:`~bayeslin_jax.engine.barrier_free.LaneCounts` per device for ``"barrier_free"``.
    """
    num_datasets = x.shape[0]
    chains = config.num_chains
    if dataset_keys is None:
        indices = jnp.arange(num_datasets) if dataset_indices is None else dataset_indices
        indices = jnp.asarray(indices, dtype=jnp.uint32)
    devices = jax.local_devices()[: min(num_devices or jax.local_device_count(), num_datasets)]
    blocks = np.array_split(np.arange(num_datasets), len(devices))
    pending = []
    for device, block in zip(devices, blocks, strict=True):
        with jax.default_device(device):
            if dataset_keys is None:
                keys = run_keys(seed, jax.device_put(indices[block], device), chains)
            else:
                keys = chain_keys(jax.device_put(dataset_keys[block], device), chains)
            x_runs = jnp.repeat(jax.device_put(x[block], device), chains, axis=0)
            y_runs = jnp.repeat(jax.device_put(y[block], device), chains, axis=0)
            params = jax.device_put(model.params, device)
            out = _run_all(keys, x_runs, y_runs, params, model=model, sites=sites, config=config,
                           batch_size=config.resolved_batch_size(keys.shape[0]), draw_stats=draw_stats, dtype=dtype)
            pending.append((len(block), out))

    def _gather(*parts: Array) -> Array:
        per_dataset = [a.reshape(size, chains, *a.shape[1:]) for (size, _), a in zip(pending, parts, strict=True)]
        return per_dataset[0] if len(per_dataset) == 1 else jnp.concatenate([jax.device_get(a) for a in per_dataset])

    samples = jax.tree.map(_gather, *[out[0] for _, out in pending])
    stats = jax.tree.map(_gather, *[out[1] for _, out in pending])
    lanes = tuple(out[2] for _, out in pending) if len(pending[0][1]) == 3 else None
    return NutsResult(samples, stats, lanes)


def sample_model(
    seed: int | Array,
    x: Array,
    y: Array,
    model: Model,
    config: NutsConfig | None = None,
    dataset_indices: Array | None = None,
    num_devices: int | None = None,
    sites: ModelSites | None = None,
    draw_stats: bool = True,
    dataset_keys: Array | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
) -> NutsResult:
    """Run NUTS on B datasets of any :class:`Model` in one compiled program per device (per chunk).

    Parameters
    ----------
    seed : int or key
        Root of the randomness (the same streams as :func:`~bayeslin_jax.engine.nuts.sample_nuts`).
    x : array, shape ``(B, n, ...)``
        The model's inputs (``model.design(x_raw)``).
    y : array, shape ``(B, n)``
        Observations.
    model : Model
        Any model of the user-model contract (:func:`bayeslin_jax.user_model`, :func:`bayeslin_jax.student_t`,
        ...).
    config : NutsConfig, optional
        Sampler settings (default ``NutsConfig()``).
    dataset_indices : array, shape ``(B,)``, optional
        Global indices keying the randomness (default ``0..B-1``).
    num_devices : int, optional
        Local devices to split the datasets over (default all).
    sites : ModelSites, optional
        From :func:`inspect_model` (computed here if None).
    draw_stats : bool, default True
        As in :func:`~bayeslin_jax.engine.nuts.sample_nuts`: False keeps only per-run summaries ``(B, C)``.
    dataset_keys : array of keys, shape ``(B,)``, optional
        One key per dataset instead of ``(seed, dataset_indices)``, as in :func:`~bayeslin_jax.engine.nuts.sample_nuts`.
    chunk_size : int, optional
        Datasets per engine call (:func:`chunk_bounds`); default: all at once, or with ``progress`` on the
        ``"map"`` layout about :data:`PROGRESS_CHUNKS` chunks. Dataset ``i`` is keyed by its global index
        whatever its chunk, so ``"map"`` draws are bit-identical for any chunking (the vectorized layouts
        agree in distribution).
    progress : bool, default False
        A tqdm bar of datasets done, on stderr.

    Returns
    -------
    NutsResult
        ``samples[site]: (B, C, S, *site_shape)`` for every kept site; ``stats[name]: (B, C, S)`` (or
        ``(B, C)`` summaries); ``lanes`` as in :func:`~bayeslin_jax.engine.nuts.sample_nuts` (one per device
        and chunk).

    Raises
    ------
    BayeslinError
        ``x`` and ``y`` not shaped ``(B, n, ...)`` and ``(B, n)``, zero datasets, ``chunk_size < 1``, or a model
        the engine cannot run (:func:`inspect_model`).

    Examples
    --------
    A NumPyro model of one dataset (a line with N(0, 1) priors and known noise 0.1), fitted to two datasets of
    the tutorial at once and checked against its exact (conjugate) posterior:

    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> import numpyro
    >>> import numpyro.distributions as dist
    >>> from bayeslin_jax.core import exact
    >>> from bayeslin_jax.core.simulate import tutorial_data
    >>> def line(x, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    ...     m = numpyro.sample("m", dist.Normal(0.0, 1.0))
    ...     with numpyro.plate("obs", x.shape[-1]):
    ...         numpyro.sample("y", dist.Normal(b + m * x, 0.1), obs=y)
    >>> data = tutorial_data(0, np.arange(2))  # 2 datasets of 11 points: x, y (2, 11)
    >>> config = bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2)
    >>> result = bl.sample_model(0, data.x, data.y, bl.user_model(line), config)
    >>> {site: draws.shape for site, draws in result.samples.items()}  # (B, C, S)
    {'b': (2, 2, 100), 'm': (2, 2, 100)}
    >>> w = np.stack([result.samples["b"], result.samples["m"]], axis=-1)  # (B, C, S, 2)
    >>> post = exact.posterior(bl.linear()(data.x), data.y, bl.independent_normal(0.0, 1.0, 2), 0.1)
    >>> bool(np.all(np.abs(w.mean(axis=(1, 2)) - post.mean) < post.sd))  # within a posterior sd of the exact mean
    True
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 2 or y.ndim != 2 or x.shape[:2] != y.shape:
        raise BayeslinError(f"expected x (B, n, ...) and y (B, n), got {x.shape} and {y.shape}")
    if x.shape[0] == 0:
        raise BayeslinError("zero datasets: need at least one")
    config = NutsConfig() if config is None else config
    sites = inspect_model(model, x, y) if sites is None else sites
    num_datasets = x.shape[0]
    if chunk_size is None:
        chunk_size = num_datasets
        if progress and config.resolved_method() == "map":  # runs go one at a time anyway: chunks cost nothing
            devices = min(num_devices or jax.local_device_count(), num_datasets)
            chunk_size = devices * -(-num_datasets // (devices * PROGRESS_CHUNKS))
    if dataset_keys is None:
        indices = jnp.arange(num_datasets) if dataset_indices is None else jnp.asarray(dataset_indices)
        indices = indices.astype(jnp.uint32)
    parts = []
    with tqdm(total=num_datasets, desc="datasets", unit="dataset", disable=not progress, file=sys.stderr) as bar:
        for start, stop in chunk_bounds(num_datasets, chunk_size):
            keyed = ({"dataset_indices": indices[start:stop]} if dataset_keys is None
                     else {"dataset_keys": dataset_keys[start:stop]})
            part = sample_runs(seed, x[start:stop], y[start:stop], model, sites, config,
                               dtype=jax.dtypes.canonicalize_dtype(jnp.float64), num_devices=num_devices,
                               draw_stats=draw_stats, **keyed)
            if progress:
                jax.block_until_ready((part.samples, part.stats))
            bar.update(stop - start)
            parts.append(part)
    if len(parts) == 1:
        return parts[0]
    join = lambda *arrays: jnp.concatenate(arrays, axis=0)  # noqa: E731
    lanes = None if parts[0].lanes is None else tuple(lane for part in parts for lane in (part.lanes or ()))
    return NutsResult(jax.tree.map(join, *[p.samples for p in parts]), jax.tree.map(join, *[p.stats for p in parts]),
                      lanes)


def chunk_bounds(num_datasets: int, chunk_size: int) -> list[tuple[int, int]]:
    """Split ``num_datasets`` datasets into consecutive chunks of ``chunk_size`` (the last may be shorter).

    Parameters
    ----------
    num_datasets : int
        Datasets to split.
    chunk_size : int
        Datasets per chunk, >= 1.

    Returns
    -------
    list of (int, int)
        ``[(start, stop), ...]`` covering ``0..num_datasets``.

    Raises
    ------
    BayeslinError
        ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise BayeslinError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(start, min(start + chunk_size, num_datasets)) for start in range(0, num_datasets, chunk_size)]


def sample_nuts(
    seed: int | Array,
    phi: Array,
    y: Array,
    prior: WeightPrior,
    noise: Noise,
    config: NutsConfig | None = None,
    dataset_indices: Array | None = None,
    num_devices: int | None = None,
    dataset_keys: Array | None = None,
    draw_stats: bool = True,
) -> NutsResult:
    """Run NUTS on B datasets in one compiled program.

    The engine takes what the model needs: design matrices, observations, the weight prior and
    the noise model (the basis that made ``phi`` is the caller's business; see :func:`bayeslin_jax.fit`).

    Parameters
    ----------
    seed : int or key
        Root of the ``INFER`` stream; run (dataset ``i``, chain ``c``) uses ``fold_in(fold_in(root, i), c)``
        (:func:`~bayeslin_jax.engine.nuts.run_keys`).
    phi : array, shape ``(B, n, d)``
        Design matrices (validated).
    y : array, shape ``(B, n)``
        Observations.
    prior : WeightPrior
        Prior of the ``d`` weights.
    noise : Noise
        Known sigma or its prior.
    config : NutsConfig, optional
        Sampler settings and layout (default ``NutsConfig()``).
    dataset_indices : array, shape ``(B,)``, optional
        Global dataset indices that key the randomness (default ``0..B-1``).
    num_devices : int, optional
        Local devices to split the datasets over (default: all).
    dataset_keys : array of keys, shape ``(B,)``, optional
        One key per dataset instead of ``(seed, dataset_indices)`` (those give
        ``keys.dataset_keys(seed, keys.INFER, dataset_indices)``; SBC samplers get these).
    draw_stats : bool, default True
        Return every draw's statistics (:data:`STAT_NAMES`, ``(B, C, S)``); False: only their per-run
        summaries (:data:`SUMMARY_STAT_NAMES`, ``(B, C)``, reduced on the device by :func:`summarize_draw_stats`).

    Returns
    -------
    NutsResult
        ``samples["w"]: (B, C, S, d)`` (``samples["sigma"]: (B, C, S)`` for unknown noise) and
        ``stats``: per draw ``(B, C, S)`` or per run ``(B, C)`` (``draw_stats``).

    Raises
    ------
    BayeslinError
        ``phi`` and ``y`` not shaped ``(B, n, d)`` and ``(B, n)``, zero datasets, or a prior of another
        dimension than ``d``.

    Examples
    --------
    Two datasets of the tutorial (11 points each, the model of :func:`bayeslin_jax.tutorial_spec`), 2 chains each,
    in one compiled program, against the exact (conjugate) posterior:

    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> from bayeslin_jax.core import exact
    >>> from bayeslin_jax.core.simulate import tutorial_data
    >>> spec = bl.tutorial_spec()  # N(0, 0.2) priors on intercept and slope, known sigma = 0.1
    >>> data = tutorial_data(0, np.arange(2))
    >>> phi = spec.basis(data.x)  # design matrices (B, n, d)
    >>> phi.shape
    (2, 11, 2)
    >>> config = bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2)
    >>> result = bl.sample_nuts(0, phi, data.y, spec.prior, spec.noise, config)
    >>> result.samples["w"].shape  # (B, C, S, d)
    (2, 2, 100, 2)
    >>> result.stats["diverging"].shape  # (B, C, S)
    (2, 2, 100)
    >>> post = exact.posterior(phi, data.y, spec.prior, spec.noise.sigma)
    >>> mean = np.asarray(result.samples["w"]).mean(axis=(1, 2))  # (B, d)
    >>> bool(np.all(np.abs(mean - post.mean) < post.sd))  # within a posterior sd of the exact mean
    True
    """
    config = NutsConfig() if config is None else config
    if phi.ndim != 3 or y.ndim != 2 or phi.shape[:2] != y.shape:
        raise BayeslinError(f"expected phi (B, n, d) and y (B, n), got {phi.shape} and {y.shape}")
    if phi.shape[0] == 0:
        raise BayeslinError("zero datasets: need at least one")
    dim = phi.shape[-1]
    if dim != prior.mean.shape[-1]:
        raise BayeslinError(f"phi has {dim} features but the prior has {prior.mean.shape[-1]} weights")
    model = Model(linear_regression, "linear", {"prior": prior, "noise": noise})
    known = isinstance(noise, KnownNoise)
    sites = ModelSites(
        latent=(("w", (dim,)),) if known else (("sigma", ()), ("w", (dim,))),
        kept=("w",) if known else ("w", "sigma"),
        shapes=((dim,),) if known else ((dim,), ()),
    )
    return sample_runs(seed, phi, y, model, sites, config, dtype=jax.dtypes.canonicalize_dtype(phi.dtype),
                       dataset_indices=dataset_indices, num_devices=num_devices, dataset_keys=dataset_keys,
                       draw_stats=draw_stats)


__all__ = ["ModelSites", "chunk_bounds", "inspect_model", "per_point_draws", "sample_model", "sample_nuts",
           "sample_runs"]
