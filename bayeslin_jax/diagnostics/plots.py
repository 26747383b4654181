"""The tutorial's figures: data, prior/posterior lines, predictive bands, trace and pair plots.

Conventions (shapes): ``x, y: (n,)`` one dataset; ``w: (k, d)`` weight draws (one line each);
NUTS draws of one dataset ``samples = {"w": (C, S, d), ["sigma": (C, S)]}``.

Uncertainty levels are explicit. The exact band is ``mean ± 2 sd`` (a 95.45% interval for a
Gaussian); the NUTS band is the ArviZ HDI (:func:`arviz_stats.hdi`) at the same probability,
:data:`TWO_SIGMA_PROB`, so that the two bands should coincide when NUTS is right.

Figures come from ``matplotlib.pyplot`` (and ``arviz_plots`` for trace / pair plots) and work
headless on the Agg backend; :func:`save` writes a PNG and closes the figure. Layout rules: legends sit
outside the plotting area (never over the data), every panel's y axis is labelled, densities are drawn
over a grid padded beyond the draws until their tails reach about zero, and long parameter names are
wrapped (constrained layout leaves them room).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import arviz_base as azb
import arviz_plots as azp
import arviz_stats as azs
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from arviz_plots.visuals import labelled_y
from jax import Array
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from bayeslin_jax.core import atomic, exact
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.exact import GaussianPosterior
from bayeslin_jax.core.priors import KnownNoise, ModelSpec

#: Probability mass of ``mean ± 2 sd`` under a Gaussian (erf(sqrt(2)) = 0.9545).
TWO_SIGMA_PROB = math.erf(2.0 / math.sqrt(2.0))

DATA_COLOR = "black"
TRUE_COLOR = "tab:green"
PRIOR_COLOR = "tab:purple"
POSTERIOR_COLOR = "tab:blue"
NUTS_OBS_COLOR = "#9ecae1"
NUTS_MEAN_COLOR = "#3182bd"
EXACT_COLOR = "tab:red"
#: A density's grid reaches this many KDE bandwidths beyond the extreme draws (the tails are ~0 there).
KDE_TAIL_BANDWIDTHS = 4.0
#: Panel titles (parameter names) longer than this many characters are wrapped onto several lines.
TITLE_WRAP = 28


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure to a PNG file and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    path : str or Path
        Output file; its parent folders are created. The write is atomic
        (:func:`bayeslin_jax.core.atomic.savefig`): a failed write keeps the previous file.
    dpi : int, default 120
        Resolution in dots per inch.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.savefig(fig, path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def make_grid(x: np.ndarray, x_range: tuple[float, float] | None = None, num: int = 200) -> np.ndarray:
    """Evaluation grid over ``x_range``, or over the data's span padded by 5%.

    Parameters
    ----------
    x : (n,) array
        The data's inputs (used only without ``x_range``).
    x_range : tuple of float, optional
        ``(low, high)`` of the grid, finite with ``low < high``.
    num : int, default 200
        Number of grid points.

    Returns
    -------
    (num,) array
        Evenly spaced points from ``low`` to ``high``.

    Raises
    ------
    BayeslinError
        ``x_range`` is not two finite numbers with ``low < high``.
    """
    if x_range is None:
        lo, hi = float(np.min(x)), float(np.max(x))
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        x_range = (lo - pad, hi + pad)
    lo, hi = map(float, x_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise BayeslinError(f"x_range must be two finite numbers (low, high) with low < high, got {x_range}")
    return np.linspace(lo, hi, num)


def thin_draws(w: np.ndarray, k: int) -> np.ndarray:
    """Pick ``k`` evenly spaced draws of the flattened chains.

    Deterministic (no randomness): every ``N/k``-th draw of the ``N`` draws of all chains.

    Parameters
    ----------
    w : (..., d) array
        Weight draws, e.g. ``(C, S, d)``; the sample dimensions are flattened.
    k : int
        Number of draws to keep (at most ``N``).

    Returns
    -------
    (k, d) array
        The kept draws.
    """
    flat = np.asarray(w).reshape(-1, np.shape(w)[-1])
    k = min(int(k), flat.shape[0])
    return flat[np.linspace(0, flat.shape[0] - 1, k).round().astype(int)]


def line_values(w: np.ndarray, basis: Polynomial, x_grid: np.ndarray) -> np.ndarray:
    """Mean functions ``w_j · phi(x)`` of weight draws on a grid.

    Parameters
    ----------
    w : (..., d) array
        Weight draws.
    basis : Polynomial
        The basis ``phi``.
    x_grid : (m,) array
        Where to evaluate.

    Returns
    -------
    (..., m) array
        One mean function per draw.
    """
    phi = np.asarray(basis(_jax_array(x_grid)))  # (m, d)
    return np.asarray(w, dtype=float) @ phi.T


def _jax_array(x: np.ndarray) -> Array:
    """``x`` as a JAX array of the working float dtype (what :class:`Polynomial` computes with)."""
    return jnp.asarray(np.asarray(x, dtype=float))


def _legend_outside(ax: Axes) -> Legend:
    """The axes' legend to the right of its plotting area, so it never covers the data.

    Constrained layout (every figure here uses it) and ``save``'s tight bounding box leave it room.
    """
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small",
                     framealpha=0.9)


def _finish(ax: Axes, title: str, legend: bool = True) -> None:
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    if legend:
        _legend_outside(ax)


def _wrap(name: str, width: int = TITLE_WRAP) -> str:
    """A long parameter name broken over lines of about ``width`` characters (after ``:``, before ``[`` too)."""
    if len(name) <= width:
        return name
    spaced = name.replace(":", ": ").replace("[", " [")
    lines = textwrap.wrap(spaced, width, break_long_words=True, break_on_hyphens=False)
    return "\n".join(line.replace(": ", ":").replace(" [", "[") for line in lines)


def _readable_xticks(ax: Axes, nbins: int = 4) -> None:
    """At most ``nbins`` x ticks, in scientific notation with an offset beyond ``1e-3`` / ``1e4``, so tick labels
    of small or large values (``income`` coefficients ~1e-4) never run into each other."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins))
    formatter = ScalarFormatter(useMathText=True)
    formatter.set_powerlimits((-3, 4))
    ax.xaxis.set_major_formatter(formatter)


def _sample_values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=float)


