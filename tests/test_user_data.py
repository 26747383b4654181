"""A user's own data (issue 30): data-scaled default priors, formulas for every model family, user-model columns,
flags that do not apply, and the prior checks.

References are computed here, independently of the package: least squares (numpy) for the flat-prior posterior of
a real public regression, and importance sampling (numpy/scipy, a Student-t proposal around the Laplace
approximation) of each family's posterior written out by hand, the data-scaled priors included.
"""

from __future__ import annotations

import json

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bayeslin_jax as bl
from bayeslin_jax.core.datasets import path as dataset_path
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows import defaults
from bayeslin_jax.workflows.design import load_design, predict_formula

DIABETES = str(dataset_path("diabetes"))
REAL_FORMULA = "y ~ age + bmi + bp + s3 + s5 + C(sex)"
SMALL = {"num_warmup": 400, "num_draws": 400, "num_chains": 2}


# ---------------------------------------------------------------------------------------------
# The default rule
# ---------------------------------------------------------------------------------------------


def test_default_rule_scales_slopes_and_centres_the_intercept() -> None:
    """Slopes N(0, 2.5 sd(y)/sd(x_j)); u = w0 + mean(x) . w ~ N(mean(y), 2.5 sd(y)); sigma ~ Exponential(1/sd(y))."""
    design, y = load_design(DIABETES, REAL_FORMULA)
    phi = design.matrix
    model = defaults.build_model("gaussian", design, phi, y)
    prior, noise = model.spec.prior, model.spec.noise
    sd_y, sd_x = np.std(y, ddof=1), np.std(phi, axis=0, ddof=1)
    centring = np.eye(phi.shape[1])
    centring[0, 1:] = phi[:, 1:].mean(axis=0)  # u = L w
    cov_u = centring @ np.asarray(prior.cov, dtype=float) @ centring.T
    expected_sd = np.r_[2.5 * sd_y, 2.5 * sd_y / sd_x[1:]]
    # the prior is stored in JAX's working dtype (float32 here): agreement to its rounding
    np.testing.assert_allclose(np.sqrt(np.diag(cov_u)), expected_sd, rtol=1e-4)
    corr_u = cov_u / np.outer(expected_sd, expected_sd)
    np.testing.assert_allclose(corr_u - np.diag(np.diag(corr_u)), 0.0, atol=1e-3)
    np.testing.assert_allclose(centring @ np.asarray(prior.mean, dtype=float), np.r_[np.mean(y), np.zeros(6)],
                               atol=1e-4 * np.mean(y))
    assert float(noise.rate) == pytest.approx(1.0 / sd_y)
    lines = model.info["priors"]
    assert lines[0].startswith("Intercept ~ Normal(152.1, ") and "(at the predictor means)" in lines[0]
    assert lines[-1].startswith("sigma ~ Exponential(")
    glm = defaults.build_model("bernoulli", design, phi, (y > 140).astype(float))  # GLMs: sd(y) -> 1, mean(y) -> 0
    cov_u = centring @ np.asarray(glm.params["prior"].cov, dtype=float) @ centring.T
    np.testing.assert_allclose(np.sqrt(np.diag(cov_u)), np.r_[2.5, 2.5 / sd_x[1:]], rtol=1e-4)


def test_explicit_choices_override_parts_of_the_rule() -> None:
    design, y = load_design(DIABETES, "y ~ bmi + bp")
    raw = defaults.build_model("gaussian", design, design.matrix, y, defaults.PriorChoice(prior_scale=1000.0))
    np.testing.assert_allclose(np.asarray(raw.spec.prior.scale), 1000.0)  # release 0.2: every coefficient, raw
    t = defaults.build_model("gaussian", design, design.matrix, y,
                             defaults.PriorChoice(prior="student-t", prior_df=5, intercept_prior="cauchy",
                                                  sigma_prior="half-t", sigma_prior_df=4))
    prior = t.spec.prior
    assert prior.family == ("student_t",) * 3 and prior.intercept == 0
    np.testing.assert_allclose(np.asarray(prior.df), [1.0, 5.0, 5.0])
    assert t.spec.noise.describe()["kind"] != "exponential"
    tutorial = defaults.build_model("gaussian", design, design.matrix, y, defaults.PriorChoice(prior="tutorial"))
    assert float(tutorial.spec.noise.sigma) == pytest.approx(0.1)
    np.testing.assert_allclose(np.asarray(tutorial.spec.prior.scale), 0.2)


