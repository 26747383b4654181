"""``bayeslin demo --quick`` end to end through the CLI: figures, JSON, and NUTS agreeing with the exact posterior.

Tolerances come from the run's own diagnostics: a mean within 5 Monte-Carlo standard errors
(``exact_sd / sqrt(ess_bulk)``), an sd within 5 relative SEs (``1 / sqrt(2 ESS)``), a correlation
within 5 SEs (``(1 - rho^2) / sqrt(ESS)``), using the smaller of bulk and tail ESS for the latter two.
R-hat of the quick run (2 chains x 100 draws) is noisy: for 2 x 100 *independent* normal draws it
exceeds 1.05 with probability 1e-3 and 1.1 with probability < 1e-4 (20,000 simulated replicates,
largest 1.08); with lag-1 autocorrelation 0.3, 2e-2 and 8e-4. A CPU with other rounding gave 1.059
on a healthy run, so the bound is 1.1: it still catches chains stuck in different places.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from bayeslin_jax.core import simulate
from bayeslin_jax.interfaces import cli
from bayeslin_jax.interfaces.commands import demo

RHAT_MAX = 1.1  # see the module docstring
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_PNGS = ["data.png"] + [
    f"{kind}_{fig}.png"
    for kind in ("independent", "mvn")
    for fig in ("prior_lines", "posterior_lines", "trace", "band", "pair")
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "--out", str(out), "--quick", "--seed", "0"])
    return status, out, stdout.getvalue()


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_demo_writes_pngs_and_json(demo_run):
    status, out, _ = demo_run
    assert status == 0
    for name in EXPECTED_PNGS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
    summary = json.loads((out / "demo_summary.json").read_text())
    assert sorted(summary["figures"]) == sorted(EXPECTED_PNGS)
    assert summary["nuts"] == {
        "num_warmup": demo.QUICK["warmup"],
        "num_draws": demo.QUICK["draws"],
        "num_chains": demo.QUICK["chains"],
    }
    assert set(summary["priors"]) == {"independent", "mvn"}
    assert summary["priors"]["mvn"]["spec"]["prior"]["cov"][0][1] == pytest.approx(-0.5 * 0.2 * 0.2)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_demo_exact_columns_are_the_conjugate_posterior(demo_run):
    """The 'exact' numbers equal the closed form computed here in float64 from the same data."""
    _, out, _ = demo_run
    summary = json.loads((out / "demo_summary.json").read_text())
    data = simulate.tutorial_data(0, [0])
    x, y = np.asarray(data.x[0], float), np.asarray(data.y[0], float)
    assert np.allclose(summary["data"]["y"], y)
    phi = np.column_stack([np.ones_like(x), x])
    for kind, v0 in (("independent", np.diag([0.04, 0.04])), ("mvn", 0.04 * np.array([[1, -0.5], [-0.5, 1]]))):
        cov = np.linalg.inv(np.linalg.inv(v0) + phi.T @ phi / 0.01)
        mean = cov @ phi.T @ y / 0.01
        rec = summary["priors"][kind]
        got_mean = [rec["weights"][n]["exact_mean"] for n in ("b", "m")]
        got_sd = [rec["weights"][n]["exact_sd"] for n in ("b", "m")]
        assert np.allclose(got_mean, mean, rtol=1e-4, atol=1e-5)
        assert np.allclose(got_sd, np.sqrt(np.diag(cov)), rtol=1e-4)
        assert rec["corr_bm"]["exact"] == pytest.approx(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1]), rel=1e-4)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_demo_nuts_agrees_with_exact_within_mcse(demo_run):
    _, out, _ = demo_run
    summary = json.loads((out / "demo_summary.json").read_text())
    for kind, rec in summary["priors"].items():
        assert rec["divergences"] == 0, kind
        ess_min = []
        for name, row in rec["weights"].items():
            assert row["r_hat"] < RHAT_MAX, (kind, name, row["r_hat"])
            assert abs(row["nuts_mean"] - row["exact_mean"]) < 5 * row["exact_sd"] / math.sqrt(row["ess_bulk"])
            ess = min(row["ess_bulk"], row["ess_tail"])
            ess_min.append(ess)
            assert abs(row["nuts_sd"] / row["exact_sd"] - 1) < 5 / math.sqrt(2 * ess), (kind, name)
        rho = rec["corr_bm"]["exact"]
        assert abs(rec["corr_bm"]["nuts"] - rho) < 5 * (1 - rho**2) / math.sqrt(min(ess_min)), kind


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_demo_prints_table_and_files(demo_run):
    """Printed table: one row per (prior, weight) whose numbers are the JSON's; then the file list."""
    _, out, text = demo_run
    summary = json.loads((out / "demo_summary.json").read_text())
    for kind in ("independent", "mvn"):
        for name in ("b", "m"):
            rows = [line.split() for line in text.splitlines() if line.split()[:2] == [kind, name]]
            assert len(rows) == 1, (kind, name)
            assert float(rows[0][2]) == pytest.approx(summary["priors"][kind]["weights"][name]["exact_mean"], abs=1e-4)
            assert float(rows[0][3]) == pytest.approx(summary["priors"][kind]["weights"][name]["nuts_mean"], abs=1e-4)
    assert "corr(b,m) exact" in text and "divergences" in text
    assert all(str(out / name) in text for name in EXPECTED_PNGS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--prior-lines", "0"], "prior-lines"), (["--warmup", "-1"], "num_warmup"), (["--corr", "1.5"], "correlation")],
)
def test_demo_bad_input_is_a_one_line_error(argv, message, tmp_path, capsys):
    status = cli.main(["demo", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