def _padded_kde_element(da: xr.DataArray, dims: list[str], tails: float) -> xr.DataArray:
    """KDE of one element (no dimensions but sample ones) over ``dims``, every slice on one padded grid."""
    values = _sample_values(da)
    first = da.azstats.kde(dim=dims)
    bw_name = next(str(name) for name in first.coords if str(name).startswith("bw"))
    bw = float(np.nanmax(first.coords[bw_name].values))
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = tails * bw if np.isfinite(bw) and bw > 0 else max(abs(lo), abs(hi), 1.0) * 0.1
    bounded = lo >= 0.0 and lo - pad < 0.0  # a non-negative parameter (e.g. sigma) near 0: reflect at 0
    grid = (0.0 if bounded else lo - pad, hi + pad)
    kde = da.azstats.kde(dim=dims, custom_lims=grid, bound_correction=bounded)
    return kde.assign_attrs(kind="kde")  # arviz_plots reads the kind of pre-computed visualisation data


def _padded_kde_var(da: xr.DataArray, dims: list[str], elements: list[str], tails: float) -> xr.DataArray:
    if not elements:
        return _padded_kde_element(da, dims, tails)
    first, rest = elements[0], elements[1:]
    parts = [_padded_kde_var(da.isel({first: i}), dims, rest, tails) for i in range(da.sizes[first])]
    return xr.concat(parts, dim=first, coords="different", compat="equals")


def _padded_kde(
    data: xr.Dataset,
    dims: Sequence[str] = ("draw",),
    sample_dims: Sequence[str] = ("chain", "draw"),
    tails: float = KDE_TAIL_BANDWIDTHS,
) -> xr.Dataset:
    """Kernel density estimates whose grids reach past the draws until the tails are about zero.

    ArviZ's KDE stops at the smallest and largest draw (boundary correction); drawn that way a
    density ends in mid-air. Here every element of every variable (one ``feature`` of ``w``, say)
    gets one grid, shared by all its slices (chains), from ``tails`` bandwidths below the smallest
    draw to ``tails`` above the largest, without boundary correction, so the curves of all chains
    span the same range. A non-negative variable whose grid would cross 0 (``sigma`` near 0) is cut
    at 0 with boundary correction there. The result is what ``arviz_plots`` accepts as
    pre-computed ``stats={"dist": ...}``.

    Parameters
    ----------
    data : xarray.Dataset
        Draws, e.g. a ``posterior`` group with ``w: (chain, draw, feature)``.
    dims : sequence of str, default ("draw",)
        Dimensions the density is estimated over (``("chain", "draw")`` pools the chains).
    sample_dims : sequence of str, default ("chain", "draw")
        The sample dimensions; the other dimensions index the elements.
    tails : float, default KDE_TAIL_BANDWIDTHS
        Padding beyond the extreme draws, in bandwidths.

    Returns
    -------
    xarray.Dataset
        One variable per variable of ``data``, dimensions ``plot_axis`` (``x``, ``y``), ``kde_dim``
        and those of ``data`` not in ``dims``.
    """
    dims, samples = list(dims), set(sample_dims)
    out = {}
    for name, da in data.data_vars.items():
        elements = [str(dim) for dim in da.dims if dim not in samples]
        out[name] = _padded_kde_var(da, [d for d in dims if d in da.dims], elements, tails)
    return xr.Dataset(out)


