"""``bayeslin fit`` end to end on a small CSV: summary printed, JSON and figure written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayeslin_jax.core import exact, nig
from bayeslin_jax.core.basis import linear
from bayeslin_jax.core.priors import half_normal_noise, independent_normal
from bayeslin_jax.interfaces.cli import main


@pytest.fixture
def csv_path(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 25)
    y = 0.3 * x + 2.0 + rng.normal(0, 0.1, 25)
    path = tmp_path / "data.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="x,y", comments="")
    return path, x, y


def test_fit_writes_json_and_plot(tmp_path, csv_path, capsys) -> None:
    path, x, y = csv_path
    out_json, out_png = tmp_path / "fit.json", tmp_path / "fit.png"
    args = ["fit", str(path), "--prior-scale", "1.0", "--sigma", "0.1", "--warmup", "400", "--draws", "500"]
    assert main([*args, "--json", str(out_json), "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert "Exact conjugate posterior" in printed and "r_hat" in printed
    assert "corr_exact" in printed and "corr_nuts" in printed

    result = json.loads(out_json.read_text())
    post = exact.posterior(linear()(x), y, independent_normal(0.0, 1.0, 2), 0.1)
    for k, name in enumerate(("b", "m")):
        row = result["features"][name]
        assert row["exact_mean"] == pytest.approx(float(post.mean[k]), rel=1e-5)
        # 4 Monte-Carlo standard errors (sd / sqrt(ESS)) apart at most
        assert abs(row["nuts_mean"] - row["exact_mean"]) < 4 * row["exact_sd"] / np.sqrt(row["ess_bulk"])
        assert row["rhat"] < 1.01
    assert np.allclose(result["exact_cov"], np.asarray(post.cov), rtol=1e-4)
    assert result["divergences"] == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # ~6 s; learned noise through the API stays default (tests/test_api.py)
def test_fit_unknown_noise_learns_sigma(tmp_path, csv_path) -> None:
    path, _, _ = csv_path
    out_json = tmp_path / "fit.json"
    args = ["fit", str(path), "--prior-scale", "5", "--sigma-prior-scale", "1", "--warmup", "400", "--draws", "500"]
    assert main([*args, "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert "exact_mean" not in result["features"]["b"]
    # against the quadrature reference (sigma integrated out numerically): within 4 MCSE
    _, x, y = csv_path
    ref = nig.unknown_noise_reference(linear()(x), y, independent_normal(0.0, 5.0, 2), half_normal_noise(1.0))
    sigma = result["parameters"]["sigma"]
    assert sigma["rhat"] < 1.01
    assert abs(sigma["nuts_mean"] - float(ref.sigma_mean)) < 4 * sigma["mcse_mean"], (sigma, float(ref.sigma_mean))
    assert sigma["mcse_mean"] < 0.05 * float(ref.sigma_sd)  # the check is tight, not a wide window
    for k, name in enumerate(("b", "m")):
        row = result["features"][name]
        assert abs(row["nuts_mean"] - ref.mean[k]) < 4 * row["nuts_sd"] / np.sqrt(row["ess_bulk"]), (row, ref.mean)
        assert row["nuts_sd"] == pytest.approx(float(ref.sd[k]), rel=4 / np.sqrt(2 * row["ess_bulk"]))
