"""Long statistical checks at realistic sizes (``bash scripts/test.sh -m slow``; a few minutes on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest

from bayeslin_jax.core.basis import Polynomial
from bayeslin_jax.core.priors import ModelSpec, independent_normal, known_noise, tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.sbc import stats as sbc_stats
from bayeslin_jax.workflows.studies import run as study

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("degree", [1, 5])
def test_study_nuts_errors_are_mcse_sized(tmp_path, degree: int) -> None:
    """Over 400 datasets, (NUTS mean - exact mean) / MCSE behaves like N(0, 1)."""
    basis = Polynomial(degree)
    spec = (
        tutorial_spec() if degree == 1 else ModelSpec(basis, independent_normal(0.0, 1.0, basis.dim), known_noise(0.1))
    )
    settings = study.StudyConfig(num_datasets=400, seed=3, nuts=NutsConfig())
    ds = study.run_study(tmp_path / "s.zarr", spec, settings, progress=False)
    z = ((ds["nuts_mean"] - ds["exact_mean"]) / ds["mcse_mean"]).values.ravel()
    assert int(ds["divergences"].sum()) == 0
    assert float((ds["rhat"] > 1.01).mean()) < 0.02
    # sd of N(0,1) sample of size m has SE 1/sqrt(2m); allow 4 SE plus 5% for MCSE estimation noise
    assert abs(z.std() - 1.0) < 4 / np.sqrt(2 * z.size) + 0.05, z.std()
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    ratio = (ds["nuts_sd"] / ds["exact_sd"]).values
    assert abs(np.median(ratio) - 1.0) < 0.02


def test_sbc_nuts_default_settings_pass_at_1000_simulations() -> None:
    config = sbc.SbcConfig(engine="nuts", nuts=NutsConfig())
    report = sbc_stats.summarize(sbc.run_sbc(1000, seed=5, sim_spec=tutorial_spec(), config=config, progress=False))
    assert report.verdict == "pass", report.table()
    assert report.gates["num_failed"] <= 20


def test_sbc_flags_nuts_with_far_too_short_warmup() -> None:
    """A sampler broken in itself (10 warm-up iterations: step size and mass matrix unadapted), not distorted
    after the fact: most simulations fail the R-hat/ESS gate, so the verdict is "fail"."""
    config = sbc.SbcConfig(engine="nuts", nuts=NutsConfig(num_warmup=10, num_draws=100, num_chains=4))
    report = sbc_stats.summarize(sbc.run_sbc(64, seed=31, sim_spec=tutorial_spec(), config=config), alpha=0.01)
    assert report.verdict == "fail", report.table()
    assert report.gates["num_failed"] > 0.5 * 64, report.gates
    assert any("failed the diagnostics gate" in r for r in report.reasons), report.reasons
