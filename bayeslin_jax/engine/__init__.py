"""The batched sampling engine: one compiled program fits B >= 1 datasets x C chains.

``nuts``: every (dataset, chain) run uses NumPyro's NUTS kernel (functional ``hmc``) with its own
warm-up adaptation; runs are batched with ``lax.map`` (CPU) or lock-step ``vmap`` blocks.
"""

from bayeslin_jax.engine.nuts import STAT_NAMES, NutsConfig, NutsResult, chain_keys, run_keys, sample_nuts

__all__ = ["STAT_NAMES", "NutsConfig", "NutsResult", "chain_keys", "run_keys", "sample_nuts"]
