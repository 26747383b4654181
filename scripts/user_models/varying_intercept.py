"""A user's hierarchical model, written against the README's user-model contract (issue 19).

Varying intercepts, non-centred: ``J`` groups, group membership ``group: (n,)`` (a per-point argument,
sliced with the data), a common slope, unknown noise. ``MODEL`` is what ``bayeslin fit/study/sbc --model
scripts/user_models/varying_intercept.py:MODEL`` loads; ``GROUP`` is the membership of its 40 points.
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

import bayeslin_jax as bl

NUM_GROUPS = 8
NUM_POINTS = 40
GROUP = np.arange(NUM_POINTS) % NUM_GROUPS  # 5 points per group


def varying_intercept(x, y=None, *, group, num_groups: int):
    """``y_i ~ N(mu + tau z[group_i] + slope x_i, sigma)``, ``z ~ N(0, 1)^J`` (non-centred)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    slope = numpyro.sample("slope", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("groups", num_groups):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    intercept = numpyro.deterministic("intercept", mu + tau * z)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(intercept[group] + slope * x, sigma), obs=y)


MODEL = bl.user_model(varying_intercept, name="varying_intercept", group=GROUP, num_groups=NUM_GROUPS,
                      per_point=("group",))
