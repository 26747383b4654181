"""Simulators, ArviZ DataTrees and fits for any :class:`bayeslin_jax.model_spec.Model`.

* :class:`ModelSimulator` / :func:`simulate_model`: ``x ~ U(-x_scale, x_scale)`` and a prior-predictive
  draw of every site (NumPyro ``Predictive``), dataset ``i`` keyed by ``(seed, i)`` only;
* :func:`model_datatree`: posterior per kept site, sample stats, pointwise log-likelihood of the
  observed site, observed and constant data;
* :func:`fit_model`: the front door for these models (one dataset or a batch) -> ``FitResult``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import arviz_base as azb
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array
from numpyro.infer import Predictive, log_likelihood

from bayeslin_jax import keys as keyring
from bayeslin_jax.data import validate_xy
from bayeslin_jax.diagnostics import _sample_first
from bayeslin_jax.engine import NutsConfig, NutsResult
from bayeslin_jax.engine.general import inspect_model, sample_model
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.model_spec import Model
from bayeslin_jax.simulate import TUTORIAL_N, _check_indices, _check_points


class ModelData(NamedTuple):
    """Simulated datasets: ``x, y: (B, n)``; ``truth[site]: (B, *site_shape)`` for every site drawn."""

    x: Array
    y: Array
    truth: dict[str, Array]


def simulate_model(seed: int, indices, model: Model, num_points: int = TUTORIAL_N, x_scale: float = 1.0) -> ModelData:
    """Prior-predictive datasets of ``model``: ``x ~ U(-x_scale, x_scale)``, then every site from the model.

    ``indices: (B,)`` global dataset indices; dataset ``i`` depends only on ``(seed, i)``.
    ``y`` is returned as floats (0/1 and counts included).
    """
    idx = _check_indices(indices)
    _check_points(num_points)
    if not x_scale > 0:
        raise BayeslinError(f"x_scale must be positive, got {x_scale}")
    keys = keyring.dataset_keys(seed, keyring.SIMULATE, idx)
    return _simulate(keys, model.params, jnp.asarray(x_scale, dtype=jnp.float32), model=model,
                     num_points=int(num_points))


@partial(jax.jit, static_argnames=("model", "num_points"))
def _simulate(keys: Array, params: dict, x_scale: Array, *, model: Model, num_points: int) -> ModelData:
    def one(key):
        x_key, model_key = jax.random.split(key)
        x = jax.random.uniform(x_key, (num_points,), minval=-1.0, maxval=1.0) * x_scale
        draws = Predictive(model.bound, num_samples=1)(model_key, model.design(x), y=None, **params)
        draws = {name: value[0] for name, value in draws.items()}
        y = draws.pop(model.obs).astype(x.dtype)
        return x, y, draws

    return ModelData(*jax.vmap(one)(keys))


@dataclass(frozen=True)
class ModelSimulator:
    """Truth from ``model``'s prior (:func:`simulate_model`); the SBC/study simulator of a :class:`Model`."""

    model: Model
    num_points: int = TUTORIAL_N
    x_scale: float = 1.0

    def __call__(self, seed: int, indices, spec=None) -> ModelData:
        return simulate_model(seed, indices, self.model, self.num_points, self.x_scale)

    def describe(self) -> dict:
        return {"name": "model_prior", "model": self.model.name, "num_points": self.num_points,
                "x_scale": self.x_scale}


def site_dims(model: Model, name: str, ndim: int) -> list[str]:
    """DataTree dims of a site with ``ndim`` event axes (after ``dataset``)."""
    if name == model.feature_site and ndim == 1:
        return ["dataset", "feature"]
    return ["dataset"] + [f"{name}_dim_{k}" for k in range(ndim)]


def pointwise_log_likelihood(model: Model, samples: dict[str, Array], x: Array, y: Array,
                             latent: tuple[str, ...]) -> Array:
    """``log p(y_j | theta)`` of the observed site: ``samples[site]: (B, C, S, ...)``, ``x: (B, n, ...)``,
    ``y: (B, n)`` -> ``(B, C, S, n)``. ``latent``: the sample sites to condition on."""

    def one(dataset_samples, x_i, y_i):
        draws = {k: dataset_samples[k] for k in latent}
        return log_likelihood(model.bound, draws, x_i, y=y_i, batch_ndims=2, **model.params)[model.obs]

    return jax.vmap(one)(samples, x, y)


