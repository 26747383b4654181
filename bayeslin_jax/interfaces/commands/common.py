"""Command-line pieces shared by sub-commands: model-spec and sampler flags."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from bayeslin_jax.core.errors import BayeslinError

if TYPE_CHECKING:  # the CLI imports JAX only when a command runs
    from bayeslin_jax.core.priors import ModelSpec
    from bayeslin_jax.engine import NutsConfig
    from bayeslin_jax.workflows.defaults import PriorChoice
    from bayeslin_jax.workflows.design import Design
    from bayeslin_jax.workflows.fit import FitResult


def parse_vector(text: str, name: str) -> np.ndarray:
    """Parse a flag's number or comma-separated numbers: ``"0,0.5"`` -> ``array([0., 0.5])``.

    Parameters
    ----------
    text : str
        The flag's value.
    name : str
        The flag, named in the error message (``--prior-mean``).

    Returns
    -------
    ndarray
        A 1-D array for a list; a 0-D array (a scalar, broadcast later) for a single number.

    Raises
    ------
    BayeslinError
        ``text`` is not a number or a comma-separated list of numbers.
    """
    try:
        return np.array([float(v) for v in text.split(",")]) if "," in text else np.array(float(text))
    except ValueError:
        raise BayeslinError(f"{name} must be a number or comma-separated numbers, got {text!r}") from None


def parse_matrix(text: str, name: str) -> np.ndarray:
    """Parse a flag's matrix, rows separated by ``;``: ``"0.04,-0.02;-0.02,0.04"`` -> a ``(2, 2)`` array.

    Parameters
    ----------
    text : str
        The flag's value.
    name : str
        The flag, named in the error message (``--prior-cov``).

    Returns
    -------
    (rows, cols) array
        The matrix.

    Raises
    ------
    BayeslinError
        A value is not a number, or the rows have different lengths.
    """
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";")]
    except ValueError:
        raise BayeslinError(f"{name} must be numbers, rows separated by ';', got {text!r}") from None
    if len({len(r) for r in rows}) != 1:
        raise BayeslinError(f"{name} rows have different lengths: {text!r}")
    return np.array(rows)


def positive_int(text: str) -> int:
    """Parse an integer >= 1: an argparse ``type`` (``--warmup 0`` would leave NUTS unadapted: refused).

    Parameters
    ----------
    text : str
        The flag's value.

    Returns
    -------
    int
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is not an integer >= 1 (argparse turns it into a usage error).
    """
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
    """Refuse, before any compute, an output file path that cannot be written.

    Parameters
    ----------
    path : str or None
        The output file; None: nothing to check.
    flag : str
        The flag that gave it, named in the error message (``--json``).

    Raises
    ------
    BayeslinError
        ``path`` is a directory, its nearest existing parent is not a writable directory, or it
        exists and is not writable.
    """
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise BayeslinError(f"{flag} {target} is a directory; give a file path")
    _check_writable_folder(_nearest_existing(target.parent), flag, target)
    if target.exists() and not os.access(target, os.W_OK):
        raise BayeslinError(f"{flag} {target}: file exists and is not writable")


def check_output_dir(path: str | None, flag: str) -> None:
    """Refuse, before any compute, an output folder that cannot be created or written.

    Parameters
    ----------
    path : str or None
        The output folder; None: nothing to check.
    flag : str
        The flag that gave it, named in the error message (``--out``).

    Raises
    ------
    BayeslinError
        ``path`` exists and is not a directory, or its nearest existing ancestor is not a
        writable directory.
    """
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise BayeslinError(f"{flag} {target} exists and is not a directory")
    _check_writable_folder(_nearest_existing(target), flag, target)


WEIGHT_PRIOR_CHOICES = ("auto", "normal", "independent", "mvn", "student-t", "cauchy", "flat", "horseshoe", "tutorial")
INTERCEPT_PRIOR_CHOICES = ("auto", "normal", "student-t", "cauchy", "flat")
SIGMA_PRIOR_CHOICES = ("auto", "half-normal", "half-cauchy", "half-t", "exponential", "flat")
TUTORIAL_PRIOR_SCALE, TUTORIAL_SIGMA = "0.2", 0.1


def add_spec_arguments(parser: argparse.ArgumentParser, data: bool = False) -> None:
    """Add the model's prior and noise flags (the ``model`` group).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    data : bool, default False
        True (``fit``, ``compare``: a user's data): no prior flag means the data-scaled defaults of
        :mod:`bayeslin_jax.workflows.defaults`, sigma learned, and the intercept flags exist. False
        (``study``, ``sbc``: simulated data, no data to scale by): the defaults are the tutorial's
        N(0, 0.2) weights and known sigma = 0.1, printed when the command runs.
    """
    group = parser.add_argument_group("model")
    group.add_argument("--basis", default="linear", help="'linear' (features b, m) or 'poly<k>', e.g. poly5")
    auto = ("auto: the data-scaled defaults (slopes N(0, 2.5 sd(y)/sd(x_j)), the intercept of centred predictors "
            "N(mean(y), 2.5 sd(y)))" if data else "auto: normal, the tutorial's N(0, 0.2) unless --prior-scale")
    group.add_argument("--prior", choices=WEIGHT_PRIOR_CHOICES, default="auto", metavar="FAMILY",
                       help=f"weight prior: {', '.join(WEIGHT_PRIOR_CHOICES)}. {auto}; normal (= independent), "
                       "student-t (--prior-df), cauchy, flat (improper: needs a full-rank design with more rows than "
                       "terms), mvn (--prior-cov), horseshoe (regularized, see --expected-nonzero), tutorial "
                       "(N(0, 0.2) and sigma = 0.1)")
    group.add_argument("--prior-mean", default=None,
                       help="prior mean: one number or one per feature, comma-separated (default 0; with --prior "
                       "auto the intercept's is mean(y))")
    group.add_argument("--prior-scale", default=None if data else TUTORIAL_PRIOR_SCALE,
                       help="prior sd (normal) or scale (student-t, cauchy): one number or one per feature, on the "
                       "raw scale, intercept included" + (" (default: data-scaled)" if data else ""))
    group.add_argument("--prior-df", type=float, default=None,
                       help="--prior student-t: degrees of freedom (default 3)")
    group.add_argument("--prior-cov",
                       help="--prior mvn: covariance, rows separated by ';', e.g. '0.04,-0.02;-0.02,0.04'")
    if data:
        group.add_argument("--intercept-prior", choices=INTERCEPT_PRIOR_CHOICES, default="auto", metavar="FAMILY",
                           help=f"the intercept's prior, on centred predictors: {', '.join(INTERCEPT_PRIOR_CHOICES)}"
                           " (auto: normal, or flat with --prior flat)")
        group.add_argument("--intercept-mean", type=float, default=None,
                           help="the intercept's prior mean on centred predictors (default mean(y))")
        group.add_argument("--intercept-scale", type=float, default=None,
                           help="the intercept's prior sd/scale on centred predictors (default 2.5 sd(y))")
        group.add_argument("--intercept-df", type=float, default=None,
                           help="--intercept-prior student-t: degrees of freedom (default 3)")
    noise = group.add_mutually_exclusive_group()
    noise.add_argument("--sigma", type=float, default=None,
                       help="known noise sd: sigma is then not learned (default: " +
                       ("learned, see --sigma-prior)" if data else f"{TUTORIAL_SIGMA}, the tutorial's)"))
    noise.add_argument("--sigma-prior", choices=SIGMA_PRIOR_CHOICES, default="auto", metavar="FAMILY",
                       help=f"learn sigma with this prior: {', '.join(SIGMA_PRIOR_CHOICES)} (auto: " +
                       ("exponential with mean sd(y), or half-normal with --sigma-prior-scale)" if data else
                        "half-normal when --sigma-prior-scale is given, else the known sigma)"))
    group.add_argument("--sigma-prior-scale", type=float, default=None,
                       help="scale of the sigma prior (exponential: its mean); alone it means "
                       "HalfNormal(scale)" + (" (default sd(y))" if data else ""))
    group.add_argument("--sigma-prior-df", type=float, default=None,
                       help="--sigma-prior half-t: degrees of freedom (default 3)")


def prior_choice_from_args(args: argparse.Namespace) -> PriorChoice:
    """Turn the prior flags into a :class:`~bayeslin_jax.workflows.defaults.PriorChoice`.

    ``--prior horseshoe`` is a model, not a weight prior: its weights' options are left out.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_spec_arguments`.

    Returns
    -------
    PriorChoice
        The choice, not yet resolved against data.

    Raises
    ------
    BayeslinError
        Malformed numbers or inconsistent flags, in the flags' words (``--prior-df``).
    """
    from bayeslin_jax.workflows.defaults import PriorChoice

    family = "auto" if args.prior == "horseshoe" else args.prior
    mean = None if args.prior_mean is None else parse_vector(args.prior_mean, "--prior-mean")
    scale = None if args.prior_scale is None else parse_vector(args.prior_scale, "--prior-scale")
    cov = None if args.prior_cov is None else parse_matrix(args.prior_cov, "--prior-cov")
    try:
        return PriorChoice(
            prior=family, prior_mean=mean, prior_scale=scale, prior_df=args.prior_df, prior_cov=cov,
            intercept_prior=getattr(args, "intercept_prior", "auto"),
            intercept_mean=getattr(args, "intercept_mean", None),
            intercept_scale=getattr(args, "intercept_scale", None),
            intercept_df=getattr(args, "intercept_df", None),
            sigma=args.sigma, sigma_prior=args.sigma_prior, sigma_prior_scale=args.sigma_prior_scale,
            sigma_prior_df=args.sigma_prior_df,
        )
    except BayeslinError as err:  # the same rule in flag words
        raise BayeslinError(_flag_words(str(err))) from None


def _flag_words(message: str) -> str:
    """A :class:`PriorChoice` message in the CLI's words (``prior df`` -> ``--prior-df``)."""
    for words, flag in (("needs a prior covariance", "needs --prior-cov"), ("sigma prior scale", "--sigma-prior-scale"),
                        ("sigma prior df", "--sigma-prior-df"),
                        ("sigma prior options", "--sigma-prior* flags"), ("prior covariance", "--prior-cov"),
                        ("intercept df", "--intercept-df"), ("prior df", "--prior-df"),
                        ("prior mean / prior scale", "--prior-mean / --prior-scale"),
                        ("intercept mean / intercept scale", "--intercept-mean / --intercept-scale"),
                        ("drop sigma", "drop --sigma"),
                        ("sigma fixes", "--sigma fixes")):
        message = message.replace(words, flag)
    return message


def spec_from_args(args: argparse.Namespace, basis: Any = None) -> ModelSpec:
    """Turn the model flags into a :class:`~bayeslin_jax.core.priors.ModelSpec` with no data to scale by.

    For ``study`` and ``sbc``: the tutorial's defaults (N(0, 0.2) weights, known sigma = 0.1) for what
    the flags leave out.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_spec_arguments`.
    basis : Polynomial or Design, optional
        The features (a formula's design); replaces ``--basis``.

    Returns
    -------
    ModelSpec
        The model.

    Raises
    ------
    BayeslinError
        A flat (improper) prior, which a simulation cannot draw from, a ``--sigma-prior`` without
        ``--sigma-prior-scale``, or invalid flags.
    """
    from bayeslin_jax.core.basis import parse_basis
    from bayeslin_jax.core.priors import ModelSpec
    from bayeslin_jax.workflows.defaults import PriorChoice, noise_prior, weight_prior

    basis = parse_basis(args.basis) if basis is None else basis
    choice = prior_choice_from_args(args)
    if choice.prior == "flat" or choice.sigma_prior == "flat":
        raise BayeslinError("a flat prior is improper: a simulation needs a proper prior to draw from (use it with "
                            "bayeslin fit)")
    if choice.prior == "tutorial":
        choice = PriorChoice(prior="normal", prior_scale=float(TUTORIAL_PRIOR_SCALE), prior_mean=0.0,
                             sigma=choice.sigma, sigma_prior=choice.sigma_prior,
                             sigma_prior_scale=choice.sigma_prior_scale, sigma_prior_df=choice.sigma_prior_df)
    if choice.prior_scale is None and choice.prior != "mvn":
        choice = _replace(choice, prior_scale=float(TUTORIAL_PRIOR_SCALE))
    if not choice.touches_sigma:
        choice = _replace(choice, sigma=TUTORIAL_SIGMA)
    if choice.sigma_prior != "auto" and choice.sigma_prior_scale is None:
        raise BayeslinError(f"--sigma-prior {args.sigma_prior} needs --sigma-prior-scale (no data to scale by)")
    phi = np.zeros((1, basis.dim))  # unused: the raw-scale rule needs only the dimension
    return ModelSpec(basis, weight_prior(phi, np.zeros(1), choice), noise_prior(np.zeros(1), choice))


def print_model_priors(model: Any, out: TextIO | None = None) -> None:
    """Print ``priors:`` and one line per prior of a study's or an SBC run's model (the tutorial's defaults say so).

    Parameters
    ----------
    model : ModelSpec or Model
        The model simulated and fitted.
    out : file-like, optional
        Where to print (default ``sys.stdout``).
    """
    import sys

    from bayeslin_jax.core.model import as_model
    from bayeslin_jax.workflows.defaults import prior_lines

    print("priors (simulated and fitted; no data to scale by, so unset flags take the tutorial's N(0, 0.2) and "
          "sigma = 0.1):", file=out or sys.stdout)
    for line in prior_lines(as_model(model)):
        print(f"  {line}", file=out or sys.stdout)


def _replace(choice, **changes):
    import dataclasses

    return dataclasses.replace(choice, **changes)


def add_sampler_arguments(parser: argparse.ArgumentParser, warmup: int = 1000, draws: int = 1000) -> None:
    """Add the sampler flags (the ``sampler`` group): chains, warm-up, draws, target acceptance, mass matrix, seed.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    warmup : int, default 1000
        Default of ``--warmup``.
    draws : int, default 1000
        Default of ``--draws``.
    """
    group = parser.add_argument_group("sampler")
    group.add_argument("--chains", type=positive_int, default=4, help="chains per dataset")
    group.add_argument("--warmup", type=positive_int, default=warmup,
                       help="warm-up (adaptation) iterations per chain, >= 1")
    group.add_argument("--draws", type=positive_int, default=draws, help="kept draws per chain")
    group.add_argument("--target-accept", type=float, default=0.8,
                       help="the warm-up's target mean acceptance probability of NUTS (dual averaging), in (0, 1)")
    group.add_argument(
        "--dense-mass", action="store_true", help="adapt a dense mass matrix (default diagonal, as NumPyro/PyMC/Stan)"
    )
    group.add_argument(
        "--calibrate-step-size", action="store_true",
        help="end warm-up with step-size rounds that hit --target-accept (faster on well-conditioned Gaussian "
             "posteriors; more divergences on funnels; needs --warmup >= 200)",
    )
    group.add_argument("--seed", type=int, default=0,
                       help="root of every random stream, in [0, 2^32): dataset i uses (seed, i) only")


def config_from_args(args: argparse.Namespace, **layout: Any) -> NutsConfig:
    """Turn the sampler flags into a :class:`~bayeslin_jax.engine.NutsConfig`.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_sampler_arguments`.
    **layout : Any
        More ``NutsConfig`` fields, e.g. ``method``, ``batch_size``.

    Returns
    -------
    NutsConfig
        The sampler settings.
    """
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
    """Add ``--formula`` / ``--columns`` / ``--response`` (and ``--design CSV`` for simulation commands).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    design_file : bool, default True
        Also add ``--design`` (the CSV of a fixed design for ``study`` and ``sbc``).
    """
    group = parser.add_argument_group("several predictors (formulaic formula or a list of columns)")
    if design_file:
        group.add_argument("--design", help="CSV of the fixed design: x from its rows, w from the prior, y simulated")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--formula", help="Wilkinson formula (formulaic), e.g. 'y ~ bmi + bp + C(sex)'")
    choice.add_argument("--columns", help="comma-separated predictor columns, plus an intercept, e.g. bmi,bp")
    group.add_argument("--response", default="y", help="response column for --columns (default y)")


def design_from_args(args: argparse.Namespace, path: str | None) -> tuple[Design, np.ndarray] | None:
    """Load the design of ``--formula`` / ``--columns`` from a CSV file.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_design_arguments` (and ``--basis``).
    path : str or None
        The CSV file (the data, or ``--design``).

    Returns
    -------
    tuple of (Design, ndarray) or None
        The design and the response column ``y: (n,)``; None when neither flag is given.

    Raises
    ------
    BayeslinError
        ``--design`` without a formula or columns, a formula without a CSV, ``--basis`` with a formula,
        or an unreadable file or formula.
    """
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


def report_fit(result: FitResult, args: argparse.Namespace) -> int:
    """Finish ``bayeslin fit`` for any model: divergences, one ``warning:`` line per problem, ``--json``, ``--plot``.

    Parameters
    ----------
    result : FitResult
        The fit.
    args : argparse.Namespace
        Parsed flags (``json_path``, ``plot_path``, ``strict``).

    Returns
    -------
    int
        The exit status: :data:`EXIT_NOT_CONVERGED` under ``--strict`` when NUTS did not converge, else 0.
    """
    import sys

    payload = result.to_dict()
    print(f"\ndivergences: {payload['divergences']}")
    for line in payload["problems"] + payload["prior_warnings"]:
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
