"""Issue 32: stores that cannot lie (root checksum, crash-safe root rewrites, bookkeeping checksums,
safe lock/temporary files, lazy creation) and atomic outputs.

Cheap fake ``compute`` functions (no inference, no compilation); the study/SBC/CLI cases are in
``tests/test_store_outputs.py``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from bayeslin_jax.core import atomic
from bayeslin_jax.core.errors import BayeslinError, BayeslinIOError, StoreError, StoreWarning
from bayeslin_jax.engine import memory
from bayeslin_jax.workflows import store

META = {"test": 1, "seed": 0}
N, CHUNK = 10, 3  # chunks: 0-2, 3-5, 6-8, 9


def _compute(indices: np.ndarray) -> xr.Dataset:
    values = np.stack([indices * 0.5, indices**2.0], axis=-1)
    return xr.Dataset(
        {"v": (("dataset", "feature"), values), "zeros": ("dataset", np.zeros(len(indices), np.int32)),
         "scale": ("feature", [1.0, 2.0])},
        coords={"dataset": indices, "feature": ["b", "m"]},
    )


def _run(path: Path, compute=_compute, meta=META, **kw) -> xr.Dataset:
    return store.run_chunked(path, meta=meta, num_items=N, chunk_size=CHUNK, compute=compute, progress=False, **kw)


def _counting(calls: list[int], compute=_compute):
    return lambda i: calls.append(int(i[0])) or compute(i)


def _one_line(err: BaseException, path: Path) -> str:
    text = str(err)
    assert "\n" not in text and str(path) in text, text
    return text


@pytest.fixture
def intact(tmp_path) -> tuple[Path, xr.Dataset]:
    path = tmp_path / "s.zarr"
    ds = _run(path, record=lambda: {"host": "h", "note": "first run"}).load()
    return path, ds


# --------------------------------------------------------------------------- 1. root metadata


def _verdict(path: Path, reference: dict) -> str:
    """'refused' (a one-line error naming the store) or 'harmless' (same identity, integrity and zarr layout)."""
    try:
        doc = store.read_root(path)
        identity = store.read_identity(path)
    except BayeslinError as err:
        _one_line(err, path)
        return "refused"
    attrs = doc["attributes"]
    assert identity == reference["identity"]
    assert attrs[store.INTEGRITY_ATTR] == reference["integrity"]
    assert {k: v for k, v in doc.items() if k != "attributes"} == reference["layout"]
    return "harmless"


def test_root_metadata_byte_flips_are_refused_or_harmless(intact) -> None:
    """1,200 single-byte changes of the root zarr.json (every position of the identity and checksum part, a
    deterministic sample of the rest): each one is refused naming the store, or leaves identity and results."""
    path, reference_ds = intact
    root = path / "zarr.json"
    original = root.read_bytes()
    doc = json.loads(original)
    reference = {"identity": doc["attributes"][store.IDENTITY_ATTR],
                 "integrity": doc["attributes"][store.INTEGRITY_ATTR],
                 "layout": {k: v for k, v in doc.items() if k != "attributes"}}
    rng = random.Random(32)
    positions = rng.sample(range(len(original)), min(1200, len(original)))
    seed_at = original.index(b'"seed": 0') + len(b'"seed": ')
    positions = [seed_at, *positions]  # the flip: seed 0 -> 1
    outcomes = {"refused": 0, "harmless": 0}
    harmless_checked = 0
    for k, pos in enumerate(positions):
        data = bytearray(original)
        data[pos] = ord("1") if k == 0 else data[pos] ^ rng.randrange(1, 256)
        root.write_bytes(bytes(data))
        verdict = _verdict(path, reference)
        outcomes[verdict] += 1
        if k == 0:
            assert verdict == "refused"
            with pytest.raises(StoreError, match=r"^root metadata of .* fails its checksum: .*meta\.seed"):
                _run(path)  # the resume of the issue: refused, nothing computed
        if verdict == "harmless" and harmless_checked < 5:  # a few full opens: the results are the same
            harmless_checked += 1
            xr.testing.assert_identical(store.open_store(path).load().drop_attrs(), reference_ds.drop_attrs())
    root.write_bytes(original)
    assert outcomes["refused"] > 0.8 * len(positions) and sum(outcomes.values()) == len(positions) >= 1000
    store.verify(path)


def test_damaged_root_names_its_intact_previous_copy(intact) -> None:
    path, reference = intact
    root = path / "zarr.json"
    text = root.read_text()
    root.write_text(text.replace('"num_items": 10', '"num_items": 11'))
    with pytest.raises(StoreError, match=r"fails its checksum: .*previous copy .*zarr.json is intact \(it differs in "
                                         r"attributes\.bayeslin_store\.num_items\): copy it over zarr.json"):
        store.open_store(path)
    shutil.copy(path / store.PREVIOUS / "zarr.json", root)  # the documented recovery
    xr.testing.assert_identical(store.open_store(path).load().drop_attrs(), reference.drop_attrs())


def test_store_without_root_checksum_is_refused_unless_written_by_the_old_format(intact) -> None:
    path, _ = intact
    root = path / "zarr.json"
    doc = json.loads(root.read_text())
    del doc["attributes"][store.ROOT_CHECKSUM_ATTR]
    root.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="fails its checksum: its checksum record is missing"):
        store.read_identity(path)
    doc["attributes"][store.IDENTITY_ATTR]["format"] = 2  # a store of the previous release: opens, with a warning
    root.write_text(json.dumps(doc))
    with pytest.warns(StoreWarning, match="older bayeslin without a root metadata checksum"):
        assert store.read_identity(path)["format"] == 2


class _Crash(Exception):
    pass


class _Steps:
    """Stand-in for the ``os`` module inside :mod:`bayeslin_jax.core.atomic`: counts the system calls of a root
    rewrite and raises at call number ``crash_at`` (None: never)."""

    CALLS = ("open", "write", "fsync", "close", "replace", "rename", "unlink")

    def __init__(self, crash_at: int | None, error: BaseException):
        self.crash_at, self.error, self.count = crash_at, error, 0

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in self.CALLS:
            return real

        def call(*args, **kwargs):
            if name != "unlink":  # the cleanup after a crash must still run
                self.count += 1
                if self.count - 1 == self.crash_at:
                    raise self.error
            return real(*args, **kwargs)

        return call


def test_a_crash_at_every_step_of_a_root_rewrite_leaves_the_store_usable(intact, tmp_path, monkeypatch) -> None:
    path, reference = intact
    steps = _Steps(None, _Crash())
    base = tmp_path / "base.zarr"
    shutil.copytree(path, base)
    monkeypatch.setattr(atomic, "os", steps)
    store.update_root_attrs(path, {store.RUNS_ATTR: [{"run": 2}]})
    monkeypatch.undo()
    total = steps.count
    assert total >= 10  # two files: create, write, fsync, close, replace, folder fsync
    for crash_at in range(total):
        others = (OSError(errno.EIO, "I/O error"), KeyboardInterrupt()) if crash_at in (1, total // 2) else ()
        for error in (_Crash("power cut"), *others):
            work = tmp_path / f"w{crash_at}.zarr"
            shutil.copytree(base, work)
            monkeypatch.setattr(atomic, "os", _Steps(crash_at, error))
            try:  # an error in the last folder fsync is ignored: the new root is then already in place
                store.update_root_attrs(work, {store.RUNS_ATTR: [{"run": 2}]})
            except (type(error), BayeslinError):
                pass
            monkeypatch.undo()
            runs = store.read_root(work)["attributes"].get(store.RUNS_ATTR)
            assert runs in ([{"run": 2}], store.read_root(base)["attributes"][store.RUNS_ATTR])
            assert [p.name for p in work.iterdir() if p.name.endswith((".tmp", ".partial"))] == []
            if isinstance(error, _Crash):  # the whole store opens, without a warning
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    xr.testing.assert_identical(store.open_store(work).load().drop_attrs(), reference.drop_attrs())
            shutil.rmtree(work)
    calls: list[int] = []
    _run(base, _counting(calls))  # and resumable (nothing left to compute)
    assert calls == []


def test_leftover_temporary_root_files_are_ignored_then_removed(intact) -> None:
    path, reference = intact
    leftovers = [path / "zarr.0123456789abcdef0123456789abcdef.partial", path / ".zarr.json.0123456789ab.tmp"]
    for file in leftovers:
        file.write_text('{"half": ')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ZarrUserWarning
        xr.testing.assert_identical(store.open_store(path).load().drop_attrs(), reference.drop_attrs())
        store.chunk_log(path)
        _run(path)  # a resume removes them (the writer lock is held: whoever wrote them is dead)
    assert not any(file.exists() for file in leftovers)


# --------------------------------------------------------------------------- 2. bookkeeping


def _chunk_file(path: Path, name: str, chunk: int) -> Path:
    array = zarr.open_group(str(path), mode="r")[name]
    return path / name / array.metadata.encode_chunk_key((chunk,) + (0,) * (array.ndim - 1))


@pytest.mark.parametrize("damage", ["garbage", "flip"])
def test_damaged_timings_warn_on_read_and_are_rebuilt_on_resume(intact, damage) -> None:
    path, reference = intact
    file = _chunk_file(path, "chunk_compute_seconds", 1)
    data = bytearray(file.read_bytes())
    if damage == "garbage":
        data = bytearray(b"garbage")
    else:
        data[-1] ^= 0x01  # still decodes: only the checksum sees it
    file.write_bytes(bytes(data))
    with pytest.warns(StoreWarning, match=r"chunk 1 \(datasets 3-5\) of variable 'chunk_compute_seconds'"):
        ds = store.open_store(path).load()  # results never depend on rebuildable bookkeeping
    xr.testing.assert_identical(ds.drop_attrs(), reference.drop_attrs())
    with pytest.warns(StoreWarning, match="chunk_compute_seconds"):
        log = store.chunk_log(path)
    assert np.isnan(log["chunk_compute_seconds"].values[1]) and np.isfinite(log["chunk_compute_seconds"].values[0])
    calls: list[int] = []
    with pytest.warns(StoreWarning, match=r"chunk 1 .*'chunk_compute_seconds'.*recomputing"):
        _run(path, _counting(calls))
    assert calls == [3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.verify(path)
        assert np.isfinite(store.chunk_log(path)["chunk_compute_seconds"].values).all()


def test_timings_and_index_are_checksummed_per_chunk(intact) -> None:
    path, _ = intact
    arrays = store.read_root(path)["attributes"][store.INTEGRITY_ATTR]["arrays"]
    assert {"dataset", *store.TIMINGS} <= set(arrays)


# --------------------------------------------------------------------------- 5. safe files


def test_symlinked_lock_is_refused_and_its_target_untouched(tmp_path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    (tmp_path / ".s.zarr.lock").symlink_to(precious)
    with pytest.raises(StoreError, match=r"lock file .*\.s\.zarr\.lock of store .* is a symbolic link") as err:
        _run(tmp_path / "s.zarr")
    _one_line(err.value, tmp_path / "s.zarr")
    assert precious.read_text() == "keep me" and not (tmp_path / "s.zarr").exists()
    (tmp_path / ".s.zarr.lock").unlink()
    os.link(precious, tmp_path / ".s.zarr.lock")  # a hard link to someone's file: refused as well
    with pytest.raises(StoreError, match="not a plain file of its own"):
        _run(tmp_path / "s.zarr")
    assert precious.read_text() == "keep me"


def test_cleanup_removes_only_what_this_run_created(tmp_path, monkeypatch) -> None:
    others = [tmp_path / ".s.zarr.tmp-1-deadbeef", tmp_path / ".s.zarr.tmp-precious"]
    for folder in others:
        (folder / "data").mkdir(parents=True)
    _run(tmp_path / "s.zarr")
    assert all((folder / "data").is_dir() for folder in others)
    # a creation that fails removes its own temporary folder, nothing else
    monkeypatch.setattr(store, "_integrity_record", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(StoreError, match="could not write chunk 0"):
        _run(tmp_path / "t.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(f.name for f in others), "s.zarr"])


# --------------------------------------------------------------------------- 6. bounded memory


def test_a_store_of_10_to_the_8_items_starts_at_once(tmp_path) -> None:
    """Creation writes a handful of files whatever the size (it wrote ~3 per chunk: minutes for 10^8)."""
    calls: list[int] = []

    def first_only(indices):
        if calls:
            raise KeyboardInterrupt
        calls.append(int(indices[0]))
        return _compute(indices)

    path = tmp_path / "big.zarr"
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        store.run_chunked(path, meta=META, num_items=10**8, chunk_size=1000, compute=first_only, progress=False)
    seconds = time.perf_counter() - t0
    files = sum(len(f) for _, _, f in os.walk(path))
    assert os.listdir(path / "chunk_done" / "c") == ["0"] and files < 60, files
    assert seconds < 10, seconds


def test_memory_estimate_and_limit(monkeypatch) -> None:
    assert memory.estimate_draw_bytes(1, 4, 10**8, 10, 4) == 16 * 10**9
    assert memory.estimate_draw_bytes(2**32, 4, 1000, 10, 8) == 2**32 * 4 * 1000 * 10 * 8  # exact, no overflow
    with pytest.raises(BayeslinError, match="non-negative integers"):
        memory.estimate_draw_bytes(-1, 4, 10, 1, 4)
    with pytest.raises(BayeslinError, match=r"^fit would need 16\.0 GB for its draws \(limit 11\.2 GB\): lower "
                                            r"--draws/--chains$"):
        monkeypatch.setenv(memory.LIMIT_ENV, "11.2GB")
        memory.check_memory(16 * 10**9, "fit", purpose="for its draws", hint="lower --draws/--chains")
    assert memory.check_memory(10**9, "fit") == 10**9
    assert memory.check_memory(10**9, "fit", limit_bytes=2 * 10**9) == 10**9
    monkeypatch.setenv(memory.LIMIT_ENV, "512MiB")
    assert memory.memory_limit() == 2**29
    monkeypatch.setenv(memory.LIMIT_ENV, "lots")
    with pytest.raises(BayeslinError, match="BAYESLIN_MEMORY_LIMIT must be a size"):
        memory.memory_limit()
    monkeypatch.delenv(memory.LIMIT_ENV)
    physical = memory.physical_memory()
    assert physical is None or memory.memory_limit() == int(physical * memory.DEFAULT_FRACTION)


# --------------------------------------------------------------------------- 4. atomic outputs


def _fill_disk_after(monkeypatch, limit: int) -> None:
    """``os.write`` inside the atomic writers fails with ENOSPC once ``limit`` bytes are written."""
    written = [0]
    real = os.write

    def write(fd, data):
        if written[0] + len(data) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return real(fd, data)

    monkeypatch.setattr(atomic.os, "write", write)


@pytest.mark.parametrize("limit", [0, 5, 8191])
def test_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch, limit) -> None:
    target = tmp_path / "report.json"
    atomic.atomic_write_text(target, '{"good": true}')
    with monkeypatch.context() as m:
        _fill_disk_after(m, limit)
        with pytest.raises(BayeslinIOError, match=r"^cannot write .*report\.json: disk full$"):
            atomic.atomic_write_text(target, "x" * 20_000)
    assert target.read_text() == '{"good": true}' and os.listdir(tmp_path) == ["report.json"]


def test_a_failed_fsync_or_writer_keeps_the_previous_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"old png")
    with monkeypatch.context() as m:
        m.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(BayeslinIOError, match=r"cannot write .*plot\.png: disk full"):
            with atomic.atomic_path(target) as tmp:
                tmp.write_bytes(b"new png")
    with pytest.raises(BayeslinIOError, match=r"cannot write .*plot\.png: RuntimeError: writer broke"):
        with atomic.atomic_open(target, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old png" and os.listdir(tmp_path) == ["plot.png"]
    with atomic.atomic_open(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"


def test_temporary_names_never_follow_a_symlink(tmp_path, monkeypatch) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    monkeypatch.setattr(atomic, "temp_name", lambda path, suffix=".tmp": tmp_path / ".planted")
    (tmp_path / ".planted").symlink_to(precious)
    with pytest.raises(BayeslinError, match=r"cannot write .*out\.json"):
        atomic.atomic_write_text(tmp_path / "out.json", "x")
    assert precious.read_text() == "keep me" and not (tmp_path / "out.json").exists()


def test_a_folder_is_replaced_as_a_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    out = tmp_path / "report"
    with atomic.atomic_folder(out) as tmp:
        for name in ("a.txt", "b.txt"):
            atomic.atomic_write_text(tmp / name, f"old {name}")
    with pytest.raises(BayeslinIOError, match=r"cannot write .*report/b\.txt: disk full"):
        with atomic.atomic_folder(out) as tmp:
            atomic.atomic_write_text(tmp / "a.txt", "new a")
            _fill_disk_after(monkeypatch, 0)
            atomic.atomic_write_text(tmp / "b.txt", "new b", shown=out / "b.txt")
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "old a.txt", "b.txt": "old b.txt"}
    assert sorted(os.listdir(tmp_path)) == ["report"]
    with atomic.atomic_folder(out) as tmp:
        atomic.atomic_write_text(tmp / "a.txt", "new a")
        atomic.atomic_write_text(tmp / "b.txt", "new b")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "new a", "b.txt": "new b"}
    (out / "mine").mkdir()  # a folder of the user's: its other contents are left alone
    with atomic.atomic_folder(out) as tmp:
        atomic.atomic_write_text(tmp / "a.txt", "newer a")
    assert (out / "mine").is_dir() and (out / "a.txt").read_text() == "newer a"
