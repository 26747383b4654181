"""Workflows on top of the engine: ``fit`` (one dataset or a batch -> :class:`~bayeslin_jax.workflows.fit.FitResult`),
``design`` (formula fits), ``compare`` (LOO and exact evidence), ``studies`` and ``sbc`` (many simulations, chunked
into the resumable checksummed ``store``)."""
