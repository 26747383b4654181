"""``bayeslin demo``: the tutorial end to end, with both priors, checked against the exact posterior.

The work is :func:`bayeslin_jax.interfaces.tutorial.run_tutorial` (figures, exact-vs-NUTS table, ``demo_summary.json``);
this module parses the flags and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bayeslin_jax.interfaces.commands.common import check_output_dir, positive_int

QUICK = {"warmup": 200, "draws": 100, "chains": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin demo``.

    Flags: output folder, seed, sampler size, prior lines, the MVN prior's correlation, --quick.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    parser.add_argument("--out", default="bayeslin_demo", help="output folder for PNGs and demo_summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, prior draws and NUTS (default 0)")
    parser.add_argument("--warmup", type=int, default=1000, help="NUTS tuning steps per chain (tutorial: 1000)")
    parser.add_argument("--draws", type=int, default=200, help="NUTS draws per chain (tutorial: 200)")
    parser.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    parser.add_argument("--prior-lines", type=positive_int, default=200, help="prior lines to draw (tutorial: 200)")
    parser.add_argument("--corr", type=float, default=-0.5, help="b-m correlation of the MVN prior (default -0.5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small run for smoke tests: warmup {QUICK['warmup']}, {QUICK['draws']} draws, {QUICK['chains']} chains",
    )


def _settings(args: argparse.Namespace):
    from bayeslin_jax.engine import NutsConfig

    if args.quick:
        return NutsConfig(num_warmup=QUICK["warmup"], num_draws=QUICK["draws"], num_chains=QUICK["chains"])
    return NutsConfig(num_warmup=args.warmup, num_draws=args.draws, num_chains=args.chains)


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin demo``.

    Run the tutorial with both priors, print the exact-vs-NUTS table and the files written.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        0 (failures raise :class:`~bayeslin_jax.core.errors.BayeslinError`, reported by
        :func:`bayeslin_jax.interfaces.cli.main`).
    """
    import matplotlib

    from bayeslin_jax.core import priors
    from bayeslin_jax.interfaces import tutorial

    config = _settings(args)
    priors.tutorial_spec("mvn", corr=args.corr)  # validate before work
    matplotlib.use("Agg")  # headless: the demo only writes files
    check_output_dir(args.out, "--out")
    summary = tutorial.run_tutorial(args.out, args.seed, config, args.prior_lines, args.corr)
    out = Path(args.out)
    print(
        f"NUTS: {config.num_chains} chains x {config.num_draws} draws ({config.num_warmup} warm-up), seed {args.seed}"
    )
    print(tutorial.format_table(summary["priors"]))
    print(f"\nwrote {len(summary['figures'])} figures to {out}/:")
    for name in summary["figures"]:
        print(f"  {out / name}")
    print(f"wrote {out / 'demo_summary.json'}  ({summary['wall_seconds']:.1f} s)")
    return 0
