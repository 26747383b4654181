"""Every diagnostic, defined once: the array level and the DataTree level.

Array level (NumPy arrays with the sample axes last, ``(..., chain, draw)``): :func:`chain_diagnostics`
returns ArviZ's rank-normalised split R-hat, bulk and tail ESS and the MCSE of the mean and sd
(``arviz_stats.base.array_stats``, the array API under ``arviz_stats.rhat`` etc.), vectorised over
the leading axes, through arviz-stats' numba backend first where numba and einops are importable
(same values, faster per dataset: the ``diagnostics`` row of scripts/benchmark.py);
:func:`chain_diagnostics_parallel` runs it on threads in blocks.
One definition of each quantity: tail ESS is ArviZ's own default, the smaller ESS of the quantiles
``1 - p`` and ``p`` with ``p`` = ArviZ's ``stats.ci_prob`` rcParam (0.89 by default: the 11 % and 89 %
quantiles), used alike by fits, studies and the SBC gate, and equal to ``arviz_stats.ess(method="tail")``.

DataTree level: :func:`to_datatree` builds an ArviZ DataTree (dims ``chain``, ``draw``, ``dataset``,
``feature``, ``obs``) from the engine's output; :func:`dataset_summary` gives the same quantities per
dataset and weight; :func:`summary` is ArviZ's own table for one dataset; :func:`correlation_table`
compares a posterior covariance with the exact one.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats
from arviz_stats.validate import validate_ci_prob

from bayeslin_jax.core.errors import BayeslinError

SAMPLE_DIMS = ["chain", "draw"]
DIAGNOSTIC_NAMES = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")
NUMBA_ROWS = 512  # rows per vectorised call of the numba path: its temporaries are ~6x a block of draws


def tail_prob() -> float:
    """The ``prob`` of tail ESS: ArviZ's ``stats.ci_prob`` rcParam, as ``arviz_stats.ess(method="tail")`` uses it."""
    return float(validate_ci_prob(None))


def chain_diagnostics(x: np.ndarray, backend: str = "auto") -> dict[str, np.ndarray]:
    """R-hat, bulk/tail ESS and MCSE of the mean and sd, vectorised over leading axes.

    Parameters
    ----------
    x : array, shape ``(..., C, S)``
        Draws with chains and draws as the last two axes.
    backend : {"auto", "numba", "base"}
        ``"base"``: ``arviz_stats.base.array_stats`` (NumPy, one Python call per row). ``"numba"``:
        arviz-stats' numba backend (``arviz_stats.numba.diagnostics``: rank R-hat and bulk/mean ESS
        vectorised over all rows at once, Geyer's sequence compiled), with the rows it does not cover
        (non-finite values; a constant series among those the ESS is taken of; fewer than 2 chains or
        an odd or < 8 number of draws) handed to the base path, so the values equal the base path's
        (to rounding: ~1e-14 relative in float64). ``"auto"``: numba where importable, else base.

    Returns
    -------
    dict
        ``rhat``, ``ess_bulk``, ``ess_tail``, ``mcse_mean``, ``mcse_sd``, each of shape ``(...)``.
    """
    x = np.asarray(x)
    if backend not in ("auto", "numba", "base"):
        raise BayeslinError(f"backend must be 'auto', 'numba' or 'base', got {backend!r}")
    numba_diagnostics = None if backend == "base" else numba_backend()
    if backend == "numba" and numba_diagnostics is None:
        raise BayeslinError("backend='numba' needs numba and einops (pip install numba einops)")
    lead, (chains, draws) = x.shape[:-2], x.shape[-2:]
    if numba_diagnostics is None or chains < 2 or draws < 8 or draws % 2 or x.size == 0:
        return _base_diagnostics(x)
    flat = x.reshape(-1, chains, draws)
    parts = [_numba_diagnostics(flat[s : s + NUMBA_ROWS], numba_diagnostics) for s in range(0, len(flat), NUMBA_ROWS)]
    return {name: np.concatenate([p[name] for p in parts]).reshape(lead) for name in DIAGNOSTIC_NAMES}


def _map_row_blocks(fn, x: np.ndarray, block: int | None, executor: Executor | None,
                    workers: int | None = None) -> dict[str, np.ndarray]:
    """``fn`` over blocks of ``block`` rows of axis 0 of ``x`` (on ``executor``, else on threads), concatenated."""
    block = block or (16 if numba_backend() is None else NUMBA_ROWS)
    starts = range(0, x.shape[0], block)
    if len(starts) == 1:
        return fn(x)
    workers = workers or min(os.cpu_count() or 1, 32)  # a GPU host's cores keep up with the device
    if executor is None and workers == 1:
        results = [fn(x[s : s + block]) for s in starts]
    else:
        pool = executor or ThreadPoolExecutor(workers)
        try:
            results = list(pool.map(fn, [x[s : s + block] for s in starts]))
        finally:
            if executor is None:
                pool.shutdown()
    return {key: np.concatenate([r[key] for r in results]) for key in results[0]}


