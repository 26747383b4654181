"""Bad input is one line and exit status 2 (issue 32, item 6), on the command line and as a BayeslinError in
Python: every case here used to be an internal error, a raw TypeError/AttributeError, a silent wrap-around or a
silent loss. Nothing here compiles a model: each is refused before sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeslin_jax as bl
from bayeslin_jax.interfaces.cli import main

DATA = "x,y\n-0.5,1.8\n0.0,2.0\n0.5,2.2\n0.7,2.1\n-0.2,1.9\n"


@pytest.fixture
def data(tmp_path) -> str:
    path = tmp_path / "data.csv"
    path.write_text(DATA)
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--draws", "1000000000000"], "fit would need"),  # 5e14 draws: refused with the estimate and the limit
        (["--draws", "100000000"], "for its draws (limit"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2^32)"),
        (["--seed", "4294967296"], "--seed must be an integer in [0, 2^32)"),
        (["--prior-scale", "1e300"], "too large"),
        (["--formula", "y ~ (x"], "formula"),
        (["--formula", "y ~ x + C(g)"], "one level"),
    ],
)
def test_cli_fit_refuses_in_one_line(tmp_path, data, capsys, extra, message) -> None:
    if "C(g)" in extra[-1]:
        (tmp_path / "data.csv").write_text("x,y,g\n" + "".join(f"{r},a\n" for r in DATA.splitlines()[1:]))
    status = main(["fit", data, "--warmup", "10", "--draws", "10", *extra])  # a later --draws wins
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_memory_limit_is_read_from_the_environment(data, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BAYESLIN_MEMORY_LIMIT", "1MB")
    status = main(["fit", data, "--draws", "100000"])
    err = capsys.readouterr().err
    assert status == 2 and "limit 1.0 MB" in err, err


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bl.fit([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], config="fast"), "config must be a NutsConfig"),
        (lambda: bl.fit([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], seed=-1), r"seed must be an integer in \[0, 2"),
        (lambda: bl.fit(np.array([1 + 1j, 2, 3, 4]), np.array([1.0, 2.0, 3.0, 4.1])), "x is complex"),
        (lambda: bl.fit([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], priors=3), "priors must be a dict"),
        (lambda: bl.fit([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], bl.tutorial_spec(), priors={"prior": "flat"}),
         "carries its own priors"),
        (lambda: bl.fit_formula(123, pd.DataFrame({"y": [1.0, 2.0, 3.0], "a": [1.0, 2.0, 4.0]})),
         "formula must be a string"),
        (lambda: bl.fit_formula("y ~ a", pd.DataFrame({"y": [1.0, 2.0, 3.0], "a": [1.0, 2.0, 4.0]}), model=3),
         "model must be a family name or a bayeslin_jax Model"),
        (lambda: bl.predict_formula(None, {}), "predict_formula needs a FitResult"),
        (lambda: bl.run_study("unused.zarr", 5, bl.StudyConfig(num_datasets=2)), "must be a bayeslin_jax Model"),
        (lambda: bl.ModelSpec(None, None, None), "ModelSpec basis must be a basis"),
        (lambda: bl.independent_normal("a", 1.0, 2), "prior mean must be a number"),
        (lambda: bl.known_noise("a"), "noise sigma must be a number"),
        (lambda: bl.mvn([0.0, 0.0], "x"), "prior covariance must be a number"),
        (lambda: bl.half_normal_noise([1.0, 2.0]), "must be one number"),
    ],
)
def test_python_api_raises_bayeslin_errors(call, message) -> None:
    with pytest.raises(bl.BayeslinError, match=message):
        call()
