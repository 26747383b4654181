"""Simulation studies: chunked resumable store, reproducibility across chunks/devices/processes, report.

Small studies (12 datasets, 2 chains, 150 warm-up + 150 draws) keep this file fast; NUTS is
checked against the exact posterior with tolerances of 5 Monte-Carlo standard errors.
"""

from __future__ import annotations

import json
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

from bayeslin_jax.core import nig, simulate
from bayeslin_jax.core.errors import BayeslinError, StoreError, StoreWarning
from bayeslin_jax.core.priors import ModelSpec, half_normal_noise, tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.interfaces.cli import main
from bayeslin_jax.workflows import store
from bayeslin_jax.workflows.studies import run as study
from bayeslin_jax.workflows.studies.report import Checks, failed_checks, summarize, write_report

SPEC = tutorial_spec()
CONFIG = NutsConfig(num_warmup=150, num_draws=150, num_chains=2)
B, SEED, CHUNK = 12, 3, 4
# The same study through the command line (used by the subprocess tests).
CLI_ARGS = ["--datasets", str(B), "--seed", str(SEED), "--chains", "2", "--warmup", "150", "--draws", "150",
            "--no-progress"]
DRIVER = (
    "import argparse, sys\n"
    "from bayeslin_jax.interfaces.commands import study\n"
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


def _config(**settings) -> study.StudyConfig:
    """The module's study settings (sampler CONFIG unless given)."""
    return study.StudyConfig(**{"nuts": CONFIG, **settings})


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, xr.Dataset]:
    """An uninterrupted in-process study with full draws saved."""
    path = tmp_path_factory.mktemp("study") / "ref.zarr"
    settings = _config(num_datasets=B, seed=SEED, chunk_size=CHUNK, save_draws=True)
    ds = study.run_study(path, SPEC, settings, progress=False)
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
    """The store's R-hat/ESS/MCSE are ArviZ's (to float32 rounding), on the right axes of each dataset's draws."""
    _, ds = reference
    draws = ds["draws_w"].transpose("chain", "draw", "dataset", "feature")
    for key, got in {
        "rhat": azs.rhat(draws, sample_dims=["chain", "draw"]),
        "ess_bulk": azs.ess(draws, sample_dims=["chain", "draw"], method="bulk"),
        "ess_tail": azs.ess(draws, sample_dims=["chain", "draw"], method="tail"),
        "mcse_mean": azs.mcse(draws, sample_dims=["chain", "draw"], method="mean"),
        "mcse_sd": azs.mcse(draws, sample_dims=["chain", "draw"], method="sd"),
    }.items():
        # computed on the device in float32 (diagnostics.device; its own tests bound it against ArviZ)
        np.testing.assert_allclose(ds[key].values, got.transpose("dataset", "feature").values, rtol=3e-4, err_msg=key)


# ----------------------------------------------------------------------------- study


@pytest.mark.slow  # compiles the per-draw variant (10 s); the engine-level equality is in test_barrier_free
def test_sampler_summaries_from_the_device_equal_those_of_the_per_draw_statistics(reference) -> None:
    """The study keeps the engine's per-run summaries (draw_stats=False); the same datasets sampled with every
    draw's statistics give the same draws and, by the formulas studies used before, the same store values."""
    _, ds = reference
    indices = ds["dataset"].values
    data = simulate.get_simulator("prior")(SEED, indices, SPEC)
    full = study.sample_on_devices(SEED, SPEC.basis(data.x), data.y, SPEC, CONFIG, indices, [None], draw_stats=True)
    np.testing.assert_allclose(full.samples["w"], ds["draws_w"].values, rtol=1e-6, atol=0)
    stats = full.stats  # (B, C, S) per draw: what the study stored until the engine reduced them on the device
    old = {
        "divergences": stats["diverging"].sum((1, 2)),
        "max_tree_depth_hits": (stats["tree_depth"] >= CONFIG.max_tree_depth).sum((1, 2)),
        "mean_tree_depth": stats["tree_depth"].mean((1, 2), dtype=float),
        "mean_leapfrog": stats["n_steps"].mean((1, 2), dtype=float),
        "mean_accept": stats["acceptance_rate"].mean((1, 2), dtype=float),
        "step_size": stats["step_size"][:, :, -1],
    }
    for name, value in old.items():
        if np.issubdtype(value.dtype, np.integer):
            np.testing.assert_array_equal(ds[name].values, value, err_msg=name)
        else:  # float32 means on the device: float32 rounding of the same sums
            np.testing.assert_allclose(ds[name].values, value, rtol=2e-7 * CONFIG.num_draws, err_msg=name)
    assert ds["mean_tree_depth"].dtype == np.float64 and ds["divergences"].dtype == np.int32


