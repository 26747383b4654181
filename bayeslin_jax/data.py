"""User data at the boundary: validation and CSV loading.

Arrays past this module are trusted: finite, matching shapes, enough points.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from bayeslin_jax.errors import BayeslinError


def validate_xy(x, y, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Check one dataset or a batch. ``x, y: (n,)`` or ``(B, n)``; returns float arrays.

    ``min_points`` is the fewest observations per dataset the model needs.
    """
    try:
        x_arr = np.asarray(x, dtype=float)
        y_arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise BayeslinError("x and y must be numeric") from None
    if x_arr.shape != y_arr.shape:
        raise BayeslinError(f"x and y have mismatched shapes {x_arr.shape} and {y_arr.shape}")
    if x_arr.ndim not in (1, 2):
        raise BayeslinError(f"x and y must be (n,) or (datasets, n), got shape {x_arr.shape}")
    if x_arr.ndim == 2 and x_arr.shape[0] == 0:
        raise BayeslinError("zero datasets: need at least one")
    n = x_arr.shape[-1]
    if n < min_points:
        raise BayeslinError(f"need at least {min_points} data points, got {n}")
    for name, arr in (("x", x_arr), ("y", y_arr)):
        bad = ~np.isfinite(arr)
        if bad.any():
            kind = "NaN" if np.isnan(arr).any() else "inf"
            raise BayeslinError(f"{name} contains {kind} values ({int(bad.sum())} non-finite entries)")
    return x_arr, y_arr


def load_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read columns ``x`` and ``y`` from a CSV file with a header row."""
    path = Path(path)
    if not path.is_file():
        raise BayeslinError(f"data file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "x" not in columns or "y" not in columns:
            raise BayeslinError(f"{path} must have columns 'x' and 'y', found {columns}")
        reader.fieldnames = columns
        xs, ys = [], []
        for line_no, row in enumerate(reader, start=2):
            try:
                xs.append(float(row["x"]))
                ys.append(float(row["y"]))
            except (TypeError, ValueError):
                raise BayeslinError(
                    f"{path}:{line_no}: non-numeric value (x={row['x']!r}, y={row['y']!r})"
                ) from None
    return validate_xy(xs, ys)
