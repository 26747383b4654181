"""``bayeslin compare DATA.csv``: compare any models on a user's data by PSIS-LOO (and exact evidence where it exists).

Every model is fitted with NUTS to the data (columns ``x``, ``y``), then, dataset by dataset, ArviZ's ``loo`` and
``compare`` (:func:`bayeslin_jax.workflows.compare.compare`); the exact log evidence joins the table when every
model has one (Gaussian regressions with known or HalfNormal sigma). Prints the ArviZ compare table, the winner and,
for several datasets, each dataset's winner and the win rates.

Models: ``--model NAME=SPEC``, repeatable (at least two, names unique; ``--model SPEC`` names it ``SPEC``).
Default: ``--model normal=normal --model student-t=student-t``. ``SPEC`` is one of

* ``normal``: the Gaussian linear regression on ``--basis`` (or ``--formula``) with the prior flags; without
  them the data-scaled defaults of :mod:`bayeslin_jax.workflows.defaults` and sigma learned;
* ``student-t[:NU]``: the same with Student-t observations, ``NU`` a positive number or ``learn``
  (``nu ~ Gamma(2, 0.1)``; the default);
* ``bernoulli`` / ``poisson``: the logit / log GLM on ``--basis`` with the weight prior (y in {0, 1} / counts);
* ``horseshoe[:P0]``: the regularized horseshoe on ``--basis`` with the noise flags, ``P0`` the expected number of
  nonzero coefficients (default ``min(2, D/2)`` for ``D`` non-intercept coefficients; ``--basis poly5`` gives 5);
* ``FILE.py:OBJ``: your own model, a ``bl.user_model(fn)`` or a NumPyro function ``fn(x, y=None)`` named ``OBJ``
  in ``FILE.py`` (its observed site in a ``numpyro.plate`` over the points, for pointwise log-likelihoods).

Several datasets: ``--dataset-column COL`` splits the rows by the values of column ``COL`` (in order of first
appearance; every dataset needs the same number of rows). ``--json PATH`` writes the comparison (strict JSON:
non-finite numbers are null, listed under ``non_finite``). ``--formula "y ~ age + C(region)"`` (or ``--columns``)
compares the models on one dataset's design, for every model family and a user model.
Errors are one line ``error: ...`` with exit status 2, found before any fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import (
    add_design_arguments,
    add_sampler_arguments,
    add_spec_arguments,
    check_output_file,
    config_from_args,
    design_from_args,
)

if TYPE_CHECKING:  # the CLI imports JAX only when a command runs
    from bayeslin_jax.core.basis import Polynomial
    from bayeslin_jax.core.model import Model
    from bayeslin_jax.workflows.design import Design

DEFAULT_MODELS = ("normal=normal", "student-t=student-t")
SPECS = "normal, student-t[:NU], bernoulli, poisson, horseshoe[:P0] or FILE.py:OBJ"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin compare``: the data, the models, the design, the priors and the sampler.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    parser.add_argument("data", help="CSV file with columns x and y ('-': stdin)")
    group = parser.add_argument_group("comparison")
    group.add_argument(
        "--model", dest="models", action="append", default=None, metavar="NAME=SPEC",
        help=f"a model to compare, repeatable (at least 2, unique names); SPEC: {SPECS}; 'SPEC' alone is named "
        f"SPEC (default: {' '.join(DEFAULT_MODELS)})",
    )
    group.add_argument(
        "--dataset-column", metavar="COL", default=None,
        help="split the rows into datasets by the values of this column, each compared on its own and the win "
        "rates printed (default: none, one dataset)",
    )
    group.add_argument("--json", dest="json_path", metavar="PATH", default=None,
                       help="write the comparison as strict JSON (default: none)")
    add_design_arguments(parser, design_file=False)
    add_spec_arguments(parser, data=True)
    add_sampler_arguments(parser)


# ----------------------------------------------------------------------------- models


def parse_models(items: list[str] | None) -> list[tuple[str, str]]:
    """Parse the ``--model`` values into ``(name, spec)`` pairs.

    ``["a=normal", "student-t:4"]`` -> ``[("a", "normal"), ("student-t:4", "student-t:4")]``.

    Parameters
    ----------
    items : list of str or None
        The ``--model`` values, ``NAME=SPEC`` or ``SPEC``; None: :data:`DEFAULT_MODELS`.

    Returns
    -------
    list of tuple of (str, str)
        ``(name, spec)`` per model, in order.

    Raises
    ------
    BayeslinError
        An empty name or spec, duplicate names, or fewer than two models.
    """
    items = list(DEFAULT_MODELS) if items is None else items
    pairs = []
    for item in items:
        name, sep, spec = item.partition("=")
        name, spec = (name.strip(), spec.strip()) if sep else (item.strip(), item.strip())
        if not name or not spec:
            raise BayeslinError(f"--model {item!r}: give NAME=SPEC with a non-empty name and SPEC ({SPECS})")
        pairs.append((name, spec))
    names = [name for name, _ in pairs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BayeslinError(f"--model: duplicate model name(s) {', '.join(map(repr, duplicates))}; names must differ")
    if len(pairs) < 2:
        raise BayeslinError(f"--model: need at least 2 models to compare, got {len(pairs)} ({', '.join(items)})")
    return pairs


def _number(text: str, what: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BayeslinError(f"{flag}: {what} must be a positive number, got {text!r}")
    return value


def build_model(name: str, spec_text: str, args: argparse.Namespace, basis: Any, phi: np.ndarray, y: np.ndarray,
                table: Any = None) -> Model:
    """Build the model of one ``--model NAME=SPEC``, its priors scaled to the data by the prior flags.

    The priors come from :func:`bayeslin_jax.workflows.defaults.build_model`; ``FILE.py:OBJ`` is the
    user's model (with a formula: the design as its basis and its per-point arguments from the
    ``table``'s columns).

    Parameters
    ----------
    name : str
        The model's name (in messages).
    spec_text : str
        ``SPEC``: ``normal``, ``student-t[:NU]``, ``bernoulli``, ``poisson``, ``horseshoe[:P0]`` or ``FILE.py:OBJ``.
    args : argparse.Namespace
        Parsed flags (the prior flags, ``data``).
    basis : Polynomial or Design
        The features.
    phi : (n, d) array
        The basis on the pooled data.
    y : (n,) array
        The pooled response.
    table : pandas.DataFrame, optional
        The data's table (a formula's per-point arguments for a user model).

    Returns
    -------
    Model
        The model.

    Raises
    ------
    BayeslinError
        An unknown ``SPEC``, an option a model does not take, noise flags for a GLM, or an invalid
        horseshoe ``P0``.
    """
    from bayeslin_jax.interfaces.commands.common import prior_choice_from_args
    from bayeslin_jax.workflows import defaults
    from bayeslin_jax.workflows.design import Design, design_model

    flag = f"--model {name}={spec_text}"
    if spec_text.rpartition(":")[0].endswith(".py"):
        from bayeslin_jax.interfaces.commands.models import load_user_model

        model = load_user_model(spec_text)
        return design_model(basis, y, model, table=table, source=str(args.data)) if isinstance(basis, Design) \
            else model
    kind, _, option = spec_text.partition(":")
    kind = kind.lower()
    if kind not in ("normal", "student-t", "bernoulli", "poisson", "horseshoe"):
        raise BayeslinError(f"{flag}: unknown model {spec_text!r}; use {SPECS}")
    if option and kind not in ("student-t", "horseshoe"):
        raise BayeslinError(f"{flag}: {kind} takes no ':' option")
    choice = prior_choice_from_args(args)
    family = {"normal": "gaussian", "student-t": "student_t"}.get(kind, kind)
    options: dict = {}
    if kind == "student-t":
        options["nu"] = "learn" if option in ("", "learn") else _number(option, "nu (or 'learn')", flag)
    if kind in ("bernoulli", "poisson") and choice.touches_sigma:
        raise BayeslinError(f"{flag}: the {kind} family has no noise sd: drop --sigma and the --sigma-prior flags")
    if kind == "horseshoe":
        coefficients = basis.dim - 1
        if coefficients < 1:
            raise BayeslinError(f"{flag}: the horseshoe needs --basis linear or poly<k> (a slope to shrink)")
        p0 = min(2.0, coefficients / 2) if not option else _number(option, "P0", flag)
        if p0 >= coefficients:
            raise BayeslinError(f"{flag}: P0 must be below the {coefficients} non-intercept coefficient(s) of the "
                                f"design, got {option}")
        options["expected_nonzero"] = p0
        choice = dataclasses.replace(choice, prior="auto", prior_scale=None, prior_mean=None, prior_df=None)
    return defaults.build_model(family, basis, phi, y, choice, **options)


# ----------------------------------------------------------------------------- data


def load_datasets(path: str, column: str | None, dtype: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read columns ``x``, ``y`` of a CSV file, split into datasets by the values of ``column``.

    Parameters
    ----------
    path : str
        The CSV file (``-``: stdin).
    column : str or None
        ``--dataset-column``; None: one dataset.
    dtype : numpy dtype
        The working dtype the data must fit.

    Returns
    -------
    x, y : array
        ``(n,)`` without ``column``, else ``(B, n)`` in order of first appearance.
    labels : list of str
        The dataset labels ``(B,)`` (``["0"]`` for one dataset).

    Raises
    ------
    BayeslinError
        Missing or non-numeric columns, empty labels, or datasets of different sizes.
    """
    from bayeslin_jax.core.data import load_csv, validate_xy

    if column is None:
        x, y = load_csv(path, dtype=dtype)
        return x, y, ["0"]
    import pandas as pd

    from bayeslin_jax.workflows.design import read_table

    table = read_table(path)
    name = "stdin" if path == "-" else path
    missing = [c for c in ("x", "y", column) if c not in table.columns]
    if missing:
        raise BayeslinError(f"--dataset-column {column}: {name} has no column(s) {', '.join(map(repr, missing))} "
                            f"(columns: {', '.join(table.columns)})")
    if table[column].isna().any():
        raise BayeslinError(f"--dataset-column {column}: column {column!r} has empty values")
    for c in ("x", "y"):
        if not pd.api.types.is_numeric_dtype(table[c]):
            raise BayeslinError(f"{name}: column {c!r} is not numeric")
    labels = list(dict.fromkeys(table[column].tolist()))
    groups = [table[table[column] == label] for label in labels]
    sizes = {len(g) for g in groups}
    if len(sizes) > 1:
        counts = ", ".join(f"{label}: {len(g)}" for label, g in list(zip(labels, groups, strict=True))[:4])
        raise BayeslinError(f"--dataset-column {column}: the datasets have different numbers of rows ({counts}"
                            f"{', ...' if len(labels) > 4 else ''}); each needs the same number")
    x = np.stack([g["x"].to_numpy(dtype=np.float64) for g in groups])
    y = np.stack([g["y"].to_numpy(dtype=np.float64) for g in groups])
    x, y = validate_xy(x, y, min_points=2, dtype=dtype)
    return x, y, [str(label) for label in labels]


