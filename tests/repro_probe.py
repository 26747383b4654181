"""Computes the reproducibility-sensitive quantities in several batch shapes: ``python repro_probe.py OUT.npz``.

Run by tests/test_reproducibility.py in a fresh process per CPU vector ISA (``XLA_FLAGS`` must be set
before JAX starts) and in-process for the CPU's own ISA. Keys are ``"<quantity>/<variant>"``; the
variants of one quantity hold the same datasets computed in different batch shapes, so the test
compares them bit for bit (same process, same ISA), and compares ISAs statistically.

Data, truth, exact posterior, evidence and exact draws: ``whole`` (7 datasets in one batch) and
``single`` (one at a time). NUTS: ``pair`` (datasets 2, 3 as a batch of 2) and ``pair_of_whole``
(the same datasets cut from the batch of 4 in ``whole``). Each batch shape is one compilation, the
bulk of the probe's ~20 s of CPU time; device counts are covered by tests/test_study.py (each device
runs the same single-device program on its block of datasets).
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np

from bayeslin_jax.core import exact, keys, simulate
from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.priors import ModelSpec, known_noise, mvn
from bayeslin_jax.engine import NutsConfig, sample_nuts

SEED, NUM_DATASETS, NUM_EXACT_DRAWS = 11, 7, 50
NUTS_DATASETS = 4
NUTS = NutsConfig(num_warmup=200, num_draws=200, num_chains=2)


def spec() -> ModelSpec:
    """Cubic basis with a correlated AR(1) MVN prior: the case where vmap's rounding depended on B."""
    lags = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
    return ModelSpec(Polynomial(3), mvn(np.zeros(4), 0.04 * (-0.5) ** lags), known_noise(0.1))


def per_dataset(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Data, truth, exact posterior, evidence and exact draws of datasets ``indices`` as one batch."""
    model = spec()
    data = simulate.prior_data(SEED, indices, model)
    tutorial = simulate.tutorial_data(SEED, indices)
    phi = model.basis(data.x)
    post = exact.posterior(phi, data.y, model.prior, model.noise.sigma)
    idx = jnp.asarray(indices, dtype=jnp.uint32)
    return {
        "x": data.x, "y": data.y, "w": data.w, "tutorial_y": tutorial.y,
        "exact_mean": post.mean, "exact_cov": post.cov,
        "log_evidence": exact.log_evidence(phi, data.y, model.prior, model.noise.sigma),
        "exact_draws": exact.sample_batch(keys.dataset_keys(SEED, keys.EXACT, idx), post, NUM_EXACT_DRAWS),
    }


def nuts(indices: np.ndarray) -> dict[str, np.ndarray]:
    model = spec()
    data = simulate.prior_data(SEED, indices, model)
    result = sample_nuts(SEED, model.basis(data.x), data.y, model.prior, model.noise, NUTS, dataset_indices=indices)
    return {"nuts_w": result.samples["w"], "nuts_n_steps": result.stats["n_steps"]}


def compute() -> dict[str, np.ndarray]:
    """``{"<quantity>/<variant>": array}``; variants of one quantity hold the same datasets."""
    indices = np.arange(NUM_DATASETS)
    groups = {
        "whole": per_dataset(indices),
        "single": [per_dataset(indices[i : i + 1]) for i in indices],
    }
    groups["single"] = {k: np.concatenate([np.asarray(p[k]) for p in groups["single"]]) for k in groups["whole"]}
    whole = nuts(np.arange(NUTS_DATASETS))
    groups["whole"].update(whole)
    pair = nuts(np.arange(NUTS_DATASETS - 2, NUTS_DATASETS))
    groups["pair"] = {k: np.asarray(pair[k]) for k in pair}
    groups["pair_of_whole"] = {k: np.asarray(whole[k])[NUTS_DATASETS - 2 :] for k in whole}
    return {f"{name}/{variant}": np.asarray(value) for variant, arrays in groups.items()
            for name, value in arrays.items()}


def main(out: str) -> None:
    np.savez(out, **compute())


if __name__ == "__main__":
    main(sys.argv[1])
