"""Command-line pieces shared by sub-commands: model-spec and sampler flags."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bayeslin_jax.core.errors import BayeslinError

if TYPE_CHECKING:  # the CLI imports JAX only when a command runs
    from bayeslin_jax.core.priors import ModelSpec
    from bayeslin_jax.engine import NutsConfig


def parse_vector(text: str, name: str) -> np.ndarray:
    """``"0,0.5"`` -> array; a single number is a scalar (broadcast later)."""
    try:
        return np.array([float(v) for v in text.split(",")]) if "," in text else np.array(float(text))
    except ValueError:
        raise BayeslinError(f"{name} must be a number or comma-separated numbers, got {text!r}") from None


def parse_matrix(text: str, name: str) -> np.ndarray:
    """``"0.04,-0.02;-0.02,0.04"`` -> 2-D array (rows separated by ';')."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";")]
    except ValueError:
        raise BayeslinError(f"{name} must be numbers, rows separated by ';', got {text!r}") from None
    if len({len(r) for r in rows}) != 1:
        raise BayeslinError(f"{name} rows have different lengths: {text!r}")
    return np.array(rows)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--warmup 0`` would leave NUTS unadapted: refused)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_writable_folder(path: Path, flag: str, target: Path) -> None:
    """``path`` (the nearest existing ancestor of ``target``) must be a folder we can create files in."""
    if not path.is_dir():
        raise BayeslinError(f"{flag} {target}: {path} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise BayeslinError(f"{flag} {target}: cannot write in {path}: {err.strerror}") from None


def check_output_file(path: str | None, flag: str) -> None:
    """Refuse, before any compute, an output file path that cannot be written (None: nothing to check)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise BayeslinError(f"{flag} {target} is a directory; give a file path")
    _check_writable_folder(_nearest_existing(target.parent), flag, target)
    if target.exists() and not os.access(target, os.W_OK):
        raise BayeslinError(f"{flag} {target}: file exists and is not writable")


def check_output_dir(path: str | None, flag: str) -> None:
    """Refuse, before any compute, an output folder that cannot be created or written (None: nothing to check)."""
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise BayeslinError(f"{flag} {target} exists and is not a directory")
    _check_writable_folder(_nearest_existing(target), flag, target)


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--basis", default="linear", help="'linear' (features b, m) or 'poly<k>', e.g. poly5")
    group.add_argument("--prior", choices=("independent", "mvn", "horseshoe"), default="independent",
                       help="weight prior family (horseshoe: regularized horseshoe, see --expected-nonzero)")
    group.add_argument("--prior-mean", default="0", help="prior mean: one number or one per feature (comma-separated)")
    group.add_argument("--prior-scale", default="0.2", help="independent prior sd: one number or one per feature")
    group.add_argument("--prior-cov", help="MVN prior covariance, rows separated by ';', e.g. '0.04,-0.02;-0.02,0.04'")
    noise = group.add_mutually_exclusive_group()
    noise.add_argument("--sigma", type=float, default=None, help="known noise sd (default 0.1)")
    noise.add_argument(
        "--sigma-prior-scale", type=float, default=None, help="learn sigma with a HalfNormal(scale) prior"
    )


def spec_from_args(args: argparse.Namespace, basis=None) -> ModelSpec:
    """The model flags -> :class:`ModelSpec`; ``basis`` (e.g. a formula's design) replaces ``--basis``."""
    from bayeslin_jax.core.basis import parse_basis
    from bayeslin_jax.core.priors import ModelSpec, half_normal_noise, independent_normal, known_noise, mvn

    basis = parse_basis(args.basis) if basis is None else basis
    mean = parse_vector(args.prior_mean, "--prior-mean")
    if args.prior == "independent":
        if args.prior_cov is not None:
            raise BayeslinError("--prior-cov needs --prior mvn")
        prior = independent_normal(mean, parse_vector(args.prior_scale, "--prior-scale"), basis.dim)
    else:
        if args.prior_cov is None:
            raise BayeslinError("--prior mvn needs --prior-cov")
        cov = parse_matrix(args.prior_cov, "--prior-cov")
        prior = mvn(np.broadcast_to(mean, (cov.shape[0],)) if mean.ndim == 0 else mean, cov)
    if args.sigma_prior_scale is not None:
        noise = half_normal_noise(args.sigma_prior_scale)
    else:
        noise = known_noise(0.1 if args.sigma is None else args.sigma)
    return ModelSpec(basis, prior, noise)


def add_sampler_arguments(parser: argparse.ArgumentParser, warmup: int = 1000, draws: int = 1000) -> None:
    group = parser.add_argument_group("sampler")
    group.add_argument("--chains", type=positive_int, default=4, help="chains per dataset")
    group.add_argument("--warmup", type=positive_int, default=warmup,
                       help="warm-up (adaptation) iterations per chain, >= 1")
    group.add_argument("--draws", type=positive_int, default=draws, help="kept draws per chain")
    group.add_argument("--target-accept", type=float, default=0.8)
    group.add_argument(
        "--dense-mass", action="store_true", help="adapt a dense mass matrix (default diagonal, as NumPyro/PyMC/Stan)"
    )
    group.add_argument(
        "--calibrate-step-size", action="store_true",
        help="end warm-up with step-size rounds that hit --target-accept (faster on well-conditioned Gaussian "
             "posteriors; more divergences on funnels; needs --warmup >= 200)",
    )
    group.add_argument("--seed", type=int, default=0)


def config_from_args(args: argparse.Namespace, **layout) -> NutsConfig:
    """Sampler flags -> :class:`NutsConfig`; ``layout`` adds e.g. ``method``, ``batch_size``."""
    from bayeslin_jax.engine import NutsConfig

    return NutsConfig(
        num_warmup=args.warmup,
        num_draws=args.draws,
        num_chains=args.chains,
        target_accept=args.target_accept,
        dense_mass=args.dense_mass,
        calibrate_step_size=args.calibrate_step_size,
        **layout,
    )


def add_design_arguments(parser: argparse.ArgumentParser, design_file: bool = True) -> None:
    """``--formula`` / ``--columns`` / ``--response`` (and ``--design CSV`` for simulation commands)."""
    group = parser.add_argument_group("several predictors (formulaic formula or a list of columns)")
    if design_file:
        group.add_argument("--design", help="CSV of the fixed design: x from its rows, w from the prior, y simulated")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--formula", help="Wilkinson formula (formulaic), e.g. 'y ~ bmi + bp + C(sex)'")
    choice.add_argument("--columns", help="comma-separated predictor columns, plus an intercept, e.g. bmi,bp")
    group.add_argument("--response", default="y", help="response column for --columns (default y)")


def design_from_args(args: argparse.Namespace, path):
    """``(Design, y)`` from ``--formula``/``--columns`` on the CSV ``path``, or None when neither is given."""
    if args.formula is None and args.columns is None:
        if getattr(args, "design", None) is not None:
            raise BayeslinError("--design needs --formula or --columns")
        return None
    if path is None:
        raise BayeslinError("--formula and --columns need --design CSV (the fixed design)")
    if args.basis != "linear":
        raise BayeslinError("--basis applies to column x only: with --formula write e.g. poly(x, 5, raw=True)")
    from bayeslin_jax.workflows.design import load_design

    return load_design(path, args.formula, columns=args.columns, response=args.response)


EXIT_NOT_CONVERGED = 1  # ``bayeslin fit --strict`` when NUTS did not converge


def report_fit(result, args: argparse.Namespace) -> int:
    """The end of ``bayeslin fit`` for any model: divergences, one ``warning:`` line per convergence problem,
    ``--json``, ``--plot``; returns the exit status (:data:`EXIT_NOT_CONVERGED` under ``--strict`` with problems)."""
    import sys

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
    if getattr(args, "strict", False) and payload["problems"]:
        print(f"error: NUTS did not converge ({len(payload['problems'])} problem(s) above); --strict", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0
