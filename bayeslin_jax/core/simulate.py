"""Simulated datasets, batched and keyed by global dataset index.

Dataset ``i`` depends only on ``(seed, i)``: simulating indices ``[0..999]`` in one batch or
in ten chunks gives bit-identical arrays on one machine. The datasets are drawn one at a time by one
compiled per-dataset program (:func:`bayeslin_jax.core.batching.map_datasets`), so no rounding depends on
the batch size; across CPUs (vector ISAs) the floats may differ in the last bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpyro.infer import Predictive

from bayeslin_jax.core import keys as keyring
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.batching import map_datasets
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import Model
from bayeslin_jax.core.priors import KnownNoise, ModelSpec, Noise, WeightPrior

TUTORIAL_N = 11
TUTORIAL_INTERCEPT = 2.0
TUTORIAL_SLOPE = 0.3
TUTORIAL_SIGMA = 0.1
#: The sibling post on polynomial basis functions: ``y = 0.5 + 3x - 2x^2 + N(0, 0.4^2)``, half the points
#: with ``x ~ U(-2, -1)`` and half with ``x ~ U(2, 3)`` (20 points there).
BASIS_POST_WEIGHTS = (0.5, 3.0, -2.0)
BASIS_POST_SIGMA = 0.4
BASIS_POST_CLUSTERS = ((-2.0, -1.0), (2.0, 3.0))


class SimulatedData(NamedTuple):  # numpydoc ignore=PR02
    """``x, y: (B, n)``; ``w: (B, d)`` true weights; ``sigma: (B,)`` true noise sd.

    Parameters
    ----------
    x : (B, n) array
        Inputs (a design's row indices for :class:`DesignSimulator`).
    y : (B, n) array
        Observations.
    w : (B, d) array
        True weights.
    sigma : (B,) array
        True noise sd.
    """

    x: Array
    y: Array
    w: Array
    sigma: Array


def _check_indices(indices) -> Array:
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0:
        raise BayeslinError("zero datasets: need a non-empty 1-D array of dataset indices")
    return jnp.asarray(idx, dtype=jnp.uint32)


def _check_proper(parts) -> None:
    """One line if any of ``parts`` (weight priors, noise models, model arguments) is an improper prior."""
    for part in parts:
        if getattr(part, "is_proper", True) is False:
            what = "flat sigma" if hasattr(part, "reference_scale") else "flat weights"
            raise BayeslinError(f"cannot simulate from an improper prior ({what}): studies and SBC need a proper prior")


def _check_points(num_points: int, needed: int = 1) -> None:
    if num_points < needed:
        raise BayeslinError(f"need at least {needed} data points per dataset, got {num_points}")


@partial(jax.jit, static_argnames=("num_points", "intercept", "slope", "sigma"))
def _tutorial_xy(keys: Array, *, num_points: int, intercept: float, slope: float, sigma: float) -> tuple[Array, Array]:
    """``x, y: (B, n)`` of :func:`tutorial_data` (compiled once per setting: a study calls it once per chunk)."""

    def one(key):
        x_key, noise_key = jax.random.split(key)
        x = jax.random.uniform(x_key, (num_points,), minval=-1.0, maxval=1.0)
        y = slope * x + intercept + sigma * jax.random.normal(noise_key, (num_points,))
        return x, y

    return map_datasets(one, keys)


def tutorial_data(
    seed: int,
    indices,
    num_points: int = TUTORIAL_N,
    intercept: float = TUTORIAL_INTERCEPT,
    slope: float = TUTORIAL_SLOPE,
    sigma: float = TUTORIAL_SIGMA,
) -> SimulatedData:
    """The tutorial's generator: ``x ~ U(-1, 1)``, ``y = slope x + intercept + N(0, sigma)``.

    ``indices: (B,)`` global dataset indices. Returns ``w = [intercept, slope]`` per dataset.

    Parameters
    ----------
    seed : int
        The run's seed.
    indices : (B,) array_like of int
        Global dataset indices (dataset ``i`` depends only on ``(seed, i)``).
    num_points : int, optional
        Points per dataset (default 11).
    intercept, slope : float, optional
        The true line (default 2 and 0.3).
    sigma : float, optional
        The true noise sd (positive; default 0.1).

    Returns
    -------
    SimulatedData
        ``x, y: (B, num_points)``, ``w: (B, 2)``, ``sigma: (B,)``.

    Raises
    ------
    BayeslinError
        No indices, no points, or a non-positive ``sigma``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayeslin_jax.core import simulate
    >>> data = simulate.tutorial_data(0, np.arange(3))
    >>> data.x.shape, data.w.shape, data.sigma.shape
    ((3, 11), (3, 2), (3,))
    """
    idx = _check_indices(indices)
    _check_points(num_points)
    if not sigma > 0:
        raise BayeslinError(f"noise sigma must be positive, got {sigma}")

    x, y = _tutorial_xy(keyring.dataset_keys(seed, keyring.SIMULATE, idx), num_points=num_points,
                        intercept=float(intercept), slope=float(slope), sigma=float(sigma))
    batch = idx.shape[0]
    w = jnp.broadcast_to(jnp.asarray([intercept, slope], dtype=x.dtype), (batch, 2))
    return SimulatedData(x, y, w, jnp.full((batch,), sigma, dtype=x.dtype))


def basis_post_data(seed: int, indices, num_points: int = 20) -> SimulatedData:
    """The sibling post's quadratic: ``y = 0.5 + 3x - 2x^2 + N(0, 0.4^2)`` on two clusters of ``x``.

    The first ``num_points // 2`` points have ``x ~ U(-2, -1)``, the rest ``x ~ U(2, 3)``. ``indices: (B,)``
    global dataset indices. Returns the monomial weights ``w = [0.5, 3, -2]`` and ``sigma = 0.4`` per dataset.

    Parameters
    ----------
    seed : int
        The run's seed.
    indices : (B,) array_like of int
        Global dataset indices.
    num_points : int, optional
        Points per dataset (at least 2; default 20).

    Returns
    -------
    SimulatedData
        ``x, y: (B, num_points)``, ``w: (B, 3)``, ``sigma: (B,)``.

    Raises
    ------
    BayeslinError
        No indices, or fewer than 2 points.
    """
    idx = _check_indices(indices)
    _check_points(num_points, needed=2)
    (low_a, high_a), (low_b, high_b) = BASIS_POST_CLUSTERS
    left = jnp.arange(num_points) < num_points // 2

    def one(key):  # numpydoc ignore=GL08
        x_key, noise_key = jax.random.split(key)
        u = jax.random.uniform(x_key, (num_points,))
        x = jnp.where(left, low_a + (high_a - low_a) * u, low_b + (high_b - low_b) * u)
        y = Polynomial(2)(x) @ jnp.asarray(BASIS_POST_WEIGHTS, dtype=x.dtype)
        return x, y + BASIS_POST_SIGMA * jax.random.normal(noise_key, (num_points,))

    x, y = map_datasets(one, keyring.dataset_keys(seed, keyring.SIMULATE, idx))
    batch = idx.shape[0]
    w = jnp.broadcast_to(jnp.asarray(BASIS_POST_WEIGHTS, dtype=x.dtype), (batch, 3))
    return SimulatedData(x, y, w, jnp.full((batch,), BASIS_POST_SIGMA, dtype=x.dtype))


def prior_data(
    seed: int, indices, spec: ModelSpec, num_points: int = TUTORIAL_N, x_scale: float = 1.0
) -> SimulatedData:
    """Draw ``w`` (and ``sigma`` if unknown) from the prior, ``x ~ U(-x_scale, x_scale)``, then ``y``.

    These are the draws simulation-based calibration needs: the truth is a prior draw.
    ``x_scale > 1`` makes polynomial features badly scaled (a hard case for samplers).
    For a fixed design basis (:class:`bayeslin_jax.workflows.design.Design`) ``x`` is its row indices
    (:class:`DesignSimulator`; ``num_points`` must equal its rows), so studies and SBC run on the user's design.

    Parameters
    ----------
    seed : int
        The run's seed.
    indices : (B,) array_like of int
        Global dataset indices (dataset ``i`` depends only on ``(seed, i)``).
    spec : ModelSpec
        The model whose prior gives the truth (must be proper).
    num_points : int, optional
        Points per dataset (default 11).
    x_scale : float, optional
        Half-width of the uniform ``x`` (positive; default 1).

    Returns
    -------
    SimulatedData
        ``x, y: (B, num_points)``, ``w: (B, d)``, ``sigma: (B,)``.

    Raises
    ------
    BayeslinError
        An improper prior, no indices or points, a non-positive ``x_scale``, or a fixed design with other
        ``num_points``/``x_scale``.
    """
    _check_proper((spec.prior, spec.noise))
    rows = getattr(spec.basis, "num_rows", None)
    if rows is not None:  # a fixed design (a workflows.design.Design): x are its rows, only w and y are drawn
        if num_points != rows or x_scale != 1.0:
            raise BayeslinError(f"the design has {rows} rows: simulate with num_points={rows} and x_scale=1")
        return DesignSimulator(cast(_FixedDesign, spec.basis))(seed, indices, spec)
    idx = _check_indices(indices)
    _check_points(num_points)
    if not x_scale > 0:
        raise BayeslinError(f"x_scale must be positive, got {x_scale}")
    keys = keyring.dataset_keys(seed, keyring.SIMULATE, idx)
    return _prior_data(keys, spec.prior, spec.noise, jnp.asarray(x_scale), basis=spec.basis, num_points=num_points)


@partial(jax.jit, static_argnames=("basis", "num_points"))
def _prior_data(
    keys: Array, prior: WeightPrior, noise: Noise, x_scale: Array, *, basis: Polynomial, num_points: int
) -> SimulatedData:
    def one(key):
        x_key, w_key, s_key, noise_key = jax.random.split(key, 4)
        x = jax.random.uniform(x_key, (num_points,), minval=-1.0, maxval=1.0) * x_scale.astype(jnp.float32)
        w = prior.distribution().sample(w_key)
        sigma = noise.sigma if isinstance(noise, KnownNoise) else noise.distribution().sample(s_key)
        y = basis(x) @ w + sigma * jax.random.normal(noise_key, (num_points,))
        return x, y, w, jnp.asarray(sigma, dtype=x.dtype)

    return SimulatedData(*map_datasets(one, keys))


# ---------------------------------------------------------------------------------------------
# One simulator interface: a callable (seed, indices, spec) -> SimulatedData, with named built-ins
# ---------------------------------------------------------------------------------------------


class Simulator(Protocol):  # numpydoc ignore=PR01
    """What studies, SBC and model comparison call to make datasets.

    ``simulator(seed, indices, spec) -> SimulatedData`` with ``indices: (B,)`` global dataset indices;
    dataset ``i`` must depend only on ``(seed, i)`` (use :func:`bayeslin_jax.core.keys.dataset_keys`).
    ``spec`` is the model being studied (a simulator may ignore it; model comparison, which has no
    single model, passes None). Any callable with this
    signature works; a ``describe() -> dict`` method, if present, goes into store metadata.
    """

    def __call__(self, seed: int, indices, spec: ModelSpec | None) -> SimulatedData:
        """Simulate the datasets ``indices``.

        Parameters
        ----------
        seed : int
            The run's seed.
        indices : (B,) array_like of int
            Global dataset indices.
        spec : ModelSpec or None
            The model being studied (None from model comparison).

        Returns
        -------
        SimulatedData
            The datasets.
        """
        ...


@dataclass(frozen=True)
class PriorSimulator:  # numpydoc ignore=PR02
    """Truth from the spec's prior (and noise model), ``x ~ U(-x_scale, x_scale)``: :func:`prior_data`.

    Parameters
    ----------
    num_points : int, optional
        Points per dataset (default 11).
    x_scale : float, optional
        Half-width of the uniform ``x`` (default 1).
    """

    num_points: int = TUTORIAL_N
    x_scale: float = 1.0

    def __call__(self, seed: int, indices, spec: ModelSpec | None) -> SimulatedData:
        """Simulate the datasets ``indices`` from ``spec``'s prior (:func:`prior_data`).

        Parameters
        ----------
        seed : int
            The run's seed.
        indices : (B,) array_like of int
            Global dataset indices.
        spec : ModelSpec
            The model (None is refused).

        Returns
        -------
        SimulatedData
            The datasets.

        Raises
        ------
        BayeslinError
            Without a spec, or as :func:`prior_data`.
        """
        if spec is None:
            raise BayeslinError("the prior simulator draws the truth from a model's prior: it needs a spec")
        return prior_data(seed, indices, spec, self.num_points, self.x_scale)

    def describe(self) -> dict:
        """JSON-ready identity (store metadata).

        Returns
        -------
        dict
            ``{"name": "prior", "num_points": ..., "x_scale": ...}``.
        """
        return {"name": "prior", "num_points": self.num_points, "x_scale": self.x_scale}


@dataclass(frozen=True)
class TutorialSimulator:  # numpydoc ignore=PR02
    """The tutorial's line ``y = slope x + intercept + N(0, sigma)``, ``x ~ U(-1, 1)``: :func:`tutorial_data`.

    Parameters
    ----------
    num_points : int, optional
        Points per dataset (default 11).
    intercept, slope : float, optional
        The true line (default 2 and 0.3).
    sigma : float, optional
        The true noise sd (default 0.1).
    """

    num_points: int = TUTORIAL_N
    intercept: float = TUTORIAL_INTERCEPT
    slope: float = TUTORIAL_SLOPE
    sigma: float = TUTORIAL_SIGMA

    def __call__(self, seed: int, indices, spec: ModelSpec | None = None) -> SimulatedData:
        """Simulate the datasets ``indices`` (:func:`tutorial_data`).

        Parameters
        ----------
        seed : int
            The run's seed.
        indices : (B,) array_like of int
            Global dataset indices.
        spec : ModelSpec, optional
            The model being studied; its basis must have two features (a straight line).

        Returns
        -------
        SimulatedData
            The datasets.

        Raises
        ------
        BayeslinError
            A spec whose basis is not a straight line, or as :func:`tutorial_data`.
        """
        if spec is not None and spec.basis.dim != 2:
            raise BayeslinError(
                f"the tutorial simulator draws a straight line; basis {spec.basis.name} has {spec.basis.dim} features"
            )
        return tutorial_data(seed, indices, self.num_points, self.intercept, self.slope, self.sigma)

    def describe(self) -> dict:
        """JSON-ready identity (store metadata).

        Returns
        -------
        dict
            ``{"name": "tutorial", ...}`` with the settings.
        """
        return {"name": "tutorial", "num_points": self.num_points, "intercept": self.intercept,
                "slope": self.slope, "sigma": self.sigma}


SIMULATORS: dict[str, Callable[..., Simulator]] = {"prior": PriorSimulator, "tutorial": TutorialSimulator}


def get_simulator(simulator: str | Simulator = "prior", **options) -> Simulator:
    """A built-in simulator by name (``"prior"``, ``"tutorial"``) with ``options``, or a callable as is.

    Parameters
    ----------
    simulator : {"prior", "tutorial"} or Simulator, optional
        A built-in's name (default ``"prior"``) or any callable :class:`Simulator`.
    **options
        The built-in's settings (e.g. ``num_points``); none with a callable.

    Returns
    -------
    Simulator
        The simulator.

    Raises
    ------
    BayeslinError
        For an unknown name, options a built-in does not take, or options given with a callable.

    Examples
    --------
    >>> from bayeslin_jax.core import simulate
    >>> simulate.get_simulator("tutorial", num_points=7).describe()["num_points"]
    7
    """
    if callable(simulator):
        if options:
            raise BayeslinError(f"simulator options {sorted(options)} need a built-in simulator name")
        return simulator
    if simulator not in SIMULATORS:
        raise BayeslinError(f"unknown simulator {simulator!r}: use one of {', '.join(SIMULATORS)} or a callable")
    try:
        return SIMULATORS[simulator](**options)
    except TypeError as err:
        raise BayeslinError(f"simulator {simulator!r}: {err}") from None


def describe_simulator(simulator: Simulator) -> dict:
    """JSON-ready identity of a simulator (store metadata): its ``describe()``, or its qualified name.

    Parameters
    ----------
    simulator : Simulator
        Any simulator (a ``functools.partial`` is named after its function).

    Returns
    -------
    dict
        ``simulator.describe()``, or ``{"name": "<module>.<qualname>"}``.
    """
    if hasattr(simulator, "describe"):
        return simulator.describe()
    func = getattr(simulator, "func", simulator)  # functools.partial
    return {"name": f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"}


class _FixedDesign(Protocol):
    """What :class:`DesignSimulator` uses of a :class:`~bayeslin_jax.workflows.design.Design`."""

    @property
    def name(self) -> str: ...

    @property
    def num_rows(self) -> int: ...

    @property
    def formula(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def __call__(self, x: Array) -> Array: ...


@dataclass(frozen=True)
class DesignSimulator:  # numpydoc ignore=PR02
    """A simulation study of the user's own design, ``x`` fixed and the truth from the spec's prior.

    ``x`` are a :class:`~bayeslin_jax.workflows.design.Design`'s rows, so ``x = 0 .. n-1`` row indices; ``w`` (and
    ``sigma`` if unknown) come from the spec's prior, ``y`` is simulated. The spec's basis must be this design (it
    maps the row indices to the design rows).

    Parameters
    ----------
    design : Design
        The fixed design (a :class:`bayeslin_jax.workflows.design.Design`).
    """

    design: _FixedDesign  # a workflows.design.Design (not imported here: formulaic stays out of the core)

    def __call__(self, seed: int, indices, spec: ModelSpec | None) -> SimulatedData:
        """Simulate the datasets ``indices`` on the design.

        Parameters
        ----------
        seed : int
            The run's seed.
        indices : (B,) array_like of int
            Global dataset indices.
        spec : ModelSpec
            The model; its basis must be this design, its priors proper.

        Returns
        -------
        SimulatedData
            ``x`` the row indices ``(B, n)``, ``y: (B, n)``, ``w: (B, d)``, ``sigma: (B,)``.

        Raises
        ------
        BayeslinError
            Without a spec, another basis, an improper prior, or no indices.
        """
        if spec is None:
            raise BayeslinError("the design simulator draws the truth from a model's prior: it needs a spec")
        if spec.basis != self.design:
            raise BayeslinError(f"the spec's basis {spec.basis.name} is not the simulator's design {self.design.name}")
        _check_proper((spec.prior, spec.noise))
        idx = _check_indices(indices)
        keys = keyring.dataset_keys(seed, keyring.SIMULATE, idx)
        rows = jnp.arange(self.design.num_rows, dtype=jnp.float32)
        return _design_data(keys, spec.prior, spec.noise, rows, basis=spec.basis)

    def describe(self) -> dict:
        """JSON-ready identity (store metadata).

        Returns
        -------
        dict
            ``{"name": "design", "formula": ..., "features": [...], "num_points": ...}``.
        """
        return {"name": "design", "formula": self.design.formula, "features": list(self.design.feature_names),
                "num_points": self.design.num_rows}


@partial(jax.jit, static_argnames="basis")
def _design_data(keys: Array, prior: WeightPrior, noise: Noise, rows: Array, *, basis) -> SimulatedData:
    phi = basis(rows)

    def one(key):
        _, w_key, s_key, noise_key = jax.random.split(key, 4)
        w = prior.distribution().sample(w_key)
        sigma = noise.sigma if isinstance(noise, KnownNoise) else noise.distribution().sample(s_key)
        y = phi @ w + sigma * jax.random.normal(noise_key, (rows.shape[0],), dtype=phi.dtype)
        return rows, y, w, jnp.asarray(sigma, dtype=phi.dtype)

    return SimulatedData(*map_datasets(one, keys))  # per-dataset program: same bits for any batch

class ModelData(NamedTuple):  # numpydoc ignore=PR02
    """Simulated datasets: ``x, y: (B, n)``; ``truth[site]: (B, *site_shape)`` for every site drawn.

    Parameters
    ----------
    x : (B, n) array
        Inputs.
    y : (B, n) array
        Observations (floats, 0/1 and counts included).
    truth : dict of str to array
        ``{site: (B, *site_shape)}``: the true value of every latent and deterministic site.
    """

    x: Array
    y: Array
    truth: dict[str, Array]


def simulate_model(seed: int, indices, model: Model, num_points: int = TUTORIAL_N, x_scale: float = 1.0) -> ModelData:
    """Prior-predictive datasets of ``model``: ``x ~ U(-x_scale, x_scale)``, then every site from the model.

    ``indices: (B,)`` global dataset indices; dataset ``i`` depends only on ``(seed, i)``.
    ``y`` is returned as floats (0/1 and counts included).

    Parameters
    ----------
    seed : int
        The run's seed.
    indices : (B,) array_like of int
        Global dataset indices.
    model : Model
        The model (its priors must be proper).
    num_points : int, optional
        Points per dataset (default 11; per-point arguments must have this many rows).
    x_scale : float, optional
        Half-width of the uniform ``x`` (positive; default 1).

    Returns
    -------
    ModelData
        ``x, y: (B, num_points)`` and the truth of every site.

    Raises
    ------
    BayeslinError
        One line: no indices or points, a non-positive ``x_scale``, per-point arguments of another length, an
        improper prior, or the model's own error on simulated data.
    """
    idx = _check_indices(indices)
    _check_points(num_points)
    if not x_scale > 0:
        raise BayeslinError(f"x_scale must be positive, got {x_scale}")
    model.point_arguments(int(num_points))  # per-point arguments must have num_points rows: one line
    _check_proper(model.params.values())
    keys = keyring.dataset_keys(seed, keyring.SIMULATE, idx)
    try:
        return _simulate(keys, model.params, jnp.asarray(x_scale, dtype=jnp.float32), model=model,
                         num_points=int(num_points))
    except (TypeError, ValueError, IndexError) as err:  # the user's code on simulated data: one line
        first = (str(err).strip().splitlines() or [""])[0]
        raise BayeslinError(f"model {model.name!r} cannot simulate {num_points} points per dataset "
                            f"({type(err).__name__}: {first})") from None


@partial(jax.jit, static_argnames=("model", "num_points"))
def _simulate(keys: Array, params: dict, x_scale: Array, *, model: Model, num_points: int) -> ModelData:
    def one(key):
        x_key, model_key = jax.random.split(key)
        x = jax.random.uniform(x_key, (num_points,), minval=-1.0, maxval=1.0) * x_scale
        draws = Predictive(model.bound, num_samples=1)(model_key, model.design(x), y=None, **params)
        draws = {name: value[0] for name, value in draws.items()}
        y = draws.pop(model.obs).astype(x.dtype)
        return x, y, draws

    return ModelData(*jax.vmap(one)(keys))


@dataclass(frozen=True)
class ModelSimulator:  # numpydoc ignore=PR02
    """Truth from ``model``'s prior (:func:`simulate_model`); the SBC/study simulator of a :class:`Model`.

    Parameters
    ----------
    model : Model
        The model.
    num_points : int, optional
        Points per dataset (default 11).
    x_scale : float, optional
        Half-width of the uniform ``x`` (default 1).
    """

    model: Model
    num_points: int = TUTORIAL_N
    x_scale: float = 1.0

    def __call__(self, seed: int, indices, spec=None) -> ModelData:
        """Simulate the datasets ``indices`` (:func:`simulate_model`).

        Parameters
        ----------
        seed : int
            The run's seed.
        indices : (B,) array_like of int
            Global dataset indices.
        spec : object, optional
            Ignored (the model is the simulator's own).

        Returns
        -------
        ModelData
            The datasets.
        """
        return simulate_model(seed, indices, self.model, self.num_points, self.x_scale)

    def describe(self) -> dict:
        """JSON-ready identity (store metadata).

        Returns
        -------
        dict
            ``{"name": "model_prior", "model": ..., "num_points": ..., "x_scale": ...}``.
        """
        return {"name": "model_prior", "model": self.model.name, "num_points": self.num_points,
                "x_scale": self.x_scale}


