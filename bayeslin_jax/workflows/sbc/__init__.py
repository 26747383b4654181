"""Simulation-based calibration: ranks of the truth among posterior draws, over many simulations.

``run``: simulate, fit (NUTS or exact draws), rank, in chunks into a resumable store;
``stats``: ECDF, chi-square and data-averaged-posterior tests, coverage, verdicts;
``plots``: ECDF-PIT with simultaneous bands, rank histograms, coverage (imported on first use);
``samplers``: SBC of any sampler (user callables, precomputed draws, the NUTS engine) with user
simulators and ``quantities`` (test quantities; defaults see the joint posterior).
"""

from bayeslin_jax.workflows.sbc.quantities import Quantity, default_quantities
from bayeslin_jax.workflows.sbc.run import ENGINES, Distortion, SbcConfig, open_sbc, run_sbc, with_prior_scale
from bayeslin_jax.workflows.sbc.samplers import (
    PrecomputedDraws,
    SamplerInfo,
    SamplerResult,
    nuts_sampler,
    run_sampler_sbc,
    with_info,
)
from bayeslin_jax.workflows.sbc.stats import SbcReport, summarize

__all__ = [
    "ENGINES",
    "Distortion",
    "PrecomputedDraws",
    "Quantity",
    "SamplerInfo",
    "SamplerResult",
    "SbcConfig",
    "SbcReport",
    "default_quantities",
    "nuts_sampler",
    "open_sbc",
    "run_sampler_sbc",
    "run_sbc",
    "summarize",
    "with_info",
    "with_prior_scale",
]
