"""Issue 30 items 7 and 8: per-point deterministic sites are kept, and the output says what it measured.

* eight schools' non-centred ``theta = mu + tau * theta_raw`` (a ``numpyro.deterministic`` in the ``school``
  plate) is in the posterior, dims ``(chain, draw, [dataset,] school)``, equal to the formula on the returned
  draws, for one dataset and a batch;
* the batched engine in chunks gives the unchunked draws bit for bit; the progress bar is on stderr, not with
  ``progress=False``;
* ``problems()`` prints R-hat/ESS on the failing side of the threshold, one line for one chain and no NaN
  warnings; ``summary()`` has ArviZ's ETI (or HDI) columns; a batched ``plot()`` needs ``dataset=``;
* every CLI option has help, and ``--help`` shows every default.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import arviz_stats as azs
import jax.numpy as jnp
import matplotlib
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeslin_jax as bl
from bayeslin_jax.core import simulate
from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.engine.sampling import sample_model
from bayeslin_jax.interfaces.cli import build_parser

matplotlib.use("Agg")

# owned by the formula/prior work, being fixed (commands/common.py's sampler flags, shared by fit/study/sbc/compare)
HELP_ALLOW_LIST: set[str] = set()  # every flag has help

SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SD = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
TINY = {"num_warmup": 100, "num_draws": 100, "num_chains": 2}


def noncentred_schools(x, y=None, *, sd):
    """Eight schools, non-centred; ``x``: the school index (one point per school)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", x.shape[0]):
        theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_raw)
        numpyro.sample("y", dist.Normal(theta, sd), obs=y)


SCHOOLS = bl.user_model(noncentred_schools, sd=SCHOOLS_SD)


def _assert_theta_is_the_formula(result) -> None:
    """``theta`` = ``mu + tau * theta_raw`` on the returned draws, exactly: as two float32 roundings, or as one
    (XLA fuses the multiply-add: the float64 product is exact, then one rounding to float32)."""
    mu, tau, raw = (result.draws(name) for name in ("mu", "tau", "theta_raw"))
    theta = result.draws("theta")
    two_roundings = mu[..., None] + tau[..., None] * raw
    fused = (mu[..., None].astype(np.float64) + tau[..., None].astype(np.float64) * raw).astype(theta.dtype)
    assert theta.shape == raw.shape
    assert np.all((theta == two_roundings) | (theta == fused))


@pytest.fixture(scope="module")
def schools_batch():
    x = np.tile(np.arange(8.0), (2, 1))
    y = np.stack([SCHOOLS_Y, SCHOOLS_Y - 5.0])
    return bl.fit(x, y, SCHOOLS, seed=0, **TINY)  # progress on: chunks of 1 dataset, the program of one


@pytest.fixture(scope="module")
def gaussian_batch():
    data = simulate.tutorial_data(seed=3, indices=np.arange(2))
    return bl.fit(data.x, data.y, tutorial_spec(), seed=1, progress=False, **TINY)


def test_per_point_deterministic_site_is_kept(schools_batch, capfd) -> None:
    capfd.readouterr()
    single = bl.fit(np.arange(8.0), SCHOOLS_Y, SCHOOLS, seed=0, **TINY)
    assert "datasets" not in capfd.readouterr().err  # one dataset: no progress bar by default
    assert single.tree["posterior"]["theta"].dims == ("chain", "draw", "school")
    assert single.tree["posterior"]["theta_raw"].dims == ("chain", "draw", "school")  # the plate names the dim
    assert single.draws("theta").shape == (2, 100, 8)
    _assert_theta_is_the_formula(single)
    assert {f"theta[{k}]" for k in range(8)} <= set(single.summary().index)
    assert schools_batch.tree["posterior"]["theta"].dims == ("chain", "draw", "dataset", "school")
    assert schools_batch.draws("theta").shape == (2, 2, 100, 8)
    _assert_theta_is_the_formula(schools_batch)
    # dataset 0 of the batch is the single fit (same seed and index): its per-point site too
    np.testing.assert_array_equal(schools_batch.draws("theta")[0], single.draws("theta"))


