"""Every diagnostic, defined once: the array level and the DataTree level.

Array level (NumPy arrays with the sample axes last, ``(..., chain, draw)``): :func:`chain_diagnostics`
returns ArviZ's rank-normalised split R-hat, bulk and tail ESS and the MCSE of the mean and sd
(``arviz_stats.base.array_stats``, the array API under ``arviz_stats.rhat`` etc.), vectorised over the
leading axes: the reference that :mod:`bayeslin_jax.diagnostics.device` (the same definitions in JAX, run
on the device by studies and the SBC gate) is tested against. Tail ESS is ArviZ's own default, the smaller
ESS of the quantiles ``1 - p`` and ``p`` with ``p`` = ArviZ's ``stats.ci_prob`` rcParam (0.89 by default:
the 11 % and 89 % quantiles, the device module's ``TAIL_PROB``), equal to ``arviz_stats.ess(method="tail")``.

DataTree level: :func:`to_datatree` builds an ArviZ DataTree (dims ``chain``, ``draw``, ``dataset``,
``feature``, ``obs``) from the engine's output; :func:`dataset_summary` gives the same quantities per
dataset and weight; :func:`summary` is ArviZ's own table for one dataset; :func:`correlation_table`
compares a posterior covariance with the exact one.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import cast

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from arviz_base import rcParams
from arviz_stats.base import array_stats
from arviz_stats.validate import validate_ci_prob

from bayeslin_jax.core.errors import BayeslinError

SAMPLE_DIMS = ["chain", "draw"]
DIAGNOSTIC_NAMES = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")


def tail_prob() -> float:
    """Return the ``prob`` of tail ESS: ArviZ's ``stats.ci_prob`` rcParam, as ``ess(method="tail")`` uses it.

    Returns
    -------
    float
        0.89 unless the rcParam was changed: tail ESS is the smaller ESS of the ``1 - p`` and ``p`` quantiles.
    """
    return float(validate_ci_prob(None))


def chain_diagnostics(x: np.ndarray) -> dict[str, np.ndarray]:
    """R-hat, bulk/tail ESS and MCSE of the mean and sd (``arviz_stats.base.array_stats``), over leading axes.

    The reference definitions; :func:`bayeslin_jax.diagnostics.device.chain_diagnostics` is their JAX twin
    (tested against this), which studies and the SBC gate run on the device.

    Parameters
    ----------
    x : array, shape ``(..., C, S)``
        Draws with chains and draws as the last two axes.

    Returns
    -------
    dict
        ``rhat``, ``ess_bulk``, ``ess_tail``, ``mcse_mean``, ``mcse_sd``, each of shape ``(...)``. With one
        chain ``rhat`` is NaN (R-hat compares chains: not computed, so nothing warns).
    """
    x = np.asarray(x)
    rhat = array_stats.rhat(x) if x.shape[-2] >= 2 else np.full(x.shape[:-2], np.nan)
    return {
        "rhat": rhat,
        "ess_bulk": array_stats.ess(x, method="bulk"),
        "ess_tail": array_stats.ess(x, method="tail", prob=tail_prob()),
        "mcse_mean": array_stats.mcse(x, method="mean"),
        "mcse_sd": array_stats.mcse(x, method="sd"),
    }


def _sample_first(a) -> np.ndarray:
    """``(B, C, S, ...)`` -> ``(C, S, B, ...)``: ArviZ wants the sample dims first."""
    return np.moveaxis(np.asarray(a), 0, 2)


def _with_dataset_dim(da: xr.DataArray) -> xr.DataArray:
    return da if "dataset" in da.dims else da.expand_dims(dataset=[0])


def _element_names(site: str, da: xr.DataArray, event: list[Hashable]) -> list[str]:
    """Names of a site's elements: feature names on the ``feature`` dim, ``site`` for a scalar, else ``site[i,j]``."""
    if event == ["feature"]:
        return [str(v) for v in da["feature"].values]
    if not event:
        return [site]
    return [f"{site}[{','.join(map(str, k))}]" for k in np.ndindex(*(da.sizes[d] for d in event))]


