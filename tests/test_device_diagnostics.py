"""The pure-JAX diagnostics (bayeslin_jax.diagnostics.device) equal arviz-stats' and NumPy's.

2,004 random (dataset, parameter) rows per dtype in 5 groups ``(B, P, C, S)`` through ``draw_summaries``,
plus 300 float32 rows through ``jit(vmap(chain_diagnostics, tail_prob=0.8))``: i.i.d. normal, AR(1) with
rho in [-0.5, 0.95] and 0.95, Student-t (df 3), chains with separated means (large R-hat), rounded values
(ties), constant rows, a constant chain, two-valued rows, +-1 rows, NaN and +-inf rows; C in {1, 2, 4},
S in {3, 4, 5, 20, 51, 100}. The reference is ``arviz_stats.base.array_stats`` called once per group on
the stacked array in the same dtype, and NumPy in float64 for the moments and quantiles. NaN positions
must be identical.

Tolerances (``|device - ref| / |ref|``; moments and quantiles relative to ``|ref| + sd``; MCSE with a floor
of ``eps (|mean| + sd)``, the rounding of the centred draws), with the maxima measured on this set:

- float64: 1e-10 for R-hat, 1e-9 for ESS and MCSE of the mean (measured <= 1e-14: the same float64 sums
  in another order); 1e-8 for MCSE of the sd (measured 3e-9, on a two-point-like row where arviz's
  ``mean(s^4) - mean(s^2)^2`` cancels 7 digits; 3e-14 elsewhere); 1e-12 for the moments (5e-16).
- float32: 1e-5 for R-hat (measured 3e-7: ``ndtri`` and float32 sums of z-scores), 1e-4 for ESS and MCSE of
  the mean (measured 3e-6 and 4e-6: tau sums up to S/2 autocorrelations of a float32 FFT, each ~eps log(S)
  off); 3e-4 for MCSE of the sd against arviz on the float64 cast of the same draws (measured 5e-5 on the
  two-point-like rows, whose float32 squares carry that error; arviz's own float32 path is 40 % off
  there); 1e-5 for moments and quantiles (1e-7). The margins also cover a Geyer pair sum within
  float32 rounding of 0, which would shift the truncation by one pair (not hit here).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from arviz_stats.base import array_stats

from bayeslin_jax.diagnostics import device

NAMES = device.DIAGNOSTIC_NAMES
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
# (B, P, C, S); 2,004 rows per dtype
GROUPS = [(40, 15, 4, 100), (40, 10, 2, 51), (40, 10, 1, 20), (40, 15, 4, 5), (2, 2, 2, 3)]
VMAPPED = (30, 10, 2, 4)  # float32, through jit(vmap(chain_diagnostics)) with tail_prob=0.8
TOLERANCES = {
    "float64": {"rhat": 1e-10, "ess_bulk": 1e-9, "ess_tail": 1e-9, "mcse_mean": 1e-9, "mcse_sd": 1e-8,
                "moments": 1e-12},
    "float32": {"rhat": 1e-5, "ess_bulk": 1e-4, "ess_tail": 1e-4, "mcse_mean": 1e-4, "mcse_sd": 3e-4,
                "moments": 1e-5},
}
CONSTANTS = np.array([0.0, 1.0, -2.5, 3.25, 1024.0])  # exact means: arviz's centred draws are exactly 0


def _rows(rng: np.random.Generator, n: int, chains: int, draws: int) -> np.ndarray:
    """``(n, C, S)`` float64 rows of every kind, shuffled."""
    kinds = np.arange(n) % 13
    x = rng.standard_normal((n, chains, draws))
    ar = (kinds == 1) | (kinds == 2) | (kinds == 3)
    rho = rng.uniform(-0.5, 0.95, size=(n, 1))
    for t in range(1, draws):  # AR(1), stationary start
        x[ar, :, t] = rho[ar] * x[ar, :, t - 1] + np.sqrt(1 - rho[ar] ** 2) * x[ar, :, t]
    heavy = kinds == 4
    x[heavy] = rng.standard_t(3, size=(heavy.sum(), chains, draws))
    apart = kinds == 5  # chains with different means
    x[apart] += rng.normal(0, 2, size=(apart.sum(), chains, 1))
    ties = kinds == 6
    x[ties] = np.round(x[ties], 1)
    x = x * 10.0 ** rng.uniform(-1, 1, size=(n, 1, 1)) + rng.uniform(-5, 5, size=(n, 1, 1))
    const = kinds == 7
    x[const] = rng.choice(CONSTANTS, size=(const.sum(), 1, 1))
    const_chain = kinds == 8
    x[const_chain, 0] = rng.choice(CONSTANTS, size=(const_chain.sum(), 1))
    two = kinds == 9  # the tail indicator is constant at one quantile
    x[two] = rng.integers(0, 2, size=(two.sum(), chains, draws))
    signs = kinds == 10  # centred squares (nearly) constant
    x[signs] = rng.choice([-1.0, 1.0], size=(signs.sum(), chains, draws)) + 0.5
    nan = kinds == 11  # one NaN: all NaN; or one +-inf (arviz: finite R-hat and ESS, NaN MCSE)
    x[nan, 0, draws // 2] = rng.choice([np.nan, np.nan, np.inf, -np.inf], size=nan.sum())
    # kind 12: AR(1) with rho 0.95 and a constant chain in it for C > 1
    strong = kinds == 12
    for t in range(1, draws):
        x[strong, :, t] = 0.95 * x[strong, :, t - 1] + np.sqrt(1 - 0.95**2) * x[strong, :, t]
    if chains > 1:
        x[strong, -1] = 2.0
    return x[rng.permutation(n)]


def _reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """arviz-stats (host.py's ``_base_diagnostics`` definitions) and NumPy (float64) on ``x: (B, P, C, S)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "rhat": array_stats.rhat(x),
            "ess_bulk": array_stats.ess(x, method="bulk"),
            "ess_tail": array_stats.ess(x, method="tail", prob=device.TAIL_PROB),
            "mcse_mean": array_stats.mcse(x, method="mean"),
            "mcse_sd": array_stats.mcse(x, method="sd"),
        }
        flat = x.reshape(*x.shape[:-2], -1).astype(np.float64)
        out["mean"] = flat.mean(-1)
        out["sd"] = flat.std(-1, ddof=1)
        out["quantile"] = np.moveaxis(np.quantile(flat, QUANTILES, axis=-1), 0, -1)
    return out


