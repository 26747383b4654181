"""SBC of the user's own sampler, simulator and test quantities; exact ECDF / log-space p-values.

Sizes come from scripts/sbc_power.py (scripts/results/sbc_power.json, 100 seeds per setup): on
the poly3 design the correlation-ignoring sampler (e) and the half-data sampler (f) are flagged
by loglik and log_joint in >= 99 % of seeds from N = 25, the sd x 0.8 sampler (g) by log_joint
from N = 100 (see the JSON); the tests use 128-200 (>= 2x), where the observed p-values are far
below the asserted 1e-6. Correct samplers are judged at family level 0.01.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from bayeslin_jax.core import exact
from bayeslin_jax.core import keys as keyring
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import ModelSpec, half_normal_noise, tutorial_spec
from bayeslin_jax.core.simulate import SimulatedData, prior_data
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.workflows.sbc import SamplerInfo, nuts_sampler, run_sampler_sbc, summarize
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.sbc import stats as sbc_stats
from bayeslin_jax.workflows.sbc.quantities import default_quantities
from bayeslin_jax.workflows.sbc.samplers import DatasetSimulator, ExactSampler

POLY3 = tutorial_spec(degree=3)  # x, x^3 (and 1, x^2) strongly correlated features: correlated posterior
ALPHA_CORRECT = 0.01
CHUNK = 128  # one batch shape for every default-suite run here: compiled once


@partial(jax.jit, static_argnames="num_draws")
def conjugate(keys, data, num_draws):
    """A user's sampler: exact conjugate posterior draws, written against the public contract."""
    post = exact.posterior(POLY3.basis(data.x), data.y, POLY3.prior, POLY3.noise.sigma)
    return {"w": exact.sample_batch(keys, post, num_draws)}


conjugate.info = SamplerInfo("user-conjugate", "1.0")


def verdicts(report) -> dict[str, str]:
    return dict(zip(report.quantities, report.quantity_verdicts(), strict=True))


# ---------------------------------------------------------------------------------------------
# Exact ECDF p-values, chi-square in log space
# ---------------------------------------------------------------------------------------------


def test_ecdf_p_is_exact_against_enumeration() -> None:
    # N = 4 ranks on {0, 1, 2} (L = 2): all 81 equally likely rank vectors give the null exactly
    num, num_ranks = 4, 2
    everything = np.array(list(itertools.product(range(num_ranks + 1), repeat=num)))  # (81, 4)
    gammas = sbc_stats._gamma(sbc_stats.rank_counts(everything.T, num_ranks), num)
    for ranks in everything[::7]:
        expected = np.mean(gammas <= sbc_stats._gamma(sbc_stats.rank_counts(ranks[:, None], num_ranks), num)[0]
                           * (1 + 1e-12))
        out = sbc_stats.ecdf_pvalues(ranks[:, None], num_ranks, refine_below=1.0)
        assert out["method"][0] == "exact"
        np.testing.assert_allclose(out["p"][0], expected, rtol=1e-9)


def test_ecdf_p_uniform_under_null_and_tiny_not_zero() -> None:
    rng = np.random.default_rng(5)
    reps, num, num_ranks = 300, 100, 19
    p = sbc_stats.ecdf_pvalues(rng.integers(0, num_ranks + 1, size=(num, reps)), num_ranks, refine_below=1.0)["p"]
    for level in (0.05, 0.2, 0.5):  # discrete ranks: P(p <= a) <= a, and close to it (4-sigma windows)
        frac = np.mean(p <= level)
        assert level - 4 * np.sqrt(level * (1 - level) / reps) - 0.03 <= frac <= level + 4 * np.sqrt(
            level * (1 - level) / reps), (level, frac)
    # strongly non-uniform: ranks piled at the low end; exact recursion, bound, and chi-square
    skewed = np.minimum(rng.integers(0, 100, size=(200, 1)), rng.integers(0, 100, size=(200, 1)))
    piled = np.zeros((3000, 1), dtype=int)
    for ranks in (skewed, piled):
        out = sbc_stats.ecdf_pvalues(ranks, 99)
        assert 0.0 < out["p"][0] < 1e-10 and np.isfinite(out["log10_p"][0]), out
        assert out["log10_p"][0] <= np.log10(99) + out["log10_gamma"][0] + 1e-9  # within the union bound
        _, chi2_p, _ = sbc_stats.chi2_test(ranks, 99)
        assert 0.0 < chi2_p[0] < 1e-8
    # exact recursion down to tiny p (no bound): agrees with the union-bound sandwich gamma/2 <= p <= L gamma
    out = sbc_stats.ecdf_pvalues(skewed, 99, bound_below=0.0)
    assert out["method"][0] == "exact" and 0.0 < out["p"][0] < 1e-10, out
    assert out["log10_gamma"][0] - np.log10(2) <= out["log10_p"][0] <= out["log10_gamma"][0] + np.log10(99)
    assert sbc_stats.chi2_log10_p(piled, 99)[0] < -1000  # would underflow to 0 outside log space


