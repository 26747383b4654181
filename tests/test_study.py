"""Simulation studies: chunked resumable store, reproducibility across chunks/devices/processes, report.

Small studies (12 datasets, 2 chains, 150 warm-up + 150 draws) keep this file fast; NUTS is
checked against the exact posterior with tolerances of 5 Monte-Carlo standard errors.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
import zarr

from bayeslin_jax import diagnostics, simulate, store
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.errors import BayeslinError, StoreError, StoreWarning
from bayeslin_jax.priors import tutorial_spec
from bayeslin_jax.studies import run as study
from bayeslin_jax.studies.report import Checks, failed_checks, summarize, write_report

SPEC = tutorial_spec()
CONFIG = NutsConfig(num_warmup=150, num_draws=150, num_chains=2)
B, SEED, CHUNK = 12, 3, 4
# The same study through the command line (used by the subprocess tests).
CLI_ARGS = ["--datasets", str(B), "--seed", str(SEED), "--chains", "2", "--warmup", "150", "--draws", "150",
            "--no-progress"]
DRIVER = (
    "import argparse, sys\n"
    "from bayeslin_jax.commands import study\n"
    "p = argparse.ArgumentParser(); study.add_arguments(p)\n"
    "sys.exit(study.run(p.parse_args(sys.argv[1:])))\n"
)
ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    """The parent's environment for a CLI subprocess; of XLA_FLAGS only the vector ISA is kept, so a
    run under ``--xla_cpu_max_isa=...`` compares like with like."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    isa = [f for f in os.environ.get("XLA_FLAGS", "").split() if f.startswith("--xla_cpu_max_isa")]
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **extra)
    env["XLA_FLAGS"] = " ".join([*isa, extra.get("XLA_FLAGS", "")]).strip()
    return env


def _cli(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, *CLI_ARGS, *args], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _assert_same_results(a: xr.Dataset, b: xr.Dataset) -> None:
    """Bit-identical data variables and coords (timings and run records live elsewhere)."""
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, xr.Dataset]:
    """An uninterrupted in-process study with full draws saved."""
    path = tmp_path_factory.mktemp("study") / "ref.zarr"
    ds = study.run_study(path, SPEC, CONFIG, num_datasets=B, seed=SEED, chunk_size=CHUNK, save_draws=True,
                         progress=False)
    return path, ds.load()


# ----------------------------------------------------------------------------- store (no JAX)


def _fake_compute(indices: np.ndarray, fail_from: int | None = None) -> xr.Dataset:
    if fail_from is not None and indices[0] >= fail_from:
        raise RuntimeError("simulated crash")
    values = np.stack([indices * 0.5, indices**2.0], axis=-1)
    return xr.Dataset({"v": (("dataset", "feature"), values), "n": ("dataset", indices.astype(np.int32)),
                       "scale": ("feature", [1.0, 2.0])}, coords={"dataset": indices, "feature": ["b", "m"]})


def test_store_resumes_after_crash_and_equals_uninterrupted(tmp_path) -> None:
    full = store.run_chunked(tmp_path / "full.zarr", meta={"a": 1}, num_items=10, chunk_size=3,
                             compute=_fake_compute, progress=False).load()
    path = tmp_path / "crash.zarr"
    with pytest.raises(RuntimeError):
        store.run_chunked(path, meta={"a": 1}, num_items=10, chunk_size=3,
                          compute=lambda i: _fake_compute(i, fail_from=6), progress=False)
    assert store.done_mask(path).tolist() == [True, True, False, False]
    partial = store.open_store(path, allow_incomplete=True)
    assert partial["dataset"].values.tolist() == list(range(6)) and not partial.attrs["complete"]
    with pytest.raises(BayeslinError, match="incomplete"):
        store.open_store(path)
    calls = []
    resumed = store.run_chunked(path, meta={"a": 1}, num_items=10, chunk_size=3, progress=False,
                                compute=lambda i: calls.append(int(i[0])) or _fake_compute(i)).load()
    assert calls == [6, 9]  # only the missing chunks
    xr.testing.assert_identical(resumed.drop_attrs(), full.drop_attrs())
    np.testing.assert_array_equal(resumed["v"].values[:, 1], np.arange(10.0) ** 2)


