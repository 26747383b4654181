"""The tutorial's figures: data, prior/posterior lines, predictive bands, trace and pair plots.

Conventions (shapes): ``x, y: (n,)`` one dataset; ``w: (k, d)`` weight draws (one line each);
NUTS draws of one dataset ``samples = {"w": (C, S, d), ["sigma": (C, S)]}``.

Uncertainty levels are explicit. The exact band is ``mean ± 2 sd`` (a 95.45% interval for a
Gaussian); the NUTS band is the ArviZ HDI (:func:`arviz_stats.hdi`) at the same probability,
:data:`TWO_SIGMA_PROB`, so that the two bands should coincide when NUTS is right.

Figures come from ``matplotlib.pyplot`` (and ``arviz_plots`` for trace / pair plots) and work
headless on the Agg backend; :func:`save` writes a PNG and closes the figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import arviz_base as azb
import arviz_plots as azp
import arviz_stats as azs
import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from jax import Array
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from bayeslin_jax.core import atomic, exact
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.exact import GaussianPosterior
from bayeslin_jax.core.priors import ModelSpec

#: Probability mass of ``mean ± 2 sd`` under a Gaussian (erf(sqrt(2)) = 0.9545).
TWO_SIGMA_PROB = math.erf(2.0 / math.sqrt(2.0))

DATA_COLOR = "black"
TRUE_COLOR = "tab:green"
PRIOR_COLOR = "tab:purple"
POSTERIOR_COLOR = "tab:blue"
NUTS_OBS_COLOR = "#9ecae1"
NUTS_MEAN_COLOR = "#3182bd"
EXACT_COLOR = "tab:red"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parent folders created) and close it. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.savefig(fig, path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def make_grid(x: np.ndarray, x_range: tuple[float, float] | None = None, num: int = 200) -> np.ndarray:
    """Evaluation grid ``(num,)`` over ``x_range``, or over the data's span padded by 5%."""
    if x_range is None:
        lo, hi = float(np.min(x)), float(np.max(x))
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        x_range = (lo - pad, hi + pad)
    lo, hi = map(float, x_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise BayeslinError(f"x_range must be two finite numbers (low, high) with low < high, got {x_range}")
    return np.linspace(lo, hi, num)


def thin_draws(w: np.ndarray, k: int) -> np.ndarray:
    """``k`` evenly spaced draws from ``w: (..., d)`` (sample dims flattened) -> ``(k, d)``.

    Deterministic (no randomness): picks every ``N/k``-th draw of the flattened chains.
    """
    flat = np.asarray(w).reshape(-1, np.shape(w)[-1])
    k = min(int(k), flat.shape[0])
    return flat[np.linspace(0, flat.shape[0] - 1, k).round().astype(int)]


def line_values(w: np.ndarray, basis: Polynomial, x_grid: np.ndarray) -> np.ndarray:
    """Mean functions ``w_j · phi(x)`` for ``w: (..., d)`` on ``x_grid: (m,)`` -> ``(..., m)``."""
    phi = np.asarray(basis(np.asarray(x_grid, dtype=float)))  # (m, d)
    return np.asarray(w, dtype=float) @ phi.T


def _finish(ax: Axes, title: str, legend: bool = True) -> None:
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    if legend:
        ax.legend(loc="best", fontsize="small", framealpha=0.9)


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
    """Scatter the data ``x, y: (n,)`` and, when ``true_w: (d,)`` is known, the true line."""
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
    """The data ``x, y: (n,)`` with the true line ``true_w: (d,)`` if given, over ``x_range``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
) -> list:
    """One line ``w_j · phi(x_grid)`` per draw ``w: (k, d)``; returns the ``k`` Line2D artists."""
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
    """Lines ``w_j · phi(x)`` for draws ``w: (k, d)`` over the data ``x, y: (n,)``.

    Used for the tutorial's 200 prior lines and the posterior lines. The first axes holds
    exactly ``k`` draw lines (plus one legend proxy and the true line if given).
    """
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[1] != basis.dim:
        raise BayeslinError(f"expected weight draws of shape (k, {basis.dim}), got {w.shape}")
    grid = make_grid(x, x_range)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
    """HDI bands from posterior draws on ``x_grid: (m,)``.

    ``w: (C, S, d)``; ``sigma``: a known scalar or per-draw ``(C, S)``. A new observation
    ``y~ = mu(x) + sigma * eps`` per draw uses ``eps ~ N(0, 1)`` from ``key`` (default
    ``jax.random.key(0)``), one ``eps`` per draw shared across the grid: each ``y~(x)`` is still
    an exact draw from the pointwise predictive (all a pointwise band uses), and the band's
    edge is smooth instead of jagged. Returns ``mean: (m,)`` (posterior mean of mu), ``mu_hdi: (m, 2)``
    and ``obs_hdi: (m, 2)`` (columns lower, upper), each at probability ``prob``
    (:func:`arviz_stats.hdi`).
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
) -> dict[str, np.ndarray]:
    """Exact predictive ``mean: (m,)``, ``sd_mean: (m,)`` and ``sd_obs: (m,)`` (None without sigma)."""
    phi = basis(np.asarray(x_grid, dtype=float))
    mean, sd_mean, sd_obs = exact.predictive(post, phi, 0.0 if sigma is None else sigma)
    return {
        "mean": np.asarray(mean),
        "sd_mean": np.asarray(sd_mean),
        "sd_obs": None if sigma is None else np.asarray(sd_obs),
    }


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
) -> dict[str, object]:
    """Draw data, ``num_lines`` posterior lines, the NUTS HDI bands and the exact ±2 sd bands on ``ax``.

    ``samples = {"w": (C, S, d), ["sigma": (C, S)]}``. The NUTS observation band uses the
    known sigma, or the ``sigma`` draws for unknown noise. The exact bands (outlines: solid
    for the mean function, dashed for new observations) need ``exact_post``; the observation
    band also needs a noise sd: the spec's known sigma, or ``exact_sigma``.
    Returns the artists: ``{"nuts_obs", "nuts_mu"}`` (filled polygons), ``"exact_mu"``,
    ``"exact_obs"`` (line lists; absent when not drawn), ``"lines"``.
    """
    basis = spec.basis
    grid = make_grid(x, x_range)
    if spec.known_sigma:
        sigma_draws = float(spec.noise.sigma)
    elif "sigma" in samples:
        sigma_draws = np.asarray(samples["sigma"])
    else:
        raise BayeslinError("unknown-noise spec but the samples have no 'sigma' draws")
    band = nuts_band(grid, basis, samples["w"], sigma_draws, key=key, prob=prob)
    pct = f"{100 * prob:.1f}%"
    artists: dict[str, object] = {}
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
        sigma = float(spec.noise.sigma) if spec.known_sigma else exact_sigma
        ex = exact_band(grid, basis, exact_post, sigma)
        lo, hi = ex["mean"] - 2 * ex["sd_mean"], ex["mean"] + 2 * ex["sd_mean"]
        artists["exact_mu"] = ax.plot(grid, lo, grid, hi, color=EXACT_COLOR, lw=1.6, label="exact ±2 sd, mean μ(x)")
        artists["exact_mu"][1].set_label("_nolegend_")
        if ex["sd_obs"] is not None:
            lo, hi = ex["mean"] - 2 * ex["sd_obs"], ex["mean"] + 2 * ex["sd_obs"]
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

    ``x_ranges``: e.g. ``(None, (-3, 3))`` for the data's span and a zoomed-out view where
    the band widens away from the data. Shapes as in :func:`plot_predictive_band`.
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
    """Data ``x, y: (n,)`` + ``num_lines`` posterior lines + NUTS HDI bands (+ exact ±2 sd bands).

    ``samples``: one dataset's draws ``{"w": (C, S, d), ["sigma": (C, S)]}``; ``exact_post``:
    the conjugate posterior (known noise) or None. Band probability ``prob`` (default 95.45%,
    the mass of ±2 sd) is stated in the legend.
    """
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    plot_predictive_band(ax, x, y, spec, samples, exact_post, x_range, num_lines, true_w, key=key, prob=prob)
    _finish(ax, title)
    return fig


