"""The compiled run-key derivation gives run (i, c) the key fold_in(fold_in(fold_in(key(seed), INFER), i), c)."""

import jax
import numpy as np

from bayeslin_jax.core import keys as keyring
from bayeslin_jax.engine.nuts import run_keys


def test_run_keys_are_the_documented_fold_ins():
    indices = [0, 123456]
    for seed in (2**31 - 1, jax.random.key(7)):
        got = np.asarray(jax.random.key_data(run_keys(seed, np.asarray(indices), 2)))
        root = jax.random.key(seed) if isinstance(seed, int) else seed
        stream = jax.random.fold_in(root, keyring.INFER)
        want = [jax.random.key_data(jax.random.fold_in(jax.random.fold_in(stream, i), c))
                for i in indices for c in range(2)]
        np.testing.assert_array_equal(got, np.stack([np.asarray(w) for w in want]))
