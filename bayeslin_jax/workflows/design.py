"""Several predictors: a formula (through ``formulaic``) or a list of columns -> a named design matrix.

::

    import bayeslin_jax as bl
    result = bl.fit_formula("y ~ bmi + bp + C(sex)", "diabetes.csv")   # data-scaled priors, sigma learned
    result.summary()            # one row per term: Intercept, bmi, bp, C(sex)[T.2]
    bl.fit_formula("y ~ bmi + bp", "diabetes.csv", model="student_t", priors={"prior": "flat"})

Formulas are Wilkinson formulas as formulaic reads them: numeric terms, categorical terms with
treatment contrasts (``C(sex)``), interactions (``bmi:C(sex)``, ``bmi * bp``), transforms such as
``poly(age, 3, raw=True)`` (the raw powers of :class:`bayeslin_jax.core.basis.Polynomial`) or
``np.log(bmi)``, and ``0 +`` to drop the intercept. A :class:`Design` is a basis like
:class:`~bayeslin_jax.core.basis.Polynomial` (``dim``, ``feature_names``, ``name``, ``__call__``), so a
``ModelSpec`` built on it names every coefficient after its term in the DataTree, summaries and JSON.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.workflows.fit import _config, fit_inputs, label_levels, min_points

INTERCEPT = "Intercept"


@dataclass(frozen=True, eq=False)
class Design:  # numpydoc ignore=PR02
    """A fixed design matrix with term names, usable as ``ModelSpec.basis``.

    Its input ``x`` is the row index of each observation (``0 .. n-1``), so that simulation studies and
    SBC can reuse the design with ``x: (B, n)`` as for any basis; :meth:`transform` maps a new data
    table through the same formula (same categorical levels and transforms).

    Parameters
    ----------
    formula : str
        The right-hand side that built it (``"bmi + C(sex)"``).
    feature_names : tuple of str
        One name per column (formulaic's: ``Intercept``, ``bmi``, ``C(sex)[T.2]``, ``bmi:bp``).
    matrix : numpy.ndarray, shape ``(n, d)``
        The design matrix, float64.
    model_spec : formulaic.ModelSpec, optional
        formulaic's record of the formula (categorical levels, transforms) that :meth:`transform` applies to new
        data; None for a design built from a matrix alone.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = {"age": rng.uniform(20.0, 60.0, 30), "group": np.array(["a", "b", "c"] * 10)}
    >>> data["y"] = 1.0 + 0.05 * data["age"] + np.array([0.0, 0.5, -0.5] * 10) + 0.3 * rng.standard_normal(30)
    >>> design, y = bl.load_design(data, "y ~ age + C(group)")
    >>> design.feature_names
    ('Intercept', 'age', 'C(group)[T.b]', 'C(group)[T.c]')
    >>> design.dim, design.num_rows
    (4, 30)
    >>> design(np.arange(3)).shape  # row indices -> design rows
    (3, 4)
    >>> design.transform({"age": [30.0, 40.0], "group": ["b", "a"]})  # new rows through the same formula
    array([[ 1., 30.,  1.,  0.],
           [ 1., 40.,  0.,  0.]])
    """

    formula: str
    feature_names: tuple[str, ...]
    matrix: np.ndarray
    model_spec: Any = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        """The number of columns (terms).

        Returns
        -------
        int
            ``d``, the length of :attr:`feature_names`.
        """
        return len(self.feature_names)

    @property
    def name(self) -> str:
        """The basis name: ``design <digest>: <formula>``.

        Returns
        -------
        str
            The digest of the matrix keeps study stores of different data apart.
        """
        return f"design {self._identity()[-1][:10]}: {self.formula}"

    @property
    def num_rows(self) -> int:
        """The number of rows (observations).

        Returns
        -------
        int
            ``n``.
        """
        return int(self.matrix.shape[0])

    def _identity(self) -> tuple:
        digest = hashlib.sha1(np.ascontiguousarray(self.matrix, dtype=np.float64).tobytes()).hexdigest()
        return (self.formula, self.feature_names, self.matrix.shape, digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, Design) and self._identity() == other._identity()

    def __hash__(self) -> int:  # a static argument of jitted simulators and SBC
        return hash(self._identity())

    def __call__(self, x):
        """Map row indices to design rows (traceable under ``jit``).

        Parameters
        ----------
        x : array_like, shape ``(..., n)``
            Row indices ``0 .. num_rows - 1`` (any numeric dtype; truncated to integers).

        Returns
        -------
        jax.Array, shape ``(..., n, d)``
            The design rows.
        """
        import jax.numpy as jnp

        rows = jnp.asarray(x)
        return jnp.take(jnp.asarray(self.matrix), rows.astype(jnp.int32), axis=0)

    def transform(self, data) -> np.ndarray:
        """The design rows of a new table through the same formula (prediction).

        Parameters
        ----------
        data : pandas.DataFrame, dict of columns or CSV path
            ``m`` new rows with the formula's predictor columns.

        Returns
        -------
        numpy.ndarray, shape ``(m, d)``
            The design rows, float64, with the same categorical levels and transforms as the fitted data.

        Raises
        ------
        BayeslinError
            One line, as in :func:`load_design`: a missing column or value, a categorical level the fitted data
            did not have, a term that evaluates to NaN or inf; or a design without a formula.
        """
        if self.model_spec is None:
            raise BayeslinError("this design has no formula to apply to new data")
        table = as_table(data)
        required = set(self.model_spec.required_variables)
        _check_missing(table, _referenced(self.formula, table, required))
        matrix = np.asarray(_evaluate(self.model_spec.get_model_matrix, table, self.formula), dtype=np.float64)
        finite = np.isfinite(matrix)
        if not finite.all():
            bad = self.feature_names[int(np.flatnonzero(~finite.all(axis=0))[0])]
            raise BayeslinError(f"term {bad!r} has non-finite values (NaN or inf) in the new data")
        return matrix


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV file with a header row; one-line errors for what goes wrong.

    The text is read as :func:`bayeslin_jax.core.data.load_csv` reads it (UTF-8, byte-order mark dropped, binary
    files refused).

    Parameters
    ----------
    path : str or Path
        The file; ``-`` reads standard input.

    Returns
    -------
    pandas.DataFrame
        One column per header field (names stripped of spaces).

    Raises
    ------
    BayeslinError
        Duplicate column names, ragged rows, a stray word in a numeric column, unreadable CSV; naming the file
        (and line).
    """
    from bayeslin_jax.core.data import _read_text

    name, text = _read_text(path)
    header = text.splitlines()[0] if text.strip() else ""
    columns = [h.strip() for h in header.split(",")]
    duplicates = sorted({h for h in columns if columns.count(h) > 1})
    if duplicates:
        raise BayeslinError(f"{name}:1: duplicate column name(s) {', '.join(map(repr, duplicates))} in the header")
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if row and row != [""] and len(row) != len(columns):
            raise BayeslinError(f"{name}:{line}: {len(row)} field(s), but the header has {len(columns)}")
    try:
        table = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise BayeslinError(f"{name}: cannot read as CSV ({_one_line(err)})") from None
    table.columns = [str(c).strip() for c in table.columns]
    for column in table.columns:  # a numeric column with a stray word would silently become categorical
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() & values.notna()
            if numbers.notna().sum() > bad.sum() and bad.any():
                first = int(np.flatnonzero(bad.to_numpy())[0])
                raise BayeslinError(f"{name}:{first + 2}: column {column!r}: non-numeric value "
                                    f"{values.iloc[first]!r}")
    return table


def as_table(data) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a mapping of columns, or a CSV path.

    Parameters
    ----------
    data : pandas.DataFrame, dict of columns, or str / Path of a CSV file
        The table; a DataFrame is returned as is.

    Returns
    -------
    pandas.DataFrame
        The table.

    Raises
    ------
    BayeslinError
        Columns of unequal lengths, a CSV that cannot be read (:func:`read_table`), or another type.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, str | Path):
        return read_table(data)
    if isinstance(data, dict):
        try:
            return pd.DataFrame({str(k): np.asarray(v) for k, v in data.items()})
        except ValueError as err:
            raise BayeslinError(f"data columns must have equal lengths ({err})") from None
    raise BayeslinError(f"data must be a DataFrame, a dict of columns or a CSV path, got {type(data).__name__}")


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"`{name}`"


