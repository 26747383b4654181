"""bayeslin_jax: Bayesian linear regression on JAX + NumPyro, batched over many datasets.

The front door is :func:`fit` (several predictors: :func:`fit_formula`); the workflows are
:func:`run_study` / :func:`open_study` and :func:`run_sbc` / :func:`open_sbc`. Everything is imported
lazily on first use, so that ``import bayeslin_jax`` (and the ``bayeslin`` CLI's help and error paths) stay fast.

Layout (nothing below imports anything above it)::

    cli, commands/                         command line
    api (fit, FitResult), design,          front door, formulas / design matrices (formulaic),
    plots, compare                         figures, model comparison
    studies/, sbc/                         workflows: run_*, open_*, config, report; on store
    diagnostics                            every diagnostic, array and DataTree level (ArviZ)
    reparam                                whitened NUTS (w = c + A z), float64 exact posterior
    engine/                                batched NUTS over B datasets x C chains
    basis, priors, models, exact, nig,     core: features, priors, NumPyro model, exact oracle,
    simulate, keys, data, errors,          simulators, PRNG streams, input validation,
    datasets/                              shipped CSVs (diabetes, Wampler1)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "fit": "bayeslin_jax.api",
    "fit_formula": "bayeslin_jax.design",
    "load_design": "bayeslin_jax.design",
    "Design": "bayeslin_jax.design",
    "FitResult": "bayeslin_jax.api",
    "BayeslinError": "bayeslin_jax.errors",
    "ModelSpec": "bayeslin_jax.priors",
    "tutorial_spec": "bayeslin_jax.priors",
    "independent_normal": "bayeslin_jax.priors",
    "mvn": "bayeslin_jax.priors",
    "correlated_normal": "bayeslin_jax.priors",
    "known_noise": "bayeslin_jax.priors",
    "half_normal_noise": "bayeslin_jax.priors",
    "linear": "bayeslin_jax.basis",
    "polynomial": "bayeslin_jax.basis",
    "NutsConfig": "bayeslin_jax.engine",
    "sample_nuts": "bayeslin_jax.engine",
    "run_study": "bayeslin_jax.studies",
    "open_study": "bayeslin_jax.studies",
    "run_sbc": "bayeslin_jax.sbc",
    "open_sbc": "bayeslin_jax.sbc",
}
_SUBMODULES = ("basis", "compare", "data", "datasets", "design", "diagnostics", "engine", "exact", "keys", "models",
               "nig", "plots", "priors", "reparam", "sbc", "simulate", "store", "studies")

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _EXPORTS or name in _SUBMODULES:
        # numpyro before arviz_base (which imports numpyro lazily itself): otherwise
        # `numpyro.distributions.distribution` can end up unset and HalfNormal noise fails to sample.
        importlib.import_module("numpyro")
        if name in _SUBMODULES:
            return importlib.import_module(f"bayeslin_jax.{name}")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayeslin_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
