"""A user's hierarchical model end to end (issue 19): per-point arguments, fit, study, SBC and the CLI.

The model is ``scripts/user_models/varying_intercept.py`` (J = 8 groups, 40 points, non-centred, group
membership a per-point array), written as a user would against the README's contract. The engine's
posterior means agree with a long run of NumPyro's own ``MCMC`` within MCSE; per-point arguments of the
wrong length are one line naming the argument before anything compiles.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import jax
import numpy as np
import numpyro
import pytest
from arviz_stats.base import array_stats
from numpyro.infer import MCMC, NUTS

import bayeslin_jax as bl
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.model import flat_parameters
from bayeslin_jax.core.simulate import simulate_model
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.engine.sampling import inspect_model
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows.sbc import summarize as summarize_sbc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "user_models"))
import varying_intercept as vi  # noqa: E402

CONFIG = NutsConfig(num_warmup=1000, num_draws=1000, num_chains=4, target_accept=0.95)
TRUTH = {"mu": 0.5, "tau": 0.8, "slope": 1.0, "sigma": 0.5}


def fixed_truth_data(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num`` datasets of 40 points from fixed (not prior-drawn) parameters: no funnel-sized tau."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (num, vi.NUM_POINTS))
    z = rng.normal(size=(num, vi.NUM_GROUPS))
    intercept = TRUTH["mu"] + TRUTH["tau"] * z
    y = intercept[:, vi.GROUP] + TRUTH["slope"] * x + TRUTH["sigma"] * rng.normal(size=x.shape)
    return x.astype(np.float32), y.astype(np.float32)


def _with_fitted(x, y=None, *, group, num_groups):
    vi.varying_intercept(x, y, group=group, num_groups=num_groups)
    numpyro.deterministic("fitted", 2.0 * x)  # shape (n,): changes with the number of points


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_means_match_numpyro_mcmc_within_mcse() -> None:
    """2 datasets, every element of every site (mu, tau, slope, sigma, z[8], intercept[8]): the engine's
    posterior mean minus NumPyro's (4 chains x 1500 draws) over the combined MCSE is |z| < 4.5
    (88 z's: P(max > 4.5) < 1e-3 when both are right); sds agree to 10 %."""
    x, y = fixed_truth_data(2)
    result = bl.fit(x, y, vi.MODEL, seed=3, config=CONFIG)
    table = result.summary()
    assert result.problems() == [], result.problems()
    # one MCMC object with jit_model_args: the second dataset reuses the first one's compiled program
    model = functools.partial(vi.varying_intercept, num_groups=vi.NUM_GROUPS)  # a static plate size
    mcmc = MCMC(NUTS(model, target_accept_prob=0.95), num_warmup=600, num_samples=1500,
                num_chains=4, chain_method="vectorized", progress_bar=False, jit_model_args=True)
    for i in range(2):
        mcmc.run(jax.random.key(100 + i), x[i], y[i], group=vi.GROUP)
        reference = mcmc.get_samples(group_by_chain=True)
        names, draws = flat_parameters(reference, ("intercept", "mu", "sigma", "slope", "tau", "z"), 2)
        ref_mean = draws.mean((0, 1))
        ref_mcse = array_stats.mcse(np.moveaxis(draws, -1, 0), chain_axis=-2, draw_axis=-1)
        ours = table.loc[i].loc[names]
        z = (ours["mean"].to_numpy() - ref_mean) / np.hypot(ours["mcse_mean"].to_numpy(), ref_mcse)
        assert np.abs(z).max() < 4.5, dict(zip(names, np.round(z, 2), strict=True))
        ratio = ours["sd"].to_numpy() / draws.std((0, 1), ddof=1)
        assert np.all(np.abs(ratio - 1) < 0.1), dict(zip(names, np.round(ratio, 3), strict=True))
    assert {"tau", "z[7]", "intercept[0]"} <= set(table.index.get_level_values("parameter"))
    payload = json.loads(result.to_json())
    record = payload["datasets"][1]["parameters"]["tau"]
    assert record["nuts_mean"] == pytest.approx(float(table.loc[(1, "tau"), "mean"]))


def test_per_point_arguments_detected_sliced_and_checked() -> None:
    undeclared = bl.user_model(vi.varying_intercept, group=vi.GROUP, num_groups=vi.NUM_GROUPS)
    assert undeclared.point_arguments(40) == ("group",) and undeclared.point_arguments(11) == ()
    assert vi.MODEL.num_points == 40 and undeclared.num_points is None
    x, y = fixed_truth_data(2)
    sites = inspect_model(undeclared, undeclared.design(x), y)  # traces n and n - 1 points: group is sliced
    assert "intercept" in sites.kept and dict(sites.latent)["z"] == (8,)
    with_fitted = bl.user_model(_with_fitted, group=vi.GROUP, num_groups=vi.NUM_GROUPS)
    kept = inspect_model(with_fitted, x, y).kept
    assert "intercept" in kept and "fitted" not in kept  # a per-point deterministic is not a posterior draw
    # wrong lengths: one line naming the argument, before any compilation
    with pytest.raises(BayeslinError, match=r"'group' has 40 rows, but the data have 39 points") as err:
        bl.fit(x[:, :39], y[:, :39], vi.MODEL, seed=0, config=CONFIG)
    assert "\n" not in str(err.value)
    with pytest.raises(BayeslinError, match=r"'group' has 40 rows, but the data have 11 points"):
        simulate_model(0, np.arange(2), vi.MODEL, num_points=11)
    with pytest.raises(BayeslinError, match="per-point argument 'groups' is not an array argument"):
        bl.user_model(vi.varying_intercept, group=vi.GROUP, num_groups=8, per_point=("groups",))
    with pytest.raises(BayeslinError, match="model argument 'levels' \\(list\\) is neither an array nor hashable"):
        bl.user_model(vi.varying_intercept, group=vi.GROUP, num_groups=8, levels=[1, 2])


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_study_and_sbc_through_the_public_api(tmp_path) -> None:
    """Every element of every site is a study 'feature' and an SBC quantity; the SBC report says how many
    simulations each gate check removed."""
    config = NutsConfig(num_warmup=300, num_draws=300, num_chains=4)
    ds = bl.run_study(tmp_path / "study.zarr", vi.MODEL, bl.StudyConfig(num_datasets=4, nuts=config, chunk_size=4),
                      progress=False)  # the model's per-point group fixes 40 points
    features = list(ds["feature"].values)
    assert {"mu", "tau", "z[7]", "intercept[0]"} <= set(features) and len(features) == 4 + 8 + 8
    truth = simulate_model(0, np.arange(4), vi.MODEL, num_points=vi.NUM_POINTS).truth  # the study's seed 0
    np.testing.assert_allclose(ds["true_w"].sel(feature="tau"), truth["tau"], rtol=1e-6)
    np.testing.assert_allclose(ds["true_w"].sel(feature="z[7]"), truth["z"][:, 7], rtol=1e-6)
    assert np.isfinite(ds["rhat"].values).all() and ds["nuts_mean"].shape == (4, len(features))
    sbc = bl.run_sbc(4, seed=2, sim_spec=vi.MODEL, chunk_size=4,
                     config=bl.SbcConfig(nuts=config, num_ranks=50))
    report = summarize_sbc(sbc)
    assert "tau" in report.quantities and "z[0]" in report.quantities
    gates = report.gates
    assert gates["fraction_failed"] == gates["num_failed"] / 4 and set(gates["by_check"]) == {
        "R-hat", "ESS", "divergences"}
    assert report.verdict in ("pass", "fail", "not converged")
    assert "gate" in report.table()


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_cli_fits_a_user_model_file_with_a_per_point_column(tmp_path, capsys) -> None:
    x, y = fixed_truth_data(1, seed=5)
    data = tmp_path / "groups.csv"
    data.write_text("x,y,group\n" + "".join(f"{a},{b},{g}\n" for a, b, g in zip(x[0], y[0], vi.GROUP, strict=True)))
    model_file = ROOT / "scripts" / "user_models" / "varying_intercept.py"
    out = tmp_path / "fit.json"
    argv = ["fit", str(data), "--model", f"{model_file}:varying_intercept", "--model-column", "group",
            "--warmup", "300", "--draws", "300", "--json", str(out)]
    with pytest.raises(BayeslinError, match="num_groups"):  # the bare function lacks its static argument
        from bayeslin_jax.interfaces.commands.models import load_user_model, with_columns

        model = with_columns(load_user_model(f"{model_file}:varying_intercept"), ["group"], str(data))
        bl.fit(x, y, model, seed=0, config=NutsConfig(num_warmup=10, num_draws=10))
    argv[3] = f"{model_file}:MODEL"
    status = main(argv)
    captured = capsys.readouterr()
    assert status in (0, 1), captured.err
    payload = json.loads(out.read_text())
    assert {"mu", "tau", "z[0]"} <= set(payload["parameters"]) and "tau" in captured.out
    assert abs(payload["parameters"]["slope"]["nuts_mean"] - TRUTH["slope"]) < 5 * payload["parameters"]["slope"][
        "nuts_sd"]
    assert main(["fit", str(data), "--model", f"{model_file}:NOPE"]) == 2
    assert "defines no 'NOPE'" in capsys.readouterr().err
