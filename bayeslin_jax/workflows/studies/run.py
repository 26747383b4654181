"""Simulation studies: NUTS and the exact posterior over B simulated datasets, chunked and resumable.

:func:`run_study` simulates dataset ``i`` from ``(seed, i)`` alone, runs NUTS on it (all datasets
of a chunk in one compiled program per device) and, for known noise, the exact conjugate
posterior, then keeps per-dataset summaries in a zarr store through
:func:`bayeslin_jax.workflows.store.run_chunked` (resumable after any crash, refuses a store written with
other settings). Dataset ``i``'s numbers depend only on ``(seed, i)``: not on the chunk size, nor
on how many devices or processes share the work.

Store variables (dims in brackets; ``q`` = quantile):

* data and truth: ``x, y [dataset, obs]``, ``true_w [dataset, feature]``, ``true_sigma [dataset]``;
* NUTS: ``nuts_mean, nuts_sd [dataset, feature]``, ``nuts_quantile [dataset, feature, quantile]``,
  ``rhat, ess_bulk, ess_tail, mcse_mean, mcse_sd [dataset, feature]`` (ArviZ's rank-normalised split
  R-hat, ESS and MCSE); ``sigma_*`` counterparts for unknown noise;
* sampler: ``divergences, max_tree_depth_hits [dataset]``, ``mean_tree_depth, mean_leapfrog,
  mean_accept [dataset]``, ``step_size [dataset, chain]``;
* exact (known noise only): ``exact_mean, exact_sd [dataset, feature]``;
* optional full draws: ``draws_w [dataset, chain, draw, feature]``, ``draws_sigma [dataset, chain, draw]``.

The sampler statistics are the engine's per-run summaries (``draw_stats=False``): the per-draw
statistics ``(B, C, S)`` are reduced on the device and never reach the host. Chunks run as a pipeline
(:func:`bayeslin_jax.workflows.store.run_chunked`, ``overlap=True``): the device samples chunk k+1 while the
host computes chunk k's diagnostics. Each run appends a record to the store's ``bayeslin_runs`` attr:
host, devices, ``overlap``, time spent simulating / sampling / on the exact posterior / summarising,
and peak memory (:func:`memory_peaks`: ``peak_rss_bytes``, ``peak_device_bytes`` where the backend
reports it, each also per dataset of a chunk).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayeslin_jax.core import exact, simulate, validation
from bayeslin_jax.core.errors import BayeslinError, StoreError
from bayeslin_jax.core.model import Model, flat_parameters
from bayeslin_jax.core.priors import KnownNoise, ModelSpec, is_gaussian_prior
from bayeslin_jax.diagnostics.device import DIAGNOSTIC_NAMES, summarize_rows
from bayeslin_jax.engine import SUMMARY_STAT_NAMES, NutsConfig, NutsResult, summarize_draw_stats
from bayeslin_jax.engine import whitening as reparam
from bayeslin_jax.engine.sampling import inspect_model, sample_model
from bayeslin_jax.workflows import store

STUDY_KIND = "bayeslin.study"
STUDY_VERSION = 1
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
RUNS_ATTR = store.RUNS_ATTR
PART_GLOB = "part-*-of-*.zarr"


# --------------------------------------------------------------------------------------------
# One chunk: simulate, sample, summarise.
# --------------------------------------------------------------------------------------------


def sample_on_devices(
    seed: int, phi, y, spec: ModelSpec, config: NutsConfig, indices: np.ndarray, devices: Sequence,
    draw_stats: bool = False,
) -> NutsResult:
    """NUTS over ``len(devices)`` local devices (see :func:`bayeslin_jax.engine.sample_nuts`), left on the device.

    A fixed design (``--design``) is sampled whitened (:func:`bayeslin_jax.engine.whitening.sampler_for`).

    Parameters
    ----------
    seed : int
        The study's seed; with ``indices`` it keys each run's randomness.
    phi : (B, n, d) array
        Design matrices.
    y : (B, n) array
        Observations.
    spec : ModelSpec
        The Gaussian model (prior and noise).
    config : NutsConfig
        Sampler settings.
    indices : (B,) int array
        Global dataset indices.
    devices : sequence of jax.Device
        The local devices to share the runs.
    draw_stats : bool
        Keep the per-draw sampler statistics ``(B, C, S)``; False (a study's default): only their per-run
        summaries, ``stats[name]: (B, C)``.

    Returns
    -------
    NutsResult
        ``samples["w"]: (B, C, S, d)`` (and ``"sigma"``) and ``stats``, on the device.
    """
    sampler = reparam.sampler_for(spec)  # a fixed design (--design) is sampled whitened: raw scales sample well
    result = sampler(seed, phi, y, spec.prior, spec.noise, config,
                     dataset_indices=jnp.asarray(indices, dtype=jnp.uint32), num_devices=len(devices),
                     draw_stats=draw_stats)
    return result  # the summaries run where the draws are (summarize_chunk); the host gets only what it writes


def run_summaries(stats: dict, max_tree_depth: int) -> dict[str, np.ndarray]:
    """Per-run sampler summaries ``{name: (B, C)}`` (:data:`~bayeslin_jax.engine.SUMMARY_STAT_NAMES`) as NumPy.

    Parameters
    ----------
    stats : dict
        The engine's ``draw_stats=False`` output, or per-draw statistics ``(B, C, S)``, reduced here by the
        engine's own :func:`~bayeslin_jax.engine.summarize_draw_stats` (on the host).
    max_tree_depth : int
        The sampler's maximum tree depth (for ``max_tree_depth_hits``).

    Returns
    -------
    dict of str to (B, C) numpy.ndarray
        ``divergences``, ``max_tree_depth_hits``, ``mean_tree_depth``, ``mean_leapfrog``, ``mean_accept``,
        ``step_size``.
    """
    if "diverging" in stats:
        host = {k: np.asarray(v) for k, v in stats.items()}  # on the host: NumPy arrays serve as the engine's arrays
        stats = summarize_draw_stats(cast("dict[str, jax.Array]", host), max_tree_depth)
    return {name: np.asarray(stats[name]) for name in SUMMARY_STAT_NAMES}


def summarize_chunk(
    indices: np.ndarray,
    data,
    result: NutsResult,
    feature_names: Sequence[str],
    config: NutsConfig,
    quantiles: Sequence[float],
    save_draws: bool,
    exact_post: exact.GaussianPosterior | None,
) -> xr.Dataset:
    """Per-dataset summaries of one chunk as an ``xr.Dataset`` over ``dataset`` (= ``indices``).

    ``feature_names``: the names of ``result.samples["w"]``'s last axis (a spec's or model's ``feature_names``).

    The draws' summaries (mean, sd, quantiles, R-hat, bulk/tail ESS, MCSE) are computed where the draws are,
    on the device (:func:`~bayeslin_jax.diagnostics.device.summarize_rows`: ArviZ's definitions in JAX, one
    compiled block program, a dataset's numbers independent of the chunk); only the results come to the host.

    Parameters
    ----------
    indices : (B,) int array
        Global dataset indices (the ``dataset`` coordinate).
    data : SimulatedData
        The chunk's data and truth: ``x, y: (B, n)``, ``w: (B, d)``, ``sigma: (B,)``.
    result : NutsResult
        NUTS on the chunk: ``samples["w"]: (B, C, S, d)`` (and ``"sigma": (B, C, S)``), per-run ``stats``.
    feature_names : sequence of str
        The names of ``result.samples["w"]``'s last axis (a spec's or model's ``feature_names``; a spec or model
        itself is accepted too).
    config : NutsConfig
        The sampler settings (chains, draws, maximum tree depth).
    quantiles : sequence of float
        Posterior quantiles to keep.
    save_draws : bool
        Also keep every draw (``draws_w``, ``draws_sigma``).
    exact_post : GaussianPosterior, optional
        The exact posterior (known noise): adds ``exact_mean`` and ``exact_sd``.

    Returns
    -------
    xarray.Dataset
        The store variables of the module docstring, over ``dataset`` = ``indices``.
    """
    q = np.asarray(quantiles, dtype=float)
    feature_names = list(getattr(feature_names, "feature_names", feature_names))  # a spec / Model, or the names
    w = jnp.moveaxis(jnp.asarray(result.samples["w"]), -1, 1)  # (B, d, C, S)
    w_summary = {k: np.asarray(v, dtype=float) for k, v in summarize_rows(w, quantiles).items()}
    mean, sd, quant = w_summary["mean"], w_summary["sd"], w_summary["quantile"]
    diag = {name: w_summary[name] for name in DIAGNOSTIC_NAMES}
    stats = run_summaries(result.stats, config.max_tree_depth)
    fd, fdq = ("dataset", "feature"), ("dataset", "feature", "quantile")
    out = {
        "x": (("dataset", "obs"), np.asarray(data.x)),
        "y": (("dataset", "obs"), np.asarray(data.y)),
        "true_w": (fd, np.asarray(data.w)),
        "true_sigma": (("dataset",), np.asarray(data.sigma)),
        "nuts_mean": (fd, mean),
        "nuts_sd": (fd, sd),
        "nuts_quantile": (fdq, quant),
        **{name: (fd, value) for name, value in diag.items()},
        "divergences": (("dataset",), stats["divergences"].sum(1, dtype=np.int32)),
        "max_tree_depth_hits": (("dataset",), stats["max_tree_depth_hits"].sum(1, dtype=np.int32)),
        # every chain has num_draws draws: the mean of the per-chain means is the mean over all draws
        "mean_tree_depth": (("dataset",), stats["mean_tree_depth"].mean(1, dtype=float)),
        "mean_leapfrog": (("dataset",), stats["mean_leapfrog"].mean(1, dtype=float)),
        "mean_accept": (("dataset",), stats["mean_accept"].mean(1, dtype=float)),
        "step_size": (("dataset", "chain"), stats["step_size"]),
    }
    if "sigma" in result.samples:
        sigma = jnp.asarray(result.samples["sigma"])  # (B, C, S)
        s_summary = {k: np.asarray(v, dtype=float) for k, v in summarize_rows(sigma, quantiles).items()}
        s_mean, s_sd, s_q = s_summary["mean"], s_summary["sd"], s_summary["quantile"]
        s_diag = {name: s_summary[name] for name in DIAGNOSTIC_NAMES}
        out.update(
            sigma_mean=(("dataset",), s_mean),
            sigma_sd=(("dataset",), s_sd),
            sigma_quantile=(("dataset", "quantile"), s_q),
            **{f"sigma_{name}": (("dataset",), value) for name, value in s_diag.items()},
        )
    if exact_post is not None:
        out["exact_mean"] = (fd, np.asarray(exact_post.mean, dtype=float))
        out["exact_sd"] = (fd, np.asarray(exact_post.sd, dtype=float))
    if save_draws:
        out["draws_w"] = (("dataset", "chain", "draw", "feature"), np.asarray(result.samples["w"]))
        if "sigma" in result.samples:
            out["draws_sigma"] = (("dataset", "chain", "draw"), np.asarray(result.samples["sigma"]))
    coords = {
        "dataset": np.asarray(indices, dtype=np.int64),
        "feature": feature_names,
        "quantile": q,
        "chain": np.arange(config.num_chains),
        "obs": np.arange(np.shape(data.x)[1]),
    }
    if save_draws:
        coords["draw"] = np.arange(config.num_draws)
    return xr.Dataset(out, coords=coords)


# --------------------------------------------------------------------------------------------
# Settings, identity and the run itself.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyConfig:  # numpydoc ignore=PR02
    """What a study computes (frozen: it is part of the store's identity, together with the spec).

    Parameters
    ----------
    num_datasets : int
        Datasets ``0 .. num_datasets - 1``; dataset ``i`` depends only on ``(seed, i)``.
    seed : int
        Root of every random stream, in ``[0, 2^32)``.
    nuts : NutsConfig
        Sampler settings (``batch_size`` changes speed only; ``method`` changes the bits and is part of the
        store's identity).
    simulator : str or Simulator
        ``"prior"`` (truth from the spec's prior), ``"tutorial"`` (``y = 0.3 x + 2 + N(0, 0.1)``), or any
        :class:`~bayeslin_jax.core.simulate.Simulator`.
    num_points : int
        Points per dataset of a named simulator (a Simulator object carries its own).
    save_draws : bool
        Also store every draw (``draws_w [dataset, chain, draw, feature]``; large).
    quantiles : tuple of float
        Posterior quantiles kept per dataset and weight.
    chunk_size : int, optional
        Datasets per chunk (default: what fits memory; a resumed store keeps its own).

    Raises
    ------
    BayeslinError
        A count that is not a positive integer, more than 2^32 datasets, a seed outside ``[0, 2^32)``,
        quantiles that are not increasing values strictly between 0 and 1, or an unknown simulator name.

    See Also
    --------
    run_study : Run the study.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> config = bl.StudyConfig(num_datasets=4, nuts=bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2))
    >>> config.seed, config.quantiles
    (0, (0.05, 0.25, 0.5, 0.75, 0.95))
    >>> config.make_simulator().describe()
    {'name': 'prior', 'num_points': 11, 'x_scale': 1.0}
    >>> bl.StudyConfig(num_datasets=4, simulator="tutorial", num_points=20).make_simulator().describe()["num_points"]
    20
    >>> bl.StudyConfig(num_datasets=4, quantiles=(0.9, 0.1))
    Traceback (most recent call last):
        ...
    bayeslin_jax.core.errors.BayeslinError: quantiles must be increasing values strictly between 0 and 1, got [0.9, 0.1]
    """

    num_datasets: int
    seed: int = 0
    nuts: NutsConfig = field(default_factory=NutsConfig)
    simulator: str | simulate.Simulator = "prior"
    num_points: int = simulate.TUTORIAL_N
    save_draws: bool = False
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        """Check the settings (:class:`BayeslinError` on the first invalid one) and store the quantiles as floats."""
        validation.integer("number of datasets", self.num_datasets)
        if self.num_datasets > 2**32:
            raise BayeslinError(
                f"at most 2^32 datasets per study (indices key the randomness), got {self.num_datasets}"
            )
        validation.check_seed(self.seed)
        validation.integer("number of points per dataset", self.num_points)
        if self.chunk_size is not None:
            validation.integer("chunk size", self.chunk_size)
        q = np.asarray(self.quantiles, dtype=float)
        if q.ndim != 1 or q.size == 0 or np.any((q <= 0) | (q >= 1)) or np.any(np.diff(q) <= 0):
            raise BayeslinError(
                f"quantiles must be increasing values strictly between 0 and 1, got {list(self.quantiles)}"
            )
        object.__setattr__(self, "quantiles", tuple(float(v) for v in q))
        self.make_simulator()  # an unknown name fails here

    def make_simulator(self) -> simulate.Simulator:
        """The simulator: a built-in by name (with ``num_points``) or the object given.

        Returns
        -------
        Simulator
            ``simulator(seed, indices, spec) -> SimulatedData`` (:mod:`bayeslin_jax.core.simulate`).

        Raises
        ------
        BayeslinError
            An unknown simulator name.
        """
        if isinstance(self.simulator, str):
            return simulate.get_simulator(self.simulator, num_points=self.num_points)
        return simulate.get_simulator(self.simulator)


def study_meta(spec: ModelSpec | Model, config: StudyConfig, part: dict | None = None,
               simulator: simulate.Simulator | simulate.ModelSimulator | None = None) -> dict:
    """Everything that determines a study's numbers (a resumed run must match it exactly).

    Leaves out what only changes speed: chunk size, devices, ``nuts.batch_size``. The resolved ``nuts.method``
    (map / vmap / barrier_free) is in: the kernels round differently
    (:func:`~bayeslin_jax.workflows.store.sampler_identity`).

    Parameters
    ----------
    spec : ModelSpec or Model
        The fitted model (its ``describe()`` is kept).
    config : StudyConfig
        The study's settings.
    part : dict, optional
        This process's slice of a distributed study (default ``{"index": 0, "count": 1}``).
    simulator : Simulator or ModelSimulator, optional
        The one the study runs (default ``config.make_simulator()``).

    Returns
    -------
    dict
        ``kind``, ``version``, ``spec``, ``nuts``, ``num_datasets``, ``seed``, ``simulator``, ``save_draws``,
        ``quantiles``, ``x64``, ``versions``, ``part``: the ``meta`` of the store's identity.
    """
    nuts = store.sampler_identity(config.nuts)
    return {
        "kind": STUDY_KIND,
        "version": STUDY_VERSION,
        "spec": spec.describe(),
        "nuts": nuts,
        "num_datasets": int(config.num_datasets),
        "seed": int(config.seed),
        # a ModelSimulator is described alike (by its describe()), though its call returns ModelData
        "simulator": simulate.describe_simulator(cast(simulate.Simulator, simulator or config.make_simulator())),
        "save_draws": bool(config.save_draws),
        "quantiles": list(config.quantiles),
        "x64": bool(jax.config.jax_enable_x64),
        "versions": store.versions(),
        "part": part or {"index": 0, "count": 1},
    }


def bytes_per_dataset(config: NutsConfig, spec: ModelSpec, save_draws: bool = False) -> int:
    """Rough peak memory of one dataset in a chunk: engine output plus host-side diagnostics.

    Parameters
    ----------
    config : NutsConfig
        Sampler settings (chains, draws).
    spec : ModelSpec
        The model (its number of parameters).
    save_draws : bool
        The draws are kept too.

    Returns
    -------
    int
        Bytes per dataset.
    """
    params = spec.basis.dim + (0 if spec.known_sigma else 1)
    draws = config.num_chains * config.num_draws
    engine = draws * (params + 7) * 4  # draws + 7 sampler statistics, float32
    host = draws * params * 8 * 6  # the summaries' temporaries (sorts, FFTs, indicators) and the float64 copies
    return 2 * engine + host + (draws * params * 4 if save_draws else 0)


def default_chunk_size(num_datasets: int, config: NutsConfig, spec: ModelSpec, num_devices: int,
                       save_draws: bool = False) -> int:
    """Chunk size that fits memory: 1/8 of host RAM (and 1/4 of device memory on accelerators).

    On CPU it is also capped at 256 datasets per device (a chunk then takes seconds, so the
    progress bar moves and a crash loses little).

    Parameters
    ----------
    num_datasets : int
        Datasets of the study (or of this process's part).
    config : NutsConfig
        Sampler settings.
    spec : ModelSpec
        The model.
    num_devices : int
        Local devices sharing each chunk.
    save_draws : bool
        The draws are kept too.

    Returns
    -------
    int
        Datasets per chunk: a multiple of ``num_devices`` (at least ``num_devices``), at most ``num_datasets``.
    """
    per = bytes_per_dataset(config, spec, save_draws)
    try:
        host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        host = 8 * 2**30
    size = host // 8 // per
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        size = min(size, 256 * num_devices)
    else:
        limit = (device.memory_stats() or {}).get("bytes_limit", 16 * 2**30)
        size = min(size, num_devices * (limit // 4 // (per // 2)))
    size = max(num_devices, (size // num_devices) * num_devices)
    return int(min(num_datasets, size))


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> tuple[int, int]:
    """Join a multi-process run (``jax.distributed.initialize``); returns ``(process_index, count)``.

    Without arguments JAX detects SLURM, Open MPI, Kubernetes and TPU environments. A process already joined
    is left as it is.

    Parameters
    ----------
    coordinator : str, optional
        Address ``host:port`` of process 0.
    num_processes : int, optional
        Number of processes.
    process_id : int, optional
        This process's index.

    Returns
    -------
    (int, int)
        ``(jax.process_index(), jax.process_count())``.

    Raises
    ------
    BayeslinError
        JAX could not join the run.
    """
    if not jax.distributed.is_initialized():
        try:
            jax.distributed.initialize(coordinator, num_processes, process_id)
        except (RuntimeError, ValueError) as err:
            raise BayeslinError(f"could not join the multi-process run: {err}") from None
    return jax.process_index(), jax.process_count()


def part_path(path: str | Path, index: int, count: int) -> Path:
    """Where process ``index`` of ``count`` writes its slice of a distributed study.

    Parameters
    ----------
    path : str or Path
        The study's folder.
    index : int
        The process.
    count : int
        Number of processes.

    Returns
    -------
    Path
        ``path/part-<index>-of-<count>.zarr`` (five digits each).
    """
    return Path(path) / f"part-{index:05d}-of-{count:05d}.zarr"


def part_range(num_datasets: int, index: int, count: int) -> tuple[int, int]:
    """Contiguous ``[start, stop)`` slice of the datasets owned by process ``index``.

    Parameters
    ----------
    num_datasets : int
        Datasets of the whole study.
    index : int
        The process.
    count : int
        Number of processes.

    Returns
    -------
    (int, int)
        ``(start, stop)``; the slices of all processes tile ``0 .. num_datasets - 1``.
    """
    return num_datasets * index // count, num_datasets * (index + 1) // count


def pads_nuts(platform: str) -> bool:
    """Whether a short last chunk is padded to full size for NUTS too (accelerators; tests patch this on CPU).

    Parameters
    ----------
    platform : str
        The devices' platform (``"cpu"``, ``"gpu"``, ``"tpu"``, ...).

    Returns
    -------
    bool
        True off the CPU.
    """
    return platform != "cpu"


def memory_peaks(devices: Sequence, chunk_size: int) -> dict[str, float | int | None]:
    """Peak host and device memory so far, in bytes, and per dataset of a chunk of ``chunk_size``.

    ``peak_rss_bytes``: this process's peak resident set size (``getrusage``; since the process began,
    JAX's runtime included). ``peak_device_bytes``: the sum over ``devices`` of ``peak_bytes_in_use``
    where the backend reports it (GPU, TPU), else None (CPU: device memory is host memory).

    Parameters
    ----------
    devices : sequence of jax.Device
        The devices the study uses.
    chunk_size : int
        Datasets per chunk.

    Returns
    -------
    dict
        ``peak_rss_bytes``, ``peak_rss_bytes_per_dataset``, ``peak_device_bytes``, ``peak_device_bytes_per_dataset``.
    """
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    stats = [d.memory_stats() or {} for d in devices]
    device = sum(s["peak_bytes_in_use"] for s in stats) if all("peak_bytes_in_use" in s for s in stats) else None
    return {
        "peak_rss_bytes": int(rss),
        "peak_rss_bytes_per_dataset": rss / chunk_size,
        "peak_device_bytes": None if device is None else int(device),
        "peak_device_bytes_per_dataset": None if device is None else device / chunk_size,
    }


def append_run_record(path: Path, record: dict) -> None:
    """Append ``record`` to the store's run records (takes the writer lock; crash-safe root rewrite).

    Parameters
    ----------
    path : Path
        The store.
    record : dict
        The run record (JSON-serialisable).

    Raises
    ------
    StoreError
        Another process is writing the store, or the record cannot be written.
    """
    with store.writer_lock(path):
        runs = list(store.read_root(path).get("attributes", {}).get(RUNS_ATTR, []))
        try:
            store.update_root_attrs(path, {RUNS_ATTR: [*runs, record]})
        except BayeslinError as err:
            raise StoreError(f"could not record the run in store {path} ({err}); its chunks are complete") from err


def check_study_memory(num_items: int, chunk_size: int, nuts: NutsConfig, num_params: int, save_draws: bool,
                       what: str = "datasets") -> None:
    """Refuse (one line, the estimate and the limit) a study whose chunk or whose index would not fit in memory.

    A chunk holds its draws on the device and their float64 summaries on the host
    (:func:`~bayeslin_jax.engine.memory.estimate_draw_bytes`); the finished store is opened with its whole
    ``dataset`` index (8 bytes per item) and chunk bookkeeping (about 200 bytes per chunk) in memory.

    Parameters
    ----------
    num_items : int
        Items of the store.
    chunk_size : int
        Items per chunk.
    nuts : NutsConfig
        Sampler settings (chains, draws).
    num_params : int
        Sampled parameters per item.
    save_draws : bool
        The draws are kept too.
    what : str
        Plural name of the items, for the message.

    Raises
    ------
    BayeslinError
        The chunk's draws or the store's index would not fit in memory (the estimate, the limit and a hint).
    """
    from bayeslin_jax.engine.memory import check_memory, estimate_draw_bytes

    draws = estimate_draw_bytes(chunk_size, nuts.num_chains, nuts.num_draws, num_params + 7, 4)
    check_memory(draws * 3 + (draws if save_draws else 0), f"a chunk of {chunk_size} {what}",
                 purpose="for its draws and their summaries", hint="lower --chunk-size, --draws or --chains")
    num_chunks = -(-num_items // chunk_size)
    check_memory(num_items * 8 + num_chunks * 200, f"a store of {num_items} {what}",
                 purpose=f"for its {what.rstrip('s')} index and chunk bookkeeping",
                 hint="split the work over several stores (fewer per run, or --distributed)")


def _model_chunk(seed: int, indices: np.ndarray, data: simulate.ModelData, model: Model, config: NutsConfig,
                 num_devices: int) -> tuple[simulate.SimulatedData, NutsResult, list[str]]:
    """Sample one simulated chunk of a general model's study; the draws stay on the device.

    The ``feature`` dim holds the feature site's elements (the built-ins' ``w``) or, for a model without one, every
    element of every kept site (``mu``, ``z[3]``, ...). Returns the data (truth as ``w``), the result (``"w":
    (B, C, S, P)``) and the ``P`` names.
    """
    inputs = model.design(data.x)
    sites = inspect_model(model, inputs, data.y)
    result = sample_model(seed, inputs, data.y, model, config, jnp.asarray(indices, dtype=jnp.uint32),
                          num_devices=num_devices, sites=sites, draw_stats=False)
    truth = {k: np.asarray(v) for k, v in data.truth.items()}
    if model.feature_site is not None:
        names = list(model.feature_names)
        samples = {k: v for k, v in result.samples.items() if k in (model.feature_site, "sigma")}
        samples["w"], true_w = samples.pop(model.feature_site), truth[model.feature_site]
    else:
        names, true_w = flat_parameters(truth, sites.kept, 1)  # the draws' elements, named alike
        samples = {"w": jnp.concatenate([jnp.reshape(result.samples[s], (*result.samples[s].shape[:3], -1))
                                         for s in sites.kept], axis=-1)}  # (B, C, S, P), on the device
    sigma = truth.get("sigma", np.full(len(indices), np.nan))
    host = (np.asarray(data.x), np.asarray(data.y), true_w, sigma)  # NumPy arrays, as in every chunk's data
    sim = simulate.SimulatedData(*cast("tuple[jax.Array, jax.Array, jax.Array, jax.Array]", host))
    return sim, NutsResult(samples, jax.tree.map(np.asarray, result.stats)), names


def run_study(
    path: str | Path,
    spec: ModelSpec | Model,
    config: StudyConfig,
    *,
    num_devices: int | None = None,
    progress: bool = True,
    distributed: bool = False,
    overlap: bool = True,
) -> xr.Dataset:
    """Run (or resume) a simulation study into the zarr store at ``path``; returns the store's dataset.

    Parameters
    ----------
    path : path
        The store (a directory); rerunning the same call resumes it.
    spec : ModelSpec or Model
        The fitted model (and, for the ``"prior"`` simulator, the data-generating one). A :class:`Model` without
        the Gaussian capability (a user's NumPyro model) is simulated from its own prior (``model.num_points``
        or ``config.num_points`` points) and has no exact posterior; its ``feature`` dim is described at
        :func:`_model_chunk`.
    config : StudyConfig
        What to compute: datasets, seed, sampler, simulator, what to keep.
    num_devices : int, optional
        Local devices to use (default all).
    progress : bool
        Show a progress bar.
    distributed : bool
        This process is one of ``jax.process_count()`` (call :func:`initialize_distributed` first, or let
        this call it); it owns a contiguous slice of the datasets and writes ``path/part-<i>-of-<n>.zarr``;
        open the whole with :func:`open_study`.
    overlap : bool
        Pipeline the chunks (:func:`bayeslin_jax.workflows.store.run_chunked`): a worker thread simulates and
        samples chunk k+1 while this thread has chunk k summarised on the device (draws stay there unless saved) and
        writes it. False: one chunk at a time (same numbers).

    Returns
    -------
    xarray.Dataset
        :func:`open_study` of the finished store (per-dataset variables, see the module docstring); attr
        ``run_timings``: this run's seconds spent simulating, sampling, on the exact posterior and summarising.

    Raises
    ------
    BayeslinError
        ``config`` is not a :class:`StudyConfig` or ``spec`` no model; a simulator that cannot serve the model; a
        store at ``path`` written with other settings (rerun with the original settings to resume, or choose a new
        path) or a path that is no study store; a chunk too large for memory; a distributed process without
        datasets.
    StoreError
        Another process is writing the store, its metadata is damaged beyond repair, or a chunk cannot be written
        (full disk, permissions): completed chunks are kept and a rerun resumes.

    See Also
    --------
    open_study : Open a finished study.
    bayeslin_jax.workflows.studies.write_report : Its report (text, JSON, figure, failed datasets).

    Examples
    --------
    Four datasets simulated from the tutorial model's prior, sampled by NUTS and, the noise being known,
    compared with the exact posterior:

    >>> import shutil, tempfile
    >>> import bayeslin_jax as bl
    >>> folder = tempfile.mkdtemp()
    >>> config = bl.StudyConfig(num_datasets=4, nuts=bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2))
    >>> ds = bl.run_study(f"{folder}/study.zarr", bl.tutorial_spec(), config, progress=False)
    >>> ds.sizes["dataset"], ds["nuts_mean"].dims, ds.attrs["complete"]
    (4, ('dataset', 'feature'), True)
    >>> z = (ds["nuts_mean"] - ds["exact_mean"]) / ds["exact_sd"]  # standardized error, ~N(0, 1 / ESS)
    >>> bool(abs(z).max() < 1)
    True

    Rerunning the same call resumes the store (here: nothing is left to do); other settings are refused:

    >>> bl.run_study(f"{folder}/study.zarr", bl.tutorial_spec(), config, progress=False).sizes["dataset"]
    4
    >>> bl.run_study(f"{folder}/study.zarr", bl.tutorial_spec(), bl.StudyConfig(num_datasets=4, seed=1,
    ...              nuts=config.nuts), progress=False)
    Traceback (most recent call last):
        ...
    bayeslin_jax.core.errors.BayeslinError: store ... written with different settings: meta.seed (store: 0, now: 1)...
    >>> shutil.rmtree(folder)
    """
    if not isinstance(config, StudyConfig):
        raise BayeslinError(f"config must be a StudyConfig, got {type(config).__name__}")
    if not isinstance(spec, Model | ModelSpec):
        raise BayeslinError(f"the study's model must be a bayeslin_jax Model or ModelSpec, got {type(spec).__name__}")
    model = spec if isinstance(spec, Model) and spec.spec is None else None  # a general model: no exact posterior
    # the Gaussian spec (of a Model with the Gaussian capability: its spec); read only when model is None
    spec = cast(ModelSpec, spec.spec if isinstance(spec, Model) and model is None else spec)
    simulator: simulate.Simulator | simulate.ModelSimulator  # the latter for a general model
    if model is None:
        simulator = config.make_simulator()
        simulator(config.seed, np.zeros(1, dtype=np.int64), spec)  # a simulator that cannot serve this spec fails now
    elif config.simulator == "prior":
        simulator = simulate.ModelSimulator(model, model.num_points or config.num_points)
    elif isinstance(config.simulator, simulate.ModelSimulator) and config.simulator.model == model:
        simulator = config.simulator  # e.g. another x_scale
    else:
        raise BayeslinError(f"a study of {model.name!r} simulates from the model's prior: simulator 'prior' or "
                            f"ModelSimulator({model.name}, ...), got {config.simulator!r}")
    nuts, save_draws, quantiles, seed = config.nuts, config.save_draws, config.quantiles, config.seed
    part_index, part_count = initialize_distributed() if distributed else (0, 1)
    start, stop = part_range(int(config.num_datasets), part_index, part_count)
    store_path = part_path(path, part_index, part_count) if distributed else Path(path)
    if stop <= start:
        raise BayeslinError(f"process {part_index} of {part_count} has no datasets: use fewer processes")
    if num_devices is not None:
        validation.integer("number of devices", num_devices)
    devices = jax.local_devices()[: num_devices or jax.local_device_count()]
    if config.chunk_size is not None:
        chunk_size = min(int(config.chunk_size), stop - start)
    elif store.is_store(store_path):
        chunk_size = int(store.read_identity(store_path)["chunk_size"])
    elif model is not None:  # its parameters are known only once traced: the CPU default
        chunk_size = min(256, stop - start)
    else:
        chunk_size = default_chunk_size(stop - start, nuts, spec, len(devices), save_draws)
    part = {"index": part_index, "count": part_count, "start": start, "stop": stop}
    params = None if model is not None else spec.basis.dim + (0 if spec.known_sigma else 1)
    check_study_memory(stop - start, chunk_size, nuts, params or 1, save_draws)
    meta = study_meta(model or spec, config, part, simulator)
    # Simulation and the exact posterior always see full chunks (one compiled shape; they are
    # cheap). NUTS is padded too on accelerators, where the extra lock-step runs are ~free; on CPU
    # a short last chunk costs one recompile (~2 s) instead of up to a chunk of wasted runs.
    pad_nuts = pads_nuts(devices[0].platform)
    posterior_fn = jax.jit(exact.posterior)
    timings = {"simulate_s": 0.0, "nuts_s": 0.0, "exact_s": 0.0, "summary_s": 0.0}

    def launch(indices: np.ndarray) -> tuple:
        """The device part of a chunk (a worker thread while the host finishes the chunk before).

        Parameters
        ----------
        indices : (k,) int64 array
            The chunk's global dataset indices.

        Returns
        -------
        tuple
            ``(indices, data, result, exact posterior or None, feature names)`` for :func:`finish`.
        """
        t0 = time.perf_counter()
        if model is not None:  # nothing padded, no exact posterior
            simulated = cast(simulate.ModelSimulator, simulator)(seed, indices)
            t1 = time.perf_counter()
            data, result, names = _model_chunk(seed, indices, simulated, model, nuts, len(devices))
            timings["simulate_s"] += t1 - t0
            timings["nuts_s"] += time.perf_counter() - t1
            return indices, data, result, None, names
        count = len(indices)
        padded = np.concatenate([indices, np.full(chunk_size - count, indices[-1])])
        data = cast(simulate.Simulator, simulator)(seed, padded, spec)
        phi = spec.basis(data.x)
        t1 = time.perf_counter()
        runs = slice(None) if pad_nuts else slice(0, count)
        result = sample_on_devices(seed, phi[runs], data.y[runs], spec, nuts, padded[runs], devices)
        t2 = time.perf_counter()
        has_exact = spec.known_sigma and is_gaussian_prior(spec.prior)
        post = posterior_fn(phi, data.y, spec.prior, cast(KnownNoise, spec.noise).sigma) if has_exact else None
        keep = slice(0, count)
        data = jax.tree.map(lambda a: np.asarray(a)[keep], data)
        result = result._replace(  # lanes (barrier_free's per-device counts) are not per dataset
            samples=jax.tree.map(lambda a: a[keep], result.samples), stats=jax.tree.map(lambda a: a[keep], result.stats)
        )
        post = None if post is None else jax.tree.map(lambda a: np.asarray(a)[keep], post)
        t3 = time.perf_counter()
        for key, dt in zip(("simulate_s", "nuts_s", "exact_s"), (t1 - t0, t2 - t1, t3 - t2), strict=True):
            timings[key] += dt
        return indices, data, result, post, spec.feature_names

    def finish(launched: tuple) -> xr.Dataset:
        """Chunk k's summaries, on the device (the draws stay there), while the worker samples chunk k + 1.

        Parameters
        ----------
        launched : tuple
            What :func:`launch` returned for the chunk.

        Returns
        -------
        xarray.Dataset
            The chunk's store variables (:func:`summarize_chunk`).
        """
        indices, data, result, post, names = launched
        t0 = time.perf_counter()
        ds = summarize_chunk(indices, data, result, names, nuts, quantiles, save_draws, post)
        timings["summary_s"] += time.perf_counter() - t0
        return ds

    started = time.time()
    before = store.done_mask(store_path).sum() if store.is_store(store_path) else 0

    def record() -> dict:
        """This run's record, once every chunk is written (:func:`run_record`).

        Returns
        -------
        dict
            The ``bayeslin_runs`` entry.
        """
        return run_record(started, before, part_index, part_count, devices, chunk_size, nuts, overlap, timings)

    try:
        store.run_chunked(store_path, meta=meta, num_items=stop - start, chunk_size=chunk_size, launch=launch,
                          finish=finish, overlap=overlap, progress=progress, desc="datasets", first_item=start,
                          record=record)
    except KeyError as err:  # simulating a model whose prior trace lacks its observed site
        if model is not None and err.args[:1] == (model.obs,):
            raise BayeslinError(f"model {model.name!r} has no observed site {model.obs!r} "
                                "(numpyro.sample(..., obs=y))") from None
        raise
    ds = open_study(store_path)
    ds.attrs["run_timings"] = timings
    return ds


def run_record(started: float, before: int, part_index: int, part_count: int, devices: Sequence, chunk_size: int,
               nuts: NutsConfig, overlap: bool, timings: dict) -> dict:
    """The ``bayeslin_runs`` entry of one run: host, devices, layout, time spent, peak memory (informational).

    Parameters
    ----------
    started : float
        Unix time the run began.
    before : int
        Chunks already done when it began.
    part_index, part_count : int
        This process and the number of processes.
    devices : sequence of jax.Device
        The devices used.
    chunk_size : int
        Datasets per chunk.
    nuts : NutsConfig
        Sampler settings (``method``, ``batch_size``).
    overlap : bool
        Whether the chunks were pipelined.
    timings : dict of str to float
        Seconds spent simulating, sampling, on the exact posterior and summarising.

    Returns
    -------
    dict
        JSON-ready record.
    """
    return {
        "started": started,
        "finished": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process": [part_index, part_count],
        "platform": devices[0].platform,
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "chunks_before": int(before),
        "chunk_size": int(chunk_size),
        "method": nuts.method,
        "batch_size": nuts.batch_size,
        "overlap": bool(overlap),
        **{k: round(v, 4) for k, v in timings.items()},
        **memory_peaks(devices, chunk_size),
    }


def _is_parts_dir(path: Path) -> bool:
    return path.is_dir() and not store.is_store(path) and any(path.glob(PART_GLOB))


def open_study(path: str | Path | Sequence[str | Path], allow_incomplete: bool = False) -> xr.Dataset:
    """Open a study: one store, a directory of per-process parts, or a list of part stores.

    Parts are checked to come from the same study (same settings, every process present unless
    ``allow_incomplete``) and concatenated along ``dataset``. A single part opened by its own
    path gives just its slice. Every done chunk is verified against its checksums first.

    Parameters
    ----------
    path : str, Path or sequence of str or Path
        A study store (:func:`run_study`'s ``path``), the folder of a distributed study's
        ``part-*-of-*.zarr`` stores, or a list of part stores.
    allow_incomplete : bool
        Open an unfinished study (its finished datasets only) or one with parts missing, instead of raising.

    Returns
    -------
    xarray.Dataset
        The per-dataset variables (see the module docstring) over ``dataset``; attrs ``meta`` (settings),
        ``complete``, ``runs`` (the run records), ``paths`` (the stores).

    Raises
    ------
    BayeslinError
        No study store at ``path``, a store of another kind, parts of different studies, parts missing or an
        incomplete store (unless ``allow_incomplete``).
    StoreError
        A done chunk's file or the store's metadata is missing or altered (the message names the store, the
        variable and the chunk).

    Examples
    --------
    >>> import shutil, tempfile
    >>> import bayeslin_jax as bl
    >>> folder = tempfile.mkdtemp()
    >>> config = bl.StudyConfig(num_datasets=4, nuts=bl.NutsConfig(num_warmup=100, num_draws=100, num_chains=2))
    >>> _ = bl.run_study(f"{folder}/study.zarr", bl.tutorial_spec(), config, progress=False)
    >>> ds = bl.open_study(f"{folder}/study.zarr")
    >>> ds.attrs["complete"], ds.sizes["dataset"], ds["feature"].values.tolist()
    (True, 4, ['b', 'm'])
    >>> ds.attrs["meta"]["seed"], ds.attrs["meta"]["nuts"]["num_draws"], len(ds.attrs["runs"])
    (0, 100, 1)
    >>> bl.open_study(f"{folder}/elsewhere.zarr")
    Traceback (most recent call last):
        ...
    bayeslin_jax.core.errors.BayeslinError: no study store at .../elsewhere.zarr
    >>> shutil.rmtree(folder)
    """
    single = False  # one store opened by its own path: a part of a distributed study is fine alone
    if isinstance(path, str | Path):
        path = Path(path)
        if store.is_store(path):
            paths, single = [path], True
        elif _is_parts_dir(path):
            paths = sorted(path.glob(PART_GLOB))
        else:
            if path.is_dir():
                store.read_identity(path)  # names a store that lost its root zarr.json
            raise BayeslinError(f"no study store at {path}")
    else:
        paths = [Path(p) for p in path]
    if not paths:
        raise BayeslinError("no study stores given")
    metas = []
    for p in paths:
        identity = store.read_identity(p)
        meta = identity.get("meta", {})
        if meta.get("kind") != STUDY_KIND:
            raise BayeslinError(f"{p} is not a study store (kind {meta.get('kind')!r})")
        metas.append(meta)
    base = {k: v for k, v in metas[0].items() if k != "part"}
    for p, meta in zip(paths, metas, strict=True):
        diffs = store.diff_paths(base, {k: v for k, v in meta.items() if k != "part"})
        if diffs:
            raise BayeslinError(f"{p} belongs to a different study than {paths[0]} (differs in {', '.join(diffs[:4])})")
    count = metas[0]["part"]["count"]
    indices = sorted(m["part"]["index"] for m in metas)
    all_parts = single or indices == list(range(count))
    if not all_parts and not allow_incomplete:
        raise BayeslinError(f"study has {count} parts but found {len(paths)} (indices {indices})")
    parts = [store.open_store(p, allow_incomplete=allow_incomplete) for p in paths]
    ds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="dataset", data_vars="minimal", coords="minimal",
                                                    compat="override", join="override")
    ds = ds.sortby("dataset") if len(parts) > 1 else ds
    runs = [r for p in paths for r in cast("list[dict]", store.open_group(p).attrs.get(RUNS_ATTR, []))]
    complete = all(part.attrs.get("complete", False) for part in parts) and all_parts
    ds.attrs = {"meta": base, "complete": complete, "runs": runs, "paths": [str(p) for p in paths]}
    return ds


def throughput(ds: xr.Dataset) -> dict[str, float]:
    """Datasets per second and seconds per dataset from a study's chunk log (compute + write).

    Parameters
    ----------
    ds : xarray.Dataset
        A study from :func:`open_study` (its ``paths`` attr names the stores).

    Returns
    -------
    dict of str to float
        ``datasets``, ``seconds``, ``datasets_per_s``, ``s_per_dataset`` (NaN without any time logged).
    """
    seconds = 0.0
    for p in ds.attrs.get("paths", []):
        log = store.chunk_log(p)
        done = log["chunk_done"].values == 1
        seconds += float(np.nansum(log["chunk_compute_seconds"].values[done] + log["chunk_write_seconds"].values[done]))
    n = ds.sizes["dataset"]
    return {
        "datasets": int(n),
        "seconds": seconds,
        "datasets_per_s": n / seconds if seconds > 0 else math.nan,
        "s_per_dataset": seconds / n if n else math.nan,
    }
