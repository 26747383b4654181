"""User data at the boundary: validation and CSV loading in, strict JSON out.

Arrays past this module are trusted: finite, representable in the working dtype, matching
shapes, enough points.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from bayeslin_jax.core.errors import BayeslinError

STDIN = "-"


def square_limit(dtype, num_points: int = 1) -> float:
    """Largest magnitude whose squares, summed over ``num_points``, stay finite in ``dtype``.

    Parameters
    ----------
    dtype : numpy dtype
        A floating dtype, e.g. ``np.float32``.
    num_points : int, optional
        Number of squares summed (default 1).

    Returns
    -------
    float
        ``sqrt(finfo(dtype).max / num_points)``.
    """
    return math.sqrt(float(np.finfo(dtype).max) / max(num_points, 1))


def too_large_message(name: str, value: float, dtype, num_points: int, where: str = "") -> str:
    """One-line explanation of a value the model cannot square in ``dtype``.

    Parameters
    ----------
    name : str
        What the value is (``"x"``, ``"y"``).
    value : float
        The offending value.
    dtype : numpy dtype
        The working dtype.
    num_points : int
        Number of points whose squares are summed.
    where : str, optional
        A prefix locating the value (e.g. ``"data.csv:7: column 'y': "``).

    Returns
    -------
    str
        The message, with a hint (rescale, or ``--x64``).
    """
    dtype_name = np.dtype(dtype).name
    limit = square_limit(dtype, num_points)
    hint = "rescale the data" + ("" if dtype_name == "float64" else " or use --x64")
    return (f"{where}{name} value {value:.3g} is too large for {dtype_name}: sums of squares over "
            f"{num_points} points overflow above {limit:.3g}; {hint}")


def validate_xy(x, y, min_points: int = 1, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Check one dataset or a batch. ``x, y: (n,)`` or ``(B, n)``; returns float arrays.

    ``min_points`` is the fewest observations per dataset the model needs. ``dtype`` (e.g.
    ``np.float32``): also refuse values whose sums of squares overflow it (see :func:`square_limit`).

    Parameters
    ----------
    x : (n,) or (B, n) array_like
        Inputs.
    y : (n,) or (B, n) array_like
        Observations (the same shape).
    min_points : int, optional
        Fewest observations per dataset (default 1).
    dtype : numpy dtype, optional
        The working dtype to check against; None skips that check.

    Returns
    -------
    x, y : ndarray
        Float arrays of the same shape.

    Raises
    ------
    BayeslinError
        One line: complex or non-numeric values, mismatched or wrong shapes, zero datasets, too few points,
        NaN/inf, or values too large for ``dtype``.

    Examples
    --------
    >>> from bayeslin_jax.core.data import validate_xy
    >>> validate_xy([1, 2, 3], [2.0, 4.0, 6.0])[0].dtype
    dtype('float64')
    """
    for name, value in (("x", x), ("y", y)):
        if np.iscomplexobj(value):
            raise BayeslinError(f"{name} is complex: the models take real numbers (split real and imaginary parts "
                                "into two predictors if both matter)")
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
        if dtype is not None and n and np.abs(arr).max() > square_limit(dtype, n):
            raise BayeslinError(too_large_message(name, float(np.abs(arr).max()), dtype, n))
    return x_arr, y_arr


def _read_text(path: str | Path) -> tuple[str, str]:
    """``(name, text)`` of a UTF-8 file (BOM stripped) or of stdin for ``"-"``."""
    if str(path) == STDIN:
        name, raw = "<stdin>", sys.stdin.buffer.read()
    else:
        file = Path(path)
        name = str(file)
        if file.is_dir():
            raise BayeslinError(f"{file} is a directory, not a CSV file")
        if not file.exists():
            raise BayeslinError(f"data file not found: {file}")
        try:
            raw = file.read_bytes()
        except OSError as err:
            raise BayeslinError(f"cannot read {file}: {err.strerror}") from None
    if b"\x00" in raw[:65536]:
        raise BayeslinError(f"{name} is a binary file, not CSV text (columns x, y)")
    try:
        return name, raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise BayeslinError(
            f"{name}:{line}: byte 0x{raw[err.start]:02x} at character {column} is not UTF-8; "
            "save the file as UTF-8 (plain ASCII numbers are fine)"
        ) from None


