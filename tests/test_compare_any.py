"""``bl.compare``: any models, PSIS-LOO per dataset (never pooled), the exact evidence where every model has one;
``bayeslin compare``.

* Student-t beats the Gaussian on every dataset with large outliers, and on clean data the Gaussian is not worse,
  dataset by dataset in one batched comparison (12 datasets: 6 with outliers, 6 clean);
* each dataset's LOO is ``arviz_stats.loo`` of that dataset's own tree; a batched tree handed to the LOO is refused;
* the ``log_evidence`` column is ``core.exact.log_evidence`` (known sigma), absent when a model has none;
* a user's NumPyro model compares against a built-in;
* the CLI: a run on a CSV of several datasets (table, winner, win rates, JSON); every bad flag value is one line
  ``error: ...`` with exit status 2, before any fit.

Every fit uses the same shapes ``(12, 30)`` and sampler settings, so each model's program compiles once.
"""

from __future__ import annotations

import json
import math

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeslin_jax as bl
from bayeslin_jax.core import exact, priors
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.diagnostics.host import select_dataset
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows import compare as cmp

CONFIG = NutsConfig(num_warmup=300, num_draws=300, num_chains=2)
SIGMA = 0.1
NUM_POINTS = 30
NUM_OUTLIER_SETS = 6  # datasets 0..5 have outliers, 6..11 are clean
GAUSS = priors.ModelSpec(priors.Polynomial(1), priors.independent_normal(0.0, 3.0, 2), priors.known_noise(SIGMA))


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x, y: (12, 30)``: ``y = 0.5 + x + N(0, 0.1)``; datasets 0..5 get 3 outliers each, shifted by 1.5..2.5
    (15..25 sigma), datasets 6..11 are clean."""
    rng = np.random.default_rng(seed)
    x = np.tile(np.linspace(-1.0, 1.0, NUM_POINTS), (2 * NUM_OUTLIER_SETS, 1))
    y = 0.5 + x + SIGMA * rng.normal(size=x.shape)
    for i in range(NUM_OUTLIER_SETS):
        points = rng.choice(NUM_POINTS, size=3, replace=False)
        y[i, points] += rng.choice([-1.0, 1.0], size=3) * rng.uniform(1.5, 2.5, size=3)
    return x, y


X, Y = make_data()
OUTLIERS, CLEAN = np.arange(NUM_OUTLIER_SETS), np.arange(NUM_OUTLIER_SETS, 2 * NUM_OUTLIER_SETS)


def gaussian_learned_sigma(x, y=None):
    """A user's model: the Gaussian line with a learned sigma, its observations in a plate."""
    b = numpyro.sample("b", dist.Normal(0.0, 3.0))
    m = numpyro.sample("m", dist.Normal(0.0, 3.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("points", x.shape[-1]):
        numpyro.sample("y", dist.Normal(b + m * x, sigma), obs=y)


@pytest.fixture(scope="module")
def robust():
    """Gaussian vs Student-t (nu = 4), both with sigma = 0.1 known, on the 12 datasets."""
    return bl.compare({"normal": GAUSS, "student": bl.student_t(GAUSS, nu=4)}, X, Y, seed=0, config=CONFIG)


def test_student_t_wins_with_outliers_gaussian_on_clean_data(robust):
    ranks = robust.per_dataset["loo_rank"].sel(model="student").values  # 0: ranked first by PSIS-LOO
    assert np.all(ranks[OUTLIERS] == 0), ranks
    for i in OUTLIERS:  # far behind (about -450 to -830 over seeds 0-2); dse is large too: 3 points carry it
        assert robust.table(int(i)).loc["normal", "elpd_diff"] < -100, robust.table(int(i))
    # clean data: the Gaussian is not worse. Either first, or behind by less than 2 dse (over seeds 0-2: first on
    # 3-4 of 6, else behind by at most 0.8 dse); Student-t with nu = 4 and the same scale is nearly as good.
    for i in CLEAN:
        table = robust.table(int(i))
        assert table.index[0] == "normal" or table.loc["normal", "elpd_diff"] > -2 * table.loc["normal", "dse"], table
    wins = robust.wins()
    assert list(wins.index) == ["normal", "student"]
    assert wins["loo_wins"].sum() == 12 and wins["loo_win_rate"].sum() == pytest.approx(1.0)
    assert "evidence_wins" not in wins  # Student-t has no exact evidence
    assert robust.elpd.dims == ("dataset", "model") and robust.elpd.shape == (12, 2)
    for column in ("rank", "elpd", "p", "elpd_diff", "weight", "se", "dse", "pareto_k_max", "warning",
                   "elpd_loo_exact"):
        assert column in robust.table(0), column
    assert "log_evidence" not in robust.table(0)
    assert any("student" in note and "no exact evidence" in note for note in robust.notes)
    # the Gaussian's LOO on outlier data is flagged (the outliers dominate it), and reported, not pooled away
    flagged = {(w["dataset"], w["model"]) for w in robust.pareto_k_warnings}
    assert all(w["pareto_k_max"] > w["good_k"] for w in robust.pareto_k_warnings)
    assert {(int(i), "normal") for i in OUTLIERS} & flagged
    payload = robust.to_dict()
    json.dumps(payload, allow_nan=False)  # strict JSON
    assert payload["num_datasets"] == 12 and len(payload["datasets"]) == 12
    assert payload["datasets"][0]["winner"] == "student" and payload["evidence_winner"] is None
    assert set(payload["datasets"][0]["table"]) == {"normal", "student"}
    assert math.isnan(robust.table(0).loc["student", "elpd_loo_exact"])
    assert payload["datasets"][0]["table"]["student"]["elpd_loo_exact"] is None
    with pytest.raises(BayeslinError, match=r"dataset must be a position in 0\.\.11"):
        robust.table(12)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")  # the direct ArviZ calls below
def test_loo_is_per_dataset_and_a_pooled_tree_is_refused(robust):
    tree = robust.results["normal"].tree
    for i in (0, 7, 11):
        direct = azs.loo(select_dataset(tree, i), pointwise=True)
        assert float(robust.elpd.sel(model="normal").isel(dataset=i)) == pytest.approx(direct.elpd, rel=1e-6)
        assert robust.table(i).loc["normal", "elpd"] == pytest.approx(direct.elpd, rel=1e-6)
        assert robust.table(i).loc["normal", "se"] == pytest.approx(direct.se, rel=1e-6)
    per = cmp.loo_per_dataset(tree)
    assert len(per) == 12 and per[3].elpd == pytest.approx(float(robust.elpd.sel(model="normal")[3]))
    pooled = sum(float(v) for v in robust.elpd.sel(model="normal"))
    with pytest.raises(BayeslinError) as err:
        cmp.check_single_dataset(tree)
    assert "this DataTree holds 12 datasets: ArviZ would pool them into one LOO" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(BayeslinError, match="holds 12 datasets"):
        cmp._loo(tree)
    one = select_dataset(tree, 2)
    assert cmp.check_single_dataset(one) is one and len(cmp.loo_per_dataset(one)) == 1
    assert np.isfinite(pooled)
    # batch_loo (the study path) goes through the same per-dataset LOO
    np.testing.assert_allclose(cmp.batch_loo(tree)["elpd_loo"].values, robust.elpd.sel(model="normal").values)


def test_log_evidence_column_is_the_exact_evidence(robust):
    wide = GAUSS
    offset = priors.ModelSpec(priors.Polynomial(1), priors.independent_normal([0.5, 0.0], 1.0, 2),
                              priors.known_noise(0.2))
    result = bl.compare({"wide": wide, "offset": offset}, X, Y, seed=1, config=CONFIG)
    with jax.enable_x64(True):
        for name, spec in (("wide", wide), ("offset", offset)):
            prior, sigma = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), (spec.prior, spec.noise.sigma))
            phi = jnp.asarray(np.stack([np.ones_like(X), X], axis=-1))
            expected = np.asarray(exact.log_evidence(phi, jnp.asarray(Y), prior, sigma))
            for i in (0, 6, 11):
                assert result.table(i).loc[name, "log_evidence"] == pytest.approx(float(expected[i]), rel=1e-9)
            np.testing.assert_allclose(result.per_dataset["log_evidence"].sel(model=name), expected, rtol=1e-9)
    table = result.table(6)
    assert table["log_evidence_diff"].max() == 0.0
    assert set(table["evidence_rank"]) == {0, 1}
    wins = result.wins()
    assert {"evidence_wins", "evidence_win_rate"} <= set(wins) and wins["evidence_wins"].sum() == 12
    assert result.to_dict()["evidence_winner"] in ("wide", "offset")
    assert not result.notes
    assert "log_evidence" not in robust.table(0)  # Student-t has none: the column is absent


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_user_model_against_builtin():
    user = bl.user_model(gaussian_learned_sigma, name="mine")
    result = bl.compare({"mine": user, "normal": GAUSS}, X, Y, seed=0, config=CONFIG)
    assert result.names == ("mine", "normal")
    assert np.isfinite(result.elpd.values).all()
    # a learned sigma absorbs the outliers far better than sigma = 0.1 known
    ranks = result.per_dataset["loo_rank"].sel(model="mine").values
    assert np.sum(ranks[OUTLIERS] == 0) >= 5, ranks
    assert "log_evidence" not in result.table(0)
    assert any("mine" in note for note in result.notes)
    assert result.to_dict()["models"]["mine"]["model"] == "mine"


