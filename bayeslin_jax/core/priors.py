"""Prior and noise specifications as immutable pytrees, plus the model spec that ties them together.

Construct them with the validating factories (:func:`independent_normal`, :func:`mvn`, :func:`term_prior`,
:func:`student_t_prior`, :func:`cauchy_prior`, :func:`flat_prior`; :func:`known_noise`, :func:`half_normal_noise`,
:func:`half_cauchy_noise`, :func:`half_t_noise`, :func:`exponential_noise`, :func:`flat_noise`): validation
happens once here, at the boundary, never inside jitted code. The dataclasses themselves are plain pytrees so
that prior values travel as traced arguments (a new prior value does not recompile); what changes the program's
structure (a :class:`TermPrior`'s per-coefficient families, its intercept index) is static pytree metadata.

Weight priors:

* :class:`IndependentNormal`, :class:`MultivariateNormal`: Gaussian.
* :class:`TermPrior`: independent per-coefficient priors, each ``"normal"``, ``"student_t"`` or ``"flat"``
  (improper, density 1), optionally on the *centred intercept* (rstanarm's and Bambi's convention): with
  ``intercept = k`` and ``shift: (d,)`` (``shift[k] = 0``, ``shift[j]`` the mean of predictor column ``j``) the
  prior of coefficient ``k`` is on ``u_k = w_k + shift @ w`` (the intercept at the predictors' means) and the
  others on ``u_j = w_j``. ``u = L w`` with ``L = I + e_k shift^T`` unit-triangular, so ``log p(w) = sum_j
  log p_j(u_j)`` (Jacobian 1).

Noise priors (``sigma``): :class:`KnownNoise`, :class:`HalfNormalNoise`, :class:`HalfCauchyNoise`,
:class:`HalfStudentTNoise`, :class:`ExponentialNoise`, :class:`FlatNoise` (improper ``p(sigma) ∝ 1``).

:func:`posterior_is_proper` says whether an improper prior still gives a proper posterior on a design.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar, cast

import jax
import jax.numpy as jnp
import numpy as np
import numpyro  # noqa: F401  (first: after arviz, importing numpyro.distributions alone leaves its .distribution unset)
import numpyro.distributions as dist
from jax import Array
from numpyro.distributions import constraints

from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError

_pytree = partial(jax.tree_util.register_dataclass, meta_fields=[])

#: Scales whose square overflows float64 (or whose inverse square does) are refused at the boundary.
_MAX_SCALE = float(np.sqrt(np.finfo(np.float64).max))
_MIN_SCALE = 1.0 / _MAX_SCALE
#: Per-coefficient families of a :class:`TermPrior`.
FAMILIES = ("normal", "student_t", "flat")
_IMPROPER_WEIGHTS = "cannot simulate from an improper prior (flat weights): studies and SBC need a proper prior"
_IMPROPER_SIGMA = "cannot simulate from an improper prior (flat sigma): studies and SBC need a proper prior"


def _num(value) -> str:
    """A number for a human line: 4 significant digits, no float32 noise (0.2, 12.3, 150, 1e+03)."""
    return f"{float(value):.4g}"


@partial(_pytree, data_fields=["mean", "scale"])
@dataclass(frozen=True)
class IndependentNormal:  # numpydoc ignore=PR02
    """Independent normal weights: ``w_k ~ Normal(mean_k, scale_k)``.

    Build it with :func:`independent_normal` (which validates the values); both fields are traced pytree leaves.

    Parameters
    ----------
    mean : (d,) array
        Prior means.
    scale : (d,) array
        Prior standard deviations (positive).
    """

    mean: Array
    scale: Array

    def distribution(self) -> dist.Distribution:
        """The NumPyro distribution of ``w``.

        Returns
        -------
        numpyro.distributions.Distribution
            ``Normal(mean, scale).to_event(1)``: event shape ``(d,)``.
        """
        return dist.Normal(self.mean, self.scale).to_event(1)

    @property
    def dim(self) -> int:
        """Number of weights.

        Returns
        -------
        int
            ``d``.
        """
        return int(self.mean.shape[-1])

    @property
    def is_proper(self) -> bool:
        """Whether the prior is proper (always).

        Returns
        -------
        bool
            True.
        """
        return True

    @property
    def is_gaussian(self) -> bool:
        """Gaussian family (the exact posterior exists for known noise).

        Returns
        -------
        bool
            True.
        """
        return True

    @property
    def kind(self) -> str:
        """The prior's kind, as in :meth:`describe`.

        Returns
        -------
        str
            ``"independent"``.
        """
        return "independent"

    @property
    def cov(self) -> Array:
        """Prior covariance.

        Returns
        -------
        (d, d) array
            ``diag(scale^2)``.
        """
        return jnp.diag(jnp.square(self.scale))

    @property
    def precision(self) -> Array:
        """Prior precision.

        Returns
        -------
        (d, d) array
            ``diag(1 / scale^2)``.
        """
        return jnp.diag(1.0 / jnp.square(self.scale))

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "independent", "mean": [...], "scale": [...]}``.
        """
        return {"kind": self.kind, "mean": _as_list(self.mean), "scale": _as_list(self.scale)}

    def text(self, feature_names) -> list[str]:
        """One human line per coefficient, e.g. ``"m ~ Normal(0, 0.2)"``.

        Parameters
        ----------
        feature_names : sequence of str, length ``d``
            The coefficients' names (the basis' feature names).

        Returns
        -------
        list of str
            One line per coefficient.
        """
        return [f"{name} ~ Normal({_num(m)}, {_num(s)})"
                for name, m, s in zip(feature_names, np.asarray(self.mean), np.asarray(self.scale), strict=True)]


