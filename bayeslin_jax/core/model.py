"""A general model description the batched engine can run: any NumPyro model of one dataset.

The user-model contract
-----------------------
A model is a NumPyro function of one dataset, ``fn(x, y=None, **kwargs)``:

* ``x``: the inputs of one dataset, ``(n,)`` or ``(n, k)`` (after the optional ``basis``, which maps
  raw ``x: (n,)`` to ``phi: (n, d)``); ``y: (n,)`` the observations, or None to simulate;
* the observations are one ``numpyro.sample(obs_site, ..., obs=y)`` site, best inside a
  ``numpyro.plate`` over the data points (then the DataTree gets pointwise log-likelihoods for LOO);
* every latent ``numpyro.sample`` site is continuous and its shape is fixed by the data size (no
  shape that depends on data *values*, no ``numpyro.param`` sites, no discrete latents);
* ``numpyro.deterministic`` sites are kept as posterior draws; those with one element per data point (a site in a
  plate over the points, e.g. eight schools' ``theta``) are recomputed from the draws on the full data, with the
  plate's name as their dim;
* ``kwargs``: JAX/NumPy arrays and NumPy scalars (and pytrees of them) are *traced*: a new value does not recompile;
  anything else (Python numbers, strings, None, tuples) is *static*: part of the compiled program's
  identity, and must be hashable.

Built-ins (:func:`linear`, :func:`student_t`, :func:`horseshoe`, :func:`glm`) are instances of the same
:class:`Model`; :func:`user_model` wraps a user's function. The engine is
:func:`bayeslin_jax.engine.sampling.sample_model`; simulators, DataTree and SBC live in
:mod:`bayeslin_jax.core.simulate` and :mod:`bayeslin_jax.workflows.sbc.run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayeslin_jax.core import exact
from bayeslin_jax.core import regressions as models
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.exact import GaussianPosterior
from bayeslin_jax.core.priors import (
    KnownNoise,
    ModelSpec,
    Noise,
    WeightPrior,
    _as_list,
    finite_moment_features,
    is_gaussian_prior,
    tutorial_spec,
)


@dataclass(frozen=True)
class Model:
    """A NumPyro model of one dataset plus its arguments (see the module docstring for the contract).

    Attributes
    ----------
    fn : callable
        ``fn(x, y=None, **params, **static)``.
    name : str
        Short name (store metadata, reports).
    params : dict
        Traced keyword arguments (arrays or pytrees of arrays); not part of the hash, so models that
        differ only here share one compiled program.
    static : tuple of (str, hashable) pairs
        Static keyword arguments.
    basis : Polynomial, optional
        Maps raw ``x: (..., n)`` to ``phi: (..., n, d)`` before ``fn``; None passes ``x`` as is.
    obs : str
        Name of the observed site (``y``).
    feature_site : str, optional
        A site of shape ``(d,)`` indexed by the basis features (dim ``feature`` in the DataTree).
    quantities : tuple of str, optional
        Sites whose elements SBC ranks (default: every kept site).
    dap_quantities : tuple of str, optional
        SBC quantities whose data-averaged-posterior tests join the verdict family (they need finite
        fourth prior moments); default: the elements of ``feature_site``.
    info : dict
        Extra JSON description (not hashed).
    spec : ModelSpec, optional
        Set for the conjugate Gaussian regression (:func:`linear`): the basis, weight prior and noise behind
        the optional exact capability (:meth:`exact`) and the whitened sampler; None for every other model.
    per_point : tuple of str, optional
        The traced arguments with one row per data point (group membership, weights, exposure, a second
        predictor): shared by every dataset, sliced with the data points. None (user models): detected, every
        array argument whose leading axis has the data's length; ``()`` for the built-ins.
    """

    fn: Callable[..., None]
    name: str
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    static: tuple[tuple[str, Hashable], ...] = ()
    basis: Polynomial | None = None
    obs: str = "y"
    feature_site: str | None = None
    quantities: tuple[str, ...] | None = None
    dap_quantities: tuple[str, ...] | None = None
    info: dict = field(default_factory=dict, compare=False, hash=False)
    spec: ModelSpec | None = field(default=None, compare=False, hash=False)
    per_point: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise BayeslinError(f"model function must be callable, got {type(self.fn).__name__}")
        for name, value in self.static:
            try:
                hash(value)
            except TypeError:
                raise BayeslinError(
                    f"model argument {name!r} ({type(value).__name__}) is neither an array nor hashable: pass it as"
                    " a NumPy array (traced) or a hashable value (static)"
                ) from None
        for name in self.per_point or ():
            if name not in self.params:
                raise BayeslinError(f"per-point argument {name!r} is not an array argument of model {self.name!r}")
        clash = set(self.params) & {k for k, _ in self.static}
        if clash or {"x", "y"} & (set(self.params) | {k for k, _ in self.static}):
            raise BayeslinError(f"model arguments {sorted(clash or {'x', 'y'})} given twice")

    def point_arguments(self, num_points: int) -> tuple[str, ...]:
        """The traced arguments with one row per data point, for data of ``num_points`` points per dataset.

        Raises
        ------
        BayeslinError
            One line naming a declared per-point argument whose leading axis is not ``num_points``.
        """
        if self.per_point is None:
            return tuple(sorted(k for k, v in self.params.items() if _leading_length(v) == num_points))
        for name in self.per_point:
            rows = _leading_length(self.params[name])
            if rows != num_points:
                raise BayeslinError(
                    f"model argument {name!r} has {'no rows' if rows is None else f'{rows} rows'}, but the data "
                    f"have {num_points} points per dataset: a per-point argument needs one row per point"
                )
        return self.per_point

    @property
    def num_points(self) -> int | None:
        """The data points per dataset its declared per-point arguments fix (None if it declares none)."""
        lengths = {_leading_length(self.params[name]) for name in self.per_point or ()}
        return lengths.pop() if len(lengths) == 1 else None

    def params_at(self, rows, num_points: int) -> dict:
        """The traced arguments for the data points ``rows`` (index array or slice) of ``num_points`` points."""
        sliced = self.point_arguments(num_points)
        return {k: jax.tree.map(lambda a: a[rows], v) if k in sliced else v for k, v in self.params.items()}

    @property
    def bound(self) -> Callable[..., None]:
        """``fn`` with the static arguments bound: ``bound(x, y=None, **params)``."""
        return partial(self.fn, **dict(self.static)) if self.static else self.fn

    def design(self, x) -> Array:
        """Raw inputs ``x: (..., n)`` -> the model's ``x`` (``basis(x)`` if a basis is set)."""
        x = jnp.asarray(x)
        return x if self.basis is None else self.basis(x)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.basis.feature_names if self.basis is not None else ()

    @property
    def has_exact(self) -> bool:
        """True when :meth:`exact` gives the posterior: the Gaussian regression with known noise and a
        Gaussian-family weight prior (normal, or a :class:`~bayeslin_jax.core.priors.TermPrior` of normal and flat
        coefficients: :func:`~bayeslin_jax.core.priors.is_gaussian_prior`)."""
        return self.spec is not None and self.spec.known_sigma and is_gaussian_prior(self.spec.prior)

    def exact(self, x, y) -> GaussianPosterior | None:
        """The exact posterior of the weights given raw ``x, y: ([B,] n)``, in float64; None where there is none.

        Only the conjugate Gaussian regression (:func:`linear` with known noise) has one: ``mean: ([B,] d)``,
        ``cov: ([B,] d, d)`` (:func:`bayeslin_jax.core.exact.posterior64`, stable on ill-conditioned designs).
        """
        if not self.has_exact:
            return None
        phi = exact.design_matrix64(self.spec.basis, x)
        return exact.posterior64(phi, np.asarray(y, dtype=np.float64), self.spec.prior, self.spec.noise.sigma)

    def describe(self) -> dict:
        """JSON-serialisable identity (store metadata, result files)."""
        fn = getattr(self.fn, "func", self.fn)
        out = {
            "model": self.name,
            "function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}",
            "basis": None if self.basis is None else self.basis.name,
            "obs": self.obs,
            "params": {k: _describe_value(v) for k, v in sorted(self.params.items())},
            "static": {k: _describe_value(v) for k, v in self.static},
        }
        if self.per_point:
            out["per_point"] = list(self.per_point)
        return out | ({"info": self.info} if self.info else {})


