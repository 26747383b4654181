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
class Polynomial:  # numpydoc ignore=PR02
    """Polynomial basis ``phi(x) = [1, x, x^2, ..., x^degree]``.

    Degree 1 is the tutorial's straight line; its features are named ``b`` (intercept)
    and ``m`` (slope). Higher degrees name the features ``w0 .. w{degree}``.

    Parameters
    ----------
    degree : int, optional
        The highest power (a non-negative integer; default 1).

    Raises
    ------
    BayeslinError
        For a negative or non-integer ``degree``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> basis = bl.polynomial(2)
    >>> basis.name, basis.dim, basis.feature_names
    ('poly2', 3, ('w0', 'w1', 'w2'))
    >>> basis(np.array([1.0, 2.0])).tolist()
    [[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]
    """

    degree: int = 1

    def __post_init__(self) -> None:
        """Check that ``degree`` is a non-negative integer."""
        if not isinstance(self.degree, int) or self.degree < 0:
            raise BayeslinError(f"polynomial degree must be a non-negative integer, got {self.degree!r}")

    @property
    def dim(self) -> int:
        """Number of features d.

        Returns
        -------
        int
            ``degree + 1``.
        """
        return self.degree + 1

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' names.

        Returns
        -------
        tuple of str
            ``("b", "m")`` for degree 1, else ``("w0", ..., "w{degree}")``.
        """
        if self.degree == 1:
            return ("b", "m")
        return tuple(f"w{k}" for k in range(self.dim))

    @property
    def name(self) -> str:
        """Short name (store metadata, the CLI's ``--basis``).

        Returns
        -------
        str
            ``"linear"`` for degree 1, else ``"poly{degree}"``.
        """
        return "linear" if self.degree == 1 else f"poly{self.degree}"

    def __call__(self, x: Array) -> Array:
        """``x: (..., n)`` -> ``phi: (..., n, d)``.

        Parameters
        ----------
        x : (..., n) array_like
            Inputs (any leading batch axes).

        Returns
        -------
        (..., n, d) array
            ``phi[..., i, k] = x[..., i] ** k``, in ``x``'s dtype.
        """
        x = jnp.asarray(x)
        return x[..., None] ** jnp.arange(self.dim, dtype=x.dtype)


@dataclass(frozen=True)
class OrthogonalPolynomial:  # numpydoc ignore=PR02
    """Polynomials orthonormal on a set of points (R's ``poly(x, degree)``, not ``raw=True``).

    ``phi_0 = 1`` and ``norm_{k+1} phi_{k+1}(x) = (x - alpha_k) phi_k(x) - norm_k phi_{k-1}(x)`` (``norm_0 = 0``),
    the three-term recurrence fitted by :meth:`fit` (Stieltjes' procedure) so that on the fitting points
    ``Phi^T Phi = n I``: every feature has mean square 1 and features ``1..degree`` are centred and uncorrelated.
    The same function space as ``Polynomial(degree)``; a polynomial of degree ``q`` has exactly ``q + 1``
    nonzero coefficients, on any design, where the monomials ``x^k`` on ``[-1, 1]`` are nearly collinear
    (corr(x^3, x^5) = 0.98). Use ``fit`` on the training inputs, then call on any ``x`` (e.g. a plot grid).
    Features ``Q0 .. Q{degree}``.

    Parameters
    ----------
    alpha : tuple of float, length ``degree``
        The recurrence's centres ``alpha_k``.
    norm : tuple of float, length ``degree``
        The recurrence's normalisers ``norm_{k+1}``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayeslin_jax.core.basis import OrthogonalPolynomial
    >>> x = np.linspace(-1.0, 1.0, 5)
    >>> basis = OrthogonalPolynomial.fit(x, 2)
    >>> phi = np.asarray(basis(x))
    >>> basis.feature_names, phi.shape
    (('Q0', 'Q1', 'Q2'), (5, 3))
    >>> np.allclose(phi.T @ phi, 5 * np.eye(3), atol=1e-4)
    True
    """

    alpha: tuple[float, ...]
    norm: tuple[float, ...]

    @classmethod
    def fit(cls, x, degree: int) -> OrthogonalPolynomial:
        """Recurrence for the points ``x: (n,)``; needs at least ``degree + 1`` distinct points.

        Parameters
        ----------
        x : (n,) array_like
            The fitting points (the training inputs; flattened).
        degree : int
            The highest degree (non-negative).

        Returns
        -------
        OrthogonalPolynomial
            The basis whose features are orthonormal on ``x`` (``Phi^T Phi = n I``).

        Raises
        ------
        BayeslinError
            A negative or non-integer ``degree``, non-finite points, or fewer than ``degree + 1`` distinct points.
        """
        if not isinstance(degree, int) or degree < 0:
            raise BayeslinError(f"polynomial degree must be a non-negative integer, got {degree!r}")
        x = np.asarray(x, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)) or np.unique(x).size < degree + 1:
            raise BayeslinError(f"orthogonal polynomials of degree {degree} need {degree + 1} distinct finite points")
        alpha: list[float] = []
        norm: list[float] = []
        prev, cur = np.zeros_like(x), np.ones_like(x)
        for k in range(degree):
            alpha.append(float(np.mean(x * cur**2)))
            step = (x - alpha[-1]) * cur - (norm[-1] if k else 0.0) * prev
            norm.append(float(np.sqrt(np.mean(step**2))))
            prev, cur = cur, step / norm[-1]
        return cls(tuple(alpha), tuple(norm))

    @property
    def degree(self) -> int:
        """The highest degree.

        Returns
        -------
        int
            ``len(alpha)``.
        """
        return len(self.alpha)

    @property
    def dim(self) -> int:
        """Number of features d.

        Returns
        -------
        int
            ``degree + 1``.
        """
        return self.degree + 1

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' names.

        Returns
        -------
        tuple of str
            ``("Q0", ..., "Q{degree}")``.
        """
        return tuple(f"Q{k}" for k in range(self.dim))

    @property
    def name(self) -> str:
        """Short name (store metadata).

        Returns
        -------
        str
            ``"orthopoly{degree}"``.
        """
        return f"orthopoly{self.degree}"

    def __call__(self, x: Array) -> Array:
        """``x: (..., n)`` -> ``phi: (..., n, d)``.

        Parameters
        ----------
        x : (..., n) array_like
            Inputs (any leading batch axes; any points, e.g. a plot grid).

        Returns
        -------
        (..., n, d) array
            The orthogonal-polynomial features evaluated at ``x`` by the fitted recurrence.
        """
        x = jnp.asarray(x)
        prev, cur = jnp.zeros_like(x), jnp.ones_like(x)
        columns = [cur]
        for k, (a, scale) in enumerate(zip(self.alpha, self.norm, strict=True)):
            prev, cur = cur, ((x - a) * cur - (self.norm[k - 1] if k else 0.0) * prev) / scale
            columns.append(cur)
        return jnp.stack(columns, axis=-1)


def linear() -> Polynomial:
    """The tutorial's basis: intercept ``b`` and slope ``m``.

    Returns
    -------
    Polynomial
        ``Polynomial(1)``: ``phi(x) = [1, x]``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> basis = bl.linear()
    >>> basis.feature_names
    ('b', 'm')
    >>> basis(np.array([0.0, 0.5, 2.0])).tolist()
    [[1.0, 0.0], [1.0, 0.5], [1.0, 2.0]]
    """
    return Polynomial(1)


def polynomial(degree: int) -> Polynomial:
    """Polynomial basis of the given degree (degree 1 is :func:`linear`).

    Parameters
    ----------
    degree : int
        The highest power (a non-negative integer).

    Returns
    -------
    Polynomial
        ``phi(x) = [1, x, ..., x^degree]``, ``degree + 1`` features.

    Raises
    ------
    BayeslinError
        For a negative or non-integer ``degree``.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> basis = bl.polynomial(3)
    >>> phi = basis(np.array([0.0, 1.0, 2.0]))
    >>> phi.shape, basis.feature_names
    ((3, 4), ('w0', 'w1', 'w2', 'w3'))
    >>> phi[2].tolist()
    [1.0, 2.0, 4.0, 8.0]
    """
    return Polynomial(degree)


def parse_basis(text: str) -> Polynomial:
    """Parse ``"linear"`` or ``"poly<k>"`` / ``"polynomial:<k>"`` (as used by the CLI).

    Parameters
    ----------
    text : str
        The basis' name (case and surrounding spaces ignored); ``"poly:<k>"`` is accepted too.

    Returns
    -------
    Polynomial
        The basis.

    Raises
    ------
    BayeslinError
        For any other text.
    """
    text = text.strip().lower()
    if text == "linear":
        return linear()
    for prefix in ("polynomial:", "poly:", "poly"):
        if text.startswith(prefix):
            digits = text[len(prefix):]
            if digits.isdigit():
                return polynomial(int(digits))
    raise BayeslinError(f"unknown basis {text!r}: use 'linear' or 'poly<degree>' (e.g. poly5)")
