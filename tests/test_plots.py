"""Plotting functions draw what they claim: the right lines, bands at the right heights, exact ellipses.

NUTS is not run here: exact conjugate draws stand in for "samples" (independent draws, so the
Monte-Carlo error of a band edge is the sample-quantile error with ESS = number of draws).
"""

from __future__ import annotations

import math

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Ellipse

from bayeslin_jax.core import exact, priors, simulate
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import linear as linear_model
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics import plots
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.engine import STAT_NAMES, NutsResult

CHAINS, DRAWS = 4, 1000


@pytest.fixture(scope="module")
def tutorial():
    """Tutorial data, its exact posterior (independent prior) and exact draws as (C, S, d)."""
    spec = priors.tutorial_spec("independent")
    data = simulate.tutorial_data(0, [0])
    x, y = np.asarray(data.x[0]), np.asarray(data.y[0])
    post = exact.posterior(spec.basis(x), y, spec.prior, 0.1)
    w = np.asarray(exact.sample(jax.random.key(1), post, CHAINS * DRAWS)).reshape(CHAINS, DRAWS, 2)
    return spec, x, y, post, w


def _tree(samples: dict[str, np.ndarray], spec, x, y):
    """One-dataset DataTree from fake NUTS output ``samples`` ``{"w": (C, S, d), ...}``."""
    chains, draws = samples["w"].shape[:2]
    stats = {name: np.zeros((1, chains, draws)) for name in STAT_NAMES}
    stats["diverging"] = np.zeros((1, chains, draws), dtype=bool)
    result = NutsResult({k: v[None] for k, v in samples.items()}, stats)
    tree = model_datatree(result, linear_model(spec), spec.basis(x)[None], y[None], include_log_likelihood=False)
    return diagnostics.select_dataset(tree, 0)


def test_data_figure_points_and_true_line(tutorial):
    _, x, y, _, _ = tutorial
    fig = plots.data_figure(x, y, true_w=np.array([2.0, 0.3]), x_range=(-1, 1))
    ax = fig.axes[0]
    assert np.allclose(ax.collections[0].get_offsets(), np.column_stack([x, y]))
    (true_line,) = ax.lines
    gx, gy = true_line.get_data()
    assert gx[0] == -1 and gx[-1] == 1
    assert np.allclose(gy, 2.0 + 0.3 * gx)
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y" and ax.get_title()
    plt.close(fig)


@pytest.mark.parametrize("k", [1, 200])
def test_lines_figure_one_line_per_draw(tutorial, k):
    spec, x, y, _, w = tutorial
    draws = plots.thin_draws(w, k)
    assert draws.shape == (k, 2)
    fig = plots.lines_figure(x, y, draws, spec.basis, "lines", label="draws")
    ax = fig.axes[0]
    visible = [line for line in ax.lines if len(line.get_xdata()) > 0]
    assert len(visible) == k  # exactly one line per draw (the legend proxy is empty)
    for j in (0, k - 1):
        gx, gy = visible[j].get_data()
        assert np.allclose(gy, draws[j, 0] + draws[j, 1] * gx, atol=1e-5)
    assert f"{k} draws" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_lines_figure_rejects_wrong_shape(tutorial):
    spec, x, y, _, w = tutorial
    with pytest.raises(BayeslinError, match="shape"):
        plots.lines_figure(x, y, w, spec.basis, "3-d draws are not lines")
    with pytest.raises(BayeslinError, match="x_range"):
        plots.make_grid(x, (1.0, -1.0))


