"""``bayeslin report``: diagnostics of a study store (text, JSON, PNG figure, failed datasets)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bayeslin report``.

    Flags: the store, the output folder, the checks' thresholds, --allow-incomplete and --strict.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    parser.add_argument("store", help="study store (or directory of per-process parts) written by `bayeslin study`")
    parser.add_argument("--out", required=True, help="directory for report.txt, report.json, report.png, failed.csv")
    parser.add_argument("--max-rhat", type=float, default=1.01, help="fail a dataset whose largest R-hat is above this")
    parser.add_argument("--min-ess-per-chain", type=float, default=100.0,
                        help="fail a dataset whose smallest bulk or tail ESS per chain is below this")
    parser.add_argument("--max-abs-mcse-z", type=float, default=5.0,
                        help="fail a dataset whose NUTS mean is further than this many MCSE from the exact mean")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="report on the finished chunks of a study still running")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any dataset fails a check")


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslin report``.

    Write report.txt, report.json, report.png and failed.csv of a study store and print the text.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_arguments`.

    Returns
    -------
    int
        1 under ``--strict`` when any dataset failed a check, else 0 (failures raise
        :class:`~bayeslin_jax.core.errors.BayeslinError`, reported by
        :func:`bayeslin_jax.interfaces.cli.main`).
    """
    from bayeslin_jax.interfaces.commands.common import check_output_dir
    from bayeslin_jax.workflows.studies.report import Checks, write_report

    check_output_dir(args.out, "--out")
    checks = Checks(max_rhat=args.max_rhat, min_ess_per_chain=args.min_ess_per_chain,
                    max_abs_mcse_z=args.max_abs_mcse_z)
    paths = write_report(args.store, args.out, checks, allow_incomplete=args.allow_incomplete)
    print(paths["text"].read_text(), end="")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    failed = json.loads(paths["json"].read_text())["failed"]["count"]
    if args.strict and failed:
        print(f"error: {failed} datasets failed the checks (--strict); see {paths['failed']}", file=sys.stderr)
        return 1
    return 0