class _FlatLabeller(azb.labels.BaseLabeller):
    """ArviZ labeller whose "vertical" labels are one line: ``w[b]``, not ``w`` over ``b``."""

    def make_label_vert(self, var_name, sel, isel):
        return self.make_label_flat(var_name, sel, isel)


def _span_xlim(axes: Iterable[Axes]) -> None:
    """Set each axes' x limits to the span of its density lines: the curves cover the whole x range shown."""
    for ax in axes:
        xs = [x for x in (np.asarray(line.get_xdata(), dtype=float) for line in ax.lines) if x.size > 1]
        if xs:
            ax.set_xlim(min(float(x.min()) for x in xs), max(float(x.max()) for x in xs))


# --------------------------------------------------------------------------------------------
# data and lines
# --------------------------------------------------------------------------------------------


def plot_data(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    true_w: np.ndarray | None = None,
    basis: Polynomial | None = None,
    x_grid: np.ndarray | None = None,
) -> None:
    """Scatter the data and, when the true weights are known, draw the true line.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    x, y : (n,) array
        The data.
    true_w : (d,) array, optional
        True weights; draws the dashed true line ``true_w · phi(x)``.
    basis : Polynomial, optional
        The basis of ``true_w`` (default: the polynomial of degree ``d - 1``).
    x_grid : (m,) array, optional
        Where the true line is evaluated (default: :func:`make_grid` of ``x``).
    """
    if true_w is not None:
        basis = basis or Polynomial(np.shape(true_w)[-1] - 1)
        grid = make_grid(x) if x_grid is None else x_grid
        ax.plot(grid, line_values(true_w, basis, grid), color=TRUE_COLOR, lw=2, ls="--", label="true line", zorder=4)
    ax.scatter(x, y, color=DATA_COLOR, s=28, zorder=5, label=f"data (N={np.size(x)})")


def data_figure(
    x: np.ndarray,
    y: np.ndarray,
    true_w: np.ndarray | None = None,
    basis: Polynomial | None = None,
    title: str = "Simulated data",
    x_range: tuple[float, float] | None = None,
) -> Figure:
    """The data with the true line if given; the legend sits right of the axes.

    Parameters
    ----------
    x, y : (n,) array
        The data.
    true_w : (d,) array, optional
        True weights, drawn as the true line.
    basis : Polynomial, optional
        The basis of ``true_w`` (default: degree ``d - 1``).
    title : str, default "Simulated data"
        The axes' title.
    x_range : tuple of float, optional
        ``(low, high)`` of the true line (default: the data's span padded by 5%).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the scatter (``collections[0]``) and the true line.
    """
    fig, ax = plt.subplots(figsize=(7.6, 4.2), layout="constrained")
    plot_data(ax, x, y, true_w, basis, make_grid(x, x_range))
    _finish(ax, title)
    return fig


def plot_lines(
    ax: Axes,
    w: np.ndarray,
    basis: Polynomial,
    x_grid: np.ndarray,
    color: str = POSTERIOR_COLOR,
    alpha: float = 0.08,
    label: str | None = None,
) -> list[Line2D]:
    """Draw one line ``w_j · phi(x_grid)`` per weight draw.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    w : (k, d) array
        Weight draws.
    basis : Polynomial
        The basis ``phi``.
    x_grid : (m,) array
        Where the lines are evaluated.
    color : str, default POSTERIOR_COLOR
        Line colour.
    alpha : float, default 0.08
        Line opacity.
    label : str, optional
        Legend entry: one empty proxy line, drawn less transparent so the entry stays visible.

    Returns
    -------
    list of matplotlib.lines.Line2D
        The ``k`` line artists (the proxy not included).
    """
    values = line_values(w, basis, x_grid)  # (k, m)
    lines = ax.plot(x_grid, values.T, color=color, alpha=alpha, lw=1)
    if label is not None and lines:  # a legend entry that stays visible despite the transparency
        ax.plot([], [], color=color, lw=1.5, alpha=max(alpha, 0.4), label=label)
    return lines


