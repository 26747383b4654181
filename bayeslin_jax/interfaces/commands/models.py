"""Command-line flags for the models beyond the conjugate case (``fit``, ``study``, ``sbc``).

``--likelihood student-t --nu 4|learn``, ``--prior horseshoe --expected-nonzero 2``,
``--family bernoulli|poisson``. Without them the commands run the Gaussian linear model as before;
with them, the general engine (:mod:`bayeslin_jax.engine.sampling`) and its simulator, DataTree and SBC.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import spec_from_args

if TYPE_CHECKING:
    from bayeslin_jax.core.model import Model


NU_DEFAULT, EXPECTED_NONZERO_DEFAULT, SLAB_SCALE_DEFAULT, SLAB_DF_DEFAULT = "learn", 2.0, 2.0, 4.0


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the likelihood / shrinkage / GLM / user-model flags (``--prior horseshoe`` is one of ``--prior``'s choices).

    Flags that belong to one model default to None here, so that :func:`check_applicable` can refuse
    them with any other model; the help says their defaults.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    """
    group = parser.add_argument_group("models beyond the conjugate case")
    group.add_argument("--likelihood", choices=("normal", "student-t"), default="normal",
                       help="observation noise: normal or student-t (robust regression)")
    group.add_argument("--nu", default=None,
                       help=f"--likelihood student-t: degrees of freedom, a number or 'learn' for nu ~ Gamma(2, 0.1) "
                       f"(default {NU_DEFAULT})")
    group.add_argument("--family", choices=("gaussian", "bernoulli", "poisson"), default="gaussian",
                       help="GLM family: bernoulli (logit link; y in {0, 1}) or poisson (log link; counts)")
    group.add_argument("--expected-nonzero", type=float, default=None,
                       help="--prior horseshoe: expected number of nonzero coefficients p0, sets tau0 "
                       f"(default {EXPECTED_NONZERO_DEFAULT:g})")
    group.add_argument("--slab-scale", type=float, default=None,
                       help=f"--prior horseshoe: slab scale (default {SLAB_SCALE_DEFAULT:g})")
    group.add_argument("--slab-df", type=float, default=None,
                       help=f"--prior horseshoe: slab degrees of freedom (default {SLAB_DF_DEFAULT:g})")
    group.add_argument("--model", metavar="FILE.py:NAME",
                       help="your own model: a bayeslin_jax Model (bl.user_model(fn, ...)) or a NumPyro function "
                       "fn(x, y=None, ...) named NAME in FILE.py; fit: its per-point arguments come from the data "
                       "columns of the same name; study/sbc simulate its declared per-point length")
    group.add_argument("--model-column", action="append", default=[], metavar="ARG=COLUMN",
                       help="fit --model: pass the data column COLUMN as the per-point model argument ARG "
                       "(repeatable; a column named like the argument is matched without it)")


#: flag -> (attribute, the value that means "not given")
_MODEL_FLAGS: dict[str, tuple[str, object]] = {
    "--nu": ("nu", None), "--expected-nonzero": ("expected_nonzero", None), "--slab-scale": ("slab_scale", None),
    "--slab-df": ("slab_df", None), "--model-column": ("model_column", []),
}
_PRIOR_FLAGS: dict[str, tuple[str, object]] = {
    "--prior": ("prior", "auto"), "--prior-mean": ("prior_mean", None), "--prior-df": ("prior_df", None),
    "--prior-cov": ("prior_cov", None), "--intercept-prior": ("intercept_prior", "auto"),
    "--intercept-mean": ("intercept_mean", None), "--intercept-scale": ("intercept_scale", None),
    "--intercept-df": ("intercept_df", None),
}
_NOISE_FLAGS: dict[str, tuple[str, object]] = {"--sigma": ("sigma", None), "--sigma-prior": ("sigma_prior", "auto"),
                "--sigma-prior-scale": ("sigma_prior_scale", None), "--sigma-prior-df": ("sigma_prior_df", None)}


def _given(args: argparse.Namespace, flags: dict) -> list[str]:
    return [flag for flag, (name, unset) in flags.items() if getattr(args, name, unset) not in (unset, None)
            and getattr(args, name, unset) != unset]


def model_kind(args: argparse.Namespace) -> str:
    """Name the model the flags ask for.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_model_arguments` (and ``--prior``).

    Returns
    -------
    str
        ``gaussian``, ``student_t``, ``horseshoe``, ``bernoulli``, ``poisson`` or ``user``.

    Raises
    ------
    BayeslinError
        Two models are combined (one line).
    """
    horseshoe_prior = args.prior == "horseshoe"
    kinds = [k for k, on in (("user", bool(getattr(args, "model", None))), ("student_t", args.likelihood != "normal"),
                             (args.family, args.family != "gaussian"), ("horseshoe", horseshoe_prior)) if on]
    if len(kinds) > 1:
        if "user" in kinds:
            raise BayeslinError("--model is your own model: drop --likelihood / --family / --prior horseshoe")
        raise BayeslinError("--likelihood student-t, --family and --prior horseshoe cannot be combined: pick one")
    return kinds[0] if kinds else "gaussian"


