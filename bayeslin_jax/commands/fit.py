"""``bayeslin fit DATA.csv``: NUTS (and the exact posterior when sigma is known) on a user's data.

Output paths are checked before sampling; data the working dtype cannot represent (values whose
sums of squares overflow, basis features that overflow), a non-finite exact posterior
(an ill-conditioned design) or non-finite NUTS means are errors. The pointwise log-likelihood
(draws x points) is never built: the fit does not use it, and for 10^6 points it alone would take
16 GB. The JSON is strict: non-finite numbers are null and listed under ``non_finite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bayeslin_jax.commands.common import (
    add_sampler_arguments,
    add_spec_arguments,
    check_output_file,
    config_from_args,
    spec_from_args,
)
from bayeslin_jax.commands.models import add_model_arguments, model_from_args, run_fit
from bayeslin_jax.data import load_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="CSV file with columns x and y ('-': read standard input)")
    add_spec_arguments(parser)
    add_model_arguments(parser)
    add_sampler_arguments(parser)
    parser.add_argument("--json", dest="json_path", help="write a machine-readable result here")
    parser.add_argument("--plot", dest="plot_path", help="write the posterior lines + predictive band figure here")


def run(args: argparse.Namespace) -> int:
    # cheap checks first (no JAX yet): output paths, then the data
    check_output_file(args.json_path, "--json")
    check_output_file(args.plot_path, "--plot")
    x, y = load_csv(args.data, dtype=np.float64 if args.x64 else np.float32)
    from bayeslin_jax.api import fit

    config = config_from_args(args)
    model = model_from_args(args, len(x))
    if model is not None:
        return run_fit(args, x, y, model, config)
    spec = spec_from_args(args)
    result = fit(x, y, spec, seed=args.seed, config=config, log_likelihood=False)

    settings = f"{config.num_chains} chains x {config.num_draws} draws, {len(x)} points, {spec.basis.name}"
    print(f"NUTS posterior ({settings}):")
    print(result.arviz_summary().to_string())
    if result.exact is not None:
        print("\nExact conjugate posterior:")
        print(f"{'feature':>8} {'mean':>10} {'sd':>10}")
        for k, name in enumerate(spec.feature_names):
            print(f"{name:>8} {float(result.exact.mean[k]):10.4f} {float(result.exact.sd[k]):10.4f}")
        print("\nPosterior covariance and correlation, exact vs NUTS:")
        print(result.correlation_table().to_string(float_format="%.4g"))
    payload = result.to_dict()
    print(f"\ndivergences: {payload['divergences']}")
    for line in payload["problems"]:
        print(f"warning: {line}", file=sys.stderr)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        result.to_json(args.json_path)
        print(f"wrote {args.json_path}")
    if args.plot_path:
        result.plot(args.plot_path)
        print(f"wrote {args.plot_path}")
    return 0
