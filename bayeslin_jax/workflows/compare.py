"""Model comparison: PSIS-LOO (ArviZ) of any models, dataset by dataset, next to the exact log evidence.

* :func:`compare` (``bl.compare``) -- fit any models (Gaussian, Student-t, GLM, horseshoe, a user's NumPyro model)
  to one dataset or many with NUTS; per dataset ArviZ ``loo``/``compare`` on that dataset's own tree, and the exact
  log evidence where every model has one: a :class:`Comparison` (tables, ``elpd (dataset, model)``, win rates).
* :func:`check_single_dataset` / :func:`loo_per_dataset` -- the guard: ArviZ would pool the datasets of a batched
  DataTree into one LOO, so every LOO here is of one dataset.
* :func:`compare_models` -- :func:`compare` of one dataset, as release 0.1 returned it; :func:`plot_comparison`.
* :func:`batch_model_wins` -- over many simulated datasets: how often each Gaussian spec wins by evidence
  (vectorised over datasets) and, optionally, by PSIS-LOO (one batched NUTS call per model).

Exact evidence: :func:`bayeslin_jax.core.exact.log_evidence` for known noise; for ``HalfNormalNoise``
the 1-D quadrature of :func:`bayeslin_jax.core.nig.unknown_noise_reference`. Both in float64.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, cast

import arviz_plots as azp
import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jax import Array

from bayeslin_jax.core import atomic, exact, nig, simulate, validation
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.data import strict_json, validate_xy
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model, as_model, linear
from bayeslin_jax.core.priors import HalfNormalNoise, KnownNoise, ModelSpec, WeightPrior
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.diagnostics.host import select_dataset
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.engine.sampling import inspect_model
from bayeslin_jax.workflows.fit import FitResult, fit
from bayeslin_jax.workflows.fit import _config as resolve_config  # fit's own reading of config + options

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
    """Exact log marginal likelihood of ``spec`` in float64.

    Known noise: the conjugate formula; ``HalfNormalNoise``: quadrature over sigma.

    Parameters
    ----------
    spec : ModelSpec
        A Gaussian regression with a Gaussian weight prior and known or HalfNormal noise.
    x, y : array_like, shape ``(..., n)``
        The data; leading dims are datasets.

    Returns
    -------
    numpy.ndarray, shape ``(...)``
        ``log p(y | x)`` per dataset, float64.
    """
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(np.asarray(x, dtype=np.float64)), jnp.asarray(np.asarray(y, dtype=np.float64))
        if spec.known_sigma:
            sigma = cast(KnownNoise, spec.noise).sigma
            return np.asarray(_basis_log_evidence(spec.basis, x64, y64, _x64(spec.prior), _x64(sigma)))
        phi_np, y_np = np.asarray(spec.basis(x64)), np.asarray(y64)
    return nig.unknown_noise_reference(phi_np, y_np, spec.prior, spec.noise).log_evidence


def exact_loo(phi: Array, y: Array, prior: WeightPrior, sigma: Array | float) -> Array:
    """Exact leave-one-out log predictive densities (known noise).

    Entry ``i`` is ``log p(y_i | y_{-i})``; their sum is the exact ``elpd_loo`` that PSIS-LOO estimates.
    Removing point ``i`` from the conjugate posterior (Sherman-Morrison) gives, with ``h_i = phi_i V_N phi_i^T``
    and ``mu_i = phi_i w_N``: ``y_i | y_{-i} ~ N(mu_i - h_i (y_i - mu_i) / (s^2 - h_i), s^4 / (s^2 - h_i))``
    (``0 <= h_i < s^2``). O(n d^2).

    Parameters
    ----------
    phi : array, shape ``(..., n, d)``
        The design matrices.
    y : array, shape ``(..., n)``
        The observations.
    prior : WeightPrior
        A Gaussian weight prior.
    sigma : float or array
        The known noise sd.

    Returns
    -------
    jax.Array, shape ``(..., n)``
        ``log p(y_i | y_{-i})`` per point.
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
        sigma = cast(KnownNoise, spec.noise).sigma  # known: checked above
        return float(jnp.sum(_basis_exact_loo(spec.basis, x64, y64, _x64(spec.prior), _x64(sigma))))


