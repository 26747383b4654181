"""The README's example: SBC of a sampler written by the user, through the public API.

    python scripts/sbc_user_example.py [--simulations 1000]

A hand-written conjugate sampler for the poly3 model (features 1, x, x^2, x^3), then the same
sampler with one deliberate bug (it keeps only the diagonal of the posterior covariance: every
weight's marginal is still exact). Prints both SBC tables; the second must FAIL, on the joint
test quantities only.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from bayeslin_jax.priors import tutorial_spec
from bayeslin_jax.sbc import SamplerInfo, run_sampler_sbc, summarize

# --- README example: begin ---
spec = tutorial_spec(degree=3)  # w ~ N(0, 0.2^2 I), sigma = 0.1, features 1, x, x^2, x^3


def my_sampler(keys, data, num_draws, ignore_correlation=False):
    """keys: (B,), data.x, data.y: (B, n) -> {"w": (B, num_draws, 4)} exact posterior draws."""
    phi = spec.basis(data.x)  # (B, n, 4)
    cov = jnp.linalg.inv(jnp.linalg.inv(spec.prior.cov) + phi.mT @ phi / 0.1**2)
    mean = (cov @ (phi.mT @ data.y[..., None]))[..., 0] / 0.1**2
    z = jax.vmap(lambda k: jax.random.normal(k, (num_draws, 4)))(keys)
    if ignore_correlation:  # the bug: independent draws from the exact marginals
        return {"w": mean[:, None] + z * jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))[:, None]}
    return {"w": mean[:, None] + z @ jnp.linalg.cholesky(cov).mT}


my_sampler.info = SamplerInfo("my-conjugate", "1.0")
# report = summarize(run_sampler_sbc(my_sampler, 1000, spec=spec, store="out/my_sbc.zarr"))
# --- README example: end ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    args = parser.parse_args()
    report = summarize(run_sampler_sbc(my_sampler, args.simulations, spec=spec, seed=1))
    print(report.table())

    def buggy(keys, data, num_draws):
        return my_sampler(keys, data, num_draws, ignore_correlation=True)

    buggy.info = SamplerInfo("my-conjugate-diagonal", "1.0")
    print()
    print(summarize(run_sampler_sbc(buggy, args.simulations, spec=spec, seed=1)).table())


if __name__ == "__main__":
    main()