def test_nuts_band_matches_exact_band(tutorial):
    """HDI at 95.45% of mu(x) and y~ equals mean ± 2 sd within 5 sample-quantile standard errors."""
    spec, _, _, post, w = tutorial
    grid = np.linspace(-1, 1, 21)
    band = plots.nuts_band(grid, spec.basis, w, 0.1, key=jax.random.key(2))
    ex = plots.exact_band(grid, spec.basis, post, 0.1)
    n = CHAINS * DRAWS
    p = 1 - (1 - plots.TWO_SIGMA_PROB) / 2
    z = 2.0
    # SE of a sample quantile in units of sd: sqrt(p (1-p) / n) / phi(z); HDI edges are no tighter.
    se = math.sqrt(p * (1 - p) / n) / (math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    for name, sd in (("mu_hdi", ex["sd_mean"]), ("obs_hdi", ex["sd_obs"])):
        lower, upper = band[name].T
        assert np.all(np.abs(lower - (ex["mean"] - 2 * sd)) < 5 * se * sd), name
        assert np.all(np.abs(upper - (ex["mean"] + 2 * sd)) < 5 * se * sd), name
    assert np.all(band["obs_hdi"][:, 0] < band["mu_hdi"][:, 0])
    assert np.all(band["obs_hdi"][:, 1] > band["mu_hdi"][:, 1])


def test_unknown_noise_band_uses_sigma_draws(tutorial):
    """With sigma draws (C, S) fixed at 0.3 the obs HDI is mean ± 2 sqrt(sd_mean^2 + 0.3^2)."""
    _, x, y, post, w = tutorial
    base = priors.tutorial_spec()
    spec = priors.ModelSpec(base.basis, base.prior, priors.half_normal_noise(1.0))
    grid = np.linspace(-1, 1, 21)
    band = plots.nuts_band(grid, spec.basis, w, np.full(w.shape[:2], 0.3), key=jax.random.key(3))
    ex = plots.exact_band(grid, spec.basis, post, 0.3)
    se = math.sqrt(0.0227 * 0.9773 / w[..., 0].size) / 0.054  # sample-quantile SE at 2 sd, in sd units
    assert np.all(np.abs(band["obs_hdi"][:, 1] - (ex["mean"] + 2 * ex["sd_obs"])) < 5 * se * ex["sd_obs"])
    assert np.all(np.abs(band["obs_hdi"][:, 0] - (ex["mean"] - 2 * ex["sd_obs"])) < 5 * se * ex["sd_obs"])

    fig, ax = plt.subplots()
    samples = {"w": w, "sigma": np.full(w.shape[:2], 0.3)}
    with_sigma = plots.plot_predictive_band(ax, x, y, spec, samples, post, exact_sigma=0.3)
    without = plots.plot_predictive_band(ax, x, y, spec, samples, post)  # unknown noise, no sigma: mean band only
    assert "exact_obs" in with_sigma and "exact_obs" not in without and len(without["exact_mu"]) == 2
    assert isinstance(with_sigma["nuts_obs"], PolyCollection)
    with pytest.raises(BayeslinError, match="sigma"):
        plots.plot_predictive_band(ax, x, y, spec, {"w": w}, None)
    plt.close(fig)


def test_posterior_fit_figure_artists(tutorial):
    spec, x, y, post, w = tutorial
    fig = plots.posterior_fit_figure(x, y, spec, {"w": w}, post, num_lines=30)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # NUTS obs band and NUTS mean band, both filled
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "exact ±2 sd, mean μ(x)" in labels and "exact ±2 sd, new obs ỹ" in labels
    assert any("95.4% HDI" in label for label in labels)
    grid = plots.make_grid(x)
    ex = plots.exact_band(grid, spec.basis, post, 0.1)
    exact_lines = [line for line in ax.lines if line.get_color() == plots.EXACT_COLOR]
    assert len(exact_lines) == 4
    tops = sorted(line.get_ydata()[0] for line in exact_lines)
    expected = sorted(ex["mean"][0] + s * 2 * sd[0] for s in (-1, 1) for sd in (ex["sd_mean"], ex["sd_obs"]))
    assert np.allclose(tops, expected, atol=1e-5)
    posterior_lines = [line for line in ax.lines if line.get_color() == "navy" and line.get_alpha() == 0.12]
    assert len(posterior_lines) == 30
    plt.close(fig)


def test_zoomed_out_band_widens_for_poly5():
    """Degree-5 fit on [-2, 2]: the band spans x_range and is far wider outside the data."""
    spec = priors.tutorial_spec(degree=5)
    data = simulate.tutorial_data(0, [0])
    x, y = np.asarray(data.x[0]), np.asarray(data.y[0])
    post = exact.posterior(spec.basis(x), y, spec.prior, 0.1)
    w = np.asarray(exact.sample(jax.random.key(4), post, 2000)).reshape(2, 1000, 6)
    fig = plots.predictive_band_figure(x, y, spec, {"w": w}, post, x_ranges=(None, (-2.0, 2.0)))
    zoomed = fig.axes[1]
    assert zoomed.get_xlim() == (-2.0, 2.0)
    exact_mu = [line for line in zoomed.lines if line.get_color() == plots.EXACT_COLOR and line.get_linestyle() == "-"]
    width = np.abs(exact_mu[1].get_ydata() - exact_mu[0].get_ydata())
    gx = exact_mu[0].get_xdata()
    assert width[np.argmin(np.abs(gx - 2.0))] > 5 * width[np.argmin(np.abs(gx - 0.0))]
    assert sum(isinstance(c, PolyCollection) for c in zoomed.collections) == 2
    plt.close(fig)


def test_trace_figure_rows_and_chains(tutorial):
    spec, x, y, _, w = tutorial
    samples = {"w": w[:, :200], "sigma": np.abs(w[:, :200, 0]) * 0.05}
    fig = plots.trace_figure(_tree(samples, spec, x, y), title="trace")
    plotted = [ax for ax in fig.axes if ax.lines]
    assert len(plotted) == 2 * 3  # (dist, trace) for b, m, sigma
    trace_axes = [ax for ax in plotted if ax.get_xlabel() == "Draw"]
    assert len(trace_axes) == 3
    assert all(len(ax.lines) == CHAINS for ax in trace_axes)
    assert fig._suptitle.get_text() == "trace"
    plt.close(fig)


def test_pair_figure_exact_ellipses(tutorial):
    """Three ellipses whose boundaries sit at Mahalanobis radius 1, 2, 3 of the exact posterior."""
    spec, x, y, post, w = tutorial
    fig = plots.pair_figure(_tree({"w": w[:, :200]}, spec, x, y), post)
    ellipses = [p for ax in fig.axes for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 3
    mean, cov = np.asarray(post.mean, float), np.asarray(post.cov, float)
    precision = np.linalg.inv(cov)
    for radius, ellipse in zip((1, 2, 3), ellipses, strict=True):
        t = np.linspace(0, 2 * np.pi, 50)
        pts = ellipse.get_patch_transform().transform(np.column_stack([np.cos(t), np.sin(t)]))  # unit circle -> ellipse
        d = pts - mean
        assert np.allclose(np.sqrt(np.einsum("ni,ij,nj->n", d, precision, d)), radius, rtol=1e-3)
    exact_pdfs = [line for ax in fig.axes for line in ax.lines if line.get_label() == "exact density"]
    assert len(exact_pdfs) == 2
    gx, gy = exact_pdfs[0].get_data()
    m, sd = float(post.mean[0]), float(post.sd[0])
    assert np.allclose(gy, np.exp(-0.5 * ((gx - m) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), rtol=1e-4)
    plt.close(fig)


def test_save_writes_png_and_closes(tutorial, tmp_path):
    _, x, y, _, _ = tutorial
    fig = plots.data_figure(x, y)
    path = plots.save(fig, tmp_path / "nested" / "dir" / "data.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)


# ---------------------------------------------------------------------------------------------
# Layout: labels on every panel, densities over the whole axis, legends and names off the data
# ---------------------------------------------------------------------------------------------


def _drawn(fig):
    """Draw ``fig`` (layout engines run at draw time) and return its renderer."""
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b, tol: float = 0.5) -> bool:
    """Whether two display-space boxes overlap by more than ``tol`` pixels each way."""
    return a.x0 + tol < b.x1 and b.x0 + tol < a.x1 and a.y0 + tol < b.y1 and b.y0 + tol < a.y1


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]


def _assert_density_spans_axis(ax, line, draws=None):
    """The curve covers the axes' x range and its tails reach ~0 (1% of the peak) at both ends."""
    gx, gy = (np.asarray(v, dtype=float) for v in line.get_data())
    lo, hi = ax.get_xlim()
    span = hi - lo
    assert gx.min() <= lo + 1e-3 * span and gx.max() >= hi - 1e-3 * span, (gx.min(), gx.max(), lo, hi)
    assert gy[0] < 0.01 * gy.max() and gy[-1] < 0.01 * gy.max(), (gy[0], gy[-1], gy.max())
    if draws is not None:
        assert gx.min() < draws.min() and gx.max() > draws.max()


def test_trace_figure_labels_every_panel_and_pads_the_densities(tutorial):
    spec, x, y, _, w = tutorial
    sigma = np.abs(w[:, :200, 0]) * 0.05
    samples = {"w": w[:, :200], "sigma": sigma}
    fig = plots.trace_figure(_tree(samples, spec, x, y), title="trace")
    _drawn(fig)
    axes = _data_axes(fig)
    assert len(axes) == 6 and all(ax.get_ylabel() for ax in axes)
    trace_axes = [ax for ax in axes if ax.get_xlabel() == "Draw"]
    assert sorted(ax.get_ylabel() for ax in trace_axes) == ["sigma", "w[b]", "w[m]"]  # one line, not "w\nb"
    draws = {"w[b]": w[:, :200, 0], "w[m]": w[:, :200, 1], "sigma": sigma}
    dist_axes = [ax for ax in axes if ax not in trace_axes]
    assert {ax.get_xlabel() for ax in dist_axes} == set(draws)
    for ax in dist_axes:
        assert ax.get_ylabel() == "density"
        assert len(ax.lines) == CHAINS
        for chain, line in enumerate(ax.lines):
            _assert_density_spans_axis(ax, line, draws[ax.get_xlabel()][chain])
    for legend in fig.legends:  # the chain legend is outside every panel
        box = legend.get_window_extent()
        assert not any(_overlap(box, ax.get_window_extent()) for ax in axes)
    plt.close(fig)


def test_padded_kde_of_a_positive_parameter_near_zero_stops_at_zero():
    draws = np.abs(np.random.default_rng(0).normal(0.0, 1.0, (2, 500)))
    import xarray as xr

    kde = plots._padded_kde(xr.Dataset({"sigma": (("chain", "draw"), draws)}))["sigma"]
    grid = kde.sel(plot_axis="x").values
    edge = grid[:, 0] - (grid[:, 1] - grid[:, 0]) / 2  # grid points are bin centres: the first bin starts at 0
    assert grid.shape == (2, 512) and np.allclose(edge, 0.0) and np.all(grid.max(axis=1) > draws.max())
    assert np.allclose(grid[0], grid[1])  # one grid for both chains


def test_pair_figure_diagonal_densities_span_the_axis(tutorial):
    spec, x, y, post, w = tutorial
    fig = plots.pair_figure(_tree({"w": w[:, :200]}, spec, x, y), post)
    _drawn(fig)
    assert all(ax.get_ylabel() for ax in _data_axes(fig))
    diagonal = [ax for ax in _data_axes(fig) if ax.get_ylabel().startswith("density of")]
    assert sorted(ax.get_ylabel() for ax in diagonal) == ["density of b", "density of m"]
    for ax in diagonal:
        curves = [line for line in ax.lines if len(line.get_xdata()) > 1]
        assert len(curves) == 2  # NUTS marginal KDE and the exact density
        for line in curves:
            _assert_density_spans_axis(ax, line)
    plt.close(fig)


@pytest.mark.parametrize("figure", ["fit", "lines", "data"])
def test_legend_is_off_the_data(tutorial, figure):
    spec, x, y, post, w = tutorial
    if figure == "fit":
        fig = plots.posterior_fit_figure(x, y, spec, {"w": w}, post, num_lines=30)
    elif figure == "lines":
        fig = plots.lines_figure(x, y, plots.thin_draws(w, 200), spec.basis, "lines", true_w=np.array([1.9, 0.2]))
    else:
        fig = plots.data_figure(x, y, true_w=np.array([1.9, 0.2]))
    renderer = _drawn(fig)
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent(renderer)
    points = ax.transData.transform(np.column_stack([x, y]))
    inside = (box.x0 <= points[:, 0]) & (points[:, 0] <= box.x1) & (box.y0 <= points[:, 1]) & (points[:, 1] <= box.y1)
    assert not inside.any(), "the legend covers data points"
    assert not _overlap(box, ax.get_window_extent(renderer)), "the legend lies over the plotting area"
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 + 0.5, "the legend is cut off"
    plt.close(fig)


class _FakeFit:
    """What ``parameter_figure`` reads of a FitResult: ``flat_draws`` and ``diagnostics``."""

    def __init__(self, names, flat, exact_mean=None, exact_sd=None):
        import xarray as xr

        self.names, self.flat = list(names), flat
        table = {"mean": (("dataset", "parameter"), flat.mean(0)[None])}
        if exact_mean is not None:
            table["exact_mean"] = (("dataset", "parameter"), np.asarray(exact_mean)[None])
            table["exact_sd"] = (("dataset", "parameter"), np.asarray(exact_sd)[None])
        self.table = xr.Dataset(table)

    def flat_draws(self, dataset=0):
        return self.names, self.flat

    def diagnostics(self):
        return self.table


LONG_NAME = "income:C(region, Treatment('north'))[T.south]:C(age_group)[T.65+]:hours_per_week"


def _survey_fit():
    """Draws on the scales of a raw-units survey fit: ``income`` ~2e-4, ``Intercept`` ~-1, sigma ~9."""
    rng = np.random.default_rng(1)
    loc = np.array([9.2, -1.0, 0.08, 2.07e-4, 6.2e-4, -0.73, -0.9])
    scale = np.array([0.45, 3.6, 0.05, 1.7e-5, 5e-5, 0.05, 2.0])
    names = ["sigma", "Intercept", "age", "income", LONG_NAME, "hours", "C(region)[T.north]"]
    flat = loc + scale * rng.normal(size=(800, len(loc)))
    return _FakeFit(names, flat, exact_mean=np.r_[np.nan, loc[1:]], exact_sd=np.r_[np.nan, scale[1:]])


def _texts(fig, renderer):
    """Display boxes of every title, axis label, offset text and visible tick label, with their owner axes."""
    boxes = []
    for k, ax in enumerate(ax for ax in fig.axes if ax.get_visible()):
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label, ax.xaxis.get_offset_text()]
        lo, hi = sorted(ax.get_xlim())
        texts += [t for t, at in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True) if lo <= at <= hi]
        texts += ax.get_yticklabels()
        for text in texts:
            if text.get_visible() and text.get_text().strip():
                boxes.append((k, text.get_text(), text.get_window_extent(renderer)))
    return boxes


