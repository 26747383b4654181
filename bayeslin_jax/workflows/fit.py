"""The front door: :func:`fit` one dataset (or a batch) and get a :class:`FitResult`.

``fit(x, y)`` validates the data, maps it through the spec's basis, runs the batched NUTS engine
(a single dataset is a batch of one), builds the ArviZ DataTree and, for known noise, the exact
conjugate posterior, the reference every sampler here is checked against::

    import bayeslin_jax as bl
    result = bl.fit(x, y)                      # the tutorial's model: linear, N(0, 0.2) priors, sigma = 0.1
    result.summary()                           # NUTS mean, sd, R-hat, ESS, MCSE next to the exact posterior
    result.tree                                # arviz DataTree (posterior, sample_stats, log_likelihood, ...)
    result.to_json("fit.json")                 # what ``bayeslin fit --json`` writes
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayeslin_jax.core import exact
from bayeslin_jax.core.data import square_limit, strict_json, validate_xy
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model
from bayeslin_jax.core.priors import ModelSpec, tutorial_spec
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.engine import whitening as reparam
from bayeslin_jax.engine.sampling import inspect_model, sample_model

#: Convergence thresholds of the checks in :meth:`FitResult.problems` (as PyMC and Stan warn).
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def min_points(spec: ModelSpec) -> int:
    """Fewest observations a dataset needs: one per weight, plus one when sigma is learned."""
    return spec.basis.dim + (0 if spec.known_sigma else 1)


def _config(config: NutsConfig | None, options: dict) -> NutsConfig:
    config = NutsConfig() if config is None else config
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(NutsConfig)})
    if unknown:
        raise BayeslinError(f"unknown sampler option(s) {', '.join(unknown)}: see NutsConfig")
    return dataclasses.replace(config, **options) if options else config


def fit(
    x,
    y,
    spec: ModelSpec | None = None,
    *,
    seed: int = 0,
    config: NutsConfig | None = None,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    whiten: bool = True,
    **sampler_options,
) -> FitResult:
    """Fit a Bayesian linear regression with NUTS (and the exact posterior where one exists).

    Parameters
    ----------
    x, y : array_like, shape ``(n,)`` or ``(B, n)``
        One dataset, or ``B`` datasets of ``n`` points each (a leading dataset axis).
    spec : ModelSpec or model_spec.Model, optional
        Basis, weight prior and noise; default :func:`bayeslin_jax.core.priors.tutorial_spec` (linear basis,
        independent N(0, 0.2) priors on ``b`` and ``m``, known sigma = 0.1). A
        :class:`bayeslin_jax.core.model.Model` (Student-t, horseshoe, GLM, user model) goes to
        :func:`bayeslin_jax.workflows.fit.fit_model` (no exact posterior).
    seed : int
        Root of every random stream; dataset ``i`` of a batch uses ``(seed, i)`` only.
    config : NutsConfig, optional
        Sampler settings (default ``NutsConfig()``: 4 chains, 1000 warm-up, 1000 draws, diagonal mass).
    log_likelihood : bool
        Store pointwise log-likelihoods in the DataTree (for LOO; ``(C, S, [B,] n)`` values).
    num_devices : int, optional
        Local devices to split a batch over (default: all).
    whiten : bool
        Sample the affine-whitened model ``w = c + A z`` (:mod:`bayeslin_jax.engine.whitening`; the same posterior,
        isotropic for known noise, so raw-scale and correlated predictors sample well); results are on the
        original scale. ``False`` samples ``w`` directly (all datasets in one engine call).
    **sampler_options
        Overrides of ``config`` fields, e.g. ``num_draws=2000, num_chains=2``.

    Returns
    -------
    FitResult
        The DataTree (``dataset`` dim dropped for one dataset), the exact posterior for known noise
        (``mean: ([B,] d)``, ``cov: ([B,] d, d)``), and summary / JSON / plot methods.

    Raises
    ------
    BayeslinError
        Bad data (non-finite, mismatched shapes, too few points) or settings, in one line.
    """
    spec = tutorial_spec() if spec is None else spec
    if isinstance(spec, Model):  # Student-t, horseshoe, GLM or a user's NumPyro model
        return fit_model(x, y, spec, seed=seed, config=config, log_likelihood=log_likelihood,
                         num_devices=num_devices, **sampler_options)
    if not isinstance(spec, ModelSpec):
        raise BayeslinError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    config = _config(config, sampler_options)
    dtype = jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64
    x_arr, y_arr = validate_xy(x, y, min_points=min_points(spec), dtype=dtype)
    batched = x_arr.ndim == 2
    x_batch = x_arr if batched else x_arr[None]
    y_batch = y_arr if batched else y_arr[None]
    phi = reparam.design_matrix64(spec.basis, x_batch)
    with np.errstate(over="ignore"):  # an overflow to inf in the working dtype is what the check reports
        _check_features(phi.astype(dtype), spec, x_arr)
    return fit_design_matrix(
        phi, y_batch, spec, x=x_batch, batched=batched, seed=seed, config=config,
        log_likelihood=log_likelihood, num_devices=num_devices, whiten=whiten,
    )


def fit_design_matrix(
    phi: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    *,
    x: np.ndarray | None = None,
    batched: bool = True,
    seed: int = 0,
    config: NutsConfig,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    whiten: bool = True,
) -> FitResult:
    """:func:`fit` from validated design matrices ``phi: (B, n, d)`` and ``y: (B, n)`` (float64 NumPy).

    ``x: (B, n)`` goes into the DataTree's ``constant_data``; ``batched=False`` drops the dataset dim (B = 1).
    The exact posterior is computed in float64 (:func:`bayeslin_jax.engine.whitening.posterior64`) whatever JAX's
    precision, so that it stays an oracle on ill-conditioned designs.
    """
    dtype = jnp.zeros(()).dtype
    phi_j, y_j = jnp.asarray(phi, dtype=dtype), jnp.asarray(y, dtype=dtype)
    rows = np.arange(np.shape(y)[-1], dtype=float)
    post = None
    if spec.known_sigma:
        post = reparam.posterior64(phi, y, spec.prior, spec.noise.sigma)
        _check_exact(post, phi, spec, rows if x is None else np.asarray(x))
    if whiten:
        result, _ = reparam.sample_whitened(seed, phi, y, spec.prior, spec.noise, config, num_devices=num_devices,
                                            sampler=sample_nuts)
    else:
        result = sample_nuts(seed, phi_j, y_j, spec.prior, spec.noise, config, num_devices=num_devices)
    tree = diagnostics.to_datatree(
        result, spec, phi_j, y_j, x=None if x is None else np.asarray(x), include_log_likelihood=log_likelihood
    )
    if not batched:
        tree = diagnostics.select_dataset(tree, 0)
        post = None if post is None else _select(post, 0)
    fitted = FitResult(tree=tree, exact=post, spec=spec, config=config, seed=seed, batched=batched)
    _check_nuts(fitted)
    problems = fitted.problems()
    tree.attrs.update(
        reparameterization="whiten" if whiten else "none",
        converged=int(not problems),
        problems="\n".join(problems),
    )
    return fitted


def _hint(dtype) -> str:
    return "" if np.dtype(dtype) == np.float64 else " or enable float64 (--x64, jax_enable_x64)"


def _x_range(x: np.ndarray) -> str:
    return f"x in [{x.min():g}, {x.max():g}]"


def _check_features(phi: np.ndarray, spec: ModelSpec, x: np.ndarray) -> None:
    """Refuse basis features ``phi: (B, n, d)`` whose sums of squares overflow their dtype."""
    limit = square_limit(phi.dtype, phi.shape[-2])
    biggest = float(np.max(np.abs(phi))) if np.isfinite(phi).all() else float("inf")
    if biggest > limit:
        raise BayeslinError(
            f"basis {spec.basis.name} on {_x_range(x)}: features reach {biggest:.3g}, too large for "
            f"{phi.dtype.name} (limit {limit:.3g}); rescale x to about [-1, 1] or lower the degree{_hint(phi.dtype)}"
        )


def _check_exact(post: exact.GaussianPosterior, phi: np.ndarray, spec: ModelSpec, x: np.ndarray) -> None:
    """Refuse a non-finite exact posterior: the design ``phi: (B, n, d)`` is too ill-conditioned for the dtype."""
    if all(np.isfinite(np.asarray(a)).all() for a in (post.mean, post.cov)):
        return
    cond = float(np.max(np.linalg.cond(np.asarray(phi, dtype=np.float64))))
    raise BayeslinError(
        f"the exact posterior of basis {spec.basis.name} on {_x_range(x)} is not finite: the design matrix is "
        f"ill-conditioned (condition number {cond:.2g}); rescale x to about [-1, 1] or lower the degree"
        f"{_hint(phi.dtype)}"
    )


def _check_nuts(result: FitResult) -> None:
    """Refuse non-finite NUTS means or sds (the data are badly scaled for the model)."""
    table = result.diagnostics()
    if not all(np.isfinite(np.asarray(table[name])).all() for name in ("mean", "sd")):
        raise BayeslinError(
            f"NUTS gave non-finite posterior means or sds for basis {result.spec.basis.name}: the data are badly "
            "scaled for this model; rescale x and y (about unit scale)"
        )


def _select(post: exact.GaussianPosterior, index: int) -> exact.GaussianPosterior:
    """Dataset ``index`` of a batched posterior."""
    return jax.tree.map(lambda a: a[index], post)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    tree : xarray.DataTree
        ArviZ DataTree: ``posterior`` (``w``: ``(chain, draw, [dataset,] feature)``, ``sigma`` if learned),
        ``sample_stats``, ``log_likelihood``, ``observed_data``, ``constant_data``.
    exact : exact.GaussianPosterior or None
        The conjugate posterior for known noise: ``mean ([B,] d)``, ``cov ([B,] d, d)``; None otherwise.
    spec : ModelSpec
    config : NutsConfig
    seed : int
    batched : bool
        True when ``x, y`` had a leading dataset axis.
    """

    tree: xr.DataTree
    exact: exact.GaussianPosterior | None
    spec: ModelSpec
    config: NutsConfig
    seed: int
    batched: bool

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.spec.feature_names

    @property
    def num_datasets(self) -> int:
        return int(self.tree["posterior"].sizes["dataset"]) if self.batched else 1

    def draws(self, name: str = "w") -> np.ndarray:
        """Posterior draws as NumPy: ``w`` ``([B,] C, S, d)``, ``sigma`` ``([B,] C, S)``."""
        da = self.tree["posterior"][name]
        order = (["dataset"] if self.batched else []) + ["chain", "draw"] + (["feature"] if name == "w" else [])
        return np.asarray(da.transpose(*order))

    def diagnostics(self) -> xr.Dataset:
        """:func:`bayeslin_jax.diagnostics.host.dataset_summary` (dims ``dataset, feature``) plus the exact posterior.

        Adds ``exact_mean``, ``exact_sd`` and ``z = (mean - exact_mean) / mcse_mean`` for known noise, and
        ``max_tree_depth_hits`` (draws whose tree reached ``config.max_tree_depth``). A one-dataset fit
        has a ``dataset`` dim of length 1 here.
        """
        return self._diagnostics.copy()

    @cached_property
    def _diagnostics(self) -> xr.Dataset:
        table = diagnostics.dataset_summary(self.tree)
        stats = self.tree["sample_stats"]
        depth = stats["tree_depth"] if "dataset" in stats["tree_depth"].dims else stats["tree_depth"].expand_dims(
            dataset=[0]
        )
        table["max_tree_depth_hits"] = (depth >= self.config.max_tree_depth).sum(diagnostics.SAMPLE_DIMS)
        if self.exact is not None:
            mean = np.asarray(self.exact.mean, dtype=float).reshape(table["mean"].shape)
            sd = np.asarray(self.exact.sd, dtype=float).reshape(table["mean"].shape)
            table["exact_mean"] = (("dataset", "feature"), mean)
            table["exact_sd"] = (("dataset", "feature"), sd)
            table["z"] = (table["mean"] - table["exact_mean"]) / table["mcse_mean"]
        return table

    def summary(self) -> pd.DataFrame:
        """One row per weight (and dataset, for a batch): NUTS mean/sd, R-hat, ESS, MCSE, exact mean/sd, z."""
        table = self.diagnostics()
        per_weight = [name for name, da in table.data_vars.items() if da.dims == ("dataset", "feature")]
        frame = table[per_weight].to_dataframe()
        return frame if self.batched else frame.droplevel("dataset")

    def arviz_summary(self, dataset: int = 0) -> pd.DataFrame:
        """ArviZ's own summary table (mean, sd, ETI, MCSE, ESS, R-hat) of one dataset."""
        return diagnostics.summary(self.tree, dataset if self.batched else None)

    def correlation_table(self, dataset: int = 0) -> pd.DataFrame:
        """Exact vs NUTS posterior covariance and correlation of the weights (known noise only)."""
        if self.exact is None:
            raise BayeslinError("no exact posterior for learned noise: correlation_table needs known sigma")
        cov = np.asarray(self.exact.cov)
        draws = self.draws("w")
        if self.batched:
            cov, draws = cov[dataset], draws[dataset]
        return diagnostics.correlation_table(cov, draws, self.feature_names)

    def problems(self) -> list[str]:
        """Convergence problems, one line each (empty when none).

        Checks, as PyMC and Stan warn: R-hat > 1.01, bulk or tail ESS < 100 per chain, divergences,
        draws that hit the maximum tree depth; non-finite draws.
        """
        table = self.diagnostics()
        lines: list[str] = []
        prefix = lambda i: f"dataset {int(table['dataset'][i])}: " if self.batched else ""  # noqa: E731
        min_ess = ESS_PER_CHAIN_MIN * self.config.num_chains
        names = np.asarray(table["feature"])
        for i in range(table.sizes["dataset"]):
            row = table.isel(dataset=i)
            rhat = np.asarray(row["rhat"])
            ess = np.minimum(np.asarray(row["ess_bulk"]), np.asarray(row["ess_tail"]))
            nonfinite = ~np.isfinite(np.asarray(row["mean"]))
            if nonfinite.any():
                lines.append(f"{prefix(i)}non-finite draws for {', '.join(names[nonfinite])}")
            bad = ~(rhat <= RHAT_MAX)
            if bad.any():
                lines.append(f"{prefix(i)}R-hat > {RHAT_MAX} for {', '.join(names[bad])} (max {np.nanmax(rhat):.3g})")
            low = ~(ess >= min_ess)
            if low.any():
                lines.append(f"{prefix(i)}ESS < {min_ess} ({ESS_PER_CHAIN_MIN} per chain) for {', '.join(names[low])}")
            if int(row["divergences"]) > 0:
                lines.append(f"{prefix(i)}{int(row['divergences'])} divergent transitions")
            if int(row["max_tree_depth_hits"]) > 0:
                lines.append(
                    f"{prefix(i)}{int(row['max_tree_depth_hits'])} draws hit the maximum tree depth "
                    f"{self.config.max_tree_depth}"
                )
        return lines

    def to_dict(self) -> dict:
        """The result as plain Python numbers and lists (non-finite values kept; :meth:`to_json` nulls them).

        Keys: ``spec``, ``sampler``, ``seed``, ``features`` (per weight: NUTS mean/sd, R-hat, bulk/tail ESS,
        MCSE, exact mean/sd), ``nuts_cov``, ``exact_cov``, ``divergences``, ``max_tree_depth_hits``,
        ``sigma`` (learned noise), ``problems`` (one line each, as :meth:`problems`), ``converged`` (no problems),
        ``reparameterization`` (``"whiten"`` or ``"none"``); for a batch, ``datasets``: one such record per dataset.
        """
        table = self.diagnostics()
        draws = self.draws("w")
        records = [self._record(table, i, draws[i] if self.batched else draws) for i in range(table.sizes["dataset"])]
        head = {
            "spec": self.spec.describe(),
            "sampler": dataclasses.asdict(self.config),
            "seed": self.seed,
            "reparameterization": self.tree.attrs.get("reparameterization", "none"),
            "converged": not self.problems(),
            "problems": self.problems(),
        }
        if self.batched:
            return head | {"datasets": records}
        return head | records[0]

    def _record(self, table: xr.Dataset, index: int, w_draws: np.ndarray) -> dict:
        """The record of dataset ``index`` (position): ``w_draws: (C, S, d)``."""
        row = table.isel(dataset=index)
        columns = ("mean", "sd", "rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "exact_mean", "exact_sd")
        features = {}
        for k, name in enumerate(self.feature_names):
            features[name] = {
                ("nuts_" + c if c in ("mean", "sd") else c): float(row[c][k])
                for c in columns
                if c in row
            }
        d = len(self.feature_names)
        flat = w_draws.reshape(-1, d).astype(float)
        record: dict = {
            "features": features,
            "nuts_cov": np.cov(flat, rowvar=False).reshape(d, d).tolist(),
            "divergences": int(row["divergences"]),
            "max_tree_depth_hits": int(row["max_tree_depth_hits"]),
        }
        if self.batched:
            record = {"dataset": int(row["dataset"])} | record
        if self.exact is not None:
            cov = np.asarray(self.exact.cov, dtype=float)
            cov = cov[index] if self.batched else cov
            record["exact_cov"] = cov.tolist()
        if "sigma_mean" in row:
            record["sigma"] = {
                name: float(row[f"sigma_{column}"])
                for name, column in (("nuts_mean", "mean"), ("nuts_sd", "sd"), ("rhat", "rhat"),
                                     ("ess_bulk", "ess_bulk"), ("ess_tail", "ess_tail"), ("mcse_mean", "mcse_mean"))
            }
        return record

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """Strict JSON of :meth:`to_dict`: non-finite numbers become null, their paths listed under ``non_finite``.

        Written to ``path`` if given (see :func:`bayeslin_jax.core.data.strict_json`).
        """
        text = strict_json(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def plot(self, path: str | Path | None = None, dataset: int = 0):
        """Posterior lines and the predictive band (NUTS HDI over the exact +-2 sd band) of one dataset.

        For a :class:`~bayeslin_jax.workflows.design.Design` (several predictors): one panel per coefficient, NUTS
        draws against the exact posterior density.

        Returns the matplotlib Figure; saved as PNG to ``path`` if given.
        """
        from bayeslin_jax.core.basis import Polynomial
        from bayeslin_jax.diagnostics import plots

        if not isinstance(self.spec.basis, Polynomial):  # a design of several predictors: per-coefficient panels
            fig = plots.coefficient_figure(self, dataset)
            if path is not None:
                plots.save(fig, path)
            return fig
        x = np.asarray(self.tree["constant_data"]["x"])
        y = np.asarray(self.tree["observed_data"]["y"])
        samples = {"w": self.draws("w")}
        if "sigma" in self.tree["posterior"]:
            samples["sigma"] = self.draws("sigma")
        post = self.exact
        if self.batched:
            x, y = x[dataset], y[dataset]
            samples = {k: v[dataset] for k, v in samples.items()}
            post = None if post is None else _select(post, dataset)
        fig = plots.posterior_fit_figure(x, y, self.spec, samples, post)
        if path is not None:
            plots.save(fig, path)
        return fig


def fit_model(
    x,
    y,
    model: Model,
    *,
    seed: int = 0,
    config: NutsConfig | None = None,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    **sampler_options,
):
    """Fit any :class:`Model` with NUTS: one dataset ``x, y: (n,)`` or a batch ``(B, n)``.

    Returns :class:`bayeslin_jax.workflows.fit.FitResult` with ``exact=None`` and ``spec=model``; its summary,
    problems (R-hat, ESS, divergences, tree depth per dataset) and JSON need the model's feature site
    (``w``: every built-in has one). ``sampler_options`` override ``config`` fields.
    """
    if not isinstance(model, Model):
        raise BayeslinError(f"model must be a bayeslin_jax.core.model.Model, got {type(model).__name__}")
    config = NutsConfig() if config is None else config
    unknown = sorted(set(sampler_options) - {f.name for f in dataclasses.fields(NutsConfig)})
    if unknown:
        raise BayeslinError(f"unknown sampler option(s) {', '.join(unknown)}: see NutsConfig")
    config = dataclasses.replace(config, **sampler_options)
    x_arr, y_arr = validate_xy(x, y)
    batched = x_arr.ndim == 2
    x_raw = jnp.asarray(x_arr if batched else x_arr[None], dtype=jnp.float32)
    y_batch = jnp.asarray(y_arr if batched else y_arr[None], dtype=jnp.float32)
    inputs = model.design(x_raw)
    sites = inspect_model(model, inputs, y_batch)
    result = sample_model(seed, inputs, y_batch, model, config, num_devices=num_devices, sites=sites)
    tree = model_datatree(result, model, inputs, y_batch, x_raw=x_raw, include_log_likelihood=log_likelihood,
                          latent=tuple(name for name, _ in sites.latent))
    if not batched:
        tree = tree.isel(dataset=0)
    return FitResult(tree=tree, exact=None, spec=model, config=config, seed=seed, batched=batched)



__all__ = ["ESS_PER_CHAIN_MIN", "RHAT_MAX", "FitResult", "fit", "fit_design_matrix", "min_points"]
