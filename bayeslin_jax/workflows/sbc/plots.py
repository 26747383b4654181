"""SBC figures with ArviZ: Δ-ECDF-PIT with simultaneous bands, rank histograms, coverage.

All plots take the per-simulation dataset of :func:`bayeslin_jax.workflows.sbc.run_sbc` and use the PIT
values computed there with the *known* L, ``pit = (rank + jitter) / (L + 1)`` (never integer
ranks: ``arviz_plots.plot_ecdf_pit`` would rescale those by the largest rank it happens to see).
Every panel has its x and y axes labelled; a long quantity name is wrapped in its panel's title.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import arviz_plots as azp
import numpy as np
import xarray as xr
from arviz_plots import PlotCollection
from arviz_plots.visuals import fill_between_y, labelled_x, labelled_y, line_xy
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from bayeslin_jax.workflows.sbc.stats import ecdf_band

#: Panel titles (quantity names) longer than this many characters are wrapped onto several lines.
TITLE_WRAP = 32


def _per_quantity(da: xr.DataArray) -> xr.DataTree:
    """``(dataset, quantity)`` -> DataTree group ``sbc`` with one variable per quantity."""
    ds = xr.Dataset({str(q): da.sel(quantity=q).drop_vars("quantity") for q in da["quantity"].values})
    return xr.DataTree.from_dict({"sbc": ds})


def _layout(num_quantities: int) -> dict[str, Any]:
    cols = min(3, num_quantities)
    rows = -(-num_quantities // cols)
    return {"col_wrap": cols, "figure_kwargs": {"figsize": (4.2 * cols, 3.0 * rows), "constrained_layout": True}}


def _num_ranks(ds: xr.Dataset) -> int:
    return int(json.loads(ds.attrs["meta"])["config"]["num_ranks"])


def _used(ds: xr.Dataset) -> xr.Dataset:
    """Simulations that passed the diagnostics gate (all of them if fewer than 2 did, as in the verdict)."""
    ok = ds["gate_ok"].values
    return ds if ok.sum() < 2 else ds.isel(dataset=np.flatnonzero(ok))


def _first(dt: xr.DataTree) -> xr.Dataset:
    """One simulation of every quantity: the data a per-panel overlay or label is mapped over."""
    return dt["sbc"].to_dataset().isel(dataset=0)


def _label(pc: PlotCollection, dt: xr.DataTree, x: str | None, y: str) -> None:
    """Label every panel's axes (``x`` None: keep the x label ArviZ set)."""
    if x is not None:
        pc.map(labelled_x, "xlabel_sbc", data=_first(dt), text=x, ignore_aes="all")
    pc.map(labelled_y, "ylabel_sbc", data=_first(dt), text=y, ignore_aes="all")


def plot_ecdf_pit(ds: xr.Dataset, alpha: float = 0.05) -> PlotCollection:
    """Δ-ECDF of the PIT per quantity with the simultaneous band of the ECDF test.

    The band is Säilynoja et al.'s simultaneous band for the discrete ranks at level
    ``1 - alpha / Q`` (Bonferroni over the Q quantities): a curve leaving it is a rejection at
    family level ``alpha``. Panels: x the PIT, y the ECDF minus the uniform CDF.

    Parameters
    ----------
    ds : xarray.Dataset
        The per-simulation dataset of :func:`~bayeslin_jax.workflows.sbc.run_sbc` (``pit``,
        ``gate_ok`` and the ``meta`` attribute); simulations failing the gate are left out.
    alpha : float, default 0.05
        Family-wise level of the band.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per quantity; ``pc.viz["figure"]`` holds the figure.
    """
    ds = _used(ds)
    num_q, total, num_ranks = ds.sizes["quantity"], ds.sizes["dataset"], _num_ranks(ds)
    dt = _per_quantity(ds["pit"])
    pc = azp.plot_ecdf_pit(
        dt, group="sbc", sample_dims=["dataset"], backend="matplotlib",
        visuals={"p_value_text": False, "suspicious_points": False, "ylabel": {"text": "ECDF − uniform CDF"}},
        **_layout(num_q),
    )
    z, lower, upper = ecdf_band(total, num_ranks, 1.0 - alpha / num_q)
    x = np.concatenate([[0.0], z, [1.0]])
    y_bottom = np.concatenate([[0.0], lower / total - z, [0.0]])
    y_top = np.concatenate([[0.0], upper / total - z, [0.0]])
    pc.map(fill_between_y, "simultaneous_band", data=_first(dt), x=x,
           y_bottom=y_bottom, y_top=y_top, step=True, color="B1", alpha=0.25, ignore_aes="all")
    limit = 1.15 * max(np.abs(y_bottom).max(), np.abs(y_top).max(),
                       np.abs(np.sort(ds["pit"].values, 0) - (np.arange(1, total + 1) / total)[:, None]).max())
    for ax in _axes(pc):
        ax.set_ylim(-limit, limit)
    _suptitle(pc, f"SBC Δ-ECDF-PIT, {total} simulations, L={num_ranks}; band: simultaneous "
                  f"{100 * (1 - alpha / num_q):.2f}% (family α={alpha:g})")
    return pc