# ---------------------------------------------------------------------------------------------
# Done when: a new user's real data, no prior flags
# ---------------------------------------------------------------------------------------------


def _flat_reference(table: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Flat priors on w and log sigma: w | y ~ t_{n-d}(OLS, s^2 (X^T X)^-1), built with numpy from the raw table."""
    columns = ["age", "bmi", "bp", "s3", "s5"]
    X = np.column_stack([np.ones(len(table)), table[columns].to_numpy(float), (table["sex"] == 2).to_numpy(float)])
    y = table["y"].to_numpy(float)
    n, d = X.shape
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = float(rss[0]) / (n - d)
    cov = s2 * np.linalg.inv(X.T @ X)
    sd = np.sqrt(np.diag(cov) * (n - d) / (n - d - 2))
    return ["Intercept", *columns, "C(sex)[T.2]"], beta, sd


def test_cli_fit_of_real_data_with_no_prior_flags_matches_the_flat_prior_reference(tmp_path, capsys) -> None:
    """Diabetes (442 rows, raw units, one categorical): sigma learned, priors printed, every coefficient within
    0.3 posterior sd of the least-squares reference and its sd within 20 %."""
    out = tmp_path / "fit.json"
    status = main(["fit", DIABETES, "--formula", REAL_FORMULA, "--warmup", "500", "--draws", "500",
                   "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.startswith("priors:\n  Intercept ~ Normal(") and "sigma ~ Exponential(" in captured.out
    payload = json.loads(out.read_text())
    assert "sigma" in payload["parameters"] and payload["priors"][-1].startswith("sigma ~ Exponential(")
    assert payload["prior_warnings"] == [] and payload["converged"], payload["problems"]
    names, mean, sd = _flat_reference(pd.read_csv(DIABETES))
    for name, m, s in zip(names, mean, sd, strict=True):
        row = payload["features"][name]
        assert abs(row["nuts_mean"] - m) < 0.3 * s, (name, row, m, s)
        assert abs(row["nuts_sd"] / s - 1.0) < 0.2, (name, row, s)


def test_default_fit_on_raw_scale_data_learns_sigma_and_tutorial_priors_are_flagged() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-30, 30, 50)
    y = 100 + 3 * x + rng.normal(0, 30, 50)
    result = bl.fit(x, y, **SMALL)
    assert result.priors()[0].startswith("b ~ Normal(") and result.priors()[-1].startswith("sigma ~ Exponential")
    assert result.exact is None and result.prior_warnings() == []
    assert result.summary().attrs["priors"] == result.priors()
    sigma = result.draws("sigma")
    assert 20 < float(sigma.mean()) < 40
    tutorial = bl.fit(x, y, bl.tutorial_spec(), num_warmup=100, num_draws=100, num_chains=2)
    warnings = tutorial.prior_warnings()
    assert any("conflict with the prior for m" in w and "--prior-scale" in w for w in warnings), warnings
    assert any("known sigma 0.1 conflicts with the data" in w and "--sigma" in w for w in warnings), warnings


# ---------------------------------------------------------------------------------------------
# Every family through a formula, against importance sampling of the hand-written posterior
# ---------------------------------------------------------------------------------------------


def _table(seed: int = 1, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 70, n)
    income = rng.gamma(4.0, 12.0, n)
    group = rng.choice(["north", "south", "west"], n)
    return pd.DataFrame({"age": age, "income": income, "group": group})


def _importance(log_target, mode_guess: np.ndarray, num: int = 60_000, seed: int = 0):
    """Posterior means and sds of ``theta`` under ``log_target(theta: (m, k)) -> (m,)`` by importance sampling
    from a multivariate t(5) around the mode (Hessian by finite differences); the weights' ESS is checked."""
    fun = lambda t: -float(log_target(t[None])[0])  # noqa: E731
    mode = optimize.minimize(fun, mode_guess, method="BFGS", options={"gtol": 1e-8, "maxiter": 10_000}).x
    k = mode.size
    step = 1e-4 * np.maximum(1.0, np.abs(mode))
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * step[i], np.eye(k)[j] * step[j]
            hess[i, j] = (fun(mode + e_i + e_j) - fun(mode + e_i - e_j) - fun(mode - e_i + e_j)
                          + fun(mode - e_i - e_j)) / (4 * step[i] * step[j])
    cov = np.linalg.inv(0.5 * (hess + hess.T)) * 1.3**2
    proposal = stats.multivariate_t(loc=mode, shape=cov, df=5, seed=seed)
    draws = proposal.rvs(num)
    log_w = log_target(draws) - proposal.logpdf(draws)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    assert 1.0 / np.sum(w**2) > 5_000  # the proposal covers the posterior
    mean = w @ draws
    return mean, np.sqrt(w @ (draws - mean) ** 2)


def _normal_logpdf(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _default_log_prior(X: np.ndarray, w: np.ndarray, y_loc: float, y_scale: float) -> np.ndarray:
    """The data-scaled rule written out: u_0 = w_0 + mean(X_j) w_j ~ N(y_loc, 2.5 y_scale), w_j ~ N(0, 2.5 y_scale /
    sd(X_j)); ``w: (m, d)``."""
    sd_x = np.std(X[:, 1:], axis=0, ddof=1)
    u0 = w[:, 0] + w[:, 1:] @ X[:, 1:].mean(axis=0)
    return _normal_logpdf(u0, y_loc, 2.5 * y_scale) + _normal_logpdf(w[:, 1:], 0.0, 2.5 * y_scale / sd_x).sum(-1)


def _check_against(result, names: list[str], mean: np.ndarray, sd: np.ndarray, site: str = "w") -> None:
    table = result.summary()
    rows = table[table["site"] == site].loc[names]
    z = (rows["mean"].to_numpy() - mean) / rows["mcse_mean"].to_numpy()
    assert np.all(np.abs(z) < 5), (rows, mean)
    rel_se = 1.0 / np.sqrt(2.0 * rows["ess_bulk"].to_numpy())
    assert np.all(np.abs(rows["sd"].to_numpy() / sd - 1.0) < 5 * rel_se + 0.03), (rows, sd)


FORMULA = "y ~ age + income + C(group)"


def _design(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    X = np.column_stack([np.ones(len(table)), table["age"], table["income"], table["group"] == "south",
                         table["group"] == "west"]).astype(float)
    return ["Intercept", "age", "income", "C(group)[T.south]", "C(group)[T.west]"], X


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_bernoulli_formula_matches_importance_sampling() -> None:
    table = _table(1)
    names, X = _design(table)
    eta = -3.0 + 0.04 * table["age"] + 0.01 * table["income"] + 0.8 * (table["group"] == "west")
    table["y"] = (np.random.default_rng(2).uniform(size=len(table)) < special.expit(eta)).astype(float)
    result = bl.fit_formula(FORMULA, table, model="bernoulli", seed=0, **SMALL)
    assert result.priors()[0].startswith("Intercept ~ Normal(0, 2.5)")
    y = table["y"].to_numpy()

    def log_target(w):
        e = w @ X.T
        return (y * e - np.logaddexp(0.0, e)).sum(-1) + _default_log_prior(X, w, 0.0, 1.0)

    mean, sd = _importance(log_target, np.zeros(X.shape[1]))
    _check_against(result, names, mean, sd)
    new = pd.DataFrame({"age": [30.0, 60.0], "income": [40.0, 40.0], "group": ["north", "west"]})
    predicted = predict_formula(result, new)  # the response mean through the inverse link
    assert np.all((predicted["mean"] > 0) & (predicted["mean"] < 1)) and predicted["mean"][1] > predicted["mean"][0]


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_user_model_formula_gets_the_design_and_term_names() -> None:
    """A user's NumPyro model of the design rows ``x: (n, d)``, fitted through a formula; coefficients named after
    the terms; against importance sampling of the same posterior written in numpy."""
    table = _table(3, n=80)
    names, X = _design(table)
    rng = np.random.default_rng(4)
    table["y"] = X @ np.array([5.0, 0.1, -0.05, 1.0, 0.0]) + rng.normal(0, 1.5, len(table))

    def regression(x, y=None):
        beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([x.shape[-1]]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)

    model = bl.user_model(regression, feature_site="beta")
    result = bl.fit_formula(FORMULA, table, model=model, seed=0, **SMALL)
    assert list(result.tree["posterior"]["beta"].coords["feature"].values) == names
    y = table["y"].to_numpy()

    def log_target(theta):
        beta, log_sigma = theta[:, :-1], theta[:, -1]
        sigma = np.exp(log_sigma)[:, None]
        loglik = _normal_logpdf(y[None], beta @ X.T, sigma).sum(-1)
        log_prior = _normal_logpdf(beta, 0.0, 10.0).sum(-1) + stats.halfnorm.logpdf(np.exp(log_sigma), scale=5.0)
        return loglik + log_prior + log_sigma  # the Jacobian of sigma = exp(log sigma)

    beta0 = np.linalg.lstsq(X, y, rcond=None)[0]
    mean, sd = _importance(log_target, np.r_[beta0, np.log(1.5)])
    _check_against(result, names, mean[:-1], sd[:-1], site="beta")
    with pytest.raises(bl.BayeslinError, match="user model: its priors"):
        bl.fit_formula(FORMULA, table, model=model, prior_scale=3.0)


@pytest.mark.slow
def test_student_t_formula_matches_importance_sampling() -> None:
    table = _table(5)
    names, X = _design(table)
    rng = np.random.default_rng(6)
    table["y"] = X @ np.array([20.0, 0.3, 0.1, 2.0, -1.0]) + 3.0 * rng.standard_t(4, len(table))
    result = bl.fit_formula(FORMULA, table, model="student_t", model_options={"nu": 4}, seed=0,
                            num_warmup=600, num_draws=600, num_chains=4)
    y = table["y"].to_numpy()
    loc, scale = float(np.mean(y)), float(np.std(y, ddof=1))

    def log_target(theta):
        w, log_sigma = theta[:, :-1], theta[:, -1]
        sigma = np.exp(log_sigma)
        loglik = stats.t.logpdf(y[None], 4.0, loc=w @ X.T, scale=sigma[:, None]).sum(-1)
        return loglik + _default_log_prior(X, w, loc, scale) + stats.expon.logpdf(sigma, scale=scale) + log_sigma

    w0 = np.linalg.lstsq(X, y, rcond=None)[0]
    mean, sd = _importance(log_target, np.r_[w0, np.log(3.0)])
    _check_against(result, names, mean[:-1], sd[:-1])


@pytest.mark.slow
def test_poisson_formula_matches_importance_sampling() -> None:
    table = _table(7)
    names, X = _design(table)
    eta = 0.2 + 0.02 * table["age"] + 0.005 * table["income"] - 0.4 * (table["group"] == "south")
    table["y"] = np.random.default_rng(8).poisson(np.exp(eta)).astype(float)
    result = bl.fit_formula(FORMULA, table, model="poisson", seed=0, num_warmup=600, num_draws=600, num_chains=4)
    y = table["y"].to_numpy()

    def log_target(w):
        e = w @ X.T
        return (y * e - np.exp(e) - special.gammaln(y + 1)).sum(-1) + _default_log_prior(X, w, 0.0, 1.0)

    mean, sd = _importance(log_target, np.zeros(X.shape[1]))
    _check_against(result, names, mean, sd)


@pytest.mark.slow
def test_horseshoe_formula_matches_a_long_numpyro_run() -> None:
    from numpyro.infer import MCMC, NUTS

    from bayeslin_jax.core import regressions

    table = _table(9, n=120)
    names, X = _design(table)
    table["y"] = X @ np.array([10.0, 0.2, 0.0, 0.0, 3.0]) + np.random.default_rng(10).normal(0, 2.0, len(table))
    result = bl.fit_formula(FORMULA, table, model="horseshoe", seed=0, num_warmup=1000, num_draws=1000,
                            num_chains=4, target_accept=0.95)
    model = result.model
    import jax

    mcmc = MCMC(NUTS(model.bound, target_accept_prob=0.95), num_warmup=2000, num_samples=5000, num_chains=1,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1), np.asarray(X, np.float32), np.asarray(table["y"], np.float32), **model.params)
    ref = np.asarray(mcmc.get_samples()["w"], dtype=float)
    assert regressions.horseshoe_regression is model.fn
    summary = result.summary()
    table_nuts = summary[summary["site"] == "w"].loc[names]
    ref_mcse = ref.std(0) / np.sqrt(np.maximum(500.0, 0.1 * len(ref)))  # conservative: ESS >= 10 % of the draws
    margin = 5 * np.hypot(table_nuts["mcse_mean"].to_numpy(), ref_mcse)
    assert np.all(np.abs(table_nuts["mean"].to_numpy() - ref.mean(0)) < margin), (table_nuts, ref.mean(0))


# ---------------------------------------------------------------------------------------------
# User-model columns and the CLI
# ---------------------------------------------------------------------------------------------

MODEL_FILE = '''
import numpyro, numpyro.distributions as dist

def groups(x, y=None, *, group, num_groups: int = 3):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.0).expand([num_groups]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(mu + alpha[group] + 0.5 * x, sigma), obs=y)
'''


def _group_csv(tmp_path, column: str = "group") -> str:
    rng = np.random.default_rng(11)
    levels = np.array(["lisbon", "oslo", "rome"])
    codes = np.arange(30) % 3
    x = rng.uniform(-1, 1, 30)
    y = 1.0 + np.array([-1.0, 0.0, 2.0])[codes] + 0.5 * x + rng.normal(0, 0.3, 30)
    path = tmp_path / "groups.csv"
    path.write_text(f"x,y,{column}\n" + "".join(f"{a},{b},{levels[c]}\n" for a, b, c in zip(x, y, codes,
                                                                                            strict=True)))
    return str(path)


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_cli_user_model_takes_a_text_group_column_by_name(tmp_path, capsys) -> None:
    model_file = tmp_path / "groups_model.py"
    model_file.write_text(MODEL_FILE)
    out = tmp_path / "fit.json"
    status = main(["fit", _group_csv(tmp_path), "--model", f"{model_file}:groups", "--warmup", "300", "--draws",
                   "300", "--chains", "2", "--json", str(out)])
    captured = capsys.readouterr()
    assert status in (0, 1), captured.err
    payload = json.loads(out.read_text())
    alpha = [payload["parameters"][f"alpha[{k}]"]["nuts_mean"] for k in range(3)]
    assert alpha[2] - alpha[0] > 2.0  # rome above lisbon: the levels are coded in sorted order
    # a renamed column is a one-line error naming the argument, never the model file's placeholder
    status = main(["fit", _group_csv(tmp_path, "city"), "--model", f"{model_file}:groups"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "per-point argument 'group'" in err, err
    status = main(["fit", _group_csv(tmp_path, "city"), "--model", f"{model_file}:groups", "--model-column",
                   "group=town"])
    err = capsys.readouterr().err
    assert status == 2 and "no column 'town'" in err, err


def test_bind_columns_keeps_level_names_as_coordinates() -> None:
    table = pd.DataFrame({"x": np.linspace(-1, 1, 12), "y": np.linspace(0, 1, 12),
                          "group": ["b", "a", "c"] * 4})

    def fn(x, y=None, *, group, num_groups: int = 3):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 1.0).expand([num_groups]).to_event(1))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Normal(alpha[group], 1.0), obs=y)

    from bayeslin_jax.workflows.design import bind_columns, label_levels

    model = bind_columns(bl.user_model(fn), table, num_points=12)
    assert model.info["levels"]["group"] == ["a", "b", "c"]
    np.testing.assert_array_equal(np.asarray(model.params["group"])[:3], [1, 0, 2])
    result = bl.fit(table["x"].to_numpy(), table["y"].to_numpy(), model, num_warmup=50, num_draws=50,
                    num_chains=2)
    label_levels(result.tree, model)
    dim = next(d for d in result.tree["posterior"]["alpha"].dims if d not in ("chain", "draw"))
    assert list(result.tree["posterior"]["alpha"].coords[dim].values) == ["a", "b", "c"]


GOOD = "x,y\n-0.5,1.8\n0.0,2.0\n0.5,2.2\n0.7,2.1\n-0.2,1.9\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prior", "student-t", "--prior-df", "-1"], "prior df must be positive"),
        (["--prior-df", "3"], "--prior-df applies to the Student-t weight prior only"),
        (["--prior", "flat", "--prior-scale", "2"], "flat weights have no mean or scale"),
        (["--prior", "bogus"], "invalid choice: 'bogus'"),
        (["--intercept-scale", "0"], "intercept scale must be positive"),
        (["--intercept-prior", "flat", "--intercept-scale", "5"], "flat intercept prior has no mean or scale"),
        (["--intercept-df", "3"], "--intercept-df applies to the Student-t intercept prior only"),
        (["--intercept-prior", "student-t", "--intercept-df", "nan"], "intercept df must be positive"),
        (["--sigma-prior", "half-t", "--sigma-prior-df", "0"], "sigma prior df must be positive"),
        (["--sigma-prior-df", "3"], "--sigma-prior-df applies to the half-t sigma prior only"),
        (["--sigma-prior", "flat", "--sigma-prior-scale", "1"], "flat sigma prior has no scale"),
        (["--sigma-prior-scale", "-1"], "sigma prior scale must be positive"),
        (["--sigma", "0.1", "--sigma-prior-scale", "1"], "--sigma fixes the noise"),
        (["--prior-scale", "1e300"], "too large"),
        (["--nu", "4"], "--nu applies to --likelihood student-t only"),
        (["--slab-scale", "1"], "--slab-scale applies to --prior horseshoe only"),
        (["--expected-nonzero", "1"], "--expected-nonzero applies to --prior horseshoe only"),
        (["--model-column", "g"], "--model-column applies to --model FILE.py:NAME only"),
        (["--family", "poisson", "--sigma", "1"], "has no noise sd"),
        (["--prior", "horseshoe", "--prior-df", "3"], "--prior-df"),
        (["--likelihood", "student-t", "--family", "bernoulli"], "cannot be combined"),
        (["--basis", "poly5", "--prior", "flat"], "at least 7 data points"),
        (["--formula", "y ~ 0 + x", "--intercept-scale", "3"], "no intercept column"),
        (["--formula", "y ~ x + (x"], "formula"),
    ],
)
def test_every_new_flag_refuses_bad_values_in_one_line(tmp_path, capsys, extra, message) -> None:
    data = tmp_path / "data.csv"
    data.write_text(GOOD)
    status = main(["fit", str(data), "--warmup", "20", "--draws", "20", *extra])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_user_model_refuses_prior_flags(tmp_path, capsys) -> None:
    model_file = tmp_path / "groups_model.py"
    model_file.write_text(MODEL_FILE)
    for extra in (["--prior-scale", "3"], ["--sigma", "1"], ["--likelihood", "student-t"], ["--prior", "flat"]):
        status = main(["fit", _group_csv(tmp_path), "--model", f"{model_file}:groups", *extra])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and "--model" in err, (extra, err)