@partial(_pytree, data_fields=["mean", "cov", "scale_tril"])
@dataclass(frozen=True)
class MultivariateNormal:  # numpydoc ignore=PR02
    """Multivariate normal weights: ``w ~ MVN(mean, cov)``.

    Build it with :func:`mvn` or :func:`correlated_normal` (which validate ``cov`` and compute its Cholesky
    factor).

    Parameters
    ----------
    mean : (d,) array
        Prior mean.
    cov : (d, d) array
        Prior covariance (symmetric positive-definite).
    scale_tril : (d, d) array
        ``chol(cov)``, lower triangular.
    """

    mean: Array
    cov: Array
    scale_tril: Array

    def distribution(self) -> dist.Distribution:
        """The NumPyro distribution of ``w``.

        Returns
        -------
        numpyro.distributions.Distribution
            ``MultivariateNormal(mean, scale_tril=scale_tril)``: event shape ``(d,)``.
        """
        return dist.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    @property
    def dim(self) -> int:
        """Number of weights.

        Returns
        -------
        int
            ``d``.
        """
        return int(self.mean.shape[-1])

    @property
    def is_proper(self) -> bool:
        """Whether the prior is proper (always).

        Returns
        -------
        bool
            True.
        """
        return True

    @property
    def is_gaussian(self) -> bool:
        """Gaussian family (the exact posterior exists for known noise).

        Returns
        -------
        bool
            True.
        """
        return True

    @property
    def kind(self) -> str:
        """The prior's kind, as in :meth:`describe`.

        Returns
        -------
        str
            ``"mvn"``.
        """
        return "mvn"

    @property
    def precision(self) -> Array:
        """Prior precision, from the Cholesky factor.

        Returns
        -------
        (d, d) array
            ``cov^-1 = L^-T L^-1`` with ``L = scale_tril``.
        """
        eye = jnp.eye(self.mean.shape[-1], dtype=self.scale_tril.dtype)
        inv_tril = jax.scipy.linalg.solve_triangular(self.scale_tril, eye, lower=True)
        return inv_tril.T @ inv_tril

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "mvn", "mean": [...], "cov": [[...], ...]}``.
        """
        return {"kind": self.kind, "mean": _as_list(self.mean), "cov": _as_list(self.cov)}

    def text(self, feature_names) -> list[str]:
        """One line per coefficient: its marginal, ``"b ~ Normal(0, 0.2) (joint MVN)"``.

        Parameters
        ----------
        feature_names : sequence of str, length ``d``
            The coefficients' names (the basis' feature names).

        Returns
        -------
        list of str
            One line per coefficient.
        """
        sd = np.sqrt(np.diagonal(np.asarray(self.cov, dtype=np.float64)))
        return [f"{name} ~ Normal({_num(m)}, {_num(s)}) (joint MVN)"
                for name, m, s in zip(feature_names, np.asarray(self.mean), sd, strict=True)]


# ---------------------------------------------------------------------------------------------
# Per-coefficient priors: normal, Student-t, flat; optionally on the centred intercept
# ---------------------------------------------------------------------------------------------


@partial(jax.tree_util.register_dataclass, data_fields=["mean", "scale", "df", "shift"],
         meta_fields=["family", "intercept"])
@dataclass(frozen=True)
class TermPrior:  # numpydoc ignore=PR02
    """Independent per-coefficient priors on ``u = L w`` (see the module docstring).

    Build it with :func:`term_prior` (or :func:`student_t_prior`, :func:`cauchy_prior`, :func:`flat_prior`),
    which validate the values; ``family`` and ``intercept`` are static pytree metadata (they change the program),
    the arrays are traced.

    Parameters
    ----------
    mean, scale, df : (d,) array
        Location, scale and (Student-t) degrees of freedom of each coordinate ``u_j`` (placeholders, 0, 1, 1,
        where the family does not use them).
    shift : (d,) array
        ``u_k = w_k + shift @ w`` for the intercept ``k`` (``shift[k] = 0``); zeros when ``intercept`` is None.
    family : tuple of str, length ``d`` (static)
        ``"normal"``, ``"student_t"`` or ``"flat"`` per coefficient.
    intercept : int or None (static)
        Index of the coefficient whose prior is on the centred intercept; None: ``u = w``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> prior = bl.term_prior(["student_t", "normal", "flat"], 0.0, [10.0, 1.0, 1.0], df=3)
    >>> prior.family, prior.is_proper, prior.is_gaussian
    (('student_t', 'normal', 'flat'), False, False)
    >>> prior.text(["Intercept", "age", "bmi"])
    ['Intercept ~ StudentT(3, 0, 10)', 'age ~ Normal(0, 1)', 'bmi ~ Flat']
    """

    mean: Array
    scale: Array
    df: Array
    shift: Array
    family: tuple[str, ...]
    intercept: int | None = None

    @property
    def dim(self) -> int:
        """Number of weights.

        Returns
        -------
        int
            ``d = len(family)``.
        """
        return len(self.family)

    @property
    def is_proper(self) -> bool:
        """False when any coefficient is flat (improper: it cannot be simulated, it has no evidence).

        Returns
        -------
        bool
            Whether no coefficient is flat.
        """
        return "flat" not in self.family

    @property
    def is_gaussian(self) -> bool:
        """Every coefficient normal or flat: ``w | sigma, y`` is Gaussian (exact, precision form).

        Returns
        -------
        bool
            Whether no coefficient is Student-t.
        """
        return "student_t" not in self.family

    @property
    def kind(self) -> str:
        """The prior's kind, as in :meth:`describe`.

        Returns
        -------
        str
            ``"term"``.
        """
        return "term"

    def _indices(self, family: str) -> np.ndarray:
        return np.asarray([j for j, f in enumerate(self.family) if f == family], dtype=int)

    @property
    def flat_indices(self) -> np.ndarray:
        """Indices of the flat coefficients.

        Returns
        -------
        (k,) ndarray of int
            Positions ``j`` with ``family[j] == "flat"`` (empty if none).
        """
        return self._indices("flat")

    @property
    def centring(self) -> Array:
        """The centring matrix ``L`` with ``u = L w``.

        Returns
        -------
        (d, d) array
            ``I + e_k shift^T`` for the intercept ``k``; the identity without an intercept.
        """
        eye = jnp.eye(self.dim, dtype=self.shift.dtype)
        return eye if self.intercept is None else eye.at[self.intercept].add(self.shift)

    def to_centred(self, w: Array) -> Array:
        """Map weights to the prior's coordinates, ``u = L w``.

        Parameters
        ----------
        w : (..., d) array
            Weights (any leading axes).

        Returns
        -------
        (..., d) array
            ``u = L w`` (``w`` itself without an intercept).
        """
        if self.intercept is None:
            return w
        k = self.intercept
        return w.at[..., k].set(w[..., k] + jnp.einsum("...d,d->...", w, self.shift))

    def from_centred(self, u: Array) -> Array:
        """Map the prior's coordinates back to weights, ``w = L^-1 u``.

        Parameters
        ----------
        u : (..., d) array
            Centred coordinates (any leading axes).

        Returns
        -------
        (..., d) array
            ``w = L^-1 u``: ``w_k = u_k - shift @ u`` (as ``shift[k] = 0``), the other coordinates unchanged.
        """
        if self.intercept is None:
            return u
        k = self.intercept
        return u.at[..., k].set(u[..., k] - jnp.einsum("...d,d->...", u, self.shift))

    @property
    def precision_diag(self) -> Array:
        """Prior precision of ``u``, coordinate by coordinate.

        Returns
        -------
        (d,) array
            ``1 / scale^2``, 0 for flat coefficients (a Gaussian stand-in for Student-t coefficients: the same
            scale).
        """
        flat = jnp.asarray(np.asarray(self.family) == "flat")
        return jnp.where(flat, 0.0, 1.0 / jnp.square(self.scale))

    @property
    def precision(self) -> Array:
        """Prior precision of ``w``.

        Returns
        -------
        (d, d) array
            ``L^T diag(precision_diag) L`` (singular with flat coefficients).
        """
        tril = self.centring
        return tril.T @ (self.precision_diag[:, None] * tril)

    @property
    def precision_mean(self) -> Array:
        """The prior's share of the posterior's linear term, ``P0 m0``.

        Returns
        -------
        (d,) array
            ``P0 m0 = L^T diag(precision_diag) mean``.
        """
        return self.centring.T @ (self.precision_diag * self.mean)

    def gaussian_stand_in(self) -> TermPrior:
        """The same prior with every Student-t coefficient replaced by a normal of the same scale.

        Returns
        -------
        TermPrior
            Same values and centring; ``family`` with ``"student_t"`` -> ``"normal"``.
        """
        family = tuple("normal" if f == "student_t" else f for f in self.family)
        return TermPrior(self.mean, self.scale, self.df, self.shift, family, self.intercept)

    def distribution(self) -> dist.Distribution:
        """NumPyro distribution of ``w``, event shape ``(d,)`` (support: real vectors); sampling refused if improper.

        Returns
        -------
        TermDistribution
            ``log p(w) = sum_j log p_j((L w)_j)``.
        """
        return TermDistribution(self)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            Keys ``kind`` (``"term"``), ``family``, ``mean``, ``scale``, ``df``, ``intercept``, ``shift``.
        """
        return {"kind": self.kind, "family": list(self.family), "mean": _as_list(self.mean),
                "scale": _as_list(self.scale), "df": _as_list(self.df), "intercept": self.intercept,
                "shift": _as_list(self.shift)}

    def text(self, feature_names) -> list[str]:
        """One human line per coefficient.

        ``"age ~ Normal(0, 12.3)"``, ``"Intercept ~ StudentT(3, 150, 190)"``, ``"bmi ~ Flat"``; the centred
        intercept's line ends with ``"(at the predictor means)"``.

        Parameters
        ----------
        feature_names : sequence of str, length ``d``
            The coefficients' names (the basis' feature names).

        Returns
        -------
        list of str
            One line per coefficient.
        """
        lines = []
        for j, (name, family) in enumerate(zip(feature_names, self.family, strict=True)):
            m, s, df = (float(np.asarray(a)[j]) for a in (self.mean, self.scale, self.df))
            if family == "normal":
                line = f"{name} ~ Normal({_num(m)}, {_num(s)})"
            elif family == "student_t":
                line = f"{name} ~ StudentT({_num(df)}, {_num(m)}, {_num(s)})"
            else:
                line = f"{name} ~ Flat"
            lines.append(line + (" (at the predictor means)" if j == self.intercept else ""))
        return lines


