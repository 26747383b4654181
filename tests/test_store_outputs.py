"""Issue 32, the study/SBC/CLI side: the sampler method is part of the identity, reports and SBC never depend
on rebuildable bookkeeping, outputs survive a full disk, and hostile CLI cases are one line with their status.

Tiny runs (4 datasets, 2 chains, 20 warm-up + 20 draws); one study and one SBC store per module.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from bayeslin_jax.core import atomic
from bayeslin_jax.core.errors import BayeslinError, StoreWarning
from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.interfaces import cli
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows import store
from bayeslin_jax.workflows.sbc import run as sbc
from bayeslin_jax.workflows.studies import report as study_report
from bayeslin_jax.workflows.studies import run as study

SPEC = tutorial_spec()
NUTS = NutsConfig(num_warmup=20, num_draws=20, num_chains=2, method="map")
B, CHUNK, SEED = 4, 2, 5


def expect_error(capsys, argv: list[str], status: int, *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert code == status, err
    return err


def _study(path: Path, nuts: NutsConfig = NUTS) -> xr.Dataset:
    config = study.StudyConfig(num_datasets=B, seed=SEED, nuts=nuts, chunk_size=CHUNK)
    return study.run_study(path, SPEC, config, progress=False)


def _sbc(path: Path, nuts: NutsConfig = NUTS) -> xr.Dataset:
    config = sbc.SbcConfig(engine="nuts", num_ranks=19, nuts=nuts)
    return sbc.run_sbc(B, seed=SEED, sim_spec=SPEC, config=config, chunk_size=CHUNK, store=path)


@pytest.fixture(scope="module")
def study_store(tmp_path_factory) -> tuple[Path, xr.Dataset]:
    path = tmp_path_factory.mktemp("study") / "s.zarr"
    return path, _study(path).load()


def _fake_sbc_chunk(indices, **kwargs) -> xr.Dataset:
    """Stands in for the NUTS SBC chunk where only the store's identity matters (no compilation)."""
    return xr.Dataset({"rank": (("dataset", "quantity"), np.ones((len(indices), 2), np.int64))},
                      coords={"dataset": indices, "quantity": ["b", "m"]})


@pytest.fixture
def sbc_store(tmp_path, monkeypatch) -> tuple[Path, xr.Dataset]:
    monkeypatch.setattr(sbc, "sbc_chunk", _fake_sbc_chunk)
    path = tmp_path / "made" / "b.zarr"
    return path, _sbc(path)


@pytest.fixture(scope="module")
def exact_sbc() -> xr.Dataset:
    return sbc.run_sbc(8, seed=SEED, sim_spec=SPEC, config=sbc.SbcConfig(engine="exact", num_ranks=19))