def columns_formula(columns, response: str = "y", intercept: bool = True) -> str:
    """The formula of a list of columns: ``["bmi", "bp"]`` -> ``"y ~ bmi + bp"``.

    Parameters
    ----------
    columns : str or sequence of str
        The predictor columns (names that are not identifiers are back-quoted).
    response : str
        The response column.
    intercept : bool
        False drops the intercept (``y ~ 0 + bmi + bp``).

    Returns
    -------
    str
        The formula.

    Raises
    ------
    BayeslinError
        No columns given.
    """
    columns = [c.strip() for c in ([columns] if isinstance(columns, str) else columns) if c.strip()]
    if not columns:
        raise BayeslinError("no predictor columns given")
    terms = " + ".join(_quote(c) for c in columns)
    return f"{_quote(response)} ~ {terms}" if intercept else f"{_quote(response)} ~ 0 + {terms}"


def _referenced(formula: str, table: pd.DataFrame, required: set[str]) -> list[str]:
    """Columns of ``table`` the formula uses (formulaic's required variables, or a whole-word mention)."""
    words = set(re.findall(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_.]*)", formula))
    mentioned = {a or b for a, b in words}
    return [c for c in table.columns if c in required or c in mentioned]


def _check_missing(table: pd.DataFrame, columns: list[str]) -> None:
    for name in columns:
        missing = table[name].isna().to_numpy()
        if missing.any():
            rows = np.flatnonzero(missing) + 1
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise BayeslinError(
                f"column {name!r} has {len(rows)} missing value(s) (data rows {shown}): drop or impute them first"
            )