# ----------------------------------------------------------------------------- run


def _prepare(args: argparse.Namespace):
    """Everything that can fail on the input, before any fit: ``(models, x, y, labels, config)``."""
    from bayeslin_jax.interfaces.commands.common import prior_choice_from_args

    check_output_file(args.json_path, "--json")
    if args.prior == "horseshoe":
        raise BayeslinError("--prior horseshoe: give the horseshoe as a model, --model NAME=horseshoe[:P0]")
    pairs = parse_models(args.models)
    prior_choice_from_args(args)  # the prior flags, checked once before the data
    loaded = design_from_args(args, args.data)
    basis: Design | Polynomial
    if loaded is not None:  # a formula: one dataset, x the row indices of its design
        if args.dataset_column is not None:
            raise BayeslinError("--dataset-column splits columns x, y: with --formula compare one dataset")
        from bayeslin_jax.workflows.design import read_table

        basis, y = loaded
        x, phi, labels, table = np.arange(len(y), dtype=np.float64), basis.matrix, ["0"], read_table(args.data)
    else:
        from bayeslin_jax.core import exact
        from bayeslin_jax.core.basis import parse_basis

        x, y, labels = load_datasets(args.data, args.dataset_column, np.float64 if args.x64 else np.float32)
        basis, table = parse_basis(args.basis), None
        phi = exact.design_matrix64(basis, np.asarray(x, dtype=np.float64).reshape(-1))
    y_pooled = np.asarray(y, dtype=np.float64).reshape(-1)
    models = {name: build_model(name, text, args, basis, phi, y_pooled, table) for name, text in pairs}
    return models, x, y, labels, config_from_args(args)


