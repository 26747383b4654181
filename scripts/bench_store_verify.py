"""Cost of store verification on a 10,000-dataset store shaped like a study's (tutorial spec, 4 chains).

Usage: ``python scripts/bench_store_verify.py [CHUNK_SIZE]`` (default 256, the CPU default). Fake
per-chunk summaries (no inference) are written through :func:`bayeslin_jax.workflows.store.run_chunked`;
prints the time to verify every chunk and to open the store with and without verification.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from bayeslin_jax.workflows import store

NUM, D, OBS, Q, C = 10_000, 2, 11, 5, 4


def compute(idx: np.ndarray) -> xr.Dataset:
    """Random values with the variables and shapes of a study chunk (known noise, no draws)."""
    rng = np.random.default_rng(int(idx[0]))
    k = len(idx)
    fd = ("dataset", "feature")

    def f(*shape):
        return rng.normal(size=(k, *shape))

    data = {"x": (("dataset", "obs"), f(OBS)), "y": (("dataset", "obs"), f(OBS)), "true_w": (fd, f(D)),
            "true_sigma": ("dataset", f()), "nuts_quantile": (("dataset", "feature", "quantile"), f(D, Q)),
            "divergences": ("dataset", np.zeros(k, np.int32)),
            "max_tree_depth_hits": ("dataset", np.zeros(k, np.int32)),
            "step_size": (("dataset", "chain"), f(C))}
    for name in ("nuts_mean", "nuts_sd", "rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "exact_mean",
                 "exact_sd"):
        data[name] = (fd, f(D))
    for name in ("mean_tree_depth", "mean_leapfrog", "mean_accept"):
        data[name] = ("dataset", f())
    return xr.Dataset(data, coords={"dataset": idx, "feature": ["b", "m"], "quantile": np.linspace(0.05, 0.95, Q),
                                    "chain": np.arange(C), "obs": np.arange(OBS)})


def best_ms(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main(chunk: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "s.zarr"
    try:
        t0 = time.perf_counter()
        store.run_chunked(path, meta={}, num_items=NUM, chunk_size=chunk, compute=compute, progress=False)
        total = time.perf_counter() - t0
        log = store.chunk_log(path)
        compute_s, write_s = (float(np.nansum(log[k].values)) for k in ("chunk_compute_seconds", "chunk_write_seconds"))
        files = [p for p in path.rglob("*") if p.is_file()]
        print(f"{NUM} items, chunk {chunk}: {log.sizes['chunk']} chunks, {len(files)} files, "
              f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB")
        print(f"  writing: total {total:.2f} s = compute {compute_s:.2f} + write {write_s:.2f} + "
              f"create, checksums, flags and final verification {total - compute_s - write_s:.2f}")
        print(f"  find_damage (verify every chunk): {best_ms(lambda: store.find_damage(path)):.0f} ms")
        print(f"  open_store (verify + open): {best_ms(lambda: store.open_store(path)):.0f} ms; "
              f"xr.open_zarr alone: {best_ms(lambda: xr.open_zarr(path, consolidated=False, chunks=None)):.0f} ms; "
              f"open_store(...).load(): {best_ms(lambda: store.open_store(path).load()):.0f} ms")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
