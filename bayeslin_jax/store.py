"""Chunked, resumable computations over many items, written to one on-disk zarr store.

:func:`run_chunked` splits items ``first_item .. first_item + num_items - 1`` into chunks of
``chunk_size``, calls ``compute(indices)`` for each chunk that is not yet on disk and writes the
result into pre-allocated zarr arrays (zarr chunk = one computed chunk, so chunks never share a
file). Only after a chunk's data is written does its flag in ``chunk_done`` flip to 1; zarr's
local store writes every file atomically (temporary file + rename). A crash at any moment,
SIGKILL included, therefore loses at most the chunk in flight, and rerunning the same call
computes only the missing chunks. The store is created in a temporary directory and renamed
into place, so a half-created store never exists.

Layout (a zarr v3 group readable with ``xr.open_zarr(path, consolidated=False)``):

* data variables whose first dim is ``dataset`` (length ``num_items``), as returned by ``compute``;
* bookkeeping over dim ``chunk``: ``chunk_start``, ``chunk_stop``, ``chunk_done`` and per-chunk
  timings ``chunk_compute_seconds``, ``chunk_write_seconds``, ``chunk_finished_at`` (unix time);
* attrs ``bayeslin_store`` (the identity that a rerun must match: ``meta``, ``num_items``,
  ``first_item``, ``chunk_size``) and ``bayeslin_created`` (host, time; informational).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from bayeslin_jax.errors import BayeslinError

ITEM_DIM = "dataset"
CHUNK_DIM = "chunk"
IDENTITY_ATTR = "bayeslin_store"
CREATED_ATTR = "bayeslin_created"
FORMAT_VERSION = 1
BOOKKEEPING = (
    "chunk_start",
    "chunk_stop",
    "chunk_done",
    "chunk_compute_seconds",
    "chunk_write_seconds",
    "chunk_finished_at",
)


def versions() -> dict[str, str]:
    """Versions whose change could change results (part of a store's identity)."""
    import jax
    import numpyro

    import bayeslin_jax

    return {"bayeslin_jax": bayeslin_jax.__version__, "jax": jax.__version__, "numpyro": numpyro.__version__}


def canonical_meta(meta: dict) -> dict:
    """JSON round trip of ``meta`` (tuples -> lists, keys -> str): what the store keeps and compares."""
    try:
        return json.loads(json.dumps(meta, sort_keys=True, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise BayeslinError(f"store metadata must be JSON-serialisable: {err}") from None


def chunk_bounds(first_item: int, num_items: int, chunk_size: int) -> list[tuple[int, int]]:
    """Global ``[start, stop)`` of every chunk."""
    stop_all = first_item + num_items
    return [(s, min(s + chunk_size, stop_all)) for s in range(first_item, stop_all, chunk_size)]


def _diff_paths(stored, wanted, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ, e.g. ``['meta.seed']``."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in wanted:
                out.append(path)
            else:
                out.extend(_diff_paths(stored[key], wanted[key], path))
        return out
    return [] if stored == wanted else [prefix or "<root>"]


def _lookup(tree, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return "<missing>"
        tree = tree[part]
    return tree


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def read_identity(path: str | Path) -> dict:
    """The identity (``meta``, ``num_items``, ``first_item``, ``chunk_size``) a store was created with."""
    path = Path(path)
    if not _is_store(path):
        raise BayeslinError(f"{path} is not a bayeslin store (no zarr.json)")
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    if IDENTITY_ATTR not in attrs:
        raise BayeslinError(f"{path} is a zarr store but was not written by bayeslin (no '{IDENTITY_ATTR}' attr)")
    return attrs[IDENTITY_ATTR]


def _check_identity(path: Path, wanted: dict) -> None:
    stored = read_identity(path)
    diffs = _diff_paths(stored, wanted)
    if diffs:
        shown = "; ".join(
            f"{d} (store: {_short(_lookup(stored, d))}, now: {_short(_lookup(wanted, d))})" for d in diffs[:4]
        )
        more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
        raise BayeslinError(
            f"store {path} was written with different settings: {shown}{more}; "
            "rerun with the original settings to resume, or choose a new output path"
        )


def done_mask(path: str | Path) -> np.ndarray:
    """``(num_chunks,)`` bool: which chunks are completely on disk."""
    return np.asarray(zarr.open_group(str(path), mode="r")["chunk_done"][:]) == 1


def _validate_chunk(ds: xr.Dataset, indices: np.ndarray) -> None:
    if not isinstance(ds, xr.Dataset):
        raise BayeslinError(f"compute must return an xarray.Dataset, got {type(ds).__name__}")
    if ds.sizes.get(ITEM_DIM) != len(indices):
        raise BayeslinError(f"compute returned {ds.sizes.get(ITEM_DIM)} items for a chunk of {len(indices)}")
    if ITEM_DIM not in ds.coords or not np.array_equal(ds[ITEM_DIM].values, indices):
        raise BayeslinError(f"compute must return coords {ITEM_DIM}=indices (the global item indices it was given)")
    for name, var in ds.data_vars.items():
        if ITEM_DIM in var.dims and var.dims[0] != ITEM_DIM:
            raise BayeslinError(f"variable {name!r} must have '{ITEM_DIM}' as its first dim, got {var.dims}")
        if name in BOOKKEEPING:
            raise BayeslinError(f"variable name {name!r} is reserved for the store's bookkeeping")


def _create(path: Path, template: xr.Dataset, identity: dict, bounds: list[tuple[int, int]]) -> None:
    """Create the full-size store from the first chunk's dataset, atomically (temp dir + rename)."""
    num_items, chunk_size, first = identity["num_items"], identity["chunk_size"], identity["first_item"]
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a run killed while creating
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    encoding = {}
    for name, var in template.variables.items():
        if ITEM_DIM in var.dims:
            encoding[name] = {"chunks": (chunk_size, *var.shape[1:])}
    template.to_zarr(tmp, mode="w", consolidated=False, encoding=encoding, zarr_format=3)
    group = zarr.open_group(str(tmp), mode="r+")
    for name, var in template.variables.items():
        if ITEM_DIM in var.dims:
            group[name].resize((num_items, *var.shape[1:]))
    group[ITEM_DIM][:] = np.arange(first, first + num_items, dtype=group[ITEM_DIM].dtype)
    num_chunks = len(bounds)
    starts = np.array([b[0] for b in bounds], dtype=np.int64)
    stops = np.array([b[1] for b in bounds], dtype=np.int64)
    for name, dtype, fill, values in (
        ("chunk_start", "int64", 0, starts),
        ("chunk_stop", "int64", 0, stops),
        ("chunk_done", "uint8", 0, None),
        ("chunk_compute_seconds", "float64", float("nan"), None),
        ("chunk_write_seconds", "float64", float("nan"), None),
        ("chunk_finished_at", "float64", float("nan"), None),
    ):
        arr = group.create_array(
            name, shape=(num_chunks,), chunks=(1,), dtype=dtype, fill_value=fill, dimension_names=[CHUNK_DIM]
        )
        if values is not None:
            arr[:] = values
    group.attrs[IDENTITY_ATTR] = identity
    group.attrs[CREATED_ATTR] = {"host": socket.gethostname(), "pid": os.getpid(), "unix_time": time.time()}
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BayeslinError(f"could not create store {path}: the path appeared meanwhile (another run?)") from None


def _write_chunk(path: Path, ds: xr.Dataset, offset: slice) -> None:
    other = [name for name, var in ds.variables.items() if ITEM_DIM not in var.dims]
    ds.drop_vars(other).to_zarr(path, region={ITEM_DIM: offset}, mode="r+", consolidated=False)


def _mark_done(path: Path, chunk: int, compute_s: float, write_s: float) -> None:
    group = zarr.open_group(str(path), mode="r+")
    group["chunk_compute_seconds"][chunk] = compute_s
    group["chunk_write_seconds"][chunk] = write_s
    group["chunk_finished_at"][chunk] = time.time()
    group["chunk_done"][chunk] = 1  # last: the chunk counts only once everything above is on disk


def run_chunked(
    path: str | Path,
    *,
    meta: dict,
    num_items: int,
    chunk_size: int,
    compute: Callable[[np.ndarray], xr.Dataset],
    progress: bool = True,
    desc: str = "datasets",
    first_item: int = 0,
) -> xr.Dataset:
    """Compute items in chunks into the zarr store at ``path``, resuming from what is already there.

    ``compute(indices)`` gets ``indices: (k,)`` int64 GLOBAL item indices and returns an
    ``xr.Dataset`` whose first dim is ``dataset`` (length k, coords = indices). Items are
    ``first_item .. first_item + num_items - 1`` (``first_item`` lets several processes each own a
    slice). A store created with a different ``meta``/``num_items``/``chunk_size`` raises
    :class:`BayeslinError`. Shows a tqdm bar (items done, items/s, ETA). Returns the complete
    dataset, opened lazily from disk (bookkeeping variables dropped; see :func:`chunk_log`).
    """
    if not isinstance(num_items, int | np.integer) or num_items < 1:
        raise BayeslinError(f"number of {desc} must be a positive integer, got {num_items!r}")
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise BayeslinError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if first_item < 0:
        raise BayeslinError(f"first item index must be non-negative, got {first_item}")
    path = Path(path)
    identity = canonical_meta(
        {
            "format": FORMAT_VERSION,
            "meta": meta,
            "num_items": int(num_items),
            "first_item": int(first_item),
            "chunk_size": int(chunk_size),
        }
    )
    bounds = chunk_bounds(int(first_item), int(num_items), int(chunk_size))
    if path.exists():
        if not _is_store(path):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # an empty directory is as good as nothing
            else:
                raise BayeslinError(f"{path} exists and is not a bayeslin store; choose another output path")
    exists = path.exists()
    if exists:
        _check_identity(path, identity)
        done = done_mask(path)
    else:
        done = np.zeros(len(bounds), dtype=bool)
    done_items = sum(stop - start for (start, stop), d in zip(bounds, done, strict=True) if d)
    unit = desc[:-1] if desc.endswith("s") else desc  # "12.3 dataset/s", "0.5 s/dataset"
    bar = tqdm(total=int(num_items), initial=done_items, desc=desc, unit=unit, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    try:
        for chunk, (start, stop) in enumerate(bounds):
            if done[chunk]:
                continue
            indices = np.arange(start, stop, dtype=np.int64)
            t0 = time.perf_counter()
            ds = compute(indices)
            compute_s = time.perf_counter() - t0
            _validate_chunk(ds, indices)
            if not exists:
                _create(path, ds, identity, bounds)
                exists = True
            t1 = time.perf_counter()
            _write_chunk(path, ds, slice(start - first_item, stop - first_item))
            write_s = time.perf_counter() - t1
            _mark_done(path, chunk, compute_s, write_s)
            bar.update(stop - start)
    finally:
        bar.close()
    return open_store(path)


def open_store(path: str | Path, allow_incomplete: bool = False) -> xr.Dataset:
    """Open a store written by :func:`run_chunked` (lazily) without its bookkeeping variables.

    An incomplete store raises :class:`BayeslinError` unless ``allow_incomplete``, in which case
    only the finished chunks' items are returned (attrs ``complete=False``).
    """
    path = Path(path)
    identity = read_identity(path)
    ds = xr.open_zarr(path, consolidated=False, chunks=None)
    done = ds["chunk_done"].values == 1
    starts, stops = ds["chunk_start"].values, ds["chunk_stop"].values
    ds = ds.drop_vars([name for name in BOOKKEEPING if name in ds.variables])
    complete = bool(done.all())
    if not complete:
        if not allow_incomplete:
            raise BayeslinError(
                f"store {path} is incomplete ({int(done.sum())}/{done.size} chunks done): rerun to finish it"
            )
        first = identity["first_item"]
        keep = np.concatenate([np.arange(a, b) - first for a, b, d in zip(starts, stops, done, strict=True) if d]
                              or [np.zeros(0, dtype=np.int64)])
        ds = ds.isel({ITEM_DIM: keep})
    ds.attrs["complete"] = complete
    return ds


def chunk_log(path: str | Path) -> xr.Dataset:
    """Per-chunk bookkeeping: ``chunk_start/stop/done``, compute/write seconds, finish time."""
    ds = xr.open_zarr(Path(path), consolidated=False, chunks=None)
    return ds[list(BOOKKEEPING)].load()