class TermDistribution(dist.Distribution):
    """The NumPyro distribution of a :class:`TermPrior`'s ``w``: ``log p(w) = sum_j log p_j((L w)_j)``.

    Event shape ``(d,)``, support real vectors (so ``init_to_uniform`` and the engine's unconstrained space are the
    identity); flat coordinates add 0 to ``log_prob``. ``sample`` draws ``u`` coordinate-wise and returns
    ``L^-1 u``; it raises :class:`BayeslinError` (one line) when any coordinate is flat.

    Parameters
    ----------
    prior : TermPrior
        The per-coefficient prior.
    validate_args : bool, optional
        NumPyro's argument validation.
    """

    support = constraints.real_vector
    pytree_data_fields = ("prior",)

    def __init__(self, prior: TermPrior, *, validate_args: bool | None = None):
        self.prior = prior
        super().__init__(batch_shape=(), event_shape=(prior.dim,), validate_args=validate_args)

    def log_prob(self, value: Array) -> Array:
        """Log density of ``w`` (flat coordinates add 0).

        Parameters
        ----------
        value : (..., d) array
            Weights.

        Returns
        -------
        (...) array
            ``sum_j log p_j((L w)_j)`` over the normal and Student-t coordinates.
        """
        prior = self.prior
        u = prior.to_centred(jnp.asarray(value))
        total = jnp.zeros(jnp.shape(u)[:-1], dtype=jnp.result_type(u, prior.mean))
        normal, student = prior._indices("normal"), prior._indices("student_t")
        if normal.size:
            total = total + dist.Normal(prior.mean[normal], prior.scale[normal]).log_prob(u[..., normal]).sum(-1)
        if student.size:
            t = dist.StudentT(prior.df[student], prior.mean[student], prior.scale[student])
            total = total + t.log_prob(u[..., student]).sum(-1)
        return total

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Draw ``u`` coordinate-wise from the prior and return ``w = L^-1 u``.

        Parameters
        ----------
        key : jax.Array
            PRNG key.
        sample_shape : tuple of int, optional
            Leading shape of the draws.

        Returns
        -------
        (\\*sample_shape, d) array
            Prior draws of ``w``.

        Raises
        ------
        BayeslinError
            When any coefficient is flat (an improper prior cannot be simulated).
        """
        prior = self.prior
        if not prior.is_proper:
            raise BayeslinError(_IMPROPER_WEIGHTS)
        shape = (*tuple(sample_shape), prior.dim)
        normal_key, t_key = jax.random.split(key)
        eps = jax.random.normal(normal_key, shape, dtype=prior.mean.dtype)
        eps_t = jax.random.t(t_key, prior.df, shape, dtype=prior.mean.dtype)
        is_t = jnp.asarray(np.asarray(prior.family) == "student_t")
        return prior.from_centred(prior.mean + prior.scale * jnp.where(is_t, eps_t, eps))


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


class HalfStudentT(dist.Distribution):
    """``|t|`` for ``t ~ StudentT(df, 0, scale)``: density ``2 StudentT(x; df, 0, scale)`` on ``x > 0``.

    Parameters
    ----------
    df : float or array
        Degrees of freedom (positive).
    scale : float or array, optional
        Scale (positive; default 1).
    validate_args : bool, optional
        NumPyro's argument validation.
    """

    arg_constraints: ClassVar[dict] = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.positive
    reparametrized_params: ClassVar[list[str]] = ["scale"]

    def __init__(self, df, scale=1.0, *, validate_args: bool | None = None):
        self.df, self.scale = jnp.asarray(df), jnp.asarray(scale)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(df), jnp.shape(scale))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def log_prob(self, value: Array) -> Array:
        """Log density on ``x > 0``.

        Parameters
        ----------
        value : array
            Points ``x > 0``.

        Returns
        -------
        array
            ``log 2 + log StudentT(x; df, 0, scale)``.
        """
        return jnp.log(2.0) + dist.StudentT(self.df, 0.0, self.scale).log_prob(value)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Draw ``|t|``.

        Parameters
        ----------
        key : jax.Array
            PRNG key.
        sample_shape : tuple of int, optional
            Leading shape of the draws.

        Returns
        -------
        (\\*sample_shape, \\*batch_shape) array
            Positive draws.
        """
        return jnp.abs(dist.StudentT(self.df, 0.0, self.scale).sample(key, tuple(sample_shape) + self.batch_shape))


class FlatPositive(dist.ImproperUniform):
    """Improper ``p(sigma) ∝ 1`` on ``(0, inf)``: ``log_prob`` 0; ``sample`` refused in one line.

    Parameters
    ----------
    validate_args : bool, optional
        NumPyro's argument validation.
    """

    def __init__(self, *, validate_args: bool | None = None):
        super().__init__(constraints.positive, (), (), validate_args=validate_args)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Refuse to sample: an improper prior has no draws.

        Parameters
        ----------
        key : jax.Array
            PRNG key (unused).
        sample_shape : tuple of int, optional
            Leading shape of the draws (unused).

        Raises
        ------
        BayeslinError
            Always (studies and SBC need a proper prior on sigma).
        """
        raise BayeslinError(_IMPROPER_SIGMA)


@partial(_pytree, data_fields=["sigma"])
@dataclass(frozen=True)
class KnownNoise:  # numpydoc ignore=PR02
    """Observation noise with a known standard deviation ``sigma`` (scalar).

    Build it with :func:`known_noise` (which validates). ``is_proper`` is True.

    Parameters
    ----------
    sigma : () array
        The noise standard deviation (positive).
    """

    sigma: Array
    is_proper = True

    @property
    def reference_scale(self) -> float:
        """A typical noise sd: ``sigma`` itself.

        Returns
        -------
        float
            ``sigma``.
        """
        return float(self.sigma)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "known", "sigma": ...}``.
        """
        return {"kind": "known", "sigma": _as_list(self.sigma)}

    def text(self) -> str:
        """One human line, e.g. ``"sigma = 0.1 (known)"``.

        Returns
        -------
        str
            The line.
        """
        return f"sigma = {_num(self.sigma)} (known)"


