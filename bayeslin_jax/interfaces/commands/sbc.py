"""``bayeslin sbc``: simulation-based calibration into a resumable store, with a pass/fail table.

Exit status: 0 when calibration passes, 1 when it fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import (
    add_design_arguments,
    add_sampler_arguments,
    add_spec_arguments,
    check_output_dir,
    check_output_file,
    config_from_args,
    design_from_args,
    positive_int,
    print_model_priors,
    spec_from_args,
)
from bayeslin_jax.interfaces.commands.models import add_model_arguments, model_from_args
from bayeslin_jax.interfaces.commands.study import check_seed

PREDICT_AT_DEFAULT = "-1,0.5,1.5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin sbc``.

    Flags: the store, the number of simulations, the engine, the model, the sampler and the SBC settings.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    parser.add_argument("--out", required=True, help="store directory (zarr); rerun with the same flags to resume")
    parser.add_argument("--simulations", type=positive_int, default=1000, help="simulated datasets (default 1000)")
    parser.add_argument("--engine", choices=("nuts", "exact"), default="nuts",
                        help="fit each dataset with NUTS or with exact conjugate draws (known noise)")
    add_spec_arguments(parser)
    add_design_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--prior-corr", type=float, default=-0.5,
                        help="with --prior mvn and no --prior-cov: correlation of the 2 weights (default -0.5)")
    parser.add_argument("--fit-prior-scale", type=float, default=None,
                        help="fit with this prior sd instead of the simulation's (a deliberate mismatch; default: the "
                        "simulation's prior)")
    add_sampler_arguments(parser)
    group = parser.add_argument_group("sbc")
    group.add_argument("--num-ranks", type=positive_int, default=99, help="L: draws each truth is ranked among")
    group.add_argument("--points", type=positive_int, default=11, help="data points per simulated dataset")
    group.add_argument("--x-scale", type=float, default=1.0, help="x ~ U(-x_scale, x_scale)")
    group.add_argument("--predict-at", default=PREDICT_AT_DEFAULT,
                       help="x values (in units of x-scale; row indices with --design) where the mean function is "
                       "a test quantity")
    group.add_argument("--distort-sd", type=float, default=1.0,
                       help="scale posterior draws' spread by this factor (deliberately broken inference)")
    group.add_argument("--shift-sd", type=float, default=0.0,
                       help="shift posterior draws by this many posterior sds (deliberately broken inference)")
    group.add_argument("--rhat-max", type=float, default=1.01, help="diagnostics gate: largest R-hat accepted")
    group.add_argument("--alpha", type=float, default=0.05, help="family-wise level of the tests (Holm)")
    group.add_argument("--include-failed", action="store_true",
                       help="rank simulations that fail the diagnostics gate too (default: report and exclude)")
    group.add_argument("--chunk-size", type=positive_int, default=None,
                       help="simulations per stored chunk (default: 200 for NUTS on CPU, 1000 on an accelerator, "
                       "10000 exact; a resumed store keeps its own)")
    group.add_argument("--json", default=None, help="write the verdicts as JSON here (default: not written)")
    group.add_argument("--plots", default=None,
                       help="write ECDF-PIT, rank-histogram and coverage plots in this folder (default: none)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _spec(args: argparse.Namespace):
    from bayeslin_jax.core.basis import parse_basis
    from bayeslin_jax.interfaces.commands.common import parse_vector

    if args.prior == "mvn" and args.prior_cov is None:
        dim = parse_basis(args.basis).dim
        if dim != 2:
            raise BayeslinError("--prior mvn without --prior-cov is defined for 2 weights (linear): give --prior-cov")
        scale = np.broadcast_to(parse_vector(args.prior_scale, "--prior-scale"), (2,))
        if not -1.0 < args.prior_corr < 1.0:
            raise BayeslinError(f"--prior-corr must lie strictly between -1 and 1, got {args.prior_corr}")
        cov = np.array([[scale[0] ** 2, args.prior_corr * scale[0] * scale[1]],
                        [args.prior_corr * scale[0] * scale[1], scale[1] ** 2]])
        cov_text = ";".join(",".join(repr(float(v)) for v in row) for row in cov)
        args = argparse.Namespace(**{**vars(args), "prior_cov": cov_text})
    loaded = design_from_args(args, args.design)  # --design: x fixed from the CSV (SBC of the user's design)
    return spec_from_args(args, basis=None if loaded is None else loaded[0])


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin sbc``.

    Simulate, fit and rank into a resumable store, print the pass/fail table, write --json / --plots.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        0 when calibration passes, 1 when it fails (failures raise
        :class:`~bayeslin_jax.core.errors.BayeslinError`, reported by
        :func:`bayeslin_jax.interfaces.cli.main`).
    """
    from bayeslin_jax.interfaces.commands.common import parse_vector
    from bayeslin_jax.workflows.sbc import run as sbc
    from bayeslin_jax.workflows.sbc import stats as sbc_stats
    from bayeslin_jax.workflows.store import chunk_log

    if not 0.0 < args.alpha < 1.0:
        raise BayeslinError(f"--alpha must lie in (0, 1), got {args.alpha}")
    check_seed(args.seed)
    check_output_dir(args.out, "--out")
    check_output_file(args.json, "--json")
    check_output_dir(args.plots, "--plots")
    model = model_from_args(args, args.points)
    if model is not None and model.num_points is not None:  # its per-point arguments fix the points per dataset
        args.points = model.num_points
    if model is None:
        sim_spec = _spec(args)
        fit_spec = sim_spec if args.fit_prior_scale is None else sbc.with_prior_scale(sim_spec, args.fit_prior_scale)
    print_model_priors(model if model is not None else sim_spec)
    predict_at = tuple(float(v) for v in np.atleast_1d(parse_vector(args.predict_at, "--predict-at")))
    if model is not None and args.design is not None:
        raise BayeslinError(f"{model.name}: --design SBC is for the Gaussian model")
    rows = None if model is not None else getattr(sim_spec.basis, "num_rows", None)
    if rows is not None:  # a fixed design: x is the row index; the mean function at rows first, middle, last
        args.points, args.x_scale = rows, 1.0
        if args.predict_at == PREDICT_AT_DEFAULT:
            predict_at = (0.0, float(rows // 2), float(rows - 1))
    config = sbc.SbcConfig(
        engine=args.engine,
        num_ranks=args.num_ranks,
        nuts=config_from_args(args),
        num_points=args.points,
        x_scale=args.x_scale,
        predict_at=predict_at,
        distortion=sbc.Distortion(sd_scale=args.distort_sd, shift_sd=args.shift_sd),
        rhat_max=args.rhat_max,
    )
    start = time.perf_counter()
    if model is not None:
        if args.engine != "nuts" or args.fit_prior_scale is not None or not config.distortion.is_identity:
            raise BayeslinError(f"{model.name}: SBC runs with --engine nuts, no --fit-prior-scale or distortion")
        sim_spec, fit_spec = model, None
    ds = sbc.run_sbc(args.simulations, seed=args.seed, sim_spec=sim_spec, fit_spec=fit_spec, config=config,
                     chunk_size=args.chunk_size, store=args.out, progress=not args.no_progress)
    wall = time.perf_counter() - start
    report = sbc_stats.summarize(ds, alpha=args.alpha, include_failed=args.include_failed)
    print(report.table())
    if args.json:  # the verdicts first: they never depend on the store's bookkeeping
        from pathlib import Path

        from bayeslin_jax.core.atomic import atomic_write_text
        from bayeslin_jax.core.data import strict_json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, strict_json(report.to_dict()) + "\n")
        print(f"json: {args.json}")
    log = chunk_log(args.out)  # damaged timings read as NaN, with a warning line
    compute_s = float(np.nansum(log["chunk_compute_seconds"].values))
    print(f"store: {args.out}  ({args.simulations} simulations; compute {compute_s:.1f} s over all runs = "
          f"{args.simulations / max(compute_s, 1e-9):.1f} simulations/s incl. compilation; this run {wall:.1f} s)")
    if args.plots:
        from bayeslin_jax.workflows.sbc.plots import save_plots

        for path in save_plots(ds, args.plots, alpha=args.alpha):
            print(f"plot: {path}")
    return 0 if report.passed else 1