def lines_figure(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    basis: Polynomial,
    title: str,
    label: str = "draws",
    color: str = POSTERIOR_COLOR,
    true_w: np.ndarray | None = None,
    x_range: tuple[float, float] | None = None,
    alpha: float | None = None,
) -> Figure:
    """Lines ``w_j · phi(x)`` of weight draws over the data.

    Used for the tutorial's 200 prior lines and the posterior lines. The first axes holds
    exactly ``k`` draw lines (plus one legend proxy and the true line if given); the legend sits
    right of the axes.

    Parameters
    ----------
    x, y : (n,) array
        The data.
    w : (k, d) array
        Weight draws, one line each.
    basis : Polynomial
        The basis ``phi`` (``d = basis.dim``).
    title : str
        The axes' title.
    label : str, default "draws"
        Legend entry, after the number of lines (``"200 draws"``).
    color : str, default POSTERIOR_COLOR
        Line colour.
    true_w : (d,) array, optional
        True weights, drawn as the true line.
    x_range : tuple of float, optional
        ``(low, high)`` of the lines (default: the data's span padded by 5%).
    alpha : float, optional
        Line opacity (default ``25 / k`` clipped to ``[0.05, 0.6]``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    BayeslinError
        ``w`` is not ``(k, basis.dim)``, or ``x_range`` is not a valid range.
    """
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[1] != basis.dim:
        raise BayeslinError(f"expected weight draws of shape (k, {basis.dim}), got {w.shape}")
    grid = make_grid(x, x_range)
    fig, ax = plt.subplots(figsize=(7.6, 4.2), layout="constrained")
    if alpha is None:
        alpha = float(np.clip(25.0 / max(len(w), 1), 0.05, 0.6))
    plot_lines(ax, w, basis, grid, color=color, alpha=alpha, label=f"{len(w)} {label}")
    plot_data(ax, x, y, true_w, basis, grid)
    _finish(ax, title)
    return fig


# --------------------------------------------------------------------------------------------
# predictive bands
# --------------------------------------------------------------------------------------------


def nuts_band(
    x_grid: np.ndarray,
    basis: Polynomial,
    w: np.ndarray,
    sigma: np.ndarray | float,
    key: Array | None = None,
    prob: float = TWO_SIGMA_PROB,
) -> dict[str, np.ndarray]:
    """HDI bands of the mean function and of new observations from posterior draws.

    A new observation ``y~ = mu(x) + sigma * eps`` per draw uses ``eps ~ N(0, 1)`` from ``key``,
    one ``eps`` per draw shared across the grid: each ``y~(x)`` is still an exact draw from the
    pointwise predictive (all a pointwise band uses), and the band's edge is smooth instead of
    jagged.

    Parameters
    ----------
    x_grid : (m,) array
        Where the bands are evaluated.
    basis : Polynomial
        The basis ``phi``.
    w : (C, S, d) array
        Weight draws.
    sigma : float or (C, S) array
        The known noise sd, or one per draw.
    key : jax.Array, optional
        Key of the new observations' noise (default ``jax.random.key(0)``).
    prob : float, default TWO_SIGMA_PROB
        Probability of the HDIs (:func:`arviz_stats.hdi`).

    Returns
    -------
    dict of str to array
        ``mean: (m,)`` (posterior mean of mu), ``mu_hdi: (m, 2)`` and ``obs_hdi: (m, 2)``
        (columns lower, upper).

    Raises
    ------
    BayeslinError
        ``w`` is not three-dimensional.
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 3:
        raise BayeslinError(f"expected weight draws of shape (chains, draws, d), got {w.shape}")
    mu = line_values(w, basis, x_grid)  # (C, S, m)
    key = jax.random.key(0) if key is None else key
    eps = np.asarray(jax.random.normal(key, (*mu.shape[:2], 1)), dtype=float)
    sig = np.asarray(sigma, dtype=float)
    y_new = mu + (sig[..., None] if sig.ndim else sig) * eps
    dims = ("chain", "draw", "grid")
    mu_hdi = azs.hdi(xr.DataArray(mu, dims=dims), prob=prob, dim=["chain", "draw"])
    obs_hdi = azs.hdi(xr.DataArray(y_new, dims=dims), prob=prob, dim=["chain", "draw"])
    return {
        "mean": mu.mean(axis=(0, 1)),
        "mu_hdi": mu_hdi.transpose("grid", "ci_bound").values,
        "obs_hdi": obs_hdi.transpose("grid", "ci_bound").values,
    }


def exact_band(
    x_grid: np.ndarray, basis: Polynomial, post: GaussianPosterior, sigma: float | None
) -> dict[str, np.ndarray | None]:
    """Exact posterior predictive mean and sds on a grid.

    Parameters
    ----------
    x_grid : (m,) array
        Where to evaluate.
    basis : Polynomial
        The basis ``phi``.
    post : GaussianPosterior
        The exact (conjugate) posterior of the weights.
    sigma : float or None
        The noise sd of a new observation; None: no observation band.

    Returns
    -------
    dict of str to array or None
        ``mean: (m,)``, ``sd_mean: (m,)`` (sd of the mean function) and ``sd_obs: (m,)`` (sd of a
        new observation; None without ``sigma``).
    """
    phi = basis(_jax_array(x_grid))
    mean, sd_mean, sd_obs = exact.predictive(post, phi, 0.0 if sigma is None else sigma)
    return {
        "mean": np.asarray(mean),
        "sd_mean": np.asarray(sd_mean),
        "sd_obs": None if sigma is None else np.asarray(sd_obs),
    }


def _known_sigma(spec: ModelSpec) -> float | None:
    """The spec's known noise sd (:class:`KnownNoise`), None when sigma is learned."""
    noise = spec.noise
    return float(noise.sigma) if isinstance(noise, KnownNoise) else None