def plot_rank_hist(ds: xr.Dataset, num_bins: int = 20, prob: float = 0.99) -> PlotCollection:
    """Rank histograms (ranks in ``0..L``) with the pointwise ``prob`` band of a uniform histogram.

    Panels: x the rank, y the histogram's density (per unit of rank).

    Parameters
    ----------
    ds : xarray.Dataset
        The per-simulation dataset of :func:`~bayeslin_jax.workflows.sbc.run_sbc` (``rank``,
        ``gate_ok``, ``meta``).
    num_bins : int, default 20
        Histogram bins (at most ``L + 1``); the ranks are split into bins of (nearly) equal width.
    prob : float, default 0.99
        Probability of the pointwise band of each bin's count under uniform ranks (binomial).

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per quantity.
    """
    ds = _used(ds)
    num_q, total, num_ranks = ds.sizes["quantity"], ds.sizes["dataset"], _num_ranks(ds)
    num_bins = max(1, min(num_bins, num_ranks + 1))
    groups = np.array_split(np.arange(num_ranks + 1), num_bins)
    edges = np.array([g[0] - 0.5 for g in groups] + [num_ranks + 0.5])
    dt = _per_quantity(ds["rank"].astype(float))
    pc = azp.plot_dist(
        dt, group="sbc", sample_dims=["dataset"], kind="hist", stats={"dist": {"bins": edges}},
        backend="matplotlib", visuals={"credible_interval": False, "point_estimate": False,
                                       "point_estimate_text": False, "remove_axis": False},
        **_layout(num_q),
    )
    width = np.diff(edges)
    p_bin = width / (num_ranks + 1)
    lo = stats.binom.ppf((1 - prob) / 2, total, p_bin) / (total * width)
    hi = stats.binom.isf((1 - prob) / 2, total, p_bin) / (total * width)
    x = np.repeat(edges, 2)[1:-1]
    pc.map(fill_between_y, "uniform_band", data=_first(dt), x=x,
           y_bottom=np.repeat(lo, 2), y_top=np.repeat(hi, 2), color="B1", alpha=0.25, ignore_aes="all")
    _label(pc, dt, f"rank of the truth (0..{num_ranks})", "density")
    _suptitle(pc, f"SBC rank histograms ({total} simulations, L={num_ranks}); band: pointwise {100 * prob:g}% "
                  "for uniform ranks")
    return pc


def plot_coverage(ds: xr.Dataset) -> PlotCollection:
    """ArviZ coverage plot: Δ-ECDF of ``|2 pit - 1|`` = observed minus nominal coverage of central intervals.

    Panels: x the central interval's nominal probability (ETI %), y observed minus nominal coverage.

    Parameters
    ----------
    ds : xarray.Dataset
        The per-simulation dataset of :func:`~bayeslin_jax.workflows.sbc.run_sbc` (``pit``,
        ``gate_ok``).

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per quantity.
    """
    ds = _used(ds)
    dt = _per_quantity(ds["pit"])
    pc = azp.plot_ecdf_pit(dt, group="sbc", sample_dims=["dataset"], coverage=True, backend="matplotlib",
                           visuals={"ylabel": {"text": "observed − nominal coverage"}},
                           **_layout(ds.sizes["quantity"]))
    _suptitle(pc, "SBC coverage of central intervals: observed - nominal (ArviZ pot-c uniformity p-values)")
    return pc


