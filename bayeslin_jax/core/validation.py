"""Validation of user-supplied settings at the boundary: one helper per kind of check.

Each raises :class:`~bayeslin_jax.core.errors.BayeslinError` with a one-line message naming the setting
and the value received, and returns the validated value.
"""

from __future__ import annotations

import math
import numbers

from bayeslin_jax.core.errors import BayeslinError


def integer(name: str, value, minimum: int = 1) -> int:
    """An int (not a bool) ``>= minimum``; the message says "positive" for ``minimum == 1``.

    Parameters
    ----------
    name : str
        The setting's name, for the message.
    value : object
        The value received.
    minimum : int, optional
        The smallest value allowed (default 1).

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    BayeslinError
        For a bool, a non-integer or a value below ``minimum``.

    Examples
    --------
    >>> from bayeslin_jax.core import validation
    >>> validation.integer("num_chains", 4)
    4
    >>> validation.integer("num_chains", 0)
    Traceback (most recent call last):
    ...
    bayeslin_jax.core.errors.BayeslinError: num_chains must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise BayeslinError(f"{name} must be {what}, got {value!r}")
    return int(value)


def positive(name: str, value) -> float:
    """A finite real number ``> 0``.

    Parameters
    ----------
    name : str
        The setting's name, for the message.
    value : object
        The value received.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    BayeslinError
        For a bool, a non-number, NaN/inf, or a value ``<= 0``.
    """
    number = real(name, value)
    if not number > 0:
        raise BayeslinError(f"{name} must be positive, got {value!r}")
    return number


def real(name: str, value) -> float:
    """A finite real number.

    Parameters
    ----------
    name : str
        The setting's name, for the message.
    value : object
        The value received.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    BayeslinError
        For a bool, a non-number or NaN/inf.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise BayeslinError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def open_unit(name: str, value) -> float:
    """A number strictly between 0 and 1 (a probability such as a target acceptance rate).

    Parameters
    ----------
    name : str
        The setting's name, for the message.
    value : object
        The value received.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    BayeslinError
        For a non-number or a value outside ``(0, 1)``.
    """
    number = real(name, value)
    if not 0.0 < number < 1.0:
        raise BayeslinError(f"{name} must lie in (0, 1), got {value!r}")
    return number


def one_of(name: str, value, choices) -> str:
    """``value`` is one of ``choices``.

    Parameters
    ----------
    name : str
        The setting's name, for the message.
    value : str
        The value received.
    choices : collection of str
        The values allowed.

    Returns
    -------
    str
        ``value``.

    Raises
    ------
    BayeslinError
        For any other value (the message lists the choices).
    """
    if value not in choices:
        raise BayeslinError(f"unknown {name} {value!r}: use one of {', '.join(map(repr, choices))}")
    return value


#: Seeds and dataset indices are 32-bit: a seed outside ``[0, 2^32)`` would wrap around (-1 would be 2^32 - 1).
SEED_LIMIT = 2**32


def check_seed(seed, what: str = "seed") -> int:
    """The one seed rule: an integer in ``[0, 2^32)``.

    Anything else is a one-line :class:`~bayeslin_jax.core.errors.BayeslinError` naming ``what`` (``"--seed"`` on
    the command line).

    Parameters
    ----------
    seed : object
        The seed received.
    what : str, optional
        Its name in the message (default ``"seed"``).

    Returns
    -------
    int
        ``seed``.

    Raises
    ------
    BayeslinError
        For a bool, a non-integer, or an integer outside ``[0, 2^32)``.

    Examples
    --------
    >>> from bayeslin_jax.core.validation import check_seed
    >>> check_seed(7)
    7
    >>> check_seed(-1, "--seed")
    Traceback (most recent call last):
    ...
    bayeslin_jax.core.errors.BayeslinError: --seed must be an integer in [0, 2^32) = [0, 4294967295], got -1
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < SEED_LIMIT:
        raise BayeslinError(f"{what} must be an integer in [0, 2^32) = [0, {SEED_LIMIT - 1}], got {seed!r}")
    return int(seed)


__all__ = ["SEED_LIMIT", "check_seed", "integer", "one_of", "open_unit", "positive", "real"]