def flat_parameters(values: dict, sites: tuple[str, ...], lead_ndim: int) -> tuple[list[str], np.ndarray]:
    """Every element of ``sites`` side by side, named as in the summaries (``tau``, ``z[3]``, ``L[0,1]``).

    ``values: {site: (*lead, *site_shape)}`` with ``lead_ndim`` leading axes (``(B, C, S)`` for draws, ``(B,)``
    for the truth) -> names ``(P,)`` and ``(*lead, P)`` float64.
    """
    names, columns = [], []
    for site in sites:
        value = np.asarray(values[site], dtype=np.float64)
        lead, shape = value.shape[:lead_ndim], value.shape[lead_ndim:]
        names += [site] if not shape else [f"{site}[{','.join(map(str, k))}]" for k in np.ndindex(*shape)]
        columns.append(value.reshape(*lead, -1))
    return names, np.concatenate(columns, axis=-1)


def _describe_value(value):
    """JSON-ready: plain scalars as they are, arrays as lists, pytrees of arrays as ``{path: list}``, else repr."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    leaves = jax.tree_util.tree_leaves_with_path(value)
    if not leaves or not all(isinstance(leaf, jax.Array | np.ndarray | np.generic) for _, leaf in leaves):
        return repr(value)
    if len(leaves) == 1 and not leaves[0][0]:
        return _as_list(value)
    return {jax.tree_util.keystr(path): _as_list(leaf) for path, leaf in leaves}


def _leading_length(value) -> int | None:
    """The common leading-axis length of a pytree's array leaves (None for scalars or mixed lengths)."""
    lengths = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(value)}
    return lengths.pop() if len(lengths) == 1 else None


