"""The public front door: ``bayeslin_jax.fit`` and ``FitResult``.

* one dataset and a batch: NUTS means within 4 MCSE of the exact posterior, sds within a few
  standard errors; the batch's records line up with its datasets;
* strict JSON (``allow_nan=False``), the problems list and its flags on a deliberately starved run;
* bad input is one ``BayeslinError``; ``import bayeslin_jax`` loads no JAX (lazy exports).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import bayeslin_jax as bl
from bayeslin_jax.core import exact, simulate

CONFIG = bl.NutsConfig(num_warmup=500, num_draws=500, num_chains=4)


@pytest.fixture(scope="module")
def data():
    return simulate.tutorial_data(seed=3, indices=np.arange(3))


@pytest.fixture(scope="module")
def single(data):
    return bl.fit(data.x[0], data.y[0], bl.tutorial_spec(), seed=1, config=CONFIG)


@pytest.fixture(scope="module")
def batch(data):
    return bl.fit(data.x, data.y, bl.tutorial_spec(), seed=1, config=CONFIG)


def _check_against_exact(table) -> None:
    """NUTS mean within 4 MCSE, sd within 4 standard errors (relative se of an sd ~ 1 / sqrt(2 ESS))."""
    assert np.all(np.abs(table["z"]) < 4), table
    rel_se = 1.0 / np.sqrt(2.0 * table["ess_bulk"])
    assert np.all(np.abs(table["sd"] / table["exact_sd"] - 1.0) < 4 * rel_se + 0.01), table


def test_single_fit_matches_exact(single, data) -> None:
    table = single.summary()
    assert list(table.index) == ["b", "m"]
    _check_against_exact(table)
    post = exact.posterior(bl.linear()(data.x[0]), data.y[0], single.spec.prior, single.spec.noise.sigma)
    np.testing.assert_allclose(table["exact_mean"], np.asarray(post.mean), rtol=1e-6)
    assert single.draws("w").shape == (4, 500, 2)
    assert dict(single.tree["posterior"].sizes) == {"chain": 4, "draw": 500, "feature": 2}
    assert single.tree["log_likelihood"]["y"].shape == (4, 500, 11)
    assert single.problems() == []


def test_batch_fit_matches_exact_per_dataset(batch, data) -> None:
    table = batch.summary()
    assert table.index.names == ["dataset", "parameter"] and len(table) == 6
    _check_against_exact(table)
    for i in range(3):
        post = exact.posterior(bl.linear()(data.x[i]), data.y[i], batch.spec.prior, batch.spec.noise.sigma)
        np.testing.assert_allclose(table.loc[i, "exact_mean"], np.asarray(post.mean), rtol=1e-6)
    record = batch.to_dict()["datasets"][2]
    assert record["dataset"] == 2
    assert record["features"]["m"]["nuts_mean"] == pytest.approx(float(table.loc[(2, "m"), "mean"]))
    np.testing.assert_allclose(record["exact_cov"], np.asarray(batch.exact.cov[2]), rtol=1e-6)


def test_json_is_strict_and_complete(single, tmp_path) -> None:
    path = tmp_path / "fit.json"
    text = single.to_json(path)

    def reject(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    payload = json.loads(path.read_text(), parse_constant=reject)
    assert payload == json.loads(text)
    assert set(payload["features"]) == {"b", "m"}
    b = payload["features"]["b"]
    assert {"nuts_mean", "nuts_sd", "rhat", "ess_bulk", "ess_tail", "mcse_mean", "exact_mean", "exact_sd"} <= set(b)
    cov = np.array(payload["nuts_cov"])
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert payload["sampler"]["num_draws"] == 500 and payload["non_finite"] == []
    corr = single.correlation_table()
    assert np.all(np.abs(corr["cov_nuts"] - corr["cov_exact"]) < 4 * corr["cov_mcse"])


def test_starved_run_reports_its_problems(data) -> None:
    """Too short a warm-up and a depth-1 tree: the problems list names R-hat/ESS and the depth limit."""
    result = bl.fit(data.x[0], data.y[0], bl.tutorial_spec(), seed=0, num_warmup=10, num_draws=50, num_chains=2,
                    max_tree_depth=1)
    problems = result.problems()
    assert any("maximum tree depth 1" in line for line in problems), problems
    assert any(line.startswith("ESS <") for line in problems), problems
    payload = result.to_dict()
    assert payload["problems"] == problems
    assert payload["max_tree_depth_hits"] == int((result.tree["sample_stats"]["tree_depth"] >= 1).sum())


def test_sampler_options_override_config(single) -> None:
    assert single.config == CONFIG
    with pytest.raises(bl.BayeslinError, match=r"unknown sampler option.*num_samples"):
        bl.fit([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], num_samples=10)
    with pytest.raises(bl.BayeslinError, match="model must be a bayeslin_jax Model or ModelSpec, got int"):
        bl.fit([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], 42)
    with pytest.raises(bl.BayeslinError, match="unknown model family 'lineal'"):
        bl.fit([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], "lineal")
    with pytest.raises(bl.BayeslinError, match="at least 2 data points"):
        bl.fit([0.0], [1.0])
    with pytest.raises(bl.BayeslinError, match="NaN"):
        bl.fit([0.0, np.nan, 1.0], [1.0, 2.0, 3.0])


def test_learned_noise_has_no_exact_posterior(data) -> None:
    spec = bl.ModelSpec(bl.linear(), bl.independent_normal(0.0, 3.0, 2), bl.half_normal_noise(1.0))
    result = bl.fit(data.x[0], data.y[0], spec, num_warmup=200, num_draws=200, num_chains=2)
    assert result.exact is None and "exact_mean" not in result.summary()
    assert result.draws("sigma").shape == (2, 200)
    sigma_mean = float(result.draws("sigma").mean())
    assert result.to_dict()["parameters"]["sigma"]["nuts_mean"] == pytest.approx(sigma_mean, rel=1e-5)
    with pytest.raises(bl.BayeslinError, match="needs known sigma"):
        result.correlation_table()


def test_import_is_lazy() -> None:
    """``import bayeslin_jax`` loads neither JAX nor NumPyro nor ArviZ; the names resolve on use."""
    code = (
        "import sys, bayeslin_jax as bl\n"
        "heavy = [m for m in ('jax', 'numpyro', 'arviz_base', 'xarray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(bl.fit) and 'jax' in sys.modules\n"
        "assert set(bl.__all__) <= set(dir(bl))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