def test_compare_errors_before_any_fit(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a fit started before the error was found")

    monkeypatch.setattr(cmp, "fit", boom)
    with pytest.raises(BayeslinError, match="at least 2 named models"):
        bl.compare({"normal": GAUSS}, X, Y)
    with pytest.raises(BayeslinError, match="model 'f' is not a bayeslin_jax Model or ModelSpec"):
        bl.compare({"normal": GAUSS, "f": gaussian_learned_sigma}, X, Y)
    with pytest.raises(BayeslinError, match="outside the support"):  # a GLM on continuous data
        bl.compare({"normal": GAUSS, "counts": bl.glm(GAUSS.prior, GAUSS.basis, "poisson")}, X, Y)
    with pytest.raises(BayeslinError, match="takes one dataset"):
        cmp.compare_models({"a": GAUSS, "b": GAUSS}, X, Y)
    with pytest.raises(BayeslinError, match="unknown sampler option"):
        bl.compare({"a": GAUSS, "b": GAUSS}, X, Y, num_draw=10)


# ----------------------------------------------------------------------------- the CLI


def _write_csv(path, x=X, y=Y) -> str:
    lines = ["dataset,x,y"] + [f"d{i},{float(xv)!r},{float(yv)!r}" for i in range(x.shape[0])
                               for xv, yv in zip(x[i], y[i], strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


SAMPLER = ["--warmup", "300", "--draws", "300", "--chains", "2"]
PRIORS = ["--prior-scale", "3", "--sigma", "0.1"]


def test_cli_compare(tmp_path, capsys, robust):
    data = _write_csv(tmp_path / "data.csv")
    out = tmp_path / "out" / "compare.json"
    code = main(["compare", data, "--dataset-column", "dataset", "--model", "normal=normal",
                 "--model", "student=student-t:4", *PRIORS, *SAMPLER, "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "dataset d0 (1 of 12)" in captured.out and "elpd_diff" in captured.out
    assert "win rates" in captured.out and "winner by PSIS-LOO: student" in captured.out
    payload = json.loads(out.read_text())
    assert payload["winner"] == "student" and payload["num_datasets"] == 12
    assert payload["dataset_labels"][:2] == ["d0", "d1"]
    assert payload["datasets"][6]["winner"] == "normal"
    # same data, models, seed and sampler: the same numbers as bl.compare
    assert payload["datasets"][0]["table"]["normal"]["elpd"] == pytest.approx(
        float(robust.elpd.sel(model="normal")[0]), rel=1e-4)


@pytest.fixture
def no_fit(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a fit started before the error was found")

    monkeypatch.setattr(cmp, "fit", boom)


def expect_error(capsys, argv: list[str], *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert code == 2, err
    return err


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--model", "a=normal"], ("need at least 2 models",)),
        (["--model", "a=normal", "--model", "a=student-t"], ("duplicate model name(s) 'a'",)),
        (["--model", "=normal", "--model", "b=normal"], ("non-empty name",)),
        (["--model", "a=", "--model", "b=normal"], ("non-empty name",)),
        (["--model", "a=normal", "--model", "b=gamma"], ("unknown model 'gamma'", "student-t[:NU]")),
        (["--model", "a=normal", "--model", "b=student-t:zero"], ("nu (or 'learn') must be a positive number",)),
        (["--model", "a=normal", "--model", "b=student-t:-1"], ("must be a positive number",)),
        (["--model", "a=normal", "--model", "b=poisson:2"], ("poisson takes no ':' option",)),
        (["--model", "a=normal", "--model", "b=horseshoe:x"], ("P0 must be a positive number",)),
        (["--model", "a=normal", "--model", "b=horseshoe:3"], ("P0 must be below",)),
        (["--model", "a=normal", "--model", "b=poisson"], ("outside the support",)),
        (["--model", "a=normal", "--model", "b=bernoulli"], ("outside the support",)),
        (["--model", "a=normal", "--model", "b=missing.py:model"], ("no such file",)),
        (["--dataset-column", "group"], ("has no column(s) 'group'",)),
        (["--prior", "horseshoe"], ("--model NAME=horseshoe",)),
        (["--json", "."], ("--json . is a directory",)),
        (["--warmup", "0"], ("--warmup",)),
    ],
)
def test_cli_compare_bad_flags(tmp_path, capsys, no_fit, flags, fragments):
    data = _write_csv(tmp_path / "data.csv")
    expect_error(capsys, ["compare", data, "--dataset-column", "dataset", *flags], *fragments)


def test_cli_compare_bad_data(tmp_path, capsys, no_fit):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("dataset,x,y\na,0,1\na,1,2\nb,0,1\nb,1,2\nb,2,3\n")
    expect_error(capsys, ["compare", str(ragged), "--dataset-column", "dataset"], "different numbers of rows",
                 "a: 2, b: 3")
    text = tmp_path / "text.csv"
    text.write_text("dataset,x,y\na,0,one\na,1,two\n")
    expect_error(capsys, ["compare", str(text), "--dataset-column", "dataset"], "column 'y' is not numeric")
    plain = tmp_path / "plain.csv"
    plain.write_text("x,y\n0,1\n1,abc\n")
    expect_error(capsys, ["compare", str(plain)], "non-numeric value 'abc'")
    user = tmp_path / "user.py"
    user.write_text("model = 3\n")
    expect_error(capsys, ["compare", _write_csv(tmp_path / "d.csv"), "--dataset-column", "dataset", "--model",
                          "a=normal", "--model", f"b={user}:model"], "is a int, not a Model")