def plot_predictive_band(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    samples: dict[str, np.ndarray],
    exact_post: GaussianPosterior | None = None,
    x_range: tuple[float, float] | None = None,
    num_lines: int = 0,
    true_w: np.ndarray | None = None,
    exact_sigma: float | None = None,
    key: Array | None = None,
    prob: float = TWO_SIGMA_PROB,
) -> dict[str, Any]:
    """Draw the data, posterior lines, the NUTS HDI bands and the exact ±2 sd bands on one axes.

    The NUTS observation band uses the known sigma, or the ``sigma`` draws for unknown noise. The
    exact bands (outlines: solid for the mean function, dashed for new observations) need
    ``exact_post``; the observation band also needs a noise sd: the spec's known sigma, or
    ``exact_sigma``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; its x limits are set to the grid.
    x, y : (n,) array
        The data.
    spec : ModelSpec
        The model (its basis, and its noise: known or learned).
    samples : dict of str to array
        One dataset's draws ``{"w": (C, S, d), ["sigma": (C, S)]}``.
    exact_post : GaussianPosterior, optional
        The exact posterior of the weights; without it no exact bands.
    x_range : tuple of float, optional
        ``(low, high)`` of the grid (default: the data's span padded by 5%).
    num_lines : int, default 0
        Posterior lines to draw (thinned draws, :func:`thin_draws`).
    true_w : (d,) array, optional
        True weights, drawn as the true line.
    exact_sigma : float, optional
        Noise sd of the exact observation band when sigma is learned.
    key : jax.Array, optional
        Key of the NUTS band's new-observation noise (:func:`nuts_band`).
    prob : float, default TWO_SIGMA_PROB
        Probability of the NUTS HDIs.

    Returns
    -------
    dict of str to object
        The artists: ``"nuts_obs"``, ``"nuts_mu"`` (filled polygons), ``"exact_mu"``,
        ``"exact_obs"`` (line lists; absent when not drawn) and ``"lines"``.

    Raises
    ------
    BayeslinError
        Unknown noise but no ``sigma`` draws in ``samples``.
    """
    basis = spec.basis
    grid = make_grid(x, x_range)
    known = _known_sigma(spec)
    sigma_draws: np.ndarray | float
    if known is not None:
        sigma_draws = known
    elif "sigma" in samples:
        sigma_draws = np.asarray(samples["sigma"])
    else:
        raise BayeslinError("unknown-noise spec but the samples have no 'sigma' draws")
    band = nuts_band(grid, basis, samples["w"], sigma_draws, key=key, prob=prob)
    pct = f"{100 * prob:.1f}%"
    artists: dict[str, Any] = {}
    artists["nuts_obs"] = ax.fill_between(
        grid, *band["obs_hdi"].T, color=NUTS_OBS_COLOR, alpha=0.55, lw=0, label=f"NUTS {pct} HDI, new obs ỹ"
    )
    artists["nuts_mu"] = ax.fill_between(
        grid, *band["mu_hdi"].T, color=NUTS_MEAN_COLOR, alpha=0.55, lw=0, label=f"NUTS {pct} HDI, mean μ(x)"
    )
    artists["lines"] = []
    if num_lines > 0:
        artists["lines"] = plot_lines(
            ax, thin_draws(samples["w"], num_lines), basis, grid, color="navy", alpha=0.12, label="posterior lines"
        )
    ax.plot(grid, band["mean"], color="navy", lw=1.5, label="NUTS posterior mean")
    if exact_post is not None:
        sigma = known if known is not None else exact_sigma
        ex = exact_band(grid, basis, exact_post, sigma)
        mean, sd_mean, sd_obs = cast(np.ndarray, ex["mean"]), cast(np.ndarray, ex["sd_mean"]), ex["sd_obs"]
        lo, hi = mean - 2 * sd_mean, mean + 2 * sd_mean
        artists["exact_mu"] = ax.plot(grid, lo, grid, hi, color=EXACT_COLOR, lw=1.6, label="exact ±2 sd, mean μ(x)")
        artists["exact_mu"][1].set_label("_nolegend_")
        if sd_obs is not None:
            lo, hi = mean - 2 * sd_obs, mean + 2 * sd_obs
            artists["exact_obs"] = ax.plot(
                grid, lo, grid, hi, color=EXACT_COLOR, lw=1.6, ls="--", label="exact ±2 sd, new obs ỹ"
            )
            artists["exact_obs"][1].set_label("_nolegend_")
    plot_data(ax, x, y, true_w, basis, grid)
    ax.set_xlim(grid[0], grid[-1])
    return artists


