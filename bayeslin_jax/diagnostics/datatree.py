"""ArviZ DataTrees of any :class:`bayeslin_jax.core.model.Model` fitted by the engine.

:func:`model_datatree`: posterior per kept site, sample stats, pointwise log-likelihood of the observed
site (:func:`pointwise_log_likelihood`), observed and constant data.
"""

from __future__ import annotations

from typing import Any

import arviz_base as azb
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array
from numpyro.infer import log_likelihood

from bayeslin_jax.core.model import Model
from bayeslin_jax.diagnostics.host import _sample_first
from bayeslin_jax.engine import NutsResult
from bayeslin_jax.engine.sampling import ModelSites, inspect_model, per_point_draws

RESERVED_DIMS = ("chain", "draw", "dataset", "feature")


def site_dims(model: Model, name: str, ndim: int, plates: tuple[str | None, ...] | None = None) -> list[str]:
    """Name the DataTree dims of a site with ``ndim`` event axes (after ``dataset``).

    Parameters
    ----------
    model : Model
        The model (its ``feature_site`` gets the ``feature`` dim).
    name : str
        The site.
    ndim : int
        Its event axes (after ``(B, C, S)``).
    plates : tuple of str or None, optional
        The plate name over each axis (:attr:`ModelSites.plates <bayeslin_jax.engine.sampling.ModelSites>`),
        used as that axis' dim when it has ``ndim`` entries.

    Returns
    -------
    list of str
        ``["dataset", ...]``: a plate's name, ``feature`` for the feature site's axis, else ``{name}_dim_{k}``.
    """
    if name == model.feature_site and ndim == 1:
        return ["dataset", "feature"]
    labels = tuple(plates or ()) if plates is not None and len(plates) == ndim else (None,) * ndim
    return ["dataset"] + [label or f"{name}_dim_{k}" for k, label in enumerate(labels)]


def _resolve_dims(dims: dict[str, list[str]], shapes: dict[str, tuple[int, ...]], coords: dict) -> dict[str, list[str]]:
    """Plate-named dims that cannot be dims (a reserved or site name, a size that disagrees with another site's or
    a coordinate's, twice on one site) fall back to ``{site}_dim_{k}``. ``dims[site]`` starts with ``dataset``."""
    sizes = {name: len(values) for name, values in coords.items()}
    out = {}
    for name, names in dims.items():
        fixed = list(names)
        for k, dim in enumerate(names[1:]):
            if dim == f"{name}_dim_{k}" or names == ["dataset", "feature"]:
                continue
            size = shapes[name][k]
            if dim in RESERVED_DIMS or dim in dims or dim in fixed[1:k + 1] or sizes.setdefault(dim, size) != size:
                fixed[k + 1] = f"{name}_dim_{k}"
        out[name] = fixed
    return out


def pointwise_log_likelihood(model: Model, samples: dict[str, Array], x: Array, y: Array,
                             latent: tuple[str, ...]) -> Array:
    """Compute ``log p(y_j | theta)`` of the observed site for every draw and data point.

    Parameters
    ----------
    model : Model
        The fitted model.
    samples : dict of str to array
        ``{site: (B, C, S, ...)}`` draws (constrained).
    x : array, shape ``(B, n, ...)``
        The model's inputs (after the basis).
    y : array, shape ``(B, n)``
        Observations.
    latent : tuple of str
        The sample sites to condition on.

    Returns
    -------
    array, shape ``(B, C, S, n)``
        Pointwise log-likelihood.
    """

    def _one(dataset_samples, x_i, y_i):
        draws = {k: dataset_samples[k] for k in latent}
        return log_likelihood(model.bound, draws, x_i, y=y_i, batch_ndims=2, **model.params)[model.obs]

    return jax.vmap(_one)(samples, x, y)