def _split_kwargs(kwargs: dict) -> tuple[dict, tuple]:
    """Arrays (and pytrees whose leaves are all arrays) -> traced params; the rest -> static."""
    params, static = {}, []
    for key, value in kwargs.items():
        leaves = jax.tree_util.tree_leaves(value)
        if leaves and all(isinstance(leaf, jax.Array | np.ndarray | np.generic) for leaf in leaves):
            params[key] = jax.tree.map(jnp.asarray, value)
        else:
            static.append((key, value))
    return params, tuple(sorted(static))


def user_model(
    fn: Callable[..., None],
    *,
    basis: Polynomial | None = None,
    name: str | None = None,
    obs: str = "y",
    feature_site: str | None = None,
    quantities: tuple[str, ...] | None = None,
    dap_quantities: tuple[str, ...] | None = None,
    per_point: tuple[str, ...] | None = None,
    **kwargs,
) -> Model:
    """Wrap a NumPyro model ``fn(x, y=None, **kwargs)`` for the batched engine.

    ``kwargs``: arrays and NumPy scalars are traced (new values do not recompile); other values are static and must
    be hashable. ``per_point``: the array arguments with one row per data point (e.g. ``group: (n,)``), sliced
    with the points; None detects them (leading axis = the data's length). Checks against the contract happen
    when the engine first sees data (:func:`bayeslin_jax.engine.sampling.inspect_model`), before compiling.
    """
    params, static = _split_kwargs(kwargs)
    fn_name = getattr(getattr(fn, "func", fn), "__name__", "model")
    per_point = None if per_point is None else tuple([per_point] if isinstance(per_point, str) else per_point)
    return Model(fn, name or fn_name, params, static, basis, obs, feature_site, quantities, dap_quantities,
                 per_point=per_point)


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------


def linear(spec: ModelSpec) -> Model:
    """The package's Gaussian linear regression (:func:`bayeslin_jax.core.regressions.linear_regression`)."""
    quantities = ("w",) if spec.known_sigma else ("w", "sigma")
    return Model(models.linear_regression, "linear", {"prior": spec.prior, "noise": spec.noise}, (), spec.basis,
                 feature_site="w", quantities=quantities, dap_quantities=finite_moment_features(spec),
                 info={"spec": spec.describe()}, spec=spec, per_point=())


def as_model(model: Model | ModelSpec | None) -> Model:
    """What every workflow takes: a :class:`Model`, a Gaussian :class:`ModelSpec` (-> :func:`linear`), or None
    (the tutorial's model)."""
    if model is None:
        return linear(tutorial_spec())
    if isinstance(model, ModelSpec):
        return linear(model)
    if not isinstance(model, Model):
        raise BayeslinError(f"model must be a bayeslin_jax Model or ModelSpec, got {type(model).__name__}")
    return model


