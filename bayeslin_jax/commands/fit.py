"""``bayeslin fit DATA.csv``: NUTS (and the exact posterior when sigma is known) on a user's data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import arviz_stats as azs
import jax.numpy as jnp
import numpy as np

from bayeslin_jax import diagnostics, exact
from bayeslin_jax.commands.common import add_sampler_arguments, add_spec_arguments, config_from_args, spec_from_args
from bayeslin_jax.compare import correlation_table
from bayeslin_jax.data import load_csv
from bayeslin_jax.engine import sample_nuts
from bayeslin_jax.errors import BayeslinError
from bayeslin_jax.priors import ModelSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="CSV file with columns x and y")
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
        sigma = tree["posterior"]["sigma"].isel(dataset=0)
        result["sigma"] = {"nuts_mean": float(table["sigma_mean"]), "nuts_sd": float(sigma.std(ddof=1)),
                           "rhat": float(table["sigma_rhat"]),
                           "mcse_mean": float(azs.mcse(sigma, sample_dims=["chain", "draw"], method="mean"))}
    return result


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    config = config_from_args(args)
    x, y = load_csv(args.data)
    needed = min_points(spec)
    if x.shape[0] < needed:
        raise BayeslinError(f"need at least {needed} data points for basis {spec.basis.name}, got {x.shape[0]}")
    phi = spec.basis(jnp.asarray(x))[None]
    y_batch = jnp.asarray(y)[None]
    result = sample_nuts(args.seed, phi, y_batch, spec, config)
    tree = diagnostics.to_datatree(result, spec, phi, y_batch, x=jnp.asarray(x)[None])
    post = exact.posterior(phi[0], y_batch[0], spec.prior, spec.noise.sigma) if spec.known_sigma else None

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
        Path(args.json_path).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json_path}")
    if args.plot_path:
        from bayeslin_jax import plots

        one = {name: np.asarray(v[0]) for name, v in result.samples.items()}
        fig = plots.posterior_fit_figure(x, y, spec, one, post)
        plots.save(fig, args.plot_path)
        print(f"wrote {args.plot_path}")
    return 0