def test_study_matches_simulation_and_exact_posterior(reference) -> None:
    _, ds = reference
    data = simulate.prior_data(SEED, np.arange(B), SPEC)
    np.testing.assert_array_equal(ds["y"].values, np.asarray(data.y))
    np.testing.assert_array_equal(ds["true_w"].values, np.asarray(data.w))
    draws = ds["draws_w"].values.reshape(B, -1, 2).astype(float)
    # summarised in float32 on the device (blocked sums): float32 rounding of the draws' scale
    np.testing.assert_allclose(ds["nuts_mean"].values, draws.mean(1), rtol=0, atol=1e-6 * np.abs(draws).max())
    # NUTS agrees with the exact conjugate posterior within 5 MCSE (mean and sd), every dataset.
    assert np.all(np.abs(ds["nuts_mean"] - ds["exact_mean"]) < 5 * ds["mcse_mean"])
    assert np.all(np.abs(ds["nuts_sd"] - ds["exact_sd"]) < 5 * ds["mcse_sd"])
    assert np.all(np.diff(ds["nuts_quantile"].values, axis=-1) > 0)
    assert int(ds["divergences"].sum()) == 0 and int(ds["max_tree_depth_hits"].sum()) == 0
    assert np.all(ds["step_size"].values > 0) and ds["step_size"].shape == (B, 2)
    meta = ds.attrs["meta"]
    assert meta["seed"] == SEED and meta["spec"] == SPEC.describe() and meta["versions"]["jax"]
    assert len(ds.attrs["runs"]) == 1 and len(ds.attrs["runs"][0]["devices"]) == 1


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_chunk_size_does_not_change_results(reference, tmp_path) -> None:
    _, ref = reference
    settings = _config(num_datasets=B, seed=SEED, chunk_size=5, save_draws=True)
    ds = study.run_study(tmp_path / "c5.zarr", SPEC, settings, progress=False)
    _assert_same_results(ds, ref)


def test_mismatched_study_store_is_refused(reference) -> None:
    path, _ = reference
    with pytest.raises(BayeslinError, match=r"meta\.seed \(store: 3, now: 4\)"):
        study.run_study(path, SPEC, _config(num_datasets=B, seed=SEED + 1, save_draws=True), progress=False)
    with pytest.raises(BayeslinError, match=r"meta\.spec\.prior\.kind"):
        study.run_study(path, tutorial_spec("mvn"), _config(num_datasets=B, seed=SEED, save_draws=True), progress=False)
    with pytest.raises(BayeslinError, match="tutorial simulator"):
        study.run_study(path, tutorial_spec(degree=3), _config(num_datasets=B, simulator="tutorial"))


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
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
    ds = study.run_study(path, SPEC, _config(num_datasets=B, seed=SEED, save_draws=True), progress=False)
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
        settings = _config(num_datasets=B, seed=SEED, chunk_size=CHUNK, save_draws=True)
        ds = study.run_study(path, SPEC, settings, progress=False)
    after = store.chunk_log(path)["chunk_finished_at"].values
    assert (after != finished).tolist() == [False, True, False]  # only the damaged chunk was recomputed
    _assert_same_results(ds.load(), ref)


@pytest.mark.slow  # ~12 s; the uneven split over two devices (a subprocess) stays in the default suite
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


@pytest.mark.slow  # two JAX processes (~15 s); two devices in one process stay in the default suite
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


