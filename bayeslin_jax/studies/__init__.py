"""Simulation studies: NUTS and the exact posterior over many simulated datasets, chunked and resumable.

``run``: :func:`run_study` / :func:`open_study` on the shared store machinery (``bayeslin_jax.store``);
``report``: per-dataset checks, text/JSON/CSV/PNG report.
"""

from bayeslin_jax.studies.report import Checks, write_report
from bayeslin_jax.studies.run import open_study, run_study

__all__ = ["Checks", "open_study", "run_study", "write_report"]
