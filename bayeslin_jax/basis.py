"""Feature maps x -> phi with feature names.

A basis is a small frozen dataclass; ``basis(x)`` maps ``x: (..., n)`` to ``phi: (..., n, d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from jax import Array

from bayeslin_jax.errors import BayeslinError


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