def _copy(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / path.name
    shutil.copytree(path, out)
    return out


def _damage_timing(path: Path, chunk: int = 1) -> None:
    array = zarr.open_group(str(path), mode="r")["chunk_compute_seconds"]
    (path / "chunk_compute_seconds" / array.metadata.encode_chunk_key((chunk,))).write_bytes(b"garbage")


# --------------------------------------------------------------------------- 3. the method is the identity


def test_both_store_kinds_record_the_same_sampler_identity() -> None:
    expected = {**NUTS.identity(), "method": "map"}
    assert study.study_meta(SPEC, study.StudyConfig(num_datasets=B, nuts=NUTS))["nuts"] == expected
    assert sbc.SbcConfig(engine="nuts", num_ranks=19, nuts=NUTS).describe()["nuts"] == expected
    auto = dataclasses.replace(NUTS, method="auto", batch_size=7)  # auto resolves to map on CPU; batch_size is speed
    assert store.sampler_identity(auto) == expected
    assert store.sampler_identity(dataclasses.replace(NUTS, method="vmap"))["method"] == "vmap"


@pytest.mark.parametrize("method", ["vmap", "barrier_free"])
def test_study_resume_with_another_method_is_refused(study_store, tmp_path, method) -> None:
    path = _copy(study_store[0], tmp_path)
    with pytest.raises(BayeslinError, match=rf'meta\.nuts\.method \(store: "map", now: "{method}"\)') as err:
        _study(path, dataclasses.replace(NUTS, method=method, batch_size=2))
    assert "\n" not in str(err.value)


def test_study_resume_with_another_batch_size_is_accepted(study_store, tmp_path) -> None:
    path = _copy(study_store[0], tmp_path)
    resumed = _study(path, dataclasses.replace(NUTS, batch_size=3)).load()
    xr.testing.assert_identical(resumed.drop_attrs(), study_store[1].drop_attrs())


def test_sbc_resume_with_another_method_is_refused_and_batch_size_accepted(sbc_store, tmp_path) -> None:
    path = _copy(sbc_store[0], tmp_path)
    with pytest.raises(BayeslinError, match=r'meta\.config\.nuts\.method \(store: "map", now: "vmap"\)'):
        _sbc(path, dataclasses.replace(NUTS, method="vmap"))
    resumed = _sbc(path, dataclasses.replace(NUTS, batch_size=3))
    xr.testing.assert_identical(resumed.drop_attrs(), sbc_store[1].drop_attrs())


def _interrupted_then_resumed(tmp_path: Path, run, first: NutsConfig, second: NutsConfig, monkeypatch):
    """Crash ``run`` after its first chunk with ``first``, resume it with ``second``."""
    path = tmp_path / "r.zarr"
    real = store._mark_done
    calls = []

    def crash_after_one(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(store, "_mark_done", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(path, first)
    monkeypatch.undo()
    assert store.done_mask(path).tolist() == [True, False]
    return run(path, second)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["study", "sbc"])
def test_vmap_resume_across_batch_sizes_is_bit_identical(tmp_path, monkeypatch, kind) -> None:
    run = _study if kind == "study" else _sbc
    vmap = dataclasses.replace(NUTS, method="vmap", batch_size=2)
    whole = run(tmp_path / "whole.zarr", vmap)
    # batch 2 -> 4 (a block of ONE run rounds differently in vmap: the engine then compiles an unbatched kernel;
    # see the report of issue 32)
    resumed = _interrupted_then_resumed(tmp_path, run, vmap, dataclasses.replace(vmap, batch_size=4), monkeypatch)
    xr.testing.assert_identical(resumed.load().drop_attrs(), whole.load().drop_attrs())


# --------------------------------------------------------------------------- 2. reports never need bookkeeping


def test_report_and_open_study_warn_about_damaged_timings_and_succeed(study_store, tmp_path, capsys) -> None:
    path = _copy(study_store[0], tmp_path)
    _damage_timing(path)
    with pytest.warns(StoreWarning, match="chunk_compute_seconds"):
        study.open_study(path)
    code = main(["report", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err and all(line.startswith("warning: ") for line in err.splitlines()), err  # no source lines
    assert json.loads((tmp_path / "r" / "report.json").read_text())["datasets"] == B


# --------------------------------------------------------------------------- 4. outputs on a full disk


def _disk_full_after(monkeypatch, limit: int) -> None:
    written = [0]
    real = os.write

    def write(fd, data):
        if written[0] + len(data) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return real(fd, data)

    monkeypatch.setattr(atomic.os, "write", write)


def test_report_on_a_full_disk_keeps_the_previous_report_byte_for_byte(study_store, tmp_path, capsys,
                                                                       monkeypatch) -> None:
    out = tmp_path / "r"
    assert main(["report", str(study_store[0]), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"report.txt", "report.json", "report.png", "failed.csv"}
    capsys.readouterr()
    text = len(before["report.txt"])
    for limit in (0, 100, text + 10):  # in report.txt, then in report.json (the issue: it was cut to 8,192 bytes)
        with monkeypatch.context() as m:
            _disk_full_after(m, limit)
            expect_error(capsys, ["report", str(study_store[0]), "--out", str(out)], 3, "cannot write", "disk full",
                         str(out / "report."))
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert sorted(os.listdir(tmp_path)) == ["r"]  # no temporary folder or file left
    with monkeypatch.context() as m:  # the figure: matplotlib writes it, the fsync fails
        m.setattr(atomic, "_fsync_file", lambda path: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        expect_error(capsys, ["report", str(study_store[0]), "--out", str(out)], 3, "cannot write", "disk full")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_report_thresholds_that_switch_checks_off_are_refused(capsys, tmp_path) -> None:
    for flags, fragment in ((["--max-rhat", "1e9"], "max R-hat must lie in (1, 2]"),
                            (["--max-rhat", "1"], "max R-hat must lie in (1, 2]"),
                            (["--max-rhat", "nan"], "max R-hat must be a finite number"),
                            (["--min-ess-per-chain", "-1"], "min ESS per chain must lie in [1, 1e9]"),
                            (["--max-abs-mcse-z", "0"], "max |MCSE z| must lie in (0, 1e6]")):
        expect_error(capsys, ["report", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "r"), *flags], 2,
                     fragment)
    with pytest.raises(BayeslinError, match="max divergences must be a non-negative integer"):
        study_report.Checks(max_divergences=-1)


def test_sbc_json_and_plots_on_a_full_disk_keep_the_previous_files(exact_sbc, tmp_path, monkeypatch) -> None:
    ds = exact_sbc
    from bayeslin_jax.workflows.sbc import stats as sbc_stats
    from bayeslin_jax.workflows.sbc.plots import save_plots

    report = sbc_stats.summarize(ds, alpha=0.05)
    target = tmp_path / "v.json"
    target.write_text("previous")
    with monkeypatch.context() as m:
        _disk_full_after(m, 10)
        with pytest.raises(BayeslinError, match=r"cannot write .*v\.json: disk full"):
            report.to_json(target)
    assert target.read_text() == "previous"
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "sbc_rank_hist.png").write_bytes(b"previous png")
    with monkeypatch.context() as m:
        m.setattr(atomic, "_fsync_file", lambda path: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(BayeslinError, match=r"cannot write .*sbc_\w+\.png: disk full"):
            save_plots(ds, plots)
    assert (plots / "sbc_rank_hist.png").read_bytes() == b"previous png"
    assert sorted(os.listdir(plots)) == ["sbc_rank_hist.png"]


def test_plots_save_is_atomic(tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from bayeslin_jax.diagnostics.plots import save

    target = tmp_path / "fig.png"
    target.write_bytes(b"previous")
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    with monkeypatch.context() as m:
        m.setattr(atomic, "_fsync_file", lambda path: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(BayeslinError, match=r"cannot write .*fig\.png: disk full"):
            save(fig, target)
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["fig.png"]
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    save(fig, target)
    assert target.read_bytes().startswith(b"\x89PNG")


SBC_ARGS = ["--simulations", str(B), "--seed", str(SEED), "--engine", "exact", "--num-ranks", "19", "--chunk-size",
            str(CHUNK), "--no-progress"]


def test_sbc_cli_writes_json_despite_damaged_timings_and_exits_3_on_a_full_disk(tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    out, js = tmp_path / "b.zarr", tmp_path / "v.json"
    argv = ["sbc", "--out", str(out), "--json", str(js), *SBC_ARGS]
    assert main(argv) in (0, 1)
    first = js.read_bytes()
    _damage_timing(out)
    js.unlink()
    capsys.readouterr()
    assert main(argv) in (0, 1)  # the resume rebuilds the chunk; the verdicts are written
    err = capsys.readouterr().err
    assert js.read_bytes() == first and "recomputing" in err and "Traceback" not in err, err
    with monkeypatch.context() as m:
        _disk_full_after(m, 0)
        expect_error(capsys, argv, 3, f"cannot write {js}: disk full")
    assert js.read_bytes() == first


# --------------------------------------------------------------------------- 6. memory, 7. hostile CLI input


def test_study_of_2_to_the_32_datasets_is_refused_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BAYESLIN_MEMORY_LIMIT", "8GB")
    expect_error(capsys, ["study", "--datasets", str(2**32), "--out", str(tmp_path / "s.zarr"), "--no-progress"], 2,
                 f"a store of {2**32} datasets would need ", "GB for its dataset index", "(limit 8.0 GB",
                 "split the work")
    assert not (tmp_path / "s.zarr").exists()


def test_chunk_that_does_not_fit_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BAYESLIN_MEMORY_LIMIT", "1MB")
    with pytest.raises(BayeslinError, match=r"^a chunk of 4 datasets would need .* for its draws .*lower --chunk"):
        study.check_study_memory(10, 4, NutsConfig(num_draws=10**4), 2, False)


@pytest.mark.parametrize("command", ["study", "sbc"])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seeds_outside_the_32_bit_range_are_refused(tmp_path, capsys, command, seed) -> None:
    expect_error(capsys, [command, "--seed", seed, "--out", str(tmp_path / "s.zarr")], 2,
                 f"--seed must be an integer in [0, 2^32) = [0, 4294967295], got {seed}")
    with pytest.raises(BayeslinError, match=r"seed must be an integer in \[0, 2\^32\)"):
        sbc.run_sbc(2, seed=int(seed), sim_spec=SPEC, config=sbc.SbcConfig(engine="exact"))


def test_model_file_without_the_observed_site_is_named(tmp_path, capsys) -> None:
    model = tmp_path / "noy.py"
    model.write_text("import numpyro, numpyro.distributions as dist\n"
                     "def model(x, y=None):\n"
                     "    w = numpyro.sample('w', dist.Normal(0, 1))\n"
                     "    numpyro.sample('obs', dist.Normal(w * x, 1.0), obs=y)\n")
    expect_error(capsys, ["study", "--model", f"{model}:model", "--datasets", "2", "--warmup", "20", "--draws", "20",
                          "--out", str(tmp_path / "s.zarr"), "--no-progress"], 2,
                 "model 'model' has no observed site 'y'")


def test_model_file_calling_sys_exit_is_an_error(tmp_path, capsys) -> None:
    model = tmp_path / "exits.py"
    model.write_text("import sys\nsys.exit(0)\n")
    expect_error(capsys, ["study", "--model", f"{model}:model", "--datasets", "2", "--out", str(tmp_path / "s.zarr")],
                 2, "the model file called sys.exit(0)")
    assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(SystemExit) as done:  # --help still ends the program normally
        main(["--help"])
    assert done.value.code == 0


def _command(monkeypatch, body) -> None:
    from bayeslin_jax.interfaces.commands import study as command

    monkeypatch.setattr(command, "run", body)


def test_sigterm_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "s.zarr"

    def terminated(args):
        Path(args.out).mkdir()
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    _command(monkeypatch, terminated)
    before = signal.getsignal(signal.SIGTERM)
    expect_error(capsys, ["study", "--out", str(out)], 143, f"terminated; the store at {out} is resumable")
    assert signal.getsignal(signal.SIGTERM) == before  # restored after main
    assert cli.describe_failure(cli.Terminated())[0] == 143


def test_warnings_print_one_line_without_source(tmp_path, capsys, monkeypatch) -> None:
    def warns(args):
        warnings.warn("store X: chunk 1 is damaged: recomputing it", StoreWarning, stacklevel=1)
        return 0

    _command(monkeypatch, warns)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["study", "--out", str(tmp_path / "s.zarr")]) == 0
    assert capsys.readouterr().err == "warning: store X: chunk 1 is damaged: recomputing it\n"


def test_sys_exit_inside_a_command_is_an_error_not_success(tmp_path, capsys, monkeypatch) -> None:
    _command(monkeypatch, lambda args: (_ for _ in ()).throw(SystemExit(0)))
    expect_error(capsys, ["study", "--out", str(tmp_path / "s.zarr")], 2, "the model file called sys.exit(0)")


def test_chunk_log_of_a_study_is_finite(study_store) -> None:
    log = store.chunk_log(study_store[0])
    assert np.isfinite(log["chunk_compute_seconds"].values).all() and log.sizes["chunk"] == B // CHUNK