@partial(_pytree, data_fields=["scale"])
@dataclass(frozen=True)
class HalfNormalNoise:  # numpydoc ignore=PR02
    """Unknown noise: ``sigma ~ HalfNormal(scale)``.

    Build it with :func:`half_normal_noise` (which validates). ``is_proper`` is True.

    Parameters
    ----------
    scale : () array
        The half-normal's scale (positive).
    """

    scale: Array
    is_proper = True

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of ``sigma``.

        Returns
        -------
        numpyro.distributions.Distribution
            ``HalfNormal(scale)``.
        """
        return dist.HalfNormal(self.scale)

    @property
    def reference_scale(self) -> float:
        """A typical noise sd (the plug-in fallback of the whitening): the scale.

        Returns
        -------
        float
            ``scale``.
        """
        return float(self.scale)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "half_normal", "scale": ...}``.
        """
        return {"kind": "half_normal", "scale": _as_list(self.scale)}

    def text(self) -> str:
        """One human line, e.g. ``"sigma ~ HalfNormal(1)"``.

        Returns
        -------
        str
            The line.
        """
        return f"sigma ~ HalfNormal({_num(self.scale)})"


@partial(_pytree, data_fields=["scale"])
@dataclass(frozen=True)
class HalfCauchyNoise:  # numpydoc ignore=PR02
    """Unknown noise: ``sigma ~ HalfCauchy(scale)`` (Gelman 2006).

    Build it with :func:`half_cauchy_noise` (which validates). ``is_proper`` is True.

    Parameters
    ----------
    scale : () array
        The half-Cauchy's scale (positive).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> noise = bl.half_cauchy_noise(2.5)
    >>> isinstance(noise, bl.HalfCauchyNoise), noise.text()
    (True, 'sigma ~ HalfCauchy(2.5)')
    """

    scale: Array
    is_proper = True

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of ``sigma``.

        Returns
        -------
        numpyro.distributions.Distribution
            ``HalfCauchy(scale)``.
        """
        return dist.HalfCauchy(self.scale)

    @property
    def reference_scale(self) -> float:
        """A typical noise sd (the plug-in fallback of the whitening): the scale.

        Returns
        -------
        float
            ``scale``.
        """
        return float(self.scale)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "half_cauchy", "scale": ...}``.
        """
        return {"kind": "half_cauchy", "scale": _as_list(self.scale)}

    def text(self) -> str:
        """One human line, e.g. ``"sigma ~ HalfCauchy(2.5)"``.

        Returns
        -------
        str
            The line.
        """
        return f"sigma ~ HalfCauchy({_num(self.scale)})"


@partial(_pytree, data_fields=["df", "scale"])
@dataclass(frozen=True)
class HalfStudentTNoise:  # numpydoc ignore=PR02
    """Unknown noise: ``sigma ~ HalfStudentT(df, scale)`` (rstanarm/brms' default family).

    Build it with :func:`half_t_noise` (which validates). ``is_proper`` is True.

    Parameters
    ----------
    df : () array
        Degrees of freedom (positive).
    scale : () array
        Scale (positive).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> noise = bl.half_t_noise(3, 2.5)
    >>> isinstance(noise, bl.HalfStudentTNoise), noise.text()
    (True, 'sigma ~ HalfStudentT(3, 2.5)')
    """

    df: Array
    scale: Array
    is_proper = True

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of ``sigma``.

        Returns
        -------
        HalfStudentT
            ``HalfStudentT(df, scale)``.
        """
        return HalfStudentT(self.df, self.scale)

    @property
    def reference_scale(self) -> float:
        """A typical noise sd (the plug-in fallback of the whitening): the scale.

        Returns
        -------
        float
            ``scale``.
        """
        return float(self.scale)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "half_t", "df": ..., "scale": ...}``.
        """
        return {"kind": "half_t", "df": _as_list(self.df), "scale": _as_list(self.scale)}

    def text(self) -> str:
        """One human line, e.g. ``"sigma ~ HalfStudentT(3, 2.5)"``.

        Returns
        -------
        str
            The line.
        """
        return f"sigma ~ HalfStudentT({_num(self.df)}, {_num(self.scale)})"


@partial(_pytree, data_fields=["rate"])
@dataclass(frozen=True)
class ExponentialNoise:  # numpydoc ignore=PR02
    """Unknown noise: ``sigma ~ Exponential(rate)`` (rstanarm's default, rate 1 / sd(y)).

    Build it with :func:`exponential_noise` (which validates). ``is_proper`` is True.

    Parameters
    ----------
    rate : () array
        The rate (positive; the prior mean of ``sigma`` is ``1 / rate``).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> noise = bl.exponential_noise(2.0)
    >>> isinstance(noise, bl.ExponentialNoise), noise.text(), noise.reference_scale
    (True, 'sigma ~ Exponential(2)', 0.5)
    """

    rate: Array
    is_proper = True

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of ``sigma``.

        Returns
        -------
        numpyro.distributions.Distribution
            ``Exponential(rate)``.
        """
        return dist.Exponential(self.rate)

    @property
    def reference_scale(self) -> float:
        """The prior mean ``1 / rate``.

        Returns
        -------
        float
            ``1 / rate``.
        """
        return 1.0 / float(self.rate)

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "exponential", "rate": ...}``.
        """
        return {"kind": "exponential", "rate": _as_list(self.rate)}

    def text(self) -> str:
        """One human line, e.g. ``"sigma ~ Exponential(2)"``.

        Returns
        -------
        str
            The line.
        """
        return f"sigma ~ Exponential({_num(self.rate)})"


