"""Simulation-based calibration for any :class:`bayeslin_jax.model_spec.Model` (built-in or user model).

Same protocol as :mod:`bayeslin_jax.sbc.run` with NUTS: simulation ``i`` is a prior-predictive draw of the
*simulation* model (:func:`bayeslin_jax.general.simulate_model`, keyed by ``(seed, i)``), fitted by the
*fit* model (normally the same) on the batched engine (:func:`bayeslin_jax.engine.general.sample_model`);
test quantities are the elements of the model's ``quantities`` sites (feature names for the feature site,
``site[k]`` otherwise) and ``loglik``, the log-likelihood of the simulated data summed over points. Ranks,
PIT, thinning to ``L`` draws and the diagnostics gate are those of :mod:`bayeslin_jax.sbc.run`; the
output dataset has the same variables, so :func:`bayeslin_jax.sbc.stats.summarize` gives the verdict
(its DAP tests cover ``model.dap_quantities``, named in the metadata).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array

from bayeslin_jax import validation
from bayeslin_jax.engine.general import ModelSites, inspect_model, sample_model
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.general import pointwise_log_likelihood, simulate_model
from bayeslin_jax.model_spec import Model
from bayeslin_jax.sbc.run import SbcConfig, _jitter, default_chunk_size, gate_and_rank, run_chunks
from bayeslin_jax.store import versions


def _sbc_sites(model: Model, sites: ModelSites) -> tuple[str, ...]:
    chosen = sites.kept if model.quantities is None else model.quantities
    missing = [s for s in chosen if s not in sites.kept]
    if missing:
        raise BayeslinError(f"SBC quantity site(s) {missing} are not sites of model {model.name!r}")
    return tuple(chosen)


def model_quantity_names(model: Model, sites: ModelSites) -> list[str]:
    """Names of the test quantities: every element of the SBC sites, then ``loglik``."""
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
    """SBC for simulations ``indices: (B,)`` -> ``xr.Dataset`` with dims ``(dataset, quantity)``.

    Variables: ``rank`` (0..L), ``pit``, ``truth``, ``post_mean``, ``post_sd``, ``rhat``, ``ess_bulk``,
    ``ess_tail``, ``divergences`` (dataset) and ``gate_ok`` (dataset), as :func:`bayeslin_jax.sbc.run.sbc_chunk`.
    """
    config = SbcConfig() if config is None else config
    if config.engine != "nuts":
        raise BayeslinError("SBC of a general model needs the NUTS engine (no exact posterior)")
    fit = model if fit_model is None else fit_model
    indices = np.asarray(indices, dtype=np.int64)
    data = simulate_model(seed, indices, model, config.num_points, config.x_scale)
    inputs = fit.design(data.x)
    sites = inspect_model(fit, inputs, data.y)
    missing = [name for name, _ in sites.latent if name not in data.truth]
    if missing:
        raise BayeslinError(f"the simulation model draws no truth for the fit model's latent site(s) {missing}")
    names = model_quantity_names(fit, sites)
    idx32 = jnp.asarray(indices, dtype=jnp.uint32)
    result = sample_model(seed, inputs, data.y, fit, config.nuts, dataset_indices=idx32, sites=sites,
                          draw_stats=False)
    q_draws = np.moveaxis(np.asarray(_quantities(fit, sites, result.samples, inputs, data.y)), -1, 1)  # (B,Q,C,S)
    truth_values = {k: v[:, None, None] for k, v in data.truth.items() if k in sites.kept}
    truth = np.asarray(_quantities(fit, sites, truth_values, inputs, data.y))[:, 0, 0]  # (B, Q)
    jitter = _jitter(seed, indices, len(names))
    diag, divergences, gate_ok, flat, rank, pit = gate_and_rank(q_draws, truth, result.stats["divergences"], jitter,
                                                                config)
    dims = ("dataset", "quantity")
    out = {name: (dims, diag[name].astype(np.float32)) for name in ("rhat", "ess_bulk", "ess_tail")}
    out.update(
        divergences=(("dataset",), divergences.astype(np.int32)),
        rank=(dims, np.asarray(rank, dtype=np.int32)),
        pit=(dims, np.asarray(pit, dtype=np.float64)),
        truth=(dims, truth.astype(np.float64)),
        post_mean=(dims, flat.mean(-1).astype(np.float64)),
        post_sd=(dims, flat.std(-1, ddof=1).astype(np.float64)),
        gate_ok=(("dataset",), np.asarray(gate_ok, dtype=bool)),
    )
    return xr.Dataset(out, coords={"dataset": indices, "quantity": names})


def model_sbc_meta(seed: int, model: Model, fit_model: Model, config: SbcConfig) -> dict:
    """Identity of a general-model SBC run (what a resumed store must match)."""
    dap = list(fit_model.feature_names if fit_model.dap_quantities is None else fit_model.dap_quantities)
    return {
        "kind": "sbc",
        "seed": int(seed),
        "sim_model": model.describe(),
        "fit_model": fit_model.describe(),
        "config": config.describe(),
        "dap_quantities": dap,
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions(),
    }


def run_model_sbc(
    num_simulations: int,
    *,
    model: Model,
    seed: int = 0,
    fit_model: Model | None = None,
    config: SbcConfig | None = None,
    chunk_size: int | None = None,
    store: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """SBC of ``model`` over simulations ``0 .. num_simulations - 1`` (see the module docstring).

    ``fit_model``: fit with another model (e.g. a wrong prior, to show the checks have power).
    With ``store`` the chunks go to a resumable zarr store (:func:`bayeslin_jax.store.run_chunked`).
    Returns the per-simulation dataset with attrs ``meta`` (JSON); summarize it with
    :func:`bayeslin_jax.sbc.stats.summarize`.
    """
    fit = model if fit_model is None else fit_model
    config = SbcConfig() if config is None else config
    validation.integer("number of simulations", num_simulations)
    chunk_size = default_chunk_size(config) if chunk_size is None else chunk_size
    validation.integer("chunk size", chunk_size)
    meta = model_sbc_meta(seed, model, fit, config)

    def compute(indices: np.ndarray) -> xr.Dataset:
        return model_sbc_chunk(indices, seed=seed, model=model, fit_model=fit, config=config)

    return run_chunks(compute, int(num_simulations), int(chunk_size), meta=meta, store=store, progress=progress)


__all__ = ["model_quantity_names", "model_sbc_chunk", "model_sbc_meta", "run_model_sbc"]