def test_padded_last_chunk_gives_the_unpadded_numbers(reference, tmp_path, monkeypatch) -> None:
    """The accelerator path (NUTS on a short last chunk padded to full size), forced on CPU: 6 datasets in
    chunks of 4 run NUTS on [0..3] and [4, 5, 5, 5], the reference's shapes, and keep only [4, 5]."""
    _, ref = reference
    monkeypatch.setattr(study, "pads_nuts", lambda platform: True)
    settings = _config(num_datasets=6, seed=SEED, chunk_size=CHUNK, save_draws=True)
    ds = study.run_study(tmp_path / "pad.zarr", SPEC, settings, progress=False)
    assert ds.sizes["dataset"] == 6
    _assert_same_results(ds, ref.isel(dataset=slice(0, 6)))  # same compiled program, same inputs per run


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_unknown_noise_study_matches_quadrature_reference_and_reports_sigma(tmp_path) -> None:
    """Learnt sigma (HalfNormal prior): per dataset, the sigma and w means within 5 MCSE of the quadrature
    reference; the report covers sigma's diagnostics and skips the exact comparison."""
    spec = ModelSpec(SPEC.basis, SPEC.prior, half_normal_noise(0.2))
    # one dataset per chunk, 4 x (400 + 500), 25 points (the only default study with learned noise: sigma_* summaries)
    config = NutsConfig(num_warmup=400, num_draws=500, num_chains=4)
    settings = study.StudyConfig(num_datasets=3, seed=SEED, chunk_size=1, num_points=25, nuts=config)
    ds = study.run_study(tmp_path / "u.zarr", spec, settings, progress=False)
    assert "exact_mean" not in ds and np.all(ds["true_sigma"].values > 0)
    phi = np.asarray(spec.basis(ds["x"].values.astype(np.float64)))
    ref = nig.unknown_noise_reference(phi, ds["y"].values.astype(np.float64), spec.prior, spec.noise)
    assert int(ds["divergences"].sum()) == 0
    sigma_err = np.abs(ds["sigma_mean"].values - ref.sigma_mean)
    assert np.all(sigma_err < 5 * ds["sigma_mcse_mean"].values), (sigma_err, ds["sigma_mcse_mean"].values)
    assert np.all(np.abs(ds["sigma_sd"].values - ref.sigma_sd) < 5 * ds["sigma_mcse_sd"].values)
    assert np.all(np.abs(ds["nuts_mean"].values - ref.mean) < 5 * ds["mcse_mean"].values)
    paths = write_report(tmp_path / "u.zarr", tmp_path / "report")
    text, summary = paths["text"].read_text(), json.loads(paths["json"].read_text())
    assert "no exact posterior (unknown noise)" in text and "exact" not in summary
    assert summary["params"]["sigma"]["rhat"]["max"] == pytest.approx(float(ds["sigma_rhat"].max()))
    worst = np.fmax(ds["rhat"].max("feature").values, ds["sigma_rhat"].values)
    assert summary["failed"]["rhat"] == int((worst > 1.01).sum())