# ---------------------------------------------------------------------------------------------
# The guard: ArviZ's LOO of one dataset at a time
# ---------------------------------------------------------------------------------------------


def _num_datasets(tree: xr.DataTree) -> int:
    """Length of the ``dataset`` dim of a DataTree's groups (1 when no group has one)."""
    sizes = {int(tree[group].sizes["dataset"]) for group in tree.children if "dataset" in tree[group].sizes}
    return max(sizes, default=1)


def check_single_dataset(tree: xr.DataTree) -> xr.DataTree:
    """The DataTree of one dataset, fit for ``arviz_stats.loo``; a tree of several datasets is refused.

    ArviZ takes every dim but ``chain``/``draw`` of the log-likelihood for observations, so it would pool the
    points of all datasets of a batched fit into one ELPD, silently. Every LOO in this module goes through here.

    Parameters
    ----------
    tree : xarray.DataTree
        A fit's DataTree: ``log_likelihood`` dims ``(chain, draw, [dataset,] obs)``.

    Returns
    -------
    xarray.DataTree
        ``tree`` itself, or with a ``dataset`` dim of length 1 dropped.

    Raises
    ------
    BayeslinError
        One line when the tree holds more than one dataset.
    """
    count = _num_datasets(tree)
    if count > 1:
        raise BayeslinError(
            f"this DataTree holds {count} datasets: ArviZ would pool them into one LOO; split it with "
            "select_dataset(tree, i), or use loo_per_dataset(tree) or bl.compare"
        )
    return select_dataset(tree, 0) if "dataset" in tree["posterior"].dims else tree


