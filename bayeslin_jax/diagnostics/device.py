"""ArviZ's MCMC diagnostics in pure JAX: on the accelerator, vectorised over datasets and parameters.

The host definitions (:mod:`bayeslin_jax.diagnostics.host`, i.e. ``arviz_stats.base.array_stats``) are
reproduced step by step, without Python loops over rows or lags, so that a whole chunk of fits
``(B, P, C, S)`` is summarised in one compiled program next to the sampler:

- :func:`chain_diagnostics`: rank-normalised split R-hat (the larger of the bulk and the folded/tail
  R-hat, with Python's ``max`` semantics for NaN), bulk ESS, tail ESS (the smaller ESS of the
  indicators ``x <= q`` at the quantiles ``1 - p`` and ``p``, ``p = 0.89``), MCSE of the mean and of
  the sd (from the ESS of the squared centred draws);
- :func:`draw_summaries`: mean, sd (ddof 1), NumPy-linear quantiles over all draws and the above;
- :func:`summarize_rows`: :func:`draw_summaries` in fixed-size blocks of rows, as studies and the SBC gate
  call it: one compiled block program for any number of rows, and a row's numbers do not depend on how many
  rows there are or where it sits (the block runs :func:`~bayeslin_jax.core.batching.map_datasets`).

SBC ranks are computed on the device by :func:`bayeslin_jax.workflows.sbc.run.rank_and_pit` (JAX).

Implementation notes (each a step of ``arviz_stats.base.diagnostics``):

- split chains: ``(C, S) -> (2C, S // 2)`` (first halves, then last halves; the middle draw of an odd
  ``S`` is dropped), the quantiles of the tail ESS, the sd and the MCSE centring use all ``C * S`` draws;
- rank normalisation: average ranks of ties from one sort (run starts and ends by ``cummax``/``cummin``),
  ``z = Phi^-1((r - 3/8) / (n + 1/4))``. In float32 the fraction is formed from exact integers
  (``(8r - 3) / (8n + 2)``) and the upper half is taken as ``-Phi^-1`` of the complement rank, so no
  ``1 - p`` cancellation occurs in the tails (exact for up to 2**21 draws per row);
- autocovariance by FFT (zero padded to a power of two >= 2n, the same linear autocovariance as
  arviz's ``next_fast_len(2n)``);
- Geyer's initial positive sequence as the first pair (``argmax`` of a mask) whose loop condition fails,
  with no Python loop over lags, the initial monotone sequence
  as a ``cummin`` of the pair sums, the last-term correction (the even autocorrelation after the last
  kept pair, kept when positive or when its pair sum is >= 0, as arviz's loop assigns it), the cap
  ``tau >= 1 / log10(n_eff)``;
- edge cases as arviz: any NaN in a row, fewer than 4 draws -> NaN everywhere; fewer than 2 chains ->
  R-hat NaN; a constant array handed to an ESS (``max - min < 1e-15``, float64's resolution as arviz
  uses) -> ESS = the size of the split array; a constant row -> R-hat NaN, MCSE mean 0, MCSE sd NaN
  (its mean is taken as the constant itself, so the centred draws are exactly 0, as in arviz whenever
  NumPy's mean of the constant is exact);
- the quantile of the tail ESS is NumPy's ``linear`` method with NumPy's own ``_lerp`` (``a + d * g`` below
  ``g = 0.5``, ``b - d * (1 - g)`` above, ``g`` rounded to the input dtype), so the indicators equal
  arviz's bit for bit on the CPU backend;
- sums (means, variances, the Geyer sum) are blocked in two levels, so float32 errors grow like
  ``sqrt(n)``, not ``n``; a Geyer pair sum within the FFT's rounding of 0 is taken as 0 (for 0/1 tail
  indicators it is often exactly 0 in arviz's float64, where both sign tests of Geyer's loop then hold);
- MCSE of the sd: arviz's ``mean(s^4) - mean(s^2)^2`` is evaluated as ``mean((s^2 - mean(s^2))^2)`` (the same
  number without cancellation, and never negative).

Everything runs in the input dtype (float32 by default; float64 under ``jax_enable_x64``).

Verified (``tests/test_device_diagnostics.py``, CPU backend) against ``arviz_stats.base.array_stats`` and
NumPy on 2,004 rows per dtype plus 300 float32 rows through ``jit(vmap(...))``: i.i.d. normal, AR(1) with
rho in [-0.5, 0.95], Student-t 3, separated chain means, rounded values (ties), constant rows, a constant
chain, two-valued rows, NaN and +-inf rows; C in {1, 2, 4}, S in {3, 4, 5, 20, 51, 100}. NaN positions are
identical. Relative differences ``|device - arviz| / |arviz|`` (mean, sd, quantiles relative to
``|ref| + sd``; MCSE with a floor of ``eps (|mean| + sd)``), measured max / asserted:

============  ======================  ======================
quantity      float64                 float32
============  ======================  ======================
rhat          7e-16 / 1e-10           3e-7 / 1e-5
ess_bulk      6e-15 / 1e-9            3e-6 / 1e-4
ess_tail      1e-14 / 1e-9            2e-6 / 1e-4
mcse_mean     1e-14 / 1e-9            4e-6 / 1e-4
mcse_sd       3e-9 / 1e-8 (*)         5e-5 / 3e-4 (**)
mean, sd, q   5e-16 / 1e-12           1e-7 / 1e-5
============  ======================  ======================

(*) 3e-14 wherever ``m4 / (m4 - m2^2) < 100``; the 3e-9 is arviz's own cancellation on a two-point-like row
(a chain at 1024, the other near 0: condition number 1e7). (**) against arviz on the float64 cast of the
same float32 draws: arviz's float32 path itself is off by up to 40 % on such rows; elsewhere ~1e-6.

Known float32 limitation: Geyer's truncation is a sign test on a pair sum of autocorrelations; a pair sum
that is not 0 but within float32 rounding (~1e-6) of it can truncate one pair earlier or later than arviz (a
jump of that pair's size in tau). On GPUs XLA may fuse the quantile's ``a + d * g`` into an FMA, which can
move an indicator ``x <= q`` only when a draw lies within one ulp of the quantile.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtri

from bayeslin_jax.core.batching import ACCELERATOR_BLOCK, map_datasets

__all__ = ["DIAGNOSTIC_NAMES", "chain_diagnostics", "draw_summaries", "summarize_rows"]

DIAGNOSTIC_NAMES = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")
RESOLUTION = float(np.finfo(np.float64).resolution)  # arviz's constant-array test (1e-15), in every dtype
TAIL_PROB = 0.89  # ArviZ's default ``stats.ci_prob``


# ---------------------------------------------------------------------------------------------
# Building blocks (one row: arrays without batch axes, vmapped by the public functions)
# ---------------------------------------------------------------------------------------------


def _psum(a: jax.Array, axis: int = -1) -> jax.Array:
    """Two-level blocked sum along ``axis`` (blocks of ~sqrt(n)): float32 error O(sqrt(n) eps), not O(n eps)."""
    a = jnp.moveaxis(a, axis, -1)
    n = a.shape[-1]
    if n <= 32:
        return jnp.sum(a, -1)
    block = int(np.ceil(np.sqrt(n)))
    rows = -(-n // block)
    if rows * block != n:
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, rows * block - n)])
    return jnp.sum(jnp.sum(a.reshape(*a.shape[:-1], rows, block), -1), -1)


def _divide(a: jax.Array, count: int) -> jax.Array:
    """``a / count`` as an IEEE division (XLA would turn a division by a constant into an inexact product
    with its reciprocal): the mean of a constant or two-point row is then exact, as NumPy's."""
    return a / lax.optimization_barrier(jnp.asarray(count, a.dtype))


