"""A general model description the batched engine can run: any NumPyro model of one dataset.

**The user-model contract.** A model is a NumPyro function of one dataset, ``fn(x, y=None, **kwargs)``:

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
from typing import Any, cast

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
class Model:  # numpydoc ignore=PR02
    """A NumPyro model of one dataset plus its arguments (see the module docstring for the contract).

    Build one with :func:`user_model` (a user's function) or a built-in (:func:`linear`, :func:`student_t`,
    :func:`horseshoe`, :func:`glm`); :func:`bayeslin_jax.fit` and the workflows take it.

    Parameters
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

    Raises
    ------
    BayeslinError
        One line: ``fn`` not callable, a static argument that is not hashable, a declared per-point argument that
        is not an array argument, or an argument given twice (or named ``x``/``y``).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> from bayeslin_jax.core.model import linear
    >>> model = linear(bl.tutorial_spec())  # the built-in Gaussian regression
    >>> model.name, model.feature_names, model.quantities, model.has_exact
    ('linear', ('b', 'm'), ('w',), True)
    >>> x = np.linspace(-1.0, 1.0, 11)
    >>> post = model.exact(x, 2.0 + 0.3 * x)  # exact posterior of the weights, float64
    >>> np.round(post.mean, 3).tolist()
    [1.956, 0.284]
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
        """Check the function, the static arguments' hashability and the argument names."""
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

        Parameters
        ----------
        num_points : int
            Data points per dataset.

        Returns
        -------
        tuple of str
            The declared ``per_point`` arguments, or (``per_point`` None) every traced argument whose leading
            axis has length ``num_points``, sorted.

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
        """The data points per dataset its declared per-point arguments fix (None if it declares none).

        Returns
        -------
        int or None
            The common leading length of the declared per-point arguments; None without any (or if they differ).
        """
        lengths = {_leading_length(self.params[name]) for name in self.per_point or ()}
        return lengths.pop() if len(lengths) == 1 else None

    def params_at(self, rows, num_points: int) -> dict:
        """The traced arguments for the data points ``rows`` (index array or slice) of ``num_points`` points.

        Parameters
        ----------
        rows : array of int or slice
            The data points to keep.
        num_points : int
            Data points per dataset (which arguments are per-point: :meth:`point_arguments`).

        Returns
        -------
        dict
            ``params`` with every per-point argument sliced to ``rows`` (the others as they are).

        Raises
        ------
        BayeslinError
            As :meth:`point_arguments`.
        """
        sliced = self.point_arguments(num_points)
        return {k: jax.tree.map(lambda a: a[rows], v) if k in sliced else v for k, v in self.params.items()}

    @property
    def bound(self) -> Callable[..., None]:
        """``fn`` with the static arguments bound: ``bound(x, y=None, **params)``.

        Returns
        -------
        callable
            ``functools.partial(fn, **static)``, or ``fn`` itself without static arguments.
        """
        return partial(self.fn, **dict(self.static)) if self.static else self.fn

    def design(self, x) -> Array:
        """Raw inputs ``x: (..., n)`` -> the model's ``x`` (``basis(x)`` if a basis is set).

        Parameters
        ----------
        x : (..., n) array_like
            Raw inputs.

        Returns
        -------
        array
            ``basis(x)``: ``(..., n, d)``; or ``x`` as a JAX array without a basis.
        """
        x = jnp.asarray(x)
        return x if self.basis is None else self.basis(x)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The basis' feature names.

        Returns
        -------
        tuple of str
            One per feature; empty without a basis.
        """
        return self.basis.feature_names if self.basis is not None else ()

    @property
    def has_exact(self) -> bool:
        """True when :meth:`exact` gives the posterior.

        That is the Gaussian regression with known noise and a Gaussian-family weight prior (normal, or a
        :class:`~bayeslin_jax.core.priors.TermPrior` of normal and flat coefficients:
        :func:`~bayeslin_jax.core.priors.is_gaussian_prior`).

        Returns
        -------
        bool
            Whether the exact posterior exists.
        """
        return self.spec is not None and self.spec.known_sigma and is_gaussian_prior(self.spec.prior)

    def exact(self, x, y) -> GaussianPosterior | None:
        """The exact posterior of the weights given raw ``x, y: ([B,] n)``, in float64; None where there is none.

        Only the conjugate Gaussian regression (:func:`linear` with known noise) has one: ``mean: ([B,] d)``,
        ``cov: ([B,] d, d)`` (:func:`bayeslin_jax.core.exact.posterior64`, stable on ill-conditioned designs).

        Parameters
        ----------
        x : ([B,] n) array_like
            Raw inputs (one dataset, or a batch of ``B``).
        y : ([B,] n) array_like
            Observations.

        Returns
        -------
        GaussianPosterior or None
            The posterior (NumPy float64), or None where :attr:`has_exact` is False.

        Raises
        ------
        BayeslinError
            Flat coefficients that the design does not identify (an improper posterior).
        """
        if not self.has_exact:
            return None
        spec = cast(ModelSpec, self.spec)  # has_exact: a spec with known noise
        phi = exact.design_matrix64(spec.basis, x)
        return exact.posterior64(phi, np.asarray(y, dtype=np.float64), spec.prior, cast(KnownNoise, spec.noise).sigma)

    def describe(self) -> dict:
        """JSON-serialisable identity (store metadata, result files).

        Returns
        -------
        dict
            Keys ``model``, ``function``, ``basis``, ``obs``, ``params``, ``static``; ``per_point`` and ``info``
            when set.
        """
        fn = getattr(self.fn, "func", self.fn)
        out: dict[str, Any] = {
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

    Parameters
    ----------
    values : dict of str to array
        ``{site: (*lead, *site_shape)}``.
    sites : tuple of str
        The sites to take, in order.
    lead_ndim : int
        Number of leading (batch, chain, draw) axes.

    Returns
    -------
    names : list of str
        ``P`` element names, e.g. ``["tau", "z[0]", "z[1]"]``.
    columns : (\\*lead, P) ndarray
        The elements side by side, float64.
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

    Parameters
    ----------
    fn : callable
        The NumPyro model of one dataset, ``fn(x, y=None, **kwargs)`` (see the module docstring's contract).
    basis : Polynomial, optional
        Maps raw ``x: (..., n)`` to ``phi: (..., n, d)`` before ``fn``; None passes ``x`` as is.
    name : str, optional
        Short name (default: ``fn``'s ``__name__``).
    obs : str, optional
        Name of the observed site (default ``"y"``).
    feature_site : str, optional
        A site of shape ``(d,)`` indexed by the basis features.
    quantities : tuple of str, optional
        Sites whose elements SBC ranks (default: every kept site).
    dap_quantities : tuple of str, optional
        SBC quantities whose data-averaged-posterior tests join the verdict (they need finite fourth prior
        moments).
    per_point : str or tuple of str, optional
        The array arguments with one row per data point; None detects them.
    **kwargs
        The model's other arguments: arrays and NumPy scalars traced, anything else static (hashable).

    Returns
    -------
    Model
        The wrapped model.

    Raises
    ------
    BayeslinError
        One line, as :class:`Model` (e.g. an unhashable static argument).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpyro
    >>> import numpyro.distributions as dist
    >>> def line(x, y=None, scale=1.0):
    ...     w = numpyro.sample("w", dist.Normal(0.0, scale).expand([2]).to_event(1))
    ...     with numpyro.plate("obs", x.shape[0]):
    ...         numpyro.sample("y", dist.Normal(x @ w, 0.5), obs=y)
    >>> model = bl.user_model(line, basis=bl.linear(), scale=2.0)
    >>> model.name, model.static, model.feature_names, model.has_exact
    ('line', (('scale', 2.0),), ('b', 'm'), False)
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
    """The package's Gaussian linear regression (:func:`bayeslin_jax.core.regressions.linear_regression`).

    Parameters
    ----------
    spec : ModelSpec
        Basis, weight prior and noise.

    Returns
    -------
    Model
        Named ``"linear"``, with ``spec`` set (the exact capability where the noise is known and the prior
        Gaussian-family).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> from bayeslin_jax.core.model import linear
    >>> model = linear(bl.tutorial_spec())
    >>> model.name, model.quantities, model.has_exact
    ('linear', ('w',), True)
    """
    quantities = ("w",) if spec.known_sigma else ("w", "sigma")
    return Model(models.linear_regression, "linear", {"prior": spec.prior, "noise": spec.noise}, (), spec.basis,
                 feature_site="w", quantities=quantities, dap_quantities=finite_moment_features(spec),
                 info={"spec": spec.describe()}, spec=spec, per_point=())


def as_model(model: Model | ModelSpec | None) -> Model:
    """What every workflow takes: a :class:`Model`, a Gaussian :class:`ModelSpec`, or None.

    Parameters
    ----------
    model : Model, ModelSpec or None
        A model as is; a spec becomes :func:`linear`; None is the tutorial's model.

    Returns
    -------
    Model
        The model.

    Raises
    ------
    BayeslinError
        For anything else.
    """
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

    Parameters
    ----------
    spec : ModelSpec
        Basis, weight prior and noise (:func:`bayeslin_jax.core.regressions.student_t_regression`).
    nu : float, "learn" or None, optional
        Fixed degrees of freedom (positive), or ``"learn"``/None to learn them (default).

    Returns
    -------
    Model
        Named ``"student_t"``; SBC quantities ``w``, ``sigma`` (unknown noise) and ``nu`` (learned).

    Raises
    ------
    BayeslinError
        For a ``nu`` that is neither a positive number nor ``"learn"``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> model = bl.student_t(bl.tutorial_spec())
    >>> model.name, model.quantities, model.has_exact
    ('student_t', ('w', 'nu'), False)
    >>> bl.student_t(bl.tutorial_spec(), nu=4).info["nu"]
    4.0
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
    """Piironen & Vehtari's global scale ``tau0 = p0 / (D - p0) / sqrt(n)`` (times sigma in the model).

    Parameters
    ----------
    expected_nonzero : float
        ``p0``, the prior guess of the number of nonzero coefficients, in ``(0, D)``.
    num_coefficients : int
        ``D``, the number of shrunk coefficients (the intercept excluded).
    num_points : int
        ``n``, data points per dataset (at least 1).

    Returns
    -------
    float
        ``tau0``.

    Raises
    ------
    BayeslinError
        For ``p0`` outside ``(0, D)`` or ``n < 1``.
    """
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

    Parameters
    ----------
    basis : Polynomial
        The basis; feature 0 is the intercept (at least two features).
    noise : Noise
        The noise model.
    expected_nonzero : float, optional
        ``p0``, the prior guess of the number of nonzero coefficients (default 2).
    num_points : int
        ``n``, data points per dataset (sets ``tau0``, :func:`horseshoe_tau_scale`).
    slab_scale : float, optional
        The slab's scale (positive; default 2).
    slab_df : float or None, optional
        The slab's degrees of freedom (default 4); None fixes ``c = slab_scale``.
    intercept_scale : float, optional
        ``w_0 ~ Normal(0, intercept_scale)`` (positive; default 5).
    tau : float, optional
        A fixed global scale (None: ``tau ~ HalfCauchy(tau0 * sigma)``).

    Returns
    -------
    Model
        Named ``"horseshoe"``; SBC quantities ``w`` (and ``sigma``), data-averaged-posterior tests on the
        intercept only (the other weights have no finite fourth prior moment).

    Raises
    ------
    BayeslinError
        One line: fewer than two features, a non-positive scale or slab df, or a bad ``expected_nonzero`` or
        ``num_points``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> model = bl.horseshoe(bl.polynomial(5), bl.half_normal_noise(1.0), num_points=50)
    >>> model.name, model.quantities, model.dap_quantities
    ('horseshoe', ('w', 'sigma'), ('w0',))
    >>> round(model.info["tau0"], 4)
    0.0943
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
    """Bernoulli-logit or Poisson-log regression (:func:`bayeslin_jax.core.regressions.glm_regression`).

    Parameters
    ----------
    prior : WeightPrior
        The weight prior.
    basis : Polynomial
        The basis (linear predictor ``eta = phi @ w``).
    family : {"bernoulli", "poisson"}, optional
        The observation family (default ``"bernoulli"``).

    Returns
    -------
    Model
        Named after ``family``.

    Raises
    ------
    BayeslinError
        For an unknown family.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> model = bl.glm(bl.independent_normal(0.0, 1.0, 2), bl.linear(), "poisson")
    >>> model.name, model.static, model.quantities
    ('poisson', (('family', 'poisson'),), ('w',))
    """
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
