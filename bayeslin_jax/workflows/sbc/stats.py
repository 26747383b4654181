"""SBC verdicts: rank-uniformity tests, coverage, data-averaged posterior, NUTS vs exact.

Input: the per-simulation dataset of :func:`bayeslin_jax.workflows.sbc.run_sbc` (``rank``, ``pit``, ...).

* Uniformity, per quantity: the simultaneous ECDF band test of Säilynoja et al. (2022) on the
  discrete ranks and a chi-square test on binned ranks.
* Data-averaged posterior vs prior (the SBC identity ``E_y[p(f | y)] = p(f)``): mean and second
  moment of the pooled posteriors vs those of the truths (prior draws), paired t-tests. These
  catch a wrong prior far sooner than the ranks do (scripts/sbc_power.py).
* The verdict family: ECDF + chi-square for every quantity, DAP mean + moment for the quantities
  linear in the weights (see :func:`dap_in_family`), Holm-adjusted at family-wise level
  ``alpha``; the SBC verdict is "fail" if any adjusted p-value is below ``alpha``. The measured
  false-alarm rate of the whole family under exact calibration is <= alpha (sbc_power.json).
* Coverage of central intervals (50/80/90/95%) from the PIT, with exact (Clopper-Pearson) 95%
  intervals; flagged by Holm-adjusted binomial tests (a separate family, informational: the
  same information as the PIT ECDF).
* NUTS vs exact posterior on the same datasets: standardised errors of the posterior means
  (``(mean_nuts - mean_exact) / MCSE`` should be N(0, 1)), sd ratios and KS distances of the draws.

ECDF test details. For ranks in ``{0..L}`` the ECDF is evaluated at the rank boundaries
``z_i = i / (L + 1)``, ``i = 1..L``, where under uniformity ``N F_N(z_i) ~ Binomial(N, z_i)``.
The statistic is ``gamma = 2 min_i min(P(X <= c_i), P(X >= c_i))`` (computed in log space, so it
never underflows). ``p = P_null(gamma_null <= gamma)`` is the probability that the ECDF leaves
the band of counts whose tails both exceed ``gamma / 2``. Adaptive (:func:`ecdf_pvalues`): a
simulated null first; below 0.1, where decisions are made, refined exactly by Säilynoja et al.'s
(2022) recursion over the conditional binomial increments of the counts (no simulation floor),
or by the conservative union bound ``L * gamma`` once that is below 1e-8. Rejecting at level
``a`` is the same as the ECDF leaving the simultaneous ``1 - a`` band (the band ArviZ draws in
the ECDF-PIT plots). Chi-square p-values come from ``chi2.logsf``; reported p-values are
clipped at the smallest positive float (never 0) and the unclipped ``log10`` values are kept
(``ecdf_log10_p``, ``chi2_log10_p``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats
from scipy.special import bdtr, bdtrc, gammaln, logsumexp, xlog1py, xlogy

from bayeslin_jax.core.errors import BayeslinError

COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)
NON_LINEAR = ("loglik", "sigma")
ECDF_SIMULATIONS = 5000
ECDF_EXACT_BUDGET = 20_000_000  # transition-matrix entries per quantity for the exact ECDF p-value (~1 s)
ECDF_BOUND_BELOW = 1e-8  # where the union bound L * gamma is below this, it is the reported (conservative) p
ECDF_REFINE_BELOW = 0.1  # simulated p-values below this are refined (exact / bound); above, they stand


# ---------------------------------------------------------------------------------------------
# Uniformity tests
# ---------------------------------------------------------------------------------------------


def rank_counts(ranks: np.ndarray, num_ranks: int) -> np.ndarray:
    """How often each rank occurs, per quantity.

    Parameters
    ----------
    ranks : (N, Q) or (N,) int array
        Ranks in ``0..L``.
    num_ranks : int
        L.

    Returns
    -------
    (Q, L + 1) int array
        The counts of ranks ``0..L``.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    return np.stack([np.bincount(r, minlength=num_ranks + 1) for r in ranks.T])


def _log_tails(counts: np.ndarray, total: int, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log P(X <= c)`` and ``log P(X >= c)`` for ``X ~ Binomial(total, z)``; ``counts: (..., L)``, ``z: (L,)``.

    Computed with ``bdtr``/``bdtrc``; where those underflow (below 1e-280) the tail is summed in log
    space from the log-pmf, so neither is ever ``-inf`` for ``0 <= c <= total``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    z = np.broadcast_to(z, counts.shape)
    lower = bdtr(counts, total, z)
    upper = np.where(counts > 0, bdtrc(np.maximum(counts - 1, 0), total, z), 1.0)
    with np.errstate(divide="ignore"):
        logs = [np.log(lower), np.log(upper)]
    for which, values in enumerate((lower, upper)):
        for idx in zip(*np.nonzero(values < 1e-280), strict=True):
            c = int(counts[idx])
            ks = np.arange(0, c + 1) if which == 0 else np.arange(c, total + 1)
            logs[which][idx] = logsumexp(_binom_logpmf(ks, total, float(z[idx])))
    return logs[0], logs[1]


def _binom_logpmf(k, n, q: float) -> np.ndarray:
    """``log Binomial(k; n, q)``, broadcasting ``k`` and ``n``; ``-inf`` outside ``0..n``."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    inside = (k >= 0) & (k <= n)
    kk, nn = np.where(inside, k, 0.0), np.where(inside, n, 0.0)
    out = gammaln(nn + 1) - gammaln(kk + 1) - gammaln(nn - kk + 1) + xlogy(kk, q) + xlog1py(nn - kk, -q)
    return np.where(inside, out, -np.inf)


def _log_gamma(counts: np.ndarray, total: int) -> np.ndarray:
    """``log`` of Säilynoja's gamma from rank counts ``(..., L + 1)`` -> ``(...)`` (never ``-inf``)."""
    num_values = counts.shape[-1]
    z = np.arange(1, num_values) / num_values
    below = np.cumsum(counts, axis=-1)[..., :-1]  # N * ECDF(z_i)
    log_lower, log_upper = _log_tails(below, total, z)
    return np.log(2.0) + np.minimum(log_lower, log_upper).min(-1)


def _gamma(counts: np.ndarray, total: int) -> np.ndarray:
    """Säilynoja's gamma ``2 min_i min(P(X_i <= c_i), P(X_i >= c_i))`` from rank counts ``(..., L + 1)``."""
    return np.exp(_log_gamma(counts, total))


@lru_cache(maxsize=64)
def _gamma_null(total: int, num_ranks: int, num_sims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, total, num_ranks])
    counts = rng.multinomial(total, np.full(num_ranks + 1, 1.0 / (num_ranks + 1)), size=num_sims)
    return np.sort(_gamma(counts, total))


