"""The README's example: SBC of a sampler written by the user, through the public API.

    python scripts/sbc_user_example.py [--simulations 1000]

A hand-written conjugate sampler for the poly3 model (features 1, x, x^2, x^3), then the same
sampler with one deliberate bug (each weight's draws shuffled independently: every weight's
marginal is still exact, the posterior correlation is gone). Prints both SBC tables; the second
must FAIL, on the joint test quantities only.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.workflows.sbc import SamplerInfo, run_sampler_sbc, summarize

# --- README example: begin ---
spec = tutorial_spec(degree=3)  # w ~ N(0, 0.2² I), σ = 0.1, features 1, x, x², x³


def my_sampler(keys, data, num_draws):  # keys: (B,), data.x, data.y: (B, n)
    phi = spec.basis(data.x)  # (B, n, 4)
    cov = jnp.linalg.inv(jnp.linalg.inv(spec.prior.cov) + phi.mT @ phi / 0.1**2)
    mean = (cov @ (phi.mT @ data.y[..., None]))[..., 0] / 0.1**2
    z = jax.vmap(lambda k: jax.random.normal(k, (num_draws, 4)))(keys)
    return {"w": mean[:, None] + z @ jnp.linalg.cholesky(cov).mT}  # (B, L, 4)


my_sampler.info = SamplerInfo("my-conjugate", "1.0")  # recorded in the store's metadata
# report = summarize(run_sampler_sbc(my_sampler, 1000, spec=spec, store="out/my_sbc.zarr"))
# --- README example: end ---


def shuffled_sampler(keys, data, num_draws):
    """The bug: each weight's draws permuted independently (marginals exact, correlation gone)."""
    w = my_sampler(keys, data, num_draws)["w"]  # (B, L, 4)

    def shuffle(key, draws):  # (L, 4)
        perms = jax.vmap(lambda k: jax.random.permutation(k, num_draws))(jax.random.split(key, draws.shape[-1]))
        return jnp.take_along_axis(draws, perms.T, axis=0)

    return {"w": jax.vmap(shuffle)(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), w)}


shuffled_sampler.info = SamplerInfo("my-conjugate-shuffled", "1.0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    args = parser.parse_args()
    for sampler in (my_sampler, shuffled_sampler):
        print(summarize(run_sampler_sbc(sampler, args.simulations, spec=spec, seed=1)).table(), end="\n\n")


if __name__ == "__main__":
    main()
