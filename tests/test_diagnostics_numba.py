"""The numba fast path of chain_diagnostics equals arviz-stats' base path, edge rows included."""

import numpy as np
import pytest

from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.diagnostics.host import DIAGNOSTIC_NAMES, chain_diagnostics

pytestmark = [
    pytest.mark.skipif(diagnostics.numba_backend() is None, reason="numba/einops not installed"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),  # NaN rows, as ArviZ warns
]


def _draws(dtype, shape=(12, 4, 100)):
    rng = np.random.default_rng(7)
    walk = rng.normal(size=shape).cumsum(-1) * rng.uniform(0.0, 0.3, size=(*shape[:-2], 1, 1))
    x = (walk + rng.normal(size=shape)).astype(dtype)
    x[0] = 1.5  # constant: ESS = C * S, R-hat and MCSE of the sd NaN (base semantics)
    x[1, 2, 17] = np.nan  # any NaN: all NaN
    x[2] = rng.integers(0, 2, size=shape[1:])  # two values: the tail indicator is constant at one quantile
    x[3] = rng.choice([-1.0, 1.0], size=shape[1:]) + x[3].mean()  # centred squares constant
    x[4, 1] += 3.0  # one chain off: large R-hat
    return x


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_numba_path_equals_base_path(dtype, rtol):
    x = _draws(dtype)
    fast = chain_diagnostics(x, backend="numba")
    base = chain_diagnostics(x, backend="base")
    for name in DIAGNOSTIC_NAMES:
        assert fast[name].shape == (12,)
        np.testing.assert_array_equal(np.isnan(fast[name]), np.isnan(base[name]), err_msg=name)
        np.testing.assert_allclose(fast[name], base[name], rtol=rtol, atol=0, err_msg=name)
    assert base["ess_bulk"][0] == 400 and np.isnan(base["rhat"][1]) and base["rhat"][4] > 1.5


def test_numba_path_keeps_leading_axes_blocks_and_falls_back_on_odd_draws(monkeypatch):
    monkeypatch.setattr(diagnostics, "NUMBA_ROWS", 5)  # 12 rows: blocks of 5, 5, 2
    x = _draws(np.float64, shape=(12, 4, 64)).reshape(3, 4, 4, 64)
    fast, base = chain_diagnostics(x), chain_diagnostics(x, backend="base")
    for name in DIAGNOSTIC_NAMES:
        assert fast[name].shape == (3, 4)
        np.testing.assert_allclose(fast[name], base[name], rtol=1e-12, err_msg=name)
    odd = _draws(np.float64, shape=(6, 4, 51))
    fast, base = chain_diagnostics(odd), chain_diagnostics(odd, backend="base")
    np.testing.assert_array_equal(fast["ess_bulk"], base["ess_bulk"])


def test_draw_summaries_in_a_process_pool_equal_one_call() -> None:
    """The study's host summaries (moments, quantiles, diagnostics) give the same values (up to rounding) on
    threads, in spawned worker processes (``host_pool`` next to a GPU) and in one call."""
    x = np.random.default_rng(5).standard_normal((6, 2, 4, 100)).astype(np.float32)
    quantiles = (0.05, 0.5, 0.95)
    whole = diagnostics.draw_summaries(x, quantiles)
    flat = x.reshape(6, 2, -1).astype(float)
    np.testing.assert_allclose(whole["quantile"][..., 1], np.median(flat, -1))
    np.testing.assert_allclose(whole["sd"], flat.std(-1, ddof=1))
    pool = diagnostics.host_pool("gpu", min_cores=1)  # as next to a GPU: spawned, warmed-up workers
    try:
        pooled = diagnostics.draw_summaries_parallel(x, quantiles, executor=pool, block=4)
    finally:
        pool.shutdown()
    threaded = diagnostics.draw_summaries_parallel(x, quantiles, block=4)
    for name, value in whole.items():  # row blocks may vectorise differently: equal up to rounding
        np.testing.assert_allclose(pooled[name], value, rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(threaded[name], value, rtol=1e-12, atol=0, err_msg=name)
    assert diagnostics.host_pool("cpu") is None