def _mean(a: jax.Array, axis: int = -1) -> jax.Array:
    return _divide(_psum(a, axis), a.shape[axis])


def _var(a: jax.Array, axis: int = -1, ddof: int = 1) -> jax.Array:
    """Two-pass variance, as ``np.var``."""
    centred = a - jnp.expand_dims(_mean(a, axis), axis)
    return _divide(_psum(centred * centred, axis), a.shape[axis] - ddof)


def _row_mean(flat: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    """Mean of a 1-D row with minimum ``low`` and maximum ``high``: the constant itself for a constant row
    (XLA's float32 division is not exact: 91 / 28 != 3.25 on CPU), so its centred draws are exactly 0."""
    return jnp.where(low == high, low, _mean(flat))


def _split(x: jax.Array) -> jax.Array:
    """``(C, S) -> (2C, S // 2)``: arviz's ``_split_chains`` (drops the middle draw of an odd ``S``)."""
    half = x.shape[-1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[-1] - half :]], axis=0)


def _sorted_median(sorted_flat: jax.Array) -> jax.Array:
    """``np.median`` of an already sorted 1-D array."""
    n = sorted_flat.shape[0]
    if n % 2:
        return sorted_flat[n // 2]
    return (sorted_flat[n // 2 - 1] + sorted_flat[n // 2]) / 2


def _z_scale(a: jax.Array) -> jax.Array:
    """Rank normalisation of all elements of ``a``: average ranks of ties, Blom's offset 3/8, ``Phi^-1``."""
    flat = a.ravel()
    n = flat.shape[0]
    order = jnp.argsort(flat)
    s = flat[order]
    idx = jnp.arange(n)
    differs = s[1:] != s[:-1]
    start = lax.cummax(jnp.where(jnp.concatenate([jnp.ones(1, bool), differs]), idx, 0))
    end = lax.cummin(jnp.where(jnp.concatenate([differs, jnp.ones(1, bool)]), idx, n - 1), reverse=True)
    # average 1-based rank r = (start + end) / 2 + 1; numerators 8r - 3 and 8(n + 1 - r) - 3 are exact integers
    twice = start + end
    low, high = 4 * twice + 5, 8 * n - 3 - 4 * twice
    lower = low < high  # ranks below the middle: Phi^-1(p); above it: -Phi^-1(1 - p), 1 - p from the exact integer
    z_sorted = ndtri(jnp.where(lower, low, high).astype(a.dtype) / jnp.asarray(8 * n + 2, a.dtype))
    z_sorted = jnp.where(low == high, 0.0, jnp.where(lower, z_sorted, -z_sorted))  # Phi^-1(1/2) = 0, as scipy
    return jnp.zeros_like(flat).at[order].set(z_sorted, unique_indices=True).reshape(a.shape)


def _rhat_core(z: jax.Array) -> jax.Array:
    """Split R-hat of ``z: (M, n)`` (arviz's ``_rhat``)."""
    n = z.shape[-1]
    between = n * _var(_mean(z, -1), -1, ddof=1)
    within = _mean(_var(z, -1, ddof=1), -1)
    return jnp.sqrt((between / within + n - 1) / n)


def _ess_core(y: jax.Array) -> jax.Array:
    """ESS of ``y: (M, n)`` (split chains; arviz's ``_ess``, relative=False)."""
    m_chains, n = y.shape
    size = m_chains * n
    dtype = y.dtype
    constant = (jnp.max(y) - jnp.min(y)) < RESOLUTION
    chain_mean = _mean(y, -1)
    centred = y - chain_mean[:, None]
    width = 1 << (2 * n - 1).bit_length()
    spectrum = jnp.fft.rfft(centred, n=width, axis=-1)
    acov = jnp.fft.irfft(spectrum * jnp.conj(spectrum), n=width, axis=-1)[:, :n].astype(dtype) / n
    acov = _mean(acov, 0)  # (n,) mean over chains
    mean_var = acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + _var(chain_mean, -1, ddof=1)
    rho = (1.0 - (mean_var - acov) / var_plus).at[0].set(1.0)
    pairs = n // 2
    pair_sum = rho[0 : 2 * pairs : 2] + rho[1 : 2 * pairs : 2]  # P_k = rho[2k] + rho[2k + 1]
    # A pair sum that is 0 in exact arithmetic (common for the 0/1 indicators of tail ESS) is 0 in arviz's
    # float64 run but +-rounding here; both sign tests of the loop (> 0 continues, >= 0 keeps) depend on it,
    # so sums within the FFT's rounding of 0 are taken as 0.
    snap = 4 * float(jnp.finfo(dtype).eps) * np.log2(width)
    pair_sum = jnp.where(jnp.abs(pair_sum) <= snap, 0.0, pair_sum).astype(dtype)
    k = np.arange(pairs)
    # Geyer's initial positive sequence: the loop evaluates pair k >= 1 while 2k - 1 < n - 3 and P_{k-1} > 0
    # (pair 0 is always evaluated); R = the first k >= 1 whose condition fails, minus 1
    prev_positive = jnp.concatenate([jnp.ones(1, bool), pair_sum[:-1] > 0])
    stops = ~(jnp.asarray((k == 0) | (2 * k - 1 < n - 3)) & prev_positive)
    last = jnp.where(stops.any(), jnp.argmax(stops), pairs) - 1  # R: pairs 0..R-1 kept, pair R evaluated last
    # Geyer's initial monotone sequence over the kept pairs: P'_k = min(P_0..P_k)
    kept = _psum(jnp.where(k < last, lax.cummin(pair_sum), 0.0).astype(dtype))
    rho_even = rho[2 * last]
    last_pair = pair_sum[jnp.minimum(last, pairs - 1)]
    correction = jnp.where(last == 0, 1.0, jnp.where((last_pair >= 0) | (rho_even > 0), rho_even, 0.0))
    tau = -1.0 + 2.0 * kept + correction
    cap = 1.0 / np.log10(size)
    tau = jnp.where(cap > tau, jnp.asarray(cap, dtype), tau)
    ess = jnp.where(jnp.isnan(rho).any(), jnp.nan, size / tau)
    return jnp.where(constant, jnp.asarray(size, dtype), ess).astype(dtype)


def _lerp_quantiles(sorted_flat: jax.Array, probs: Sequence[float]) -> jax.Array:
    """NumPy's ``linear`` quantiles of an already sorted 1-D array, with NumPy's ``_lerp`` rounding
    (``a + d * g`` below ``g = 1/2``, ``b - d * (1 - g)`` from it, ``g`` and ``1 - g`` rounded to the dtype)."""
    n = sorted_flat.shape[0]
    virtual = (n - 1) * np.asarray(probs, dtype=np.float64)
    prev = np.clip(np.floor(virtual), 0, n - 1).astype(np.int64)
    nxt = np.where(virtual >= n - 1, n - 1, np.minimum(prev + 1, n - 1))
    prev = np.where(virtual >= n - 1, n - 1, prev)
    gamma = np.where((virtual >= n - 1) | (virtual < 0), 0.0, virtual - prev)
    a, b = sorted_flat[prev], sorted_flat[nxt]
    diff = b - a
    lower = a + diff * jnp.asarray(gamma, sorted_flat.dtype)
    upper = b - diff * jnp.asarray(1.0 - gamma, sorted_flat.dtype)
    return jnp.where(jnp.asarray(gamma >= 0.5), upper, lower)


def _row_summaries(x: jax.Array, tail_prob: float, quantiles: tuple[float, ...]) -> dict[str, jax.Array]:
    """Mean, sd, quantiles and the five diagnostics of one ``(C, S)`` row (NaN with ``S < 4``, as arviz)."""
    chains = x.shape[0]
    dtype = x.dtype
    nan = jnp.asarray(jnp.nan, dtype)
    invalid = jnp.isnan(x).any()
    flat = x.ravel()
    sorted_all = jnp.sort(flat)
    mean = _row_mean(flat, sorted_all[0], sorted_all[-1])
    centred = x - mean
    squared = centred * centred
    sd = jnp.sqrt(_divide(_psum(squared.ravel()), flat.shape[0] - 1))
    out = {"mean": mean, "sd": sd}
    if quantiles:  # as np.quantile: all NaN with any NaN
        out["quantile"] = jnp.where(invalid, nan, _lerp_quantiles(sorted_all, quantiles))
    if x.shape[-1] < 4:  # arviz: fewer than 4 draws
        return out | {name: nan for name in DIAGNOSTIC_NAMES}
    split = _split(x)

    # R-hat: bulk (z of the split draws) and tail (z of |split - median(split)|), ranked in one vmapped call
    if chains >= 2:
        folded = jnp.abs(split - _sorted_median(jnp.sort(split.ravel())))
        z = jax.vmap(_z_scale)(jnp.stack([split, folded]))
        z_bulk = z[0]
        rhats = jax.vmap(_rhat_core)(z)
        rhat = jnp.where(rhats[1] > rhats[0], rhats[1], rhats[0])  # Python's max(bulk, tail)
    else:
        z_bulk = _z_scale(split)
        rhat = nan

    # ESS: bulk, the two tail indicators, the draws (MCSE mean), the squared centred draws (MCSE sd)
    low, high = sorted((tail_prob, 1.0 - tail_prob))
    tails = _lerp_quantiles(sorted_all, (low, high))
    below = (x[None] <= tails[:, None, None]).astype(dtype)
    stacked = jnp.stack([z_bulk, _split(below[0]), _split(below[1]), split, _split(squared)])
    ess = jax.vmap(_ess_core)(stacked)
    ess_tail = jnp.where(ess[2] < ess[1], ess[2], ess[1])  # Python's min(low, high)

    evar = _mean(squared.ravel())
    # arviz's mean(s^4) - mean(s^2)^2, as the two-pass mean((s^2 - mean(s^2))^2): no cancellation (arviz's
    # float32 loses it on two-point-like rows), >= 0, exactly 0 for a two-point symmetric row as in arviz
    spread = squared.ravel() - evar
    varvar = _mean(spread * spread) / ess[4]
    diag = {
        "rhat": rhat,
        "ess_bulk": ess[0],
        "ess_tail": ess_tail,
        "mcse_mean": sd / jnp.sqrt(ess[3]),
        "mcse_sd": jnp.sqrt(varvar / evar / 4),
    }
    return out | {key: jnp.where(invalid, nan, value).astype(dtype) for key, value in diag.items()}


@partial(jax.jit, static_argnames=("tail_prob", "quantiles"))
def _summaries(x: jax.Array, tail_prob: float, quantiles: tuple[float, ...]) -> dict[str, jax.Array]:
    """:func:`_row_summaries` over the leading axes of ``x: (..., C, S)``."""
    lead, (chains, draws) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, chains, draws)
    out = jax.vmap(partial(_row_summaries, tail_prob=tail_prob, quantiles=quantiles))(flat)
    return {key: value.reshape(*lead, *value.shape[1:]) for key, value in out.items()}


def _float(x) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.zeros(()).dtype)


def _check_draws(x: jax.Array) -> None:
    if x.ndim < 2:
        raise ValueError(f"draws must have shape (..., chain, draw), got {x.shape}")


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("tail_prob",))
def chain_diagnostics(x: jax.Array, *, tail_prob: float = TAIL_PROB) -> dict[str, jax.Array]:
    """R-hat, bulk/tail ESS and MCSE of the mean and sd, vectorised over leading axes (pure JAX).

    The definitions of :func:`bayeslin_jax.diagnostics.host.chain_diagnostics`
    (``arviz_stats.base.array_stats``): rank-normalised split R-hat, ``ess(method="bulk")``,
    ``ess(method="tail", prob=tail_prob)``, ``mcse(method="mean")``, ``mcse(method="sd")``.

    Parameters
    ----------
    x : array, shape ``(..., C, S)``
        Draws, chains and draws as the last two axes; float32 or float64 (computed in that dtype;
        integers are cast to JAX's default float).
    tail_prob : float, default 0.89
        The ``prob`` of tail ESS (static): the smaller ESS of the ``1 - p`` and ``p`` quantiles.

    Returns
    -------
    dict of str to array
        ``rhat``, ``ess_bulk``, ``ess_tail``, ``mcse_mean``, ``mcse_sd``, each of shape ``(...)`` and
        ``x``'s dtype. NaN where arviz gives NaN: a row with a NaN, ``S < 4``, R-hat with ``C < 2``,
        R-hat and MCSE sd of a constant row.
    """
    x = _float(x)
    _check_draws(x)
    out = _summaries(x, float(tail_prob), ())
    return {name: out[name] for name in DIAGNOSTIC_NAMES}