def _device(x: np.ndarray) -> dict[str, np.ndarray]:
    with jax.enable_x64(x.dtype == np.float64):  # scoped: float64 inputs stay float64, float32 stay float32
        return {k: np.asarray(v) for k, v in device.draw_summaries(jnp.asarray(x), QUANTILES).items()}


def _vmapped(x: np.ndarray) -> dict[str, np.ndarray]:
    """``jit(vmap(chain_diagnostics))`` over ``B`` of ``(B, P, C, S)``, with a non-default ``tail_prob``."""
    out = jax.jit(jax.vmap(partial(device.chain_diagnostics, tail_prob=0.8)))(jnp.asarray(x))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def cases() -> dict[str, list[dict] | dict]:
    """Per group and dtype: the draws, the arviz/NumPy reference and the device's draw_summaries; and the
    float32 ``VMAPPED`` group through ``jit(vmap(chain_diagnostics))``.

    The device programs are compiled and run on a worker thread while arviz runs here: XLA compiles
    outside the GIL and arviz is Python-bound, so the two overlap on 2 cores.
    """
    rng = np.random.default_rng(20240611)
    xs = []
    for b, p, c, s in GROUPS:
        x64 = _rows(rng, b * p, c, s).reshape(b, p, c, s)
        xs += [x64, x64.astype(np.float32)]
    b, p, c, s = VMAPPED
    xv = _rows(rng, b * p, c, s).reshape(b, p, c, s).astype(np.float32)
    with ThreadPoolExecutor(1) as pool:
        devs = [pool.submit(_device, x) for x in xs]
        vmapped = pool.submit(_vmapped, xv)
        refs = [_reference(x) for x in xs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for x, ref in zip(xs, refs, strict=True):
                if x.dtype == np.float32:  # arviz's float32 mean(s^4) - mean(s^2)^2 cancels (module docstring)
                    ref["mcse_sd"] = array_stats.mcse(x.astype(np.float64), method="sd")
            ref_v = _reference(xv)
            ref_v["ess_tail"] = array_stats.ess(xv, method="tail", prob=0.8)
            ref_v["mcse_sd"] = array_stats.mcse(xv.astype(np.float64), method="sd")
        groups = [{"x": x, "dtype": x.dtype.name, "ref": ref, "dev": dev.result()}
                  for x, ref, dev in zip(xs, refs, devs, strict=True)]
        return {"groups": groups, "vmapped": {"x": xv, "ref": ref_v, "dev": vmapped.result()}}


def _relative_error(dev: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """``|dev - ref| / (|ref| (+ scale))`` on the rows where both are not NaN (0 where equal)."""
    both = ~np.isnan(ref) & ~np.isnan(dev)
    dev, ref = dev[both].astype(np.float64), ref[both]
    denom = np.abs(ref) if scale is None else np.abs(ref) + np.broadcast_to(scale, both.shape)[both]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dev == ref, 0.0, np.abs(dev - ref) / denom)


def _max_errors(cases: dict, dtype: str) -> dict[str, float]:
    errors = {}
    for case in (c for c in cases["groups"] if c["dtype"] == dtype):
        ref, dev = case["ref"], case["dev"]
        for name in (*NAMES, "mean", "sd", "quantile"):
            assert dev[name].shape == ref[name].shape, name
            assert dev[name].dtype == np.dtype(dtype), name
            np.testing.assert_array_equal(np.isnan(dev[name]), np.isnan(ref[name]), err_msg=f"{name} {dtype}")
            scale = None
            if name in ("mean", "sd", "quantile"):
                scale = ref["sd"][..., None] if name == "quantile" else ref["sd"]
            elif name.startswith("mcse"):  # the rounding of the centred draws, eps (|mean| + sd)
                scale = np.finfo(dtype).eps * (np.abs(ref["mean"]) + ref["sd"])
            err = _relative_error(dev[name], ref[name], scale)
            errors[name] = max(errors.get(name, 0.0), float(err.max(initial=0.0)))
    return errors


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_draw_summaries_match_arviz_and_numpy(cases, dtype):
    rows = sum(c["x"].shape[0] * c["x"].shape[1] for c in cases["groups"] if c["dtype"] == dtype)
    assert rows >= 2000
    errors = _max_errors(cases, dtype)
    tol = TOLERANCES[dtype]
    print(f"\n{dtype}: {rows} rows, max relative errors", {k: f"{v:.1e}" for k, v in errors.items()})
    for name, err in errors.items():
        assert err <= tol.get(name, tol["moments"]), (name, dtype, err)


def test_edge_semantics_as_arviz(cases):
    """Spot checks of what the comparisons cover: constant rows, NaN rows, C = 1, S < 4."""
    for case in cases["groups"]:
        x, dev, ref = case["x"], case["dev"], case["ref"]
        chains, draws = x.shape[-2:]
        constant = np.ptp(x, axis=(-2, -1)) == 0
        has_nan = np.isnan(x).any(axis=(-2, -1))
        if draws < 4:
            assert all(np.isnan(dev[name]).all() for name in NAMES)
            continue
        assert constant.any() and has_nan.any()
        assert np.isnan(dev["rhat"][constant]).all() and np.isnan(dev["mcse_sd"][constant]).all()
        assert (dev["mcse_mean"][constant] == 0).all()
        assert (dev["ess_bulk"][constant] == 2 * chains * (draws // 2)).all()
        assert all(np.isnan(dev[name][has_nan]).all() for name in NAMES)
        assert np.isnan(ref["rhat"]).all() == (chains == 1)
        if chains > 1:
            assert np.nanmax(dev["rhat"]) > 1.5  # separated chains


def test_jit_vmap_over_datasets(cases):
    """``jit(vmap(chain_diagnostics, tail_prob=0.8))`` over ``(B, P, C, S)`` equals arviz (float32, S = 4)."""
    x, ref, dev = (cases["vmapped"][k] for k in ("x", "ref", "dev"))
    errors = {}
    for name in NAMES:
        assert dev[name].shape == x.shape[:2] and dev[name].dtype == np.float32
        np.testing.assert_array_equal(np.isnan(dev[name]), np.isnan(ref[name]), err_msg=name)
        scale = np.finfo(np.float32).eps * (np.abs(ref["mean"]) + ref["sd"]) if name.startswith("mcse") else None
        errors[name] = _relative_error(dev[name], ref[name], scale).max()
        assert errors[name] <= TOLERANCES["float32"][name], (name, errors[name])
    print("\nvmapped float32:", x.shape, {k: f"{v:.1e}" for k, v in errors.items()})


def test_summarize_rows_is_draw_summaries_independent_of_row_count_and_position():
    """The blocked call studies and the SBC gate use: the numbers of draw_summaries (to rounding), and a row's
    bits do not depend on how many rows come with it or where it sits (true by construction on CPU)."""
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.normal(size=(37, 3, 4, 60)), axis=-1).astype(np.float32)  # 111 rows: two blocks, padded
    quantiles = (0.05, 0.5, 0.95)
    whole = {k: np.asarray(v) for k, v in device.summarize_rows(x, quantiles).items()}
    direct = {k: np.asarray(v) for k, v in device.draw_summaries(x, quantiles).items()}
    assert set(whole) == set(direct) and whole["quantile"].shape == (37, 3, 3)
    for key in whole:
        np.testing.assert_allclose(whole[key], direct[key], rtol=2e-5, atol=1e-6, err_msg=key)
    part = {k: np.asarray(v) for k, v in device.summarize_rows(x[5:9], quantiles).items()}  # other rows, other spot
    for key in whole:
        np.testing.assert_array_equal(part[key], whole[key][5:9], err_msg=key)