def test_store_recomputes_chunk_whose_data_was_written_without_marker(tmp_path, monkeypatch) -> None:
    """A kill between writing a chunk's data and flagging it done: the chunk is redone."""
    path = tmp_path / "s.zarr"
    real_mark = store._mark_done

    def mark_then_die(p, chunk, *args):
        if chunk == 1:
            raise KeyboardInterrupt  # dies after chunk 1's data is on disk, before its flag
        real_mark(p, chunk, *args)

    monkeypatch.setattr(store, "_mark_done", mark_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.run_chunked(path, meta={}, num_items=7, chunk_size=3, compute=_fake_compute, progress=False)
    monkeypatch.setattr(store, "_mark_done", real_mark)
    assert store.done_mask(path).tolist() == [True, False, False]
    calls = []
    ds = store.run_chunked(path, meta={}, num_items=7, chunk_size=3, progress=False,
                           compute=lambda i: calls.append(int(i[0])) or _fake_compute(i))
    assert calls == [3, 6]
    np.testing.assert_array_equal(ds["n"].values, np.arange(7))
    log = store.chunk_log(path)
    assert log["chunk_done"].values.tolist() == [1, 1, 1] and np.all(log["chunk_compute_seconds"].values >= 0)


def test_store_refuses_other_settings_and_foreign_paths(tmp_path) -> None:
    path = tmp_path / "s.zarr"
    store.run_chunked(path, meta={"seed": 0, "spec": {"sigma": 0.1}}, num_items=4, chunk_size=2,
                      compute=_fake_compute, progress=False)
    with pytest.raises(BayeslinError, match=r"meta\.spec\.sigma \(store: 0\.1, now: 0\.2\)"):
        store.run_chunked(path, meta={"seed": 0, "spec": {"sigma": 0.2}}, num_items=4, chunk_size=2,
                          compute=_fake_compute)
    with pytest.raises(BayeslinError, match="num_items"):
        store.run_chunked(path, meta={"seed": 0, "spec": {"sigma": 0.1}}, num_items=5, chunk_size=2,
                          compute=_fake_compute)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(BayeslinError, match="not a bayeslin store"):
        store.run_chunked(tmp_path / "other", meta={}, num_items=4, chunk_size=2, compute=_fake_compute)
    with pytest.raises(BayeslinError, match="chunk size"):
        store.run_chunked(tmp_path / "x.zarr", meta={}, num_items=4, chunk_size=0, compute=_fake_compute)


# ----------------------------------------------------------------------------- diagnostics


def test_stored_diagnostics_equal_arviz_on_the_draws(reference) -> None:
    """The store's R-hat/ESS/MCSE are ArviZ's, computed on the right axes of each dataset's draws."""
    _, ds = reference
    draws = ds["draws_w"].transpose("chain", "draw", "dataset", "feature")
    for key, got in {
        "rhat": azs.rhat(draws, sample_dims=["chain", "draw"]),
        "ess_bulk": azs.ess(draws, sample_dims=["chain", "draw"], method="bulk"),
        "ess_tail": azs.ess(draws, sample_dims=["chain", "draw"], method="tail"),
        "mcse_sd": azs.mcse(draws, sample_dims=["chain", "draw"], method="sd"),
    }.items():
        np.testing.assert_allclose(ds[key].values, got.transpose("dataset", "feature").values, rtol=1e-6, err_msg=key)
    per_dataset = np.moveaxis(ds["draws_w"].values, -1, 1)  # (dataset, feature, chain, draw)
    threaded = diagnostics.chain_diagnostics_parallel(per_dataset, workers=2, block=2)
    np.testing.assert_array_equal(threaded["ess_tail"], ds["ess_tail"].values)


# ----------------------------------------------------------------------------- study


def test_study_matches_simulation_and_exact_posterior(reference) -> None:
    _, ds = reference
    data = simulate.prior_data(SEED, np.arange(B), SPEC)
    np.testing.assert_array_equal(ds["y"].values, np.asarray(data.y))
    np.testing.assert_array_equal(ds["true_w"].values, np.asarray(data.w))
    draws = ds["draws_w"].values.reshape(B, -1, 2).astype(float)
    np.testing.assert_allclose(ds["nuts_mean"].values, draws.mean(1), rtol=1e-10)
    # NUTS agrees with the exact conjugate posterior within 5 MCSE (mean and sd), every dataset.
    assert np.all(np.abs(ds["nuts_mean"] - ds["exact_mean"]) < 5 * ds["mcse_mean"])
    assert np.all(np.abs(ds["nuts_sd"] - ds["exact_sd"]) < 5 * ds["mcse_sd"])
    assert np.all(np.diff(ds["nuts_quantile"].values, axis=-1) > 0)
    assert int(ds["divergences"].sum()) == 0 and int(ds["max_tree_depth_hits"].sum()) == 0
    assert np.all(ds["step_size"].values > 0) and ds["step_size"].shape == (B, 2)
    meta = ds.attrs["meta"]
    assert meta["seed"] == SEED and meta["spec"] == SPEC.describe() and meta["versions"]["jax"]
    assert len(ds.attrs["runs"]) == 1 and len(ds.attrs["runs"][0]["devices"]) == 1


def test_chunk_size_does_not_change_results(reference, tmp_path) -> None:
    _, ref = reference
    ds = study.run_study(tmp_path / "c5.zarr", SPEC, CONFIG, num_datasets=B, seed=SEED, chunk_size=5,
                         save_draws=True, progress=False)
    _assert_same_results(ds, ref)


def test_mismatched_study_store_is_refused(reference) -> None:
    path, _ = reference
    with pytest.raises(BayeslinError, match=r"meta\.seed \(store: 3, now: 4\)"):
        study.run_study(path, SPEC, CONFIG, num_datasets=B, seed=SEED + 1, save_draws=True, progress=False)
    with pytest.raises(BayeslinError, match=r"meta\.spec\.prior\.kind"):
        study.run_study(path, tutorial_spec("mvn"), CONFIG, num_datasets=B, seed=SEED, save_draws=True,
                        progress=False)
    with pytest.raises(BayeslinError, match="tutorial simulator"):
        study.run_study(path, tutorial_spec(degree=3), CONFIG, num_datasets=B, simulator="tutorial")


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_store(reference, tmp_path) -> None:
    _, ref = reference
    path = tmp_path / "killed.zarr"
    # Chunks of 2 (the reference used 4): six chunks leave time to kill mid-run.
    proc = _cli("--out", str(path), "--chunk-size", "2", "--save-draws")
    deadline = time.monotonic() + 120
    while not (store.is_store(path) and store.done_mask(path).any()):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no chunk finished within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = store.done_mask(path)
    assert 1 <= done.sum() < done.size, done  # killed mid-run
    finished_before = store.chunk_log(path)["chunk_finished_at"].values[done]
    # Rerun the same settings (in-process: same code path as the CLI, already compiled here).
    ds = study.run_study(path, SPEC, CONFIG, num_datasets=B, seed=SEED, save_draws=True, progress=False)
    _assert_same_results(ds, ref)
    np.testing.assert_array_equal(store.chunk_log(path)["chunk_finished_at"].values[done], finished_before)
    assert [r["chunks_before"] for r in ds.attrs["runs"]] == [int(done.sum())]  # the killed run left no record


def test_damaged_study_chunk_is_refused_by_report_and_repaired_by_rerun(reference, tmp_path) -> None:
    """Flipped bytes in one chunk of ``rhat``: report and open_study name it; a rerun recomputes just it."""
    ref_path, ref = reference
    path = tmp_path / "damaged.zarr"
    shutil.copytree(ref_path, path)
    rhat = zarr.open_group(str(path), mode="r")["rhat"]
    file = path / "rhat" / rhat.metadata.encode_chunk_key((1, 0))
    data = bytearray(file.read_bytes())
    data[len(data) // 2 :: 7] = bytes(b ^ 0x5A for b in data[len(data) // 2 :: 7])
    file.write_bytes(bytes(data))
    expected = r"chunk 1 \(datasets 4-7\) of variable 'rhat' is altered \(checksum mismatch\)"
    with pytest.raises(StoreError, match=expected):
        write_report(path, tmp_path / "report")
    with pytest.raises(StoreError, match=expected):
        study.open_study(path)
    finished = store.chunk_log(path)["chunk_finished_at"].values
    with pytest.warns(StoreWarning, match=expected + ": recomputing it"):
        ds = study.run_study(path, SPEC, CONFIG, num_datasets=B, seed=SEED, chunk_size=CHUNK, save_draws=True,
                             progress=False)
    after = store.chunk_log(path)["chunk_finished_at"].values
    assert (after != finished).tolist() == [False, True, False]  # only the damaged chunk was recomputed
    _assert_same_results(ds.load(), ref)


def test_two_cpu_devices_give_identical_results(reference, tmp_path) -> None:
    _, ref = reference
    path = tmp_path / "dev2.zarr"
    proc = _cli("--out", str(path), "--chunk-size", "6", "--save-draws",
                XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    ds = study.open_study(path)
    assert len(ds.attrs["runs"][0]["devices"]) == 2
    _assert_same_results(ds, ref)


def test_two_processes_with_jax_distributed_on_localhost(reference, tmp_path) -> None:
    _, ref = reference
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    out_dir = tmp_path / "dist"
    procs = [
        _cli("--out", str(out_dir), "--chunk-size", str(CHUNK), "--save-draws", "--distributed",
             "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i))
        for i in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    parts = sorted(out_dir.glob("part-*.zarr"))
    assert [p.name for p in parts] == ["part-00000-of-00002.zarr", "part-00001-of-00002.zarr"]
    assert study.open_study(parts[1])["dataset"].values.tolist() == list(range(6, 12))
    ds = study.open_study(out_dir)
    assert ds.attrs["complete"]
    _assert_same_results(ds, ref)
    with pytest.raises(BayeslinError, match="2 parts but found 1"):
        study.open_study([parts[0]])


# ----------------------------------------------------------------------------- report


def test_report_on_small_study(reference, tmp_path) -> None:
    path, ds = reference
    paths = write_report(path, tmp_path / "report")
    text = paths["text"].read_text()
    assert f"datasets: {B}" in text and "standardized error" in text and "failed checks" in text
    assert paths["figure"].stat().st_size > 10_000
    summary = summarize(study.open_study(path))
    z = ((ds["nuts_mean"] - ds["exact_mean"]) / ds["exact_sd"]).sel(feature="m").values
    assert summary["exact"]["m"]["std_error"]["max_abs"] == pytest.approx(np.abs(z).max())
    assert summary["divergences"]["total"] == 0
    # Short chains: R-hat > 1.01 on some datasets; the report lists exactly those that fail.
    failed = failed_checks(ds, Checks())
    worst_rhat = np.fmax(ds["rhat"].max("feature").values, 0)
    np.testing.assert_array_equal(failed["rhat"].values, worst_rhat > 1.01)
    assert summary["failed"]["datasets"] == [int(i) for i in ds["dataset"].values[failed["any"].values]]
    lenient = summarize(ds, Checks(max_rhat=2.0, min_ess_per_chain=1.0))
    assert lenient["failed"]["count"] == 0


@pytest.mark.gpu
def test_gpu_study_is_chunk_invariant_and_matches_exact(tmp_path) -> None:
    """On a GPU, two chunk sizes: data, truth and exact posterior bit-identical (one compiled
    per-dataset program); NUTS runs in lock-step vmap blocks whose shape follows the chunk, so its
    draws may differ in rounding: both runs must agree with the exact posterior within 5 MCSE."""
    import jax

    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")
    runs = [study.run_study(tmp_path / f"g{c}.zarr", SPEC, CONFIG, num_datasets=64, seed=SEED, chunk_size=c,
                            progress=False) for c in (16, 64)]
    for name in ("x", "y", "true_w", "exact_mean", "exact_sd"):
        np.testing.assert_array_equal(runs[0][name].values, runs[1][name].values, err_msg=name)
    for ds in runs:
        assert np.all(np.abs(ds["nuts_mean"] - ds["exact_mean"]) < 5 * ds["mcse_mean"])