def _loo(tree: xr.DataTree, name: str = "model"):
    """``arviz_stats.loo`` (pointwise) of a one-dataset tree; ArviZ's Pareto-k warnings are left to the caller
    (:attr:`Comparison.pareto_k_warnings` collects them)."""
    tree = check_single_dataset(tree)
    if "log_likelihood" not in tree.children or not tree["log_likelihood"].data_vars:
        raise BayeslinError(f"model {name!r} has no log_likelihood group: fit it with log_likelihood=True")
    if not any("obs" in da.dims for da in tree["log_likelihood"].data_vars.values()):
        raise BayeslinError(
            f"model {name!r} has no pointwise log-likelihood (no 'obs' dim): put its observed site in a "
            "numpyro.plate over the data points"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        return azs.loo(tree, pointwise=True)


def loo_per_dataset(tree: xr.DataTree, name: str = "model") -> list:
    """PSIS-LOO (``arviz_stats.loo``, pointwise) of every dataset of a fit's DataTree, each on its own.

    Parameters
    ----------
    tree : xarray.DataTree
        ``log_likelihood`` dims ``(chain, draw, [dataset,] obs)``; without a ``dataset`` dim it is one dataset.
    name : str
        The model's name, for error messages.

    Returns
    -------
    list of arviz_stats ELPDData
        One per dataset, in the tree's order (length 1 without a ``dataset`` dim); each from that dataset's
        own tree (:func:`~bayeslin_jax.diagnostics.host.select_dataset`), with its own relative efficiency.
    """
    if "dataset" not in tree["posterior"].dims:
        return [_loo(tree, name)]
    return [_loo(select_dataset(tree, i), name) for i in range(tree["posterior"].sizes["dataset"])]


# ---------------------------------------------------------------------------------------------
# Any models, one dataset or many: bl.compare
# ---------------------------------------------------------------------------------------------


def _gaussian_spec(model: Model | ModelSpec) -> ModelSpec | None:
    """The Gaussian regression's spec behind ``model`` (a ModelSpec or ``linear(spec)``), else None."""
    return model if isinstance(model, ModelSpec) else model.spec


def _has_evidence(model: Model | ModelSpec) -> bool:
    """Whether the package computes ``model``'s exact log evidence: a Gaussian regression with a proper Gaussian
    weight prior and known or HalfNormal noise."""
    spec = _gaussian_spec(model)
    if spec is None:
        return False
    prior = spec.prior
    if not (getattr(prior, "is_proper", True) and getattr(prior, "is_gaussian", True)):
        return False
    return spec.known_sigma or isinstance(spec.noise, HalfNormalNoise)


def _check_any_models(models: dict) -> dict[str, Model]:
    """``{name: Model | ModelSpec}`` (>= 2, string names) -> ``{name: Model}``; one-line errors."""
    if not isinstance(models, dict) or len(models) < 2:
        raise BayeslinError(f"need a dict of at least 2 named models to compare, got {models!r:.80}")
    out = {}
    for name, model in models.items():
        if not isinstance(name, str) or not name:
            raise BayeslinError(f"model names must be non-empty strings, got {name!r}")
        if not isinstance(model, Model | ModelSpec):
            raise BayeslinError(
                f"model {name!r} is not a bayeslin_jax Model or ModelSpec (got {type(model).__name__}): wrap a "
                "NumPyro function with bl.user_model(fn)"
            )
        out[name] = as_model(model)
    return out


def _precheck(models: dict[str, Model], x: np.ndarray, y: np.ndarray) -> None:
    """Trace every non-Gaussian model on the data before any fit: a model that cannot run on them (a GLM on
    data outside its support, a user model that fails) is refused before the others spend their compute."""
    dtype = jnp.zeros(()).dtype
    for model in models.values():
        if model.spec is None:
            inspect_model(model, model.design(jnp.asarray(x, dtype=dtype)), jnp.asarray(y, dtype=dtype))


def _ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks along the last axis, best (largest) first: ``(B, M)`` -> ``(B, M)`` ints."""
    return np.argsort(np.argsort(-values, axis=-1, kind="stable"), axis=-1, kind="stable")


@dataclass(frozen=True, eq=False)
class Comparison:  # numpydoc ignore=PR02
    """What :func:`compare` returns: PSIS-LOO of every model on every dataset (and the exact evidence where
    every model has one).

    Parameters
    ----------
    names : tuple of str
        The models, in the order given.
    tables : tuple of pandas.DataFrame
        Per dataset, ``arviz_stats.compare`` of that dataset's models (columns ``rank, elpd_diff, dse, p_worse,
        diag_diff, diag_elpd, p, elpd, se, weight``, best first) plus ``pareto_k_max`` and ``warning`` (ArviZ's
        flag: some ``k`` above its threshold ``good_k``), ``elpd_loo_exact`` (the exact LOO of known-sigma
        Gaussian models, NaN for the others; only when one model has it) and, where every model has an exact
        evidence, ``log_evidence``, ``log_evidence_diff`` (vs the best) and ``evidence_rank``.
    per_dataset : xarray.Dataset
        Dims ``(dataset, model)``: ``elpd_loo``, ``se``, ``p_loo``, ``pareto_k_max``, ``good_k``, ``loo_rank``;
        ``log_evidence`` and ``evidence_rank`` where every model has an evidence.
    loo : tuple of dict
        Per dataset, ``{name: arviz_stats ELPDData}`` (pointwise).
    results : dict of str to FitResult
        Each model's fit of all datasets.
    notes : tuple of str
        What the comparison could not do (e.g. why there is no evidence column), one line each.
    batched : bool
        True when ``x, y`` had a leading dataset axis.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(-1.0, 1.0, 20)
    >>> y = 0.5 + 0.3 * x + 0.1 * rng.standard_normal(20)
    >>> models = {"line": bl.tutorial_spec(), "quadratic": bl.tutorial_spec(degree=2)}
    >>> comparison = bl.compare(models, x, y, num_warmup=100, num_draws=100, num_chains=2)
    >>> comparison.names
    ('line', 'quadratic')
    >>> comparison.elpd.dims
    ('dataset', 'model')
    >>> comparison.has_evidence, comparison.winner(by="evidence")  # exact, both models have an evidence
    (True, 'quadratic')
    >>> sorted(comparison.wins().columns)
    ['evidence_win_rate', 'evidence_wins', 'loo_win_rate', 'loo_wins']
    """

    names: tuple[str, ...]
    tables: tuple[pd.DataFrame, ...]
    per_dataset: xr.Dataset
    loo: tuple[dict, ...]
    results: dict[str, FitResult]
    notes: tuple[str, ...]
    batched: bool

    @property
    def num_datasets(self) -> int:
        """How many datasets were compared.

        Returns
        -------
        int
            ``B``; 1 for one dataset.
        """
        return len(self.tables)

    @property
    def has_evidence(self) -> bool:
        """Whether every model has an exact log evidence.

        Returns
        -------
        bool
            True when the ``log_evidence`` columns exist.
        """
        return "log_evidence" in self.per_dataset

    def _position(self, dataset: int) -> int:
        if not isinstance(dataset, int | np.integer) or not -self.num_datasets <= dataset < self.num_datasets:
            raise BayeslinError(f"dataset must be a position in 0..{self.num_datasets - 1}, got {dataset!r}")
        return int(dataset) % self.num_datasets

    def table(self, dataset: int = 0) -> pd.DataFrame:
        """The ``arviz_stats.compare`` table of one dataset, with the columns of :attr:`tables`.

        Parameters
        ----------
        dataset : int
            Position of the dataset (negative counts from the end).

        Returns
        -------
        pandas.DataFrame
            Indexed by model name, best LOO first (a copy).

        Raises
        ------
        BayeslinError
            A position outside the datasets.
        """
        return self.tables[self._position(dataset)].copy()

    @property
    def elpd(self) -> xr.DataArray:
        """PSIS-LOO ELPD of every model on every dataset.

        Returns
        -------
        xarray.DataArray
            Dims ``(dataset, model)``.
        """
        return self.per_dataset["elpd_loo"]

    def winner(self, dataset: int = 0, by: str = "loo") -> str | None:
        """The model ranked first on one dataset.

        Parameters
        ----------
        dataset : int
            Position of the dataset.
        by : {"loo", "evidence"}
            Rank by PSIS-LOO ELPD or by exact log evidence.

        Returns
        -------
        str or None
            The model's name; None for ``by="evidence"`` when some model has no evidence.

        Raises
        ------
        BayeslinError
            Another ``by``, or a position outside the datasets.
        """
        if by not in ("loo", "evidence"):
            raise BayeslinError(f"by must be 'loo' or 'evidence', got {by!r}")
        if by == "evidence" and not self.has_evidence:
            return None
        ranks = self.per_dataset["loo_rank" if by == "loo" else "evidence_rank"].isel(dataset=self._position(dataset))
        return self.names[int(np.argmin(ranks.values))]

    def wins(self) -> pd.DataFrame:
        """Per model: on how many datasets (and which fraction) it ranks first.

        Returns
        -------
        pandas.DataFrame
            Index ``model``; columns ``loo_wins, loo_win_rate`` (by PSIS-LOO) and, where every model has an exact
            evidence, ``evidence_wins, evidence_win_rate``.
        """
        columns = {}
        for by, rank in (("loo", "loo_rank"), ("evidence", "evidence_rank")):
            if rank not in self.per_dataset:
                continue
            first = (self.per_dataset[rank] == 0).sum("dataset").values
            columns[f"{by}_wins"] = first.astype(int)
            columns[f"{by}_win_rate"] = first / self.num_datasets
        return pd.DataFrame(columns, index=pd.Index(self.names, name="model"))

    @property
    def pareto_k_warnings(self) -> list[dict]:
        """Every (dataset, model) whose PSIS-LOO is unreliable.

        Unreliable: a Pareto ``k`` above ArviZ's threshold ``good_k`` (``min(1 - 1/log10(S), 0.7)`` for ``S`` draws;
        0.7 from 2,200 draws).

        Returns
        -------
        list of dict
            Each entry: ``dataset``, ``model``, ``pareto_k_max``, ``good_k``, ``num_bad`` (points above it).
        """
        out = []
        for i, loos in enumerate(self.loo):
            for name, loo in loos.items():
                k = np.asarray(loo.pareto_k)
                if np.nanmax(k) > loo.good_k:
                    out.append({"dataset": int(self.per_dataset["dataset"][i]), "model": name,
                                "pareto_k_max": float(np.nanmax(k)), "good_k": float(loo.good_k),
                                "num_bad": int(np.sum(k > loo.good_k))})
        return out

    def to_dict(self) -> dict:
        """The comparison as strict-JSON-able Python (non-finite numbers -> None, their paths under ``non_finite``).

        Keys: ``models`` (each model's description), ``sampler``, ``seed``, ``num_datasets``, ``winner`` (most LOO
        wins; ties: the first given), ``evidence_winner`` (None without evidence), ``wins`` (per model, as
        :meth:`wins`), ``datasets`` (per dataset: ``dataset``, ``winner``, ``evidence_winner``, ``table``: per
        model the row of :meth:`table`), ``pareto_k_warnings``, ``problems`` (per model, its convergence
        problems), ``notes``.

        Returns
        -------
        dict
            The record described above.
        """
        wins = self.wins()
        first = next(iter(self.results.values()))
        payload = {
            "models": {name: _describe(result.model) for name, result in self.results.items()},
            "sampler": dataclasses.asdict(first.config),
            "seed": first.seed,
            "num_datasets": self.num_datasets,
            "winner": str(wins["loo_wins"].idxmax()),
            "evidence_winner": str(wins["evidence_wins"].idxmax()) if self.has_evidence else None,
            "wins": {name: {k: _plain(v) for k, v in row.items()} for name, row in wins.iterrows()},
            "datasets": [
                {
                    "dataset": int(self.per_dataset["dataset"][i]),
                    "winner": self.winner(i),
                    "evidence_winner": self.winner(i, "evidence"),
                    "table": {str(name): {k: _plain(v) for k, v in row.items()} for name, row in table.iterrows()},
                }
                for i, table in enumerate(self.tables)
            ],
            "pareto_k_warnings": self.pareto_k_warnings,
            "problems": {name: result.problems() for name, result in self.results.items()},
            "notes": list(self.notes),
        }
        return json.loads(strict_json(payload))

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """Strict JSON of :meth:`to_dict`.

        Parameters
        ----------
        path : str or Path, optional
            Also write the text (and a final newline) there, atomically.
        indent : int
            JSON indentation.

        Returns
        -------
        str
            The JSON text.
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            atomic.atomic_write_text(path, text + "\n")
        return text