def _band(log_half_gamma: float, total: int, num_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts ``lo_i <= c <= hi_i`` whose two binomial tails both exceed ``gamma / 2``, ``i = 1..L``.

    Candidates from ``binom.ppf``, then corrected with :func:`_log_tails` (the function gamma is
    computed with), so that the observed ECDF's own extreme point lies outside its band exactly.
    """
    z = np.arange(1, num_ranks + 1) / (num_ranks + 1)
    half = float(np.exp(log_half_gamma))
    lo = np.clip(np.nan_to_num(stats.binom.ppf(half, total, z), nan=0.0), 0, total).astype(np.int64)
    hi = np.clip(np.nan_to_num(stats.binom.isf(half, total, z), nan=total), 0, total).astype(np.int64)
    for _ in range(total + 2):  # a few steps at most: ppf is exact up to rounding
        low_tail_lo = _log_tails(lo, total, z)[0]
        low_tail_prev = _log_tails(np.maximum(lo - 1, 0), total, z)[0]
        up = (low_tail_lo <= log_half_gamma) & (lo < total)
        down = (low_tail_prev > log_half_gamma) & (lo > 0) & ~up
        up_tail_hi = _log_tails(hi, total, z)[1]
        up_tail_next = _log_tails(np.minimum(hi + 1, total), total, z)[1]
        dec = (up_tail_hi <= log_half_gamma) & (hi > 0)
        inc = (up_tail_next > log_half_gamma) & (hi < total) & ~dec
        if not (up.any() or down.any() or dec.any() or inc.any()):
            break
        lo, hi = lo + up - down, hi - dec + inc
    return lo, hi


def _band_cost(lo: np.ndarray, hi: np.ndarray) -> int:
    """Transition-matrix entries the exact recursion evaluates for this band."""
    width = np.maximum(hi - lo + 1, 0)
    return int(np.sum(np.concatenate([[1], width[:-1]]) * width))


def _exact_exit_log_p(lo: np.ndarray, hi: np.ndarray, total: int) -> float:
    """``log P(some c_i outside [lo_i, hi_i])`` under uniform ranks, exactly (Säilynoja et al. 2022).

    Given ``c_{i-1} = k`` draws below ``z_{i-1}``, ``c_i - k ~ Binomial(total - k, q_i)`` with
    ``q_i = (z_i - z_{i-1}) / (1 - z_{i-1})``. The recursion carries the probability of having
    stayed inside the band so far and adds up the probability of leaving it at each step from
    binomial tails (small positive terms, never a difference ``1 - P(inside)``, so small p
    values keep their full relative precision).
    """
    num_values = len(lo) + 1
    ks, state = np.zeros(1, dtype=np.int64), np.ones(1)
    log_fact = gammaln(np.arange(total + 1) + 1.0)
    log_exits = []
    for i in range(1, num_values):
        q = 1.0 / (num_values - i + 1)
        remaining = total - ks
        a, b = lo[i - 1], hi[i - 1]
        below = np.where(a - ks - 1 >= 0, bdtr(np.maximum(a - ks - 1, 0), remaining, q), 0.0)
        above = np.where(b - ks >= 0, bdtrc(np.maximum(b - ks, 0), remaining, q), 1.0)
        above = np.where(remaining == 0, (b - ks < 0).astype(float), above)
        with np.errstate(divide="ignore"):
            log_exits.append(np.log(state) + np.log(below + above))
        cs = np.arange(a, b + 1)
        step = cs[None, :] - ks[:, None]  # (k, c): draws between z_{i-1} and z_i
        inside = (step >= 0) & (step <= remaining[:, None])
        step = np.where(inside, step, 0)
        log_pmf = (log_fact[remaining][:, None] - log_fact[step] - log_fact[remaining[:, None] - step]
                   + step * np.log(q) + (remaining[:, None] - step) * np.log1p(-q))
        state = state @ np.where(inside, np.exp(log_pmf), 0.0)
        ks = cs
    return float(logsumexp(np.concatenate(log_exits)))


def ecdf_pvalues(ranks: np.ndarray, num_ranks: int, num_sims: int = ECDF_SIMULATIONS, seed: int = 0,
                 budget: float = ECDF_EXACT_BUDGET, refine_below: float = ECDF_REFINE_BELOW,
                 bound_below: float = ECDF_BOUND_BELOW) -> dict[str, np.ndarray]:
    """The simultaneous ECDF test per quantity, with p-values that have no simulation floor.

    The ``method`` of each p-value is one of

    * ``"bound"``: where ``L * gamma < bound_below`` (decisive for any family), the union bound
      ``p <= L * gamma`` (each of the L points is outside its band with probability at most
      gamma): a conservative p-value within a factor 2L of the true one (``p >= gamma / 2``);
      computed in log space, so ``log10_p`` is finite however extreme the ranks;
    * ``"exact"``: otherwise the band recursion of Säilynoja et al. (2022) (see
      :func:`_exact_exit_log_p`), whenever it costs at most ``budget`` transition-matrix entries
      (for N up to a few thousand at least);
    * ``"simulated"``: otherwise (large N, moderate p), ``(1 + #{gamma_null <= gamma}) / (M + 1)``
      from ``num_sims`` multinomial null draws.

    Adaptive: the simulated p-value (``num_sims`` cached null draws) comes first and is refined
    (bound or exact) only where it is below ``refine_below`` (default 0.1), where decisions are
    made; above it the simulated value stands (``method`` ``"simulated"``, resolution
    ``1 / (num_sims + 1)``, irrelevant there). ``refine_below=1`` refines every p-value.

    Parameters
    ----------
    ranks : (N, Q) int array
        Ranks in ``0..L``.
    num_ranks : int
        L.
    num_sims : int
        M, the multinomial null draws of the simulated p-value (cached).
    seed : int
        Seed of the null draws.
    budget : float
        The most transition-matrix entries the exact recursion may evaluate per quantity.
    refine_below : float
        Simulated p-values below this are refined (bound or exact).
    bound_below : float
        Where ``L * gamma`` is below this, the union bound is the p-value.

    Returns
    -------
    dict of (Q,) arrays
        ``gamma``, ``log10_gamma``, ``p`` (never 0: clipped at the smallest positive float), ``log10_p``
        (unclipped) and ``method``.
    """
    counts = rank_counts(ranks, num_ranks)
    total = int(counts[0].sum())
    log_gamma = _log_gamma(counts, total)
    log_p = np.zeros(log_gamma.shape)
    method = np.full(log_gamma.shape, "exact", dtype=object)
    null = _gamma_null(total, num_ranks, num_sims, seed) if refine_below < 1.0 else None
    for q, lg in enumerate(log_gamma):
        if lg >= 0.0:  # gamma >= 1: every null draw is at least as extreme
            continue
        if null is not None:
            simulated = (1.0 + np.searchsorted(null, np.exp(lg), side="right")) / (num_sims + 1.0)
            if simulated >= refine_below:
                log_p[q], method[q] = np.log(simulated), "simulated"
                continue
        if bound_below > 0 and lg + np.log(num_ranks) < np.log(bound_below):
            log_p[q], method[q] = lg + np.log(num_ranks), "bound"
            continue
        # tails within a relative 1e-9 of gamma / 2 count as ties (as extreme): rounding must not split them
        lo, hi = _band(lg - np.log(2.0) + 1e-9, total, num_ranks)
        if _band_cost(lo, hi) <= budget:
            log_p[q] = min(0.0, _exact_exit_log_p(lo, hi, total))
        else:
            null = _gamma_null(total, num_ranks, num_sims, seed)
            hits = np.searchsorted(null, np.exp(lg), side="right")
            log_p[q], method[q] = np.log((1.0 + hits) / (num_sims + 1.0)), "simulated"
    tiny = np.finfo(float).tiny
    return {"gamma": np.exp(log_gamma), "log10_gamma": log_gamma / np.log(10.0),
            "p": np.maximum(np.exp(log_p), tiny), "log10_p": log_p / np.log(10.0), "method": method}


def ecdf_test(ranks: np.ndarray, num_ranks: int, num_sims: int = ECDF_SIMULATIONS, seed: int = 0):
    """Simultaneous ECDF band test per quantity.

    Parameters
    ----------
    ranks : (N, Q) int array
        Ranks in ``0..L``.
    num_ranks : int
        L.
    num_sims : int
        Null draws of the simulated p-value.
    seed : int
        Seed of the null draws.

    Returns
    -------
    gamma : (Q,) array
        Säilynoja's statistic.
    p : (Q,) array
        From :func:`ecdf_pvalues` (exact where affordable; never 0).
    """
    out = ecdf_pvalues(ranks, num_ranks, num_sims, seed)
    return out["gamma"], out["p"]


def ecdf_band(total: int, num_ranks: int, prob: float, num_sims: int = ECDF_SIMULATIONS, seed: int = 0):
    """Simultaneous ``prob`` band of ``N * ECDF(z_i)`` at ``z_i = i / (L + 1)``.

    An ECDF inside the band (``lower <= c_i <= upper`` for all i) is exactly a non-rejection at
    level ``1 - prob`` (up to Monte-Carlo ties).

    Parameters
    ----------
    total : int
        N, the number of ranks.
    num_ranks : int
        L.
    prob : float
        The band's simultaneous coverage, e.g. 0.95.
    num_sims : int
        Null draws that calibrate the band.
    seed : int
        Seed of the null draws.

    Returns
    -------
    z : (L,) array
        The evaluation points.
    lower, upper : (L,) array
        The band's bounds on the counts below each ``z_i``.
    """
    null = _gamma_null(total, num_ranks, num_sims, seed)
    gamma_level = np.quantile(null, 1.0 - prob)
    z = np.arange(1, num_ranks + 1) / (num_ranks + 1)
    lower = stats.binom.ppf(gamma_level / 2.0, total, z)
    upper = stats.binom.isf(gamma_level / 2.0, total, z)
    return z, lower, upper


def chi2_bins(num_ranks: int, total: int, max_bins: int = 20) -> int:
    """Bins for the chi-square test: at most 20, at most L + 1, expected count >= 5.

    Parameters
    ----------
    num_ranks : int
        L.
    total : int
        N, the number of ranks.
    max_bins : int
        The most bins.

    Returns
    -------
    int
        The number of bins (at least 2).
    """
    return int(max(2, min(max_bins, num_ranks + 1, total // 5)))


def chi2_test(ranks: np.ndarray, num_ranks: int, num_bins: int | None = None):
    """Chi-square test of binned ranks per quantity.

    Rank values ``0..L`` are split into contiguous bins as equal as possible; expected counts are
    proportional to the number of rank values in each bin.

    Parameters
    ----------
    ranks : (N, Q) int array
        Ranks in ``0..L``.
    num_ranks : int
        L.
    num_bins : int, optional
        Default :func:`chi2_bins`.

    Returns
    -------
    statistic : (Q,) array
        The chi-square statistics.
    p : (Q,) array
        From ``chi2.logsf``, clipped at the smallest positive float, never 0 (:func:`chi2_log10_p`
        gives the unclipped log).
    bins : int
        The number of bins used.
    """
    statistic, log_p, num_bins = _chi2(ranks, num_ranks, num_bins)
    return statistic, np.maximum(np.exp(log_p), np.finfo(float).tiny), num_bins


def chi2_log10_p(ranks: np.ndarray, num_ranks: int, num_bins: int | None = None) -> np.ndarray:
    """``log10`` of the chi-square test's p-value per quantity, in log space (no underflow).

    Parameters
    ----------
    ranks : (N, Q) int array
        Ranks in ``0..L``.
    num_ranks : int
        L.
    num_bins : int, optional
        Default :func:`chi2_bins`.

    Returns
    -------
    (Q,) array
        ``log10 p`` of :func:`chi2_test`, unclipped.
    """
    return _chi2(ranks, num_ranks, num_bins)[1] / np.log(10.0)


def _chi2(ranks: np.ndarray, num_ranks: int, num_bins: int | None):
    counts = rank_counts(ranks, num_ranks)
    total = int(counts[0].sum())
    num_bins = chi2_bins(num_ranks, total) if num_bins is None else num_bins
    groups = np.array_split(np.arange(num_ranks + 1), num_bins)
    observed = np.stack([counts[:, g].sum(-1) for g in groups], axis=-1)
    expected = total * np.array([len(g) for g in groups]) / (num_ranks + 1)
    statistic = np.atleast_1d(((observed - expected) ** 2 / expected).sum(-1))
    return statistic, stats.chi2.logsf(statistic, num_bins - 1), num_bins


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    pvalues : array_like
        The family's p-values, any shape; NaN entries are left out of the family.

    Returns
    -------
    array
        The adjusted p-values, same shape as the input (NaN stays NaN).
    """
    p = np.asarray(pvalues, dtype=float)
    flat = p.ravel()
    out = np.full(flat.size, np.nan)
    members = np.flatnonzero(~np.isnan(flat))  # NaN entries are not in the family
    order = members[np.argsort(flat[members])]
    m = order.size
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * flat[order]))
    return out.reshape(p.shape)