def check_applicable(args: argparse.Namespace, kind: str | None = None) -> str:
    """Refuse, in one line, every flag that does not apply to the model the flags choose; returns its kind.

    The same rule for ``fit``, ``study``, ``sbc`` and ``compare``: ``--nu`` needs ``--likelihood student-t``; the
    horseshoe's flags need ``--prior horseshoe``; ``--model-column`` needs ``--model``; a user model takes no prior,
    noise or family flags (its priors are written in it); a GLM family has no noise sd. (The prior flags' own
    combinations are checked by :class:`~bayeslin_jax.workflows.defaults.PriorChoice`.)

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags.
    kind : str, optional
        The model's kind (default: :func:`model_kind` of ``args``).

    Returns
    -------
    str
        The model's kind.

    Raises
    ------
    BayeslinError
        A flag that does not apply to that model, or two models combined.
    """
    kind = model_kind(args) if kind is None else kind
    needs = {"--nu": "student_t", "--expected-nonzero": "horseshoe", "--slab-scale": "horseshoe",
             "--slab-df": "horseshoe", "--model-column": "user"}
    wording = {"student_t": "--likelihood student-t", "horseshoe": "--prior horseshoe", "user": "--model FILE.py:NAME"}
    for flag in _given(args, _MODEL_FLAGS):
        if needs[flag] != kind:
            raise BayeslinError(f"{flag} applies to {wording[needs[flag]]} only")
    if kind == "user":
        given = _given(args, _PRIOR_FLAGS) + _given(args, _NOISE_FLAGS) + (
            ["--prior-scale"] if getattr(args, "prior_scale", None) not in (None, _default_scale(args)) else [])
        if given or args.basis != "linear":
            flag = given[0] if given else "--basis"
            raise BayeslinError(f"{flag} does not apply to --model: your model's priors and inputs are written in it")
    if kind in ("bernoulli", "poisson") and _given(args, _NOISE_FLAGS):
        raise BayeslinError(f"--family {kind} has no noise sd: drop {_given(args, _NOISE_FLAGS)[0]}")
    if kind == "horseshoe":
        weights = [f for f in _given(args, _PRIOR_FLAGS) if f not in ("--prior", "--intercept-scale")]
        if weights or getattr(args, "prior_scale", None) not in (None, _default_scale(args)):
            raise BayeslinError(f"{(weights or ['--prior-scale'])[0]} does not apply to --prior horseshoe (the "
                                "horseshoe is the weight prior; --intercept-scale sets its intercept's)")
    return kind


def _default_scale(args: argparse.Namespace):
    from bayeslin_jax.interfaces.commands.common import TUTORIAL_PRIOR_SCALE

    return None if hasattr(args, "intercept_prior") else TUTORIAL_PRIOR_SCALE


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """Collect the family options of the flags, their defaults where not given.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags of :func:`add_model_arguments`.

    Returns
    -------
    dict of str to Any
        ``nu``, ``expected_nonzero``, ``slab_scale`` and ``slab_df``.
    """
    return {
        "nu": NU_DEFAULT if args.nu is None else args.nu,
        "expected_nonzero": EXPECTED_NONZERO_DEFAULT if args.expected_nonzero is None else args.expected_nonzero,
        "slab_scale": SLAB_SCALE_DEFAULT if args.slab_scale is None else args.slab_scale,
        "slab_df": SLAB_DF_DEFAULT if args.slab_df is None else args.slab_df,
    }


