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

import jax.numpy as jnp
import numpy as np

from bayeslin_jax import diagnostics, exact
from bayeslin_jax.commands.common import (
    add_sampler_arguments,
    add_spec_arguments,
    check_output_file,
    config_from_args,
    spec_from_args,
)
from bayeslin_jax.compare import correlation_table
from bayeslin_jax.data import load_csv, square_limit, strict_json
from bayeslin_jax.engine import sample_nuts
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.priors import ModelSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="CSV file with columns x and y ('-': read standard input)")
    add_spec_arguments(parser)
    add_sampler_arguments(parser)
    parser.add_argument("--json", dest="json_path", help="write a machine-readable result here")
    parser.add_argument("--plot", dest="plot_path", help="write the posterior lines + predictive band figure here")


def min_points(spec: ModelSpec) -> int:
    """Fewest observations we accept: one per weight, plus one when sigma is learned."""
    return spec.basis.dim + (0 if spec.known_sigma else 1)


def fit_result(tree, spec: ModelSpec, post: exact.GaussianPosterior | None) -> dict:
    """JSON-ready result of one dataset: NUTS and exact summaries, covariances, divergences."""
    table = diagnostics.dataset_summary(tree).isel(dataset=0)
    draws = np.asarray(tree["posterior"]["w"].isel(dataset=0)).reshape(-1, spec.basis.dim)
    features = {}
    for k, name in enumerate(spec.feature_names):
        row = {
            "nuts_mean": float(table["mean"][k]),
            "nuts_sd": float(table["sd"][k]),
            "rhat": float(table["rhat"][k]),
            "ess_bulk": float(table["ess_bulk"][k]),
            "ess_tail": float(table["ess_tail"][k]),
        }
        if post is not None:
            row |= {"exact_mean": float(post.mean[k]), "exact_sd": float(post.sd[k])}
        features[name] = row
    result = {
        "spec": spec.describe(),
        "features": features,
        "nuts_cov": np.cov(draws, rowvar=False).tolist(),
        "divergences": int(table["divergences"]),
    }
    if post is not None:
        result["exact_cov"] = np.asarray(post.cov).tolist()
    if not spec.known_sigma:
        result["sigma"] = {"nuts_mean": float(table["sigma_mean"]), "rhat": float(table["sigma_rhat"])}
    return result


def _x64_hint(dtype) -> str:
    return "" if np.dtype(dtype) == np.float64 else " or use --x64"


def _x_range(x: np.ndarray) -> str:
    return f"x in [{x.min():g}, {x.max():g}]"


def check_features(phi: np.ndarray, spec: ModelSpec, x: np.ndarray, dtype) -> None:
    """Refuse basis features ``phi: (n, d)`` whose sums of squares overflow ``dtype``."""
    limit = square_limit(dtype, phi.shape[0])
    biggest = float(np.max(np.abs(phi))) if np.isfinite(phi).all() else float("inf")
    if biggest > limit:
        raise BayeslinError(
            f"basis {spec.basis.name} on {_x_range(x)}: features reach {biggest:.3g}, too large for "
            f"{np.dtype(dtype).name} (limit {limit:.3g}); rescale x to about [-1, 1] or lower the degree"
            f"{_x64_hint(dtype)}"
        )


def check_exact(post: exact.GaussianPosterior, phi: np.ndarray, spec: ModelSpec, x: np.ndarray) -> None:
    """Refuse a non-finite exact posterior: the design ``phi: (n, d)`` is too ill-conditioned for the dtype."""
    if all(np.isfinite(np.asarray(a)).all() for a in (post.mean, post.cov)):
        return
    cond = np.linalg.cond(np.asarray(phi, dtype=np.float64))
    raise BayeslinError(
        f"the exact posterior of basis {spec.basis.name} on {_x_range(x)} is not finite: the design matrix is "
        f"ill-conditioned (condition number {cond:.2g}); rescale x to about [-1, 1] or lower the degree"
        f"{_x64_hint(phi.dtype)}"
    )


def check_nuts(table, spec: ModelSpec, num_draws: int) -> None:
    """Refuse non-finite NUTS means/sds; warn (stderr) when every draw diverged."""
    values = [np.asarray(table[name]) for name in ("mean", "sd")]
    if not all(np.isfinite(v).all() for v in values):
        raise BayeslinError(
            f"NUTS gave non-finite posterior means or sds for basis {spec.basis.name}: the data are badly "
            "scaled for this model; rescale x and y (about unit scale)"
        )
    if int(table["divergences"]) == num_draws:
        print(f"warning: all {num_draws} draws diverged: the summary is not trustworthy", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    config = config_from_args(args)
    check_output_file(args.json_path, "--json")
    check_output_file(args.plot_path, "--plot")
    dtype = np.float64 if args.x64 else np.float32
    x, y = load_csv(args.data, dtype=dtype)
    needed = min_points(spec)
    if x.shape[0] < needed:
        raise BayeslinError(f"need at least {needed} data points for basis {spec.basis.name}, got {x.shape[0]}")
    phi = spec.basis(jnp.asarray(x, dtype=dtype))[None]
    check_features(np.asarray(phi[0]), spec, x, dtype)
    y_batch = jnp.asarray(y, dtype=dtype)[None]
    post = exact.posterior(phi[0], y_batch[0], spec.prior, spec.noise.sigma) if spec.known_sigma else None
    if post is not None:
        check_exact(post, np.asarray(phi[0]), spec, x)
    result = sample_nuts(args.seed, phi, y_batch, spec, config)
    tree = diagnostics.to_datatree(result, spec, phi, y_batch, x=jnp.asarray(x)[None], include_log_likelihood=False)
    check_nuts(diagnostics.dataset_summary(tree).isel(dataset=0), spec, config.num_chains * config.num_draws)

    settings = f"{config.num_chains} chains x {config.num_draws} draws, {len(x)} points, {spec.basis.name}"
    print(f"NUTS posterior ({settings}):")
    print(diagnostics.summary(tree, 0).to_string())
    if post is not None:
        print("\nExact conjugate posterior:")
        print(f"{'feature':>8} {'mean':>10} {'sd':>10}")
        for k, name in enumerate(spec.feature_names):
            print(f"{name:>8} {float(post.mean[k]):10.4f} {float(post.sd[k]):10.4f}")
        print("\nPosterior covariance and correlation, exact vs NUTS:")
        print(correlation_table(post, result.samples["w"][0], spec.feature_names).to_string(float_format="%.4g"))
    payload = fit_result(tree, spec, post)
    print(f"\ndivergences: {payload['divergences']}")
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(strict_json(payload))
        print(f"wrote {args.json_path}")
    if args.plot_path:
        from bayeslin_jax import plots

        one = {name: np.asarray(v[0]) for name, v in result.samples.items()}
        fig = plots.posterior_fit_figure(x, y, spec, one, post)
        plots.save(fig, args.plot_path)
        print(f"wrote {args.plot_path}")
    return 0