def model_datatree(
    result: NutsResult,
    model: Model,
    x: Array,
    y: Array,
    x_raw: Array | None = None,
    dataset_indices=None,
    include_log_likelihood: bool = True,
    latent: tuple[str, ...] | None = None,
) -> xr.DataTree:
    """ArviZ DataTree of B datasets fitted with :func:`~bayeslin_jax.engine.general.sample_model`.

    Parameters
    ----------
    result : NutsResult
        ``samples[site]: (B, C, S, ...)``, ``stats[name]: (B, C, S)``.
    model : Model
    x : array, shape ``(B, n, ...)``
        The model's inputs (after the basis).
    y : array, shape ``(B, n)``
    x_raw : array, shape ``(B, n)``, optional
        Raw inputs, stored as ``constant_data``.
    dataset_indices : array, shape ``(B,)``, optional
        ``dataset`` coordinates (default ``0..B-1``).
    include_log_likelihood : bool
        Add ``log_likelihood`` (the observed site, ``(C, S, B, n)``; needs the observed site in a plate).
    latent : tuple of str, optional
        The latent sites (default: from :func:`inspect_model`).

    Returns
    -------
    xarray.DataTree
        ``posterior`` (each kept site; ``feature`` dim for the feature site), ``sample_stats``
        (``diverging`` etc., dims ``chain, draw, dataset``), ``log_likelihood``, ``observed_data``,
        ``constant_data``.
    """
    num_datasets, num_obs = np.shape(y)
    coords = {
        "dataset": np.arange(num_datasets) if dataset_indices is None else np.asarray(dataset_indices),
        "obs": np.arange(num_obs),
    }
    if model.feature_names:
        coords["feature"] = list(model.feature_names)
    dims = {name: site_dims(model, name, np.ndim(v) - 3) for name, v in result.samples.items()}
    dims |= {name: ["dataset"] for name in result.stats} | {model.obs: ["dataset", "obs"], "x": ["dataset", "obs"]}
    groups = {
        "posterior": {name: _sample_first(v) for name, v in result.samples.items()},
        "sample_stats": {name: _sample_first(v) for name, v in result.stats.items()},
        "observed_data": {model.obs: np.asarray(y)},
    }
    if x_raw is not None:
        groups["constant_data"] = {"x": np.asarray(x_raw)}
    if include_log_likelihood:
        if latent is None:
            latent = tuple(name for name, _ in inspect_model(model, jnp.asarray(x), jnp.asarray(y)).latent)
        loglik = pointwise_log_likelihood(model, result.samples, jnp.asarray(x), jnp.asarray(y), latent)
        groups["log_likelihood"] = {model.obs: _sample_first(loglik)}
    return azb.from_dict(groups, dims=dims, coords=coords)


def fit_model(
    x,
    y,
    model: Model,
    *,
    seed: int = 0,
    config: NutsConfig | None = None,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    **sampler_options,
):
    """Fit any :class:`Model` with NUTS: one dataset ``x, y: (n,)`` or a batch ``(B, n)``.

    Returns :class:`bayeslin_jax.api.FitResult` with ``exact=None`` and ``spec=model``; its summary,
    problems (R-hat, ESS, divergences, tree depth per dataset) and JSON need the model's feature site
    (``w``: every built-in has one). ``sampler_options`` override ``config`` fields.
    """
    from bayeslin_jax.api import FitResult

    if not isinstance(model, Model):
        raise BayeslinError(f"model must be a bayeslin_jax.model_spec.Model, got {type(model).__name__}")
    config = NutsConfig() if config is None else config
    unknown = sorted(set(sampler_options) - {f.name for f in dataclasses.fields(NutsConfig)})
    if unknown:
        raise BayeslinError(f"unknown sampler option(s) {', '.join(unknown)}: see NutsConfig")
    config = dataclasses.replace(config, **sampler_options)
    x_arr, y_arr = validate_xy(x, y)
    batched = x_arr.ndim == 2
    x_raw = jnp.asarray(x_arr if batched else x_arr[None], dtype=jnp.float32)
    y_batch = jnp.asarray(y_arr if batched else y_arr[None], dtype=jnp.float32)
    inputs = model.design(x_raw)
    sites = inspect_model(model, inputs, y_batch)
    result = sample_model(seed, inputs, y_batch, model, config, num_devices=num_devices, sites=sites)
    tree = model_datatree(result, model, inputs, y_batch, x_raw=x_raw, include_log_likelihood=log_likelihood,
                          latent=tuple(name for name, _ in sites.latent))
    if not batched:
        tree = tree.isel(dataset=0)
    return FitResult(tree=tree, exact=None, spec=model, config=config, seed=seed, batched=batched)


__all__ = ["ModelData", "ModelSimulator", "fit_model", "model_datatree", "pointwise_log_likelihood",
           "simulate_model", "site_dims"]
