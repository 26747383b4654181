"""FitResult for a user's model: summary, problems, JSON and plot per site and element, as for the Gaussian one."""

from __future__ import annotations

import json

import arviz_stats as azs
import matplotlib
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeslin_jax as bl

matplotlib.use("Agg")

SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SD = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centred_schools(x, y=None, *, sd):
    """Eight schools, centred (a funnel: NUTS diverges). ``x``: the school index (unused but per point)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", 8):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.deterministic("shrink", theta - mu)
        numpyro.sample("y", dist.Normal(theta, sd), obs=y)
    numpyro.deterministic("tau2", tau**2)


@pytest.fixture(scope="module")
def schools():
    model = bl.user_model(centred_schools, sd=SCHOOLS_SD)
    return bl.fit(np.arange(8.0), SCHOOLS_Y, model, seed=0, num_warmup=150, num_draws=150, num_chains=4)


def test_summary_has_every_element_of_every_site(schools) -> None:
    table = schools.summary()
    theta = [f"theta[{k}]" for k in range(8)]
    assert set(table.index) == {"mu", "tau", "tau2", *theta, *[f"shrink[{k}]" for k in range(8)]}
    assert list(table.loc[theta, "site"]) == ["theta"] * 8
    assert "exact_mean" not in table  # no exact posterior: absent, not an error
    draws = schools.draws("theta")  # (C, S, 8)
    assert draws.shape == (4, 150, 8)
    np.testing.assert_allclose(table.loc[theta, "mean"], draws.mean((0, 1)), rtol=1e-6)
    reference = azs.rhat(np.moveaxis(draws, -1, 0).astype(float), chain_axis=1, draw_axis=2)  # ArviZ on the same draws
    np.testing.assert_allclose(table.loc[theta, "rhat"], reference, rtol=1e-6)


def test_problems_report_divergences_rhat_and_ess_of_user_sites(schools) -> None:
    problems = schools.problems()
    divergences = int(schools.tree["sample_stats"]["diverging"].sum())
    assert divergences > 0  # the centred funnel diverges at any seed (hundreds of draws near tau -> 0)
    assert f"{divergences} divergent transitions" in problems
    table = schools.summary()
    low = table.index[np.minimum(table["ess_bulk"], table["ess_tail"]) < 400]
    ess_lines = [line for line in problems if line.startswith("ESS <")]
    assert bool(len(low)) == bool(ess_lines) and all(name in ess_lines[0] for name in low)
    assert schools.tree.attrs["converged"] == 0


def test_json_and_plot_cover_every_parameter(schools, tmp_path) -> None:
    payload = json.loads(schools.to_json(tmp_path / "fit.json"))
    assert payload["features"] == {} and "nuts_cov" not in payload
    assert payload["parameters"]["tau"]["nuts_mean"] == pytest.approx(float(schools.draws("tau").mean()), rel=1e-5)
    assert payload["spec"]["model"] == "centred_schools" and payload["problems"] == schools.problems()
    fig = schools.plot(tmp_path / "fit.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(schools.summary())
    assert (tmp_path / "fit.png").stat().st_size > 0


def test_unknown_site_is_one_line(schools) -> None:
    with pytest.raises(bl.BayeslinError, match=r"has no site 'w': its sites are \["):
        schools.draws("w")
