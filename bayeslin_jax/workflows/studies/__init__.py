"""Simulation studies: NUTS and the exact posterior over many simulated datasets, chunked and resumable.

``run``: :func:`run_study` / :func:`open_study` on the shared store machinery (``bayeslin_jax.workflows.store``);
``report``: per-dataset checks, text/JSON/CSV/PNG report.
"""

from bayeslin_jax.workflows.studies.report import Checks, StudyReport, summarize, write_report
from bayeslin_jax.workflows.studies.run import StudyConfig, open_study, run_study

__all__ = ["Checks", "StudyConfig", "StudyReport", "open_study", "run_study", "summarize", "write_report"]
