"""Per-dataset computation whose compiled program does not depend on the batch size.

``jax.vmap`` over B datasets lets XLA vectorize *across* the batch: the loop it emits, its vector
width, its remainder loop and its fusion of multiply-adds depend on B and on the CPU's vector ISA,
so dataset *i* can round differently in a batch of 6 than in a batch of 1 (observed: 1 ulp in
simulated weights, 2e-7 in exact posterior means). :func:`map_datasets` instead runs one compiled
per-dataset body in a loop (``jax.lax.map``, ``batch_size=None``): the body's shapes are those of
one dataset, so its machine code, and therefore every rounding, is the same for any B, chunking
or device count on a given machine. A batch of one is padded to two so that XLA never inlines
the one-trip loop into the surrounding program (where fusion could differ).

Across CPUs (SSE4.2 / AVX2 / AVX-512 code paths) results still differ in the last bits.

On accelerators a loop of one-dataset programs is slow (each trip is a kernel launch: 10^5 exact
posteriors took 11.5 s on an H200), so there the datasets run as vectorized blocks of
:data:`ACCELERATOR_BLOCK`, padded to whole blocks (at least two): the same compiled block body for any
B (the loop's trip count changes, the body does not). A small batch pays for 8192 datasets: cheap for
simulation and exact posteriors; exact *draws* stay one dataset at a time (``sequential``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

ACCELERATOR_BLOCK = 4096  # datasets per vectorized block off CPU


def map_datasets(fn: Callable[..., Any], *args: Any, batch_ndim: int = 1, sequential: bool = False) -> Any:
    """``fn`` applied to each dataset, stacked: ``fn(*[leaf[i] for leaf in args])`` for every ``i``.

    ``args``: pytrees whose leaves all have the same leading ``batch_ndim`` axes (shape ``batch``);
    ``fn`` sees one dataset (those axes removed). Returns ``fn``'s output with ``batch`` prepended.
    ``sequential``: one dataset at a time on accelerators too (NUTS runs, whose trees differ in length);
    otherwise blocks of :data:`ACCELERATOR_BLOCK` off CPU.

    Parameters
    ----------
    fn : callable
        The per-dataset function, ``fn(*one_dataset_leaves)``.
    *args : pytree
        Arrays (or pytrees of arrays) with the same leading ``batch_ndim`` axes.
    batch_ndim : int, optional
        Number of leading batch axes (default 1).
    sequential : bool, optional
        One dataset at a time on accelerators too (default False).

    Returns
    -------
    pytree
        ``fn``'s output for every dataset, stacked with the batch shape prepended.

    Raises
    ------
    ValueError
        When the leaves disagree on the batch shape.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayeslin_jax.core.batching import map_datasets
    >>> map_datasets(lambda a: a.sum(), jnp.ones((3, 4))).tolist()
    [4.0, 4.0, 4.0]
    """
    leaves = jax.tree.leaves(args)
    batch = leaves[0].shape[:batch_ndim]
    if any(leaf.shape[:batch_ndim] != batch for leaf in leaves):
        raise ValueError(f"map_datasets: leaves disagree on the batch shape {batch}")
    size = math.prod(batch)
    flat = jax.tree.map(lambda a: jnp.reshape(a, (size, *a.shape[batch_ndim:])), args)
    block = None if sequential or jax.default_backend() == "cpu" else ACCELERATOR_BLOCK
    # pad to whole blocks (a remainder would be a second compiled shape); a one-trip loop would be
    # inlined by XLA into the surrounding program, where fusion could differ: pad to two trips
    padded = max(2 * (block or 1), -(-size // (block or 1)) * (block or 1))
    if padded > size:
        flat = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - size, axis=0)]), flat)
    out = jax.lax.map(lambda xs: fn(*xs), flat, batch_size=block)
    return jax.tree.map(lambda a: jnp.reshape(a[:size], (*batch, *a.shape[1:])), out)
