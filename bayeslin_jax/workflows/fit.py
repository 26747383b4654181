"""The front door: :func:`fit` one dataset (or a batch) and get a :class:`FitResult`.

``fit(x, y)`` validates the data, maps it through the spec's basis, runs the batched NUTS engine
(a single dataset is a batch of one), builds the ArviZ DataTree and, for known noise, the exact
conjugate posterior, the reference every sampler here is checked against::

    import bayeslin_jax as bl
    result = bl.fit(x, y)                      # linear, priors scaled to the data, sigma learned
    result.priors()                            # the priors it used, one line each
    result = bl.fit(x, y, bl.tutorial_spec())  # the tutorial's model: N(0, 0.2) priors, sigma = 0.1
    result.summary()                           # NUTS mean, sd, R-hat, ESS, MCSE next to the exact posterior
    result.tree                                # arviz DataTree (posterior, sample_stats, log_likelihood, ...)
    result.to_json("fit.json")                 # what ``bayeslin fit --json`` writes
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayeslin_jax.core import exact
from bayeslin_jax.core.data import square_limit, strict_json, validate_xy
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model, as_model
from bayeslin_jax.core.priors import KnownNoise, ModelSpec
from bayeslin_jax.core.validation import check_seed
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics.datatree import model_datatree
from bayeslin_jax.engine import NutsConfig, sample_nuts, whitening
from bayeslin_jax.engine.sampling import sample_model

#: Convergence thresholds of the checks in :meth:`FitResult.problems` (as PyMC and Stan warn).
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def min_points(model: Model | ModelSpec) -> int:
    """Fewest observations a dataset needs.

    Parameters
    ----------
    model : Model or ModelSpec
        The model to fit.

    Returns
    -------
    int
        For the Gaussian regression one per weight, plus one when sigma is learned; one for any other model.
    """
    spec = model if isinstance(model, ModelSpec) else model.spec
    return 1 if spec is None else spec.basis.dim + (0 if spec.known_sigma else 1)


def _config(config: NutsConfig | None, options: dict) -> NutsConfig:
    config = NutsConfig() if config is None else config
    if not isinstance(config, NutsConfig):
        raise BayeslinError(f"config must be a NutsConfig, got {type(config).__name__}")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(NutsConfig)})
    if unknown:
        raise BayeslinError(f"unknown sampler option(s) {', '.join(unknown)}: see NutsConfig")
    return dataclasses.replace(config, **options) if options else config


def fit(
    x,
    y,
    model: Model | ModelSpec | str | None = None,
    *,
    priors=None,
    seed: int = 0,
    config: NutsConfig | None = None,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    whiten: bool = True,
    progress: bool | None = None,
    **sampler_options,
) -> FitResult:
    """Fit any model with NUTS, and check it against the exact posterior where the model has one.

    Parameters
    ----------
    x, y : array_like, shape ``(n,)`` or ``(B, n)``
        One dataset, or ``B`` datasets of ``n`` points each (a leading dataset axis).
    model : Model, ModelSpec or str, optional
        Any :class:`~bayeslin_jax.core.model.Model` (Student-t, horseshoe, GLM, a user's NumPyro model) or a
        Gaussian :class:`~bayeslin_jax.core.priors.ModelSpec`, used as given; or a family name (``"gaussian"``,
        ``"student_t"``, ``"horseshoe"``, ``"bernoulli"``, ``"poisson"``) on the linear basis with priors scaled
        to the data. Default ``"gaussian"``: the data-scaled default priors of
        :mod:`bayeslin_jax.workflows.defaults` (slopes ``N(0, 2.5 sd(y) / sd(x))``, the centred intercept
        ``N(mean(y), 2.5 sd(y))``, ``sigma ~ Exponential(1 / sd(y))`` learned; a batch is scaled by its datasets
        pooled). The tutorial's model is ``bl.tutorial_spec()``.
    priors : PriorChoice or dict, optional
        With a family name (or the default): prior choices that override parts of the default rule, e.g.
        ``{"prior": "student_t", "sigma_prior": "half_cauchy"}`` or ``{"sigma": 0.1}``
        (:class:`~bayeslin_jax.workflows.defaults.PriorChoice`). Refused with a Model or ModelSpec (their priors
        are their own).
    seed : int
        Root of every random stream; dataset ``i`` of a batch uses ``(seed, i)`` only.
    config : NutsConfig, optional
        Sampler settings (default ``NutsConfig()``: 4 chains, 1000 warm-up, 1000 draws, diagonal mass).
    log_likelihood : bool
        Store pointwise log-likelihoods of the observed site in the DataTree (for LOO; ``(C, S, [B,] n)``).
    num_devices : int, optional
        Local devices to split a batch over (default: all).
    whiten : bool
        Gaussian regression only: sample the affine-whitened model ``w = c + A z``
        (:mod:`bayeslin_jax.engine.whitening`; the same posterior, isotropic for known noise, so raw-scale and
        correlated predictors sample well); results are on the original scale.
    progress : bool, optional
        A tqdm bar of datasets done, on stderr; default on for a batch of several datasets when stderr is a
        terminal (tqdm's convention: off in logs, pipes and tests), off for one. The draws do not depend on it.
    **sampler_options
        Overrides of ``config`` fields, e.g. ``num_draws=2000, num_chains=2``.

    Returns
    -------
    FitResult
        The DataTree (``dataset`` dim dropped for one dataset), the exact posterior where the model has one
        (:meth:`Model.exact <bayeslin_jax.core.model.Model.exact>`: ``mean: ([B,] d)``, ``cov: ([B,] d, d)``),
        and per-parameter summary / problems / JSON / plot methods.

    Raises
    ------
    BayeslinError
        Bad data (non-finite, mismatched shapes, too few points), model or settings, in one line.

    See Also
    --------
    bayeslin_jax.fit_formula : Several predictors, from a formula and a data table.
    bayeslin_jax.compare : Several models on the same data, by PSIS-LOO and exact evidence.

    Examples
    --------
    The tutorial's model (``N(0, 0.2)`` weights, known ``sigma = 0.1``) on 20 simulated points; its posterior is
    known exactly, so NUTS can be checked against it:

    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(-1.0, 1.0, 20)
    >>> y = 0.5 + 0.3 * x + 0.1 * rng.standard_normal(20)
    >>> result = bl.fit(x, y, bl.tutorial_spec(), num_warmup=100, num_draws=100, num_chains=2)
    >>> result.feature_names
    ('b', 'm')
    >>> np.asarray(result.exact.mean, dtype=float).round(3)  # the exact posterior mean of intercept and slope
    array([0.476, 0.265])
    >>> table = result.summary()
    >>> list(table.columns[:5])
    ['site', 'mean', 'sd', 'eti89_lb', 'eti89_ub']
    >>> bool((abs(table["mean"] - table["exact_mean"]) < 0.05).all())  # NUTS agrees with the exact posterior
    True

    Without a model, ``bl.fit(x, y)`` fits the linear model with data-scaled priors and sigma learned
    (``result.priors()`` lists them); ``priors={"sigma": 0.1}`` fixes the noise instead.
    """
    config = _config(config, sampler_options)
    dtype = jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64
    if model is None or isinstance(model, str):
        from bayeslin_jax.core.basis import Polynomial

        x_arr, y_arr = validate_xy(x, y, min_points=2, dtype=dtype)
        with np.errstate(over="ignore"):
            check_features(exact.design_matrix64(Polynomial(1), x_arr).astype(dtype), Polynomial(1), x_arr)
        model = default_model("gaussian" if model is None else model, x_arr, y_arr, priors=priors)
    elif priors is not None:
        raise BayeslinError("priors= applies to a family name (or the default model): a Model or ModelSpec "
                            "carries its own priors")
    model = as_model(model)
    x_arr, y_arr = validate_xy(x, y, min_points=min_points(model), dtype=dtype)
    batched = x_arr.ndim == 2
    x_batch = x_arr if batched else x_arr[None]
    y_batch = y_arr if batched else y_arr[None]
    inputs: np.ndarray | jax.Array
    if model.spec is not None:  # the basis in float64: the exact posterior and the whitening stay oracles
        inputs = exact.design_matrix64(model.basis, x_batch)
        with np.errstate(over="ignore"):  # an overflow to inf in the working dtype is what the check reports
            check_features(inputs.astype(dtype), model.spec.basis, x_arr)
    else:
        inputs = model.design(jnp.asarray(x_batch, dtype=dtype))
    return fit_inputs(inputs, y_batch, model, x=x_batch, batched=batched, seed=seed, config=config,
                      log_likelihood=log_likelihood, num_devices=num_devices, whiten=whiten, progress=progress)


def default_model(family: str, x, y, *, basis=None, priors=None, **family_options) -> Model:
    """A built-in model of ``family`` with priors scaled to the data (a batch pooled).

    The priors are those of :func:`bayeslin_jax.workflows.defaults.build_model`;
    :func:`~bayeslin_jax.workflows.defaults.prior_lines` prints them.

    Parameters
    ----------
    family : str
        ``"gaussian"``, ``"student_t"``, ``"horseshoe"``, ``"bernoulli"`` or ``"poisson"``
        (:func:`~bayeslin_jax.workflows.defaults.model_family` reads aliases such as ``"student-t"``).
    x, y : array_like, shape ``([B,] n)``
        The data the priors are scaled to; a batch is pooled.
    basis : Polynomial, optional
        Default the linear basis (features ``b``, ``m``).
    priors : PriorChoice or dict, optional
        A :class:`~bayeslin_jax.workflows.defaults.PriorChoice` or a dict of its fields.
    **family_options
        ``nu`` (Student-t), ``expected_nonzero``, ``slab_scale``, ``slab_df`` (horseshoe).

    Returns
    -------
    Model
        The model, its prior lines in ``info["priors"]``.

    Raises
    ------
    BayeslinError
        An unknown family or prior option, a prior option that does not apply to the family, a constant response.
    """
    from bayeslin_jax.core.basis import Polynomial
    from bayeslin_jax.workflows.defaults import build_model

    basis = Polynomial(1) if basis is None else basis
    choice = as_prior_choice(priors)
    x_flat = np.asarray(x, dtype=np.float64).reshape(-1)
    y_flat = np.asarray(y, dtype=np.float64).reshape(-1)
    phi = exact.design_matrix64(basis, x_flat) if hasattr(basis, "degree") else np.asarray(basis(x_flat))
    return build_model(family, basis, phi, y_flat, choice, **family_options)


def as_prior_choice(priors):
    """Read ``priors`` as a :class:`~bayeslin_jax.workflows.defaults.PriorChoice`.

    Parameters
    ----------
    priors : None, dict or PriorChoice
        None (the default rule), a dict of PriorChoice fields, or a PriorChoice (returned as is).

    Returns
    -------
    PriorChoice
        The choice.

    Raises
    ------
    BayeslinError
        ``priors`` of another type, or an unknown field (one line naming it and the known ones).
    """
    from bayeslin_jax.workflows.defaults import PriorChoice

    if priors is None or isinstance(priors, PriorChoice):
        return PriorChoice() if priors is None else priors
    if not isinstance(priors, dict):
        raise BayeslinError(f"priors must be a dict of PriorChoice fields or a PriorChoice, got "
                            f"{type(priors).__name__}")
    fields = {f.name for f in dataclasses.fields(PriorChoice)}
    unknown = sorted(set(priors) - fields)
    if unknown:
        known = ", ".join(sorted(fields - {"notes"}))
        raise BayeslinError(f"unknown prior option(s) {', '.join(unknown)}: use {known}")
    return PriorChoice(**priors)


def fit_inputs(
    inputs,
    y: np.ndarray,
    model: Model | ModelSpec,
    *,
    x: np.ndarray | None = None,
    batched: bool = True,
    seed: int = 0,
    config: NutsConfig,
    log_likelihood: bool = True,
    num_devices: int | None = None,
    whiten: bool = True,
    progress: bool | None = None,
) -> FitResult:
    """:func:`fit` from validated model inputs.

    The exact posterior is computed in float64 (:func:`bayeslin_jax.core.exact.posterior64`) whatever JAX's
    precision, so that it stays an oracle on ill-conditioned designs.

    Parameters
    ----------
    inputs : array_like, shape ``(B, n, ...)``
        The model's inputs per dataset; for the Gaussian regression the design matrices ``phi: (B, n, d)`` in
        float64.
    y : (B, n) array
        The responses.
    model : Model or ModelSpec
        The model (a ModelSpec is the Gaussian regression ``linear(spec)``).
    x : (B, n) array, optional
        The raw inputs, stored in the DataTree's ``constant_data`` (default: none stored).
    batched : bool
        False drops the dataset dim of the result (then ``B = 1``).
    seed : int
        Root of every random stream; dataset ``i`` uses ``(seed, i)`` only.
    config : NutsConfig
        Sampler settings.
    log_likelihood : bool
        Store pointwise log-likelihoods in the DataTree.
    num_devices : int, optional
        Local devices to split the batch over (default: all).
    whiten : bool
        Sample the whitened model where there is one (as in :func:`fit`).
    progress : bool, optional
        A bar of datasets done, as in :func:`fit`.

    Returns
    -------
    FitResult
        As :func:`fit` returns it; the DataTree's attributes carry ``reparameterization``, ``converged``,
        ``problems`` and ``priors``.

    Raises
    ------
    BayeslinError
        An improper posterior, a design too ill-conditioned for an exact posterior, too little memory for the
        draws, non-finite NUTS means; one line.
    """
    if progress is None:
        import sys

        progress = np.shape(y)[0] > 1 and sys.stderr.isatty()
    progress = bool(progress)
    seed = check_seed(seed)
    model = as_model(model)
    spec = model.spec
    dtype = jnp.zeros(()).dtype
    check_proper(model, inputs, y)
    post = None
    if model.has_exact:  # the Gaussian regression with known noise
        spec = cast(ModelSpec, spec)
        post = exact.posterior64(inputs, y, spec.prior, cast(KnownNoise, spec.noise).sigma)
        _check_exact(post, inputs, spec, np.arange(np.shape(y)[-1], dtype=float) if x is None else np.asarray(x))
    from bayeslin_jax.engine.memory import check_memory, estimate_draw_bytes

    num_params = int(np.shape(inputs)[-1]) + 2 if np.ndim(inputs) == 3 else 4  # weights, sigma, nu (an estimate)
    check_memory(3 * estimate_draw_bytes(np.shape(y)[0], config.num_chains, config.num_draws, num_params + 7,
                                         np.dtype(dtype).itemsize), "fit", purpose="for its draws",
                 hint="lower --draws/--chains or fit fewer datasets at once")
    inputs_j, y_j = jnp.asarray(inputs, dtype=dtype), jnp.asarray(y, dtype=dtype)
    sampled = preconditioned(model, inputs) if whiten and spec is None else model
    if spec is not None and whiten:
        result, _ = whitening.sample_whitened(seed, inputs, y, spec.prior, spec.noise, config,
                                              num_devices=num_devices, sampler=sample_nuts, progress=progress)
    else:
        result = sample_model(seed, inputs_j, y_j, sampled, config, num_devices=num_devices, progress=progress)
        if sampled is not model:  # the whitened coordinates are the sampler's, not the model's
            result = result._replace(samples={k: v for k, v in result.samples.items() if k != WHITE_SITE})
    # cast: model_datatree's x_raw takes any array (it calls np.asarray), though annotated jax.Array
    tree = model_datatree(result, model, inputs_j, y_j, x_raw=None if x is None else cast(Any, np.asarray(x)),
                          include_log_likelihood=log_likelihood)
    label_levels(tree, model)
    if not batched:
        tree = tree.isel(dataset=0)
        post = None if post is None else _select(post, 0)
    fitted = FitResult(tree=tree, exact=post, model=model, config=config, seed=seed, batched=batched)
    _check_nuts(fitted)
    problems = fitted.problems()
    from bayeslin_jax.workflows.defaults import prior_lines

    tree.attrs.update(
        reparameterization="whiten" if spec is not None and whiten else "none",
        converged=int(not problems),
        problems="\n".join(problems),
        priors="\n".join(prior_lines(model)),
    )
    return fitted


def label_levels(tree: xr.DataTree, model: Model) -> xr.DataTree:
    """Label a user model's sites, in place, with level names and term names.

    The names are the level names of its factorized columns (:func:`~bayeslin_jax.workflows.design.bind_columns`)
    and, on a formula's design, the term names. A posterior dim (other than chain, draw, dataset) without
    coordinates (or with the default ``0 .. J-1``) gets the names of the one candidate of its length: a factorized
    argument's levels, or the design's terms (for a user model that declares no feature site). Two candidates of
    one length label neither (never a wrong label).

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's DataTree; its ``posterior`` group is relabelled.
    model : Model
        The fitted model (``info["levels"]``, its basis).

    Returns
    -------
    xarray.DataTree
        ``tree`` itself.
    """
    levels = dict(model.info.get("levels") or {})
    basis = model.basis
    if model.feature_site is None and basis is not None and model.spec is None and hasattr(basis, "matrix"):
        levels["terms of the design"] = list(basis.feature_names)
    if not levels or "posterior" not in tree:
        return tree
    by_size: dict[int, list[str]] = {}
    for arg, names in levels.items():
        by_size.setdefault(len(names), []).append(arg)
    post = tree["posterior"].to_dataset()

    def _unlabelled(dim) -> bool:  # no coordinate, or the default 0 .. J-1
        return dim not in post.coords or np.array_equal(np.asarray(post.coords[dim]), np.arange(post.sizes[dim]))

    coords = {dim: levels[by_size[size][0]] for dim, size in post.sizes.items()
              if dim not in ("chain", "draw", "dataset", "feature") and _unlabelled(dim)
              and len(by_size.get(size, [])) == 1}
    if coords:
        import xarray as xr

        tree["posterior"] = xr.DataTree(post.assign_coords(coords))
    return tree


WHITE_SITE = "w_white"
#: Built-in models whose weights ``w`` enter only through the linear predictor ``phi @ w``: sampled in whitened
#: coordinates on raw-scale designs (:func:`preconditioned`).
_PRECONDITIONED = ("student_t", "bernoulli", "poisson")


class _AffineReparam:
    """A NumPyro reparameterizer: the site ``w ~ p`` becomes ``z`` (a real vector; sampled as ``N(0, I)`` whose
    density a factor divides out again) with ``w = matrix @ z`` deterministic and ``log p(w)`` added as a factor
    (the Jacobian ``log |det matrix|`` is a constant), so the posterior of ``w`` is unchanged."""

    def __init__(self, matrix):
        self.matrix = matrix

    def __call__(self, name, fn, obs):
        import numpyro
        import numpyro.distributions as dist

        if obs is not None:
            raise BayeslinError(f"cannot whiten the observed site {name!r}")
        dim = self.matrix.shape[-1]
        base = dist.Normal(0.0, 1.0).expand([dim]).to_event(1)  # a proper stand-in, divided out again below
        z = numpyro.sample(WHITE_SITE, base)
        w = self.matrix @ z
        numpyro.factor(f"{name}_prior", fn.log_prob(w) - base.log_prob(z))
        return None, w


def whitened_regression(x, y=None, *, white_matrix, regression, **kwargs) -> None:
    """Run ``regression(x, y, **kwargs)`` with its weights ``w`` sampled as ``w = white_matrix @ z``.

    Parameters
    ----------
    x : (n, d) array
        The design, as ``regression`` takes it.
    y : (n,) array, optional
        The observations (None: prior predictive).
    white_matrix : (d, d) array
        The whitening map (traced).
    regression : callable
        A NumPyro regression function with a weight site ``w``.
    **kwargs
        Passed on to ``regression``.
    """
    import numpyro

    with numpyro.handlers.reparam(config={"w": _AffineReparam(white_matrix)}):
        regression(x, y, **kwargs)


def preconditioned(model: Model, inputs) -> Model:
    """The model NUTS samples for a built-in Student-t or GLM regression on a design.

    The same posterior with ``w = A z``, ``A = R^-1 sqrt(n - 1)`` from the thin QR of the (pooled) design
    (rstanarm's ``QR = TRUE``), so that raw-scale, correlated predictors sample as well as standardized ones.
    The draws of ``w`` are unchanged in distribution (an invertible linear map).

    Parameters
    ----------
    model : Model
        The model to fit.
    inputs : (B, n, d) array
        Its design matrices.

    Returns
    -------
    Model
        The whitened model, or ``model`` itself (every other model, or a design without full column rank).
    """
    import dataclasses

    if model.name not in _PRECONDITIONED or model.feature_site != "w" or model.fn is whitened_regression:
        return model
    phi = np.asarray(inputs, dtype=np.float64)
    pooled = phi.reshape(-1, phi.shape[-1])
    if pooled.shape[0] <= pooled.shape[1]:
        return model
    r = np.linalg.qr(pooled, mode="r")
    if not np.all(np.isfinite(r)) or np.min(np.abs(np.diag(r))) <= 1e-12 * np.max(np.abs(np.diag(r))):
        return model
    matrix = np.linalg.inv(r) * np.sqrt(pooled.shape[0] - 1)
    dtype = jnp.zeros(()).dtype
    params = {**model.params, "white_matrix": jnp.asarray(matrix, dtype=dtype)}
    static = (("regression", model.fn), *model.static)
    return dataclasses.replace(model, fn=whitened_regression, params=params, static=static)


def check_proper(model: Model, inputs, y) -> None:
    """Refuse an improper prior (flat weights or flat sigma) whose posterior is improper on this design.

    Parameters
    ----------
    model : Model
        The model to fit.
    inputs : (B, n, d) array
        Its design matrices.
    y : (B, n) array
        The responses.

    Raises
    ------
    BayeslinError
        One line from :func:`bayeslin_jax.core.priors.posterior_is_proper`, naming the dataset of a batch.
    """
    params: dict[str, Any] = (model.params if model.spec is None
                              else {"prior": model.spec.prior, "noise": model.spec.noise})
    prior: Any = params.get("prior")
    noise: Any = params.get("noise")
    if prior is None or (getattr(prior, "is_proper", True) and getattr(noise, "is_proper", True)):
        return
    from bayeslin_jax.core.priors import posterior_is_proper

    phis = np.asarray(inputs, dtype=np.float64)
    for b in range(phis.shape[0]):
        reason = posterior_is_proper(prior, noise, phis[b])
        if reason is not None:
            where = f"dataset {b}: " if phis.shape[0] > 1 else ""
            raise BayeslinError(f"{where}improper posterior: {reason}")


def _hint(dtype) -> str:
    return "" if np.dtype(dtype) == np.float64 else " or enable float64 (--x64, jax_enable_x64)"


def _x_range(x: np.ndarray) -> str:
    return f"x in [{x.min():g}, {x.max():g}]"


def check_features(phi: np.ndarray, basis, x: np.ndarray) -> None:
    """Refuse basis features whose sums of squares overflow their dtype.

    Parameters
    ----------
    phi : (B, n, d) array
        The features, in the working dtype.
    basis : Polynomial
        The basis that made them (named in the message).
    x : array
        The raw inputs (their range is named in the message).

    Raises
    ------
    BayeslinError
        One line: the largest feature, the dtype's limit, and what to do (rescale x, a lower degree, float64).
    """
    limit = square_limit(phi.dtype, phi.shape[-2])
    biggest = float(np.max(np.abs(phi))) if np.isfinite(phi).all() else float("inf")
    if biggest > limit:
        raise BayeslinError(
            f"basis {basis.name} on {_x_range(x)}: features reach {biggest:.3g}, too large for "
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
            f"NUTS gave non-finite posterior means or sds for model {result.model.name!r}: the data are badly "
            "scaled for this model; rescale x and y (about unit scale)"
        )


def _select(post: exact.GaussianPosterior, index: int) -> exact.GaussianPosterior:
    """Dataset ``index`` of a batched posterior."""
    return jax.tree.map(lambda a: a[index], post)


@dataclass(frozen=True)
class FitResult:  # numpydoc ignore=PR02
    """What :func:`fit` returns, for every model.

    Parameters
    ----------
    tree : xarray.DataTree
        ArviZ DataTree: ``posterior`` (every kept site: ``(chain, draw, [dataset,] *site_dims)``; ``w`` has the
        ``feature`` dim), ``sample_stats``, ``log_likelihood``, ``observed_data``, ``constant_data``.
    exact : exact.GaussianPosterior or None
        The exact posterior where the model has one (:meth:`Model.exact <bayeslin_jax.core.model.Model.exact>`):
        ``mean ([B,] d)``, ``cov ([B,] d, d)``; None otherwise.
    model : Model
        The fitted model (a ModelSpec given to :func:`fit` is its Gaussian regression ``linear(spec)``).
    config : NutsConfig
        The sampler settings used.
    seed : int
        The root seed used.
    batched : bool
        True when ``x, y`` had a leading dataset axis.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(-1.0, 1.0, 20)
    >>> y = 0.5 + 0.3 * x + 0.1 * rng.standard_normal(20)
    >>> result = bl.fit(x, y, bl.tutorial_spec(), num_warmup=100, num_draws=100, num_chains=2)
    >>> result.sites, result.feature_names, result.num_datasets
    (('w',), ('b', 'm'), 1)
    >>> result.draws("w").shape  # (chain, draw, feature)
    (2, 100, 2)
    >>> result.priors()
    ['b ~ Normal(0, 0.2)', 'm ~ Normal(0, 0.2)', 'sigma = 0.1 (known)']
    >>> np.asarray(result.exact.sd, dtype=float).round(3)  # the exact posterior sd of intercept and slope
    array([0.022, 0.036])
    >>> list(result.summary().index)
    ['b', 'm']
    >>> "exact_cov" in result.to_dict()
    True
    """

    tree: xr.DataTree
    exact: exact.GaussianPosterior | None
    model: Model
    config: NutsConfig
    seed: int
    batched: bool

    @property
    def spec(self) -> ModelSpec | Model:
        """The Gaussian regression's :class:`ModelSpec` (release 0.1's name), or the model itself.

        Returns
        -------
        ModelSpec or Model
            ``model.spec`` where the model has one, else ``model``.
        """
        return self.model if self.model.spec is None else self.model.spec

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the feature site's elements (the basis features or formula terms).

        Returns
        -------
        tuple of str
            ``model.feature_names`` (empty for a model without a basis).
        """
        return self.model.feature_names

    @property
    def num_datasets(self) -> int:
        """How many datasets the result holds.

        Returns
        -------
        int
            The ``dataset`` dim's length; 1 for a one-dataset fit.
        """
        return int(self.tree["posterior"].sizes["dataset"]) if self.batched else 1

    @property
    def sites(self) -> tuple[str, ...]:
        """The posterior's sites: latent ones, and every ``numpyro.deterministic`` (per-point ones included).

        Returns
        -------
        tuple of str
            The names of the ``posterior`` group's variables.
        """
        return tuple(self.tree["posterior"].data_vars)

    def draws(self, name: str = "w") -> np.ndarray:
        """Posterior draws of one site as NumPy.

        Parameters
        ----------
        name : str
            The site (default ``"w"``, the weights of the built-in models); see :attr:`sites`.

        Returns
        -------
        numpy.ndarray, shape ``([B,] C, S, *site_shape)``
            E.g. ``w: ([B,] C, S, d)``: datasets (a batch only), chains, draws, then the site's own dims.

        Raises
        ------
        BayeslinError
            The model has no site ``name`` (one line listing its sites).
        """
        if name not in self.tree["posterior"]:
            raise BayeslinError(f"model {self.model.name!r} has no site {name!r}: its sites are {list(self.sites)}")
        lead = (["dataset"] if self.batched else []) + ["chain", "draw"]
        return np.asarray(self.tree["posterior"][name].transpose(*lead, ...))

    def diagnostics(self) -> xr.Dataset:
        """The diagnostics of every parameter, next to the exact posterior where there is one.

        Returns
        -------
        xarray.Dataset
            :func:`~bayeslin_jax.diagnostics.host.posterior_summary` (dims ``dataset, parameter``; ``parameter``:
            every element of every site, coordinate ``site`` names its site), plus ``exact_mean``, ``exact_sd``
            and ``z = (mean - exact_mean) / mcse_mean`` on the feature site where the model has an exact posterior
            (NaN elsewhere), and ``max_tree_depth_hits`` (draws whose tree reached ``config.max_tree_depth``).
            A one-dataset fit has a ``dataset`` dim of length 1 here. A copy: changing it changes nothing here.
        """
        return self._diagnostics.copy()

    @cached_property
    def _diagnostics(self) -> xr.Dataset:
        table = diagnostics.posterior_summary(self.tree)
        stats = self.tree["sample_stats"]
        depth = stats["tree_depth"] if "dataset" in stats["tree_depth"].dims else stats["tree_depth"].expand_dims(
            dataset=[0]
        )
        table["max_tree_depth_hits"] = (depth >= self.config.max_tree_depth).sum(diagnostics.SAMPLE_DIMS)
        if self.exact is not None:
            on_features = np.asarray(table["site"] == self.model.feature_site)
            for name, values in (("exact_mean", self.exact.mean), ("exact_sd", self.exact.sd)):
                column = np.full(table["mean"].shape, np.nan)
                column[:, on_features] = np.asarray(values, dtype=float).reshape(column.shape[0], -1)
                table[name] = (("dataset", "parameter"), column)
            table["z"] = (table["mean"] - table["exact_mean"]) / table["mcse_mean"]
        return table

    def summary(self, ci_kind: str | None = None, ci_prob: float | None = None) -> pd.DataFrame:
        """One row per parameter: NUTS mean/sd, a credible interval, R-hat, ESS, MCSE, and the exact posterior.

        A row per element of every site (and per dataset, for a batch): NUTS mean/sd, a credible interval, R-hat,
        bulk/tail ESS, MCSE, its ``site``; exact mean/sd and z where the model has an exact posterior.

        Parameters
        ----------
        ci_kind : {"eti", "hdi"}, optional
            Equal-tailed (ArviZ's default) or highest-density interval, computed by ``arviz_stats``
            (:func:`~bayeslin_jax.diagnostics.host.credible_intervals`).
        ci_prob : float, optional
            Its probability (default ArviZ's ``stats.ci_prob``, 0.89).

        Returns
        -------
        pandas.DataFrame
            Index ``parameter`` (``(dataset, parameter)`` for a batch); the interval's columns follow ``sd``,
            named as in ``arviz_stats.summary``: ``eti89_lb``, ``eti89_ub`` by default, ``hdi89_lb``, ``hdi89_ub``
            with ``ci_kind="hdi"``. ``frame.attrs["priors"]``: the priors used, one line each (:meth:`priors`).
        """
        table = self.diagnostics()
        per_parameter = [name for name, da in table.data_vars.items() if da.dims == ("dataset", "parameter")]
        intervals = diagnostics.credible_intervals(self.tree, ci_kind, ci_prob)
        columns = list(intervals.data_vars)
        at = per_parameter.index("sd") + 1
        frame = table[per_parameter].assign({name: intervals[name] for name in columns}).to_dataframe()
        frame = frame[["site", *per_parameter[:at], *columns, *per_parameter[at:]]]
        frame = frame if self.batched else frame.droplevel("dataset")
        frame.attrs["priors"] = self.priors()  # the header: the priors the fit used, one line each
        return frame

    def arviz_summary(self, dataset: int = 0) -> pd.DataFrame:
        """ArviZ's own summary table (mean, sd, ETI, MCSE, ESS, R-hat) of one dataset.

        Parameters
        ----------
        dataset : int
            Position of the dataset in a batch (ignored for one dataset).

        Returns
        -------
        pandas.DataFrame
            ``arviz_stats.summary`` of that dataset's posterior, one row per parameter.
        """
        return diagnostics.summary(self.tree, dataset if self.batched else None)

    def correlation_table(self, dataset: int = 0) -> pd.DataFrame:
        """Exact vs NUTS posterior covariance and correlation of the weights (models with an exact posterior).

        Parameters
        ----------
        dataset : int
            Position of the dataset in a batch (ignored for one dataset).

        Returns
        -------
        pandas.DataFrame
            One row per pair of features (index ``pair``, e.g. ``"b,m"``): ``cov_exact``, ``cov_nuts``,
            ``cov_mcse``, ``corr_exact``, ``corr_nuts``, ``corr_diff``.

        Raises
        ------
        BayeslinError
            The model has no exact posterior (e.g. sigma learned).
        """
        if self.exact is None:
            raise BayeslinError(f"model {self.model.name!r} has no exact posterior: correlation_table needs "
                                "known sigma")
        cov = np.asarray(self.exact.cov)
        draws = self.draws(cast(str, self.model.feature_site))  # the Gaussian regression's "w"
        if self.batched:
            cov, draws = cov[dataset], draws[dataset]
        return diagnostics.correlation_table(cov, draws, self.feature_names)

    def problems(self) -> list[str]:
        """Convergence problems, one line each (empty when none), for every parameter of every model.

        Checks, as PyMC and Stan warn: R-hat > 1.01 (one line "R-hat needs at least 2 chains" instead when there
        is one chain), bulk or tail ESS < 100 per chain (parameters that vary), divergences, draws that hit the
        maximum tree depth; non-finite draws. The worst R-hat and ESS are printed with the digits that put them
        on the failing side of the threshold (1.0139 -> 1.014; ESS as an integer, rounded down).

        Returns
        -------
        list of str
            One line per problem, prefixed ``dataset i:`` in a batch; empty when the fit converged.
        """
        table = self.diagnostics()
        lines: list[str] = []
        prefix = lambda i: f"dataset {int(table['dataset'][i])}: " if self.batched else ""  # noqa: E731
        min_ess = ESS_PER_CHAIN_MIN * self.config.num_chains
        names = np.asarray(table["parameter"])
        if self.config.num_chains < 2:
            lines.append("R-hat needs at least 2 chains")
        for i in range(table.sizes["dataset"]):
            row = table.isel(dataset=i)
            varies = np.asarray(row["sd"]) > 0  # a constant deterministic site has no R-hat or ESS to check
            rhat = np.asarray(row["rhat"])
            ess = np.minimum(np.asarray(row["ess_bulk"]), np.asarray(row["ess_tail"]))
            nonfinite = ~np.isfinite(np.asarray(row["mean"]))
            if nonfinite.any():
                lines.append(f"{prefix(i)}non-finite draws for {', '.join(names[nonfinite])}")
            bad = ~(rhat <= RHAT_MAX) & varies
            if self.config.num_chains >= 2 and bad.any():
                worst = rhat[bad][np.isfinite(rhat[bad])]
                most = f"max {self._past(float(worst.max()), RHAT_MAX)}" if worst.size else "not finite"
                lines.append(f"{prefix(i)}R-hat > {RHAT_MAX} for {', '.join(names[bad])} ({most})")
            low = ~(ess >= min_ess) & varies
            if low.any():
                worst = ess[low][np.isfinite(ess[low])]
                least = f"min {int(np.floor(worst.min()))}" if worst.size else "not finite"
                lines.append(f"{prefix(i)}ESS < {min_ess} ({ESS_PER_CHAIN_MIN} per chain) for "
                             f"{', '.join(names[low])} ({least})")
            if int(row["divergences"]) > 0:
                lines.append(f"{prefix(i)}{int(row['divergences'])} divergent transitions")
            if int(row["max_tree_depth_hits"]) > 0:
                lines.append(
                    f"{prefix(i)}{int(row['max_tree_depth_hits'])} draws hit the maximum tree depth "
                    f"{self.config.max_tree_depth}"
                )
        return lines

    @staticmethod
    def _past(value: float, threshold: float) -> str:
        """``value`` (above ``threshold``) with the fewest significant digits (4 at least) that still print it
        above the threshold: ``1.0139`` past 1.01 -> ``"1.014"``, ``1.01004`` -> ``"1.01004"``."""
        for digits in range(4, 18):
            text = f"{value:.{digits}g}"
            if float(text) > threshold:
                return text
        return repr(value)

    def priors(self) -> list[str]:
        """The priors the fit used, one line each (``age ~ Normal(0, 14.7)``; data-scaled defaults included).

        Returns
        -------
        list of str
            One line per prior (weights, then sigma), as stored in the DataTree's ``priors`` attribute.
        """
        return [line for line in self.tree.attrs.get("priors", "").splitlines() if line]

    def prior_warnings(self) -> list[str]:
        """One line per prior that dominates the data or conflicts with it.

        Returns
        -------
        list of str
            :func:`bayeslin_jax.workflows.defaults.prior_warnings` of this result (empty when none, and for a user
            model).
        """
        from bayeslin_jax.workflows.defaults import prior_warnings

        return prior_warnings(self)

    def to_dict(self) -> dict:
        """The result as plain Python numbers and lists (non-finite values kept; :meth:`to_json` nulls them).

        Keys: ``spec`` (the Gaussian spec, or the model's description), ``sampler``, ``seed``, ``features`` (per
        element of the feature site: NUTS mean/sd, R-hat, bulk/tail ESS, MCSE, exact mean/sd), ``parameters``
        (the same fields for every other element: ``sigma``, ``tau``, ``z[3]``, ...), ``nuts_cov``, ``exact_cov``,
        ``divergences``, ``max_tree_depth_hits``, ``problems`` (one line each, as :meth:`problems`), ``converged``
        (no problems), ``reparameterization`` (``"whiten"`` or ``"none"``); for a batch, ``datasets``: one such
        record per dataset.

        Returns
        -------
        dict
            The record described above (JSON-serializable but for non-finite floats).
        """
        table = self.diagnostics()
        records = [self._record(table, i) for i in range(table.sizes["dataset"])]
        problems = self.problems()
        head = {
            "spec": self.model.describe() if self.model.spec is None else self.model.spec.describe(),
            "sampler": dataclasses.asdict(self.config),
            "seed": self.seed,
            "reparameterization": self.tree.attrs.get("reparameterization", "none"),
            "priors": [line for line in self.tree.attrs.get("priors", "").splitlines() if line],
            "prior_warnings": self.prior_warnings(),
            "converged": not problems,
            "problems": problems,
        }
        if self.batched:
            return head | {"datasets": records}
        return head | records[0]

    def _record(self, table: xr.Dataset, index: int) -> dict:
        """The record of dataset ``index`` (position)."""
        row = table.isel(dataset=index)
        columns = ("mean", "sd", "rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "exact_mean", "exact_sd")
        features: dict[str, dict[str, float]] = {}
        parameters: dict[str, dict[str, float]] = {}
        for k, (name, site) in enumerate(zip(np.asarray(table["parameter"]), np.asarray(table["site"]), strict=True)):
            on_features = site == self.model.feature_site
            (features if on_features else parameters)[str(name)] = {
                ("nuts_" + c if c in ("mean", "sd") else c): float(row[c][k])
                for c in columns
                if c in row and (on_features or not c.startswith("exact"))
            }
        record: dict = {"features": features, "parameters": parameters, "divergences": int(row["divergences"]),
                        "max_tree_depth_hits": int(row["max_tree_depth_hits"])}
        if features:
            w = self.draws(cast(str, self.model.feature_site))  # features found: the model has a feature site
            w = (w[index] if self.batched else w).reshape(-1, len(features)).astype(float)
            record["nuts_cov"] = np.cov(w, rowvar=False).reshape(len(features), len(features)).tolist()
        if self.batched:
            record = {"dataset": int(row["dataset"])} | record
        if self.exact is not None:
            cov = np.asarray(self.exact.cov, dtype=float)
            record["exact_cov"] = (cov[index] if self.batched else cov).tolist()
        return record

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """Strict JSON of :meth:`to_dict`: non-finite numbers become null, their paths listed under ``non_finite``.

        Parameters
        ----------
        path : str or Path, optional
            Also write the text (and a final newline) there, atomically.
        indent : int
            JSON indentation.

        Returns
        -------
        str
            The JSON text (see :func:`bayeslin_jax.core.data.strict_json`); what ``bayeslin fit --json`` writes.
        """
        text = strict_json(self.to_dict(), indent=indent)
        if path is not None:
            from bayeslin_jax.core.atomic import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    def flat_draws(self, dataset: int = 0) -> tuple[list[str], np.ndarray]:
        """Every parameter's draws of one dataset, chains pooled.

        Parameters
        ----------
        dataset : int
            Position of the dataset in a batch (ignored for one dataset).

        Returns
        -------
        names : list of str
            ``(P,)``: every element of every site, as in :meth:`diagnostics`.
        draws : numpy.ndarray, shape ``(C * S, P)``
            The draws, float64.
        """
        names = [str(n) for n in np.asarray(self._diagnostics["parameter"])]
        columns = []
        for site in self.sites:
            draws = self.draws(site)
            draws = draws[dataset] if self.batched else draws
            columns.append(draws.reshape(draws.shape[0] * draws.shape[1], -1).astype(float))
        return names, np.concatenate(columns, axis=1)

    def plot(self, path: str | Path | None = None, dataset: int | None = None):
        """A figure of one dataset's fit.

        The Gaussian regression on a polynomial basis: posterior lines and the predictive band (NUTS HDI over the
        exact +-2 sd band). Every other model (and a :class:`~bayeslin_jax.workflows.design.Design` of several
        predictors): one panel per parameter, NUTS draws against the exact posterior density where there is one.

        Parameters
        ----------
        path : str or Path, optional
            Save the figure there as PNG.
        dataset : int, optional
            Position of the dataset to draw: required for a batched result (its title names the dataset);
            None (or 0) for a single one.

        Returns
        -------
        matplotlib.figure.Figure
            The figure (also saved to ``path`` if given).

        Raises
        ------
        BayeslinError
            A batched result without ``dataset``, or a position outside the batch.
        """
        from bayeslin_jax.core.basis import Polynomial
        from bayeslin_jax.diagnostics import plots

        if self.batched and dataset is None:
            raise BayeslinError(f"this result holds {self.num_datasets} datasets: pass dataset=i")
        dataset = 0 if dataset is None else int(dataset)
        if not 0 <= dataset < self.num_datasets:
            raise BayeslinError(f"dataset={dataset} is outside this result's {self.num_datasets} dataset(s)")
        label = f"dataset {int(self.tree['posterior'].coords['dataset'].values[dataset])}" if self.batched else None
        if self.model.spec is None or not isinstance(self.model.basis, Polynomial):
            fig = plots.parameter_figure(self, dataset, title=label)
        else:
            x = np.asarray(self.tree["constant_data"]["x"])
            y = np.asarray(self.tree["observed_data"]["y"])
            samples = {name: self.draws(name) for name in self.sites}
            post = self.exact
            if self.batched:
                x, y = x[dataset], y[dataset]
                samples = {k: v[dataset] for k, v in samples.items()}
                post = None if post is None else _select(post, dataset)
            title = "Posterior fit" if label is None else f"Posterior fit, {label}"
            fig = plots.posterior_fit_figure(x, y, self.model.spec, samples, post, title=title)
        if path is not None:
            plots.save(fig, path)
        return fig


__all__ = ["ESS_PER_CHAIN_MIN", "RHAT_MAX", "FitResult", "as_prior_choice", "default_model", "fit", "fit_inputs",
           "label_levels", "min_points"]