# ---------------------------------------------------------------------------------------------
# Coverage, data-averaged posterior, NUTS vs exact
# ---------------------------------------------------------------------------------------------


def coverage(pit: np.ndarray, levels=COVERAGE_LEVELS) -> dict[str, np.ndarray]:
    """Central-interval coverage from PIT values.

    The truth is inside the central ``level`` interval iff ``|pit - 1/2| < level / 2``; under
    calibration that happens with probability exactly ``level``.

    Parameters
    ----------
    pit : (N, Q) array
        PIT values.
    levels : sequence of float
        The K nominal coverages.

    Returns
    -------
    dict of (Q, K) arrays
        ``observed``, ``lower``/``upper`` (Clopper-Pearson 95%) and ``p`` (exact binomial test).
    """
    pit = np.asarray(pit)
    total = pit.shape[0]
    levels = np.asarray(levels)
    hits = (np.abs(pit[:, :, None] - 0.5) < levels / 2.0).sum(0)  # (Q, K)
    p = np.empty(hits.shape)
    for idx, k in np.ndenumerate(hits):
        p[idx] = stats.binomtest(int(k), total, float(levels[idx[1]])).pvalue
    # Clopper-Pearson bounds as beta quantiles (binomtest's proportion_ci(method="exact"), vectorised)
    lower = np.where(hits > 0, stats.beta.ppf(0.025, np.maximum(hits, 1), total - hits + 1), 0.0)
    upper = np.where(hits < total, stats.beta.ppf(0.975, hits + 1, np.maximum(total - hits, 1)), 1.0)
    return {"observed": hits / total, "lower": lower, "upper": upper, "p": p}