def load_user_model(reference: str) -> Model:
    """Import a user's model: the :class:`~bayeslin_jax.core.model.Model` (or NumPyro function) ``NAME`` in ``FILE.py``.

    Parameters
    ----------
    reference : str
        ``FILE.py:NAME``.

    Returns
    -------
    Model
        The model; a plain NumPyro function is wrapped by :func:`~bayeslin_jax.core.model.user_model`.

    Raises
    ------
    BayeslinError
        A malformed reference, a missing or non-Python file, a file that fails to import (one line),
        or no model named ``NAME`` in it.
    """
    import importlib.util
    from pathlib import Path

    from bayeslin_jax.core.model import Model, user_model

    path, _, name = reference.rpartition(":")
    if not path or not name:
        raise BayeslinError(f"--model must be FILE.py:NAME, got {reference!r}")
    if not Path(path).is_file():
        raise BayeslinError(f"--model: no such file {path!r}")
    spec = importlib.util.spec_from_file_location(f"bayeslin_user_model_{Path(path).stem}", path)
    if spec is None or spec.loader is None:  # not a Python source file (e.g. model.txt)
        raise BayeslinError(f"--model: {path} is not a Python file (give FILE.py:NAME)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: one line
        raise BayeslinError(f"--model: {path} failed to import ({type(err).__name__}: {err})") from None
    obj = getattr(module, name, None)
    if obj is None:
        raise BayeslinError(f"--model: {path} defines no {name!r}")
    if isinstance(obj, Model):
        return obj
    if callable(obj):
        return user_model(obj)
    raise BayeslinError(f"--model: {name!r} in {path} is a {type(obj).__name__}, not a Model or a model function")


def with_columns(model: Model, columns: list[str], data_path: str, num_points: int | None = None) -> Model:
    """Bind a model's per-point arguments to the data file's columns.

    :func:`bayeslin_jax.workflows.design.bind_columns`: matched by name; ``--model-column ARG=COLUMN`` maps one
    explicitly; text columns are factorized.

    Parameters
    ----------
    model : Model
        The user's model.
    columns : list of str
        The ``--model-column`` values, ``ARG`` or ``ARG=COLUMN``.
    data_path : str
        The CSV file.
    num_points : int, optional
        Points per dataset (default: the table's rows).

    Returns
    -------
    Model
        ``model`` with the arguments bound.

    Raises
    ------
    BayeslinError
        A malformed ``--model-column``, or columns that do not fit the model's arguments.
    """
    from bayeslin_jax.workflows.design import bind_columns, read_table

    table = read_table(data_path)
    explicit = {}
    for item in columns:
        arg, _, column = item.partition("=")
        if not arg:
            raise BayeslinError(f"--model-column must be ARG or ARG=COLUMN, got {item!r}")
        explicit[arg] = column or arg
    return bind_columns(model, table, explicit, num_points=len(table) if num_points is None else num_points,
                        source=str(data_path))


def model_from_args(args: argparse.Namespace, num_points: int) -> Model | None:
    """Build the model the flags ask for with no data to scale by (``study``, ``sbc``).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags.
    num_points : int
        Data points per dataset (the horseshoe's ``tau0`` depends on it).

    Returns
    -------
    Model or None
        The model; None for the plain Gaussian linear model
        (:func:`~bayeslin_jax.interfaces.commands.common.spec_from_args`).

    Raises
    ------
    BayeslinError
        Flags that do not apply to the model, or invalid priors.
    """
    kind = check_applicable(args)
    if kind == "user":
        return load_user_model(args.model)
    if kind == "gaussian":
        return None
    from bayeslin_jax.core.model import glm, horseshoe, student_t

    options = family_options(args)
    spec = spec_from_args(argparse.Namespace(**{**vars(args), "prior": "auto"}) if kind == "horseshoe" else args)
    if kind == "horseshoe":
        return horseshoe(spec.basis, spec.noise, expected_nonzero=options["expected_nonzero"], num_points=num_points,
                         slab_scale=options["slab_scale"], slab_df=options["slab_df"])
    if kind == "student_t":
        return student_t(spec, options["nu"])
    return glm(spec.prior, spec.basis, kind)


def data_model_from_args(args: argparse.Namespace, basis: Any, phi: np.ndarray | None, y: np.ndarray,
                         data_path: str) -> Model:
    """Build the model the flags ask for on a user's data (``fit``, ``compare``).

    A built-in family with priors scaled to the data, or ``--model`` with its per-point arguments
    bound to the data's columns and, with a formula, the design as its basis.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags.
    basis : Polynomial or Design
        The features.
    phi : (n, d) array or None
        The basis on the data (None only with ``--model``, which does not use it).
    y : (n,) array
        The response.
    data_path : str
        The CSV file (the per-point arguments' columns).

    Returns
    -------
    Model
        The model.

    Raises
    ------
    BayeslinError
        Flags that do not apply to the model, a user model with its own basis and a formula, or
        invalid priors.
    """
    import dataclasses

    from bayeslin_jax.interfaces.commands.common import prior_choice_from_args
    from bayeslin_jax.workflows.defaults import build_model

    kind = check_applicable(args)
    if kind == "user":
        model = load_user_model(args.model)
        from bayeslin_jax.workflows.design import Design

        if isinstance(basis, Design):
            if model.basis is not None:
                raise BayeslinError(f"--model {args.model} has its own basis: --formula gives the design")
            model = dataclasses.replace(model, basis=cast(Any, basis))  # a Design is a basis (Model.basis: Polynomial)
        return with_columns(model, args.model_column, data_path, num_points=len(y))
    options = family_options(args)
    if kind != "student_t":
        options.pop("nu")
    if kind != "horseshoe":
        for name in ("expected_nonzero", "slab_scale", "slab_df"):
            options.pop(name)
    assert phi is not None, "the features are computed for every built-in model"  # only --model comes without
    return build_model(kind, basis, phi, y, prior_choice_from_args(args), **options)


__all__ = ["add_model_arguments", "check_applicable", "data_model_from_args", "family_options",
           "load_user_model", "model_from_args", "model_kind", "with_columns"]
