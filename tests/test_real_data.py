"""Real regression data (issue 13): formulas, the whitened parameterisation, ill-conditioned designs.

* the shipped diabetes data (raw units): the float64 exact posterior equals numpy's least squares in the
  flat-prior limit and the normal equations with a proper prior; NUTS through ``fit_formula`` on 8
  correlated raw-scale predictors agrees with it (4 MCSE) with bulk ESS >= 80 % of the draws;
* NIST StRD Wampler1 (certified coefficients all 1): the exact posterior to >= 7 digits in float32 mode,
  NUTS converges (R-hat <= 1.01) through the whitening;
* formula terms are named after formulaic's columns; ``poly(x, k, raw=True)`` is the polynomial basis;
* bad tables and designs are one ``BayeslinError`` naming the column or term; ``bayeslin fit --strict``
  exits 1 with ``warning:`` lines and ``"converged": false`` in the JSON when NUTS is starved.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from arviz_stats.base import array_stats

import bayeslin_jax as bl
from bayeslin_jax.core import exact
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import ModelSpec, independent_normal, known_noise
from bayeslin_jax.core.simulate import DesignSimulator
from bayeslin_jax.engine import whitening as reparam
from bayeslin_jax.interfaces import cli
from bayeslin_jax.workflows.design import load_design, predict_formula

CORRELATED = "y ~ bmi + bp + s1 + s2 + s3 + s4 + s5 + s6"  # s1, s2 (r = 0.90) and s3, s4 (r = -0.74) correlated
SMALL = {"num_warmup": 500, "num_draws": 500}


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return bl.datasets.load("diabetes")


@pytest.fixture(scope="module")
def wampler() -> pd.DataFrame:
    return bl.datasets.load("wampler1")


def wampler_spec() -> ModelSpec:
    return ModelSpec(bl.polynomial(5), independent_normal(0.0, 1000.0, 6), known_noise(0.001))


# ------------------------------------------------------------------ exact posterior (no NUTS)


def test_diabetes_exact_is_ols_in_flat_prior_limit(diabetes) -> None:
    design, y = load_design(diabetes, "y ~ bmi + bp + C(sex) + s1 + s2 + s5")
    phi = design.matrix
    sigma = 55.0
    post = reparam.posterior64(phi, y, independent_normal(0.0, 1e9, design.dim), sigma)
    ols, *_ = np.linalg.lstsq(phi, y, rcond=None)
    np.testing.assert_allclose(post.mean, ols, rtol=1e-7, atol=1e-9 * np.abs(ols).max())
    ols_cov = sigma**2 * np.linalg.inv(phi.T @ phi)
    np.testing.assert_allclose(post.cov, ols_cov, rtol=1e-6, atol=1e-12)


def test_diabetes_exact_with_proper_prior_matches_normal_equations(diabetes) -> None:
    design, y = load_design(diabetes, "y ~ bmi + C(sex)")
    phi = design.matrix
    scale, sigma = np.array([50.0, 2.0, 20.0]), 60.0
    prior = independent_normal(np.array([0.0, 5.0, 0.0]), scale, 3)
    post = reparam.posterior64(phi, y, prior, sigma)
    precision = np.diag(scale**-2.0) + phi.T @ phi / sigma**2
    mean = np.linalg.solve(precision, np.asarray(prior.mean) / scale**2 + phi.T @ y / sigma**2)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(post.cov, np.linalg.inv(precision), rtol=1e-8)
    np.testing.assert_allclose(post.precision_tril @ post.precision_tril.T, precision, rtol=1e-8)
    with jax.enable_x64(True):  # the JAX oracle agrees in float64 on this well-conditioned design
        ref = exact.posterior(phi, y, prior, sigma)
        np.testing.assert_allclose(post.mean, np.asarray(ref.mean), rtol=1e-7)  # normal equations: cond^2 * eps


def test_wampler1_exact_to_seven_digits(wampler) -> None:
    phi = reparam.design_matrix64(bl.polynomial(5), wampler["x"].to_numpy())
    post = reparam.posterior64(phi, wampler["y"].to_numpy(), wampler_spec().prior, 0.001)
    assert np.abs(post.mean - 1.0).max() < 1e-7, post.mean  # measured ~1e-9
    ols, *_ = np.linalg.lstsq(phi, wampler["y"].to_numpy(), rcond=None)
    np.testing.assert_allclose(post.mean, ols, rtol=1e-7)


def test_whitening_is_exact_linear_image_of_prior_and_isotropic(diabetes) -> None:
    design, y = load_design(diabetes, CORRELATED)
    prior, sigma = independent_normal(0.0, 1000.0, design.dim), 55.0
    white = reparam.whitening(design.matrix, y, prior, sigma)
    a = white.matrix
    # prior of z = A^-1 (w - c): mean A^-1 (m0 - c), cov A^-1 V0 A^-T = diag(z_scale^2)
    a_inv = np.linalg.inv(a)
    np.testing.assert_allclose(a_inv @ (np.asarray(prior.mean) - white.shift), white.z_mean, rtol=1e-9, atol=1e-6)
    z_cov = a_inv @ np.diag(np.asarray(prior.scale) ** 2) @ a_inv.T
    np.testing.assert_allclose(z_cov, np.diag(white.z_scale**2), rtol=1e-8, atol=1e-8 * white.z_scale.max() ** 2)
    # the posterior of z is N(0, I): the likelihood precision (phi A)^T (phi A) / sigma^2 + prior precision = I
    phi_z = design.matrix @ a
    np.testing.assert_allclose(phi_z.T @ phi_z / sigma**2 + np.diag(white.z_scale**-2.0), np.eye(design.dim), atol=1e-9)


# ------------------------------------------------------------------ formulas and errors


def test_formula_terms_named_and_poly_is_the_polynomial_basis(diabetes) -> None:
    design, y = load_design(diabetes, "y ~ bmi * C(sex) + poly(age, 2, raw=True)")
    assert design.feature_names == (
        "Intercept", "bmi", "C(sex)[T.2]", "poly(age, 2, raw=True)[0]", "poly(age, 2, raw=True)[1]", "bmi:C(sex)[T.2]"
    )
    np.testing.assert_array_equal(y, diabetes["y"].to_numpy(dtype=float))
    m = design.matrix
    np.testing.assert_array_equal(m[:, 2], (diabetes["sex"] == 2).astype(float))
    np.testing.assert_array_equal(m[:, 5], m[:, 1] * m[:, 2])
    poly, _ = load_design({"x": np.linspace(-2, 3, 9), "y": np.zeros(9)}, "y ~ poly(x, 3, raw=True)")
    np.testing.assert_allclose(poly.matrix, reparam.design_matrix64(bl.polynomial(3), np.linspace(-2, 3, 9)))
    cols, _ = load_design(diabetes, columns="bmi, bp")
    assert cols.feature_names == ("Intercept", "bmi", "bp")
    np.testing.assert_array_equal(np.asarray(cols(np.array([2.0, 0.0]))), cols.matrix[[2, 0]].astype(np.float32))


def test_bad_csv_tables_are_one_line_errors(tmp_path) -> None:
    cases = {
        "a,b,a\n1,2,3\n": "dup.csv:1: duplicate column name(s) 'a'",
        "y,bmi\n1,2\n3,4,5\n": "ragged.csv:3: 3 field(s), but the header has 2",
        "y,bmi\n1,2\n3,4\n5,abc\n6,7\n": "word.csv:4: column 'bmi': non-numeric value 'abc'",
    }
    for (text, message), name in zip(cases.items(), ("dup", "ragged", "word"), strict=True):
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        with pytest.raises(BayeslinError) as err:
            load_design(path, "y ~ bmi")
        assert message in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("change", "formula", "columns", "message"),
    [
        ("nan", "y ~ bmi + bp", None, "column 'bp' has 2 missing value(s) (data rows 4, 11)"),
        (None, "y ~ bmi + glucose", None, "unknown column 'glucose' in formula"),
        (None, None, ["bmi", "glucose"], "unknown column 'glucose'"),
        ("const", "y ~ bmi + site", None, "term 'site' is constant (every row 3)"),
        ("dup", "y ~ bmi + bmi2 + bp", None, "rank-deficient design (rank 3 < 4 terms): term 'bmi2' is a linear"),
        (None, "y ~ bmi +", None, "formula 'y ~ bmi +'"),
        ("text", "y ~ bmi", None, "formula 'y ~ bmi' must have one numeric response"),
    ],
)
def test_bad_designs_are_one_line_errors(diabetes, change, formula, columns, message) -> None:
    table = diabetes.copy()
    if change == "nan":
        table.loc[[3, 10], "bp"] = np.nan
    elif change == "const":
        table["site"] = 3.0
    elif change == "dup":
        table["bmi2"] = 2.0 * table["bmi"]
    elif change == "text":
        table["y"] = table["y"].astype(str) + "x"
    with pytest.raises(BayeslinError) as err:
        load_design(table, formula, columns=columns)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


# ------------------------------------------------------------------ NUTS through the whitening


@pytest.mark.slow  # ~5 s; the fixed-design whitened sampler against exact stays default
def test_correlated_raw_predictors_sample_well_and_match_exact(diabetes) -> None:
    result = bl.fit_formula(CORRELATED, diabetes, prior_scale=1000.0, sigma=55.0, seed=2, **SMALL)
    table = result.summary()
    assert list(table.index) == ["Intercept", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    draws = result.config.num_chains * result.config.num_draws
    assert np.all(np.abs(table["z"]) < 4), table
    rel_se = 1.0 / np.sqrt(2.0 * table["ess_bulk"])
    assert np.all(np.abs(table["sd"] / table["exact_sd"] - 1.0) < 4 * rel_se + 0.01), table
    assert table["ess_bulk"].min() >= 0.8 * draws, table["ess_bulk"]  # measured >= 1.4 x draws
    assert result.problems() == [] and result.tree.attrs["converged"] == 1
    payload = json.loads(result.to_json())
    assert payload["converged"] is True and payload["reparameterization"] == "whiten"
    assert payload["features"]["s5"]["ess_bulk"] == pytest.approx(float(table.loc["s5", "ess_bulk"]))


@pytest.mark.slow
def test_wampler1_float32_nuts_converges_and_exact_holds(wampler) -> None:
    assert not jax.config.jax_enable_x64
    result = bl.fit(wampler["x"], wampler["y"], wampler_spec(), seed=0, **SMALL)
    table = result.summary()
    assert np.abs(table["exact_mean"] - 1.0).max() < 1e-7
    assert table["rhat"].max() <= 1.01, table
    assert np.all(np.abs(table["z"]) < 4), table
    assert result.problems() == []
    assert result.draws("w").dtype == np.float64  # w = c + A z in float64: sds down to 5e-8 around 1


def test_design_simulator_draws_from_prior_on_fixed_rows(diabetes) -> None:
    design, _ = load_design(diabetes, "y ~ bmi + C(sex)")
    spec = ModelSpec(design, independent_normal(np.array([100.0, 2.0, 0.0]), np.array([30.0, 1.0, 10.0]), 3),
                     known_noise(50.0))
    data = DesignSimulator(design)(7, np.arange(200), spec)
    assert data.x.shape == (200, 442) and data.y.shape == (200, 442)
    np.testing.assert_array_equal(np.asarray(data.x[0]), np.arange(442))
    w = np.asarray(data.w)
    se = np.asarray(spec.prior.scale) / np.sqrt(len(w))
    assert np.all(np.abs(w.mean(0) - np.asarray(spec.prior.mean)) < 4 * se)
    resid = np.asarray(data.y) - np.einsum("nd,bd->bn", design.matrix, w)
    assert abs(resid.std() / 50.0 - 1.0) < 0.01  # 88,400 noise draws: se of the sd ratio ~0.0024
    again = DesignSimulator(design)(7, np.arange(100, 200), spec)
    # dataset i from (seed, i) only, whatever the batch (one compiled per-dataset program: batching.map_datasets)
    np.testing.assert_array_equal(np.asarray(again.y), np.asarray(data.y)[100:])


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_cli_formula_strict_flags_starved_run(tmp_path, capsys) -> None:
    out = tmp_path / "fit.json"
    path = str(bl.datasets.path("diabetes"))
    argv = ["fit", path, "--formula", "y ~ bmi + C(sex)", "--sigma", "55", "--prior-scale", "1000",
            "--warmup", "20", "--draws", "20", "--chains", "2", "--json", str(out), "--strict"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "warning: ESS < 200 (100 per chain) for Intercept, bmi, C(sex)[T.2]" in captured.err
    assert "--strict" in captured.err
    payload = json.loads(out.read_text())
    assert payload["converged"] is False and payload["problems"]
    assert list(payload["features"]) == ["Intercept", "bmi", "C(sex)[T.2]"]
    assert payload["spec"]["basis"].endswith(": bmi + C(sex)")
    assert cli.main(argv[:-1]) == 0  # without --strict: the same warnings, exit 0
    assert cli.main(["fit", path, "--columns", "bmi,nope", "--sigma", "55"]) == 2
    assert "error: unknown column 'nope'" in capsys.readouterr().err


def test_cli_sbc_exact_engine_on_the_shipped_design(tmp_path, capsys) -> None:
    """SBC of the user's design: x fixed at the CSV's rows, w from the prior, y simulated, exact posterior draws."""
    out = tmp_path / "sbc.json"
    argv = ["sbc", "--engine", "exact", "--design", str(bl.datasets.path("diabetes")), "--formula", "y ~ bmi + C(sex)",
            "--prior-scale", "100,5,20", "--sigma", "55", "--simulations", "256", "--out", str(tmp_path / "sbc"),
            "--json", str(out), "--no-progress"]
    assert cli.main(argv) == 0, capsys.readouterr().out
    text = capsys.readouterr().out
    assert "C(sex)[T.2]" in text and "mu(x=221)" in text and "overall: PASS" in text


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_fixed_design_whitened_sampler_matches_exact(diabetes) -> None:
    """The engine call of studies and SBC on a user's design (``sampler_for`` -> ``sample_design_whitened``):
    ``w = m0 + z A^T`` back on the raw scale, with a non-zero prior mean, against the exact posterior.

    4 datasets x 4 chains of 300 draws, 16 coefficients: |z| < 5 (a transposed ``A`` is off by ~1e5)."""
    design, _ = load_design(diabetes, "y ~ bmi + bp + C(sex)")
    prior = independent_normal(np.array([150.0, 3.0, 1.0, -10.0]), np.array([100.0, 5.0, 2.0, 20.0]), 4)
    spec = ModelSpec(design, prior, known_noise(55.0))
    assert reparam.sampler_for(spec) is reparam.sample_design_whitened
    data = DesignSimulator(design)(5, np.arange(4), spec)
    phi = spec.basis(data.x)
    config = bl.NutsConfig(num_warmup=300, num_draws=300, num_chains=4)
    result = reparam.sampler_for(spec)(1, phi, data.y, spec.prior, spec.noise, config)
    draws = np.asarray(result.samples["w"], dtype=np.float64)  # (B, C, S, d)
    post = exact.posterior64(np.asarray(phi, np.float64), np.asarray(data.y, np.float64), prior, 55.0)
    mcse = array_stats.mcse(np.moveaxis(draws, -1, 1), chain_axis=-2, draw_axis=-1)  # (B, d)
    z = (draws.mean(axis=(1, 2)) - post.mean) / mcse
    assert np.abs(z).max() < 5, z
    sd_ratio = draws.std(axis=(1, 2)) / np.sqrt(np.diagonal(post.cov, axis1=-2, axis2=-1))
    assert np.all(np.abs(sd_ratio - 1) < 0.2), sd_ratio
    # lp is the log density of w (not of the whitened z): log prior + log likelihood at the draws
    phi64, y64 = np.asarray(phi[0], np.float64), np.asarray(data.y, np.float64)
    prior_mean, prior_sd = np.asarray(prior.mean, np.float64), np.asarray(prior.scale, np.float64)
    log_prior = scipy.stats.norm.logpdf(draws, prior_mean, prior_sd).sum(-1)
    log_lik = scipy.stats.norm.logpdf(y64[:, None, None, :], draws @ phi64.T, 55.0).sum(-1)
    lp = np.asarray(result.stats["lp"], np.float64)
    np.testing.assert_allclose(lp, log_prior + log_lik, atol=0.05)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_design_transform_uses_the_stored_formula_and_serves_prediction(diabetes) -> None:
    """New rows go through the fitted formula: a table where every row has ``sex == 2`` keeps the
    ``C(sex)[T.2]`` column (rebuilt from the new table alone it would vanish: 2 columns instead of 3)."""
    design, _ = load_design(diabetes, "y ~ bmi + C(sex)")
    rows = np.flatnonzero(diabetes["sex"].to_numpy() == 2)[:2]
    new = diabetes.iloc[rows][["bmi", "sex"]].reset_index(drop=True)
    matrix = design.transform(new)
    assert matrix.shape == (2, 3) and design.feature_names == ("Intercept", "bmi", "C(sex)[T.2]")
    np.testing.assert_allclose(matrix, design.matrix[rows])
    with pytest.raises(BayeslinError, match="no formula"):
        bl.Design("x", ("x",), np.ones((3, 1))).transform(new)
    for bad, message in (({"bmi": [20.0]}, "unknown column 'sex'"),  # new rows: one line each
                         ({"bmi": [20.0], "sex": [3]}, "categories outside of the nominated levels"),
                         ({"bmi": [np.nan], "sex": [1]}, "column 'bmi' has 1 missing value"),
                         ({"bmi": [np.inf], "sex": [1]}, "term 'bmi' has non-finite values")):
        with pytest.raises(BayeslinError, match=message):
            design.transform(bad)
    # prediction at new rows goes through it: the fitted mean at each row, NUTS against the exact posterior
    result = bl.fit_formula("y ~ bmi + C(sex)", diabetes, prior_scale=1000.0, sigma=55.0, seed=1,
                            num_warmup=300, num_draws=300)
    table = predict_formula(result, new)
    post_mean, post_cov = np.asarray(result.exact.mean, np.float64), np.asarray(result.exact.cov, np.float64)
    np.testing.assert_allclose(table["exact_mean"], matrix @ post_mean, rtol=1e-9)
    np.testing.assert_allclose(table["exact_sd"], np.sqrt(np.diag(matrix @ post_cov @ matrix.T)), rtol=1e-9)
    # 1200 draws with ESS >= 100 at the least: the mean within 5 sd / sqrt(100), the sd within 30 %
    assert np.all(np.abs(table["mean"] - table["exact_mean"]) < 0.5 * table["exact_sd"]), table
    assert np.all(np.abs(table["sd"] / table["exact_sd"] - 1) < 0.3), table
    with pytest.raises(BayeslinError, match="result of fit_formula"):
        predict_formula(bl.fit(np.linspace(-1, 1, 11), np.linspace(1, 3, 11), num_warmup=50, num_draws=50), new)


# ------------------------------------------------------------------ slow: the targets at full length


@pytest.mark.slow
def test_study_on_a_fixed_design_matches_exact(diabetes, tmp_path) -> None:
    """``run_study`` on the user's design (DesignSimulator through the prior simulator), whitened NUTS vs exact."""
    design, _ = load_design(diabetes, "y ~ bmi + bp + C(sex)")
    spec = ModelSpec(design, independent_normal(0.0, np.array([100.0, 5.0, 2.0, 20.0]), 4), known_noise(55.0))
    from bayeslin_jax.workflows.studies import StudyConfig

    config = StudyConfig(num_datasets=32, seed=3, simulator=DesignSimulator(design))
    ds = bl.run_study(tmp_path / "study.zarr", spec, config, progress=False)
    z = (ds["nuts_mean"] - ds["exact_mean"]) / ds["mcse_mean"]
    assert float(np.abs(z).max()) < 4.5, z.values  # 128 z's: P(max > 4.5) ~ 1e-3
    assert float(ds["rhat"].max()) <= 1.01
    assert float((ds["ess_bulk"] / 4000).min()) >= 0.5


