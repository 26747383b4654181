"""bayeslin_jax: Bayesian linear regression on JAX + NumPyro, batched over many datasets.

The front door is :func:`fit` (any :class:`Model`, or a Gaussian :class:`ModelSpec`; several predictors:
:func:`fit_formula`); the workflows are :func:`run_study` / :func:`open_study` and :func:`run_sbc` /
:func:`open_sbc`. Everything is imported lazily on first use, so that ``import bayeslin_jax`` (and the
``bayeslin`` CLI's help and error paths) stay fast.

Layers (folders; each imports only the layers listed below it, ``tests/test_architecture.py`` keeps it so)::

    interfaces/   cli, commands/, tutorial              the bayeslin command line, the demo
    workflows/    fit, design, compare, studies/, sbc/, store
                                                        FitResult, formulas, LOO, studies, SBC, zarr store
    diagnostics/  host (ArviZ), datatree, plots         diagnostics and figures of draws
    engine/       nuts, barrier_free, sampling, whitening
                                                        batched NUTS over B datasets x C chains
    core/         model, regressions, basis, priors, exact, nig, simulate, data, keys, errors, datasets/
                                                        what a model is; exact posteriors; simulators
"""

from __future__ import annotations

import importlib

#: The package version: the one place it is written (``pyproject.toml`` and ``CHANGELOG.md`` repeat it;
#: ``tests/test_project_files.py`` checks that they agree).
__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "fit": "bayeslin_jax.workflows.fit",
    "FitResult": "bayeslin_jax.workflows.fit",
    "compare": "bayeslin_jax.workflows.compare",
    "Comparison": "bayeslin_jax.workflows.compare",
    "fit_formula": "bayeslin_jax.workflows.design",
    "predict_formula": "bayeslin_jax.workflows.design",
    "load_design": "bayeslin_jax.workflows.design",
    "Design": "bayeslin_jax.workflows.design",
    "BayeslinError": "bayeslin_jax.core.errors",
    "Model": "bayeslin_jax.core.model",
    "user_model": "bayeslin_jax.core.model",
    "student_t": "bayeslin_jax.core.model",
    "horseshoe": "bayeslin_jax.core.model",
    "glm": "bayeslin_jax.core.model",
    "ModelSpec": "bayeslin_jax.core.priors",
    "tutorial_spec": "bayeslin_jax.core.priors",
    "independent_normal": "bayeslin_jax.core.priors",
    "mvn": "bayeslin_jax.core.priors",
    "correlated_normal": "bayeslin_jax.core.priors",
    "known_noise": "bayeslin_jax.core.priors",
    "half_normal_noise": "bayeslin_jax.core.priors",
    "term_prior": "bayeslin_jax.core.priors",
    "student_t_prior": "bayeslin_jax.core.priors",
    "cauchy_prior": "bayeslin_jax.core.priors",
    "flat_prior": "bayeslin_jax.core.priors",
    "half_cauchy_noise": "bayeslin_jax.core.priors",
    "half_t_noise": "bayeslin_jax.core.priors",
    "exponential_noise": "bayeslin_jax.core.priors",
    "flat_noise": "bayeslin_jax.core.priors",
    "posterior_is_proper": "bayeslin_jax.core.priors",
    "TermPrior": "bayeslin_jax.core.priors",
    "HalfCauchyNoise": "bayeslin_jax.core.priors",
    "HalfStudentTNoise": "bayeslin_jax.core.priors",
    "ExponentialNoise": "bayeslin_jax.core.priors",
    "FlatNoise": "bayeslin_jax.core.priors",
    "linear": "bayeslin_jax.core.basis",
    "polynomial": "bayeslin_jax.core.basis",
    "NutsConfig": "bayeslin_jax.engine",
    "sample_nuts": "bayeslin_jax.engine",
    "sample_model": "bayeslin_jax.engine.sampling",
    "run_study": "bayeslin_jax.workflows.studies",
    "open_study": "bayeslin_jax.workflows.studies",
    "run_sbc": "bayeslin_jax.workflows.sbc",
    "open_sbc": "bayeslin_jax.workflows.sbc",
    "SbcConfig": "bayeslin_jax.workflows.sbc",
    "StudyConfig": "bayeslin_jax.workflows.studies",
}
_SUBMODULES = ("core", "engine", "diagnostics", "workflows", "interfaces")
#: Module names of release 0.1 -> where they live now (kept for one release; see CHANGELOG.md).
_MOVED = {
    "api": "workflows.fit", "basis": "core.basis", "batching": "core.batching", "cli": "interfaces.cli",
    "commands": "interfaces.commands", "compare": "workflows.compare", "data": "core.data",
    "datasets": "core.datasets", "design": "workflows.design", "errors": "core.errors", "exact": "core.exact",
    "keys": "core.keys", "model_spec": "core.model", "models": "core.regressions", "nig": "core.nig",
    "plots": "diagnostics.plots", "priors": "core.priors", "reparam": "engine.whitening", "sbc": "workflows.sbc",
    "simulate": "core.simulate", "store": "workflows.store", "studies": "workflows.studies",
    "tutorial": "interfaces.tutorial", "validation": "core.validation",
}

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _EXPORTS or name in _SUBMODULES or name in _MOVED:
        # numpyro before arviz_base (which imports numpyro lazily itself): otherwise
        # `numpyro.distributions.distribution` can end up unset and HalfNormal noise fails to sample.
        importlib.import_module("numpyro")
        if name in _EXPORTS:
            value = getattr(importlib.import_module(_EXPORTS[name]), name)
            globals()[name] = value
            return value
        return importlib.import_module(f"bayeslin_jax.{_MOVED.get(name, name)}")
    raise AttributeError(f"module 'bayeslin_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
