"""Prior and noise specifications as immutable pytrees, plus the model spec that ties them together.

Construct them with the validating factories (:func:`independent_normal`, :func:`mvn`,
:func:`known_noise`, :func:`half_normal_noise`): validation happens once here, at the
boundary, never inside jitted code. The dataclasses themselves are plain pytrees so that
prior values travel as traced arguments (a new prior value does not recompile).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro  # noqa: F401  (first: after arviz, importing numpyro.distributions alone leaves its .distribution unset)
import numpyro.distributions as dist
from jax import Array

from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.errors import BayeslinError

_pytree = partial(jax.tree_util.register_dataclass, meta_fields=[])


@partial(_pytree, data_fields=["mean", "scale"])
@dataclass(frozen=True)
class IndependentNormal:
    """w_k ~ Normal(mean_k, scale_k) independently. ``mean, scale: (d,)``."""

    mean: Array
    scale: Array

    def distribution(self) -> dist.Distribution:
        return dist.Normal(self.mean, self.scale).to_event(1)

    @property
    def cov(self) -> Array:
        """Prior covariance ``(d, d)``."""
        return jnp.diag(jnp.square(self.scale))

    @property
    def precision(self) -> Array:
        """Prior precision ``(d, d)``."""
        return jnp.diag(1.0 / jnp.square(self.scale))


@partial(_pytree, data_fields=["mean", "cov", "scale_tril"])
@dataclass(frozen=True)
class MultivariateNormal:
    """w ~ MVN(mean, cov). ``mean: (d,)``, ``cov, scale_tril: (d, d)`` (scale_tril = chol(cov))."""

    mean: Array
    cov: Array
    scale_tril: Array

    def distribution(self) -> dist.Distribution:
        return dist.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    @property
    def precision(self) -> Array:
        eye = jnp.eye(self.mean.shape[-1], dtype=self.scale_tril.dtype)
        inv_tril = jax.scipy.linalg.solve_triangular(self.scale_tril, eye, lower=True)
        return inv_tril.T @ inv_tril


@partial(_pytree, data_fields=["sigma"])
@dataclass(frozen=True)
class KnownNoise:
    """Observation noise with a known standard deviation ``sigma`` (scalar)."""

    sigma: Array


@partial(_pytree, data_fields=["scale"])
@dataclass(frozen=True)
class HalfNormalNoise:
    """Unknown noise: ``sigma ~ HalfNormal(scale)``."""

    scale: Array

    def distribution(self) -> dist.Distribution:
        return dist.HalfNormal(self.scale)


type WeightPrior = IndependentNormal | MultivariateNormal
type Noise = KnownNoise | HalfNormalNoise


def _finite_vector(name: str, value, dim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.shape != (dim,):
        raise BayeslinError(f"prior {name} must have {dim} entries (one per feature), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BayeslinError(f"prior {name} contains NaN or inf: {arr.tolist()}")
    return arr


def independent_normal(mean, scale, dim: int) -> IndependentNormal:
    """Validated independent-normal prior. ``mean``/``scale`` are scalars or ``(dim,)``."""
    mean_arr = _finite_vector("mean", mean, dim)
    scale_arr = _finite_vector("scale", scale, dim)
    if np.any(scale_arr <= 0):
        raise BayeslinError(f"prior scale must be positive, got {scale_arr.tolist()}")
    return IndependentNormal(jnp.asarray(mean_arr), jnp.asarray(scale_arr))


def mvn(mean, cov) -> MultivariateNormal:
    """Validated multivariate-normal prior; ``cov`` must be symmetric positive-definite."""
    cov_arr = np.asarray(cov, dtype=float)
    if cov_arr.ndim != 2 or cov_arr.shape[0] != cov_arr.shape[1]:
        raise BayeslinError(f"prior covariance must be a square matrix, got shape {cov_arr.shape}")
    dim = cov_arr.shape[0]
    mean_arr = _finite_vector("mean", mean, dim)
    if not np.all(np.isfinite(cov_arr)):
        raise BayeslinError("prior covariance contains NaN or inf")
    if not np.allclose(cov_arr, cov_arr.T, rtol=1e-10, atol=1e-12):
        raise BayeslinError("prior covariance is not symmetric")
    try:
        tril = np.linalg.cholesky(cov_arr)
    except np.linalg.LinAlgError:
        raise BayeslinError("prior covariance is not positive-definite") from None
    return MultivariateNormal(jnp.asarray(mean_arr), jnp.asarray(cov_arr), jnp.asarray(tril))


def correlated_normal(mean, scale, corr: float) -> MultivariateNormal:
    """Two-feature MVN prior with marginal sds ``scale`` and correlation ``corr`` (tutorial's wish)."""
    scale_arr = _finite_vector("scale", scale, 2)
    if np.any(scale_arr <= 0):
        raise BayeslinError(f"prior scale must be positive, got {scale_arr.tolist()}")
    if not -1.0 < corr < 1.0:
        raise BayeslinError(f"prior correlation must lie strictly between -1 and 1, got {corr}")
    corr_mat = np.array([[1.0, corr], [corr, 1.0]])
    return mvn(mean, corr_mat * np.outer(scale_arr, scale_arr))


def known_noise(sigma: float) -> KnownNoise:
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise BayeslinError(f"noise sigma must be positive and finite, got {sigma}")
    return KnownNoise(jnp.asarray(sigma))


def half_normal_noise(scale: float) -> HalfNormalNoise:
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise BayeslinError(f"noise prior scale must be positive and finite, got {scale}")
    return HalfNormalNoise(jnp.asarray(scale))


def _as_list(value):
    """Array -> nested list of floats with float32 noise removed (0.2, not 0.20000000298)."""
    arr = np.asarray(value, dtype=np.float64)
    return np.vectorize(lambda v: float(f"{v:.7g}"))(arr).tolist()


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a Bayesian linear regression: basis, weight prior, noise."""

    basis: Polynomial
    prior: WeightPrior
    noise: Noise

    def __post_init__(self) -> None:
        dim = self.prior.mean.shape[-1]
        if dim != self.basis.dim:
            raise BayeslinError(
                f"prior has {dim} weights but basis {self.basis.name} has {self.basis.dim} features"
            )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.basis.feature_names

    @property
    def known_sigma(self) -> bool:
        return isinstance(self.noise, KnownNoise)

    @property
    def prior_kind(self) -> str:
        return "independent" if isinstance(self.prior, IndependentNormal) else "mvn"

    def describe(self) -> dict:
        """JSON-serialisable description (for stores and result files)."""
        prior = {"kind": self.prior_kind, "mean": _as_list(self.prior.mean)}
        if isinstance(self.prior, IndependentNormal):
            prior["scale"] = _as_list(self.prior.scale)
        else:
            prior["cov"] = _as_list(self.prior.cov)
        if isinstance(self.noise, KnownNoise):
            noise = {"kind": "known", "sigma": _as_list(self.noise.sigma)}
        else:
            noise = {"kind": "half_normal", "scale": _as_list(self.noise.scale)}
        return {"basis": self.basis.name, "features": list(self.feature_names), "prior": prior, "noise": noise}


def tutorial_spec(prior: str = "independent", corr: float = -0.5, degree: int = 1) -> ModelSpec:
    """The tutorial's model: N(0, 0.2) priors, known sigma = 0.1.

    ``prior="mvn"`` gives the multivariate-normal prior the tutorial wanted, with the
    same marginal sds and correlation ``corr`` between intercept and slope (degree 1 only).
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