def test_flat_prior_needs_a_proper_posterior() -> None:
    """Flat weights and a flat sigma need more rows than terms plus one (3 rows, 2 terms: improper)."""
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 2.5]})
    with pytest.raises(bl.BayeslinError, match="improper posterior"):
        bl.fit_formula("y ~ a", table, priors={"prior": "flat", "sigma_prior": "flat"}, num_warmup=20, num_draws=20)
    with pytest.raises(bl.BayeslinError, match="unknown prior option"):
        bl.fit_formula("y ~ a", table, priors={"scale": 1.0})


@pytest.mark.slow  # ~15 s idle; bl.compare's per-dataset preference is in the default suite (tests/test_compare_any.py)
def test_cli_compare_with_a_formula_prefers_student_t_on_outliers(tmp_path, capsys) -> None:
    """``bayeslin compare --formula`` on a user's table with gross outliers: Student-t ranks first by PSIS-LOO, with
    data-scaled priors for both models (printed)."""
    table = _table(12, n=60)
    _, X = _design(table)
    rng = np.random.default_rng(13)
    y = X @ np.array([5.0, 0.1, -0.05, 1.0, 0.0]) + rng.normal(0, 0.5, len(table))
    y[::12] += 25.0  # five gross outliers
    table["y"] = y
    path = tmp_path / "outliers.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "compare.json"
    status = main(["compare", str(path), "--formula", FORMULA, "--warmup", "300", "--draws", "300", "--chains", "2",
                   "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "priors of normal:" in captured.out and "sigma ~ Exponential(" in captured.out
    payload = json.loads(out.read_text())
    assert payload["winner"] == "student-t", payload


def test_label_levels_names_terms_and_levels_only_when_unambiguous() -> None:
    """A user model on a formula without a feature site: its (d,) sites get the term names, a factorized column's
    sites its levels; a length both could claim gets neither (never a wrong label)."""
    import dataclasses

    import xarray as xr

    from bayeslin_jax.workflows.fit import label_levels

    design, _ = load_design(DIABETES, "y ~ bmi + bp")  # 3 terms

    def tree():
        zeros = lambda k: np.zeros((1, 2, k))  # noqa: E731
        return xr.DataTree.from_dict({"posterior": xr.Dataset(
            {"w": (("chain", "draw", "w_dim_0"), zeros(3)), "a": (("chain", "draw", "a_dim_0"), zeros(2))})})

    model = dataclasses.replace(bl.user_model(lambda x, y=None: None), basis=design,
                                info={"levels": {"group": ["north", "south"]}})
    labelled = label_levels(tree(), model)["posterior"]
    assert list(labelled["w"].coords["w_dim_0"].values) == ["Intercept", "bmi", "bp"]
    assert list(labelled["a"].coords["a_dim_0"].values) == ["north", "south"]
    clash = dataclasses.replace(model, info={"levels": {"group": ["x", "y", "z"]}})
    unlabelled = label_levels(tree(), clash)["posterior"]
    assert "w_dim_0" not in unlabelled.coords or list(unlabelled.coords["w_dim_0"].values) == [0, 1, 2]