# --------------------------------------------------------------------------------------------
# ArviZ trace and pair plots
# --------------------------------------------------------------------------------------------


def trace_figure(tree: xr.DataTree, title: str = "NUTS trace") -> Figure:
    """Trace + marginal density per parameter (:func:`arviz_plots.plot_trace_dist`, one row each).

    ``tree``: a one-dataset DataTree (:func:`bayeslin_jax.diagnostics.host.select_dataset`) with
    ``posterior`` ``w: (chain, draw, feature)`` [and ``sigma: (chain, draw)``]; chains are
    coloured, divergences (``sample_stats.diverging``) are marked as a rug.
    """
    posterior = tree["posterior"]
    rows = sum(
        int(np.prod([posterior[v].sizes[d] for d in posterior[v].dims if d not in ("chain", "draw")]))
        for v in posterior.data_vars
    )
    pc = azp.plot_trace_dist(
        tree, compact=False, backend="matplotlib", figure_kwargs={"figsize": (10, 1.9 * rows + 0.8)}
    )
    if "chain" in posterior.dims:
        pc.add_legend("chain", loc="upper right", fontsize="small", title="chain")
    fig = pc.viz["figure"].item()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float, **kwargs) -> Ellipse:
    """Ellipse ``{z: (z - mean)^T cov^-1 (z - mean) = radius^2}`` for ``mean: (2,)``, ``cov: (2, 2)``."""
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    width, height = 2 * radius * np.sqrt(vals[::-1])
    return Ellipse(tuple(mean), width, height, angle=angle, fill=False, **kwargs)


