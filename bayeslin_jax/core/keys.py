"""PRNG key derivation: every random stream is a pure function of (seed, purpose, dataset index).

Dataset ``i`` therefore gets the same data and the same draws whatever the batch size,
chunking or device count. Keys are integer (threefry) hashes: bit-identical on every CPU and GPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

# Fixed stream tags: separate, reproducible streams per purpose.
SIMULATE = 0
INFER = 1
EXACT = 2
PRIOR_PREDICTIVE = 3
POSTERIOR_PREDICTIVE = 4
SBC_JITTER = 5  # rank tie-breaks / PIT jitter in simulation-based calibration


#: Seeds and dataset indices are 32-bit: a seed outside ``[0, 2^32)`` would wrap around (-1 would be 2^32 - 1).
SEED_LIMIT = 2**32


def check_seed(seed, what: str = "seed") -> int:
    """The one seed rule: an integer in ``[0, 2^32)``; anything else is a one-line
    :class:`~bayeslin_jax.core.errors.BayeslinError` naming ``what`` (``"--seed"`` on the command line)."""
    import numpy as np

    from bayeslin_jax.core.errors import BayeslinError

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < SEED_LIMIT:
        raise BayeslinError(f"{what} must be an integer in [0, 2^32) = [0, {SEED_LIMIT - 1}], got {seed!r}")
    return int(seed)


def stream_key(seed: int | Array, purpose: int) -> Array:
    """Root key of one purpose's stream for a run seeded with ``seed``."""
    key = jax.random.key(seed) if isinstance(seed, int) else seed
    return jax.random.fold_in(key, purpose)


def dataset_keys(seed: int | Array, purpose: int, indices: Array) -> Array:
    """One key per dataset: ``indices: (B,)`` global dataset indices -> keys ``(B,)``."""
    root = stream_key(seed, purpose)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.asarray(indices, dtype=jnp.uint32))
