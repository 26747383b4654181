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


def stream_key(seed: int | Array, purpose: int) -> Array:
    """Root key of one purpose's stream for a run seeded with ``seed``.

    Parameters
    ----------
    seed : int or jax.Array
        The run's seed, or a typed PRNG key.
    purpose : int
        The stream tag (:data:`SIMULATE`, :data:`INFER`, ...).

    Returns
    -------
    jax.Array
        A typed PRNG key: ``fold_in(key(seed), purpose)``.
    """
    key = jax.random.key(seed) if isinstance(seed, int) else seed
    return jax.random.fold_in(key, purpose)


def dataset_keys(seed: int | Array, purpose: int, indices: Array) -> Array:
    """One key per dataset: ``indices: (B,)`` global dataset indices -> keys ``(B,)``.

    Parameters
    ----------
    seed : int or jax.Array
        The run's seed, or a typed PRNG key.
    purpose : int
        The stream tag (:data:`SIMULATE`, :data:`INFER`, ...).
    indices : (B,) array_like of int
        Global dataset indices (32-bit).

    Returns
    -------
    (B,) jax.Array
        Typed PRNG keys; key ``i`` depends only on ``(seed, purpose, indices[i])``.

    Examples
    --------
    >>> import jax
    >>> import numpy as np
    >>> from bayeslin_jax.core import keys
    >>> batch = keys.dataset_keys(0, keys.SIMULATE, np.arange(3))
    >>> alone = keys.dataset_keys(0, keys.SIMULATE, np.array([1]))
    >>> batch.shape, bool((jax.random.key_data(batch[1]) == jax.random.key_data(alone[0])).all())
    ((3,), True)
    """
    root = stream_key(seed, purpose)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.asarray(indices, dtype=jnp.uint32))