def draw_summaries(x: jax.Array, quantiles: Sequence[float], *, tail_prob: float = TAIL_PROB) -> dict[str, jax.Array]:
    """Mean, sd and quantiles over all draws plus :func:`chain_diagnostics` (pure JAX).

    Mean and sd (ddof 1) as NumPy's, quantiles as ``np.quantile``'s ``linear`` method, in ``x``'s dtype.

    Parameters
    ----------
    x : array, shape ``(..., C, S)``
        Draws, chains and draws as the last two axes.
    quantiles : sequence of float, length ``Q``
        Probabilities in [0, 1] (static: hashed into the compiled program).
    tail_prob : float, default 0.89
        See :func:`chain_diagnostics`.

    Returns
    -------
    dict of str to array
        ``mean``, ``sd`` (ddof 1) ``(...)``; ``quantile`` ``(..., Q)`` (NumPy's ``linear`` method over all
        ``C * S`` draws); and the :data:`DIAGNOSTIC_NAMES` ``(...)``.
    """
    x = _float(x)
    _check_draws(x)
    out = _summaries(x, float(tail_prob), tuple(float(q) for q in quantiles))
    if "quantile" not in out:
        out["quantile"] = jnp.zeros((*x.shape[:-2], 0), x.dtype)
    return {key: out[key] for key in ("mean", "sd", "quantile", *DIAGNOSTIC_NAMES)}


