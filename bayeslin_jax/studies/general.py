"""Simulation studies for any :class:`bayeslin_jax.model_spec.Model` with a feature site ``w``.

Same store, chunking, resume and per-dataset summaries as :func:`bayeslin_jax.studies.run.run_study`
(:func:`~bayeslin_jax.studies.run.summarize_chunk`: NUTS mean/sd/quantiles, R-hat, ESS, MCSE of each
weight, ``sigma_*`` when the model learns ``sigma``, divergences and tree depth per dataset), with the
truth drawn from the model's prior predictive (:func:`bayeslin_jax.general.simulate_model`) and the
fit on :func:`bayeslin_jax.engine.general.sample_model`. Open and report the store as any study
(:func:`~bayeslin_jax.studies.run.open_study`, ``bayeslin report``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayeslin_jax import simulate, store, validation
from bayeslin_jax.diagnostics import host_pool
from bayeslin_jax.engine import NutsConfig, NutsResult
from bayeslin_jax.engine.general import inspect_model, sample_model
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.general import simulate_model
from bayeslin_jax.model_spec import Model
from bayeslin_jax.studies.run import (
    DEFAULT_QUANTILES,
    STUDY_KIND,
    STUDY_VERSION,
    append_run_record,
    memory_peaks,
    open_study,
    summarize_chunk,
)


def model_study_meta(model: Model, config: NutsConfig, *, num_datasets: int, seed: int, num_points: int,
                     x_scale: float, save_draws: bool, quantiles: Sequence[float]) -> dict:
    """Everything that determines a general-model study's numbers (a resumed run must match it)."""
    nuts = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("method", "batch_size")}
    return {
        "kind": STUDY_KIND,
        "version": STUDY_VERSION,
        "spec": model.describe(),
        "nuts": nuts,
        "num_datasets": int(num_datasets),
        "seed": int(seed),
        "simulator": "model_prior",
        "num_points": int(num_points),
        "x_scale": float(x_scale),
        "save_draws": bool(save_draws),
        "quantiles": [float(v) for v in quantiles],
        "x64": bool(jax.config.jax_enable_x64),
        "versions": store.versions(),
        "part": {"index": 0, "count": 1},
    }


def run_model_study(
    path: str | Path,
    model: Model,
    config: NutsConfig | None = None,
    *,
    num_datasets: int,
    seed: int = 0,
    chunk_size: int = 256,
    num_points: int = simulate.TUTORIAL_N,
    x_scale: float = 1.0,
    save_draws: bool = False,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    num_devices: int | None = None,
    progress: bool = True,
    overlap: bool = True,
    host_processes: bool = False,
) -> xr.Dataset:
    """Run (or resume) a study of ``model`` into the zarr store at ``path``; returns the opened study.

    Dataset ``i`` is simulated from ``(seed, i)`` alone and fitted with the run keys of ``(seed, i)``,
    so chunk size and devices change nothing. The model needs ``feature_site="w"`` (every built-in).
    ``overlap``: sample chunk k+1 while chunk k's diagnostics run (see :func:`bayeslin_jax.store.run_chunked`).
    ``host_processes``: host summaries in a process pool next to an accelerator (as in
    :func:`~bayeslin_jax.studies.run.run_study`; the calling script needs a ``__main__`` guard).
    Each call appends a record (time, devices, peak memory) to the store's ``bayeslin_runs`` attr.
    """
    config = NutsConfig() if config is None else config
    if model.feature_site is None:
        raise BayeslinError(f"model {model.name!r} has no feature site: a study summarises the weights 'w'")
    validation.integer("number of datasets", num_datasets)
    validation.integer("chunk size", chunk_size)
    chunk_size = min(int(chunk_size), int(num_datasets))
    meta = model_study_meta(model, config, num_datasets=num_datasets, seed=seed, num_points=num_points,
                            x_scale=x_scale, save_draws=save_draws, quantiles=quantiles)

    def launch(indices: np.ndarray) -> tuple:
        """The device part of a chunk (a worker thread while the host finishes the chunk before)."""
        data = simulate_model(seed, indices, model, num_points, x_scale)
        inputs = model.design(data.x)
        sites = inspect_model(model, inputs, data.y)
        result = sample_model(seed, inputs, data.y, model, config, jnp.asarray(indices, dtype=jnp.uint32),
                              num_devices=num_devices, sites=sites, draw_stats=False)
        samples = {k: np.asarray(v) for k, v in result.samples.items() if k in (model.feature_site, "sigma")}
        samples["w"] = samples.pop(model.feature_site)
        return indices, data, samples, jax.tree.map(np.asarray, result.stats)

    def finish(launched: tuple) -> xr.Dataset:
        """The host part of a chunk: diagnostics and summaries."""
        indices, data, samples, stats = launched
        truth = {k: np.asarray(v) for k, v in data.truth.items()}
        sigma = truth.get("sigma", np.full(len(indices), np.nan))
        sim = simulate.SimulatedData(np.asarray(data.x), np.asarray(data.y), truth[model.feature_site], sigma)
        return summarize_chunk(indices, sim, NutsResult(samples, stats), model, config, quantiles, save_draws, None,
                               executor)

    started = time.time()
    devices = jax.local_devices()[: num_devices or jax.local_device_count()]
    executor = host_pool(devices[0].platform) if host_processes else None
    try:
        store.run_chunked(Path(path), meta=meta, num_items=int(num_datasets), chunk_size=chunk_size, launch=launch,
                          finish=finish, overlap=overlap, progress=progress, desc="datasets")
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    append_run_record(Path(path), {"started": started, "finished": time.time(), "chunk_size": chunk_size,
                                    "devices": [str(d) for d in devices], "overlap": bool(overlap),
                                    **memory_peaks(devices, chunk_size)})
    return open_study(path)


__all__ = ["model_study_meta", "run_model_study"]
