"""``bayeslin fit DATA.csv``: NUTS (and the exact posterior when sigma is known) on a user's data.

Output paths are checked before sampling; data the working dtype cannot represent (values whose
sums of squares overflow, basis features that overflow), a non-finite exact posterior
(an ill-conditioned design) or non-finite NUTS means are errors. The pointwise log-likelihood
(draws x points) is never built: the fit does not use it, and for 10^6 points it alone would take
16 GB. The JSON is strict: non-finite numbers are null and listed under ``non_finite``.

Columns ``x`` and ``y`` through ``--basis`` by default; several predictors with ``--formula "y ~ bmi + C(sex)"``
or ``--columns bmi,bp [--response y]``. Convergence problems print ``warning: ...`` lines on stderr (and
``"converged": false`` in the JSON); ``--strict`` turns them into exit status 1.
"""

from __future__ import annotations

import argparse

import numpy as np

from bayeslin_jax.core.data import load_csv
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import (
    EXIT_NOT_CONVERGED,
    add_design_arguments,
    add_sampler_arguments,
    add_spec_arguments,
    check_output_file,
    config_from_args,
    design_from_args,
    report_fit,
    spec_from_args,
)
from bayeslin_jax.interfaces.commands.models import add_model_arguments, model_from_args, with_columns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="CSV file with columns x and y, or those of --formula/--columns ('-': stdin)")
    add_design_arguments(parser, design_file=False)
    add_spec_arguments(parser)
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
    parser.add_argument("--json", dest="json_path", help="write a machine-readable result here")
    parser.add_argument("--plot", dest="plot_path", help="write the figure (posterior lines, or one panel per term)")


def _fit(args: argparse.Namespace):
    """The fit and a one-line model description: columns x, y through ``--basis``, or a formula's design."""
    # cheap checks first (no JAX yet): output paths, then the data
    check_output_file(args.json_path, "--json")
    check_output_file(args.plot_path, "--plot")
    loaded = design_from_args(args, args.data)
    if loaded is None:
        x, y = load_csv(args.data, dtype=np.float64 if args.x64 else np.float32)
    from bayeslin_jax.workflows.design import fit_design
    from bayeslin_jax.workflows.fit import fit

    config = config_from_args(args)
    n = len(x) if loaded is None else len(loaded[1])
    model = model_from_args(args, n)
    if args.model_column and not args.model:
        raise BayeslinError("--model-column passes data columns to --model: give --model FILE.py:NAME")
    if model is not None:  # Student-t, horseshoe, GLM, --model: x, y columns (and --model-column arrays) only
        model = with_columns(model, args.model_column, args.data)
        if loaded is not None:
            raise BayeslinError(f"{model.name} takes columns x, y: --formula / --columns are for the Gaussian model")
        return fit(x, y, model, seed=args.seed, config=config), model.name
    if loaded is None:
        spec = spec_from_args(args)
        result = fit(x, y, spec, seed=args.seed, config=config, log_likelihood=False, whiten=args.whiten)
        return result, spec.basis.name
    design, y = loaded
    spec = spec_from_args(args, basis=design)
    result = fit_design(y, spec, seed=args.seed, config=config, log_likelihood=False, whiten=args.whiten)
    return result, f"y ~ {design.formula}"


def run(args: argparse.Namespace) -> int:
    result, model = _fit(args)
    config, spec = result.config, result.spec
    n = int(result.tree["observed_data"].sizes["obs"])
    settings = f"{config.num_chains} chains x {config.num_draws} draws, {n} points, {model}"
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