@partial(_pytree, data_fields=[])
@dataclass(frozen=True)
class FlatNoise:
    """Unknown noise with the improper flat prior ``p(sigma) ∝ 1`` on ``(0, inf)``.

    Build it with :func:`flat_noise`. ``is_proper`` is False: such a model can be fitted (where
    :func:`posterior_is_proper` allows) but not simulated.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> noise = bl.flat_noise()
    >>> isinstance(noise, bl.FlatNoise), noise.is_proper, noise.text()
    (True, False, 'sigma ~ Flat on (0, inf) (improper)')
    """

    is_proper = False

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of ``sigma`` (improper: ``log_prob`` 0, no sampling).

        Returns
        -------
        FlatPositive
            The improper flat density on ``(0, inf)``.
        """
        return FlatPositive()

    @property
    def reference_scale(self) -> float:
        """No scale of its own: 1 (the plug-in noise comes from the data).

        Returns
        -------
        float
            1.0.
        """
        return 1.0

    def describe(self) -> dict:
        """JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "flat"}``.
        """
        return {"kind": "flat"}

    def text(self) -> str:
        """One human line: ``"sigma ~ Flat on (0, inf) (improper)"``.

        Returns
        -------
        str
            The line.
        """
        return "sigma ~ Flat on (0, inf) (improper)"


type WeightPrior = IndependentNormal | MultivariateNormal | TermPrior
type Noise = KnownNoise | HalfNormalNoise | HalfCauchyNoise | HalfStudentTNoise | ExponentialNoise | FlatNoise


def is_gaussian_prior(prior: WeightPrior) -> bool:
    """Whether ``w | sigma, y`` is Gaussian under ``prior`` (normal or flat coefficients).

    Then the exact posterior of :mod:`bayeslin_jax.core.exact` exists for it (with known noise).

    Parameters
    ----------
    prior : WeightPrior
        A weight prior (anything without an ``is_gaussian`` attribute counts as not Gaussian).

    Returns
    -------
    bool
        True for the normal priors and a :class:`TermPrior` of normal and flat coefficients.
    """
    return bool(getattr(prior, "is_gaussian", False))


# ---------------------------------------------------------------------------------------------
# Validating factories
# ---------------------------------------------------------------------------------------------


def _real(name: str, value) -> np.ndarray:
    """``value`` as a float array; a string, None or complex value is one line naming ``name``."""
    if np.iscomplexobj(value):
        raise BayeslinError(f"{name} must be real numbers, got complex values")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise BayeslinError(f"{name} must be a number or an array of numbers, got {value!r}") from None


def _finite_vector(name: str, value, dim: int) -> np.ndarray:
    arr = _real(f"prior {name}", value)
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.shape != (dim,):
        raise BayeslinError(f"prior {name} must have {dim} entries (one per feature), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BayeslinError(f"prior {name} contains NaN or inf: {arr.tolist()}")
    return arr


def _check_scale(label: str, values) -> None:
    """Positive scales whose square (and inverse square) fit float64, and that fit JAX's working dtype."""
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if np.any(arr <= 0):
        raise BayeslinError(f"{label} must be positive, got {arr.tolist()}")
    big, small = arr[arr > _MAX_SCALE], arr[arr < _MIN_SCALE]
    if big.size:
        raise BayeslinError(f"{label} {big[0]:g} is too large (its square overflows float64): use a flat prior "
                            "for an unbounded one")
    if small.size:
        raise BayeslinError(f"{label} {small[0]:g} is too small (its inverse square overflows float64)")
    dtype = jnp.zeros(()).dtype
    if dtype != np.float64:
        info = np.finfo(dtype)
        bad = arr[(arr > info.max) | (arr < info.tiny)]
        if bad.size:
            raise BayeslinError(f"{label} {bad[0]:g} does not fit {np.dtype(dtype).name}: enable float64 "
                                "(jax_enable_x64) or rescale the data")


def independent_normal(mean, scale, dim: int) -> IndependentNormal:
    """Validated independent-normal prior ``w_k ~ Normal(mean_k, scale_k)``.

    Parameters
    ----------
    mean : float or (dim,) array_like
        Prior means (a scalar is used for every coefficient).
    scale : float or (dim,) array_like
        Prior standard deviations (positive).
    dim : int
        Number of coefficients ``d`` (the basis' ``dim``).

    Returns
    -------
    IndependentNormal
        The prior, with ``(dim,)`` arrays.

    Raises
    ------
    BayeslinError
        One line: a wrong length, NaN/inf, or a non-positive or absurd (overflowing) scale.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> prior = bl.independent_normal(0.0, [1.0, 0.5], 2)
    >>> prior.text(["b", "m"])
    ['b ~ Normal(0, 1)', 'm ~ Normal(0, 0.5)']
    """
    mean_arr = _finite_vector("mean", mean, dim)
    scale_arr = _finite_vector("scale", scale, dim)
    _check_scale("prior scale", scale_arr)
    return IndependentNormal(jnp.asarray(mean_arr), jnp.asarray(scale_arr))


def mvn(mean, cov) -> MultivariateNormal:
    """Validated multivariate-normal prior ``w ~ MVN(mean, cov)``.

    Parameters
    ----------
    mean : float or (d,) array_like
        Prior mean (a scalar is used for every coefficient).
    cov : (d, d) array_like
        Prior covariance; must be symmetric positive-definite.

    Returns
    -------
    MultivariateNormal
        The prior, with its Cholesky factor ``scale_tril``.

    Raises
    ------
    BayeslinError
        One line: not square, NaN/inf, not symmetric, not positive-definite, or absurd (overflowing) scales.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> prior = bl.mvn([0.0, 1.0], [[1.0, 0.5], [0.5, 2.0]])
    >>> prior.text(["b", "m"])
    ['b ~ Normal(0, 1) (joint MVN)', 'm ~ Normal(1, 1.414) (joint MVN)']
    """
    cov_arr = _real("prior covariance", cov)
    if cov_arr.ndim != 2 or cov_arr.shape[0] != cov_arr.shape[1]:
        raise BayeslinError(f"prior covariance must be a square matrix, got shape {cov_arr.shape}")
    dim = cov_arr.shape[0]
    mean_arr = _finite_vector("mean", mean, dim)
    if not np.all(np.isfinite(cov_arr)):
        raise BayeslinError("prior covariance contains NaN or inf")
    if not np.allclose(cov_arr, cov_arr.T, rtol=1e-10, atol=1e-12):
        raise BayeslinError("prior covariance is not symmetric")
    diag = np.diagonal(cov_arr)
    if np.all(diag > 0):
        _check_scale("prior scale", np.sqrt(diag))
    try:
        tril = np.linalg.cholesky(cov_arr)
    except np.linalg.LinAlgError:
        raise BayeslinError("prior covariance is not positive-definite") from None
    return MultivariateNormal(jnp.asarray(mean_arr), jnp.asarray(cov_arr), jnp.asarray(tril))


def correlated_normal(mean, scale, corr: float) -> MultivariateNormal:
    """Two-feature MVN prior with marginal sds ``scale`` and correlation ``corr`` (tutorial's wish).

    Parameters
    ----------
    mean : float or (2,) array_like
        Prior mean.
    scale : float or (2,) array_like
        Marginal prior standard deviations (positive).
    corr : float
        Correlation between the two coefficients, strictly between -1 and 1.

    Returns
    -------
    MultivariateNormal
        ``cov = [[s0^2, corr s0 s1], [corr s0 s1, s1^2]]``.

    Raises
    ------
    BayeslinError
        One line: a non-positive scale or ``|corr| >= 1``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> prior = bl.correlated_normal(0.0, 0.2, -0.5)
    >>> np.round(np.asarray(prior.cov), 3).tolist()
    [[0.04, -0.02], [-0.02, 0.04]]
    """
    scale_arr = _finite_vector("scale", scale, 2)
    if np.any(scale_arr <= 0):
        raise BayeslinError(f"prior scale must be positive, got {scale_arr.tolist()}")
    if not -1.0 < corr < 1.0:
        raise BayeslinError(f"prior correlation must lie strictly between -1 and 1, got {corr}")
    corr_mat = np.array([[1.0, corr], [corr, 1.0]])
    return mvn(mean, corr_mat * np.outer(scale_arr, scale_arr))


