"""Stores never use damaged data silently; concurrent writers, full disks and Ctrl-C leave them usable.

All tests use cheap fake ``compute`` functions (no inference, so no compilation). The study
and report path is checked in ``tests/test_study.py`` (it reuses that file's reference study).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from bayeslin_jax.core.errors import StoreError, StoreWarning
from bayeslin_jax.workflows import store

ROOT = Path(__file__).resolve().parents[1]
META = {"test": 1}
N, CHUNK = 10, 3  # chunks: 0-2, 3-5, 6-8, 9


def _compute(indices: np.ndarray) -> xr.Dataset:
    """``v`` float, ``zeros`` all equal to the int fill value 0 (zarr writes no file for it by default)."""
    values = np.stack([indices * 0.5, indices**2.0], axis=-1)
    return xr.Dataset(
        {"v": (("dataset", "feature"), values), "zeros": ("dataset", np.zeros(len(indices), np.int32)),
         "scale": ("feature", [1.0, 2.0])},
        coords={"dataset": indices, "feature": ["b", "m"]},
    )


def _run(path: Path, compute=_compute, **kw) -> xr.Dataset:
    return store.run_chunked(path, meta=META, num_items=N, chunk_size=CHUNK, compute=compute, progress=False, **kw)


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    """Identical values, coords and dims (attrs hold creation times and pids)."""
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def _counting(calls: list[int], compute=_compute):
    return lambda i: calls.append(int(i[0])) or compute(i)


@pytest.fixture
def intact(tmp_path) -> tuple[Path, xr.Dataset]:
    path = tmp_path / "s.zarr"
    return path, _run(path).load()


def _chunk_file(path: Path, name: str, chunk: int) -> Path:
    array = zarr.open_group(str(path), mode="r")[name]
    return path / name / array.metadata.encode_chunk_key((chunk,) + (0,) * (array.ndim - 1))


def _resume_recomputes(path: Path, reference: xr.Dataset, chunk: int, variable: str) -> None:
    """Resuming warns once naming the chunk, recomputes only it, and gives the undamaged values."""
    calls: list[int] = []
    with pytest.warns(StoreWarning, match=rf"chunk {chunk} \(datasets .*\) of variable '{variable}'.*recomputing"):
        resumed = _run(path, _counting(calls)).load()
    assert calls == [chunk * CHUNK]
    xr.testing.assert_identical(resumed, reference)
    store.verify(path)  # intact again


@pytest.mark.parametrize("offset", [0, -7])  # the compressed stream's header, and its end
def test_flipped_bytes_are_named_on_read_and_recomputed_on_resume(intact, offset) -> None:
    path, reference = intact
    file = _chunk_file(path, "v", 1)
    data = bytearray(file.read_bytes())
    data[offset] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"chunk 1 \(datasets 3-5\) of variable 'v' is altered \(checksum mismatch\)"):
        store.open_store(path)
    _resume_recomputes(path, reference, 1, "v")


@pytest.mark.parametrize("variable", ["v", "zeros"])
def test_deleted_chunk_file_is_named_even_for_fill_values(intact, variable) -> None:
    path, reference = intact
    file = _chunk_file(path, variable, 2)
    assert file.is_file()  # written although its values equal the fill value (write_empty_chunks)
    file.unlink()
    with pytest.raises(StoreError, match=rf"chunk 2 \(datasets 6-8\) of variable '{variable}' is missing"):
        store.open_store(path)
    _resume_recomputes(path, reference, 2, variable)


def test_damaged_bookkeeping_is_named_and_recomputed(intact) -> None:
    path, reference = intact
    _chunk_file(path, store.CHECKSUMS, 0).unlink()  # the checksum record of chunk 0
    with pytest.raises(StoreError, match=r"chunk 0 \(datasets 0-2\) of variable 'chunk_checksum' is missing"):
        store.open_store(path)
    _resume_recomputes(path, reference, 0, store.CHECKSUMS)
    _chunk_file(path, "chunk_done", 3).write_bytes(b"garbage")  # an undecodable done flag
    with pytest.raises(StoreError, match=r"chunk 3 \(datasets 9-9\) of variable 'chunk_done' is unreadable"):
        store.open_store(path)
    _resume_recomputes(path, reference, 3, "chunk_done")


def test_deleted_or_altered_variable_metadata_is_an_error(intact) -> None:
    path, _ = intact
    meta_file = path / "v" / "zarr.json"
    text = meta_file.read_text()
    meta_file.unlink()
    expected = r"metadata of variable 'v' \(v/zarr.json\) is missing"
    with pytest.raises(StoreError, match=expected):
        store.open_store(path)
    with pytest.raises(StoreError, match=expected):  # a resume cannot rebuild it either: no silent drop
        _run(path)
    meta_file.write_text(text.replace('"fill_value": "NaN"', '"fill_value": 0.0'))
    with pytest.raises(StoreError, match=r"metadata of variable 'v' \(v/zarr.json\) is altered"):
        store.open_store(path)
    meta_file.write_text(text)
    (path / "scale" / "c" / "0").write_bytes(b"\0" * 8)  # a variable written once, at creation
    with pytest.raises(StoreError, match=r"file scale/c/0 of variable 'scale' \(written at creation\) is altered"):
        store.open_store(path)


def test_corrupted_root_metadata_is_a_one_line_error(intact) -> None:
    path, _ = intact
    root = path / "zarr.json"
    root.write_text(root.read_text()[:50])
    for call in (store.open_store, store.read_identity, store.chunk_log, store.verify, _run):
        with pytest.raises(StoreError, match=r"root metadata zarr.json is unreadable \(JSONDecodeError") as err:
            call(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_deleted_root_metadata_is_named(intact) -> None:
    path, _ = intact
    (path / "zarr.json").unlink()
    for call in (store.open_store, store.read_identity, _run):
        with pytest.raises(StoreError, match=r"root metadata zarr.json is missing"):
            call(path)


def test_old_store_without_checksums_is_refused(intact) -> None:
    path, _ = intact
    group = zarr.open_group(str(path), mode="r+")
    del group.attrs[store.INTEGRITY_ATTR]
    with pytest.raises(StoreError, match="has no checksums"):
        store.open_store(path)


# --------------------------------------------------------------------------- writers


WRITER = """
import os, sys, time
import types
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
# Skip the package __init__ (it imports numpyro/JAX, seconds on a loaded machine): the store needs neither.
pkg = types.ModuleType("bayeslin_jax"); pkg.__path__ = [os.path.join({root!r}, "bayeslin_jax")]
sys.modules["bayeslin_jax"] = pkg
from test_store_integrity import META, N, CHUNK, _compute
from bayeslin_jax.workflows import store
from bayeslin_jax.core.errors import BayeslinError
def held(i):  # computes only once the test removes the hold file
    while os.path.exists(sys.argv[2]):
        time.sleep(0.02)
    return _compute(i)