def _plain(value):
    """A table cell as a plain Python value (NumPy scalars unwrapped, pandas NA -> None)."""
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA:
        return None
    return value


def _describe(model: Model) -> dict:
    return model.spec.describe() | {"model": model.name} if model.spec is not None else model.describe()


def compare(
    models: dict[str, Model | ModelSpec],
    x,
    y,
    *,
    seed: int = 0,
    config: NutsConfig | None = None,
    **sampler_options,
) -> Comparison:
    """Compare any models on the same data by PSIS-LOO, dataset by dataset (and by exact evidence where every
    model has one).

    Every model is fitted to all datasets with NUTS (:func:`bayeslin_jax.workflows.fit.fit`, the same ``seed``);
    then, for each dataset on its own tree, ``arviz_stats.loo`` and ``arviz_stats.compare``: the datasets are
    never pooled (:func:`check_single_dataset`).

    Parameters
    ----------
    models : dict of str to Model or ModelSpec
        At least two named models: Gaussian ``ModelSpec`` / ``linear(spec)``, ``bl.student_t(spec)``,
        ``bl.glm(...)``, ``bl.horseshoe(...)``, ``bl.user_model(fn)`` (its observed site in a ``numpyro.plate``
        over the points, for pointwise log-likelihoods).
    x, y : array_like, shape ``(n,)`` or ``(B, n)``
        One dataset, or ``B`` datasets of ``n`` points.
    seed : int
        Root of every model's random streams.
    config : NutsConfig, optional
        Sampler settings (default ``NutsConfig()``).
    **sampler_options
        Overrides of ``config`` fields, e.g. ``num_draws=500, num_chains=2``.

    Returns
    -------
    Comparison
        ``.table(dataset)`` (the ArviZ compare table of that dataset, with ``log_evidence`` where every model has
        an exact one), ``.elpd`` ``(dataset, model)``, ``.wins()``, ``.pareto_k_warnings``, ``.to_dict()``.

    Raises
    ------
    BayeslinError
        Fewer than two models, a model that is not one, bad data, or a model that cannot run on them (e.g. a GLM
        on data outside its support), before any fit; one line.

    Examples
    --------
    A line and a quadratic, both with the tutorial's priors and known noise, on 20 points of a line:

    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(-1.0, 1.0, 20)
    >>> y = 0.5 + 0.3 * x + 0.1 * rng.standard_normal(20)
    >>> models = {"line": bl.tutorial_spec(), "quadratic": bl.tutorial_spec(degree=2)}
    >>> comparison = bl.compare(models, x, y, num_warmup=100, num_draws=100, num_chains=2)
    >>> sorted(comparison.table().index)  # the models, one row each (best PSIS-LOO first in the table)
    ['line', 'quadratic']
    >>> "log_evidence" in comparison.table().columns  # exact evidence: every model has one here
    True
    >>> comparison.elpd.shape  # (dataset, model)
    (1, 2)
    """
    checked = _check_any_models(models)
    config = resolve_config(config, sampler_options)
    x_arr, y_arr = validate_xy(x, y, min_points=2)
    batched = x_arr.ndim == 2
    x_batch, y_batch = (x_arr, y_arr) if batched else (x_arr[None], y_arr[None])
    _precheck(checked, x_batch, y_batch)
    results = {name: fit(x_arr, y_arr, model, seed=seed, config=config, log_likelihood=True)
               for name, model in checked.items()}
    return _comparison(checked, results, x_batch, y_batch, batched)