def _print_results(comparison, labels: list[str]) -> None:
    import pandas as pd

    first = comparison.results[comparison.names[0]]
    config = first.config
    n = int(np.shape(comparison.loo[0][comparison.names[0]].elpd_i)[-1])
    batch = f"{comparison.num_datasets} datasets x " if comparison.batched else ""
    print(f"PSIS-LOO comparison (ArviZ; {config.num_chains} chains x {config.num_draws} draws, {batch}{n} points):")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        heading = f"dataset {labels[0]}" + (f" (1 of {comparison.num_datasets})" if comparison.batched else "")
        print(f"{heading}:")
        print(comparison.table(0).to_string(float_format=lambda v: f"{v:.4g}"))
        if comparison.batched:
            elpd = comparison.elpd.to_pandas()
            elpd.index = pd.Index(labels, name="dataset")
            elpd["winner"] = [comparison.winner(i) for i in range(comparison.num_datasets)]
            if comparison.has_evidence:
                elpd["evidence_winner"] = [comparison.winner(i, "evidence") for i in range(comparison.num_datasets)]
            print("\nelpd_loo per dataset:")
            print(elpd.to_string(float_format=lambda v: f"{v:.4g}"))
            print("\nwin rates:")
            print(comparison.wins().to_string(float_format=lambda v: f"{v:.3g}"))
    for note in comparison.notes:
        print(f"note: {note}")
    wins = comparison.wins()
    best = str(wins["loo_wins"].idxmax())
    if comparison.batched:
        print(f"\nwinner by PSIS-LOO: {best} (first on {int(wins.loc[best, 'loo_wins'])} of "
              f"{comparison.num_datasets} datasets)")
    else:
        table = comparison.table(0)
        second = table.iloc[1]
        print(f"\nwinner by PSIS-LOO: {best} (elpd_diff to {table.index[1]}: {-second['elpd_diff']:.3g} "
              f"+- {second['dse']:.2g})")
    if comparison.has_evidence:
        ev = str(wins["evidence_wins"].idxmax())
        print(f"winner by exact log evidence: {ev}")
    for item in comparison.pareto_k_warnings:
        print(f"warning: dataset {labels[item['dataset']]}, model {item['model']}: Pareto k up to "
              f"{item['pareto_k_max']:.2f} > {item['good_k']:.2f} on {item['num_bad']} point(s): PSIS-LOO is "
              "unreliable there", file=sys.stderr)
    for name, result in comparison.results.items():
        for line in result.problems():
            print(f"warning: model {name}: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin compare``: check every input, fit every model, print and write the comparison.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        The exit status, 0 (failures raise and are reported by :func:`bayeslin_jax.interfaces.cli.main`).
    """
    models, x, y, labels, config = _prepare(args)
    from bayeslin_jax.workflows.compare import compare
    from bayeslin_jax.workflows.defaults import prior_lines

    for name, model in models.items():
        print(f"priors of {name}:")
        for line in prior_lines(model):
            print(f"  {line}")
    comparison = compare(models, x, y, seed=args.seed, config=config)
    _print_results(comparison, labels)
    if args.json_path:
        import json

        payload = comparison.to_dict()
        payload["data"] = str(args.data)
        payload["dataset_labels"] = labels if args.dataset_column is not None else None
        from bayeslin_jax.core.atomic import atomic_write_text

        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json_path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json_path}")
    return 0