def model_datatree(
    result: NutsResult,
    model: Model,
    x: Array,
    y: Array,
    x_raw: Array | None = None,
    dataset_indices=None,
    include_log_likelihood: bool = True,
    latent: tuple[str, ...] | None = None,
    sites: ModelSites | None = None,
) -> xr.DataTree:
    """ArviZ DataTree of B datasets fitted with :func:`~bayeslin_jax.engine.sampling.sample_model`.

    Parameters
    ----------
    result : NutsResult
        ``samples[site]: (B, C, S, ...)``, ``stats[name]: (B, C, S)``.
    model : Model
        The fitted model.
    x : array, shape ``(B, n, ...)``
        The model's inputs (after the basis).
    y : array, shape ``(B, n)``
        Observations.
    x_raw : array, shape ``(B, n)``, optional
        Raw inputs, stored as ``constant_data``.
    dataset_indices : array, shape ``(B,)``, optional
        ``dataset`` coordinates (default ``0..B-1``).
    include_log_likelihood : bool, default True
        Add ``log_likelihood`` (the observed site, ``(C, S, B, n)``; needs the observed site in a plate).
    latent : tuple of str, optional
        The latent sites (default: from ``sites``).
    sites : ModelSites, optional
        From :func:`inspect_model` (computed here if None).

    Returns
    -------
    xarray.DataTree
        ``posterior``: each kept site and each per-point ``numpyro.deterministic`` site (``sites.per_point``,
        recomputed from the latent draws on the full data by
        :func:`~bayeslin_jax.engine.sampling.per_point_draws`), dims ``(chain, draw, dataset, *event)``: an axis
        under a ``numpyro.plate`` is named after the plate (``school``), the feature site's ``feature``, a
        per-point axis outside any plate ``obs``, any other ``{site}_dim_{k}``; ``sample_stats`` (``diverging``
        etc., dims ``chain, draw, dataset``), ``log_likelihood``, ``observed_data``, ``constant_data``.
    """
    num_datasets, num_obs = np.shape(y)
    coords: dict[str, Any] = {
        "dataset": np.arange(num_datasets) if dataset_indices is None else np.asarray(dataset_indices),
        "obs": np.arange(num_obs),
    }
    if model.feature_names:
        coords["feature"] = list(model.feature_names)
    if sites is None:
        sites = inspect_model(model, jnp.asarray(x), jnp.asarray(y))
    samples: dict[str, Array | np.ndarray] = dict(result.samples)
    samples |= per_point_draws(model, samples, x, y, sites)
    plates = dict(sites.plates)
    for name in sites.per_point:  # a per-point axis outside any plate: the obs dim
        shape = np.shape(samples[name])[3:]
        plates[name] = tuple(label or ("obs" if size == num_obs else None)
                             for label, size in zip(plates.get(name, (None,) * len(shape)), shape, strict=True))
    dims = {name: site_dims(model, name, np.ndim(v) - 3, plates.get(name)) for name, v in samples.items()}
    dims = _resolve_dims(dims, {name: np.shape(v)[3:] for name, v in samples.items()}, coords)
    dims |= {name: ["dataset"] for name in result.stats} | {model.obs: ["dataset", "obs"], "x": ["dataset", "obs"]}
    groups = {
        "posterior": {name: _sample_first(v) for name, v in samples.items()},
        "sample_stats": {name: _sample_first(v) for name, v in result.stats.items()},
        "observed_data": {model.obs: np.asarray(y)},
    }
    if x_raw is not None:
        groups["constant_data"] = {"x": np.asarray(x_raw)}
    if include_log_likelihood:
        if latent is None:
            latent = tuple(name for name, _ in sites.latent)
        loglik = pointwise_log_likelihood(model, result.samples, jnp.asarray(x), jnp.asarray(y), latent)
        groups["log_likelihood"] = {model.obs: _sample_first(loglik)}
    return azb.from_dict(groups, dims=dims, coords=coords)


__all__ = ["model_datatree", "pointwise_log_likelihood", "site_dims"]
