"""The chunk pipeline of :func:`bayeslin_jax.workflows.store.run_chunked` (launch chunk k+1, then finish chunk k).

Store-level tests use a fake launch/finish (no JAX); one small study checks that the pipeline
overlaps and changes no stored value.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import xarray as xr

from bayeslin_jax.core.errors import BayeslinError
from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.workflows import store
from bayeslin_jax.workflows.studies import run as study


def _values(indices: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"v": (("dataset", "feature"), np.stack([indices * 0.5, indices**2.0], axis=-1))},
                      coords={"dataset": indices, "feature": ["b", "m"]})


class Recorder:
    """launch/finish that log their order; finish(k) waits (up to 5 s) for launch(k+1) when ``wait``
    (items below ``wait``), so a pipeline that launched it is seen doing so."""

    def __init__(self, wait: int = 0, fail_launch_at: int | None = None, interrupt_finish_at: int | None = None):
        self.events: list[tuple[str, int]] = []
        self.started: dict[int, threading.Event] = {}
        self.wait, self.fail_launch_at, self.interrupt_finish_at = wait, fail_launch_at, interrupt_finish_at
        self.lock = threading.Lock()

    def _log(self, what: str, first: int) -> None:
        with self.lock:
            self.events.append((what, first))
            self.started.setdefault(first, threading.Event())
        if what == "launch":
            self.started[first].set()

    def launch(self, indices: np.ndarray) -> np.ndarray:
        self._log("launch", int(indices[0]))
        if self.fail_launch_at is not None and indices[0] >= self.fail_launch_at:
            raise RuntimeError("simulated launch failure")
        return indices

    def finish(self, indices: np.ndarray) -> xr.Dataset:
        first = int(indices[0])
        if first == self.interrupt_finish_at:
            raise KeyboardInterrupt
        if first + len(indices) < self.wait:
            with self.lock:
                nxt = self.started.setdefault(first + len(indices), threading.Event())
            nxt.wait(5.0)
        self._log("finish", first)
        return _values(indices)


def test_overlap_launches_chunk_k_plus_1_before_finishing_chunk_k_and_stores_the_same(tmp_path) -> None:
    kwargs = {"meta": {"a": 1}, "num_items": 10, "chunk_size": 3, "progress": False}
    piped = Recorder(wait=10)
    a = store.run_chunked(tmp_path / "a.zarr", launch=piped.launch, finish=piped.finish, **kwargs).load()
    serial = Recorder()
    b = store.run_chunked(tmp_path / "b.zarr", launch=serial.launch, finish=serial.finish, overlap=False,
                          **kwargs).load()
    assert serial.events == [(step, k) for k in (0, 3, 6, 9) for step in ("launch", "finish")]
    order = {event: i for i, event in enumerate(piped.events)}
    for k, nxt in ((0, 3), (3, 6), (6, 9)):
        assert order[("launch", nxt)] < order[("finish", k)]
    for nxt, k in ((6, 0), (9, 3)):  # depth 2: chunk k+2 waits until chunk k is finished
        assert order[("finish", k)] < order[("launch", nxt)]
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    np.testing.assert_array_equal(a["v"].values[:, 1], np.arange(10.0) ** 2)
    log = store.chunk_log(tmp_path / "a.zarr")
    assert np.all(log["chunk_compute_seconds"].values > 0) and log["chunk_done"].values.tolist() == [1] * 4


def test_failed_launch_keeps_the_chunk_before_and_ctrl_c_keeps_finished_chunks(tmp_path) -> None:
    kwargs = {"meta": {}, "num_items": 12, "chunk_size": 3, "progress": False}
    path = tmp_path / "s.zarr"
    failing = Recorder(fail_launch_at=6)
    with pytest.raises(RuntimeError, match="simulated launch failure"):
        store.run_chunked(path, launch=failing.launch, finish=failing.finish, **kwargs)
    assert store.done_mask(path).tolist() == [True, True, False, False]  # chunk 1 written after chunk 2 failed
    interrupted = Recorder(interrupt_finish_at=9)
    with pytest.raises(KeyboardInterrupt):
        store.run_chunked(path, launch=interrupted.launch, finish=interrupted.finish, **kwargs)
    assert store.done_mask(path).tolist() == [True, True, True, False]
    resumed = Recorder()
    ds = store.run_chunked(path, launch=resumed.launch, finish=resumed.finish, **kwargs)
    assert resumed.events == [("launch", 9), ("finish", 9)]
    np.testing.assert_array_equal(ds["v"].values[:, 0], np.arange(12) * 0.5)
    with pytest.raises(BayeslinError, match="either compute, or both launch and finish"):
        store.run_chunked(path, launch=resumed.launch, **kwargs)


def test_an_error_while_the_next_chunk_launches_waits_for_that_launch(tmp_path) -> None:
    """finish(chunk 0) fails while chunk 1's launch runs on the worker thread: run_chunked returns only
    after that launch ended (no device work left running behind the caller), and chunk 1 is not written."""
    release = threading.Event()
    ended: list[int] = []

    def launch(indices: np.ndarray) -> np.ndarray:
        if indices[0] > 0:
            release.wait(5.0)  # still running when finish(0) fails
            ended.append(int(indices[0]))
        return indices

    def finish(indices: np.ndarray) -> xr.Dataset:
        threading.Timer(0.3, release.set).start()
        raise ValueError("simulated finish failure")

    path = tmp_path / "e.zarr"
    with pytest.raises(ValueError, match="simulated finish failure"):
        store.run_chunked(path, meta={}, num_items=6, chunk_size=3, launch=launch, finish=finish, progress=False)
    assert ended == [3]
    assert not store.is_store(path) or not store.done_mask(path).any()


@pytest.mark.extended  # heavier variant: .ci/run's 'extended' step (docs/testing.md)
def test_study_pipeline_overlaps_and_gives_the_same_store(tmp_path, monkeypatch) -> None:
    """An 8-dataset study in chunks of 4 (test_study's settings: the compiled sampler is shared in a session):
    chunk 1 is launched before chunk 0 is finished; no stored value changes."""
    events: list[tuple[str, int]] = []
    launched = {0: threading.Event(), 4: threading.Event()}
    real = store.run_chunked

    def logged(*args, launch, finish, overlap=True, **kwargs):
        def launch_logged(indices):
            events.append(("launch", int(indices[0])))
            launched[int(indices[0])].set()
            return launch(indices)

        def finish_logged(handle):  # the launched chunk: (indices, data, result, exact posterior)
            first = int(handle[0][0])
            if overlap and first == 0:
                launched[4].wait(10.0)  # the pipeline launched chunk 1 in a worker thread: wait to see it
            events.append(("finish", first))
            return finish(handle)

        return real(*args, launch=launch_logged, finish=finish_logged, overlap=overlap, **kwargs)

    monkeypatch.setattr(store, "run_chunked", logged)
    config = study.StudyConfig(num_datasets=8, seed=3, chunk_size=4,
                               nuts=NutsConfig(num_warmup=150, num_draws=150, num_chains=2))
    on = study.run_study(tmp_path / "on.zarr", tutorial_spec(), config, progress=False).load()
    order = {event: i for i, event in enumerate(events)}
    assert events[:2] == [("launch", 0), ("launch", 4)] and order[("launch", 4)] < order[("finish", 0)]
    events.clear()
    launched[4].clear()
    off = study.run_study(tmp_path / "off.zarr", tutorial_spec(), config, progress=False, overlap=False).load()
    assert events == [("launch", 0), ("finish", 0), ("launch", 4), ("finish", 4)]
    for name in off.variables:
        np.testing.assert_array_equal(on[name].values, off[name].values, err_msg=name)
    (record,) = on.attrs["runs"]
    assert record["overlap"] and not off.attrs["runs"][0]["overlap"]
    assert record["peak_rss_bytes"] > 10 * 2**20
    assert record["peak_rss_bytes_per_dataset"] == record["peak_rss_bytes"] / 4  # per dataset of a chunk
    assert record["peak_device_bytes"] is None  # the CPU backend reports no device memory