# ---------------------------------------------------------------------------------------------
# The contract: correct and broken user samplers
# ---------------------------------------------------------------------------------------------


def test_rank_jitter_is_keyed_by_simulation_index_not_chunk_position() -> None:
    """A simulation's randomised rank is the same wherever it sits in a chunk (indices 64..127 at positions
    64..127 of one chunk and 0..63 of the next): the tie-break uniform is keyed by ``(seed, index)``."""
    from bayeslin_jax.core.simulate import get_simulator
    from bayeslin_jax.workflows.sbc import quantities as qmod
    from bayeslin_jax.workflows.sbc.samplers import sampler_chunk

    common = {"sampler": conjugate, "simulator": get_simulator("prior"), "spec": POLY3,
              "quantities": qmod.as_quantities(None, POLY3), "seed": 8, "num_ranks": 99}
    first = sampler_chunk(np.arange(CHUNK), **common)
    second = sampler_chunk(np.arange(CHUNK // 2, CHUNK + CHUNK // 2), **common)
    overlap = slice(CHUNK // 2, CHUNK)
    np.testing.assert_allclose(first["truth"].values[overlap], second["truth"].values[: CHUNK // 2], rtol=1e-6)
    np.testing.assert_allclose(first["pit"].values[overlap], second["pit"].values[: CHUNK // 2], rtol=1e-5)
    jitter = np.asarray(sbc._jitter(8, np.arange(CHUNK // 2, CHUNK), 3))
    np.testing.assert_array_equal(jitter, np.asarray(sbc._jitter(8, np.arange(CHUNK), 3))[overlap])


def test_user_sampler_passes_and_is_recorded() -> None:
    ds = run_sampler_sbc(conjugate, 256, seed=31, spec=POLY3, chunk_size=CHUNK)
    report = summarize(ds, alpha=ALPHA_CORRECT)
    assert report.verdict == "pass", report.table()
    assert report.quantities == [*POLY3.feature_names, "loglik", "log_joint", "proj1", "proj2"]
    meta = json.loads(ds.attrs["meta"])
    assert meta["sampler"] == {"name": "user-conjugate", "version": "1.0"}
    assert meta["linear_quantities"] == [*POLY3.feature_names, "proj1", "proj2"]


def test_correlation_ignoring_sampler_fails_only_on_joint_quantities() -> None:
    report = summarize(run_sampler_sbc(ExactSampler(POLY3, ignore_correlation=True), CHUNK, seed=32, spec=POLY3,
                                       chunk_size=CHUNK))
    holm = dict(zip(report.quantities, report.holm_min(), strict=True))
    assert report.verdict == "fail" and holm["log_joint"] < 1e-6 and holm["loglik"] < 1e-6, report.table()
    # every weight's marginal is exact: its rank and DAP tests are null tests and pass
    assert all(holm[w] > ALPHA_CORRECT for w in POLY3.feature_names), report.table()


@pytest.mark.slow
def test_prior_as_posterior_passes_parameters_fails_loglik() -> None:
    # Modrák et al.'s example: a "sampler" that ignores the data and returns prior draws is calibrated
    # for every parameter (sigma learnt here), and only data-dependent quantities can tell
    spec = ModelSpec(tutorial_spec().basis, tutorial_spec().prior, half_normal_noise(0.2))

    def prior_draws(keys, data, num_draws):
        w = jax.vmap(lambda k: spec.prior.distribution().sample(k, (num_draws,)))(keys)
        sigma = jax.vmap(lambda k: spec.noise.distribution().sample(jax.random.fold_in(k, 1), (num_draws,)))(keys)
        return {"w": w, "sigma": sigma}

    report = summarize(run_sampler_sbc(prior_draws, CHUNK, seed=38, spec=spec, chunk_size=CHUNK))
    holm = dict(zip(report.quantities, report.holm_min(), strict=True))
    assert holm["loglik"] < 1e-6 and holm["log_joint"] < 1e-6, report.table()
    assert all(holm[q] > ALPHA_CORRECT for q in ("b", "m", "sigma", "proj1", "proj2")), report.table()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sampler", "marginals_pass"),
    [(ExactSampler(POLY3, sd_scale=0.8), False), (ExactSampler(POLY3, data_fraction=0.5), True)],
    ids=["underdispersed", "half-data"],
)
def test_broken_user_samplers_fail_on_joint_quantities(sampler, marginals_pass) -> None:
    report = summarize(run_sampler_sbc(sampler, 200, seed=32, spec=POLY3, chunk_size=200))
    assert report.verdict == "fail", report.table()
    holm = dict(zip(report.quantities, report.holm_min(), strict=True))
    assert holm["log_joint"] < 1e-6, report.table()
    if marginals_pass:  # a posterior given half the data is calibrated for every parameter
        assert all(holm[w] > ALPHA_CORRECT for w in POLY3.feature_names), report.table()


@pytest.mark.slow
def test_user_simulator_and_quantity() -> None:
    # a user design: x ~ U(1, 3) (off-centre: intercept and slope strongly anti-correlated a posteriori)
    spec = tutorial_spec()

    def offset(seed, indices, spec):
        base = prior_data(seed, indices, spec)
        noise = base.y - jnp.einsum("bnd,bd->bn", spec.basis(base.x), base.w)
        x = base.x + 2.0
        return SimulatedData(x, jnp.einsum("bnd,bd->bn", spec.basis(x), base.w) + noise, base.w, base.sigma)

    def difference(params, data):
        return params["w"][1] - params["w"][0]

    quantities = {"b": lambda p, d: p["w"][0], "m": lambda p, d: p["w"][1], "m - b": difference}
    good = summarize(run_sampler_sbc(ExactSampler(spec), 200, seed=33, spec=spec, simulator=offset,
                                     quantities=quantities), alpha=ALPHA_CORRECT)
    assert good.verdict == "pass", good.table()
    bad = summarize(run_sampler_sbc(ExactSampler(spec, ignore_correlation=True), 200, seed=33, spec=spec,
                                    simulator=offset, quantities=quantities))
    holm = bad.holm_min()
    assert holm[2] < 1e-4 and holm[0] > ALPHA_CORRECT and holm[1] > ALPHA_CORRECT, bad.table()


# ---------------------------------------------------------------------------------------------
# Precomputed draws, DataTree, bad output, resuming
# ---------------------------------------------------------------------------------------------


def test_precomputed_draws_and_datatree_equal_callable() -> None:
    num, seed = CHUNK, 34
    live = run_sampler_sbc(conjugate, num, seed=seed, spec=POLY3, chunk_size=num)
    data = prior_data(seed, np.arange(num), POLY3)
    draws = np.asarray(conjugate(keyring.dataset_keys(seed, keyring.INFER, jnp.arange(num)), data, 99)["w"])
    from_dict = run_sampler_sbc({"w": draws}, num, seed=seed, spec=POLY3, chunk_size=CHUNK)
    np.testing.assert_array_equal(from_dict["rank"].values, live["rank"].values)
    # a DataTree with a dataset dim: 1 chain x 99 draws, dims in ArviZ's order (chain, draw, dataset, w_dim)
    posterior = xr.Dataset({"w": (("chain", "draw", "dataset", "w_dim_0"), np.moveaxis(draws, 0, 1)[None])})
    tree = xr.DataTree.from_dict({"posterior": posterior})
    from_tree = run_sampler_sbc(tree, num, seed=seed, spec=POLY3, chunk_size=num,
                                simulator=DatasetSimulator(data))
    np.testing.assert_array_equal(from_tree["rank"].values, live["rank"].values)
    assert json.loads(from_tree.attrs["meta"])["sampler"]["name"] == "precomputed"
    with pytest.raises(BayeslinError, match=r"cover datasets 0\.\.127"):
        run_sampler_sbc({"w": draws}, num + 1, seed=seed, spec=POLY3)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda k, d, L: {"w": jnp.zeros((d.x.shape[0], L, 3))}, r"'w' has shape \(128, 99, 3\); expected \(B, L, 4\)"),
        (lambda k, d, L: {"w": jnp.zeros((d.x.shape[0], 50, 4))},
         r"\(128, 50, 4\): too few draws; expected .*\(128, 99, 4\)"),
        (lambda k, d, L: {"w": jnp.full((d.x.shape[0], L, 4), jnp.nan)}, r"NaN or inf draws in 128 of 128"),
        (lambda k, d, L: {"beta": jnp.zeros((d.x.shape[0], L, 4))}, r"unknown parameter\(s\) \['beta'\]"),
        (lambda k, d, L: jnp.zeros((d.x.shape[0], L, 4)), "must return a dict"),
    ],
    ids=["shape", "too-few", "nan", "unknown", "not-a-dict"],
)
def test_bad_sampler_output_is_one_line_error(output, message) -> None:
    with pytest.raises(BayeslinError, match=message) as err:
        run_sampler_sbc(output, CHUNK, spec=POLY3, chunk_size=CHUNK)
    assert "\n" not in str(err.value)


def test_bad_quantity_is_one_line_error() -> None:
    with pytest.raises(BayeslinError, match="must return a scalar per draw, got shape"):
        run_sampler_sbc(conjugate, CHUNK, spec=POLY3, chunk_size=CHUNK, quantities={"vec": lambda p, d: p["w"]})


def test_resume_after_sampler_exception(tmp_path) -> None:
    calls = {"n": 0}

    def flaky(keys, data, num_draws):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted")
        return conjugate(keys, data, num_draws)

    flaky.info = SamplerInfo("flaky-conjugate", "1")
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sampler_sbc(flaky, 3 * CHUNK, seed=35, spec=POLY3, chunk_size=CHUNK, store=tmp_path / "s")
    resumed = run_sampler_sbc(flaky, 3 * CHUNK, seed=35, spec=POLY3, chunk_size=CHUNK, store=tmp_path / "s")
    assert calls["n"] == 4  # chunk 1 done, chunk 2 interrupted; the rerun computes only chunks 2-3
    whole = run_sampler_sbc(conjugate, 3 * CHUNK, seed=35, spec=POLY3, chunk_size=CHUNK)
    np.testing.assert_array_equal(resumed["rank"].values, whole["rank"].values)
    np.testing.assert_array_equal(resumed["pit"].values, whole["pit"].values)
    assert summarize(tmp_path / "s").num_simulations == 3 * CHUNK  # the store reads back (verified) by path
    with pytest.raises(BayeslinError, match="sampler"):  # another sampler version does not resume this store
        run_sampler_sbc(conjugate, 3 * CHUNK, seed=35, spec=POLY3, chunk_size=CHUNK, store=tmp_path / "s")


# ---------------------------------------------------------------------------------------------
# The NUTS engine through the contract
# ---------------------------------------------------------------------------------------------


def test_nuts_sampler_identity_records_every_setting_that_changes_draws() -> None:
    """A store of the NUTS adapter must refuse to resume under other sampler settings: its identity is
    ``NutsConfig.identity()``, every field but the layout (it once listed fields by hand and missed one)."""
    spec = tutorial_spec()
    base = NutsConfig(num_warmup=300)
    info = nuts_sampler(spec, base).info
    assert info.details["nuts"] == base.identity()
    for change in ({"calibrate_step_size": True}, {"init_radius": 1.0}, {"dense_mass": True}):
        assert nuts_sampler(spec, dataclasses.replace(base, **change)).info != info, change
    assert nuts_sampler(spec, dataclasses.replace(base, method="vmap", batch_size=8)).info == info


@pytest.mark.slow
def test_nuts_sampler_equals_engine_path() -> None:
    spec = tutorial_spec()
    nuts = NutsConfig(num_warmup=300, num_draws=100, num_chains=4)
    legacy = sbc.run_sbc(16, seed=36, sim_spec=spec, config=sbc.SbcConfig(engine="nuts", nuts=nuts), chunk_size=16)
    quantities = default_quantities(spec, joint=False, num_projections=0, predict_at=(-1.0, 0.5, 1.5))
    new = run_sampler_sbc(nuts_sampler(spec, nuts), 16, seed=36, spec=spec, quantities=quantities, chunk_size=16)
    assert list(new["quantity"].values) == list(legacy["quantity"].values)
    # same keys and compiled NUTS program: the same draws, so the weights' ranks are equal by construction;
    # loglik and mu(x) are computed by other programs (rounding may differ): ranks equal up to ties within ulps
    weights = [list(new["quantity"].values).index(q) for q in spec.feature_names]
    np.testing.assert_array_equal(new["rank"].values[:, weights], legacy["rank"].values[:, weights])
    assert np.abs(new["rank"].values - legacy["rank"].values).max() <= 1
    for name in ("pit", "truth", "post_mean", "post_sd"):
        np.testing.assert_allclose(new[name].values, legacy[name].values, rtol=1e-4, atol=1e-5)
    # the adapter gates on the parameters' diagnostics, the engine path on all quantities' (weights among them)
    assert np.all(new["gate_ok"].values | ~legacy["gate_ok"].values)


@pytest.mark.slow
def test_nuts_sampler_sbc_passes() -> None:
    spec = tutorial_spec()
    sampler = nuts_sampler(spec, NutsConfig(num_warmup=500, num_draws=500, num_chains=4))
    report = summarize(run_sampler_sbc(sampler, 150, seed=37, spec=spec, chunk_size=150), alpha=ALPHA_CORRECT)
    assert report.verdict == "pass", report.table()
    assert report.gates["num_failed"] <= 0.05 * 150