def _comparison(models: dict[str, Model], results: dict[str, FitResult], x: np.ndarray, y: np.ndarray,
                batched: bool) -> Comparison:
    """LOO per dataset and model, ArviZ's compare per dataset, the exact columns; ``x, y: (B, n)``."""
    names = list(models)
    per_model = {name: loo_per_dataset(result.tree, name) for name, result in results.items()}
    num = x.shape[0]
    loos = tuple({name: per_model[name][i] for name in names} for i in range(num))
    notes = []
    evidence = None
    lacking = [name for name, model in models.items() if not _has_evidence(model)]
    if lacking:
        notes.append(f"no log_evidence column: {', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no "
                     "exact evidence (only Gaussian regressions with a proper Gaussian prior and known or "
                     "HalfNormal sigma do)")
    specs = {name: _gaussian_spec(model) for name, model in models.items()}
    if not lacking:  # every model has an evidence, so a Gaussian spec
        evidence = np.stack([spec_log_evidence(cast(ModelSpec, specs[n]), x, y) for n in names], axis=-1)
    exact_loo = None
    if any(spec is not None and spec.known_sigma for spec in specs.values()):
        exact_loo = np.array([[_spec_exact_loo(s, x[i], y[i]) if (s := specs[n]) is not None else float("nan")
                               for n in names]
                              for i in range(num)])
    tables = []
    for i, loo in enumerate(loos):
        table = azs.compare(loo, round_to="none")
        table["pareto_k_max"] = pd.Series({n: float(np.nanmax(np.asarray(v.pareto_k))) for n, v in loo.items()})
        table["warning"] = pd.Series({n: bool(v.warning) for n, v in loo.items()})
        if exact_loo is not None:
            table["elpd_loo_exact"] = pd.Series(exact_loo[i], index=names)
        if evidence is not None:
            ev = pd.Series(evidence[i], index=names)
            table["log_evidence"] = ev
            table["log_evidence_diff"] = ev - ev.max()
            table["evidence_rank"] = ev.rank(ascending=False, method="first").astype(int) - 1
        tables.append(table)
    tree = next(iter(results.values())).tree
    dataset = tree["posterior"]["dataset"].values if batched else np.arange(1)
    grid = lambda f: np.array([[f(loo[n]) for n in names] for loo in loos], dtype=float)  # noqa: E731
    elpd = grid(lambda v: v.elpd)
    per_dataset = xr.Dataset(
        {
            "elpd_loo": (("dataset", "model"), elpd),
            "se": (("dataset", "model"), grid(lambda v: v.se)),
            "p_loo": (("dataset", "model"), grid(lambda v: v.p)),
            "pareto_k_max": (("dataset", "model"), grid(lambda v: np.nanmax(np.asarray(v.pareto_k)))),
            "good_k": (("dataset", "model"), grid(lambda v: v.good_k)),
            "loo_rank": (("dataset", "model"), np.array([[int(t.loc[n, "rank"]) for n in names] for t in tables])),
        },
        coords={"dataset": dataset, "model": names},
    )
    if evidence is not None:
        per_dataset["log_evidence"] = (("dataset", "model"), evidence)
        per_dataset["evidence_rank"] = (("dataset", "model"), _ranks(evidence))
    return Comparison(tuple(names), tuple(tables), per_dataset, loos, results, tuple(notes), batched)