def test_chunked_engine_equals_unchunked_bit_for_bit(capfd) -> None:
    """5 datasets: one engine call vs 5 chunks of 1 (the ``"map"`` layout, CPU's default). Dataset ``i`` is
    keyed by its global index ``i`` in every chunking, and ``"map"`` runs each (dataset, chain) as its own trip
    of one compiled loop body, so the draws are identical bit for bit although the programs differ in shape
    (10 runs vs 2; the chunks reuse the program the fits above compiled)."""
    config = NutsConfig(**TINY)
    if config.resolved_method() != "map":  # off CPU: the claim is for "map"
        config = NutsConfig(**TINY, method="map")
    x = jnp.asarray(np.tile(np.arange(8.0), (5, 1)), dtype=jnp.float32)
    y = jnp.asarray(SCHOOLS_Y + 3.0 * np.arange(5)[:, None], dtype=jnp.float32)
    whole = sample_model(0, x, y, SCHOOLS, config)
    assert capfd.readouterr().err == ""  # progress off by default in the engine
    for chunk_size in (1,):
        chunked = sample_model(0, x, y, SCHOOLS, config, chunk_size=chunk_size, progress=True)
        for name in whole.samples:
            np.testing.assert_array_equal(np.asarray(chunked.samples[name]), np.asarray(whole.samples[name]))
        for name in whole.stats:
            np.testing.assert_array_equal(np.asarray(chunked.stats[name]), np.asarray(whole.stats[name]))
        assert "5/5" in capfd.readouterr().err  # tqdm on stderr


def test_fit_progress_bar_on_stderr_for_a_batch_only(gaussian_batch, capfd) -> None:
    capfd.readouterr()
    data = simulate.tutorial_data(seed=3, indices=np.arange(2))
    quiet = bl.fit(data.x, data.y, tutorial_spec(), seed=1, **TINY)  # stderr is no terminal here: off by default
    assert "datasets" not in capfd.readouterr().err
    shown = bl.fit(data.x, data.y, tutorial_spec(), seed=1, progress=True, **TINY)
    captured = capfd.readouterr()
    assert "datasets" in captured.err and "2/2" in captured.err and "datasets" not in captured.out
    np.testing.assert_array_equal(shown.draws("w"), gaussian_batch.draws("w"))  # the fixture: progress=False
    np.testing.assert_array_equal(quiet.draws("w"), gaussian_batch.draws("w"))
    bl.fit(np.tile(np.arange(8.0), (2, 1)), np.stack([SCHOOLS_Y] * 2), SCHOOLS, seed=0, progress=True,
           **TINY)  # general engine
    assert "2/2" in capfd.readouterr().err


def test_problems_print_the_failing_digits(gaussian_batch) -> None:
    result = dataclasses.replace(gaussian_batch)  # a fresh instance: its own cached diagnostics
    table = gaussian_batch.diagnostics()
    table["rhat"][:] = 1.0
    table["ess_bulk"][:] = table["ess_tail"][:] = 1000.0
    table["rhat"][0, 0] = 1.0139
    table["rhat"][1, 1] = 1.01004
    table["ess_bulk"][1, 0] = 199.7  # 2 chains: the threshold is 200
    result.__dict__["_diagnostics"] = table
    problems = result.problems()
    assert "dataset 0: R-hat > 1.01 for b (max 1.014)" in problems
    assert "dataset 1: R-hat > 1.01 for m (max 1.01004)" in problems
    assert "dataset 1: ESS < 200 (100 per chain) for b (min 199)" in problems
    assert len(problems) == 3