def data_averaged_posterior(truth: np.ndarray, post_mean: np.ndarray, post_sd: np.ndarray) -> dict[str, np.ndarray]:
    """Data-averaged posterior vs prior per quantity.

    Under calibration ``E[post_mean] = E[truth]`` and ``E[post_sd^2 + post_mean^2] = E[truth^2]``.
    Paired one-sample t-tests for both (centred at the truths' mean for numerical stability); also
    the implied means and sds.

    Parameters
    ----------
    truth : (N, Q) array
        The truths (prior draws).
    post_mean, post_sd : (N, Q) array
        The posterior means and sds.

    Returns
    -------
    dict of (Q,) arrays
        ``dap_mean``, ``prior_mean``, ``dap_sd``, ``prior_sd``, ``t_mean``, ``t_moment``, ``p_mean`` and
        ``p_moment``.
    """
    n = truth.shape[0]
    centre = truth.mean(0)
    d_mean = post_mean - truth
    d_moment = post_sd**2 + (post_mean - centre) ** 2 - (truth - centre) ** 2

    def t(d):
        """One-sample t statistic of ``d`` per quantity (0 where ``d`` is constant).

        Parameters
        ----------
        d : (N, Q) array
            Paired differences.

        Returns
        -------
        (Q,) array
            The t statistics.
        """
        sd = d.std(0, ddof=1)
        return np.where(sd > 0, d.mean(0) / (np.where(sd > 0, sd, 1.0) / np.sqrt(n)), 0.0)

    dap_mean = post_mean.mean(0)
    dap_var = (post_sd**2 + (post_mean - centre) ** 2).mean(0) - (dap_mean - centre) ** 2
    t_mean, t_moment = t(d_mean), t(d_moment)
    return {
        "dap_mean": dap_mean,
        "prior_mean": centre,
        "dap_sd": np.sqrt(np.maximum(dap_var, 0.0)),
        "prior_sd": truth.std(0, ddof=1),
        "t_mean": t_mean,
        "t_moment": t_moment,
        "p_mean": _two_sided_t(t_mean, n - 1),
        "p_moment": _two_sided_t(t_moment, n - 1),
    }


