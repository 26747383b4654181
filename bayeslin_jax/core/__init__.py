"""Core: what a model is, independent of how it is sampled.

``model`` (:class:`~bayeslin_jax.core.model.Model`: any NumPyro model of one dataset, built-ins and user
models alike), ``regressions`` (the built-ins' NumPyro functions), ``basis``, ``priors``, ``exact`` and ``nig``
(conjugate posteriors: the optional exact capability), ``simulate`` (datasets keyed by index), ``data``,
``keys``, ``validation``, ``errors``, ``batching`` and the shipped ``datasets``. Imports nothing above it.
"""