def chain_diagnostics_parallel(
    x: np.ndarray, workers: int | None = None, block: int | None = None, executor: Executor | None = None
) -> dict[str, np.ndarray]:
    """:func:`chain_diagnostics` over blocks of ``block`` rows of axis 0, on threads (or ``executor``).

    ``block`` (default): 16 rows (cache-sized) on the base path, 512 on the numba path, which is vectorised
    over rows and pays a fixed cost per call. NumPy releases the GIL in sorts and FFTs; results do not
    depend on blocks, threads or processes. ``x: (N, ..., C, S)`` -> dict of ``(N, ...)`` arrays.
    """
    return _map_row_blocks(chain_diagnostics, x, block, executor, workers)


def draw_summaries(x: np.ndarray, quantiles: Sequence[float]) -> dict[str, np.ndarray]:
    """Mean, sd and quantiles over all draws (float64) plus :func:`chain_diagnostics`.

    ``x: (..., C, S)`` -> ``mean``, ``sd`` (ddof 1), the :data:`DIAGNOSTIC_NAMES` ``(...)`` and ``quantile``
    ``(..., Q)`` (NumPy's linear interpolation).
    """
    flat = x.reshape(*x.shape[:-2], -1).astype(float)
    q = np.moveaxis(np.quantile(flat, np.asarray(quantiles, dtype=float), axis=-1), 0, -1)
    return {"mean": flat.mean(-1), "sd": flat.std(-1, ddof=1), "quantile": q, **chain_diagnostics(x)}


def draw_summaries_parallel(x: np.ndarray, quantiles: Sequence[float], executor: Executor | None = None,
                            block: int | None = None) -> dict[str, np.ndarray]:
    """:func:`draw_summaries` over blocks of rows of ``x: (N, ..., C, S)``, on threads or ``executor``
    (e.g. :func:`host_pool`'s processes); the values do not depend on either beyond rounding."""
    return _map_row_blocks(partial(draw_summaries, quantiles=tuple(quantiles)), x, block, executor)