def plot_nuts_vs_exact(ds: xr.Dataset) -> PlotCollection:
    """ECDF over simulations of ``z = (mean_nuts - mean_exact) / MCSE`` with the N(0, 1) CDF it should follow.

    For the quantities linear in the weights (their exact posterior mean is known); NUTS runs with
    known noise only. Panels: x ``z``, y the ECDF.

    Parameters
    ----------
    ds : xarray.Dataset
        The per-simulation dataset of a NUTS :func:`~bayeslin_jax.workflows.sbc.run_sbc` with
        ``post_mean``, ``exact_mean`` (NaN for non-linear quantities), ``mcse`` and ``gate_ok``.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per linear quantity.
    """
    ds = _used(ds)
    linear = ~np.isnan(ds["exact_mean"].values).any(0)
    z = (ds["post_mean"] - ds["exact_mean"]) / ds["mcse"]
    z = z.isel(quantity=np.flatnonzero(linear))
    dt = _per_quantity(z)
    pc = azp.plot_dist(dt, group="sbc", sample_dims=["dataset"], kind="ecdf", backend="matplotlib",
                       visuals={"credible_interval": False, "point_estimate": False,
                                "point_estimate_text": False, "remove_axis": False},
                       **_layout(int(linear.sum())))
    grid = np.linspace(-4, 4, 201)
    pc.map(line_xy, "standard_normal", data=_first(dt), x=grid,
           y=stats.norm.cdf(grid), color="B1", linestyle="--", ignore_aes="all")
    _label(pc, dt, "z = (mean_nuts − mean_exact) / MCSE", "ECDF")
    _suptitle(pc, "NUTS vs exact posterior, same datasets: ECDF of (mean_nuts - mean_exact) / MCSE; dashed: N(0, 1)")
    return pc


def _figure(pc: PlotCollection) -> Figure:
    figure = pc.viz["figure"]
    return figure.item() if hasattr(figure, "item") else figure


def _axes(pc: PlotCollection) -> list[Axes]:
    return [ax for ax in _figure(pc).axes if ax.get_visible()]


def _suptitle(pc: PlotCollection, text: str) -> None:
    """Figure title; also hides the empty grid cells the wrap layout leaves and wraps long panel titles."""
    fig = _figure(pc)
    fig.suptitle(text, fontsize=10)
    for ax in fig.axes:
        if not ax.has_data() and not ax.get_title():
            ax.set_visible(False)
        elif len(ax.get_title()) > TITLE_WRAP:
            ax.set_title(textwrap.fill(ax.get_title(), TITLE_WRAP, break_on_hyphens=False))


def save_plots(ds: xr.Dataset, out_dir: str | Path, alpha: float = 0.05) -> list[Path]:
    """Write the SBC figures as PNGs into a folder, each file atomically.

    ``sbc_ecdf_pit.png``, ``sbc_rank_hist.png``, ``sbc_coverage.png`` and, for NUTS with known
    noise, ``sbc_nuts_vs_exact.png``. A failed write keeps the previous file.

    Parameters
    ----------
    ds : xarray.Dataset
        The per-simulation dataset of :func:`~bayeslin_jax.workflows.sbc.run_sbc`.
    out_dir : str or Path
        Output folder (created).
    alpha : float, default 0.05
        Family-wise level of the ECDF band (:func:`plot_ecdf_pit`).

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    figures: list[tuple[str, Callable[[], PlotCollection]]] = [
        ("sbc_ecdf_pit.png", lambda: plot_ecdf_pit(ds, alpha)),
        ("sbc_rank_hist.png", lambda: plot_rank_hist(ds)),
        ("sbc_coverage.png", lambda: plot_coverage(ds)),
    ]
    if "exact_mean" in ds and ds["gate_ok"].values.sum() >= 2:
        figures.append(("sbc_nuts_vs_exact.png", lambda: plot_nuts_vs_exact(ds)))
    from bayeslin_jax.core.atomic import atomic_path

    for name, make in figures:  # each file atomic: a failed write keeps the previous plot
        pc = make()
        path = out_dir / name
        try:
            with atomic_path(path) as tmp:
                pc.savefig(tmp, dpi=110, format="png")
        finally:
            plt.close("all")
        paths.append(path)
    return paths
