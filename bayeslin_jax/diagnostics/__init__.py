"""Diagnostics of draws: ``device`` (ArviZ's R-hat, ESS, MCSE and moments in JAX, on the device, for studies and
the SBC gate), ``host`` (ArviZ itself on NumPy arrays and DataTrees: single fits, the reference), ``datatree``
(the ArviZ DataTree of any model's fit), ``plots`` (figures of fits).

Names of ``host`` are reachable here too (``bayeslin_jax.diagnostics.summary``), as before the package split.
"""

import importlib


def __getattr__(name: str):
    host = importlib.import_module("bayeslin_jax.diagnostics.host")
    try:
        return getattr(host, name)
    except AttributeError:
        raise AttributeError(f"module 'bayeslin_jax.diagnostics' has no attribute {name!r}") from None