def term_prior(family, mean=0.0, scale=1.0, df=None, *, intercept: int | None = None, shift=None) -> WeightPrior:
    """Validated per-coefficient prior (the general factory behind :func:`student_t_prior`, :func:`flat_prior`, ...).

    Parameters
    ----------
    family : str or sequence of str, length ``d``
        ``"normal"``, ``"student_t"`` or ``"flat"``, one per coefficient (a single string with ``len(mean)`` or
        ``len(scale)`` or ``len(shift)`` giving ``d``).
    mean, scale : float or array_like, shape ``(d,)``
        Location and scale of each coefficient's prior (ignored for flat ones).
    df : float or array_like, shape ``(d,)``, optional
        Degrees of freedom of the Student-t coefficients (required if there are any).
    intercept : int, optional
        Index of the coefficient whose prior is on the centred intercept ``u_k = w_k + shift @ w``.
    shift : array_like, shape ``(d,)``, optional
        With ``intercept``: the predictor means (``shift[intercept]`` must be 0).

    Returns
    -------
    WeightPrior
        :class:`IndependentNormal` when every family is normal and there is no shift; the equivalent
        :class:`MultivariateNormal` (``w = L^-1 u``, ``cov = L^-1 diag(scale^2) L^-T``) when every family is normal
        with a shift; else a :class:`TermPrior`.

    Raises
    ------
    BayeslinError
        One line: unknown family, wrong length, NaN/inf, non-positive or absurd scale/df, a bad intercept index.

    Examples
    --------
    A Student-t prior on the centred intercept (the predictor ``x`` has mean 2) and a normal slope:

    >>> import bayeslin_jax as bl
    >>> prior = bl.term_prior(["student_t", "normal"], [100.0, 0.0], [50.0, 1.0], df=[3, 1], intercept=0,
    ...                       shift=[0.0, 2.0])
    >>> type(prior).__name__
    'TermPrior'
    >>> prior.text(["Intercept", "x"])
    ['Intercept ~ StudentT(3, 100, 50) (at the predictor means)', 'x ~ Normal(0, 1)']

    All-normal families give the equivalent Gaussian prior:

    >>> type(bl.term_prior("normal", 0.0, [1.0, 2.0])).__name__
    'IndependentNormal'
    """
    lengths = [np.size(v) for v in (mean, scale, df, shift) if v is not None and np.ndim(v) > 0]
    if isinstance(family, str):
        dim = lengths[0] if lengths else 1
        families = (family,) * dim
    else:
        families = tuple(family)
        dim = len(families)
    if dim == 0:
        raise BayeslinError("a prior needs at least one coefficient")
    for f in families:
        if f not in FAMILIES:
            raise BayeslinError(f"unknown prior family {f!r}: use one of {', '.join(FAMILIES)}")
    flat = np.asarray(families) == "flat"
    student = np.asarray(families) == "student_t"
    mean_arr = _finite_vector("mean", mean, dim)
    scale_arr = _finite_vector("scale", scale, dim)
    _check_scale("prior scale", scale_arr[~flat])
    if df is None:
        if student.any():
            raise BayeslinError("a Student-t prior needs its degrees of freedom df")
        df_arr = np.ones(dim)
    else:
        df_arr = _finite_vector("df", df, dim)
        if np.any(df_arr[student] <= 0):
            raise BayeslinError(f"prior df must be positive, got {df_arr[student].tolist()}")
        if np.any(df_arr[student] > _MAX_SCALE):
            raise BayeslinError(f"prior df {df_arr[student].max():g} is too large: use a normal prior")
        df_arr = np.where(student, df_arr, 1.0)
    scale_arr = np.where(flat, 1.0, scale_arr)
    mean_arr = np.where(flat, 0.0, mean_arr)
    if intercept is None:
        if shift is not None and np.any(np.asarray(shift, dtype=float) != 0):
            raise BayeslinError("a prior shift needs the intercept index it applies to (intercept=...)")
        shift_arr = np.zeros(dim)
    else:
        if not isinstance(intercept, int | np.integer) or not 0 <= int(intercept) < dim:
            raise BayeslinError(f"intercept index must be an integer in [0, {dim}), got {intercept!r}")
        intercept = int(intercept)
        shift_arr = _finite_vector("shift", 0.0 if shift is None else shift, dim)
        if shift_arr[intercept] != 0:
            raise BayeslinError(f"prior shift of the intercept (entry {intercept}) must be 0, "
                                f"got {shift_arr[intercept]}")
    if not np.any(shift_arr):
        intercept = None
    if all(f == "normal" for f in families):
        if intercept is None:
            return IndependentNormal(jnp.asarray(mean_arr), jnp.asarray(scale_arr))
        inv = np.eye(dim)
        inv[intercept] -= shift_arr  # L^-1 = I - e_k shift^T
        return mvn(inv @ mean_arr, inv @ np.diag(scale_arr**2) @ inv.T)
    return TermPrior(jnp.asarray(mean_arr), jnp.asarray(scale_arr), jnp.asarray(df_arr), jnp.asarray(shift_arr),
                     families, intercept)


def student_t_prior(df, mean, scale, dim: int) -> WeightPrior:
    """Independent ``w_k ~ StudentT(df_k, mean_k, scale_k)``; scalars or ``(dim,)`` arrays.

    Parameters
    ----------
    df : float or (dim,) array_like
        Degrees of freedom (positive).
    mean : float or (dim,) array_like
        Locations.
    scale : float or (dim,) array_like
        Scales (positive).
    dim : int
        Number of coefficients ``d``.

    Returns
    -------
    WeightPrior
        A :class:`TermPrior` of Student-t coefficients (see :func:`term_prior`).

    Raises
    ------
    BayeslinError
        One line, as for :func:`term_prior`.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.student_t_prior(3, 0.0, 2.5, 2).text(["b", "m"])
    ['b ~ StudentT(3, 0, 2.5)', 'm ~ StudentT(3, 0, 2.5)']
    """
    return term_prior(("student_t",) * dim, mean, scale, df)


def cauchy_prior(mean, scale, dim: int) -> WeightPrior:
    """Independent ``w_k ~ Cauchy(mean_k, scale_k)`` (Student-t with ``df = 1``).

    Parameters
    ----------
    mean : float or (dim,) array_like
        Locations.
    scale : float or (dim,) array_like
        Scales (positive).
    dim : int
        Number of coefficients ``d``.

    Returns
    -------
    WeightPrior
        A :class:`TermPrior` of Student-t coefficients with ``df = 1``.

    Raises
    ------
    BayeslinError
        One line, as for :func:`term_prior`.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.cauchy_prior(0.0, 2.5, 2).text(["b", "m"])
    ['b ~ StudentT(1, 0, 2.5)', 'm ~ StudentT(1, 0, 2.5)']
    """
    return term_prior(("student_t",) * dim, mean, scale, 1.0)


def flat_prior(dim: int) -> TermPrior:
    """The improper flat prior ``p(w) ∝ 1`` on all ``dim`` coefficients (least squares' prior).

    Parameters
    ----------
    dim : int
        Number of coefficients ``d`` (at least 1).

    Returns
    -------
    TermPrior
        Every family ``"flat"``: improper (no simulation, no evidence) but Gaussian-family (exact posteriors).

    Raises
    ------
    BayeslinError
        For ``dim < 1``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> prior = bl.flat_prior(2)
    >>> prior.text(["b", "m"]), prior.is_proper, prior.is_gaussian
    (['b ~ Flat', 'm ~ Flat'], False, True)
    """
    if int(dim) < 1:
        raise BayeslinError(f"a prior needs at least one coefficient, got dim = {dim}")
    return cast(TermPrior, term_prior(("flat",) * int(dim), 0.0, 1.0))  # all flat: always a TermPrior


def known_noise(sigma: float) -> KnownNoise:
    """Validated known noise: ``y ~ Normal(phi w, sigma)`` with ``sigma`` fixed.

    Parameters
    ----------
    sigma : float
        The noise standard deviation (positive, finite, one number).

    Returns
    -------
    KnownNoise
        The noise model.

    Raises
    ------
    BayeslinError
        One line: not one number, not positive and finite, or absurd (overflowing).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.known_noise(0.1).text()
    'sigma = 0.1 (known)'
    """
    arr = _real("noise sigma", sigma)
    if arr.ndim:
        _not_scalar("noise sigma", sigma)
    sigma = float(arr)
    if not np.isfinite(sigma) or sigma <= 0:
        raise BayeslinError(f"noise sigma must be positive and finite, got {sigma}")
    _check_scale("noise sigma", sigma)
    return KnownNoise(jnp.asarray(sigma))