def test_cli_bad_study_and_report_input_is_one_error_line(tmp_path, capsys) -> None:
    out = str(tmp_path / "s.zarr")
    for args, message in (
        (["study", "--out", out, "--datasets", "0"], "argument --datasets: must be >= 1, got 0"),
        (["study", "--out", out, "--datasets", "4", "--chunk-size", "0"], "argument --chunk-size: must be >= 1"),
        (["study", "--out", out, "--datasets", "4", "--num-points", "0"], "argument --num-points: must be >= 1"),
        (["study", "--out", out, "--basis", "poly3", "--simulator", "tutorial"], "tutorial simulator"),
        (["study", "--out", out, "--prior-scale", "-1"], "prior scale must be positive"),
        (["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")], "no study store"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)
    store.run_chunked(tmp_path / "other.zarr", meta={"kind": "sbc"}, num_items=3, chunk_size=3,
                      compute=_fake_compute, progress=False)
    assert main(["report", str(tmp_path / "other.zarr"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a study store" in capsys.readouterr().err


def test_cpu_devices_that_cannot_take_effect_are_reported(capsys) -> None:
    """Once JAX's CPU backend exists its device count is fixed: an explicit other --cpu-devices says so."""
    import jax

    existing = len(jax.devices("cpu"))  # the backend exists from here on
    assert main(["--cpu-devices", str(existing + 1), "report", "/nonexistent", "--out", "/nonexistent"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: --cpu-devices") and f"{existing} device" in err[0], err
    assert err[1].startswith("error: no study store")
    assert main(["--cpu-devices", str(existing), "report", "/nonexistent", "--out", "/nonexistent"]) == 2
    assert "warning" not in capsys.readouterr().err  # the same count: nothing to report
    assert main(["report", "/nonexistent", "--out", "/nonexistent"]) == 2  # default (all cores): silent
    assert "warning" not in capsys.readouterr().err


UNEVEN = """
import json, sys
import numpy as np, jax
from bayeslin_jax.diagnostics import host as diagnostics
from bayeslin_jax.core import exact
from bayeslin_jax.core import simulate
from bayeslin_jax.engine import NutsConfig, sample_nuts
from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.core.model import linear
from bayeslin_jax.diagnostics.datatree import model_datatree
spec = tutorial_spec()
data = simulate.prior_data(3, np.arange(5), spec)
phi = spec.basis(data.x)
config = NutsConfig(num_warmup=150, num_draws=150, num_chains=2)
result = sample_nuts(4, phi, data.y, spec.prior, spec.noise, config, num_devices=2)
tree = model_datatree(result, linear(spec), phi, data.y, include_log_likelihood=False)
table = diagnostics.posterior_summary(tree)
post = exact.posterior(phi, data.y, spec.prior, 0.1)
json.dump({"devices": jax.local_device_count(), "shape": list(result.samples["w"].shape),
           "mean": table["mean"].values.tolist(), "mcse": table["mcse_mean"].values.tolist(),
           "exact": np.asarray(post.mean).tolist()}, sys.stdout)
"""


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_uneven_split_over_two_devices_keeps_datasets_in_order() -> None:
    """5 datasets over 2 CPU devices (blocks of 3 and 2): dataset i's draws sample dataset i's posterior."""
    out = subprocess.run([sys.executable, "-c", UNEVEN], env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["devices"] == 2 and got["shape"] == [5, 2, 150, 2]
    mean, mcse, exact_mean = (np.array(got[k]) for k in ("mean", "mcse", "exact"))
    assert np.all(np.abs(mean - exact_mean) < 5 * mcse), (mean, exact_mean, mcse)
    # and only its own: no other dataset's exact posterior mean is within 5 MCSE (a mix-up could not pass)
    fits = (np.abs(mean[:, None] - exact_mean[None]) < 5 * mcse[:, None]).all(-1)  # (dataset, candidate)
    np.testing.assert_array_equal(fits, np.eye(5, dtype=bool))


# ----------------------------------------------------------------------------- report


def test_report_on_small_study(reference, tmp_path) -> None:
    path, ds = reference
    paths = write_report(path, tmp_path / "report")
    text = paths["text"].read_text()
    assert f"datasets: {B}" in text and "standardized error" in text and "failed checks" in text
    assert paths["figure"].stat().st_size > 10_000
    report = summarize(study.open_study(path))
    summary = report.to_dict()
    assert report.table() == text
    assert report.passed == (summary["failed"]["count"] == 0)
    z = ((ds["nuts_mean"] - ds["exact_mean"]) / ds["exact_sd"]).sel(feature="m").values
    assert summary["exact"]["m"]["std_error"]["max_abs"] == pytest.approx(np.abs(z).max())
    assert summary["divergences"]["total"] == 0
    peak = max(r["peak_rss_bytes"] for r in ds.attrs["runs"])
    assert summary["memory"]["peak_rss_bytes"] == peak and summary["memory"]["peak_device_bytes"] is None
    assert f"peak memory: host RSS {peak / 2**20:.4g} MiB" in text
    # Short chains: R-hat > 1.01 on some datasets; the report lists exactly those that fail.
    failed = failed_checks(ds, Checks())
    worst_rhat = np.fmax(ds["rhat"].max("feature").values, 0)
    np.testing.assert_array_equal(failed["rhat"].values, worst_rhat > 1.01)
    assert summary["failed"]["datasets"] == [int(i) for i in ds["dataset"].values[failed["any"].values]]
    lenient = summarize(ds, Checks(max_rhat=2.0, min_ess_per_chain=1.0))
    assert lenient.passed and lenient.to_dict()["failed"]["count"] == 0


def _hand_built_study() -> xr.Dataset:
    """8 datasets (ids 100..107), 2 chains: 100 passes everything, each of 101..107 fails one check
    (107: sigma's R-hat is NaN)."""
    n, features = 8, ["b", "m"]
    fd = ("dataset", "feature")
    rhat, ess_bulk, ess_tail = np.full((n, 2), 1.001), np.full((n, 2), 1000.0), np.full((n, 2), 900.0)
    rhat[1, 1] = 1.05
    ess_bulk[2, 0] = 150.0  # < 100 per chain x 2 chains
    ess_tail[3, 1] = np.nan  # NaN for one weight (the other 900) fails: not skipped by the min over features
    divergences, depth_hits = np.zeros(n, int), np.zeros(n, int)
    divergences[4], depth_hits[5] = 3, 7
    exact_mean = np.linspace(-1.0, 1.0, 2 * n).reshape(n, 2)
    mcse = np.full((n, 2), 0.01)
    nuts_mean = exact_mean + 0.02  # 2 MCSE off: fine
    nuts_mean[6, 0] = exact_mean[6, 0] - 0.06  # 6 MCSE off: mismatch
    sigma_rhat = np.full(n, 1.002)
    sigma_rhat[7] = np.nan  # NaN fails
    return xr.Dataset(
        {
            "rhat": (fd, rhat), "ess_bulk": (fd, ess_bulk), "ess_tail": (fd, ess_tail),
            "nuts_mean": (fd, nuts_mean), "nuts_sd": (fd, np.full((n, 2), 0.1)), "mcse_mean": (fd, mcse),
            "exact_mean": (fd, exact_mean), "exact_sd": (fd, np.full((n, 2), 0.1)),
            "divergences": ("dataset", divergences), "max_tree_depth_hits": ("dataset", depth_hits),
            "mean_tree_depth": ("dataset", np.full(n, 2.5)), "mean_leapfrog": ("dataset", np.full(n, 5.0)),
            "sigma_rhat": ("dataset", sigma_rhat), "sigma_ess_bulk": ("dataset", np.full(n, 800.0)),
            "sigma_ess_tail": ("dataset", np.full(n, 700.0)), "step_size": (("dataset", "chain"), np.full((n, 2), 0.3)),
        },
        coords={"dataset": np.arange(100, 100 + n), "feature": features, "chain": [0, 1]},
        attrs={"meta": {"seed": 1}, "complete": True, "runs": []},
    )


def test_report_lists_each_failing_check_in_csv_and_json(tmp_path) -> None:
    paths = write_report(_hand_built_study(), tmp_path / "r")
    rows = paths["failed"].read_text().splitlines()
    assert rows == [
        "dataset,rhat,ess_bulk,ess_tail,divergences,tree_depth,exact_mismatch",
        "101,1,0,0,0,0,0",
        "102,0,1,0,0,0,0",
        "103,0,0,1,0,0,0",
        "104,0,0,0,1,0,0",
        "105,0,0,0,0,1,0",
        "106,0,0,0,0,0,1",
        "107,1,0,0,0,0,0",
    ]
    summary = json.loads(paths["json"].read_text())
    assert summary["failed"] == {"count": 7, "rhat": 2, "ess_bulk": 1, "ess_tail": 1, "divergences": 1,
                                 "tree_depth": 1, "exact_mismatch": 1, "datasets": [101, 102, 103, 104, 105, 106, 107]}
    assert summary["checks"]["min_ess"] == 200.0
    assert summary["params"]["m"]["rhat"]["n_above"] == 1 and summary["params"]["sigma"]["rhat"]["n_above"] == 1
    assert summary["params"]["b"]["ess_bulk"]["n_below"] == 1 and summary["params"]["m"]["ess_tail"]["n_below"] == 1
    assert summary["divergences"] == {"datasets_with_any": 1, "total": 3, "max": 3}
    assert summary["tree_depth"]["datasets_hitting_max"] == 1
    # standardized error (nuts - exact) / exact sd: 0.2 everywhere except -0.6 for b of dataset 106
    assert summary["exact"]["b"]["std_error"]["max_abs"] == pytest.approx(0.6)
    assert summary["exact"]["b"]["mcse_z"]["frac_abs_gt_3"] == pytest.approx(1 / 8)
    assert summary["exact"]["m"]["std_error"]["mean"] == pytest.approx(0.2)
    text = paths["text"].read_text()
    assert "failed checks: 7 of 8 datasets" in text and "failed datasets: 101, 102, 103, 104, 105, 106, 107" in text


@pytest.mark.gpu
def test_gpu_study_is_chunk_invariant_and_matches_exact(tmp_path) -> None:
    """On a GPU, two chunk sizes: data, truth and exact posterior bit-identical (one compiled
    per-dataset program); NUTS runs in lock-step vmap blocks whose shape follows the chunk, so its
    draws may differ in rounding: both runs must agree with the exact posterior within 5 MCSE."""
    import jax

    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")
    runs = [study.run_study(tmp_path / f"g{c}.zarr", SPEC, _config(num_datasets=64, seed=SEED, chunk_size=c),
                            progress=False) for c in (16, 64)]
    for name in ("x", "y", "true_w", "exact_mean", "exact_sd"):
        np.testing.assert_array_equal(runs[0][name].values, runs[1][name].values, err_msg=name)
    for ds in runs:
        assert np.all(np.abs(ds["nuts_mean"] - ds["exact_mean"]) < 5 * ds["mcse_mean"])
