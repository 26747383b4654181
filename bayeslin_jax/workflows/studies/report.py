"""Diagnostics over a whole simulation study: text summary, figure and the datasets that failed.

Checks per dataset (thresholds in :class:`Checks`): R-hat, bulk/tail ESS, divergences, tree-depth
saturation and, for known noise, agreement of the NUTS mean with the exact posterior mean in
units of its Monte-Carlo standard error. The standardized error ``(NUTS mean - exact mean) /
exact sd`` is summarised across datasets: its spread should be about ``1 / sqrt(ESS)``.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy import stats

from bayeslin_jax.core.atomic import atomic_folder, atomic_path, atomic_write_text
from bayeslin_jax.core.data import strict_json
from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.workflows.studies.run import open_study, throughput


@dataclass(frozen=True)
class Checks:  # numpydoc ignore=PR02
    """Thresholds a dataset must meet (defaults follow Vehtari et al. 2021 and Stan).

    Parameters
    ----------
    max_rhat : float
        Largest R-hat allowed for any parameter, in ``(1, 2]``.
    min_ess_per_chain : float
        Smallest bulk and tail ESS allowed, per chain (multiplied by the number of chains), in ``[1, 1e9]``.
    max_divergences : int
        Most divergent transitions allowed per dataset (over all chains).
    max_tree_depth_hits : int
        Most draws allowed to hit the maximum tree depth per dataset.
    max_abs_mcse_z : float
        Largest ``|NUTS mean - exact mean| / MCSE`` allowed (known noise only), in ``(0, 1e6]``; 5 gives about
        6e-7 false alarms per value.

    Raises
    ------
    BayeslinError
        A threshold that would switch its check off (one line, exit 2 in the command line).
    """

    max_rhat: float = 1.01
    min_ess_per_chain: float = 100.0
    max_divergences: int = 0
    max_tree_depth_hits: int = 0
    max_abs_mcse_z: float = 5.0  # |NUTS mean - exact mean| / MCSE; 5 -> ~6e-7 false alarms per value

    def __post_init__(self) -> None:
        """Thresholds that would switch a check off are refused (one-line :class:`BayeslinError`, exit 2)."""
        def number(name: str, value) -> float:
            """``value`` as a float, if it is a finite real number (not a bool).

            Parameters
            ----------
            name : str
                The threshold's name, for the message.
            value : object
                The threshold.

            Returns
            -------
            float
                ``float(value)``.

            Raises
            ------
            BayeslinError
                ``value`` is not a finite number.
            """
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
                    or not math.isfinite(float(value)):
                raise BayeslinError(f"{name} must be a finite number, got {value!r}")
            return float(value)

        if not 1.0 < number("max R-hat", self.max_rhat) <= 2.0:
            raise BayeslinError(f"max R-hat must lie in (1, 2] (1.01 is the usual threshold), got {self.max_rhat}")
        if not 1.0 <= number("min ESS per chain", self.min_ess_per_chain) <= 1e9:
            raise BayeslinError(f"min ESS per chain must lie in [1, 1e9] (100 is the usual threshold), got "
                                f"{self.min_ess_per_chain}")
        for name, value in (("max divergences", self.max_divergences),
                            ("max tree-depth hits", self.max_tree_depth_hits)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise BayeslinError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 < number("max |MCSE z|", self.max_abs_mcse_z) <= 1e6:
            raise BayeslinError(f"max |MCSE z| must lie in (0, 1e6] (5 is the default), got {self.max_abs_mcse_z}")


def _params(ds: xr.Dataset) -> list[tuple[str, xr.DataArray, xr.DataArray, xr.DataArray]]:
    """``(name, rhat, ess_bulk, ess_tail)`` for each weight and, if sampled, sigma."""
    out = [(str(f), ds["rhat"].sel(feature=f), ds["ess_bulk"].sel(feature=f), ds["ess_tail"].sel(feature=f))
           for f in ds["feature"].values]
    if "sigma_rhat" in ds:
        out.append(("sigma", ds["sigma_rhat"], ds["sigma_ess_bulk"], ds["sigma_ess_tail"]))
    return out


def standardized_error(ds: xr.Dataset) -> xr.DataArray | None:
    """The standardized error ``(NUTS mean - exact mean) / exact sd`` of each dataset and weight.

    Parameters
    ----------
    ds : xarray.Dataset
        A study (:func:`~bayeslin_jax.workflows.studies.open_study`).

    Returns
    -------
    (dataset, feature) xarray.DataArray or None
        The standardized errors; None without an exact posterior (unknown noise).
    """
    if "exact_mean" not in ds:
        return None
    return (ds["nuts_mean"] - ds["exact_mean"]) / ds["exact_sd"]


def mcse_error(ds: xr.Dataset) -> xr.DataArray | None:
    """The error in units of its Monte-Carlo standard error: ``(NUTS mean - exact mean) / MCSE``.

    Parameters
    ----------
    ds : xarray.Dataset
        A study (:func:`~bayeslin_jax.workflows.studies.open_study`).

    Returns
    -------
    (dataset, feature) xarray.DataArray or None
        ~N(0, 1) when NUTS and its MCSE are right; None without an exact posterior (unknown noise).
    """
    if "exact_mean" not in ds:
        return None
    return (ds["nuts_mean"] - ds["exact_mean"]) / ds["mcse_mean"]


def failed_checks(ds: xr.Dataset, checks: Checks = Checks()) -> xr.Dataset:
    """Which datasets fail which check.

    A NaN diagnostic of any parameter fails its dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A study (:func:`~bayeslin_jax.workflows.studies.open_study`).
    checks : Checks
        The thresholds.

    Returns
    -------
    xarray.Dataset
        Boolean ``(dataset,)`` per check (True = failed): ``rhat``, ``ess_bulk``, ``ess_tail``, ``divergences``,
        ``tree_depth``, ``exact_mismatch`` (known noise only), plus ``any``.
    """
    num_chains = ds.sizes.get("chain", 1)
    min_ess = checks.min_ess_per_chain * num_chains
    # NaN propagates (skipna=False, maximum/minimum): a NaN diagnostic of any parameter fails the dataset
    rhat = ds["rhat"].max("feature", skipna=False)
    ess_bulk = ds["ess_bulk"].min("feature", skipna=False)
    ess_tail = ds["ess_tail"].min("feature", skipna=False)
    if "sigma_rhat" in ds:
        rhat = cast(xr.DataArray, np.maximum(rhat, ds["sigma_rhat"]))  # xarray's ufunc dispatch: a DataArray
        ess_bulk = cast(xr.DataArray, np.minimum(ess_bulk, ds["sigma_ess_bulk"]))
        ess_tail = cast(xr.DataArray, np.minimum(ess_tail, ds["sigma_ess_tail"]))
    out = xr.Dataset(
        {
            "rhat": ~(rhat <= checks.max_rhat),  # NaN fails
            "ess_bulk": ~(ess_bulk >= min_ess),
            "ess_tail": ~(ess_tail >= min_ess),
            "divergences": ds["divergences"] > checks.max_divergences,
            "tree_depth": ds["max_tree_depth_hits"] > checks.max_tree_depth_hits,
        }
    )
    z = mcse_error(ds)
    if z is not None:
        out["exact_mismatch"] = ~(cast(xr.DataArray, np.abs(z)) <= checks.max_abs_mcse_z).all("feature")
    out["any"] = sum(out[name] for name in list(out.data_vars)) > 0
    return out


def _quantiles(values, probs=(0.0, 0.01, 0.5, 0.99, 1.0)) -> dict[str, float]:
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {f"q{int(p * 100)}": math.nan for p in probs}
    return {("min" if p == 0 else "max" if p == 1 else f"q{int(p * 100)}"): float(np.quantile(v, p)) for p in probs}


@dataclass(frozen=True)
class StudyReport:  # numpydoc ignore=PR02
    """Everything :func:`summarize` concludes about a study; ``table()`` for people, ``to_dict()`` for JSON.

    Parameters
    ----------
    summary : dict
        Settings, R-hat/ESS distributions, divergences, tree depth, exact agreement and failures (JSON-able but
        for non-finite numbers; see :meth:`to_dict`).
    failed : xarray.Dataset
        Per-dataset booleans, one variable per check plus ``any`` (dim ``dataset``).
    """

    summary: dict
    failed: xr.Dataset

    @property
    def passed(self) -> bool:
        """Whether no dataset failed a check.

        Returns
        -------
        bool
            True when the failure count is 0.
        """
        return self.summary["failed"]["count"] == 0

    def table(self, max_listed: int = 20) -> str:
        """The plain-text report (settings, R-hat/ESS distributions, exact agreement, failures).

        Parameters
        ----------
        max_listed : int
            Most failed datasets listed by index (the rest are counted; all are in :meth:`failed_csv`).

        Returns
        -------
        str
            The report (:func:`format_text`), newline-terminated.
        """
        return format_text(self.summary, max_listed)

    def to_dict(self) -> dict:
        """JSON-ready summary (settings, diagnostics distributions, exact agreement, failed datasets).

        Returns
        -------
        dict
            The summary as :meth:`to_json` writes it (non-finite numbers None, listed under ``non_finite``).
        """
        return json.loads(strict_json(self.summary))

    def to_json(self, path: str | Path | None = None) -> str:
        """Strict JSON of :meth:`to_dict` (non-finite numbers null, listed under ``non_finite``).

        Parameters
        ----------
        path : str or Path, optional
            Also write the JSON there, atomically (:func:`~bayeslin_jax.core.atomic.atomic_write_text`).

        Returns
        -------
        str
            The JSON text.
        """
        text = strict_json(self.summary)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def failed_csv(self) -> str:
        """The failed datasets as CSV: one row per failed dataset, its index and a 0/1 column per check.

        Returns
        -------
        str
            The CSV text, with a header row ``dataset,<check>,...``.
        """
        checks = [cast(str, name) for name in self.failed.data_vars if name != "any"]
        rows = ["dataset," + ",".join(checks)]
        for pos in np.flatnonzero(self.failed["any"].values):
            rows.append(f"{int(self.failed['dataset'].values[pos])}," + ",".join(
                str(int(self.failed[n].values[pos])) for n in checks))
        return "\n".join(rows) + "\n"


def summarize(ds: xr.Dataset, checks: Checks = Checks()) -> StudyReport:
    """Summarise a study (from :func:`~bayeslin_jax.workflows.studies.open_study`) against ``checks``.

    Parameters
    ----------
    ds : xarray.Dataset
        The study.
    checks : Checks
        The thresholds.

    Returns
    -------
    StudyReport
        Settings, R-hat/ESS distributions, divergences, tree depth, exact agreement (known noise) and the
        datasets that failed a check.
    """
    failed = failed_checks(ds, checks)
    return StudyReport(_summary(ds, checks, failed), failed)


def _summary(ds: xr.Dataset, checks: Checks, failed: xr.Dataset) -> dict:
    """JSON-able summary of a study: settings, diagnostics distributions, exact agreement, failures."""
    meta = ds.attrs.get("meta", {})
    num_chains = ds.sizes.get("chain", 1)
    min_ess = checks.min_ess_per_chain * num_chains
    params = {}
    for name, rhat, bulk, tail in _params(ds):
        params[name] = {
            "rhat": {**_quantiles(rhat), "n_above": int((~(rhat <= checks.max_rhat)).sum())},
            "ess_bulk": {**_quantiles(bulk), "n_below": int((~(bulk >= min_ess)).sum())},
            "ess_tail": {**_quantiles(tail), "n_below": int((~(tail >= min_ess)).sum())},
        }
    divergences = ds["divergences"].values
    summary = {
        "datasets": int(ds.sizes["dataset"]),
        "complete": bool(ds.attrs.get("complete", True)),
        "settings": {k: meta.get(k) for k in ("spec", "nuts", "seed", "simulator", "num_datasets")},
        "versions": meta.get("versions"),
        "devices": sorted({d for r in ds.attrs.get("runs", []) for d in r.get("devices", [])}),
        "checks": asdict(checks) | {"min_ess": min_ess},
        "params": params,
        "divergences": {
            "datasets_with_any": int((divergences > 0).sum()),
            "total": int(divergences.sum()),
            "max": int(divergences.max()),
        },
        "tree_depth": {
            "datasets_hitting_max": int((ds["max_tree_depth_hits"].values > 0).sum()),
            "mean_depth": _quantiles(ds["mean_tree_depth"]),
            "mean_leapfrog_per_draw": float(ds["mean_leapfrog"].mean()),
        },
        "failed": {
            "count": int(failed["any"].sum()),
            **{name: int(failed[name].sum()) for name in failed.data_vars if name != "any"},
            "datasets": [int(i) for i in ds["dataset"].values[failed["any"].values]],
        },
    }
    if ds.attrs.get("paths"):
        summary["throughput"] = throughput(ds)
    memory = peak_memory(ds.attrs.get("runs", []))
    if memory:
        summary["memory"] = memory
    z = standardized_error(ds)
    zm = mcse_error(ds)
    if z is not None and zm is not None:  # both or neither: an exact posterior
        exact = {}
        for feature in ds["feature"].values:
            zf = z.sel(feature=feature).values
            zmf = zm.sel(feature=feature).values
            ess = ds["ess_bulk"].sel(feature=feature).values
            ratio = (ds["nuts_sd"] / ds["exact_sd"]).sel(feature=feature).values
            exact[str(feature)] = {
                "std_error": {"mean": float(np.mean(zf)), "sd": float(np.std(zf, ddof=1)) if zf.size > 1 else math.nan,
                              **_quantiles(zf), "max_abs": float(np.max(np.abs(zf)))},
                # Expected sd of the standardized error if NUTS draws were ESS independent exact draws:
                "expected_sd": float(np.sqrt(np.mean(1.0 / ess))),
                "mcse_z": {"mean": float(np.mean(zmf)), "sd": float(np.std(zmf, ddof=1)) if zmf.size > 1 else math.nan,
                           "frac_abs_gt_3": float(np.mean(np.abs(zmf) > 3)), "expected_frac_abs_gt_3": 0.0027},
                "sd_ratio": _quantiles(ratio),
            }
        summary["exact"] = exact
    return summary


def peak_memory(runs: list[dict]) -> dict[str, float | None]:
    """The largest peak host RSS and device memory over a study's run records (bytes, and per dataset).

    Parameters
    ----------
    runs : list of dict
        The study's run records (``ds.attrs["runs"]``).

    Returns
    -------
    dict
        ``peak_rss_bytes``, ``peak_device_bytes`` (None where the backend does not report it) and each
        ``*_per_dataset``; empty when no record has them (stores written before they were recorded).
    """
    runs = [r for r in runs if r.get("peak_rss_bytes") is not None]
    if not runs:
        return {}
    out: dict[str, float | None] = {}
    for key in ("peak_rss_bytes", "peak_device_bytes"):
        known = [r for r in runs if r.get(key) is not None]
        top = max(known, key=operator.itemgetter(key)) if known else None
        out[key] = None if top is None else int(top[key])
        out[f"{key}_per_dataset"] = None if top is None else float(top[f"{key}_per_dataset"])
    return out


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan"
    return f"{x:.4g}"


def _table(header: list[str], rows: list[list[str]], widths: list[int], left: int) -> list[str]:
    """A text table: the first ``left`` columns left-aligned, the others right-aligned.

    Each column is ``widths[i]`` wide, or wider where a cell (header included) needs it: a left-aligned cell is
    followed by at least one space, a right-aligned one preceded by at least one, so columns never run together
    however long a term name or a value is.
    """
    cols = [max(width, *(len(row[i]) + 1 for row in (header, *rows))) for i, width in enumerate(widths)]
    return ["".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, cols,
                                                                                                   strict=True)))
            for row in (header, *rows)]


def format_text(summary: dict, max_listed: int = 20) -> str:
    """Human-readable report of :func:`summarize`'s output.

    Its tables' columns are as wide as their longest cell, so long term names and values never run together.

    Parameters
    ----------
    summary : dict
        :attr:`StudyReport.summary`.
    max_listed : int
        Most failed datasets listed by index.

    Returns
    -------
    str
        The report, newline-terminated.
    """
    s = summary["settings"]
    lines = [
        "bayeslin study report",
        "=====================",
        f"datasets: {summary['datasets']}" + ("" if summary["complete"] else " (INCOMPLETE store)"),
        f"model: {json.dumps(s['spec'])}",
        f"sampler: {json.dumps(s['nuts'])}",
        f"seed {s['seed']}, simulator {json.dumps(s['simulator'])}",
        f"versions: {json.dumps(summary['versions'])}; devices: {', '.join(summary['devices'])}",
    ]
    if "throughput" in summary:
        t = summary["throughput"]
        lines.append(f"compute: {_fmt(t['seconds'])} s, {_fmt(t['datasets_per_s'])} datasets/s, "
                     f"{_fmt(1e3 * t['s_per_dataset'])} ms per dataset")
    if "memory" in summary:
        m = summary["memory"]
        device = ("not reported (CPU)" if m["peak_device_bytes"] is None else
                  f"{_fmt(m['peak_device_bytes'] / 2**20)} MiB ({_fmt(m['peak_device_bytes_per_dataset'] / 2**10)} "
                  "KiB per dataset of a chunk)")
        lines.append(f"peak memory: host RSS {_fmt(m['peak_rss_bytes'] / 2**20)} MiB "
                     f"({_fmt(m['peak_rss_bytes_per_dataset'] / 2**10)} KiB per dataset of a chunk); device {device}")
    c = summary["checks"]
    rows = [[name, stat, *(_fmt(p[stat][k]) for k in ("min", "q1", "q50", "q99", "max")), str(p[stat][key])]
            for name, p in summary["params"].items()
            for stat, key in (("rhat", "n_above"), ("ess_bulk", "n_below"), ("ess_tail", "n_below"))]
    lines += ["", f"R-hat and ESS across datasets (fail: R-hat > {c['max_rhat']}, ESS < {_fmt(c['min_ess'])})",
              *_table(["param", "stat", "min", "1%", "median", "99%", "max", "failed"], rows,
                      [8, 10, 10, 10, 10, 10, 10, 8], left=2)]
    d, t = summary["divergences"], summary["tree_depth"]
    lines += ["", f"divergences: {d['datasets_with_any']} datasets with any, {d['total']} in total (max {d['max']})",
              f"tree depth: {t['datasets_hitting_max']} datasets hit the maximum; median mean depth "
              f"{_fmt(t['mean_depth']['q50'])}, {_fmt(t['mean_leapfrog_per_draw'])} leapfrog steps per draw"]
    if "exact" in summary:
        rows = [[name, _fmt(e["std_error"]["mean"]), _fmt(e["std_error"]["sd"]), _fmt(e["expected_sd"]),
                 _fmt(e["std_error"]["max_abs"]), _fmt(e["mcse_z"]["sd"]), f"{e['mcse_z']['frac_abs_gt_3']:.4f}",
                 _fmt(e["sd_ratio"]["q50"])] for name, e in summary["exact"].items()]
        lines += ["", "NUTS vs exact posterior: standardized error z = (NUTS mean - exact mean) / exact sd",
                  *_table(["feature", "mean z", "sd z", "expected", "max |z|", "sd(z/mcse)", "|z/mcse|>3", "sd ratio"],
                          rows, [8, 10, 10, 10, 10, 12, 12, 10], left=1)]
        lines.append("(expected: sd z ~ sqrt(mean 1/ESS); z/mcse ~ N(0, 1), so sd ~ 1 and 0.27% beyond 3; "
                     "sd ratio = NUTS sd / exact sd, median)")
    else:
        lines += ["", "no exact posterior (unknown noise): NUTS-vs-exact comparison skipped"]
    f = summary["failed"]
    per_check = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("count", "datasets"))
    lines += ["", f"failed checks: {f['count']} of {summary['datasets']} datasets ({per_check})"]
    if f["datasets"]:
        shown = ", ".join(str(i) for i in f["datasets"][:max_listed])
        more = f" ... (+{len(f['datasets']) - max_listed}, see failed.csv)" if len(f["datasets"]) > max_listed else ""
        lines.append(f"failed datasets: {shown}{more}")
    return "\n".join(lines) + "\n"


def plot(ds: xr.Dataset, checks: Checks = Checks()) -> Figure:
    """The study's figure: R-hat, bulk ESS, tail ESS, divergences, standardized error, error / MCSE.

    Parameters
    ----------
    ds : xarray.Dataset
        The study.
    checks : Checks
        The thresholds (drawn as dashed lines).

    Returns
    -------
    matplotlib.figure.Figure
        2x3 panels (the two exact-posterior panels say so when there is none).
    """
    bins = int(np.clip(2 * np.sqrt(ds.sizes["dataset"]), 5, 60))
    fig = Figure(figsize=(15, 8.5), layout="constrained")
    axes = fig.subplots(2, 3)
    params = _params(ds)
    min_ess = checks.min_ess_per_chain * ds.sizes.get("chain", 1)
    for ax, idx, title, line in ((axes[0, 0], 1, "R-hat", checks.max_rhat), (axes[0, 1], 2, "bulk ESS", min_ess),
                                 (axes[0, 2], 3, "tail ESS", min_ess)):
        for p in params:
            values = np.asarray(p[idx]).ravel()
            values = values[np.isfinite(values)]
            if values.size:
                ax.hist(values, bins=bins, histtype="step", label=p[0])
        ax.axvline(line, color="k", ls="--", lw=1, label="threshold")
        ax.set(title=f"{title} across datasets", xlabel=title, ylabel="datasets")
        ax.legend(fontsize=8)
    div = ds["divergences"].values
    counts = np.bincount(np.minimum(div, 10), minlength=11)
    ax = axes[1, 0]
    ax.bar(np.arange(11), counts, color="tab:red")
    ax.set_xticks(np.arange(11), [*map(str, range(10)), "10+"])
    ax.set(title=f"divergences per dataset ({int((div > 0).sum())} datasets with any)", xlabel="divergences",
           ylabel="datasets")
    z, zm = standardized_error(ds), mcse_error(ds)
    if z is None or zm is None:  # both or neither: an exact posterior
        for ax in axes[1, 1:]:
            ax.text(0.5, 0.5, "no exact posterior\n(unknown noise)", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    ax = axes[1, 1]
    for feature in ds["feature"].values:
        ax.hist(z.sel(feature=feature).values, bins=bins, histtype="step", density=True, label=str(feature))
    expected_sd = float(np.sqrt(np.mean(1.0 / ds["ess_bulk"].values)))
    grid = np.linspace(-4 * expected_sd, 4 * expected_sd, 200)
    ax.plot(grid, stats.norm.pdf(grid, scale=expected_sd), "k--", lw=1, label=f"N(0, {expected_sd:.3g}) expected")
    ax.set(title="standardized error (NUTS mean - exact mean) / exact sd", xlabel="z", ylabel="density")
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    for feature in ds["feature"].values:
        ax.hist(zm.sel(feature=feature).values, bins=bins, histtype="step", density=True, label=str(feature))
    grid = np.linspace(-4, 4, 200)
    ax.plot(grid, stats.norm.pdf(grid), "k--", lw=1, label="N(0, 1)")
    ax.set(title="(NUTS mean - exact mean) / MCSE", xlabel="z / MCSE", ylabel="density")
    ax.legend(fontsize=8)
    return fig


def write_report(source: str | Path | xr.Dataset, out_dir: str | Path, checks: Checks = Checks(),
                 allow_incomplete: bool = False) -> dict[str, Path]:
    """Write ``report.txt``, ``report.json``, ``report.png`` and ``failed.csv`` into ``out_dir``.

    The folder is replaced as a whole or not at all.

    Parameters
    ----------
    source : str, Path or xarray.Dataset
        A study store (opened with :func:`~bayeslin_jax.workflows.studies.open_study`) or an opened study.
    out_dir : str or Path
        The report folder.
    checks : Checks
        The thresholds.
    allow_incomplete : bool
        Report on the finished datasets of an incomplete store.

    Returns
    -------
    dict of str to Path
        ``text``, ``json``, ``figure`` and ``failed``: where each file is.

    Raises
    ------
    BayeslinError
        The study has no finished datasets yet, or its store is incomplete (and not ``allow_incomplete``),
        damaged or no study.
    """
    ds = source if isinstance(source, xr.Dataset) else open_study(source, allow_incomplete=allow_incomplete)
    if ds.sizes.get("dataset", 0) == 0:
        raise BayeslinError("the study has no finished datasets yet")
    out = Path(out_dir)
    report = summarize(ds, checks)
    names = {"text": "report.txt", "json": "report.json", "figure": "report.png", "failed": "failed.csv"}
    paths = {key: out / name for key, name in names.items()}
    figure = plot(ds, checks)
    # the folder is replaced as a whole or not at all: every file is written into a sibling temporary folder
    with atomic_folder(out) as tmp:
        atomic_write_text(tmp / names["text"], report.table(), shown=paths["text"])
        atomic_write_text(tmp / names["json"], report.to_json(), shown=paths["json"])  # NaN -> null, "non_finite"
        with atomic_path(tmp / names["figure"], shown=paths["figure"]) as png:
            figure.savefig(png, dpi=110, format="png")
        atomic_write_text(tmp / names["failed"], report.failed_csv(), shown=paths["failed"])
    return paths
