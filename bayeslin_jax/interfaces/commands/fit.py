"""``bayeslin fit DATA.csv``: NUTS (and the exact posterior when sigma is known) on a user's data.

Output paths are checked before sampling; data the working dtype cannot represent (values whose
sums of squares overflow, basis features that overflow), a non-finite exact posterior
(an ill-conditioned design) or non-finite NUTS means are errors. The pointwise log-likelihood
(draws x points) is never built: the fit does not use it, and for 10^6 points it alone would take
16 GB. The JSON is strict: non-finite numbers are null and listed under ``non_finite``.

Columns ``x`` and ``y`` through ``--basis`` by default; several predictors with ``--formula "y ~ bmi + C(sex)"``
or ``--columns bmi,bp [--response y]``, for every model (``--likelihood student-t``, ``--prior horseshoe``,
``--family``, ``--model FILE.py:NAME``). Without prior flags the priors are scaled to the data
(:mod:`bayeslin_jax.workflows.defaults`) and sigma is learned; the priors used are printed first, and a prior that
dominates the data or conflicts with it gets a ``warning:`` line naming the flag that changes it. Convergence
problems print ``warning: ...`` lines on stderr (and
``"converged": false`` in the JSON); ``--strict`` turns them into exit status 1.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

import numpy as np

from bayeslin_jax.core.data import load_csv, validate_xy
from bayeslin_jax.interfaces.commands.common import (
    EXIT_NOT_CONVERGED,
    add_design_arguments,
    add_sampler_arguments,
    add_spec_arguments,
    check_output_file,
    config_from_args,
    design_from_args,
    report_fit,
)
from bayeslin_jax.interfaces.commands.models import add_model_arguments, check_applicable, data_model_from_args

if TYPE_CHECKING:  # the CLI imports JAX only when a command runs
    from bayeslin_jax.workflows.fit import FitResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin fit``.

    Flags: the data, the design, the priors, the model, the sampler, --strict, --json and --plot.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    parser.add_argument("data", help="CSV file with columns x and y, or those of --formula/--columns ('-': stdin)")
    add_design_arguments(parser, design_file=False)
    add_spec_arguments(parser, data=True)
    add_model_arguments(parser)
    add_sampler_arguments(parser)
    parser.add_argument(
        "--no-whiten", dest="whiten", action="store_false",
        help="sample w directly instead of the whitened model w = c + A z (same posterior; engine.whitening)",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help=f"exit with status {EXIT_NOT_CONVERGED} when NUTS did not converge (R-hat > 1.01, ESS < 100 per chain, "
        "divergences, maximum tree depth); the results are still printed and written",
    )
    parser.add_argument("--json", dest="json_path", help="write a machine-readable result here (default: none)")
    parser.add_argument("--plot", dest="plot_path",
                        help="write the figure (posterior lines, or one panel per term) here (default: none)")


def _fit(args: argparse.Namespace):
    """The fit and a one-line model description: columns x, y through ``--basis``, or a formula's design."""
    # cheap checks first (no JAX yet): output paths, the flags, then the data
    check_output_file(args.json_path, "--json")
    check_output_file(args.plot_path, "--plot")
    check_applicable(args)
    from bayeslin_jax.core.validation import check_seed

    check_seed(args.seed, "--seed")
    loaded = design_from_args(args, args.data)
    if loaded is None:  # the data before JAX: a bad file answers fast
        dtype = np.float64 if args.x64 else np.float32
        x, y = load_csv(args.data, dtype=dtype)
    from bayeslin_jax.core import exact
    from bayeslin_jax.core.basis import parse_basis
    from bayeslin_jax.workflows.design import fit_design
    from bayeslin_jax.workflows.fit import check_features, fit

    config = config_from_args(args)
    if loaded is None:
        basis = parse_basis(args.basis)
        learned = args.sigma is None and args.family == "gaussian"  # sigma is one more parameter
        validate_xy(x, y, min_points=2 if args.model else basis.dim + learned, dtype=dtype)
        phi = None
        if not args.model:  # the features in float64, checked in the working dtype before priors are scaled by them
            phi = exact.design_matrix64(basis, x)
            with np.errstate(over="ignore"):
                check_features(phi.astype(dtype)[None], basis, x)
        model = data_model_from_args(args, basis, phi, np.asarray(y, dtype=np.float64), args.data)
        description = model.name if args.model or model.spec is None else basis.name
        return fit(x, y, model, seed=args.seed, config=config, log_likelihood=False, whiten=args.whiten), description
    design, y = loaded
    model = data_model_from_args(args, design, design.matrix, y, args.data)
    result = fit_design(y, model, seed=args.seed, config=config, log_likelihood=False, whiten=args.whiten)
    return result, f"y ~ {design.formula}" + ("" if model.name == "linear" else f" ({model.name})")


def print_priors(result: FitResult, out: TextIO | None = None) -> None:
    """Print the priors the fit used, one line each, under a ``priors:`` header (the data-scaled defaults say so).

    Parameters
    ----------
    result : FitResult
        The fit (its ``tree.attrs["priors"]``); nothing is printed when it records none.
    out : file-like, optional
        Where to print (default ``sys.stdout``).
    """
    import sys

    lines = [line for line in result.tree.attrs.get("priors", "").splitlines() if line]
    if not lines:
        return
    print("priors:", file=out or sys.stdout)
    for line in lines:
        print(f"  {line}", file=out or sys.stdout)


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin fit``.

    Fit the data, print the priors, the NUTS (and exact) posterior and any warning, write --json / --plot.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        :data:`~bayeslin_jax.interfaces.commands.common.EXIT_NOT_CONVERGED` under ``--strict`` when NUTS did
        not converge, else 0 (failures raise :class:`~bayeslin_jax.core.errors.BayeslinError`, reported by
        :func:`bayeslin_jax.interfaces.cli.main`).
    """
    result, model = _fit(args)
    config, spec = result.config, result.spec
    n = int(result.tree["observed_data"].sizes["obs"])
    settings = f"{config.num_chains} chains x {config.num_draws} draws, {n} points, {model}"
    print_priors(result)
    print(f"NUTS posterior ({settings}):")
    print(result.arviz_summary().to_string())
    if result.exact is not None:
        width = max(8, *(len(name) for name in spec.feature_names))
        print("\nExact conjugate posterior:")
        print(f"{'feature':>{width}} {'mean':>16} {'sd':>12}")
        for k, name in enumerate(spec.feature_names):
            print(f"{name:>{width}} {float(result.exact.mean[k]):16.10g} {float(result.exact.sd[k]):12.6g}")
        print("\nPosterior covariance and correlation, exact vs NUTS:")
        print(result.correlation_table().to_string(float_format="%.4g"))
    return report_fit(result, args)