def _two_sided_t(t: np.ndarray, df: int) -> np.ndarray:
    """Two-sided t-test p-value from ``t.logsf`` (in log space), clipped at the smallest positive float."""
    return np.maximum(np.exp(np.log(2.0) + stats.t.logsf(np.abs(t), df)), np.finfo(float).tiny)


def compare_exact(ds: xr.Dataset) -> dict[str, np.ndarray] | None:
    """NUTS vs exact posterior per quantity (linear quantities only; None without exact columns).

    ``z = (mean_nuts - mean_exact) / MCSE`` per dataset: its mean and sd across datasets (ideally
    0 and 1) and a KS test of ``z ~ N(0, 1)``; medians of ``|mean error| / exact sd``, of
    ``sd_nuts / sd_exact`` and of the KS distance of the draws from the exact marginal (with
    ``KS * sqrt(ESS_bulk)``, about 0.83 for ESS independent draws).

    Parameters
    ----------
    ds : xr.Dataset
        An SBC dataset of NUTS runs (``exact_mean``, ``exact_sd``, ``mcse``, ``ks``, ``ess_bulk``).

    Returns
    -------
    dict of (Q,) arrays or None
        ``z_mean``, ``z_sd``, ``z_ks_p``, ``err_sd_median``, ``sd_ratio_median``, ``ks_median`` and
        ``ks_sqrt_ess_median`` (NaN for non-linear quantities); None without exact columns.
    """
    if "exact_mean" not in ds:
        return None
    exact_mean, exact_sd = ds["exact_mean"].values, ds["exact_sd"].values
    linear = ~np.isnan(exact_mean).any(0)
    z = (ds["post_mean"].values - exact_mean) / ds["mcse"].values
    out = {name: np.full(linear.shape, np.nan) for name in
           ("z_mean", "z_sd", "z_ks_p", "err_sd_median", "sd_ratio_median", "ks_median", "ks_sqrt_ess_median")}
    for q in np.flatnonzero(linear):
        zq = z[:, q][np.isfinite(z[:, q])]
        out["z_mean"][q], out["z_sd"][q] = zq.mean(), zq.std(ddof=1)
        out["z_ks_p"][q] = stats.kstest(zq, "norm").pvalue
    out["err_sd_median"] = np.median(np.abs(ds["post_mean"].values - exact_mean) / exact_sd, axis=0)
    out["sd_ratio_median"] = np.median(ds["post_sd"].values / exact_sd, axis=0)
    out["ks_median"] = np.median(ds["ks"].values, axis=0)
    out["ks_sqrt_ess_median"] = np.median(ds["ks"].values * np.sqrt(ds["ess_bulk"].values), axis=0)
    for value in out.values():
        value[~linear] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def dap_in_family(quantities, linear=None) -> np.ndarray:
    """``(Q,)`` bool: quantities whose data-averaged-posterior tests count in the verdict.

    Those linear in the weights (weights, mean function; or the names in ``linear`` when given,
    as user-sampler runs record them). For ``loglik`` and ``sigma`` the moment
    statistic is skewed and heavy-tailed; measured under exact calibration its t-test p-values
    were anti-conservative (p < 0.005 in 2.6% of runs at N = 100), so they are reported only.

    Parameters
    ----------
    quantities : sequence of str
        The quantity names.
    linear : sequence of str, optional
        The names of the linear quantities (default: all but ``loglik`` and ``sigma``).

    Returns
    -------
    (Q,) bool array
        Whether each quantity's DAP tests join the family.
    """
    if linear is not None:
        return np.array([str(q) in set(linear) for q in quantities], dtype=bool)
    return np.array([str(q) not in NON_LINEAR for q in quantities])


def _dap_mask(meta: dict, quantities) -> np.ndarray:
    """``meta["dap_quantities"]`` when the run names them (general models, :mod:`bayeslin_jax.workflows.sbc.run`),
    else :func:`dap_in_family` (with ``meta["linear_quantities"]`` of user-sampler runs)."""
    if "dap_quantities" in meta:
        return np.isin([str(q) for q in quantities], meta["dap_quantities"])
    return dap_in_family(quantities, meta.get("linear_quantities"))


def calibration_tests(rank: np.ndarray, truth: np.ndarray, post_mean: np.ndarray, post_sd: np.ndarray,
                      num_ranks: int, dap_mask: np.ndarray | None = None, ecdf_sims: int = ECDF_SIMULATIONS,
                      ecdf_refine_below: float = ECDF_REFINE_BELOW) -> dict:
    """The verdict family: ECDF, chi-square, DAP mean and DAP sd tests.

    Calibration is rejected at ``alpha`` iff ``nanmin(holm) < alpha``.

    Parameters
    ----------
    rank : (N, Q) int array
        Ranks in ``0..L``.
    truth, post_mean, post_sd : (N, Q) array
        The truths and the posterior means and sds.
    num_ranks : int
        L.
    dap_mask : (Q,) bool array, optional
        Quantities whose DAP tests join the family (default all).
    ecdf_sims : int
        Null draws of the simulated ECDF p-value.
    ecdf_refine_below : float
        Simulated ECDF p-values below this are refined (:func:`ecdf_pvalues`).

    Returns
    -------
    dict
        The pieces (``ecdf_gamma``, ``ecdf_p``, ``chi2``, ``chi2_p``, ``chi2_bins``, ``ecdf_log10_p``,
        ``ecdf_method``, ``chi2_log10_p``, ``dap``) and ``holm``: ``(4, Q)`` Holm-adjusted p-values (rows:
        ECDF, chi2, DAP mean, DAP second moment; NaN outside the family).
    """
    ecdf = ecdf_pvalues(rank, num_ranks, num_sims=ecdf_sims, refine_below=ecdf_refine_below)
    gamma, ecdf_p = ecdf["gamma"], ecdf["p"]
    chi2_stat, chi2_log_p, bins = _chi2(rank, num_ranks, None)
    chi2_p = np.maximum(np.exp(chi2_log_p), np.finfo(float).tiny)
    dap = data_averaged_posterior(truth, post_mean, post_sd)
    mask = np.ones(ecdf_p.shape, dtype=bool) if dap_mask is None else np.asarray(dap_mask, dtype=bool)
    family = np.stack([ecdf_p, chi2_p, np.where(mask, dap["p_mean"], np.nan), np.where(mask, dap["p_moment"], np.nan)])
    return {"ecdf_gamma": gamma, "ecdf_p": ecdf_p, "chi2": chi2_stat, "chi2_p": chi2_p, "chi2_bins": bins,
            "ecdf_log10_p": ecdf["log10_p"], "ecdf_method": ecdf["method"],
            "chi2_log10_p": chi2_log_p / np.log(10.0), "dap": dap, "holm": holm(family)}


