"""ArviZ bridge: engine output -> DataTree with named dims, and per-dataset diagnostics.

Dims: ``chain``, ``draw`` (sample dims), ``dataset``, ``feature`` (weights), ``obs`` (data points).
All ArviZ statistics (R-hat, ESS, MCSE, LOO) vectorise over ``dataset``.
"""

from __future__ import annotations

import arviz_base as azb
import arviz_stats as azs
import jax
import numpy as np
import xarray as xr
from jax import Array
from numpyro.infer import log_likelihood

from bayeslin_jax.engine import NutsResult
from bayeslin_jax.models import linear_regression
from bayeslin_jax.priors import ModelSpec


def pointwise_log_likelihood(samples: dict[str, Array], phi: Array, y: Array, spec: ModelSpec) -> Array:
    """Log-likelihood of each observation under each draw, from the NumPyro model.

    ``samples["w"]: (B, C, S, d)``, ``phi: (B, n, d)``, ``y: (B, n)`` -> ``(B, C, S, n)``.
    """

    def one(dataset_samples, phi_i, y_i):
        return log_likelihood(
            linear_regression, dataset_samples, phi_i, y_i, spec.prior, spec.noise, batch_ndims=2
        )["y"]

    return jax.vmap(one)(samples, phi, y)


def _sample_first(a) -> np.ndarray:
    """``(B, C, S, ...)`` -> ``(C, S, B, ...)``: ArviZ wants the sample dims first."""
    return np.moveaxis(np.asarray(a), 0, 2)


def to_datatree(
    result: NutsResult,
    spec: ModelSpec,
    phi: Array,
    y: Array,
    x: Array | None = None,
    dataset_indices=None,
    include_log_likelihood: bool = True,
) -> xr.DataTree:
    """Build an ArviZ DataTree for B datasets.

    Groups: ``posterior`` (``w``: dataset x feature; ``sigma``: dataset), ``sample_stats``,
    ``log_likelihood`` (``y``: dataset x obs), ``observed_data`` and ``constant_data`` (``x``).
    """
    num_datasets = np.shape(y)[0]
    coords = {
        "dataset": np.arange(num_datasets) if dataset_indices is None else np.asarray(dataset_indices),
        "feature": list(spec.feature_names),
        "obs": np.arange(np.shape(y)[1]),
    }
    posterior = {name: _sample_first(value) for name, value in result.samples.items()}
    dims = {"w": ["dataset", "feature"], "sigma": ["dataset"], "y": ["dataset", "obs"], "x": ["dataset", "obs"]}
    groups = {
        "posterior": posterior,
        "sample_stats": {name: _sample_first(value) for name, value in result.stats.items()},
        "observed_data": {"y": np.asarray(y)},
    }
    dims.update({name: ["dataset"] for name in result.stats})
    if x is not None:
        groups["constant_data"] = {"x": np.asarray(x)}
    if include_log_likelihood:
        loglik = pointwise_log_likelihood(result.samples, phi, y, spec)
        groups["log_likelihood"] = {"y": _sample_first(loglik)}
    return azb.from_dict(groups, dims=dims, coords=coords)


def dataset_summary(tree: xr.DataTree) -> xr.Dataset:
    """Per dataset and weight: mean, sd, R-hat, bulk/tail ESS, MCSE of mean and sd; per dataset: divergences.

    Returns an ``xr.Dataset`` with dims ``(dataset, feature)`` (and ``dataset`` for scalars).
    """
    posterior = tree["posterior"].to_dataset()
    sample_dims = ["chain", "draw"]
    out = xr.Dataset(
        {
            "mean": posterior["w"].mean(sample_dims),
            "sd": posterior["w"].std(sample_dims, ddof=1),
            "rhat": azs.rhat(tree, sample_dims=sample_dims, var_names="w")["w"],
            "ess_bulk": azs.ess(tree, sample_dims=sample_dims, var_names="w", method="bulk")["w"],
            "ess_tail": azs.ess(tree, sample_dims=sample_dims, var_names="w", method="tail")["w"],
            "mcse_mean": azs.mcse(tree, sample_dims=sample_dims, var_names="w", method="mean")["w"],
            "mcse_sd": azs.mcse(tree, sample_dims=sample_dims, var_names="w", method="sd")["w"],
            "divergences": tree["sample_stats"]["diverging"].sum(sample_dims),
        }
    )
    if "sigma" in posterior:
        out["sigma_mean"] = posterior["sigma"].mean(sample_dims)
        out["sigma_rhat"] = azs.rhat(tree, sample_dims=sample_dims, var_names="sigma")["sigma"]
    return out


def select_dataset(tree: xr.DataTree, index: int) -> xr.DataTree:
    """The DataTree of one dataset (by position), with the ``dataset`` dim dropped."""
    return tree.isel(dataset=index)


def summary(tree: xr.DataTree, index: int = 0):
    """ArviZ summary table (mean, sd, HDI, MCSE, ESS, R-hat) for one dataset."""
    return azs.summary(select_dataset(tree, index), round_to="none")