def _not_scalar(label: str, value):
    raise BayeslinError(f"{label} must be one number, got {value!r}")


def _noise_value(label: str, value) -> float:
    arr = _real(f"noise prior {label}", value)
    if arr.ndim:
        _not_scalar(f"noise prior {label}", value)
    value = float(arr)
    if not np.isfinite(value) or value <= 0:
        raise BayeslinError(f"noise prior {label} must be positive and finite, got {value}")
    _check_scale(f"noise prior {label}", value)
    return value


def half_normal_noise(scale: float) -> HalfNormalNoise:
    """Validated unknown noise ``sigma ~ HalfNormal(scale)``.

    Parameters
    ----------
    scale : float
        The half-normal's scale (positive, finite, one number).

    Returns
    -------
    HalfNormalNoise
        The noise prior.

    Raises
    ------
    BayeslinError
        One line: not one number, not positive and finite, or absurd (overflowing).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.half_normal_noise(1.0).text()
    'sigma ~ HalfNormal(1)'
    """
    return HalfNormalNoise(jnp.asarray(_noise_value("scale", scale)))


def half_cauchy_noise(scale: float) -> HalfCauchyNoise:
    """Validated ``sigma ~ HalfCauchy(scale)``.

    Parameters
    ----------
    scale : float
        The half-Cauchy's scale (positive, finite, one number).

    Returns
    -------
    HalfCauchyNoise
        The noise prior.

    Raises
    ------
    BayeslinError
        One line: not one number, not positive and finite, or absurd (overflowing).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.half_cauchy_noise(2.5).text()
    'sigma ~ HalfCauchy(2.5)'
    """
    return HalfCauchyNoise(jnp.asarray(_noise_value("scale", scale)))


def half_t_noise(df: float, scale: float) -> HalfStudentTNoise:
    """Validated ``sigma ~ HalfStudentT(df, scale)``.

    Parameters
    ----------
    df : float
        Degrees of freedom (positive, finite, one number).
    scale : float
        Scale (positive, finite, one number).

    Returns
    -------
    HalfStudentTNoise
        The noise prior.

    Raises
    ------
    BayeslinError
        One line: not one number, not positive and finite, or absurd (overflowing).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.half_t_noise(3, 2.5).text()
    'sigma ~ HalfStudentT(3, 2.5)'
    """
    return HalfStudentTNoise(jnp.asarray(_noise_value("df", df)), jnp.asarray(_noise_value("scale", scale)))


def exponential_noise(rate: float) -> ExponentialNoise:
    """Validated ``sigma ~ Exponential(rate)`` (mean ``1 / rate``).

    Parameters
    ----------
    rate : float
        The rate (positive, finite, one number).

    Returns
    -------
    ExponentialNoise
        The noise prior.

    Raises
    ------
    BayeslinError
        One line: not one number, not positive and finite, or absurd (overflowing).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.exponential_noise(2.0).text()
    'sigma ~ Exponential(2)'
    """
    return ExponentialNoise(jnp.asarray(_noise_value("rate", rate)))


def flat_noise() -> FlatNoise:
    """The improper ``p(sigma) ∝ 1`` on ``(0, inf)``.

    Returns
    -------
    FlatNoise
        The noise prior (fit only: :func:`posterior_is_proper` says when the posterior is proper).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.flat_noise().is_proper
    False
    """
    return FlatNoise()


# ---------------------------------------------------------------------------------------------
# When is the posterior of an improper prior proper?
# ---------------------------------------------------------------------------------------------


def posterior_is_proper(prior: WeightPrior, noise: Noise, phi) -> str | None:
    """Whether the posterior of the Gaussian regression ``y ~ N(phi w, sigma^2)`` is proper; None, or why not.

    Parameters
    ----------
    prior : WeightPrior
        The weight prior (:class:`TermPrior` flat coefficients are what can make the posterior improper).
    noise : Noise
        The noise model (:class:`FlatNoise` needs enough data points).
    phi : (n, d) or (..., n, d) array_like
        The design (every dataset of a batch is checked).

    Returns
    -------
    str or None
        None when the posterior is proper (always, for proper priors), else a one-line reason.

    Raises
    ------
    BayeslinError
        When ``phi`` is not a design with ``prior.dim`` columns.

    Notes
    -----
    Let ``F`` be the flat coefficients (``k = |F|``; in the centred coordinates ``u = L w``, whose design is
    ``phi L^-1``: column ``j`` is ``phi_j - shift_j phi_intercept``), the rest proper. For fixed ``sigma``,
    ``∫ N(y | phi w, sigma^2 I) du_F`` is finite iff the flat columns ``X_F`` of ``phi L^-1`` are linearly
    independent, and then equals ``(2 pi sigma^2)^{-(n - k)/2} |X_F^T X_F|^{-1/2} exp(-RSS_F / (2 sigma^2))``;
    the proper coefficients integrate against their own densities. So with known ``sigma`` or a proper prior on
    ``sigma`` the posterior is proper iff ``rank(X_F) = k`` (``n = k`` included: then ``sigma | y`` is its prior).
    A flat ``p(sigma) ∝ 1`` adds ``∫^inf p(y | sigma) d sigma`` and ``p(y | sigma) ~ sigma^{-(n - k)}`` as
    ``sigma -> inf`` (the proper coefficients' share tends to 1), which is integrable iff ``n - k > 1``: ``n >= 2``
    with proper weights, ``n > d + 1`` with all weights flat. (Near ``sigma = 0``, ``exp(-RSS / 2 sigma^2)`` makes
    it integrable unless the data are fitted exactly, a null set.)

    Examples
    --------
    Flat weights need at least as many (independent) points as coefficients:

    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> phi = bl.polynomial(3)(np.array([0.0, 0.5, 1.0]))  # n = 3 points, d = 4 features
    >>> print(bl.posterior_is_proper(bl.flat_prior(4), bl.known_noise(1.0), phi))
    flat priors on 4 coefficients need their design columns to be linearly independent, but they have rank 3 ...
    >>> print(bl.posterior_is_proper(bl.independent_normal(0.0, 1.0, 4), bl.known_noise(1.0), phi))
    None
    """
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim < 2 or phi.shape[-1] != prior.dim:
        raise BayeslinError(f"expected a design (n, {prior.dim}), got shape {phi.shape}")
    n = phi.shape[-2]
    flat = prior.flat_indices if isinstance(prior, TermPrior) else np.zeros(0, dtype=int)
    k = int(flat.size)
    if k:
        design = phi
        if isinstance(prior, TermPrior) and prior.intercept is not None:  # k > 0: always a TermPrior
            shift = np.asarray(prior.shift, dtype=np.float64)
            design = phi - phi[..., :, prior.intercept : prior.intercept + 1] * shift
        block = design[..., flat].reshape(-1, n, k)
        ranks = [int(np.linalg.matrix_rank(b)) for b in block]
        if min(ranks) < k:
            return (f"flat priors on {k} coefficients need their design columns to be linearly independent, but they "
                    f"have rank {min(ranks)} (n = {n}): the posterior is improper")
    if isinstance(noise, FlatNoise) and n <= k + 1:
        what = "proper weights" if k == 0 else f"{k} flat coefficients"
        return (f"a flat prior on sigma with {what} needs more than {k + 1} data points, got n = {n}: the posterior "
                "is improper")
    return None