@pytest.mark.slow
def test_diabetes_bmi_bulk_ess_at_least_80_percent(diabetes) -> None:
    """The issue's example at default settings, 4 independent repeats (one batched fit, streams (seed, i)).

    Measured min-over-coefficients ESS fractions 0.88-1.02 (sd ~0.05 across seeds): the mean over the
    repeats must reach 0.8 (4 sd margin), each repeat 0.7.
    """
    spec = ModelSpec(bl.linear(), independent_normal(0.0, 1000.0, 2), known_noise(62.5))
    x, y = np.tile(diabetes["bmi"].to_numpy(float), (4, 1)), np.tile(diabetes["y"].to_numpy(float), (4, 1))
    result = bl.fit(x, y, spec, seed=11)
    table = result.summary()
    fraction = table["ess_bulk"].groupby("dataset").min() / 4000
    assert fraction.mean() >= 0.8 and fraction.min() >= 0.7, fraction
    assert np.all(np.abs(table["z"]) < 4), table
    assert result.problems() == []


@pytest.mark.slow
def test_wampler1_cli_default_float32(tmp_path, capsys) -> None:
    out = tmp_path / "w.json"
    argv = ["fit", str(bl.datasets.path("wampler1")), "--basis", "poly5", "--sigma", "0.001", "--prior-scale", "1000",
            "--json", str(out), "--strict"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    payload = json.loads(out.read_text())
    assert payload["converged"] is True
    for name, record in payload["features"].items():
        assert abs(record["exact_mean"] - 1.0) < 1e-7, name
        assert record["rhat"] <= 1.01 and record["ess_bulk"] >= 0.8 * 4000, (name, record)
    # float64 (--x64) in a fresh process (x64 is global to JAX): the same through the whitening
    out64 = tmp_path / "w64.json"
    done = subprocess.run([sys.executable, "-m", "bayeslin_jax.interfaces.cli", "--x64",
                           *argv[:-3], "--json", str(out64),
                           "--strict"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    payload = json.loads(out64.read_text())
    for name, record in payload["features"].items():
        assert abs(record["exact_mean"] - 1.0) < 1e-7 and record["rhat"] <= 1.01, (name, record)


@pytest.mark.slow
def test_wampler1_without_whitening_fails_loudly(tmp_path, capsys) -> None:
    """``--no-whiten`` samples w directly: NUTS cannot mix over six scales from 1e-3 to 5e-8 (the issue's
    R-hat 5.6): warning lines name the coefficients, the JSON says not converged, --strict exits 1."""
    out = tmp_path / "w.json"
    argv = ["fit", str(bl.datasets.path("wampler1")), "--basis", "poly5", "--sigma", "0.001", "--prior-scale", "1000",
            "--no-whiten", "--json", str(out), "--strict"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "warning: R-hat > 1.01 for w0, w1, w2, w3, w4, w5" in err
    payload = json.loads(out.read_text())
    assert payload["converged"] is False and payload["reparameterization"] == "none"


@pytest.mark.slow
def test_learned_noise_whitened_fit_agrees_with_ols(diabetes) -> None:
    """Learned sigma: the whitening uses the least-squares residual sd as plug-in; the posterior is unchanged.

    With a flat prior on 442 points, the posterior of w is close to N(OLS, s^2 (X'X)^-1) (t with 438 dof),
    and sigma concentrates at the residual sd s.
    """
    result = bl.fit_formula("y ~ bmi + bp + C(sex)", diabetes, prior_scale=1e4, sigma_prior_scale=200.0, seed=4)
    design, y = load_design(diabetes, "y ~ bmi + bp + C(sex)")
    ols, rss, *_ = np.linalg.lstsq(design.matrix, y, rcond=None)
    s = float(np.sqrt(rss[0] / (len(y) - design.dim)))
    se = s * np.sqrt(np.diag(np.linalg.inv(design.matrix.T @ design.matrix)))
    table = result.summary()
    assert np.all(np.abs(table["mean"].to_numpy() - ols) < 0.1 * se), (table["mean"], ols)
    np.testing.assert_allclose(table["sd"].to_numpy(), se, rtol=0.08)
    sigma = result.draws("sigma")
    assert abs(sigma.mean() / s - 1.0) < 0.01 and result.problems() == []
    assert table["ess_bulk"].min() >= 0.5 * 4000