try:
    store.run_chunked(sys.argv[1], meta=META, num_items=N, chunk_size=CHUNK, compute=held, progress=False)
except BayeslinError as err:
    print("error:", err); sys.exit(2)
print("done")
"""


def test_concurrent_creators_one_wins_the_other_is_refused_no_temp_folders(tmp_path) -> None:
    """Two real processes create the same store at once: one computes, the other gets a one-line error."""
    path = tmp_path / "s.zarr"
    stale = tmp_path / ".s.zarr.tmp-999999-deadbeef"  # left by a creator killed long ago
    (stale / "x").mkdir(parents=True)
    hold = tmp_path / "hold"
    hold.touch()
    code = WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(hold)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    loser_out = None
    deadline = time.time() + 120
    while loser_out is None:  # the loser exits while the winner waits on the hold file
        assert time.time() < deadline
        for proc in procs:
            if proc.poll() is not None:
                loser_out = proc.communicate()[0]
                loser, winner = proc, procs[1 - procs.index(proc)]
        time.sleep(0.05)
    hold.unlink()
    winner_out = winner.communicate(timeout=60)[0]
    assert (winner.returncode, loser.returncode) == (0, 2), (winner_out, loser_out)
    assert loser_out.strip() == (f"error: store {path} is being written by pid {winner.pid} on host "
                                 f"{socket.gethostname()} (lock .s.zarr.lock); wait for it to finish or stop it, "
                                 "then rerun")
    # no temp folder of theirs, lock file removed; a stale folder that may not be ours is left alone (issue 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.name, "s.zarr"]
    _assert_same(store.open_store(path).load(), _run(tmp_path / "ref.zarr").load())


def test_second_resumer_is_refused_and_a_dead_holder_does_not_block(intact) -> None:
    path, reference = intact
    with store.writer_lock(path):  # this process is "writing"
        with pytest.raises(StoreError, match=rf"being written by pid {os.getpid()} on host"):
            _run(path)
    # A lock file left by a killed process (the kernel dropped its flock): ignored.
    store.lock_path(path).write_text(json.dumps({"pid": 999999, "host": socket.gethostname()}))
    xr.testing.assert_identical(_run(path).load(), reference)
    assert not store.lock_path(path).exists()


def _fail_writes(monkeypatch, match: str, exc: BaseException) -> None:
    """Make zarr's local store raise ``exc`` when writing a file whose path contains ``match``."""
    local = sys.modules["zarr.storage._local"]
    real_put = local._put

    def put(path, value, exclusive=False):
        if match in str(path):
            raise exc
        return real_put(path, value, exclusive)

    monkeypatch.setattr(local, "_put", put)