def predictive_band_figure(
    x: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    samples: dict[str, np.ndarray],
    exact_post: GaussianPosterior | None = None,
    x_ranges: Sequence[tuple[float, float] | None] = (None,),
    true_w: np.ndarray | None = None,
    title: str = "Posterior predictive",
    panel_titles: Sequence[str] | None = None,
    key: Array | None = None,
    prob: float = TWO_SIGMA_PROB,
) -> Figure:
    """The shaded uncertainty band: NUTS HDI bands over the exact ±2 sd bands, one panel per x-range.

    One legend for all panels, below them.

    Parameters
    ----------
    x, y : (n,) array
        The data.
    spec : ModelSpec
        The model.
    samples : dict of str to array
        One dataset's draws ``{"w": (C, S, d), ["sigma": (C, S)]}``.
    exact_post : GaussianPosterior, optional
        The exact posterior; without it no exact bands.
    x_ranges : sequence of (tuple of float or None), default (None,)
        One panel per entry, e.g. ``(None, (-3, 3))`` for the data's span and a zoomed-out view
        where the band widens away from the data.
    true_w : (d,) array, optional
        True weights, drawn as the true line.
    title : str, default "Posterior predictive"
        The figure's title.
    panel_titles : sequence of str, optional
        One title per panel (default: ``"data range"`` or ``"x in [a, b]"``).
    key : jax.Array, optional
        Key of the NUTS band's new-observation noise.
    prob : float, default TWO_SIGMA_PROB
        Probability of the NUTS HDIs.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, one axes per x-range.
    """
    fig, axes = plt.subplots(1, len(x_ranges), figsize=(6.4 * len(x_ranges), 4.6), squeeze=False)
    if panel_titles is None:
        panel_titles = ["data range" if r is None else f"x in [{r[0]:g}, {r[1]:g}]" for r in x_ranges]
    for ax, x_range, panel_title in zip(axes[0], x_ranges, panel_titles, strict=True):
        plot_predictive_band(ax, x, y, spec, samples, exact_post, x_range, true_w=true_w, key=key, prob=prob)
        _finish(ax, panel_title, legend=False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small", frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1 if len(x_ranges) > 1 else 0.16, 1, 1))
    return fig


def posterior_fit_figure(
    x: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    samples: dict[str, np.ndarray],
    exact_post: GaussianPosterior | None,
    x_range: tuple[float, float] | None = None,
    *,
    num_lines: int = 50,
    true_w: np.ndarray | None = None,
    title: str = "Posterior fit",
    key: Array | None = None,
    prob: float = TWO_SIGMA_PROB,
) -> Figure:
    """Data, posterior lines, NUTS HDI bands and, where known, the exact ±2 sd bands.

    The figure of :meth:`bayeslin_jax.workflows.fit.FitResult.plot` for the Gaussian regression on a
    polynomial basis. The legend sits right of the axes (never over the data) and states the band
    probability ``prob`` (default 95.45%, the mass of ±2 sd).

    Parameters
    ----------
    x, y : (n,) array
        The data.
    spec : ModelSpec
        The model.
    samples : dict of str to array
        One dataset's draws ``{"w": (C, S, d), ["sigma": (C, S)]}``.
    exact_post : GaussianPosterior or None
        The conjugate posterior (known noise), or None.
    x_range : tuple of float, optional
        ``(low, high)`` of the x axis (default: the data's span padded by 5%).
    num_lines : int, default 50
        Posterior lines to draw.
    true_w : (d,) array, optional
        True weights, drawn as the true line.
    title : str, default "Posterior fit"
        The axes' title.
    key : jax.Array, optional
        Key of the NUTS band's new-observation noise.
    prob : float, default TWO_SIGMA_PROB
        Probability of the NUTS HDIs.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with its legend.
    """
    fig, ax = plt.subplots(figsize=(9.0, 4.8), layout="constrained")
    plot_predictive_band(ax, x, y, spec, samples, exact_post, x_range, num_lines, true_w, key=key, prob=prob)
    _finish(ax, title)
    return fig


# --------------------------------------------------------------------------------------------
# ArviZ trace and pair plots
# --------------------------------------------------------------------------------------------


def _num_elements(da: xr.DataArray) -> int:
    """Elements of one draw of ``da`` (product of its non-sample dimensions)."""
    return math.prod(int(size) for dim, size in da.sizes.items() if dim not in ("chain", "draw"))


def trace_figure(tree: xr.DataTree, title: str = "NUTS trace") -> Figure:
    """Marginal density and trace per parameter, one row each (:func:`arviz_plots.plot_trace_dist`).

    Chains are coloured (legend right of the panels), divergences (``sample_stats.diverging``) are
    marked as a rug. Each row's density panel has the y label ``density`` and the parameter's name
    (``w[b]``) under its x axis; its trace panel has the name as y label. The densities are KDEs of
    all chains of a parameter on one grid that spans the panel's x axis and reaches
    :data:`KDE_TAIL_BANDWIDTHS` bandwidths past the draws, where the tails are about zero.

    Parameters
    ----------
    tree : xarray.DataTree
        A one-dataset DataTree (:func:`bayeslin_jax.diagnostics.host.select_dataset`) with
        ``posterior`` ``w: (chain, draw, feature)`` [and ``sigma: (chain, draw)``].
    title : str, default "NUTS trace"
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes per parameter element (density, trace).
    """
    posterior = cast(xr.DataTree, tree["posterior"]).to_dataset()
    rows = sum(_num_elements(da) for da in posterior.data_vars.values())
    pc = azp.plot_trace_dist(
        tree,
        compact=False,
        backend="matplotlib",
        labeller=_FlatLabeller(),
        stats={"dist": _padded_kde(posterior, dims=("draw",))},
        visuals={"remove_axis": False},
        figure_kwargs={"figsize": (10, 1.9 * rows + 0.8), "layout": "constrained"},
    )
    pc.map(labelled_y, "ylabel_dist", coords={"column": "dist"}, ignore_aes="all", text="density")
    _span_xlim(_column_axes(pc, "dist"))
    if "chain" in posterior.dims:
        pc.add_legend("chain", fontsize="small", title="chain")  # 'outside right upper' of the figure
    fig = pc.viz["figure"].item()
    fig.suptitle(title)
    return fig


def _column_axes(pc: Any, column: str) -> list[Axes]:
    """The axes of one column (``"dist"`` or ``"trace"``) of a ``plot_trace_dist`` collection."""
    plots = pc.viz["plot"]
    return [ax for name in plots.data_vars for ax in np.ravel(plots[name].sel(column=column).values)]


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float, **kwargs: Any) -> Ellipse:
    """Ellipse ``{z: (z - mean)^T cov^-1 (z - mean) = radius^2}`` for ``mean: (2,)``, ``cov: (2, 2)``."""
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    width, height = 2 * radius * np.sqrt(vals[::-1])
    return Ellipse((float(mean[0]), float(mean[1])), width, height, angle=angle, fill=False, **kwargs)


