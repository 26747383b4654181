"""The study report's text tables: columns as wide as their longest cell, so they never run together (issue 33).

The report is built from its own inputs (a small hand-made study dataset with the variables ``summarize`` reads),
so no sampling runs here.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayeslin_jax.workflows.studies.report import StudyReport, summarize

LONG = "intercept[0]"  # 12 characters: it used to run into the next column ("intercept[0]rhat 0.9986")
LONGER = "a_term_name_of_thirty_chars_xy"
STATS = ("rhat", "ess_bulk", "ess_tail")


def _study(names: list[str], *, sigma: bool = False, exact: bool = True, offset: float = 0.0) -> xr.Dataset:
    """A finished study's per-dataset summaries, as :func:`~bayeslin_jax.workflows.studies.open_study` gives them."""
    rng = np.random.default_rng(0)
    num, d, fd = 6, len(names), ("dataset", "feature")
    mean = rng.normal(size=(num, d))
    out = {
        "rhat": (fd, 1 + 0.005 * rng.random((num, d))),
        "ess_bulk": (fd, 300 + 100 * rng.random((num, d))),
        "ess_tail": (fd, 300 + 100 * rng.random((num, d))),
        "nuts_mean": (fd, mean),
        "nuts_sd": (fd, 1 + 0.01 * rng.random((num, d))),
        "mcse_mean": (fd, np.full((num, d), 0.05)),
        "divergences": (("dataset",), np.array([0, 0, 1, 0, 0, 0])),
        "max_tree_depth_hits": (("dataset",), np.zeros(num, dtype=np.int32)),
        "mean_tree_depth": (("dataset",), np.full(num, 2.5)),
        "mean_leapfrog": (("dataset",), np.full(num, 5.0)),
        "step_size": (("dataset", "chain"), np.ones((num, 2))),
    }
    if exact:
        out["exact_mean"] = (fd, mean + offset + 0.01 * rng.normal(size=(num, d)))
        out["exact_sd"] = (fd, np.ones((num, d)))
    if sigma:
        out["sigma_rhat"] = (("dataset",), np.full(num, 1.001))
        out["sigma_ess_bulk"] = (("dataset",), np.full(num, 400.0))
        out["sigma_ess_tail"] = (("dataset",), np.full(num, 400.0))
    ds = xr.Dataset(out, coords={"dataset": np.arange(num), "feature": names, "chain": np.arange(2)})
    ds.attrs = {"meta": {"spec": {"model": "test"}, "nuts": {}, "seed": 0, "simulator": "prior", "num_datasets": num,
                         "versions": {}}, "complete": True, "runs": []}
    return ds


def _block(text: str, title: str) -> list[str]:
    """The header and rows of the table under the line starting with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 1
    stop = next(i for i in range(start, len(lines)) if not lines[i] or lines[i].startswith("("))
    return lines[start:stop]


def _check_rhat_table(report: StudyReport, names: list[str]) -> None:
    summary = report.to_dict()
    header, *rows = _block(report.table(), "R-hat and ESS across datasets")
    assert header.split() == ["param", "stat", "min", "1%", "median", "99%", "max", "failed"]
    assert len(rows) == 3 * len(names)
    for row, (name, stat) in zip(rows, [(n, s) for n in names for s in STATS], strict=True):
        cells = row.split()
        assert cells[:2] == [name, stat], row  # the name and the statistic are separate cells
        assert len(cells) == 8, row
        assert row.index(stat, len(name)) == header.index("stat"), (header, row)  # columns aligned
        assert len(row) == len(header), (header, row)  # right-aligned columns end where the header's do
        q = summary["params"][name][stat]
        got = [float(c) for c in cells[2:7]]
        assert got == pytest.approx([q[k] for k in ("min", "q1", "q50", "q99", "max")], rel=1e-3)
        assert int(cells[7]) == q["n_above" if stat == "rhat" else "n_below"]


def _check_exact_table(report: StudyReport, names: list[str]) -> None:
    summary = report.to_dict()
    header, *rows = _block(report.table(), "NUTS vs exact posterior")
    assert header.split()[0] == "feature"
    assert [row.split()[0] for row in rows] == names
    for row, name in zip(rows, names, strict=True):
        cells = row.split()
        assert len(cells) == 8, row  # every value its own cell
        assert len(row) == len(header), (header, row)
        e = summary["exact"][name]
        assert float(cells[1]) == pytest.approx(e["std_error"]["mean"], rel=1e-3)
        assert float(cells[4]) == pytest.approx(e["std_error"]["max_abs"], rel=1e-3)


@pytest.mark.parametrize("names", [[LONG, "b"], ["b", LONGER, LONG]])
def test_long_names_get_their_own_column(names: list[str]) -> None:
    report = summarize(_study(names, sigma=True))
    text = report.table()
    for name in names:
        assert f"{name}rhat" not in text and f"{name}ess" not in text, text
    _check_rhat_table(report, [*names, "sigma"])
    _check_exact_table(report, names)
    width = max(map(len, names))
    assert all(row.index("rhat") > width for row in _block(text, "R-hat and ESS")[1:] if "rhat" in row)


def test_long_values_get_their_own_column() -> None:
    # a standardized error of -1.234e+05 fills 10 characters: the old width-10 columns ran it into the one before
    report = summarize(_study([LONG, "m"], offset=1.234e5))
    assert any(len(c) >= 10 for row in _block(report.table(), "NUTS vs exact posterior")[1:] for c in row.split())
    _check_exact_table(report, [LONG, "m"])


def test_short_names_keep_the_usual_layout() -> None:
    report = summarize(_study(["b", "m"]))
    header, first, *_ = _block(report.table(), "R-hat and ESS across datasets")
    assert header.startswith("param   stat      ") and first.startswith("b       rhat      ")
    assert len(header) == 8 + 10 + 5 * 10 + 8
    header, first, *_ = _block(report.table(), "NUTS vs exact posterior")
    assert header.startswith("feature     mean z") and len(header) == 8 + 4 * 10 + 2 * 12 + 10
    _check_rhat_table(report, ["b", "m"])
    _check_exact_table(report, ["b", "m"])