def _header(name: str, fields: list[str]) -> dict[str, int]:
    columns = [c.strip() for c in fields]
    seen = set()
    for column in columns:
        if column in seen:
            raise BayeslinError(f"{name}:1: duplicate column {column!r} in header {columns}")
        seen.add(column)
    if "x" not in columns or "y" not in columns:
        raise BayeslinError(f"{name} must have columns 'x' and 'y', found {columns}")
    return {column: i for i, column in enumerate(columns)}


def load_csv(path: str | Path, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Read columns ``x`` and ``y`` from a CSV file with a header row (``"-"``: standard input).

    The text must be UTF-8 (a byte-order mark is dropped). Every row has as many fields as the
    header; blank lines are skipped. Errors name the file, line and column, e.g.
    ``data.csv:7: column 'y': non-numeric value 'abc'``. ``dtype``: see :func:`validate_xy`.

    Parameters
    ----------
    path : str or Path
        The CSV file, or ``"-"`` for standard input.
    dtype : numpy dtype, optional
        Also refuse values too large for this working dtype.

    Returns
    -------
    x, y : (n,) ndarray
        The columns, float64.

    Raises
    ------
    BayeslinError
        One line naming the file (and line and column where there is one): missing, a folder, binary, not UTF-8,
        empty, no ``x``/``y`` columns, a duplicate column, a short row, a non-numeric or non-finite value, no data
        rows, or a value too large for ``dtype``.
    """
    name, text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        fields = next(reader, None)
        if fields is None:
            raise BayeslinError(f"{name} is empty: expected a header row 'x,y' and data rows")
        index = _header(name, fields)
        values: dict[str, list[float]] = {"x": [], "y": []}
        rows = []  # line number of each data row
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(fields):
                header = ",".join(fields)
                raise BayeslinError(
                    f"{name}:{reader.line_num}: {len(row)} field{'s' if len(row) != 1 else ''}, "
                    f"but the header has {len(fields)} ({header})"
                )
            for column in ("x", "y"):
                text_value = row[index[column]]
                try:
                    value = float(text_value)
                except ValueError:
                    raise BayeslinError(
                        f"{name}:{reader.line_num}: column {column!r}: non-numeric value {text_value!r}"
                    ) from None
                if not math.isfinite(value):
                    raise BayeslinError(
                        f"{name}:{reader.line_num}: column {column!r}: non-finite value {text_value.strip()!r}"
                    )
                values[column].append(value)
            rows.append(reader.line_num)
    except csv.Error as err:
        raise BayeslinError(f"{name}:{reader.line_num}: malformed CSV: {err}") from None
    if not rows:
        raise BayeslinError(f"{name}: no data rows (only a header)")
    x, y = np.asarray(values["x"]), np.asarray(values["y"])
    if dtype is not None:
        limit = square_limit(dtype, len(rows))
        for column, arr in (("x", x), ("y", y)):
            big = np.flatnonzero(np.abs(arr) > limit)
            if big.size:
                where = f"{name}:{rows[big[0]]}: column {column!r}: "
                raise BayeslinError(too_large_message("the", float(arr[big[0]]), dtype, len(rows), where))
    return validate_xy(x, y)


def _finite_only(value, path: str, flagged: list[str]):
    """``value`` as plain JSON types with non-finite floats -> None (their paths appended to ``flagged``)."""
    if isinstance(value, dict):
        return {k: _finite_only(v, f"{path}.{k}" if path else str(k), flagged) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_finite_only(v, f"{path}[{i}]", flagged) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        flagged.append(path)
        return None
    return value


def strict_json(payload: dict, indent: int | None = 2) -> str:
    """Valid JSON (RFC 8259) of ``payload``: never NaN/Infinity.

    Non-finite numbers become ``null`` and their dotted paths are listed under the key
    ``"non_finite"`` (always present; empty when every number is finite). NumPy scalars and
    arrays become plain numbers and lists.

    Parameters
    ----------
    payload : dict
        The data (nested dicts, lists, tuples, NumPy arrays and scalars, plain values).
    indent : int or None, optional
        ``json.dumps``' indent (default 2; None: one line).

    Returns
    -------
    str
        The JSON text.

    Examples
    --------
    >>> import numpy as np
    >>> from bayeslin_jax.core.data import strict_json
    >>> strict_json({"a": float("nan"), "b": [1.0, np.float32(2.5)]}, indent=None)
    '{"a": null, "b": [1.0, 2.5], "non_finite": ["a"]}'
    """
    flagged: list[str] = []
    clean = _finite_only(payload, "", flagged)
    clean["non_finite"] = flagged
    return json.dumps(clean, indent=indent, allow_nan=False)