def pair_figure(
    tree: xr.DataTree,
    exact_post: GaussianPosterior | None = None,
    sigmas: Sequence[float] = (1.0, 2.0, 3.0),
    title: str = "Posterior of the weights",
) -> Figure:
    """Pair plot of the weights (:func:`arviz_plots.plot_pair`) with exact-posterior overlays.

    With ``exact_post`` each off-diagonal panel gets the exact 1/2/3-sigma (Mahalanobis radius)
    ellipses and each diagonal panel the exact normal density. The overlay draws onto the axes
    that ``plot_pair`` returns in ``viz["plot"]``. The diagonal panels' marginal KDEs (chains
    pooled, the grid :data:`KDE_TAIL_BANDWIDTHS` bandwidths past the draws) and exact densities
    span the panel's x axis; their y label is ``density of <name>``.

    Parameters
    ----------
    tree : xarray.DataTree
        One-dataset DataTree with ``posterior.w: (chain, draw, feature)``.
    exact_post : GaussianPosterior, optional
        The exact posterior (``mean: (d,)``, ``cov: (d, d)``); without it no overlays.
    sigmas : sequence of float, default (1.0, 2.0, 3.0)
        Mahalanobis radii of the ellipses.
    title : str, default "Posterior of the weights"
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        A ``d x d`` grid (upper triangle hidden) with one legend in its upper right corner.
    """
    posterior = cast(xr.DataTree, tree["posterior"]).to_dataset()[["w"]]
    pm = azp.plot_pair(
        tree,
        var_names=["w"],
        marginal=True,
        backend="matplotlib",
        labeller=azb.labels.NoVarLabeller(),  # axis labels 'b', 'm' (no variable name)
        stats={"dist": _padded_kde(posterior, dims=("chain", "draw"))},
        visuals={"scatter": {"alpha": 0.35, "color": POSTERIOR_COLOR}},
        figure_kwargs={"figsize": (7, 7)},
    )
    viz = pm.viz
    fig = viz["figure"].item()
    axes = viz["plot"].values
    names = list(viz["feature_x"].values)
    for i, name in enumerate(names):
        _span_xlim([axes[i, i]])
        axes[i, i].set_ylabel(f"density of {name}")
    if exact_post is not None:
        mean = np.asarray(exact_post.mean, dtype=float)
        cov = np.asarray(exact_post.cov, dtype=float)
        styles = ["-", "--", ":"]
        for i in range(len(names)):  # rows: y feature
            for j in range(len(names)):  # cols: x feature
                ax = axes[i, j]
                if i == j:
                    sd = math.sqrt(cov[i, i])
                    lo, hi = ax.get_xlim()
                    grid = np.linspace(lo, hi, 200)
                    pdf = np.exp(-0.5 * ((grid - mean[i]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
                    ax.plot(grid, pdf, color=EXACT_COLOR, lw=1.5, label="exact density")
                elif i > j:
                    sub = np.ix_([j, i], [j, i])
                    for k, radius in enumerate(sigmas):
                        ax.add_patch(
                            _ellipse(
                                mean[[j, i]],
                                cov[sub],
                                radius,
                                edgecolor=EXACT_COLOR,
                                lw=1.6,
                                ls=styles[k % len(styles)],
                                label=f"exact {radius:g}σ ellipse",
                                zorder=5,
                            )
                        )
                    ax.plot(
                        *mean[[j, i]],
                        marker="+",
                        color=EXACT_COLOR,
                        ms=12,
                        mew=2,
                        ls="none",
                        label="exact mean",
                        zorder=6,
                    )
        lower = axes[len(names) - 1, 0]
        lower.scatter([], [], color=POSTERIOR_COLOR, alpha=0.6, label="NUTS draws")
        lower.plot([], [], color=POSTERIOR_COLOR, label="NUTS marginal KDE")
        handles, labels = lower.get_legend_handles_labels()
        handles += axes[0, 0].get_legend_handles_labels()[0]
        labels += axes[0, 0].get_legend_handles_labels()[1]
        fig.legend(handles, labels, loc="upper right", fontsize="small", bbox_to_anchor=(0.98, 0.93))
    fig.suptitle(title)
    return fig


def parameter_figure(
    result: Any, dataset: int = 0, max_draws: int = 4000, max_panels: int = 24, title: str | None = None
) -> Figure:
    """One panel per parameter of a fit (any model): NUTS draws and, where known, the exact density.

    Each panel is a histogram of the NUTS draws, with the exact posterior density where the model
    has one (the feature site's elements). The parameter's name is the panel's title (wrapped when
    long), its y label is ``density``, its x axis has at most four ticks in scientific notation with
    an offset for small or large values, and constrained layout keeps names and tick labels apart.
    The legend sits below the panels.

    Parameters
    ----------
    result : FitResult
        A :class:`~bayeslin_jax.workflows.fit.FitResult` (anything with ``flat_draws(dataset)`` and
        ``diagnostics()``).
    dataset : int, default 0
        Position of the dataset in a batch.
    max_draws : int, default 4000
        Draws per histogram (the first ones of the pooled chains).
    max_panels : int, default 24
        Parameters drawn, the first ones (a hierarchical model can have many).
    title : str, optional
        The figure's title (none if None).

    Returns
    -------
    matplotlib.figure.Figure
        One visible axes per parameter drawn.
    """
    names, flat = result.flat_draws(dataset)
    names, flat = names[:max_panels], flat[:max_draws, :max_panels]
    table = result.diagnostics().isel(dataset=dataset)
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        ax.hist(flat[:, k], bins=40, density=True, color="#8fb3d9", label="NUTS draws")
        if "exact_mean" in table and np.isfinite(float(table["exact_mean"][k])):
            mean, sd = float(table["exact_mean"][k]), float(table["exact_sd"][k])
            grid = np.linspace(mean - 4 * sd, mean + 4 * sd, 200)
            density = np.exp(-0.5 * ((grid - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            ax.plot(grid, density, color="#c0392b", lw=1.6, label="exact posterior")
        ax.set_title(_wrap(names[k]), fontsize=9)
        ax.set_ylabel("density", fontsize=8)
        ax.set_yticks([])
        _readable_xticks(ax)
    entries: dict[str, Any] = {}  # one legend entry per label, from whichever panels have it
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=len(entries), fontsize=8,
               frameon=False)
    if title is not None:
        fig.suptitle(title)
    return fig