def posterior_summary(tree: xr.DataTree) -> xr.Dataset:
    """Per dataset and parameter (every element of every posterior site): mean, sd and :func:`chain_diagnostics`.

    Parameters
    ----------
    tree : xarray.DataTree
        Of any model (:func:`bayeslin_jax.diagnostics.datatree.model_datatree`); a one-dataset tree without the
        ``dataset`` dim is accepted.

    Returns
    -------
    xarray.Dataset
        ``mean, sd, rhat, ess_bulk, ess_tail, mcse_mean, mcse_sd`` with dims ``(dataset, parameter)`` (coordinate
        ``site``: the site of each parameter, e.g. ``w`` for ``b`` and ``m``); ``divergences (dataset)``.
    """
    draws, coords = parameter_draws(tree)
    fields = {"mean": draws.mean((-2, -1)), "sd": draws.reshape(*draws.shape[:2], -1).std(-1, ddof=1)}
    fields |= chain_diagnostics(draws)
    table = xr.Dataset({name: (("dataset", "parameter"), v) for name, v in fields.items()}, coords=coords)
    table["divergences"] = _with_dataset_dim(cast(xr.DataArray, tree["sample_stats"]["diverging"])).sum(SAMPLE_DIMS)
    return table


def parameter_draws(tree: xr.DataTree) -> tuple[np.ndarray, dict]:
    """Put every element of every posterior site side by side, with the coordinates of :func:`posterior_summary`.

    Parameters
    ----------
    tree : xarray.DataTree
        As for :func:`posterior_summary`.

    Returns
    -------
    draws : numpy.ndarray, shape ``(B, P, C, S)``
        Float64 draws of the ``P`` parameters (site elements) of the ``B`` datasets.
    coords : dict
        ``dataset (B)``, ``parameter (P)`` (names such as ``b``, ``tau``, ``z[3]``) and ``site (P)`` (the site of
        each parameter).
    """
    posterior = tree["posterior"].to_dataset()
    blocks, names, sites = [], [], []
    for site, da in posterior.data_vars.items():
        da = _with_dataset_dim(da)
        event = [d for d in da.dims if d not in ("dataset", *SAMPLE_DIMS)]
        da = da.transpose("dataset", *event, *SAMPLE_DIMS)
        blocks.append(np.asarray(da.values, dtype=np.float64).reshape(da.sizes["dataset"], -1, *da.shape[-2:]))
        element_names = _element_names(cast(str, site), da, event)
        names += element_names
        sites += [site] * len(element_names)
    dataset = _with_dataset_dim(posterior[next(iter(posterior.data_vars))])["dataset"].values
    return np.concatenate(blocks, axis=1), {"dataset": dataset, "parameter": names, "site": ("parameter", sites)}


def credible_intervals(tree: xr.DataTree, ci_kind: str | None = None, ci_prob: float | None = None) -> xr.Dataset:
    """Per dataset and parameter, ArviZ's credible interval of the pooled chains (``arviz_stats`` ``eti``/``hdi``).

    Parameters
    ----------
    tree : xarray.DataTree
        As for :func:`posterior_summary`.
    ci_kind : {"eti", "hdi"}, optional
        Equal-tailed or highest-density interval (default ArviZ's ``stats.ci_kind`` rcParam, ``"eti"``).
    ci_prob : float, optional
        Its probability (default ArviZ's ``stats.ci_prob`` rcParam, 0.89).

    Returns
    -------
    xarray.Dataset
        Two variables with dims ``(dataset, parameter)``, named as in ``arviz_stats.summary``:
        ``{ci_kind}{int(100 * ci_prob)}_lb`` and ``..._ub`` (``eti89_lb``, ``eti89_ub`` by default).
    """
    ci_kind = rcParams["stats.ci_kind"] if ci_kind is None else ci_kind
    if ci_kind not in ("eti", "hdi"):
        raise BayeslinError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
    prob = float(validate_ci_prob(ci_prob))
    draws, coords = parameter_draws(tree)
    interval = (array_stats.eti if ci_kind == "eti" else array_stats.hdi)(draws, prob, axis=(-2, -1))  # (B, P, 2)
    prefix = f"{ci_kind}{int(prob * 100)}"
    return xr.Dataset({f"{prefix}_lb": (("dataset", "parameter"), interval[..., 0]),
                       f"{prefix}_ub": (("dataset", "parameter"), interval[..., 1])}, coords=coords)