def _as_list(value):
    """Array -> nested list of floats with float32 noise removed (0.2, not 0.20000000298)."""
    arr = np.asarray(value, dtype=np.float64)
    return np.vectorize(lambda v: float(f"{v:.7g}"))(arr).tolist()


@dataclass(frozen=True)
class ModelSpec:  # numpydoc ignore=PR02
    """Everything that defines a Bayesian linear regression: basis, weight prior, noise.

    A Gaussian ``ModelSpec`` is what :func:`bayeslin_jax.fit` and the workflows take (it becomes the built-in
    Gaussian :class:`~bayeslin_jax.core.model.Model`, with the exact posterior where one exists).

    Parameters
    ----------
    basis : Polynomial
        The feature map ``x -> phi`` (:func:`~bayeslin_jax.core.basis.linear`,
        :func:`~bayeslin_jax.core.basis.polynomial`, or a formula's ``Design``).
    prior : WeightPrior
        The weight prior, with ``basis.dim`` coefficients.
    noise : Noise
        The noise model (known sigma or a prior on sigma).

    Raises
    ------
    BayeslinError
        One line: a field of the wrong kind, or a prior whose length is not the basis' number of features.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> spec = bl.ModelSpec(bl.polynomial(2), bl.independent_normal(0.0, 1.0, 3), bl.half_normal_noise(1.0))
    >>> spec.text()
    ['w0 ~ Normal(0, 1)', 'w1 ~ Normal(0, 1)', 'w2 ~ Normal(0, 1)', 'sigma ~ HalfNormal(1)']
    >>> spec.known_sigma, spec.is_proper
    (False, True)
    """

    basis: Polynomial
    prior: WeightPrior
    noise: Noise

    def __post_init__(self) -> None:
        """Check the fields' kinds and that the prior has one weight per basis feature."""
        for label, value, kind in (("basis", self.basis, "a basis (bl.linear(), bl.polynomial(k), a Design)"),
                                   ("prior", self.prior, "a weight prior (bl.independent_normal, bl.mvn, ...)"),
                                   ("noise", self.noise, "a noise (bl.known_noise, bl.half_normal_noise, ...)")):
            needed = {"basis": "dim", "prior": "distribution", "noise": "describe"}[label]
            if not hasattr(value, needed):
                raise BayeslinError(f"ModelSpec {label} must be {kind}, got {type(value).__name__}")
        dim = self.prior.dim if hasattr(self.prior, "dim") else self.prior.mean.shape[-1]
        if dim != self.basis.dim:
            raise BayeslinError(
                f"prior has {dim} weights but basis {self.basis.name} has {self.basis.dim} features"
            )

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The coefficients' names (the basis' feature names).

        Returns
        -------
        tuple of str
            One name per coefficient, e.g. ``("b", "m")``.
        """
        return self.basis.feature_names

    @property
    def known_sigma(self) -> bool:
        """Whether the noise sd is known (:class:`KnownNoise`).

        Returns
        -------
        bool
            True for known noise.
        """
        return isinstance(self.noise, KnownNoise)

    @property
    def prior_kind(self) -> str:
        """``"independent"``, ``"mvn"`` or ``"term"`` (a :class:`TermPrior`).

        Returns
        -------
        str
            The weight prior's ``kind``.
        """
        return self.prior.kind

    def describe(self) -> dict:
        """JSON-serialisable description (for stores and result files).

        Returns
        -------
        dict
            Keys ``basis``, ``features``, ``prior`` and ``noise`` (the last two the parts' ``describe()``).
        """
        prior, noise = self.prior.describe(), self.noise.describe()
        return {"basis": self.basis.name, "features": list(self.feature_names), "prior": prior, "noise": noise}

    @property
    def is_proper(self) -> bool:
        """Both the weight prior and the noise prior are proper (the model can be simulated).

        Returns
        -------
        bool
            Whether both priors are proper.
        """
        return bool(self.prior.is_proper and self.noise.is_proper)

    def text(self) -> list[str]:
        """Human lines: one per coefficient, then the noise (``"sigma ~ HalfNormal(1)"``).

        Returns
        -------
        list of str
            ``d + 1`` lines.
        """
        return [*self.prior.text(self.feature_names), self.noise.text()]


def finite_moment_features(spec: ModelSpec) -> tuple[str, ...] | None:
    """The weights with a finite fourth prior moment (SBC's data-averaged-posterior tests need it); None: all.

    A Student-t coefficient with ``df <= 4`` (Cauchy included) has none, and the centred intercept's ``w_k =
    u_k - shift @ u`` inherits the tails of every coefficient it is shifted by.

    Parameters
    ----------
    spec : ModelSpec
        The model.

    Returns
    -------
    tuple of str or None
        The names of the features with a finite fourth prior moment; None when every feature has one (a
        Gaussian prior).
    """
    prior = spec.prior
    if not isinstance(prior, TermPrior):
        return None
    df, shift = np.asarray(prior.df, dtype=float), np.asarray(prior.shift, dtype=float)
    light = np.asarray([f == "normal" or (f == "student_t" and d > 4) for f, d in zip(prior.family, df, strict=True)])
    finite = light.copy()
    if prior.intercept is not None:
        finite[prior.intercept] = light[prior.intercept] and bool(np.all(light[shift != 0]))
    return tuple(name for name, ok in zip(spec.feature_names, finite, strict=True) if ok)


def tutorial_spec(prior: str = "independent", corr: float = -0.5, degree: int = 1) -> ModelSpec:
    """The tutorial's model: N(0, 0.2) priors, known sigma = 0.1.

    ``prior="mvn"`` gives the multivariate-normal prior the tutorial wanted, with the
    same marginal sds and correlation ``corr`` between intercept and slope (degree 1 only).

    Parameters
    ----------
    prior : {"independent", "mvn"}, optional
        Independent ``N(0, 0.2)`` weights, or the correlated MVN prior (degree 1 only).
    corr : float, optional
        The MVN prior's correlation between intercept and slope.
    degree : int, optional
        Polynomial degree of the basis (1: the tutorial's straight line, features ``b`` and ``m``).

    Returns
    -------
    ModelSpec
        Basis ``polynomial(degree)``, the chosen prior, ``known_noise(0.1)``.

    Raises
    ------
    BayeslinError
        An unknown ``prior``, or ``prior="mvn"`` with ``degree != 1``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> bl.tutorial_spec().text()
    ['b ~ Normal(0, 0.2)', 'm ~ Normal(0, 0.2)', 'sigma = 0.1 (known)']
    >>> bl.tutorial_spec("mvn").text()[0]
    'b ~ Normal(0, 0.2) (joint MVN)'
    """
    basis = Polynomial(degree)
    if prior == "independent":
        weight_prior: WeightPrior = independent_normal(0.0, 0.2, basis.dim)
    elif prior == "mvn":
        if degree != 1:
            raise BayeslinError("tutorial_spec(prior='mvn') is defined for the linear basis only")
        weight_prior = correlated_normal(0.0, 0.2, corr)
    else:
        raise BayeslinError(f"unknown prior kind {prior!r}: use 'independent' or 'mvn'")
    return ModelSpec(basis, weight_prior, known_noise(0.1))