# ---------------------------------------------------------------------------------------------
# One dataset: the table of release 0.1
# ---------------------------------------------------------------------------------------------


class ModelComparison(NamedTuple):  # numpydoc ignore=PR02
    """The comparison of several models on one dataset.

    Parameters
    ----------
    table : pandas.DataFrame
        ArviZ compare columns (rank, elpd, p, elpd_diff, weight, se, dse, ...) plus ``pareto_k_max``,
        ``warning``, ``elpd_loo_exact`` (known-noise Gaussian models; NaN otherwise) and, where every model has
        one, ``log_evidence``, ``log_evidence_diff`` (vs the best), ``evidence_rank``; indexed by model name,
        best LOO first.
    trees : dict of str to xarray.DataTree
        One DataTree per model (dataset dim dropped).
    loo : dict
        The ArviZ ``ELPDData`` per model.
    """

    table: pd.DataFrame
    trees: dict[str, xr.DataTree]
    loo: dict


def _check_models(models: dict[str, ModelSpec], minimum: int = 2) -> None:
    """Gaussian specs only (:func:`batch_model_wins` simulates and computes evidence from them)."""
    if not isinstance(models, dict) or len(models) < minimum:
        raise BayeslinError(f"need a dict of at least {minimum} named models to compare, got {models!r:.80}")
    for name, spec in models.items():
        if not isinstance(spec, ModelSpec):
            raise BayeslinError(f"model {name!r} is not a ModelSpec (got {type(spec).__name__}): "
                                "compare any models with bl.compare")