def test_full_disk_is_a_one_line_error_and_the_store_resumes(intact, tmp_path, monkeypatch) -> None:
    _, reference = intact
    path = tmp_path / "full.zarr"
    _fail_writes(monkeypatch, f"full.zarr{os.sep}v{os.sep}c{os.sep}2", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(StoreError, match=r"^could not write chunk 2 \(datasets 6-8\) of store .*full.zarr "
                                         r"\(OSError: No space left on device\); completed chunks are kept"):
        _run(path)
    monkeypatch.undo()
    assert store.done_mask(path).tolist() == [True, True, False, False]
    calls: list[int] = []
    _assert_same(_run(path, _counting(calls)).load(), reference)
    assert calls == [6, 9]


def test_full_disk_during_creation_leaves_nothing(tmp_path, monkeypatch) -> None:
    _fail_writes(monkeypatch, "zarr.tmp-", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(StoreError, match=r"could not write chunk 0 \(datasets 0-2\) .*No space left"):
        _run(tmp_path / "s.zarr")
    assert list(tmp_path.iterdir()) == []


def test_real_full_disk_on_a_small_tmpfs(tmp_path) -> None:
    """A real ENOSPC from a 1 MiB tmpfs (needs root; skipped otherwise)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(0)
        big = lambda i: _compute(i).assign(noise=(("dataset", "k"), rng.random((len(i), 20_000))))  # noqa: E731
        with pytest.raises(StoreError, match=r"could not write chunk \d .*No space left on device"):
            _run(mnt / "s.zarr", big)
        done = store.done_mask(mnt / "s.zarr")
        assert 1 <= done.sum() < done.size
        store.open_store(mnt / "s.zarr", allow_incomplete=True)  # what was done verifies
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_keyboard_interrupt_leaves_the_store_resumable(intact, tmp_path) -> None:
    _, reference = intact
    tmp_path = tmp_path / "interrupted"
    path = tmp_path / "int.zarr"

    def interrupted(indices):
        if indices[0] == 6:
            raise KeyboardInterrupt
        return _compute(indices)

    with pytest.raises(KeyboardInterrupt):
        _run(path, interrupted)
    assert store.done_mask(path).tolist() == [True, True, False, False]
    assert not store.lock_path(path).exists()
    calls: list[int] = []
    _assert_same(_run(path, _counting(calls)).load(), reference)
    assert calls == [6, 9]
    with pytest.raises(KeyboardInterrupt):  # interrupted while creating: no store, no temp folder
        _run(tmp_path / "new.zarr", lambda i: (_ for _ in ()).throw(KeyboardInterrupt))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int.zarr"]


# --------------------------------------------------------------------------- SBC and studies


def _fake_sbc_chunk(indices: np.ndarray, names: list[str], num_ranks: int) -> xr.Dataset:
    """Calibrated-looking SBC output (uniform ranks and PITs) without running any inference."""
    rng = np.random.default_rng(indices[0])
    shape, dims = (len(indices), len(names)), ("dataset", "quantity")
    return xr.Dataset(
        {"rank": (dims, rng.integers(0, num_ranks + 1, shape).astype(np.int32)), "pit": (dims, rng.random(shape)),
         "truth": (dims, rng.normal(size=shape)), "post_mean": (dims, rng.normal(size=shape)),
         "post_sd": (dims, np.ones(shape)), "gate_ok": ("dataset", np.ones(len(indices), bool))},
        coords={"dataset": indices, "quantity": names},
    )


def test_sbc_store_damage_is_named_not_read_as_zero(tmp_path) -> None:
    """A deleted ``rank`` chunk and a garbled ``pit`` chunk are named by the SBC readers (not read as 0)."""
    from bayeslin_jax.core.priors import tutorial_spec
    from bayeslin_jax.workflows.sbc import run as sbc
    from bayeslin_jax.workflows.sbc import stats as sbc_stats

    path = tmp_path / "sbc.zarr"
    spec, config = tutorial_spec(), sbc.SbcConfig(engine="exact", num_ranks=15)
    names = sbc.quantity_names(spec, config)

    def write():
        return store.run_chunked(path, meta=sbc.store_meta(1, spec, spec, config), num_items=400, chunk_size=200,
                                 compute=lambda i: _fake_sbc_chunk(i, names, 15), progress=False).load()

    ds = write()
    before = sbc_stats.summarize(path, ecdf_sims=200).to_dict()  # through open_sbc: verified
    _chunk_file(path, "rank", 1).unlink()
    with pytest.raises(StoreError, match=r"chunk 1 \(datasets 200-399\) of variable 'rank' is missing"):
        sbc_stats.summarize(path, ecdf_sims=200)
    pit = _chunk_file(path, "pit", 0)
    pit.write_bytes(pit.read_bytes()[:-5] + b"\x01\x02\x03\x04\x05")
    with pytest.raises(StoreError, match=r"chunk 0 \(datasets 0-199\) of variable 'pit' is altered.*and 1 more"):
        sbc.open_sbc(path)
    with pytest.warns(StoreWarning):
        _assert_same(write(), ds)
    assert sbc_stats.summarize(path, ecdf_sims=200).to_dict() == before  # repaired: the undamaged verdicts
