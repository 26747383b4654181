"""Memory estimates checked before allocating: a fit or a chunk that would not fit is refused in one line.

:func:`check_memory` compares an estimate with a limit: ``$BAYESLIN_MEMORY_LIMIT`` (bytes, or with a unit:
``8GB``, ``500MiB``) when set, else :data:`DEFAULT_FRACTION` of the physical memory. Above the limit it
raises :class:`~bayeslin_jax.core.errors.BayeslinError` (exit status 2), e.g. ``fit would need 14.9 GB for its
draws (limit 11.2 GB): lower --draws/--chains``, before anything is allocated (no ``MemoryError``, no
process killed by the kernel).
"""

from __future__ import annotations

import math
import os
import re

from bayeslin_jax.core.errors import BayeslinError

LIMIT_ENV = "BAYESLIN_MEMORY_LIMIT"
DEFAULT_FRACTION = 0.7  # of physical memory: room for the interpreter, JAX and the OS
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_LIMIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def estimate_draw_bytes(num_datasets: int, num_chains: int, num_draws: int, num_params: int,
                        dtype_bytes: int = 4) -> int:
    """Count the bytes of the draws ``(num_datasets, num_chains, num_draws, num_params)``.

    Exact integer arithmetic (no overflow for any size).

    Parameters
    ----------
    num_datasets : int
        Datasets ``B``.
    num_chains : int
        Chains per dataset ``C``.
    num_draws : int
        Draws per chain ``S``.
    num_params : int
        Scalar parameters per draw.
    dtype_bytes : int, default 4
        Bytes per value (4: float32).

    Returns
    -------
    int
        The product of the five.

    Raises
    ------
    BayeslinError
        Any of them not a non-negative integer.
    """
    values = (num_datasets, num_chains, num_draws, num_params, dtype_bytes)
    if not all(_integral(v) and int(v) >= 0 for v in values):
        raise BayeslinError(f"a memory estimate needs non-negative integers, got {values}")
    return math.prod(int(v) for v in values)


def _integral(value) -> bool:
    try:
        return not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def physical_memory() -> int | None:
    """Return the physical memory in bytes (``SC_PHYS_PAGES * SC_PAGE_SIZE``).

    Returns
    -------
    int or None
        Bytes; None where the platform does not tell.
    """
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def parse_limit(text: str) -> int:
    """Parse a memory size: ``"8GB"`` -> 8e9, ``"512MiB"`` -> 2^29, ``"1000000"`` -> 1e6 (bytes).

    Parameters
    ----------
    text : str
        A positive number with an optional unit (``B``, ``K``/``KB``, ``M``/``MB``, ``G``/``GB``, ``T``/``TB``
        decimal; ``KiB``, ``MiB``, ``GiB``, ``TiB`` binary; case-insensitive).

    Returns
    -------
    int
        Bytes.

    Raises
    ------
    BayeslinError
        Not such a size, or not positive.
    """
    match = _LIMIT.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise BayeslinError(f"{LIMIT_ENV} must be a size in bytes such as 8000000000, 8GB or 512MiB, got {text!r}")
    value = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(value) or value <= 0:
        raise BayeslinError(f"{LIMIT_ENV} must be positive, got {text!r}")
    return int(value)


def memory_limit() -> int | None:
    """Return the limit :func:`check_memory` uses by default.

    Returns
    -------
    int or None
        ``$BAYESLIN_MEMORY_LIMIT`` (:func:`parse_limit`) when set, else :data:`DEFAULT_FRACTION` of
        :func:`physical_memory`; None when neither is known.

    Raises
    ------
    BayeslinError
        ``$BAYESLIN_MEMORY_LIMIT`` is set but not a size.
    """
    text = os.environ.get(LIMIT_ENV)
    if text:
        return parse_limit(text)
    physical = physical_memory()
    return None if physical is None else int(physical * DEFAULT_FRACTION)


def format_bytes(num: float) -> str:
    """Format a byte count for messages: ``14.9 GB``, ``512.0 MB`` (decimal units).

    Parameters
    ----------
    num : float
        Bytes.

    Returns
    -------
    str
        One decimal and the largest unit (``TB``, ``GB``, ``MB``, ``kB``) not above ``num``, else ``N bytes``.
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num >= size:
            return f"{num / size:.1f} {unit}"
    return f"{int(num)} bytes"


def check_memory(estimate_bytes: int | float, what: str, limit_bytes: int | None = None, *,
                 purpose: str = "", hint: str = "") -> int:
    """Refuse (one-line :class:`BayeslinError`, exit 2) an estimate above the limit; return the estimate.

    Parameters
    ----------
    estimate_bytes : int or float
        The estimate (e.g. :func:`estimate_draw_bytes`).
    what : str
        Names the computation (``"fit"``, ``"a chunk of 256 datasets"``).
    limit_bytes : int, optional
        The limit (default :func:`memory_limit`; no check when that is None).
    purpose : str, default ""
        What the memory is for (``"for its draws"``).
    hint : str, default ""
        How to make it fit (``"lower --draws/--chains"``).

    Returns
    -------
    int
        ``estimate_bytes`` as an int.

    Raises
    ------
    BayeslinError
        The estimate is above the limit. Message: ``fit would need 14.9 GB for its draws (limit 11.2 GB): lower
        --draws/--chains``.
    """
    limit = memory_limit() if limit_bytes is None else int(limit_bytes)
    if limit is None or estimate_bytes <= limit:
        return int(estimate_bytes)
    needs = f"{what} would need {format_bytes(estimate_bytes)}" + (f" {purpose}" if purpose else "")
    where = f"limit {format_bytes(limit)}" + ("" if os.environ.get(LIMIT_ENV) else
                                               f", {int(DEFAULT_FRACTION * 100)}% of the physical memory; "
                                               f"set {LIMIT_ENV} to change it")
    raise BayeslinError(f"{needs} ({where})" + (f": {hint}" if hint else ""))