def fit_tree(model: Model | ModelSpec, x, y, seed: int = 0, config: NutsConfig = DEFAULT_CONFIG) -> xr.DataTree:
    """NUTS fit of one dataset, as a DataTree.

    Parameters
    ----------
    model : Model or ModelSpec
        The model.
    x, y : array_like, shape ``(n,)``
        One dataset.
    seed : int
        Root of every random stream.
    config : NutsConfig
        Sampler settings.

    Returns
    -------
    xarray.DataTree
        :attr:`FitResult.tree <bayeslin_jax.workflows.fit.FitResult.tree>`, with ``log_likelihood``.
    """
    return fit(x, y, model, seed=seed, config=config).tree


def compare_models(
    models: dict[str, Model | ModelSpec],
    x,
    y,
    seed: int = 0,
    config: NutsConfig = DEFAULT_CONFIG,
    plot_path: str | Path | None = None,
) -> ModelComparison:
    """:func:`compare` of one dataset, returned as release 0.1 did.

    Parameters
    ----------
    models : dict of str to Model or ModelSpec
        At least two named models.
    x, y : array_like, shape ``(n,)``
        One dataset.
    seed : int
        Root of every model's random streams.
    config : NutsConfig
        Sampler settings.
    plot_path : str or Path, optional
        Write the ArviZ compare plot there (PNG).

    Returns
    -------
    ModelComparison
        ``table`` (as :meth:`Comparison.table`), ``trees`` and ``loo`` per model.

    Raises
    ------
    BayeslinError
        ``x, y`` of several datasets, and what :func:`compare` refuses.
    """
    x_arr, _ = validate_xy(x, y, min_points=2)
    if x_arr.ndim != 1:
        raise BayeslinError(f"compare_models takes one dataset: x and y must be (n,), got {x_arr.shape}; "
                            "for several use bl.compare")
    result = compare(models, x, y, seed=seed, config=config)
    table = result.table(0)
    if plot_path is not None:
        plot_comparison(table, plot_path)
    return ModelComparison(table, {name: fitted.tree for name, fitted in result.results.items()}, result.loo[0])