def select_dataset(tree: xr.DataTree, index: int) -> xr.DataTree:
    """Select the DataTree of one dataset (by position), with the ``dataset`` dim dropped.

    Parameters
    ----------
    tree : xarray.DataTree
        A tree with the ``dataset`` dim.
    index : int
        Position along ``dataset``.

    Returns
    -------
    xarray.DataTree
        The one dataset's tree.
    """
    return tree.isel(dataset=index)


def summary(tree: xr.DataTree, index: int | None = 0) -> pd.DataFrame:
    """Make ArviZ's summary table (mean, sd, ETI, MCSE, ESS, R-hat) of one dataset.

    Parameters
    ----------
    tree : xarray.DataTree
        As for :func:`posterior_summary`.
    index : int or None, default 0
        Position along ``dataset``; None for a tree without the ``dataset`` dim.

    Returns
    -------
    pandas.DataFrame
        ``arviz_stats.summary`` of the dataset, unrounded: one row per parameter element.
    """
    one = tree if index is None else select_dataset(tree, index)
    return azs.summary(one, round_to="none")


def correlation_table(exact_cov, draws, feature_names) -> pd.DataFrame:
    """A reference posterior covariance next to the sample covariance of draws, with MCSE.

    Parameters
    ----------
    exact_cov : array, shape ``(d, d)``, or an object with ``.cov`` of that shape
        Reference covariance (``exact.GaussianPosterior``, ``nig.SigmaGridPosterior``, or the matrix).
    draws : array, shape ``(C, S, d)`` or ``(S, d)``
        Posterior draws (chains, draws, features).
    feature_names : sequence of str
        ``d`` names.

    Returns
    -------
    pandas.DataFrame
        One row per pair ``i <= j`` (index ``"b,m"``); columns ``cov_exact, cov_nuts, cov_mcse``
        (ArviZ MCSE of the mean of the chains' centred products), ``corr_exact, corr_nuts, corr_diff``.
    """
    names = list(feature_names)
    cov_exact = np.asarray(getattr(exact_cov, "cov", exact_cov), dtype=float)
    draws = np.asarray(draws, dtype=float)
    if draws.ndim == 2:
        draws = draws[None]
    dim = len(names)
    if cov_exact.shape != (dim, dim) or draws.ndim != 3 or draws.shape[-1] != dim:
        raise BayeslinError(
            f"expected exact cov ({dim}, {dim}) and draws (chains, draws, {dim}), "
            f"got {cov_exact.shape} and {draws.shape}"
        )
    centred = draws - draws.mean(axis=(0, 1))
    rows, cols = np.triu_indices(dim)
    products = np.moveaxis(centred[..., rows] * centred[..., cols], -1, 0)  # (pairs, C, S)
    cov_nuts = products.mean(axis=(1, 2))
    cov_mcse = chain_diagnostics(products)["mcse_mean"]
    sd_exact, sd_nuts = np.sqrt(np.diag(cov_exact)), np.sqrt(cov_nuts[rows == cols])
    corr_exact = cov_exact[rows, cols] / (sd_exact[rows] * sd_exact[cols])
    corr_nuts = cov_nuts / (sd_nuts[rows] * sd_nuts[cols])
    return pd.DataFrame(
        {
            "cov_exact": cov_exact[rows, cols],
            "cov_nuts": cov_nuts,
            "cov_mcse": cov_mcse,
            "corr_exact": corr_exact,
            "corr_nuts": corr_nuts,
            "corr_diff": corr_nuts - corr_exact,
        },
        index=pd.Index([f"{names[i]},{names[j]}" for i, j in zip(rows, cols, strict=True)], name="pair"),
    )