def test_one_chain_is_one_line_without_nan_warnings(gaussian_batch) -> None:
    """The fixture's first chain as a one-chain fit (what ``num_chains=1`` hands the FitResult: the report code
    paths are the same; ``bayeslin fit --chains 1`` was checked by hand to print the same one line)."""
    one = dataclasses.replace(gaussian_batch, tree=gaussian_batch.tree.isel(chain=[0]),
                              config=dataclasses.replace(gaussian_batch.config, num_chains=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        problems = one.problems()
        table = one.summary()
        one.to_dict()
    assert problems.count("R-hat needs at least 2 chains") == 1  # once per fit, not per dataset
    assert not any("nan" in line.lower() or "R-hat >" in line for line in problems)
    assert table["rhat"].isna().all() and np.isfinite(table["ess_bulk"]).all()


def test_summary_has_arviz_eti_or_hdi_columns(gaussian_batch) -> None:
    table = gaussian_batch.summary()
    assert list(table.columns[:5]) == ["site", "mean", "sd", "eti89_lb", "eti89_ub"]
    hdi = gaussian_batch.summary(ci_kind="hdi", ci_prob=0.9)
    assert "hdi90_lb" in hdi and "eti89_lb" not in hdi
    for i in range(2):
        one = gaussian_batch.tree.isel(dataset=i)
        eti = azs.eti(one, prob=0.89)["w"].values  # (feature, 2)
        np.testing.assert_allclose(table.loc[i][["eti89_lb", "eti89_ub"]].to_numpy(), eti, rtol=1e-6)
        interval = azs.hdi(one, prob=0.9)["w"].values
        np.testing.assert_allclose(hdi.loc[i][["hdi90_lb", "hdi90_ub"]].to_numpy(), interval, rtol=1e-6)
    reference = azs.summary(gaussian_batch.tree.isel(dataset=0), round_to="none")
    assert {"eti89_lb", "eti89_ub"} <= set(reference.columns)  # ArviZ's own names
    with pytest.raises(bl.BayeslinError, match="ci_kind must be 'eti' or 'hdi'"):
        gaussian_batch.summary(ci_kind="hpd")


def test_batched_plot_needs_a_dataset(gaussian_batch, schools_batch) -> None:
    for result in (gaussian_batch, schools_batch):
        with pytest.raises(bl.BayeslinError, match=r"^this result holds 2 datasets: pass dataset=i$"):
            result.plot()
    fig = gaussian_batch.plot(dataset=1)
    assert "dataset 1" in fig.axes[0].get_title()
    fig = schools_batch.plot(dataset=0)
    assert fig._suptitle is not None and fig._suptitle.get_text() == "dataset 0"
    with pytest.raises(bl.BayeslinError, match="outside"):
        gaussian_batch.plot(dataset=2)


def _subparsers(parser: argparse.ArgumentParser):
    """``(name, parser)`` for the parser and every sub-parser, recursively."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _subparsers(sub)


def test_every_option_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    parsers = list(_subparsers(build_parser()))
    names = {"bayeslin demo", "bayeslin fit", "bayeslin study", "bayeslin report", "bayeslin sbc"}
    assert names <= dict(parsers).keys()
    for prog, parser in parsers:
        formatter = parser._get_formatter()
        page = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest
            if flag in HELP_ALLOW_LIST:
                continue
            if not (action.help or "").strip():
                missing.append(f"{prog} {flag}")
                continue
            default = action.default
            if default is None or default is False or default is argparse.SUPPRESS or not action.option_strings:
                continue
            if action.nargs == 0:  # an on/off flag (--no-whiten): its help says what it does, no stored default
                continue
            text = " ".join(formatter._expand_help(action).split())  # the help line as --help prints it
            if str(default) not in text or str(default) not in page:
                no_default.append(f"{prog} {flag} (default {default!r}): {text!r}")
    assert not missing, "options without help: " + ", ".join(missing)
    assert not no_default, "defaults not shown:\n" + "\n".join(no_default)
