"""The batched sampling engine: one compiled program fits B >= 1 datasets x C chains.

``nuts``: every (dataset, chain) run uses NumPyro's NUTS kernel (functional ``hmc``) with its own
warm-up adaptation; runs are batched with ``lax.map`` (CPU) or lock-step ``vmap`` blocks.
``barrier_free``: the same kernel as a per-lane finite state machine (``NutsConfig(method="barrier_free")``,
the default off CPU): one batched leapfrog per loop step, lanes never wait for each other.
"""

from bayeslin_jax.engine.barrier_free import LaneCounts, lane_utilization
from bayeslin_jax.engine.nuts import (
    STAT_NAMES,
    SUMMARY_STAT_NAMES,
    NutsConfig,
    NutsResult,
    chain_keys,
    run_keys,
    summarize_draw_stats,
)
from bayeslin_jax.engine.sampling import sample_nuts

__all__ = [
    "STAT_NAMES",
    "SUMMARY_STAT_NAMES",
    "LaneCounts",
    "NutsConfig",
    "NutsResult",
    "chain_keys",
    "lane_utilization",
    "run_keys",
    "sample_nuts",
    "summarize_draw_stats",
]