def host_pool(platform: str, min_cores: int = 8) -> Executor | None:
    """A process pool for host summaries while an accelerator samples, or None (use threads).

    With the sampling on a GPU, the host's summaries of the last chunk must keep up with the device;
    threads share the GIL in arviz-stats' per-call Python overhead (measured on an H200 host with 16
    cores: 10^5 datasets x 4 x 1000 draws took 123 s of summaries on threads, 59 s on processes, against
    28 s of sampling). Returns None on CPU backends (the cores are sampling) and below ``min_cores``
    usable cores (``os.sched_getaffinity``; at most 32 workers). The workers are spawned (never forked
    from a process holding a device), run on the CPU backend, ignore Ctrl-C (the parent handles it) and
    start importing at once. Spawning re-imports the caller's ``__main__``: scripts must guard their
    top level with ``if __name__ == "__main__":`` (hence opt-in: ``run_study(..., host_processes=True)``;
    the CLI opts in). The caller shuts the pool down.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if platform == "cpu" or cores < min_cores:
        return None
    workers = min(cores, 32)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_pool_worker_init)
    for _ in range(workers):  # start every worker now: their imports overlap the device's compile
        pool.submit(_warm_worker)
    return pool


def _pool_worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["JAX_PLATFORMS"] = "cpu"  # a summarising worker never touches the accelerator


def _warm_worker() -> None:
    numba_backend()


@functools.cache
def numba_backend():
    """``arviz_stats.numba.diagnostics``, or None where numba or einops is not importable (imported once)."""
    try:
        from arviz_stats.numba import diagnostics
    except ImportError:
        return None
    return diagnostics


def _base_diagnostics(x: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "rhat": array_stats.rhat(x),
        "ess_bulk": array_stats.ess(x, method="bulk"),
        "ess_tail": array_stats.ess(x, method="tail", prob=tail_prob()),
        "mcse_mean": array_stats.mcse(x, method="mean"),
        "mcse_sd": array_stats.mcse(x, method="sd"),
    }


def _numba_diagnostics(flat: np.ndarray, nd) -> dict[str, np.ndarray]:
    """:func:`chain_diagnostics` of ``flat: (N, C, S)`` through ``nd`` = ``arviz_stats.numba.diagnostics``.

    Edge rows (see :func:`chain_diagnostics`) go to the base path.

    The compositions are the base path's own (``arviz_stats.base.diagnostics``): tail ESS = min over
    the quantiles ``p, 1 - p`` of the mean ESS of ``x <= quantile``; MCSE of the mean = sd / sqrt(mean ESS);
    MCSE of the sd from the mean ESS of the squared centred draws.
    """
    resolution = np.finfo(float).resolution
    prob = tail_prob()
    quantiles = np.quantile(flat, sorted((prob, 1 - prob)), axis=(1, 2))  # (2, N), as base: linear, all draws
    below = (flat[None] <= quantiles[..., None, None]).astype(float)  # (2, N, C, S)
    centred = flat - flat.mean(axis=(1, 2), keepdims=True)
    squared = centred**2

    def constant(a):
        return np.ptp(a, axis=(-2, -1)) < resolution

    edge = ~np.isfinite(flat).all(axis=(1, 2)) | constant(flat) | constant(below).any(0) | constant(squared)
    fast = ~edge
    out = {name: np.full(flat.shape[0], np.nan) for name in DIAGNOSTIC_NAMES}
    if fast.any():

        def array(a):
            return xr.DataArray(a[..., fast, :, :], dims=(*["q"] * (a.ndim - 3), "row", "chain", "draw"))

        def mean_ess(a):
            return nd.ess(array(a), method="mean").values

        out["rhat"][fast] = nd.rhat(array(flat)).values
        out["ess_bulk"][fast] = nd.ess(array(flat), method="bulk").values
        out["ess_tail"][fast] = mean_ess(below).min(axis=0)
        sims = flat[fast]
        out["mcse_mean"][fast] = sims.std(axis=(1, 2), ddof=1) / np.sqrt(mean_ess(flat))
        evar = squared[fast].mean(axis=(1, 2))
        varvar = ((centred[fast] ** 4).mean(axis=(1, 2)) - evar**2) / mean_ess(squared)
        out["mcse_sd"][fast] = np.sqrt(varvar / evar / 4)
    if edge.any():
        for name, value in _base_diagnostics(flat[edge]).items():
            out[name][edge] = value
    return out


def _sample_first(a) -> np.ndarray:
    """``(B, C, S, ...)`` -> ``(C, S, B, ...)``: ArviZ wants the sample dims first."""
    return np.moveaxis(np.asarray(a), 0, 2)


def _with_dataset_dim(da: xr.DataArray) -> xr.DataArray:
    return da if "dataset" in da.dims else da.expand_dims(dataset=[0])


def _element_names(site: str, da: xr.DataArray, event: list[str]) -> list[str]:
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
    posterior = tree["posterior"].to_dataset()
    blocks, names, sites = [], [], []
    for site, da in posterior.data_vars.items():
        da = _with_dataset_dim(da)
        event = [d for d in da.dims if d not in ("dataset", *SAMPLE_DIMS)]
        da = da.transpose("dataset", *event, *SAMPLE_DIMS)
        blocks.append(np.asarray(da.values, dtype=np.float64).reshape(da.sizes["dataset"], -1, *da.shape[-2:]))
        element_names = _element_names(site, da, event)
        names += element_names
        sites += [site] * len(element_names)
    draws = np.concatenate(blocks, axis=1)  # (B, P, C, S)
    fields = {"mean": draws.mean((-2, -1)), "sd": draws.reshape(*draws.shape[:2], -1).std(-1, ddof=1)}
    fields |= chain_diagnostics(draws)
    dataset = _with_dataset_dim(posterior[next(iter(posterior.data_vars))])["dataset"].values
    table = xr.Dataset({name: (("dataset", "parameter"), v) for name, v in fields.items()},
                       coords={"dataset": dataset, "parameter": names, "site": ("parameter", sites)})
    table["divergences"] = _with_dataset_dim(tree["sample_stats"]["diverging"]).sum(SAMPLE_DIMS)
    return table


def select_dataset(tree: xr.DataTree, index: int) -> xr.DataTree:
    """The DataTree of one dataset (by position), with the ``dataset`` dim dropped."""
    return tree.isel(dataset=index)


def summary(tree: xr.DataTree, index: int | None = 0) -> pd.DataFrame:
    """ArviZ's summary table (mean, sd, ETI, MCSE, ESS, R-hat) of one dataset.

    ``index``: position along ``dataset``; ``None`` for a tree without the ``dataset`` dim.
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
