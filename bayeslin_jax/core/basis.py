"""Feature maps x -> phi with feature names.

A basis is a small frozen dataclass; ``basis(x)`` maps ``x: (..., n)`` to ``phi: (..., n, d)``.
:class:`Polynomial` is the monomial basis ``x^k``; :class:`OrthogonalPolynomial` spans the same polynomials with
features orthonormal on the data, which are not collinear (shrinkage priors need that).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax import Array

from bayeslin_jax.core.errors import BayeslinError


@dataclass(frozen=True)
class Polynomial:
    """Polynomial basis ``phi(x) = [1, x, x^2, ..., x^degree]``.

    Degree 1 is the tutorial's straight line; its features are named ``b`` (intercept)
    and ``m`` (slope). Higher degrees name the features ``w0 .. w{degree}``.
    """

    degree: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.degree, int) or self.degree < 0:
            raise BayeslinError(f"polynomial degree must be a non-negative integer, got {self.degree!r}")

    @property
    def dim(self) -> int:
        """Number of features d."""
        return self.degree + 1

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.degree == 1:
            return ("b", "m")
        return tuple(f"w{k}" for k in range(self.dim))

    @property
    def name(self) -> str:
        return "linear" if self.degree == 1 else f"poly{self.degree}"

    def __call__(self, x: Array) -> Array:
        """``x: (..., n)`` -> ``phi: (..., n, d)``."""
        x = jnp.asarray(x)
        return x[..., None] ** jnp.arange(self.dim, dtype=x.dtype)


@dataclass(frozen=True)
class OrthogonalPolynomial:
    """Polynomials orthonormal on a set of points (R's ``poly(x, degree)``, not ``raw=True``).

    ``phi_0 = 1`` and ``norm_{k+1} phi_{k+1}(x) = (x - alpha_k) phi_k(x) - norm_k phi_{k-1}(x)`` (``norm_0 = 0``),
    the three-term recurrence fitted by :meth:`fit` (Stieltjes' procedure) so that on the fitting points
    ``Phi^T Phi = n I``: every feature has mean square 1 and features ``1..degree`` are centred and uncorrelated.
    The same function space as ``Polynomial(degree)``; a polynomial of degree ``q`` has exactly ``q + 1``
    nonzero coefficients, on any design, where the monomials ``x^k`` on ``[-1, 1]`` are nearly collinear
    (corr(x^3, x^5) = 0.98). Use ``fit`` on the training inputs, then call on any ``x`` (e.g. a plot grid).
    Features ``Q0 .. Q{degree}``.
    """

    alpha: tuple[float, ...]
    norm: tuple[float, ...]

    @classmethod
    def fit(cls, x, degree: int) -> OrthogonalPolynomial:
        """Recurrence for the points ``x: (n,)``; needs at least ``degree + 1`` distinct points."""
        if not isinstance(degree, int) or degree < 0:
            raise BayeslinError(f"polynomial degree must be a non-negative integer, got {degree!r}")
        x = np.asarray(x, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)) or np.unique(x).size < degree + 1:
            raise BayeslinError(f"orthogonal polynomials of degree {degree} need {degree + 1} distinct finite points")
        alpha, norm = [], []
        prev, cur = np.zeros_like(x), np.ones_like(x)
        for k in range(degree):
            alpha.append(float(np.mean(x * cur**2)))
            step = (x - alpha[-1]) * cur - (norm[-1] if k else 0.0) * prev
            norm.append(float(np.sqrt(np.mean(step**2))))
            prev, cur = cur, step / norm[-1]
        return cls(tuple(alpha), tuple(norm))

    @property
    def degree(self) -> int:
        return len(self.alpha)

    @property
    def dim(self) -> int:
        """Number of features d."""
        return self.degree + 1

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"Q{k}" for k in range(self.dim))

    @property
    def name(self) -> str:
        return f"orthopoly{self.degree}"

    def __call__(self, x: Array) -> Array:
        """``x: (..., n)`` -> ``phi: (..., n, d)``."""
        x = jnp.asarray(x)
        prev, cur = jnp.zeros_like(x), jnp.ones_like(x)
        columns = [cur]
        for k, (a, scale) in enumerate(zip(self.alpha, self.norm, strict=True)):
            prev, cur = cur, ((x - a) * cur - (self.norm[k - 1] if k else 0.0) * prev) / scale
            columns.append(cur)
        return jnp.stack(columns, axis=-1)


def linear() -> Polynomial:
    """The tutorial's basis: intercept ``b`` and slope ``m``."""
    return Polynomial(1)


def polynomial(degree: int) -> Polynomial:
    """Polynomial basis of the given degree (degree 1 is :func:`linear`)."""
    return Polynomial(degree)


def parse_basis(text: str) -> Polynomial:
    """Parse ``"linear"`` or ``"poly<k>"`` / ``"polynomial:<k>"`` (as used by the CLI)."""
    text = text.strip().lower()
    if text == "linear":
        return linear()
    for prefix in ("polynomial:", "poly:", "poly"):
        if text.startswith(prefix):
            digits = text[len(prefix):]
            if digits.isdigit():
                return polynomial(int(digits))
    raise BayeslinError(f"unknown basis {text!r}: use 'linear' or 'poly<degree>' (e.g. poly5)")