def _parse_nu(nu) -> float | None:
    if nu is None or (isinstance(nu, str) and nu.lower() in ("learn", "learned")):
        return None
    try:
        value = float(nu)
    except (TypeError, ValueError):
        raise BayeslinError(f"Student-t nu must be a positive number or 'learn', got {nu!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise BayeslinError(f"Student-t nu must be a positive number or 'learn', got {nu!r}")
    return value


def student_t(spec: ModelSpec, nu: float | str | None = "learn") -> Model:
    """Robust regression with the spec's basis, weight prior and noise and Student-t observations.

    ``nu``: fixed degrees of freedom, or ``"learn"``/None for ``nu ~ Gamma(2, 0.1)``.
    """
    value = _parse_nu(nu)
    params: dict[str, Any] = {"prior": spec.prior, "noise": spec.noise}
    if value is not None:
        params["nu"] = jnp.asarray(value, dtype=jnp.float32)
    sites = ("w",) + (() if spec.known_sigma else ("sigma",)) + (("nu",) if value is None else ())
    return Model(models.student_t_regression, "student_t", params, (), spec.basis, feature_site="w",
                 quantities=sites, dap_quantities=finite_moment_features(spec),
                 info={"spec": spec.describe(), "nu": "learn" if value is None else value}, per_point=())


def horseshoe_tau_scale(expected_nonzero: float, num_coefficients: int, num_points: int) -> float:
    """Piironen & Vehtari's global scale ``tau0 = p0 / (D - p0) / sqrt(n)`` (times sigma in the model)."""
    p0 = float(expected_nonzero)
    if not (0 < p0 < num_coefficients):
        raise BayeslinError(
            f"expected number of nonzero coefficients must lie in (0, {num_coefficients}), got {expected_nonzero}"
        )
    if num_points < 1:
        raise BayeslinError(f"need at least one data point, got {num_points}")
    return p0 / (num_coefficients - p0) / math.sqrt(num_points)


def horseshoe(
    basis: Polynomial,
    noise: Noise,
    *,
    expected_nonzero: float = 2.0,
    num_points: int,
    slab_scale: float = 2.0,
    slab_df: float | None = 4.0,
    intercept_scale: float = 5.0,
    tau: float | None = None,
) -> Model:
    """Regularized-horseshoe regression on a polynomial basis (:func:`.regressions.horseshoe_regression`).


    ``expected_nonzero`` (p0) and ``num_points`` (n) set ``tau0``; ``slab_scale``, ``slab_df`` the slab
    (``slab_df=None``: fixed ``c = slab_scale``); ``tau`` fixes the global scale (conjugate checks).
    """
    if basis.dim < 2:
        raise BayeslinError("the horseshoe needs an intercept and at least one coefficient (degree >= 1)")
    for label, value in (("slab scale", slab_scale), ("intercept scale", intercept_scale)):
        if not (math.isfinite(value) and value > 0):
            raise BayeslinError(f"horseshoe {label} must be positive, got {value}")
    if slab_df is not None and not (math.isfinite(slab_df) and slab_df > 0):
        raise BayeslinError(f"horseshoe slab df must be positive, got {slab_df}")
    tau0 = horseshoe_tau_scale(expected_nonzero, basis.dim - 1, num_points)
    params: dict[str, Any] = {
        "intercept_scale": jnp.float32(intercept_scale),
        "tau_scale": jnp.float32(tau0),
        "slab_scale": jnp.float32(slab_scale),
        "noise": noise,
    }
    if tau is not None:
        params["tau"] = jnp.float32(tau)
    sites = ("w",) + (() if isinstance(noise, KnownNoise) else ("sigma",))
    info = {"expected_nonzero": float(expected_nonzero), "num_points": int(num_points), "tau0": tau0,
            "slab_scale": float(slab_scale), "slab_df": slab_df, "intercept_scale": float(intercept_scale),
            "tau": tau}
    # w_1.. have an infinite fourth prior moment (c^2 ~ InvGamma) so only the intercept's DAP is tested.
    return Model(models.horseshoe_regression, "horseshoe", params, (("slab_df", slab_df),), basis,
                 feature_site="w", quantities=sites, dap_quantities=basis.feature_names[:1], info=info, per_point=())


def glm(prior: WeightPrior, basis: Polynomial, family: str = "bernoulli") -> Model:
    """Bernoulli-logit or Poisson-log regression (:func:`bayeslin_jax.core.regressions.glm_regression`)."""
    if family not in models.GLM_FAMILIES:
        raise BayeslinError(f"unknown GLM family {family!r}: use one of {', '.join(models.GLM_FAMILIES)}")
    return Model(models.glm_regression, family, {"prior": prior}, (("family", family),), basis,
                 feature_site="w", quantities=("w",), per_point=())


__all__ = [
    "Model",
    "as_model",
    "flat_parameters",
    "glm",
    "horseshoe",
    "horseshoe_tau_scale",
    "linear",
    "student_t",
    "user_model",
]
