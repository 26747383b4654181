"""Model comparison: PSIS-LOO (ArviZ) next to the exact log evidence, for one dataset or many.

* :func:`compare_models` -- fit several specs to one dataset with NUTS, ArviZ ``loo``/``compare``,
  joined with the exact log evidence and the exact LOO (known noise); :func:`plot_comparison`.
* :func:`batch_model_wins` -- over many simulated datasets: how often each model wins by evidence
  (vectorised over datasets) and, optionally, by PSIS-LOO (one batched NUTS call per model).

Exact evidence: :func:`bayeslin_jax.core.exact.log_evidence` for known noise; for ``HalfNormalNoise``
the 1-D quadrature of :func:`bayeslin_jax.core.nig.unknown_noise_reference`. Both in float64.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

import arviz_plots as azp
import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jax import Array

from bayeslin_jax.core import exact, nig, simulate, validation
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.data import validate_xy
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import linear
from bayeslin_jax.core.priors import ModelSpec, WeightPrior
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.diagnostics.host import select_dataset
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.workflows.fit import fit

SAMPLE_DIMS = ["chain", "draw"]
DEFAULT_CONFIG = NutsConfig()
BATCH_LOO_CONFIG = NutsConfig(num_warmup=500, num_draws=500, num_chains=2)


# ---------------------------------------------------------------------------------------------
# Exact references: evidence and LOO
# ---------------------------------------------------------------------------------------------


def _x64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), tree)


@partial(jax.jit, static_argnames="basis")
def _basis_log_evidence(basis: Polynomial, x: Array, y: Array, prior: WeightPrior, sigma: Array) -> Array:
    """``exact.log_evidence`` after the basis, jitted: one compile per shape instead of op-by-op dispatch."""
    return exact.log_evidence(basis(x), y, prior, sigma)


@partial(jax.jit, static_argnames="basis")
def _basis_exact_loo(basis: Polynomial, x: Array, y: Array, prior: WeightPrior, sigma: Array) -> Array:
    return exact_loo(basis(x), y, prior, sigma)


def spec_log_evidence(spec: ModelSpec, x, y) -> np.ndarray:
    """Exact log marginal likelihood of ``spec`` in float64. ``x, y: (..., n)`` -> ``(...)``.

    Known noise: the conjugate formula; ``HalfNormalNoise``: quadrature over sigma.
    """
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(np.asarray(x, dtype=np.float64)), jnp.asarray(np.asarray(y, dtype=np.float64))
        if spec.known_sigma:
            return np.asarray(_basis_log_evidence(spec.basis, x64, y64, _x64(spec.prior), _x64(spec.noise.sigma)))
        phi_np, y_np = np.asarray(spec.basis(x64)), np.asarray(y64)
    return nig.unknown_noise_reference(phi_np, y_np, spec.prior, spec.noise).log_evidence


def exact_loo(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> Array:
    """Exact leave-one-out log predictive densities (known noise). ``phi: (..., n, d)`` -> ``(..., n)``.

    Entry ``i`` is ``log p(y_i | y_{-i})``; their sum is the exact ``elpd_loo`` that PSIS-LOO estimates.
    Removing point ``i`` from the conjugate posterior (Sherman-Morrison) gives, with ``h_i = phi_i V_N phi_i^T``
    and ``mu_i = phi_i w_N``: ``y_i | y_{-i} ~ N(mu_i - h_i (y_i - mu_i) / (s^2 - h_i), s^4 / (s^2 - h_i))``
    (``0 <= h_i < s^2``). O(n d^2).
    """
    post = exact.posterior(phi, y, prior, sigma)
    mu, sd_mean, _ = exact.predictive(post, phi, sigma)
    s2 = jnp.square(sigma)
    h = jnp.square(sd_mean)
    gap = s2 - h
    return jax.scipy.stats.norm.logpdf(y, mu - (h / gap) * (y - mu), s2 / jnp.sqrt(gap))


def _spec_exact_loo(spec: ModelSpec, x, y) -> float:
    """Exact ``elpd_loo`` of one dataset (float64); NaN for unknown noise."""
    if not spec.known_sigma:
        return float("nan")
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(np.asarray(x, dtype=np.float64)), jnp.asarray(np.asarray(y, dtype=np.float64))
        return float(jnp.sum(_basis_exact_loo(spec.basis, x64, y64, _x64(spec.prior), _x64(spec.noise.sigma))))


# ---------------------------------------------------------------------------------------------
# One dataset: LOO/compare next to the evidence
# ---------------------------------------------------------------------------------------------


class ModelComparison(NamedTuple):
    """``table``: ArviZ compare columns (rank, elpd, p, elpd_diff, weight, se, dse, warning, ...)
    plus ``log_evidence``, ``log_evidence_diff`` (vs the best), ``evidence_rank`` and
    ``elpd_loo_exact`` (known noise; NaN otherwise), indexed by model name, best LOO first.
    ``trees``: one DataTree per model (dataset dim dropped); ``loo``: the ArviZ ``ELPDData`` per model.
    """

    table: pd.DataFrame
    trees: dict[str, xr.DataTree]
    loo: dict


def _check_models(models: dict[str, ModelSpec], minimum: int = 2) -> None:
    if not isinstance(models, dict) or len(models) < minimum:
        raise BayeslinError(f"need a dict of at least {minimum} named models to compare, got {models!r:.80}")
    for name, spec in models.items():
        if not isinstance(spec, ModelSpec):
            raise BayeslinError(f"model {name!r} is not a ModelSpec (got {type(spec).__name__})")


def fit_tree(spec: ModelSpec, x, y, seed: int = 0, config: NutsConfig = DEFAULT_CONFIG) -> xr.DataTree:
    """NUTS fit of one dataset (``x, y: (n,)``) -> DataTree with log_likelihood, dataset dim dropped."""
    return fit(x, y, spec, seed=seed, config=config).tree


def compare_models(
    models: dict[str, ModelSpec],
    x,
    y,
    seed: int = 0,
    config: NutsConfig = DEFAULT_CONFIG,
    plot_path: str | Path | None = None,
) -> ModelComparison:
    """Fit every spec to the same dataset, compare by PSIS-LOO and by exact evidence.

    ``x, y: (n,)``. Each model uses the same ``seed`` (its own compiled program). Writes the ArviZ
    compare plot to ``plot_path`` (PNG) if given.
    """
    _check_models(models)
    x_arr, y_arr = validate_xy(x, y, min_points=2)
    if x_arr.ndim != 1:
        raise BayeslinError(f"compare_models takes one dataset: x and y must be (n,), got {x_arr.shape}")
    trees = {name: fit_tree(spec, x_arr, y_arr, seed, config) for name, spec in models.items()}
    loos = {name: azs.loo(tree, pointwise=True) for name, tree in trees.items()}
    table = azs.compare(loos, round_to="none")
    evidence = pd.Series({name: float(spec_log_evidence(spec, x_arr, y_arr)) for name, spec in models.items()})
    table["log_evidence"] = evidence
    table["log_evidence_diff"] = evidence - evidence.max()
    table["evidence_rank"] = evidence.rank(ascending=False, method="min").astype(int) - 1
    table["elpd_loo_exact"] = pd.Series({name: _spec_exact_loo(spec, x_arr, y_arr) for name, spec in models.items()})
    if plot_path is not None:
        plot_comparison(table, plot_path)
    return ModelComparison(table, trees, loos)


def plot_comparison(table: pd.DataFrame, path: str | Path | None = None, title: str | None = None):
    """ArviZ ``plot_compare`` of ELPD differences; tick labels carry the exact ``Δ log evidence``.

    ``table``: :func:`compare_models` ``.table``. Saves a PNG if ``path``; returns the matplotlib figure.
    """
    labelled = table.copy()
    if "log_evidence_diff" in table:
        labelled.index = [f"{name}  (Δlog Z = {diff:.1f})" for name, diff in table["log_evidence_diff"].items()]
    figsize = (8.0, 1.5 + 0.7 * len(table))
    pc = azp.plot_compare(labelled, backend="matplotlib", figure_kwargs={"figsize": figsize})
    fig = pc.viz["figure"].item()
    default_title = "PSIS-LOO ELPD difference (ArviZ)\nin brackets: exact log-evidence difference"
    pc.viz["plot"].item().set_title(title or default_title)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


# ---------------------------------------------------------------------------------------------
# Many datasets: win rates
# ---------------------------------------------------------------------------------------------


def batch_loo(tree: xr.DataTree) -> xr.Dataset:
    """PSIS-LOO per dataset of a batched DataTree (dims chain, draw, dataset, obs).

    ``arviz_stats.loo`` on a batched tree would pool all datasets' points into one ELPD, so it is
    called once per dataset (with that dataset's own relative efficiency, as for a single fit).
    Returns ``(dataset,)`` variables ``elpd_loo, se, p_loo, pareto_k_max``.
    """
    fits = [azs.loo(select_dataset(tree, i)) for i in range(tree["posterior"].sizes["dataset"])]
    dataset = tree["posterior"]["dataset"].values
    return xr.Dataset(
        {
            "elpd_loo": ("dataset", [fit.elpd for fit in fits]),
            "se": ("dataset", [fit.se for fit in fits]),
            "p_loo": ("dataset", [fit.p for fit in fits]),
            "pareto_k_max": ("dataset", [float(fit.pareto_k.max()) for fit in fits]),
        },
        coords={"dataset": dataset},
    )


class BatchWins(NamedTuple):
    """``table``: per model ``evidence_win_rate``, ``mean_log_evidence`` (and ``loo_win_rate``,
    ``mean_elpd_loo``, ``max_pareto_k`` with LOO). ``per_dataset``: ``xr.Dataset`` with dims
    ``(dataset, model)``: ``log_evidence`` (and ``elpd_loo``, ``elpd_loo_se``, ``pareto_k_max``)."""

    table: pd.DataFrame
    per_dataset: xr.Dataset


def _win_rate(values: xr.DataArray, names: list[str]) -> pd.Series:
    best = values.argmax("model").values
    return pd.Series(np.bincount(best, minlength=len(names)) / best.size, index=names)


def batch_model_wins(
    specs: dict[str, ModelSpec],
    seed: int,
    num_datasets: int,
    simulator: str | simulate.Simulator = "tutorial",
    loo: bool = False,
    config: NutsConfig = BATCH_LOO_CONFIG,
    dataset_indices=None,
) -> BatchWins:
    """How often each model wins, by exact evidence (and by PSIS-LOO if ``loo``), over simulated datasets.

    ``simulator``: a :class:`~bayeslin_jax.core.simulate.Simulator` or a built-in's name (default: the tutorial's
    generator), called as ``simulator(seed, indices, None)`` (the data come from no single model); datasets
    ``0 .. num_datasets-1`` (or ``dataset_indices``). Evidence: one vectorised call per model.
    LOO: one batched NUTS call per model (``config``), then :func:`batch_loo`.
    """
    _check_models(specs)
    if dataset_indices is None:
        dataset_indices = np.arange(validation.integer("num_datasets", num_datasets))
    indices = np.asarray(dataset_indices)
    data = simulate.get_simulator(simulator)(seed, indices, None)
    names = list(specs)
    log_ev = np.stack([spec_log_evidence(spec, data.x, data.y) for spec in specs.values()], axis=-1)
    per_dataset = xr.Dataset(
        {"log_evidence": (("dataset", "model"), log_ev)}, coords={"dataset": indices, "model": names}
    )
    table = pd.DataFrame(
        {
            "evidence_win_rate": _win_rate(per_dataset["log_evidence"], names),
            "mean_log_evidence": per_dataset["log_evidence"].mean("dataset").to_series(),
        }
    )
    if loo:
        results = []
        for spec in specs.values():
            phi = spec.basis(data.x)
            result = sample_nuts(seed, phi, data.y, spec.prior, spec.noise, config, dataset_indices=indices)
            tree = model_datatree(result, linear(spec), phi, data.y, x_raw=data.x, dataset_indices=indices)
            results.append(batch_loo(tree))
        loo_ds = xr.concat(results, dim=pd.Index(names, name="model")).transpose("dataset", "model")
        per_dataset["elpd_loo"] = loo_ds["elpd_loo"]
        per_dataset["elpd_loo_se"] = loo_ds["se"]
        per_dataset["pareto_k_max"] = loo_ds["pareto_k_max"]
        table["loo_win_rate"] = _win_rate(per_dataset["elpd_loo"], names)
        table["mean_elpd_loo"] = per_dataset["elpd_loo"].mean("dataset").to_series()
        table["max_pareto_k"] = per_dataset["pareto_k_max"].max("dataset").to_series()
    table.index.name = "model"
    return BatchWins(table, per_dataset)