def _check_levels(table: pd.DataFrame, formula: str, required: set[str]) -> None:
    """A categorical term with one level would be dropped without a word (treatment contrasts of one level are no
    column): one line naming it."""
    for name in table.columns:
        if name not in required:
            continue
        values = table[name]
        categorical = not pd.api.types.is_numeric_dtype(values) or re.search(rf"C\(\s*`?{re.escape(name)}`?\s*[,)]",
                                                                              formula)
        if categorical and values.nunique(dropna=True) == 1:
            raise BayeslinError(f"categorical column {name!r} has one level ({values.iloc[0]!r}) in every row: its "
                                "term would be dropped; drop it from the formula")


def _one_line(err: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", str(err))
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _evaluate(build, table: pd.DataFrame, formula: str):
    """``build(table)`` (formulaic's model matrices of ``formula``), its errors as one line naming the column.

    A categorical level that the fitted data did not have is an error (formulaic would warn and encode NaN).
    """
    import warnings

    from formulaic.errors import DataMismatchWarning, FactorEvaluationError, FormulaicError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            return build(table)
    except DataMismatchWarning as err:
        raise BayeslinError(f"formula {formula!r}: {_one_line(err).split('. They are')[0]}") from None
    except FactorEvaluationError as err:
        match = re.search(r"`([^`]+)` is not present|name '([^']+)' is not defined", str(err))
        if match:
            raise BayeslinError(
                f"unknown column {match.group(1) or match.group(2)!r} in formula {formula!r}: the data has columns "
                f"{', '.join(map(str, table.columns))}"
            ) from None
        raise BayeslinError(f"formula {formula!r}: {_one_line(err)}") from None
    except (FormulaicError, ValueError, TypeError) as err:
        raise BayeslinError(f"formula {formula!r}: {_one_line(err)}") from None


def _check_columns(names: tuple[str, ...], matrix: np.ndarray) -> None:
    """Non-finite values, constant terms (next to an intercept) and rank deficiency, naming the term."""
    finite = np.isfinite(matrix)
    if not finite.all():
        bad = names[int(np.flatnonzero(~finite.all(axis=0))[0])]
        raise BayeslinError(f"term {bad!r} has non-finite values (NaN or inf) after evaluation")
    has_intercept = INTERCEPT in names
    for k, name in enumerate(names):
        column = matrix[:, k]
        if name != INTERCEPT and has_intercept and np.ptp(column) == 0:
            raise BayeslinError(
                f"term {name!r} is constant (every row {column[0]:g}): its coefficient is confounded with the "
                "intercept; drop it"
            )
    norms = np.linalg.norm(matrix, axis=0)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise BayeslinError(f"term {names[zero[0]]!r} is zero in every row: drop it")
    scaled = matrix / norms
    n, d = matrix.shape
    rank = np.linalg.matrix_rank(scaled)
    if rank < d:
        first = next(k for k in range(1, d + 1) if np.linalg.matrix_rank(scaled[:, :k]) < k) - 1
        reason = f"fewer rows ({n}) than terms ({d})" if n < d else (
            f"term {names[first]!r} is a linear combination of {', '.join(repr(v) for v in names[:first])}"
        )
        raise BayeslinError(f"rank-deficient design (rank {rank} < {d} terms): {reason}")


def load_design(data, formula: str | None = None, *, columns=None, response: str = "y") -> tuple[Design, np.ndarray]:
    """Build a design and the response from a table.

    Parameters
    ----------
    data : pandas.DataFrame, dict of columns, or str / Path of a CSV file
    formula : str, optional
        ``"y ~ bmi + bp + C(sex)"``; a formula without ``~`` is a right-hand side for ``response``.
    columns : sequence of str or comma-separated str, optional
        Instead of a formula: these columns plus an intercept (``response ~ c1 + c2``).
    response : str
        The response column when the formula has no left-hand side, or with ``columns``.

    Returns
    -------
    (Design, numpy.ndarray)
        The design (``matrix: (n, d)``) and ``y: (n,)``, float64.

    Raises
    ------
    BayeslinError
        One line naming the column or term: unknown column, missing values, non-numeric response,
        constant term, rank-deficient design, formula syntax.

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = {"age": rng.uniform(20.0, 60.0, 30), "group": np.array(["a", "b", "c"] * 10)}
    >>> data["y"] = 1.0 + 0.05 * data["age"] + np.array([0.0, 0.5, -0.5] * 10) + 0.3 * rng.standard_normal(30)
    >>> design, y = bl.load_design(data, "y ~ age + C(group)")
    >>> design.feature_names, design.matrix.shape, y.shape
    (('Intercept', 'age', 'C(group)[T.b]', 'C(group)[T.c]'), (30, 4), (30,))
    >>> bl.load_design(data, columns=["age"])[0].feature_names  # columns plus an intercept: y ~ age
    ('Intercept', 'age')
    """
    from formulaic import Formula, model_matrix
    from formulaic.errors import FormulaicError

    if (formula is None) == (columns is None):
        raise BayeslinError("give either a formula or a list of columns")
    if formula is not None and not isinstance(formula, str):
        raise BayeslinError(f"formula must be a string such as 'y ~ bmi + C(sex)', got {type(formula).__name__}")
    table = as_table(data)
    if len(table) == 0:
        raise BayeslinError("the data table has no rows")
    if columns is not None:
        picked = [c.strip() for c in (columns.split(",") if isinstance(columns, str) else columns)]
        unknown = [c for c in [*picked, response] if c not in table.columns]
        if unknown:
            raise BayeslinError(f"unknown column {unknown[0]!r}: the data has columns {', '.join(table.columns)}")
        formula = columns_formula(picked, response)
    else:
        formula = cast(str, formula)  # a string: checked above
        if "~" not in formula:
            formula = f"{_quote(response)} ~ {formula}"
    try:
        parsed = Formula(formula)
    except FormulaicError as err:
        raise BayeslinError(f"formula {formula!r}: {_one_line(err)}") from None
    _check_missing(table, _referenced(formula, table, set(parsed.required_variables)))
    _check_levels(table, formula, set(parsed.required_variables))
    matrices = _evaluate(lambda t: model_matrix(parsed, t, na_action="raise"), table, formula)
    lhs, rhs = matrices.lhs, matrices.rhs
    if lhs is None or lhs.shape[1] != 1:
        raise BayeslinError(f"formula {formula!r} must have one numeric response on the left of '~'")
    y_name = str(lhs.columns[0])
    try:
        y = np.asarray(lhs, dtype=np.float64)[:, 0]
        matrix = np.asarray(rhs, dtype=np.float64)
    except (TypeError, ValueError):
        raise BayeslinError(f"response {y_name!r} must be numeric") from None
    if not np.all(np.isfinite(y)):
        raise BayeslinError(f"response {y_name!r} has non-finite values")
    names = tuple(str(c) for c in rhs.columns)
    if not names:
        raise BayeslinError(f"formula {formula!r} has no terms")
    _check_columns(names, matrix)
    rhs_text = formula.split("~", 1)[1].strip()
    return Design(rhs_text, names, matrix, rhs.model_spec), y


def fit_formula(
    formula: str | None,
    data,
    *,
    model=None,
    columns=None,
    response: str = "y",
    priors=None,
    prior_scale=None,
    prior_mean=None,
    sigma: float | None = None,
    sigma_prior_scale: float | None = None,
    model_options: dict | None = None,
    seed: int = 0,
    config=None,
    log_likelihood: bool = True,
    whiten: bool = True,
    **sampler_options,
):
    """Fit ``formula`` (or ``columns``) on a data table with NUTS (and the exact posterior where the model has one).

    Parameters
    ----------
    formula : str or None
        ``"y ~ bmi + bp + C(sex)"`` (see the module docstring); None with ``columns``.
    data : pandas.DataFrame, dict of columns, or CSV path
    model : str or Model, optional
        A family name, ``"gaussian"`` (default), ``"student_t"``, ``"horseshoe"``, ``"bernoulli"``, ``"poisson"``,
        with priors from :mod:`bayeslin_jax.workflows.defaults` (scaled to the data unless ``priors`` says
        otherwise); or a user :class:`~bayeslin_jax.core.model.Model` whose function takes the design matrix
        ``x: (n, d)`` (its priors are its own). A user model's per-point arguments are taken from the table's
        columns of the same name (text columns factorized, see :func:`bind_columns`).
    columns, response
        See :func:`load_design`.
    priors : PriorChoice or dict, optional
        Prior choices for a family name, e.g. ``{"prior": "flat", "sigma_prior": "half_cauchy"}``
        (:class:`~bayeslin_jax.workflows.defaults.PriorChoice`).
    prior_scale, prior_mean, sigma, sigma_prior_scale
        Shorthands for the same fields of ``priors``: ``prior_scale`` puts ``N(prior_mean, prior_scale)`` on every
        coefficient on the raw scale; ``sigma`` fixes the noise sd; ``sigma_prior_scale`` alone learns it with
        ``HalfNormal(scale)``. All None: the data-scaled defaults, sigma learned.
    model_options : dict, optional
        Family options: ``nu`` (Student-t; a number or ``"learn"``), ``expected_nonzero``, ``slab_scale``,
        ``slab_df`` (horseshoe).
    seed, config, log_likelihood, whiten, **sampler_options
        As :func:`bayeslin_jax.fit`.

    Returns
    -------
    FitResult
        Coefficients named after the terms (``feature`` coordinate); ``constant_data.x`` holds row indices.

    Raises
    ------
    BayeslinError
        One line: a bad formula or column, a prior option that does not apply to the model, an improper posterior.

    Examples
    --------
    Three groups and a numeric predictor in a pandas DataFrame, the noise sd known (``sigma=0.3``), so that the
    exact posterior is there to check NUTS against:

    >>> import pandas as pd
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = {"age": rng.uniform(20.0, 60.0, 30), "group": np.array(["a", "b", "c"] * 10)}
    >>> data["y"] = 1.0 + 0.05 * data["age"] + np.array([0.0, 0.5, -0.5] * 10) + 0.3 * rng.standard_normal(30)
    >>> frame = pd.DataFrame(data)
    >>> result = bl.fit_formula("y ~ age + C(group)", frame, sigma=0.3, num_warmup=100, num_draws=100,
    ...                         num_chains=2)
    >>> table = result.summary()
    >>> list(table.index)  # one row per term
    ['Intercept', 'age', 'C(group)[T.b]', 'C(group)[T.c]']
    >>> bool((abs(table["mean"] - table["exact_mean"]) < table["exact_sd"]).all())
    True

    Without ``sigma`` (and ``priors``) the priors are scaled to the data and sigma is learned;
    ``result.priors()`` lists them.
    """
    design, y = load_design(data, formula, columns=columns, response=response)
    choice = merge_priors(priors, prior_scale=prior_scale, prior_mean=prior_mean, sigma=sigma,
                          sigma_prior_scale=sigma_prior_scale)
    fitted_model = design_model(design, y, model, priors=choice, table=as_table(data), model_options=model_options)
    return fit_design(y, fitted_model, seed=seed, config=_config(config, sampler_options),
                      log_likelihood=log_likelihood, whiten=whiten)


def merge_priors(priors, **shorthands):
    """Add the prior shorthands of :func:`fit_formula` to ``priors``.

    Parameters
    ----------
    priors : None, dict or PriorChoice
        The prior choices given.
    **shorthands
        PriorChoice fields (``prior_scale=``, ``sigma=``, ...); the None ones are dropped.

    Returns
    -------
    PriorChoice or None
        ``priors`` with the given shorthands replaced; None when nothing was given.

    Raises
    ------
    BayeslinError
        An unknown field, or choices that contradict each other (:class:`~bayeslin_jax.workflows.defaults.PriorChoice`).
    """
    import dataclasses

    from bayeslin_jax.workflows.fit import as_prior_choice

    given = {k: v for k, v in shorthands.items() if v is not None}
    if priors is None and not given:
        return None
    choice = as_prior_choice(priors)
    return dataclasses.replace(choice, **given) if given else choice


def design_model(design: Design, y, model=None, *, priors=None, table=None, model_options: dict | None = None,
                 columns: dict[str, str] | None = None, source: str = "the data"):
    """The :class:`~bayeslin_jax.core.model.Model` that :func:`fit_formula` fits on ``design``.

    Parameters
    ----------
    design : Design
        The design.
    y : (n,) array
        The response (the default priors are scaled to it).
    model : str or Model, optional
        A family name (None: ``"gaussian"``) -> :func:`bayeslin_jax.workflows.defaults.build_model` on the design
        with ``priors``; a user Model -> the model with the design as its basis (its function gets the design rows
        ``x: (n, d)``) and its per-point arguments bound to the columns of ``table``.
    priors : PriorChoice or dict, optional
        Prior choices for a family name.
    table : pandas.DataFrame, optional
        The data table, for a user model's per-point arguments (:func:`bind_columns`).
    model_options : dict, optional
        Family options (``nu``, ``expected_nonzero``, ``slab_scale``, ``slab_df``).
    columns : dict of str to str, optional
        A user model's argument -> column, explicitly.
    source : str
        What the table is, for error messages (``"the data"``, a file name).

    Returns
    -------
    Model
        The model to fit.

    Raises
    ------
    BayeslinError
        Prior or family options for a user model, model columns for a family, a user model with a basis of its
        own, a per-point argument without a column; one line.
    """
    import dataclasses

    from bayeslin_jax.core.model import Model
    from bayeslin_jax.workflows.defaults import build_model
    from bayeslin_jax.workflows.fit import as_prior_choice

    if model is None or isinstance(model, str):
        if columns:
            raise BayeslinError("model columns are for a user model (--model FILE.py:NAME)")
        return build_model("gaussian" if model is None else model, design, design.matrix, y,
                           as_prior_choice(priors), **(model_options or {}))
    if not isinstance(model, Model):
        raise BayeslinError(f"model must be a family name or a bayeslin_jax Model, got {type(model).__name__}")
    if priors is not None or model_options:
        raise BayeslinError(f"model {model.name!r} is a user model: its priors and options are written in it; drop "
                            "the prior / family options")
    if model.basis is not None and not isinstance(model.basis, Design):
        raise BayeslinError(f"model {model.name!r} has its own basis ({model.basis.name}): a formula gives the design; "
                            "build the model without basis=")
    # cast: Model.basis is annotated Polynomial, but any basis (dim, feature_names, name, __call__) is one
    model = dataclasses.replace(model, basis=cast(Any, design))
    if table is None:
        return model
    return bind_columns(model, table, columns or {}, num_points=design.num_rows, source=source)


def _signature(model):
    import inspect

    fn = getattr(model.fn, "func", model.fn)
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def model_arguments(model) -> list[str]:
    """The keyword arguments a user model's function takes besides ``x`` and ``y`` and its static ones.

    Parameters
    ----------
    model : Model
        A user model.

    Returns
    -------
    list of str
        The argument names, in the function's order.
    """
    bound = {k for k, _ in model.static}
    return [name for name, p in _signature(model).items()
            if name not in ("x", "y") and name not in bound and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _required_keywords(model) -> list[str]:
    """Keywords of the model's function with no default and no value given, other than sizes (``num_*``):
    they must come from the data."""
    import inspect

    given = set(model.params) | {k for k, _ in model.static}
    return [name for name, p in _signature(model).items()
            if name not in ("x", "y") and name not in given and p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not name.startswith(("num_", "n_"))]


def _leading(value) -> int | None:
    import jax

    leaves = jax.tree_util.tree_leaves(value)
    return int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) >= 1 else None


def bind_columns(model, table, columns: dict[str, str] | None = None, *, num_points: int, source: str = "the data"):
    """A user model with its per-point arguments taken from the columns of ``table`` (``num_points`` rows).

    An argument of the model (a traced array argument, or a keyword of its function) is matched to the column of
    the same name, or to ``columns[arg]`` (explicit). Text, boolean and categorical columns are factorized into
    integer codes ``0 .. J-1`` (levels sorted); the level names are kept in ``model.info["levels"][arg]`` and
    become the coordinates of the sites indexed by them (:func:`label_levels`). A declared per-point argument,
    an array argument with one row per point, or a required keyword of the function with no column is one line
    naming it: never a silent placeholder.

    Parameters
    ----------
    model : Model
        A user model.
    table : pandas.DataFrame
        The data table.
    columns : dict of str to str, optional
        Argument -> column, explicitly (``--model-column ARG=COLUMN``).
    num_points : int
        The number of observations (rows).
    source : str
        What the table is, for error messages.

    Returns
    -------
    Model
        The model with the bound arguments in ``params`` and ``per_point``.

    Raises
    ------
    BayeslinError
        An explicit column that is not in the table, a per-point argument without a column, a column with missing
        values; one line naming it.
    """
    import dataclasses

    import jax.numpy as jnp

    columns = dict(columns or {})
    for arg, column in columns.items():
        if column not in table.columns:
            raise BayeslinError(f"--model-column {arg}={column}: {source} have no column {column!r}")
    for arg in list(model.params) + model_arguments(model):
        if arg not in columns and arg in table.columns:
            columns[arg] = arg
    per_point_like = set(model.per_point or ()) | {k for k, v in model.params.items() if _leading(v) == num_points}
    missing = sorted((per_point_like | set(_required_keywords(model))) - set(columns))
    if missing:
        raise BayeslinError(
            f"model {model.name!r} takes the per-point argument {missing[0]!r}, but {source} have no column "
            f"{missing[0]!r}: add one, or map a column with --model-column {missing[0]}=COLUMN"
        )
    if not columns:
        return model
    params, per_point = dict(model.params), list(model.per_point or ())
    levels = dict(model.info.get("levels", {}))
    for arg, column in columns.items():
        values = table[column]
        if values.isna().any():
            raise BayeslinError(f"column {column!r} has missing values: drop or impute them first")
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            array = values.to_numpy()
        else:
            codes, uniques = pd.factorize(values.astype(str), sort=True)
            array, levels[arg] = codes.astype(np.int32), [str(u) for u in uniques]
        params[arg] = jnp.asarray(array)
        if arg not in per_point:
            per_point.append(arg)
    info = {**model.info, "columns": dict(columns)} | ({"levels": levels} if levels else {})
    return dataclasses.replace(model, params=params, per_point=tuple(per_point), info=info)


def fit_design(y, model, *, seed: int = 0, config, log_likelihood: bool = True, whiten: bool = True):
    """Fit a response with a model whose basis is a :class:`Design`; see :func:`fit_formula`.

    Parameters
    ----------
    y : (n,) array
        The response.
    model : Model or ModelSpec
        The model (:func:`design_model`); its basis is the design.
    seed : int
        Root of every random stream.
    config : NutsConfig
        Sampler settings.
    log_likelihood : bool
        Store pointwise log-likelihoods in the DataTree.
    whiten : bool
        Sample the whitened model where there is one.

    Returns
    -------
    FitResult
        One dataset; ``constant_data.x`` holds the row indices.

    Raises
    ------
    BayeslinError
        Fewer rows than the model needs, and what :func:`~bayeslin_jax.workflows.fit.fit_inputs` refuses.
    """
    from bayeslin_jax.core.model import as_model

    model = as_model(model)
    design = model.basis
    if len(y) < min_points(model):
        raise BayeslinError(f"need at least {min_points(model)} rows for {design.dim} terms, got {len(y)}")
    rows = np.arange(len(y), dtype=np.float64)[None]
    y64 = np.asarray(y, dtype=np.float64)[None]
    if model.spec is None:  # every other model: its function gets the design rows in the working dtype
        import jax.numpy as jnp

        inputs = np.asarray(design.matrix[None], dtype=jnp.zeros(()).dtype)
    else:
        inputs = design.matrix[None]
    return fit_inputs(inputs, y64, model, x=rows, batched=False, seed=seed, config=config,
                      log_likelihood=log_likelihood, whiten=whiten)


def predict_formula(result, data) -> pd.DataFrame:
    """The fitted mean ``E[y | new row]`` of a :func:`fit_formula` result at the rows of a new table.

    The rows go through the fitted formula (:meth:`Design.transform`: the same categorical levels and transforms,
    whatever levels the new table has), then through every posterior draw of the coefficients (the model's
    feature site, ``w`` for the built-ins): the linear predictor ``eta = row @ w``, and the mean of the response
    through the inverse link of a GLM family (``1 / (1 + exp(-eta))`` for Bernoulli, ``exp(eta)`` for Poisson).

    Parameters
    ----------
    result : FitResult
        A :func:`fit_formula` (one dataset) result of any model with a feature site.
    data : pandas.DataFrame, dict of columns or CSV path
        ``m`` new rows with the formula's predictor columns (the response is not needed).

    Returns
    -------
    pandas.DataFrame
        ``m`` rows: ``mean``, ``sd`` of the fitted mean over the NUTS draws, and for known noise ``exact_mean``,
        ``exact_sd`` from the exact posterior.

    Raises
    ------
    BayeslinError
        ``result`` is not a one-dataset :func:`fit_formula` result, its model has no feature site, or the new rows
        are bad (:meth:`Design.transform`).

    Examples
    --------
    >>> import bayeslin_jax as bl
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = {"age": rng.uniform(20.0, 60.0, 30), "group": np.array(["a", "b", "c"] * 10)}
    >>> data["y"] = 1.0 + 0.05 * data["age"] + np.array([0.0, 0.5, -0.5] * 10) + 0.3 * rng.standard_normal(30)
    >>> result = bl.fit_formula("y ~ age + C(group)", data, sigma=0.3, num_warmup=100, num_draws=100,
    ...                         num_chains=2)
    >>> new = {"age": [30.0, 40.0, 50.0], "group": ["b", "a", "c"]}
    >>> table = bl.predict_formula(result, new)
    >>> table.shape, list(table.columns)
    ((3, 4), ['mean', 'sd', 'exact_mean', 'exact_sd'])
    >>> bool((abs(table["mean"] - table["exact_mean"]) < table["exact_sd"]).all())
    True
    """
    from bayeslin_jax.workflows.fit import FitResult

    if not isinstance(result, FitResult):
        raise BayeslinError(f"predict_formula needs a FitResult of fit_formula, got {type(result).__name__}")
    model = result.model
    design = model.basis
    if not isinstance(design, Design) or result.batched:
        raise BayeslinError("predict_formula needs the result of fit_formula (one dataset on a formula design)")
    if model.feature_site is None:
        raise BayeslinError(f"model {model.name!r} declares no feature site (user_model(..., feature_site=NAME)): "
                            "predict_formula needs the coefficients of the design's terms")
    rows = design.transform(data)  # (m, d)
    w = result.draws(model.feature_site).reshape(-1, design.dim).astype(np.float64)  # (C * S, d)
    eta = w @ rows.T  # (C * S, m)
    family = dict(model.static).get("family")
    mu = 1.0 / (1.0 + np.exp(-eta)) if family == "bernoulli" else np.exp(eta) if family == "poisson" else eta
    table = pd.DataFrame({"mean": mu.mean(0), "sd": mu.std(0, ddof=1)})
    if result.exact is not None:
        mean, cov = np.asarray(result.exact.mean, dtype=np.float64), np.asarray(result.exact.cov, dtype=np.float64)
        table["exact_mean"] = rows @ mean
        table["exact_sd"] = np.sqrt(np.einsum("md,de,me->m", rows, cov, rows))
    return table


__all__ = ["Design", "as_table", "bind_columns", "columns_formula", "design_model", "fit_design", "fit_formula",
           "label_levels", "load_design", "merge_priors", "predict_formula", "read_table"]