@dataclass
class SbcReport:  # numpydoc ignore=PR02
    """Everything :func:`summarize` concludes; ``table()`` for people, ``to_dict()`` for JSON.

    Parameters
    ----------
    meta : dict
        The run's metadata (``attrs["meta"]`` of the SBC dataset).
    alpha : float
        The family-wise level.
    num_simulations : int
        Simulations in the dataset.
    num_used : int
        Simulations in the tests (those passing the gate, unless failed ones are included).
    num_ranks : int
        L.
    quantities : list of str
        The Q quantity names.
    uniformity : dict
        ECDF and chi-square results per quantity (``ecdf_p``, ``chi2_p``, their Holm-adjusted and
        ``log10`` values, ...).
    coverage : dict of (Q, K) arrays
        :func:`coverage` with ``p_holm``.
    dap : dict of (Q,) arrays
        :func:`data_averaged_posterior` with ``p_mean_holm`` and ``p_moment_holm``.
    gates : dict
        The diagnostics gate: failures, by check, and whether they were included.
    compare : dict of (Q,) arrays, optional
        NUTS vs exact posterior (:func:`compare_exact`); None without exact columns.
    levels : tuple of float
        The coverage levels.
    verdict : str
        ``"pass"``, ``"fail"`` (calibration tests reject) or ``"not converged"`` (too many gated).
    reasons : list of str
        Why the verdict is not a pass.
    """

    meta: dict
    alpha: float
    num_simulations: int
    num_used: int
    num_ranks: int
    quantities: list[str]
    uniformity: dict[str, np.ndarray]
    coverage: dict[str, np.ndarray]
    dap: dict[str, np.ndarray]
    gates: dict
    compare: dict[str, np.ndarray] | None = None
    levels: tuple[float, ...] = COVERAGE_LEVELS
    verdict: str = "pass"  # "pass", "fail" (calibration tests reject) or "not converged" (too many gated)
    reasons: list[str] = field(default_factory=list)

    @property
    def family_size(self) -> int:
        """The number of tests in the verdict family (the Holm adjustment's m).

        Returns
        -------
        int
            Tests with a p-value.
        """
        return int(sum(np.sum(~np.isnan(v)) for v in (self.uniformity["ecdf_p_holm"], self.uniformity["chi2_p_holm"],
                                                       self.dap["p_mean_holm"], self.dap["p_moment_holm"])))

    @property
    def passed(self) -> bool:
        """Whether the verdict is ``"pass"``.

        Returns
        -------
        bool
            True for a pass.
        """
        return self.verdict == "pass"

    def holm_min(self) -> np.ndarray:
        """Smallest Holm-adjusted p-value of each quantity's four tests.

        Returns
        -------
        (Q,) array
            NaN-ignoring minimum over ECDF, chi-square, DAP mean and DAP moment.
        """
        return np.nanmin([self.uniformity["ecdf_p_holm"], self.uniformity["chi2_p_holm"],
                          self.dap["p_mean_holm"], self.dap["p_moment_holm"]], axis=0)

    def quantity_verdicts(self) -> list[str]:
        """Per-quantity verdicts: ``"FAIL"`` where :meth:`holm_min` is below ``alpha``, else ``"pass"``.

        Returns
        -------
        list of str
            One per quantity.
        """
        return ["FAIL" if p < self.alpha else "pass" for p in self.holm_min()]

    def table(self) -> str:
        """The pass/fail table (plain text).

        Returns
        -------
        str
            Per-quantity p-values, verdicts and coverage, the gate and the overall verdict.
        """
        cfg = self.meta.get("config", {})
        engine = cfg.get("engine", "?")
        dist = cfg.get("distortion", {})
        lines = [
            f"SBC  engine={engine}  simulations={self.num_simulations} (ranked: {self.num_used})  "
            f"L={self.num_ranks} draws per posterior  family alpha={self.alpha:g} "
            f"(Holm over {self.family_size} tests: ECDF, chi2 per quantity; DAP mean, sd per linear quantity)",
        ]
        fit_prior = self.meta.get("fit_spec", {}).get("prior")
        sim_prior = self.meta.get("sim_spec", {}).get("prior")
        if fit_prior != sim_prior:
            lines.append(f"  fit prior {json.dumps(fit_prior)} != simulation prior {json.dumps(sim_prior)}")
        if dist and (dist.get("sd_scale", 1.0) != 1.0 or dist.get("shift_sd", 0.0) != 0.0):
            lines.append(f"  distorted draws: sd x {dist['sd_scale']:g}, shift {dist['shift_sd']:g} sd")
        cov_head = " ".join(f"cov{round(100 * lv):>3d}" for lv in self.levels)
        header = (f"{'quantity':<12} {'ecdf_p':>8} {'chi2_p':>8} {'dap_p':>8}  {'holm_p':>8}  verdict "
                  f"{cov_head} {'dap_sd/prior':>12}")
        lines += [header, "-" * len(header)]
        dap_p = np.minimum(self.dap["p_mean"], self.dap["p_moment"])
        in_family = ~np.isnan(self.dap["p_mean_holm"])
        holm_p = self.holm_min()
        verdicts = self.quantity_verdicts()
        for q, name in enumerate(self.quantities):
            cov_cells = []
            for k in range(len(self.levels)):
                mark = "*" if self.coverage["p_holm"][q, k] < self.alpha else " "
                cov_cells.append(f"{self.coverage['observed'][q, k]:5.3f}{mark}")
            ratio = self.dap["dap_sd"][q] / self.dap["prior_sd"][q]
            lines.append(
                f"{name:<12} {_fmt_p(self.uniformity['ecdf_p'][q])} {_fmt_p(self.uniformity['chi2_p'][q])} "
                f"{_fmt_p(dap_p[q])}{' ' if in_family[q] else 'i'} {_fmt_p(holm_p[q])}  {verdicts[q]:<7} "
                f"{' '.join(cov_cells)} {ratio:12.3f}"
            )
        lines.append(
            "  holm_p: smallest Holm-adjusted p of the quantity's tests in the family; i: DAP informational only"
            " (heavy-tailed); cov*: coverage off nominal (Holm over coverage, informational)"
        )
        gates = self.gates
        if gates.get("applies"):
            lines.append(
                f"diagnostics gate (R-hat <= {gates['rhat_max']:g}, min ESS >= L, divergences <= "
                f"{gates['max_divergences']}): {gates['num_failed']} of {self.num_simulations} simulations failed"
                f" ({100 * gates['fraction_failed']:.1f} %; acceptable <= {100 * gates['max_fraction']:g} %)"
                + (f" (e.g. {gates['failed_examples'][:8]})" if gates["num_failed"] else "")
                + ("; excluded from the tests" if gates["num_failed"] and not gates["included"] else "")
            )
            if gates["num_failed"] and "by_check" in gates:
                lines.append("  gated by check (a simulation can fail several): " + ", ".join(
                    f"{check} {count} ({100 * count / self.num_simulations:.1f} %)"
                    for check, count in gates["by_check"].items()))
        if self.compare is not None:
            lines.append("NUTS vs exact posterior (same datasets): z = (mean_nuts - mean_exact) / MCSE")
            head = (f"{'quantity':<12} {'z_mean':>7} {'z_sd':>6} {'z~N01 p':>8} {'|err|/sd':>9} "
                    f"{'sd_ratio':>9} {'KS':>7} {'KS*sqrtESS':>10}")
            lines += [head]
            c = self.compare
            for q, name in enumerate(self.quantities):
                if np.isnan(c["z_mean"][q]):
                    continue
                lines.append(
                    f"{name:<12} {c['z_mean'][q]:7.3f} {c['z_sd'][q]:6.3f} {_fmt_p(c['z_ks_p'][q])} "
                    f"{c['err_sd_median'][q]:9.4f} {c['sd_ratio_median'][q]:9.4f} {c['ks_median'][q]:7.4f} "
                    f"{c['ks_sqrt_ess_median'][q]:10.3f}"
                )
        label = {"fail": "calibration FAIL", "not converged": "NOT CONVERGED"}.get(self.verdict, self.verdict.upper())
        lines.append(f"overall: {label}" + (f" ({'; '.join(self.reasons)})" if self.reasons else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (NaN -> null).

        Returns
        -------
        dict
            The verdict, reasons, counts, gates, per-quantity results and ``meta``.
        """
        per_quantity = {}
        verdicts = self.quantity_verdicts()
        for q, name in enumerate(self.quantities):
            entry = {
                "verdict": verdicts[q].lower(),
                "uniformity": {k: _num(v[q]) for k, v in self.uniformity.items() if np.ndim(v) == 1},
                "coverage": {
                    f"{lv:g}": {k: _num(self.coverage[k][q, i]) for k in ("observed", "lower", "upper", "p", "p_holm")}
                    for i, lv in enumerate(self.levels)
                },
                "data_averaged_posterior": {k: _num(v[q]) for k, v in self.dap.items()},
            }
            if self.compare is not None and not np.isnan(self.compare["z_mean"][q]):
                entry["nuts_vs_exact"] = {k: _num(v[q]) for k, v in self.compare.items()}
            per_quantity[name] = entry
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "alpha": self.alpha,
            "num_simulations": self.num_simulations,
            "num_used": self.num_used,
            "num_ranks": self.num_ranks,
            "chi2_bins": int(self.uniformity["chi2_bins"]),
            "ecdf_null_simulations": int(self.uniformity["ecdf_null_simulations"]),
            "gates": self.gates,
            "quantities": per_quantity,
            "meta": self.meta,
        }

    def to_json(self, path=None, indent: int = 2) -> str:
        """The summary as JSON text, optionally written (atomically) to ``path``.

        Parameters
        ----------
        path : str or Path, optional
            Where to write it (parent directories are created).
        indent : int
            JSON indentation.

        Returns
        -------
        str
            The JSON of :meth:`to_dict` (NaN -> null).
        """
        text = json.dumps(self.to_dict(), indent=indent, default=_json_default)
        if path is not None:
            from pathlib import Path

            from bayeslin_jax.core.atomic import atomic_write_text

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text + "\n")
        return text


def _json_default(value):
    """NumPy scalars and arrays -> plain JSON values (NaN -> null)."""
    if isinstance(value, np.ndarray):
        return [_json_default(v) for v in value.tolist()] if value.ndim else _json_default(value.item())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return f"{'nan':>8}"
    return f"{p:8.4f}" if p >= 1e-4 else f"{p:8.1e}"


def _num(value):
    value = float(value)
    return None if not np.isfinite(value) else value


def summarize(ds: xr.Dataset | str | Path, alpha: float = 0.05, include_failed: bool = False,
              max_gate_failure: float = 0.05, ecdf_sims: int = ECDF_SIMULATIONS) -> SbcReport:
    """Verdicts for an SBC dataset (see module docstring).

    Simulations failing the diagnostics gate are left out of the tests unless ``include_failed``.
    The overall verdict fails if the uniformity family rejects, or if more than
    ``max_gate_failure`` of the simulations fail the gate (unreliable inference).

    Parameters
    ----------
    ds : xr.Dataset, str or Path
        The per-simulation dataset of :func:`~bayeslin_jax.workflows.sbc.run.run_sbc` (or
        :func:`~bayeslin_jax.workflows.sbc.samplers.run_sampler_sbc`), or the path of an SBC store: it is
        opened with :func:`bayeslin_jax.workflows.sbc.run.open_sbc` (verified).
    alpha : float
        The family-wise level of the verdict.
    include_failed : bool
        Rank the simulations that fail the gate too (also done when fewer than 2 pass it).
    max_gate_failure : float
        The largest fraction of simulations that may fail the gate.
    ecdf_sims : int
        Null draws of the simulated ECDF p-value.

    Returns
    -------
    SbcReport
        The verdict (``"pass"``, ``"fail"`` or ``"not converged"``), its reasons and every test's results.

    Raises
    ------
    BayeslinError
        Fewer than 2 simulations; for a path, what :func:`~bayeslin_jax.workflows.sbc.run.open_sbc` raises.
    """
    if not isinstance(ds, xr.Dataset):
        from bayeslin_jax.workflows.sbc.run import open_sbc  # imports JAX: only when reading a store

        ds = open_sbc(ds)
    meta = json.loads(ds.attrs["meta"]) if isinstance(ds.attrs.get("meta"), str) else dict(ds.attrs.get("meta", {}))
    num_ranks = int(meta["config"]["num_ranks"])
    quantities = [str(q) for q in ds["quantity"].values]
    gate_ok = ds["gate_ok"].values.astype(bool)
    total = gate_ok.size
    if total < 2:
        raise BayeslinError(f"need at least 2 simulations to test calibration, got {total}")
    include_failed = bool(include_failed or gate_ok.sum() < 2)  # nothing left to test otherwise: rank them all
    used = np.ones(total, dtype=bool) if include_failed else gate_ok
    sub = ds.isel(dataset=np.flatnonzero(used))
    tests = calibration_tests(sub["rank"].values, sub["truth"].values, sub["post_mean"].values,
                              sub["post_sd"].values, num_ranks, _dap_mask(meta, quantities), ecdf_sims)
    gamma, ecdf_p, chi2_stat, chi2_p, bins, dap = (tests[k] for k in ("ecdf_gamma", "ecdf_p", "chi2", "chi2_p",
                                                                      "chi2_bins", "dap"))
    num_q = len(quantities)
    adjusted = tests["holm"]
    uniformity = {
        "ecdf_gamma": gamma, "ecdf_p": ecdf_p, "chi2": chi2_stat, "chi2_p": chi2_p,
        "ecdf_p_holm": adjusted[0], "chi2_p_holm": adjusted[1],
        "ecdf_log10_p": tests["ecdf_log10_p"], "chi2_log10_p": tests["chi2_log10_p"],
        "chi2_bins": bins, "ecdf_null_simulations": ecdf_sims,
    }
    dap["p_mean_holm"], dap["p_moment_holm"] = adjusted[2], adjusted[3]
    cov = coverage(sub["pit"].values)
    cov["p_holm"] = holm(cov["p"])
    cfg = meta["config"]
    gates = {"applies": cfg["engine"] == "nuts", "num_failed": int((~gate_ok).sum()),
             "failed_examples": [int(i) for i in ds["dataset"].values[~gate_ok][:20]], "included": include_failed}
    if gates["applies"]:
        gates.update(rhat_max=cfg["rhat_max"], max_divergences=cfg["max_divergences"])
        if "rhat" in ds:
            gates["rhat_fail"] = int((ds["rhat"].values.max(-1) > cfg["rhat_max"]).sum())
            ess_min = np.minimum(ds["ess_bulk"].values, ds["ess_tail"].values).min(-1)
            gates["ess_fail"] = int((ess_min < num_ranks).sum())
            gates["divergence_fail"] = int((ds["divergences"].values > cfg["max_divergences"]).sum())
            gates["by_check"] = {"R-hat": gates["rhat_fail"], "ESS": gates["ess_fail"],
                                 "divergences": gates["divergence_fail"]}
    gates.update(fraction_failed=gates["num_failed"] / total, max_fraction=float(max_gate_failure))
    reasons = []
    for label, rows in (("ranks not uniform", [0, 1]), ("data-averaged posterior != prior", [2, 3])):
        rejected = [quantities[q] for q in range(num_q) if np.nanmin(adjusted[rows, q], initial=np.inf) < alpha]
        if rejected:
            reasons.append(f"{label} for {', '.join(rejected)}")
    verdict = "fail" if reasons else "pass"  # calibration: the tests of the simulations used
    if gates["num_failed"] > max_gate_failure * total:
        checks = ", ".join(f"{k} {v}" for k, v in gates.get("by_check", {}).items() if v)
        reasons.append(f"sampler did not converge on {100 * gates['fraction_failed']:.1f} % of simulations "
                       f"({gates['num_failed']}/{total} failed the diagnostics gate{': ' + checks if checks else ''})")
        verdict = "fail" if verdict == "fail" else "not converged"
    return SbcReport(
        meta=meta, alpha=alpha, num_simulations=total, num_used=int(used.sum()), num_ranks=num_ranks,
        quantities=quantities, uniformity=uniformity, coverage=cov, dap=dap, gates=gates,
        compare=compare_exact(sub), verdict=verdict, reasons=reasons,
    )