def plot_comparison(table: pd.DataFrame, path: str | Path | None = None, title: str | None = None):
    """ArviZ ``plot_compare`` of ELPD differences; tick labels carry the exact ``Δ log evidence``.

    Parameters
    ----------
    table : pandas.DataFrame
        A comparison table (:meth:`Comparison.table`, :func:`compare_models` ``.table``).
    path : str or Path, optional
        Save the figure there as PNG.
    title : str, optional
        The title (default: what the plot shows).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
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
        atomic.savefig(fig, path, dpi=120)
    return fig


# ---------------------------------------------------------------------------------------------
# Many datasets: win rates
# ---------------------------------------------------------------------------------------------


def batch_loo(tree: xr.DataTree) -> xr.Dataset:
    """PSIS-LOO per dataset of a batched DataTree: :func:`loo_per_dataset`.

    Parameters
    ----------
    tree : xarray.DataTree
        ``log_likelihood`` dims ``(chain, draw, dataset, obs)``.

    Returns
    -------
    xarray.Dataset
        ``(dataset,)`` variables ``elpd_loo, se, p_loo, pareto_k_max``.
    """
    fits = loo_per_dataset(tree)
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


class BatchWins(NamedTuple):  # numpydoc ignore=PR02
    """Win rates of several models over a batch of datasets.

    Parameters
    ----------
    table : pandas.DataFrame
        Per model ``evidence_win_rate``, ``mean_log_evidence`` (and ``loo_win_rate``, ``mean_elpd_loo``,
        ``max_pareto_k`` with LOO).
    per_dataset : xarray.Dataset
        Dims ``(dataset, model)``: ``log_evidence`` (and ``elpd_loo``, ``elpd_loo_se``, ``pareto_k_max``).
    """

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

    Parameters
    ----------
    specs : dict of str to ModelSpec
        At least two named Gaussian specs.
    seed : int
        Root of the simulator's and the sampler's random streams.
    num_datasets : int
        Simulate datasets ``0 .. num_datasets-1``.
    simulator : str or Simulator
        The data-generating process.
    loo : bool
        Also rank by PSIS-LOO (NUTS fits).
    config : NutsConfig
        Sampler settings for the LOO fits.
    dataset_indices : array_like of int, optional
        Instead of ``num_datasets``: these dataset indices.

    Returns
    -------
    BatchWins
        ``table`` per model and ``per_dataset`` ``(dataset, model)``.

    Raises
    ------
    BayeslinError
        Fewer than two specs, a model that is not a ModelSpec, a bad ``num_datasets`` or simulator.
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
            # cast: sample_nuts takes any integer array (it calls jnp.asarray), though annotated jax.Array
            result = sample_nuts(seed, phi, data.y, spec.prior, spec.noise, config,
                                 dataset_indices=cast(Any, indices))
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


# Release 0.1 exposed this module as ``bayeslin_jax.compare`` (``from bayeslin_jax import compare``), which is
# now this function; for that release's code (``compare.compare_models(...)``, the tutorial notebook) its
# functions stay reachable as attributes of the function, for one release (see ``_MOVED`` in the package).
for _name in ("batch_loo", "batch_model_wins", "check_single_dataset", "compare_models", "exact_loo", "fit_tree",
              "loo_per_dataset", "plot_comparison", "spec_log_evidence"):
    setattr(compare, _name, globals()[_name])
del _name

__all__ = [
    "BATCH_LOO_CONFIG",
    "DEFAULT_CONFIG",
    "BatchWins",
    "Comparison",
    "ModelComparison",
    "batch_loo",
    "batch_model_wins",
    "check_single_dataset",
    "compare",
    "compare_models",
    "exact_loo",
    "fit_tree",
    "loo_per_dataset",
    "plot_comparison",
    "spec_log_evidence",
]
