"""Simulation-based calibration: ranks of the truth among posterior draws, over many simulations.

``run``: simulate, fit (NUTS or exact draws), rank, in chunks into a resumable store;
``stats``: ECDF, chi-square and data-averaged-posterior tests, coverage, verdicts;
``plots``: ECDF-PIT with simultaneous bands, rank histograms, coverage (imported on first use).
"""

from bayeslin_jax.sbc.run import ENGINES, Distortion, SbcConfig, open_sbc, run_sbc, with_prior_scale
from bayeslin_jax.sbc.stats import SbcReport, summarize

__all__ = ["ENGINES", "Distortion", "SbcConfig", "SbcReport", "open_sbc", "run_sbc", "summarize", "with_prior_scale"]