def test_parameter_figure_long_names_and_small_values_do_not_overlap():
    fig = plots.parameter_figure(_survey_fit(), title="survey")
    renderer = _drawn(fig)
    axes = _data_axes(fig)
    assert len(axes) == 7 and all(ax.get_ylabel() == "density" for ax in axes)
    assert any("\n" in ax.get_title() for ax in axes)  # the long name is wrapped
    boxes = _texts(fig, renderer)
    for i, (_, text_a, a) in enumerate(boxes):
        for _, text_b, b in boxes[i + 1 :]:
            assert not _overlap(a, b), f"{text_a!r} overlaps {text_b!r}"
    for owner, text, box in boxes:  # no name or tick label runs into another panel
        for k, ax in enumerate(axes):
            if k != owner:
                assert not _overlap(box, ax.get_window_extent(renderer)), f"{text!r} runs into panel {k}"
    for legend in fig.legends:
        assert not any(_overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer)) for ax in axes)
    for ax in axes[1:]:  # the exact density (red) over ±4 sd where known
        assert len(ax.lines) == 1
    plt.close(fig)


def _sbc_dataset(num: int = 60, num_ranks: int = 19):
    """A per-simulation SBC dataset with uniform ranks (what ``run_sbc`` returns), no sampling."""
    import json

    import xarray as xr

    rng = np.random.default_rng(2)
    quantities = ["b", "m", "loglik", "mu(x=1.5) of a rather long quantity name"]
    shape = (num, len(quantities))
    rank = rng.integers(0, num_ranks + 1, shape)
    exact_mean = rng.normal(size=shape)
    exact_mean[:, 2] = np.nan
    mcse = np.full(shape, 0.01)
    dims = ("dataset", "quantity")
    return xr.Dataset(
        {"rank": (dims, rank), "pit": (dims, (rank + rng.uniform(size=shape)) / (num_ranks + 1)),
         "gate_ok": ("dataset", np.ones(num, bool)), "exact_mean": (dims, exact_mean),
         "post_mean": (dims, exact_mean + mcse * rng.normal(size=shape)), "mcse": (dims, mcse)},
        coords={"dataset": np.arange(num), "quantity": quantities},
        attrs={"meta": json.dumps({"config": {"num_ranks": num_ranks}})},
    )


@pytest.mark.parametrize("kind", ["ecdf_pit", "rank_hist", "coverage", "nuts_vs_exact"])
def test_sbc_panels_have_axis_labels(kind):
    from bayeslin_jax.workflows.sbc import plots as sbc_plots

    pc = getattr(sbc_plots, f"plot_{kind}")(_sbc_dataset())
    fig = pc.viz["figure"].item()
    renderer = _drawn(fig)
    axes = _data_axes(fig)
    assert len(axes) == (3 if kind == "nuts_vs_exact" else 4)
    for ax in axes:
        assert ax.get_ylabel().strip() and ax.get_xlabel().strip(), (kind, ax.get_title())
    assert any("\n" in ax.get_title() for ax in axes)  # the long quantity name is wrapped
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    assert not any(_overlap(a, b) for i, a in enumerate(titles) for b in titles[i + 1 :])
    plt.close(fig)