def pair_figure(
    tree: xr.DataTree,
    exact_post: GaussianPosterior | None = None,
    sigmas: Sequence[float] = (1.0, 2.0, 3.0),
    title: str = "Posterior of the weights",
) -> Figure:
    """Pair plot of the weights (:func:`arviz_plots.plot_pair`) with exact-posterior overlays.

    ``tree``: one-dataset DataTree, ``posterior.w: (chain, draw, feature)``. With
    ``exact_post`` (``mean: (d,)``, ``cov: (d, d)``) each off-diagonal panel gets the exact
    1/2/3-sigma (Mahalanobis radius) ellipses and each diagonal panel the exact normal density.
    The overlay draws onto the axes that ``plot_pair`` returns in ``viz["plot"]``.
    """
    pm = azp.plot_pair(
        tree,
        var_names=["w"],
        marginal=True,
        backend="matplotlib",
        labeller=azb.labels.NoVarLabeller(),  # axis labels 'b', 'm' (no variable name)
        visuals={"scatter": {"alpha": 0.35, "color": POSTERIOR_COLOR}},
        figure_kwargs={"figsize": (7, 7)},
    )
    viz = pm.viz
    fig = viz["figure"].item()
    axes = viz["plot"].values
    names = list(viz["feature_x"].values)
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


def parameter_figure(result, dataset: int = 0, max_draws: int = 4000, max_panels: int = 24,
                     title: str | None = None) -> Figure:
    """One panel per parameter of a :class:`~bayeslin_jax.workflows.fit.FitResult` (any model): a histogram of
    the NUTS draws, and the exact posterior density where the model has one (the feature site's elements).

    ``dataset``: position in a batch. The first ``max_panels`` parameters are drawn (a hierarchical model can have
    many); ``title``: the figure's title (none if None).
    """
    names, flat = result.flat_draws(dataset)
    names, flat = names[:max_panels], flat[:max_draws, :max_panels]
    table = result.diagnostics().isel(dataset=dataset)
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
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
        ax.set_title(names[k], fontsize=9)
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=7, loc="upper left")
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