CPU_ROW_BLOCK = 64  # rows per compiled block on CPU (a chunk of 256 datasets x 2 weights: 8 calls)


@partial(jax.jit, static_argnames=("tail_prob", "quantiles"))
def _summary_block(rows: jax.Array, tail_prob: float, quantiles: tuple[float, ...]) -> dict[str, jax.Array]:
    """:func:`_row_summaries` of each row of ``rows: (R, C, S)``, one row's program at a time (``map_datasets``)."""
    return map_datasets(partial(_row_summaries, tail_prob=tail_prob, quantiles=quantiles), rows)


def summarize_rows(x: jax.Array, quantiles: Sequence[float] = (), *, tail_prob: float = TAIL_PROB,
                   block: int | None = None) -> dict[str, jax.Array]:
    """Compute :func:`draw_summaries` of ``x: (..., C, S)`` in fixed-size blocks of rows on x's device.

    Studies and the SBC gate call this on each chunk of fits right after sampling (the host only writes).
    The rows (all leading axes flattened) are padded to whole blocks of ``block`` rows (default: 64 on CPU,
    :data:`~bayeslin_jax.core.batching.ACCELERATOR_BLOCK` elsewhere), and every block runs one compiled
    program: one compilation per ``(block, C, S, dtype, quantiles)`` whatever the number of rows, and, since
    each block runs :func:`~bayeslin_jax.core.batching.map_datasets` (one row's program per row on CPU),
    a row's numbers do not depend on the chunk size, the padding or its position.

    Parameters
    ----------
    x : array, shape ``(..., C, S)``
        Draws, chains and draws as the last two axes; every leading index is a row.
    quantiles : sequence of float, length ``Q``, default ()
        Probabilities in [0, 1] (static); none by default.
    tail_prob : float, default 0.89
        See :func:`chain_diagnostics`.
    block : int, optional
        Rows per compiled block (default 64 on CPU, twice
        :data:`~bayeslin_jax.core.batching.ACCELERATOR_BLOCK` elsewhere).

    Returns
    -------
    dict of str to array
        As :func:`draw_summaries`: ``mean``, ``sd``, the :data:`DIAGNOSTIC_NAMES` ``(...)`` and, with
        ``quantiles``, ``quantile`` ``(..., Q)``.
    """
    x = _float(x)
    _check_draws(x)
    lead, sample = x.shape[:-2], x.shape[-2:]
    rows = x.reshape(-1, *sample)
    count = rows.shape[0]
    block = block or (CPU_ROW_BLOCK if jax.default_backend() == "cpu" else 2 * ACCELERATOR_BLOCK)  # 2 trips
    padded = max(1, -(-count // block)) * block
    if padded > count:
        rows = jnp.concatenate([rows, jnp.zeros((padded - count, *sample), rows.dtype)])
    q = tuple(float(v) for v in quantiles)
    parts = [_summary_block(rows[i : i + block], float(tail_prob), q) for i in range(0, padded, block)]
    return {key: jnp.concatenate([p[key] for p in parts])[:count].reshape(*lead, *parts[0][key].shape[1:])
            for key in parts[0]}
