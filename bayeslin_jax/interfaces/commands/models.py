"""Command-line flags for the models beyond the conjugate case (``fit``, ``study``, ``sbc``).

``--likelihood student-t --nu 4|learn``, ``--prior horseshoe --expected-nonzero 2``,
``--family bernoulli|poisson``. Without them the commands run the Gaussian linear model as before;
with them, the general engine (:mod:`bayeslin_jax.engine.sampling`) and its simulator, DataTree and SBC.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.interfaces.commands.common import spec_from_args

if TYPE_CHECKING:
    from bayeslin_jax.core.model import Model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the likelihood / shrinkage / GLM flags (``--prior horseshoe`` is one of ``--prior``'s choices)."""
    group = parser.add_argument_group("models beyond the conjugate case")
    group.add_argument("--likelihood", choices=("normal", "student-t"), default="normal",
                       help="observation noise: normal (default) or student-t (robust regression)")
    group.add_argument("--nu", default="learn",
                       help="Student-t degrees of freedom: a number, or 'learn' for nu ~ Gamma(2, 0.1) (default)")
    group.add_argument("--family", choices=("gaussian", "bernoulli", "poisson"), default="gaussian",
                       help="GLM family: bernoulli (logit link; y in {0, 1}) or poisson (log link; counts)")
    group.add_argument("--expected-nonzero", type=float, default=2.0,
                       help="--prior horseshoe: expected number of nonzero coefficients p0 (sets tau0)")
    group.add_argument("--slab-scale", type=float, default=2.0, help="--prior horseshoe: slab scale")
    group.add_argument("--slab-df", type=float, default=4.0, help="--prior horseshoe: slab degrees of freedom")
    group.add_argument("--model", metavar="FILE.py:NAME",
                       help="your own model: a bayeslin_jax Model (bl.user_model(fn, ...)) or a NumPyro function "
                       "fn(x, y=None) named NAME in FILE.py; study/sbc simulate its declared per-point length")
    group.add_argument("--model-column", action="append", default=[], metavar="ARG[=COLUMN]",
                       help="fit --model: pass the data file's COLUMN (default ARG) as the per-point model argument "
                       "ARG (repeatable), e.g. --model-column group")


def load_user_model(reference: str) -> Model:
    """``FILE.py:NAME`` -> the :class:`Model` (or NumPyro function, wrapped) named ``NAME`` in ``FILE.py``."""
    import importlib.util
    from pathlib import Path

    from bayeslin_jax.core.model import Model, user_model

    path, _, name = reference.rpartition(":")
    if not path or not name:
        raise BayeslinError(f"--model must be FILE.py:NAME, got {reference!r}")
    if not Path(path).is_file():
        raise BayeslinError(f"--model: no such file {path!r}")
    spec = importlib.util.spec_from_file_location(f"bayeslin_user_model_{Path(path).stem}", path)
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


def with_columns(model: Model, columns: list[str], data_path: str) -> Model:
    """``model`` with per-point arguments taken from columns of the data file (``--model-column ARG=COLUMN``)."""
    import dataclasses

    import jax.numpy as jnp

    from bayeslin_jax.workflows.design import read_table

    if not columns:
        return model
    table = read_table(data_path)
    params, names = dict(model.params), list(model.per_point or ())
    for item in columns:
        arg, _, column = item.partition("=")
        column = column or arg
        if column not in table.columns:
            raise BayeslinError(f"--model-column {item}: the data have no column {column!r}")
        values = table[column].to_numpy()
        if not np.issubdtype(values.dtype, np.number):
            raise BayeslinError(f"--model-column {item}: column {column!r} is not numeric")
        params[arg] = jnp.asarray(values)
        if arg not in names:
            names.append(arg)
    return dataclasses.replace(model, params=params, per_point=tuple(names))


def model_from_args(args: argparse.Namespace, num_points: int) -> Model | None:
    """The :class:`Model` the flags ask for, or None for the plain Gaussian linear model.

    ``num_points``: data points per dataset (the horseshoe's ``tau0`` depends on it).
    """
    horseshoe_prior = args.prior == "horseshoe"
    if getattr(args, "model", None):
        return load_user_model(args.model)
    if args.likelihood == "normal" and args.family == "gaussian" and not horseshoe_prior:
        return None
    from bayeslin_jax.core.model import glm, horseshoe, student_t

    if sum([args.likelihood != "normal", args.family != "gaussian", horseshoe_prior]) > 1:
        raise BayeslinError("--likelihood student-t, --family and --prior horseshoe cannot be combined: pick one")
    spec = spec_from_args(argparse.Namespace(**{**vars(args), "prior": "independent"}) if horseshoe_prior else args)
    if horseshoe_prior:
        return horseshoe(spec.basis, spec.noise, expected_nonzero=args.expected_nonzero, num_points=num_points,
                         slab_scale=args.slab_scale, slab_df=args.slab_df)
    if args.likelihood == "student-t":
        return student_t(spec, args.nu)
    if args.sigma is not None or args.sigma_prior_scale is not None:
        raise BayeslinError(f"--family {args.family} has no noise sd: drop --sigma / --sigma-prior-scale")
    return glm(spec.prior, spec.basis, args.family)


__all__ = ["add_model_arguments", "load_user_model", "model_from_args", "with_columns"]
