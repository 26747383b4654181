"""Every kind of bad input gives a BayeslinError naming the problem (and exit 2 from the CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from bayeslin_jax.core import simulate
from bayeslin_jax.core.basis import Polynomial, parse_basis
from bayeslin_jax.core.data import load_csv, validate_xy
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import ModelSpec, correlated_normal, independent_normal, known_noise, mvn, tutorial_spec
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.interfaces.cli import main


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([0.0, np.nan, 1.0], [1.0, 2.0, 3.0], "x contains NaN"),
        ([0.0, 0.5, 1.0], [1.0, np.inf, 3.0], "y contains inf"),
        ([0.0, 0.5, 1.0], [1.0, 2.0], "mismatched shapes"),
        (["a", "b"], [1.0, 2.0], "must be numeric"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "zero datasets"),
    ],
)
def test_bad_data(x, y, message: str) -> None:
    with pytest.raises(BayeslinError, match=message):
        validate_xy(x, y)


def test_values_whose_squares_overflow_the_dtype() -> None:
    with pytest.raises(BayeslinError, match=r"y value 1e\+30 is too large for float32.*--x64"):
        validate_xy([0.0, 1.0], [1.0, 1e30], dtype=np.float32)
    validate_xy([0.0, 1.0], [1.0, 1e30], dtype=np.float64)  # 1e60 is far below float64's 1.8e308


def test_too_few_points() -> None:
    with pytest.raises(BayeslinError, match="at least 2 data points"):
        validate_xy([1.0], [2.0], min_points=2)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: known_noise(0.0), "sigma must be positive"),
        (lambda: known_noise(-1.0), "sigma must be positive"),
        (lambda: independent_normal(0.0, [0.2, -0.1], 2), "prior scale must be positive"),
        (lambda: independent_normal([0.0, np.nan], 0.2, 2), "prior mean contains NaN"),
        (lambda: independent_normal([0.0, 0.0, 0.0], 0.2, 2), "must have 2 entries"),
        (lambda: mvn([0.0, 0.0], [[1.0, 0.5], [0.4, 1.0]]), "not symmetric"),
        (lambda: mvn([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), "not positive-definite"),
        (lambda: mvn([0.0, 0.0], [1.0, 1.0]), "square matrix"),
        (lambda: correlated_normal(0.0, 0.2, 1.0), "between -1 and 1"),
        (lambda: ModelSpec(Polynomial(3), independent_normal(0.0, 0.2, 2), known_noise(0.1)), "2 weights"),
        (lambda: parse_basis("spline"), "unknown basis"),
        (lambda: Polynomial(-1), "non-negative"),
        (lambda: NutsConfig(num_chains=0), "num_chains"),
        (lambda: NutsConfig(num_warmup=0), "num_warmup must be an integer >= 1"),
        (lambda: NutsConfig(target_accept=1.5), "target_accept"),
        (lambda: simulate.tutorial_data(0, []), "zero datasets"),
    ],
)
def test_bad_specs(build, message: str) -> None:
    with pytest.raises(BayeslinError, match=message):
        build()


def test_engine_refuses_empty_or_misshaped_batch() -> None:
    spec = tutorial_spec()
    with pytest.raises(BayeslinError, match="zero datasets"):
        sample_nuts(0, np.zeros((0, 11, 2)), np.zeros((0, 11)), spec.prior, spec.noise)
    with pytest.raises(BayeslinError, match="expected phi"):
        sample_nuts(0, np.zeros((11, 2)), np.zeros(11), spec.prior, spec.noise)
    with pytest.raises(BayeslinError, match="features"):
        sample_nuts(0, np.zeros((1, 11, 3)), np.zeros((1, 11)), spec.prior, spec.noise)


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "must have columns 'x' and 'y'"),
        ("x,y\n1,2\n2,abc\n", "non-numeric value"),
        ("x,y\n1,2\nnan,3\n", "data.csv:3: column 'x': non-finite value 'nan'"),
        ("x,y\n1,2\n2,inf\n", "data.csv:3: column 'y': non-finite value 'inf'"),
    ],
)
def test_bad_csv(tmp_path, content: str, message: str) -> None:
    with pytest.raises(BayeslinError, match=message):
        load_csv(write(tmp_path / "data.csv", content))


GOOD_CSV = "x,y\n-0.5,1.8\n0.0,2.0\n0.5,2.2\n"


@pytest.mark.parametrize(
    ("extra", "content", "message"),
    [
        ([], "a,b\n1,2\n", "must have columns"),
        ([], "x,y\n1,2\n", "at least 3 data points"),  # b, m and the learned sigma
        (["--basis", "poly5"], GOOD_CSV, "at least 7 data points"),  # 6 weights and the learned sigma
        (["--basis", "poly5", "--sigma", "0.1"], GOOD_CSV, "at least 6 data points"),
        (["--sigma", "0"], GOOD_CSV, "sigma must be positive"),
        (["--prior-scale", "-0.2"], GOOD_CSV, "prior scale must be positive"),
        (["--prior", "mvn", "--prior-cov", "0.04,0.05;0.05,0.04"], GOOD_CSV, "not positive-definite"),
        (["--prior", "mvn", "--prior-cov", "0.04,0.01;0.02,0.04"], GOOD_CSV, "not symmetric"),
        (["--prior", "mvn"], GOOD_CSV, "needs --prior-cov"),
    ],
)
def test_cli_fit_errors_are_one_line(tmp_path, capsys, extra, content, message) -> None:
    code = main(["fit", write(tmp_path / "data.csv", content), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_cli_missing_file(tmp_path, capsys) -> None:
    assert main(["fit", str(tmp_path / "nope.csv")]) == 2
    assert "data file not found" in capsys.readouterr().err
