"""Chunked, resumable computations over many items, written to one on-disk zarr store.

:func:`run_chunked` splits items ``first_item .. first_item + num_items - 1`` into chunks of
``chunk_size``, calls ``compute(indices)`` for each chunk that is not yet on disk and writes the
result into pre-allocated zarr arrays (zarr chunk = one computed chunk, so chunks never share a
file). Only after a chunk's data is written does its flag in ``chunk_done`` flip to 1; zarr's
local store writes every file atomically (temporary file + rename). A crash at any moment,
SIGKILL and Ctrl-C included, therefore loses at most the chunks in flight (two with the pipeline of
:func:`run_chunked`: one being summarised, one being sampled), and rerunning the same
call computes only the missing chunks. The store is created in a temporary directory and renamed
into place, so a half-created store never exists.

What is guaranteed (reliability):

* **Checksums.** When a chunk is marked done, the CRC-32 of every file it wrote (one file per
  data variable; zarr writes a file even for values equal to the fill value, so a lost file is
  always noticed) is recorded in ``chunk_checksum`` before ``chunk_done`` flips. At creation the
  CRC-32 of every array's metadata (``<var>/zarr.json``) and of every file written once
  (coordinates, ``chunk_start/stop``, variables without a ``dataset`` dim) is recorded in the
  ``bayeslin_integrity`` attr.
* **Checked on every read** (:func:`open_store`, hence ``open_study``, ``bayeslin report``,
  ``open_sbc`` and SBC summaries from a path): a missing or altered file of a done chunk, a
  missing or altered variable ``zarr.json``, or a missing or unreadable root ``zarr.json`` raises
  :class:`~bayeslin_jax.core.errors.StoreError` (a :class:`~bayeslin_jax.core.errors.BayeslinError`) whose
  one-line message names the store, the variable and the chunk (with its item range). Damaged
  data is never returned.
* **Checked on resume** (:func:`run_chunked` on an existing store): a done chunk with a missing or
  altered file is un-marked, recomputed and rewritten, with one
  :class:`~bayeslin_jax.core.errors.StoreWarning` line naming it. Damaged metadata (a variable's
  ``zarr.json``, the root ``zarr.json``, files written once at creation) cannot be recomputed: a
  :class:`StoreError` names it (move the store away and rerun). A lost ``chunk_done`` flag counts as
  not done: the chunk is recomputed on resume, and a read reports the store incomplete.
* **One writer at a time.** :func:`run_chunked` holds an exclusive ``fcntl.flock`` on the sibling
  file ``.<name>.lock`` (holder's pid and host written inside) for the whole run, creation
  included. A second writer does not wait: it raises ``StoreError("store X is being written by pid N
  on host H ...")`` before computing anything. The kernel drops the lock when its holder dies
  (SIGKILL included), so a stale lock never blocks; the lock file is removed on exit. Under the
  lock, leftover ``.<name>.tmp-*`` folders can only come from dead creators and are removed; a
  creation that fails (full disk, Ctrl-C) removes its own temporary folder. flock is reliable on
  local filesystems and NFSv4; on network filesystems without lock support, do not point two
  hosts at the same store. Readers take no lock (they only read done, verified chunks).
* **Write failures** (full disk, permissions): a one-line :class:`StoreError` naming the store and
  chunk; the failing chunk is not marked done, completed chunks are kept, and rerunning resumes.
  ``KeyboardInterrupt`` propagates unchanged with the same on-disk state.

Pipeline: ``run_chunked(launch=..., finish=...)`` splits a chunk into its device part and its host
part and runs chunk k+1's device part (in a worker thread) while chunk k's host part runs; the
guarantees above hold unchanged, since chunks are still written, checksummed and flagged one at a
time, in order.

Cost: verification reads each done chunk's files once (compressed bytes, CRC-32, no decoding):
about 0.2 s for a 10,000-dataset study store (40 chunks of 256, 1,157 files, 4.7 MB) on a loaded
2-core machine, where NUTS on those datasets takes minutes; recording a chunk's checksums costs
a few milliseconds.

Layout (a zarr v3 group readable with ``xr.open_zarr(path, consolidated=False)``):

* data variables whose first dim is ``dataset`` (length ``num_items``), as returned by ``compute``;
* bookkeeping over dim ``chunk``: ``chunk_start``, ``chunk_stop``, ``chunk_done`` and per-chunk
  timings ``chunk_compute_seconds``, ``chunk_write_seconds``, ``chunk_finished_at`` (unix time);
  ``chunk_checksum [chunk, checksum_array]`` (uint32 CRC-32 of each per-chunk file);
* attrs ``bayeslin_store`` (the identity that a rerun must match: ``format``, ``meta``,
  ``num_items``, ``first_item``, ``chunk_size``), ``bayeslin_integrity`` (checksummed arrays, CRCs
  of metadata and write-once files) and ``bayeslin_created`` (host, time; informational).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from bayeslin_jax.core import atomic, validation
from bayeslin_jax.core.errors import BayeslinError, StoreError, StoreWarning

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfigParams

ITEM_DIM = "dataset"
CHUNK_DIM = "chunk"
IDENTITY_ATTR = "bayeslin_store"
INTEGRITY_ATTR = "bayeslin_integrity"
CREATED_ATTR = "bayeslin_created"
# 2: checksums (bayeslin_integrity attr, chunk_checksum); 3: root metadata checksum, timings and the dataset
# index checksummed per chunk, no per-chunk files written at creation
FORMAT_VERSION = 3
CHECKSUMS = "chunk_checksum"
TIMINGS = ("chunk_compute_seconds", "chunk_write_seconds", "chunk_finished_at")
# Rewritten as chunks finish; chunk_start/stop are written once.
PER_CHUNK_BOOKKEEPING = ("chunk_done", *TIMINGS, CHECKSUMS)
BOOKKEEPING = ("chunk_start", "chunk_stop", *PER_CHUNK_BOOKKEEPING)
# a file for every chunk, even one equal to the fill value
ALWAYS_WRITE: ArrayConfigParams = {"write_empty_chunks": True}
ROOT = "zarr.json"
ROOT_CHECKSUM_ATTR = "bayeslin_root_checksum"
RUNS_ATTR = "bayeslin_runs"
# Root attrs that decide no result (informational: who created the store, run records): not checksummed.
INFORMATIONAL_ATTRS = (CREATED_ATTR, RUNS_ATTR)
PREVIOUS = ".bayeslin-previous-root"  # a group folder holding the previous good root zarr.json
BOOKKEEPING_CHUNK = 1 << 16  # chunk_start/stop: rows per file (a study of 10^8 datasets writes 3 files, not 400k)
# Leftovers of a crash while writing root metadata (zarr's own temp names and ours): ignored by readers.
_LEFTOVER = re.compile(r"^(zarr\.[0-9a-f]+\.partial|\.zarr\.json\.[0-9a-f]+\.tmp)$")


def versions() -> dict[str, str]:
    """Versions whose change could change results (part of a store's identity).

    Returns
    -------
    dict of str to str
        ``{"bayeslin_jax": ..., "jax": ..., "numpyro": ...}``: the installed version of each.
    """
    import jax
    import numpyro

    import bayeslin_jax

    return {"bayeslin_jax": bayeslin_jax.__version__, "jax": jax.__version__, "numpyro": numpyro.__version__}


def canonical_meta(meta: dict) -> dict:
    """JSON round trip of ``meta`` (tuples -> lists, keys -> str): what the store keeps and compares.

    Parameters
    ----------
    meta : dict
        Store metadata (settings that determine the results).

    Returns
    -------
    dict
        ``meta`` as it reads back from JSON.

    Raises
    ------
    BayeslinError
        ``meta`` is not JSON-serialisable.
    """
    try:
        return json.loads(json.dumps(meta, sort_keys=True, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise BayeslinError(f"store metadata must be JSON-serialisable: {err}") from None


def chunk_bounds(first_item: int, num_items: int, chunk_size: int) -> list[tuple[int, int]]:
    """Global ``[start, stop)`` of every chunk.

    Parameters
    ----------
    first_item : int
        Index of the first item.
    num_items : int
        Number of items.
    chunk_size : int
        Items per chunk (the last chunk may be shorter).

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` of each chunk, in order.
    """
    stop_all = first_item + num_items
    return [(s, min(s + chunk_size, stop_all)) for s in range(first_item, stop_all, chunk_size)]


def diff_paths(stored, wanted, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ, e.g. ``['meta.seed']``.

    Parameters
    ----------
    stored, wanted : JSON value
        The two values (dicts are compared key by key, anything else with ``==``).
    prefix : str
        Dotted path of the values themselves (for the recursion).

    Returns
    -------
    list of str
        The paths where they differ (a key present in one only counts); ``['<root>']`` when two non-dict
        values differ at the top.
    """
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in wanted:
                out.append(path)
            else:
                out.extend(diff_paths(stored[key], wanted[key], path))
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


def _why(err: BaseException) -> str:
    """One line describing an exception (type and first line of its message)."""
    text = (getattr(err, "strerror", None) if isinstance(err, OSError) else None) or str(err)
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first if len(first) <= 100 else first[:97] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def is_store(path: str | Path) -> bool:
    """Whether ``path`` looks like a zarr store (has a root ``zarr.json``; not yet verified).

    Parameters
    ----------
    path : str or Path
        The candidate store directory.

    Returns
    -------
    bool
        True when ``path/zarr.json`` is a file.
    """
    return (Path(path) / "zarr.json").is_file()


def sampler_identity(nuts) -> dict:
    """What a store records of a :class:`~bayeslin_jax.engine.NutsConfig`: every setting that changes the bits.

    :meth:`NutsConfig.identity` (every field but the layout) plus the resolved ``method`` (``map``, ``vmap`` or
    ``barrier_free``: the kernels round differently, so a store never mixes two); ``batch_size``, the chunk size
    and the device count change only speed and are left out. Study and SBC stores both record this.

    Parameters
    ----------
    nuts : NutsConfig
        The sampler settings.

    Returns
    -------
    dict
        The settings that change the bits, ``method`` resolved.
    """
    return {**nuts.identity(), "method": nuts.resolved_method()}


@contextlib.contextmanager
def quiet_leftovers() -> Iterator[None]:
    """Hide zarr's warning about a crash's leftover temporary file in the root folder (it is no store node).

    Yields
    ------
    None
        Inside the block, that warning is filtered out.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object at (zarr\.[0-9a-f]+\.partial|\.zarr\.json\.[0-9a-f]+\.tmp) "
                                r"is not recognized")
        yield


def _root_digest(doc: dict) -> str:
    """sha256 of the canonical JSON of a root document without its informational attrs and its checksum."""
    attrs = {k: v for k, v in (doc.get("attributes") or {}).items()
             if k not in INFORMATIONAL_ATTRS and k != ROOT_CHECKSUM_ATTR}
    body = {**doc, "attributes": attrs}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _parse_root(data: bytes) -> dict:
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes", {}), dict):
        raise ValueError("not a zarr group document")
    return doc


def _root_problem(doc: dict) -> str | None:
    """Why a parsed root document of a bayeslin store fails its checksum (None: it passes)."""
    attrs = doc.get("attributes") or {}
    record = attrs.get(ROOT_CHECKSUM_ATTR)
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return "its checksum record is missing or malformed"
    if record["sha256"] != _root_digest(doc):
        return "its content does not match the sha256 recorded in it"
    return None


def _legacy(attrs: dict) -> bool:
    """A store written before root checksums (format <= 2): its root is not verified."""
    identity = attrs.get(IDENTITY_ATTR)
    return isinstance(identity, dict) and isinstance(identity.get("format"), int) and identity["format"] <= 2 \
        and ROOT_CHECKSUM_ATTR not in attrs


def _previous_note(path: Path, damaged: dict | None) -> str:
    """Where the previous good root is (if any), and what differs from it."""
    previous = path / PREVIOUS / ROOT
    try:
        doc = _parse_root(previous.read_bytes())
    except (OSError, ValueError):
        return "; no intact previous copy: move the store away and rerun"
    if _root_problem(doc) is not None:
        return "; no intact previous copy: move the store away and rerun"
    diffs = []
    if damaged is not None:
        strip = lambda d: {k: v for k, v in d.items() if k != "attributes"} | {  # noqa: E731
            "attributes": {k: v for k, v in (d.get("attributes") or {}).items()
                           if k not in INFORMATIONAL_ATTRS and k != ROOT_CHECKSUM_ATTR}}
        diffs = diff_paths(strip(doc), strip(damaged))
    where = f" (it differs in {', '.join(diffs[:3])})" if diffs else ""
    return f"; the previous copy {PREVIOUS}/{ROOT} is intact{where}: copy it over {ROOT} to recover"


def read_root(path: str | Path, warn_legacy: bool = False) -> dict:
    """The store's root ``zarr.json`` document, verified: a damaged one raises :class:`StoreError` in one line.

    A bayeslin store's root holds ``bayeslin_root_checksum``: the sha256 of the canonical JSON of the whole
    document but its informational attrs (creation host and time, run records) and the checksum itself. A
    store written before it (format 2) is read with a :class:`StoreWarning`.

    Parameters
    ----------
    path : str or Path
        The store directory.
    warn_legacy : bool
        Warn (:class:`StoreWarning`) when the store predates root checksums.

    Returns
    -------
    dict
        The parsed root document (zarr group metadata, ``attributes`` included). A zarr group not written by
        bayeslin is returned unchecked (the caller says so).

    Raises
    ------
    StoreError
        The root ``zarr.json`` is missing, unreadable or fails its checksum (the message says whether an intact
        previous copy exists), or the store has no checksums at all.
    """
    path = Path(path)
    try:
        data = (path / ROOT).read_bytes()
    except FileNotFoundError:
        raise StoreError(f"store {path}: root metadata {ROOT} is missing{_previous_note(path, None)}") from None
    except OSError as err:
        raise StoreError(f"store {path}: root metadata {ROOT} is unreadable ({_why(err)})") from err
    try:
        doc = _parse_root(data)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, not an object
        raise StoreError(f"store {path}: root metadata {ROOT} is unreadable ({_why(err)})"
                         f"{_previous_note(path, None)}") from err
    attrs = doc.get("attributes") or {}
    if IDENTITY_ATTR not in attrs and ROOT_CHECKSUM_ATTR not in attrs:
        return doc  # not a bayeslin store: the caller says so
    if INTEGRITY_ATTR not in attrs:
        raise StoreError(f"store {path} has no checksums (written by an older bayeslin): it cannot be verified; "
                         "rerun into a new output path")
    if _legacy(attrs):
        if warn_legacy:
            warnings.warn(f"store {path} was written by an older bayeslin without a root metadata checksum: its "
                          "settings are not verified", StoreWarning, stacklevel=3)
        return doc
    problem = _root_problem(doc)
    if problem is not None:
        raise StoreError(f"root metadata of {path} fails its checksum: {problem}{_previous_note(path, doc)}")
    return doc


def open_group(path: str | Path, mode: Literal["r", "r+", "a", "w", "w-"] = "r") -> zarr.Group:
    """The store's zarr group after :func:`read_root`; an unreadable root ``zarr.json`` raises :class:`StoreError`.

    Parameters
    ----------
    path : str or Path
        The store directory.
    mode : {"r", "r+", "a", "w", "w-"}
        zarr's open mode.

    Returns
    -------
    zarr.Group
        The store's root group.

    Raises
    ------
    StoreError
        The root metadata is damaged or cannot be parsed by zarr.
    """
    if is_store(path):
        read_root(path)
    try:
        with quiet_leftovers():
            return zarr.open_group(str(path), mode=mode)
    except Exception as err:  # JSONDecodeError, ValueError, KeyError, ... from a garbled zarr.json
        raise StoreError(f"store {path}: root metadata zarr.json is unreadable ({_why(err)})") from err


def _root_bytes(doc: dict) -> bytes:
    attrs = {k: v for k, v in (doc.get("attributes") or {}).items() if k != ROOT_CHECKSUM_ATTR}
    doc = {**doc, "attributes": attrs}
    attrs[ROOT_CHECKSUM_ATTR] = {"algorithm": "sha256 of the canonical JSON of this document without "
                                 f"{', '.join(INFORMATIONAL_ATTRS)} and this record", "sha256": _root_digest(doc)}
    return (json.dumps(doc, indent=2, sort_keys=False, allow_nan=True) + "\n").encode()


def write_root(path: str | Path, doc: dict, previous: bytes | None = None) -> None:
    """Replace the root ``zarr.json`` by ``doc`` (checksum added), crash-safe at every step.

    First the current good root (``previous``: its bytes, already verified) is kept as
    ``.bayeslin-previous-root/zarr.json``, then the new root is written; each file goes to a fresh temporary name
    in its own folder (``O_EXCL | O_NOFOLLOW``), is fsynced, renamed into place, and the folder fsynced. A
    crash or power loss at any moment leaves the old or the new root, each intact, and an intact previous copy.
    Call with the writer lock held.

    Parameters
    ----------
    path : str or Path
        The store directory.
    doc : dict
        The new root document (its ``bayeslin_root_checksum`` attr is recomputed).
    previous : bytes, optional
        The current root's bytes, kept as the previous copy first; None: no previous copy is written.
    """
    path = Path(path)
    if previous is not None:
        (path / PREVIOUS).mkdir(exist_ok=True)
        atomic.atomic_write_bytes(path / PREVIOUS / ROOT, previous)
    atomic.atomic_write_bytes(path / ROOT, _root_bytes(doc))


def update_root_attrs(path: str | Path, changes: dict) -> None:
    """Set root attrs (e.g. a run record) through :func:`write_root`; call with the writer lock held.

    Parameters
    ----------
    path : str or Path
        The store directory.
    changes : dict
        Attrs to set (JSON round-tripped); the others are kept.

    Raises
    ------
    StoreError
        The current root metadata is damaged.
    BayeslinError
        ``changes`` is not JSON-serialisable.
    """
    path = Path(path)
    current = (path / ROOT).read_bytes()
    doc = read_root(path)
    attrs = {**(doc.get("attributes") or {}), **canonical_meta(changes)}
    write_root(path, {**doc, "attributes": attrs}, previous=current)


def _remove_leftovers(path: Path) -> None:
    """Remove a crash's temporary root files (writer lock held: whoever wrote them is dead)."""
    for folder in (path, path / PREVIOUS):
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if _LEFTOVER.match(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def read_identity(path: str | Path) -> dict:
    """The identity (``meta``, ``num_items``, ``first_item``, ``chunk_size``) a store was created with.

    Parameters
    ----------
    path : str or Path
        The store directory.

    Returns
    -------
    dict
        The ``bayeslin_store`` attr: ``format``, ``meta``, ``num_items``, ``first_item``, ``chunk_size``.

    Raises
    ------
    BayeslinError
        ``path`` is not a zarr store, or one not written by bayeslin.
    StoreError
        Its root ``zarr.json`` is missing (the variables are there) or damaged.
    """
    path = Path(path)
    if not is_store(path):
        if (path / "chunk_done" / "zarr.json").is_file():
            raise StoreError(f"store {path}: root metadata zarr.json is missing{_previous_note(path, None)}")
        raise BayeslinError(f"{path} is not a bayeslin store (no zarr.json)")
    attrs = read_root(path, warn_legacy=True).get("attributes") or {}
    if IDENTITY_ATTR not in attrs or not isinstance(attrs[IDENTITY_ATTR], dict):
        raise BayeslinError(f"{path} is a zarr store but was not written by bayeslin (no '{IDENTITY_ATTR}' attr)")
    return attrs[IDENTITY_ATTR]


def _check_identity(path: Path, wanted: dict) -> None:
    stored = read_identity(path)
    diffs = diff_paths(stored, wanted)
    if diffs:
        shown = "; ".join(
            f"{d} (store: {_short(_lookup(stored, d))}, now: {_short(_lookup(wanted, d))})" for d in diffs[:4]
        )
        more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
        raise BayeslinError(
            f"store {path} was written with different settings: {shown}{more}; "
            "rerun with the original settings to resume, or choose a new output path"
        )


# --------------------------------------------------------------------------------------------
# Integrity: CRC-32 of files, recorded at creation (metadata, write-once files) and per chunk.
# --------------------------------------------------------------------------------------------


def _crc(file: Path) -> int | None:
    """CRC-32 of a file's bytes, or None if it does not exist."""
    try:
        return zlib.crc32(file.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _chunk_key(meta: dict, chunk: int) -> str:
    """Key of store chunk ``chunk`` (grid position ``(chunk, 0, ...)``) from an array's zarr v3 metadata."""
    encoding = meta["chunk_key_encoding"]
    default = encoding["name"] == "default"
    sep = encoding.get("configuration", {}).get("separator", "/" if default else ".")
    coords = sep.join([str(chunk)] + ["0"] * (len(meta["shape"]) - 1))
    return f"c{sep}{coords}" if default else coords


def _chunk_files(root: Path, names: list[str]) -> Callable[[str, int], Path]:
    """``file(name, chunk)``: the file holding store chunk ``chunk`` of array ``name`` (metadata read once)."""
    metas = {name: json.loads((root / name / "zarr.json").read_bytes()) for name in names}
    return lambda name, chunk: root / name / _chunk_key(metas[name], chunk)


def _integrity_record(root: Path, group: zarr.Group, per_chunk: list[str]) -> dict:
    """What :func:`find_damage` checks: per-chunk arrays, CRCs of every metadata and write-once file."""
    names = sorted(group.array_keys())
    static = {}
    for name in names:
        if name in per_chunk or name in PER_CHUNK_BOOKKEEPING:
            continue
        for file in sorted((root / name).rglob("*")):
            if file.is_file() and file.name != "zarr.json":
                static[file.relative_to(root).as_posix()] = _crc(file)
    return {
        "algorithm": "crc32 of each file's bytes",
        "arrays": per_chunk,
        "metadata": {name: _crc(root / name / "zarr.json") for name in names},
        "static": static,
    }


def _state(crc: int | None) -> str:
    return "missing" if crc is None else "altered (checksum mismatch)"


def _check_metadata(path: Path, group: zarr.Group) -> dict:
    """Verify metadata and write-once files against the creation record; returns the record."""
    integrity = cast("dict[str, Any] | None", dict(group.attrs).get(INTEGRITY_ATTR))
    if integrity is None:
        raise StoreError(f"store {path} has no checksums (written by an older bayeslin): it cannot be verified; "
                         "rerun into a new output path")
    for name, crc in integrity["metadata"].items():
        got = _crc(path / name / "zarr.json")
        if got != crc:
            raise StoreError(f"store {path}: metadata of variable {name!r} ({name}/zarr.json) is {_state(got)}; "
                             "it cannot be recomputed: move the store away and rerun")
    for rel, crc in integrity["static"].items():
        got = _crc(path / rel)
        if got != crc:
            raise StoreError(f"store {path}: file {rel} of variable {rel.split('/')[0]!r} (written at creation) is "
                             f"{_state(got)}; it cannot be recomputed: move the store away and rerun")
    return integrity


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]`` as the array it is (a store's variables and bookkeeping are arrays, never groups)."""
    return cast(zarr.Array, group[name])


def _read_rows(array: zarr.Array) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a bookkeeping array and a ``(num_chunks,)`` mask of the rows that could be decoded."""
    try:
        return np.asarray(array[:]), np.ones(array.shape[0], dtype=bool)
    except Exception:  # a garbled chunk: read row by row to find it
        values = np.zeros(array.shape, dtype=array.dtype)
        ok = np.ones(array.shape[0], dtype=bool)
        for row in range(array.shape[0]):
            try:
                values[row] = array[row]
            except Exception:
                ok[row] = False
        return values, ok


@dataclass(frozen=True)
class Damage:  # numpydoc ignore=PR02
    """One damaged chunk of one variable.

    Parameters
    ----------
    chunk : int
        Index of the chunk in the store.
    start, stop : int
        Its items ``[start, stop)``.
    variable : str
        The damaged variable (or bookkeeping array).
    problem : str
        What is wrong, e.g. ``"missing"`` or ``"altered (checksum mismatch)"``.
    """

    chunk: int
    start: int
    stop: int
    variable: str
    problem: str

    def describe(self, path: str | Path) -> str:
        """One line naming the store, the chunk (with its item range), the variable and the problem.

        Parameters
        ----------
        path : str or Path
            The store, as the message shows it.

        Returns
        -------
        str
            E.g. ``"store s.zarr: chunk 3 (datasets 768-1023) of variable 'rhat' is missing"``.
        """
        return (f"store {path}: chunk {self.chunk} ({ITEM_DIM}s {self.start}-{self.stop - 1}) of variable "
                f"{self.variable!r} is {self.problem}")


def find_damage(path: str | Path) -> list[Damage]:
    """Check every done chunk's files against the checksums recorded when it was marked done.

    Returns the damaged ``(chunk, variable)`` pairs (empty when the store is intact). Damage that
    no recomputation can repair (root or variable metadata, files written at creation) raises
    :class:`StoreError` instead.

    Parameters
    ----------
    path : str or Path
        The store directory.

    Returns
    -------
    list of Damage
        One entry per damaged ``(chunk, variable)``; an unreadable done flag or checksum record counts too.

    Raises
    ------
    StoreError
        Unrepairable damage (root or variable metadata, write-once files, unreadable bookkeeping).
    """
    path = Path(path)
    group = open_group(path)
    try:
        integrity = _check_metadata(path, group)
        identity = cast("dict[str, Any]", dict(group.attrs)[IDENTITY_ATTR])
        starts, stops = np.array(chunk_bounds(identity["first_item"], identity["num_items"], identity["chunk_size"])).T
        done, done_ok = _read_rows(_array(group, "chunk_done"))
        sums, sums_ok = _read_rows(_array(group, CHECKSUMS))
        file = _chunk_files(path, [*integrity["arrays"], CHECKSUMS])
    except StoreError:
        raise
    except Exception as err:
        raise StoreError(f"store {path}: bookkeeping is unreadable ({_why(err)})") from err
    damage = [Damage(int(c), int(starts[c]), int(stops[c]), "chunk_done", "unreadable (its done flag)")
              for c in np.flatnonzero(~done_ok)]
    for c in np.flatnonzero(done_ok & (done == 1)):
        here = {"chunk": int(c), "start": int(starts[c]), "stop": int(stops[c])}
        if not sums_ok[c] or (integrity["arrays"] and not file(CHECKSUMS, int(c)).is_file()):
            damage.append(Damage(**here, variable=CHECKSUMS, problem="missing or unreadable (its checksum record)"))
            continue
        for name, expected in zip(integrity["arrays"], sums[c], strict=True):
            got = _crc(file(name, int(c)))
            if got != int(expected):
                damage.append(Damage(**here, variable=name, problem=_state(got)))
    return damage


def verify(path: str | Path) -> None:
    """Raise :class:`StoreError` naming the first damaged chunk (see :func:`find_damage`); else return.

    Damage confined to a chunk's timings (bookkeeping a resume rebuilds, that no result depends on) is a
    :class:`StoreWarning` line instead.

    Parameters
    ----------
    path : str or Path
        The store directory.

    Raises
    ------
    StoreError
        A done chunk's file is missing or altered, or the metadata is damaged.
    """
    damage = find_damage(path)
    results = [d for d in damage if d.variable not in TIMINGS]
    if results:
        more = f" (and {len(results) - 1} more damaged chunk files)" if len(results) > 1 else ""
        raise StoreError(f"{results[0].describe(path)}{more}; rerun the command that wrote it to recompute")
    if damage:
        _warn_timings(path, damage)


def _warn_timings(path: str | Path, damage: list[Damage]) -> None:
    more = f" (and {len(damage) - 1} more)" if len(damage) > 1 else ""
    warnings.warn(f"{damage[0].describe(path)}{more}: timings left out (the results are intact; a rerun of the "
                  "command that wrote it rebuilds them)", StoreWarning, stacklevel=3)


def done_mask(path: str | Path) -> np.ndarray:
    """Which chunks are flagged completely on disk (an unreadable flag counts as not).

    Parameters
    ----------
    path : str or Path
        The store directory.

    Returns
    -------
    (num_chunks,) bool array
        True for each chunk whose ``chunk_done`` flag is 1.
    """
    done, ok = _read_rows(_array(open_group(path), "chunk_done"))
    return ok & (done == 1)


# --------------------------------------------------------------------------------------------
# One writer at a time.
# --------------------------------------------------------------------------------------------


def lock_path(path: str | Path) -> Path:
    """The lock file of the store at ``path``: ``.<name>.lock`` next to it.

    Parameters
    ----------
    path : str or Path
        The store directory.

    Returns
    -------
    Path
        ``path.parent / ".<name>.lock"``.
    """
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _holder(fd: int) -> str:
    for _ in range(200):  # the holder writes its pid right after locking: give it up to 2 s (a loaded machine)
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            info = None
        if isinstance(info, dict):
            return f"pid {info.get('pid')} on host {info.get('host')}"
        time.sleep(0.01)
    return "another process"


def _open_lock(path: Path, lock: Path) -> int:
    """Open (creating it exclusively if missing) the lock file, never through a symlink; a regular file only."""
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | nofollow, 0o644)
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR | nofollow)
            except FileNotFoundError:
                continue  # removed by its holder meanwhile: create it again
            except OSError as err:
                if err.errno == errno.ELOOP or lock.is_symlink():
                    raise StoreError(f"lock file {lock} of store {path} is a symbolic link: refusing to follow it "
                                     "(remove it if no bayeslin run is writing the store)") from None
                raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            os.close(fd)
            raise StoreError(f"lock file {lock} of store {path} is not a plain file of its own (a link or a device): "
                             "refusing to write into it (remove it if no bayeslin run is writing the store)")
        return fd
    raise StoreError(f"cannot lock store {path} for writing: its lock file {lock.name} keeps disappearing")


@contextlib.contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the store at ``path`` (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The store directory (its parent is created if missing).

    Yields
    ------
    None
        The lock is held inside the block and released (its file removed) on exit.

    Raises
    ------
    StoreError
        At once, if another process holds the lock (the message names its pid and host), or the lock file
        cannot be created or is a link.
    """
    path = Path(path)
    lock = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = _open_lock(path, lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise StoreError(f"store {path} is being written by {holder} (lock {lock.name}); "
                                 "wait for it to finish or stop it, then rerun") from None
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    except OSError as err:
        raise StoreError(f"cannot lock store {path} for writing ({_why(err)})") from err
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "unix_time": time.time()}).encode())
    except OSError:
        pass  # the lock holds without its note; a second writer then reports "another process"
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before closing: whoever opens it later gets a fresh file
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------------


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


def _per_chunk_arrays(template: xr.Dataset) -> list[str]:
    """Variables written chunk by chunk (first dim ``dataset``, not the index itself, not empty)."""
    return [cast(str, name) for name, var in template.variables.items()
            if ITEM_DIM in var.dims and name != ITEM_DIM and all(var.shape[1:])]


def _create(path: Path, template: xr.Dataset, identity: dict, bounds: list[tuple[int, int]]) -> None:
    """Create the full-size store from the first chunk's dataset, atomically (temp dir + rename).

    Call with the writer lock held. Only the folder this call creates is ever removed (a leftover
    ``.<name>.tmp-*`` of a crashed creator is left alone: it may not be ours). Creation writes a few files
    whatever the store's size: per-chunk files (the ``dataset`` index included) appear as chunks finish.
    """
    num_items, chunk_size = identity["num_items"], identity["chunk_size"]
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
    except OSError as err:
        if err.errno == errno.EEXIST:
            raise StoreError(f"could not create store {path}: its temporary folder {tmp.name} exists") from None
        raise
    try:
        encoding = {}
        for name, var in template.variables.items():
            if ITEM_DIM in var.dims:
                encoding[name] = {"chunks": (chunk_size, *var.shape[1:])}
        with quiet_leftovers():
            template.to_zarr(tmp, mode="w", consolidated=False, encoding=encoding, zarr_format=3,
                             write_empty_chunks=True)
        group = zarr.open_group(str(tmp), mode="r+")
        for name, var in template.variables.items():
            if ITEM_DIM in var.dims:
                _array(group, cast(str, name)).resize((num_items, *var.shape[1:]))
        per_chunk = [*_per_chunk_arrays(template), ITEM_DIM, *TIMINGS]
        num_chunks = len(bounds)
        starts = np.fromiter((b[0] for b in bounds), dtype=np.int64, count=num_chunks)
        stops = np.fromiter((b[1] for b in bounds), dtype=np.int64, count=num_chunks)
        rows = min(num_chunks, BOOKKEEPING_CHUNK)
        for name, dtype, fill, values, chunks in (
            ("chunk_start", "int64", 0, starts, rows),
            ("chunk_stop", "int64", 0, stops, rows),
            ("chunk_done", "uint8", 0, None, 1),
            ("chunk_compute_seconds", "float64", float("nan"), None, 1),
            ("chunk_write_seconds", "float64", float("nan"), None, 1),
            ("chunk_finished_at", "float64", float("nan"), None, 1),
        ):
            arr = group.create_array(name, shape=(num_chunks,), chunks=(chunks,), dtype=dtype, fill_value=fill,
                                     dimension_names=[CHUNK_DIM], config=ALWAYS_WRITE)
            if values is not None:
                arr[:] = values
        del starts, stops
        group.create_array(CHECKSUMS, shape=(num_chunks, len(per_chunk)), chunks=(1, max(len(per_chunk), 1)),
                           dtype="uint32", fill_value=0, dimension_names=[CHUNK_DIM, "checksum_array"],
                           config=ALWAYS_WRITE)
        group.attrs.update({
            IDENTITY_ATTR: identity,
            INTEGRITY_ATTR: _integrity_record(tmp, group, per_chunk),
            CREATED_ATTR: {"host": socket.gethostname(), "pid": os.getpid(), "unix_time": time.time()},
        })
        doc = _parse_root((tmp / ROOT).read_bytes())
        write_root(tmp, doc)
        write_root(tmp, doc, previous=(tmp / ROOT).read_bytes())  # and its previous copy, the same
        atomic.fsync_dir(tmp)
        os.rename(tmp, path)
        atomic.fsync_dir(path.parent)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and path.exists():
            raise StoreError(f"could not create store {path}: the path appeared meanwhile (written without "
                             "bayeslin's lock?)") from None
        raise


def _write_chunk(path: Path, ds: xr.Dataset, offset: slice) -> None:
    other = [name for name, var in ds.variables.items() if ITEM_DIM not in var.dims]
    ds.drop_vars(other).to_zarr(path, region={ITEM_DIM: offset}, mode="r+", consolidated=False,
                                write_empty_chunks=True)
    index = _array(zarr.open_group(str(path), mode="r+"), ITEM_DIM)  # a region write leaves the index coordinate alone
    index.with_config(ALWAYS_WRITE)[offset] = ds[ITEM_DIM].values.astype(index.dtype)


def _mark_done(path: Path, chunk: int, compute_s: float, write_s: float) -> None:
    """Write the chunk's timings, record the checksums of its files (timings included), then flag it done (last)."""
    group = zarr.open_group(str(path), mode="r+")
    names = cast("list[str]", cast("dict[str, Any]", group.attrs[INTEGRITY_ATTR])["arrays"])
    _array(group, "chunk_compute_seconds").with_config(ALWAYS_WRITE)[chunk] = compute_s
    _array(group, "chunk_write_seconds").with_config(ALWAYS_WRITE)[chunk] = write_s
    _array(group, "chunk_finished_at").with_config(ALWAYS_WRITE)[chunk] = time.time()
    sums = []
    file = _chunk_files(path, names)
    for name in names:
        crc = _crc(file(name, chunk))
        if crc is None:
            raise StoreError(f"store {path}: chunk {chunk} of variable {name!r} is missing right after writing it")
        sums.append(crc)
    _array(group, CHECKSUMS).with_config(ALWAYS_WRITE)[chunk] = np.array(sums, dtype=np.uint32)
    # last: the chunk counts only once everything above is on disk
    _array(group, "chunk_done").with_config(ALWAYS_WRITE)[chunk] = 1


def _unmark(path: Path, chunk: int) -> None:
    _array(zarr.open_group(str(path), mode="r+"), "chunk_done").with_config(ALWAYS_WRITE)[chunk] = 0


def _write_error(path: Path, chunk: int, start: int, stop: int, desc: str, err: OSError) -> StoreError:
    return StoreError(f"could not write chunk {chunk} ({desc} {start}-{stop - 1}) of store {path} ({_why(err)}); "
                      "completed chunks are kept: free space or fix the path, then rerun to resume")


def _repair(path: Path, done: np.ndarray) -> None:
    """Un-flag (in ``done`` and on disk) every done chunk that fails verification, with a warning."""
    damage = find_damage(path)
    for chunk in sorted({d.chunk for d in damage}):
        first = next(d for d in damage if d.chunk == chunk)
        warnings.warn(f"{first.describe(path)}: recomputing it", StoreWarning, stacklevel=3)
        _unmark(path, chunk)
        done[chunk] = False


def run_chunked(
    path: str | Path,
    *,
    meta: dict,
    num_items: int,
    chunk_size: int,
    compute: Callable[[np.ndarray], xr.Dataset] | None = None,
    progress: bool = True,
    desc: str = "datasets",
    first_item: int = 0,
    launch: Callable[[np.ndarray], Any] | None = None,
    finish: Callable[[Any], xr.Dataset] | None = None,
    overlap: bool = True,
    record: Callable[[], dict] | None = None,
) -> xr.Dataset:
    """Compute items in chunks into the zarr store at ``path``, resuming from what is already there.

    ``compute(indices)`` gets ``indices: (k,)`` int64 GLOBAL item indices and returns an
    ``xr.Dataset`` whose first dim is ``dataset`` (length k, coords = indices). Items are
    ``first_item .. first_item + num_items - 1`` (``first_item`` lets several processes each own a
    slice). A store created with a different ``meta``/``num_items``/``chunk_size`` raises
    :class:`BayeslinError`. Holds the store's writer lock throughout; verifies done chunks first
    and recomputes damaged ones (see the module docstring). Shows a tqdm bar (items done, items/s,
    ETA). Returns the complete dataset, opened lazily from disk (bookkeeping variables dropped;
    see :func:`chunk_log`).

    Instead of ``compute``, a chunk's work may come in two steps: ``launch(indices) -> handle``, the
    device part (simulate, sample, bring the draws to the host; it may block), and
    ``finish(handle) -> xr.Dataset``, the host part (diagnostics, summaries). With ``overlap``
    (default) the chunks form a pipeline of depth 2: as soon as chunk k's launch has returned, chunk
    k+1 is launched in a worker thread (JAX releases the GIL while the device works) and chunk k is
    finished on this thread, so the device samples while the host summarises: at most two chunks' draws
    are held at once. ``overlap=False`` runs launch then finish for one chunk at a time. Either way chunk k is
    written, checksummed and flagged done before chunk k+1 is finished; an error in a launch is
    raised after the chunk before it is written; on any error or Ctrl-C a launch in flight is waited for
    (it cannot be cancelled) and its chunk is not written.

    ``record()``: called once every chunk is written, still under the writer lock; its dict is appended to
    the store's ``bayeslin_runs`` attr (informational: not part of the root checksum).

    Parameters
    ----------
    path : str or Path
        The store directory (created if missing; an empty directory counts as missing).
    meta : dict
        JSON-serialisable settings that determine the results (part of the store's identity).
    num_items : int
        Number of items this store holds.
    chunk_size : int
        Items per chunk (part of the identity).
    compute : callable, optional
        ``compute(indices: (k,) int64) -> xr.Dataset``: a chunk in one step.
    progress : bool
        Show the tqdm bar.
    desc : str
        Plural name of the items (the bar's label and error messages).
    first_item : int
        Global index of the first item.
    launch : callable, optional
        ``launch(indices) -> handle``: a chunk's device part (with ``finish``, instead of ``compute``).
    finish : callable, optional
        ``finish(handle) -> xr.Dataset``: a chunk's host part.
    overlap : bool
        Pipeline ``launch`` of chunk k+1 with ``finish`` of chunk k.
    record : callable, optional
        ``record() -> dict``: the run record appended to ``bayeslin_runs``.

    Returns
    -------
    xarray.Dataset
        :func:`open_store` of the complete store.

    Raises
    ------
    BayeslinError
        Neither ``compute`` nor both ``launch`` and ``finish``; a store at ``path`` written with other settings,
        or a path that is not a bayeslin store; a chunk dataset of the wrong shape or coords.
    StoreError
        Another process is writing the store, its metadata is damaged beyond repair, or a chunk cannot be
        written (full disk, permissions): completed chunks are kept and a rerun resumes.
    """
    if compute is not None and launch is None and finish is None:
        launch, finish = (lambda indices: indices), compute
    elif compute is not None or launch is None or finish is None:
        raise BayeslinError("run_chunked needs either compute, or both launch and finish")
    validation.integer(f"number of {desc}", num_items)
    validation.integer("chunk size", chunk_size)
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
    if path.exists() and not is_store(path) and not (path.is_dir() and not any(path.iterdir())):
        read_identity(path)  # names a store that lost its root zarr.json
        raise BayeslinError(f"{path} exists and is not a bayeslin store; choose another output path")
    with writer_lock(path):
        if path.is_dir() and not is_store(path) and not any(path.iterdir()):
            path.rmdir()  # an empty directory is as good as nothing
        exists = path.exists()
        done = np.zeros(len(bounds), dtype=bool)
        if exists:
            _check_identity(path, identity)
            _remove_leftovers(path)
            done = done_mask(path)
            _repair(path, done)
        steps = Steps(launch, finish, overlap and compute is None)
        _run_chunks(path, identity, bounds, done, steps, progress, desc)
        if record is not None:
            runs = list(read_root(path).get("attributes", {}).get(RUNS_ATTR, []))
            try:
                update_root_attrs(path, {RUNS_ATTR: [*runs, record()]})
            except BayeslinError as err:
                raise StoreError(f"could not record the run in store {path} ({err}); its chunks are complete") \
                    from err
    return open_store(path)


@dataclass(frozen=True)
class Steps:  # numpydoc ignore=PR02
    """How :func:`_run_chunks` computes a chunk: ``finish(launch(indices))``, pipelined when ``overlap``.

    Parameters
    ----------
    launch : callable
        ``launch(indices: (k,) int64) -> handle``, the device part.
    finish : callable
        ``finish(handle) -> xr.Dataset``, the host part.
    overlap : bool
        Launch chunk k+1 in a worker thread while chunk k is finished.
    """

    launch: Callable[[np.ndarray], Any]
    finish: Callable[[Any], xr.Dataset]
    overlap: bool


class _Launched:
    """A chunk whose launch runs (in a daemon thread when ``background``): ``result()`` waits for its handle."""

    def __init__(self, chunk: int, start: int, stop: int, launch: Callable[[np.ndarray], Any], background: bool):
        self.chunk, self.start, self.stop = chunk, start, stop
        self.indices = np.arange(start, stop, dtype=np.int64)
        self._launch = launch
        self._out: Any = None
        self._err: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"bayeslin-chunk-{chunk}", daemon=True)
        if background:
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._out = self._launch(self.indices)
        except BaseException as err:  # re-raised on the calling thread by result()
            self._err = err
        self.seconds = time.perf_counter() - t0

    def result(self) -> Any:
        """The launch's output, handed over once (this object keeps no reference to it, so the chunk's
        arrays are freed as soon as the caller drops them)."""
        self.wait()
        if self._err is not None:
            raise self._err
        out, self._out = self._out, None
        return out

    def wait(self) -> None:
        if self._thread.ident is not None:
            self._thread.join()


def _run_chunks(path: Path, identity: dict, bounds: list[tuple[int, int]], done: np.ndarray, steps: Steps,
                progress: bool, desc: str) -> None:
    first_item, num_items = identity["first_item"], identity["num_items"]
    exists = path.exists()
    done_items = sum(stop - start for (start, stop), d in zip(bounds, done, strict=True) if d)
    unit = desc[:-1] if desc.endswith("s") else desc  # "12.3 dataset/s", "0.5 s/dataset"
    bar = tqdm(total=int(num_items), initial=done_items, desc=desc, unit=unit, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    todo = iter([(chunk, start, stop) for chunk, (start, stop) in enumerate(bounds) if not done[chunk]])

    def launch_next() -> _Launched | None:
        item = next(todo, None)
        return None if item is None else _Launched(*item, steps.launch, background=steps.overlap)

    ahead: _Launched | None = None
    try:
        current = launch_next()
        while current is not None:
            t0 = time.perf_counter()
            handle = current.result()  # chunk k is off the device
            ahead = launch_next() if steps.overlap else None  # the device starts chunk k+1 ...
            ds = steps.finish(handle)  # ... while the host finishes chunk k
            del handle
            compute_s = time.perf_counter() - t0 + (0.0 if steps.overlap else current.seconds)
            _validate_chunk(ds, current.indices)
            chunk, start, stop = current.chunk, current.start, current.stop
            try:
                if not exists:
                    _create(path, ds, identity, bounds)
                    exists = True
                t1 = time.perf_counter()
                _write_chunk(path, ds, slice(start - first_item, stop - first_item))
                write_s = time.perf_counter() - t1
                _mark_done(path, chunk, compute_s, write_s)
            except OSError as err:  # disk full, permissions, ...: this chunk stays not done
                raise _write_error(path, chunk, start, stop, desc, err) from err
            bar.update(stop - start)
            del ds
            current, ahead = (ahead, None) if steps.overlap else (launch_next(), None)
    except BaseException:
        # an error (or Ctrl-C) while chunk k+1 is launching: never return with device work still running
        # behind the caller's back (a rerun would take the writer lock and sample alongside it); after
        # Ctrl-C the launch cannot be cancelled, so wait for it unless interrupted again
        if ahead is not None:
            try:
                ahead.wait()
            except KeyboardInterrupt:
                pass
        raise
    finally:
        bar.close()


def open_store(path: str | Path, allow_incomplete: bool = False) -> xr.Dataset:
    """Open a store written by :func:`run_chunked` (lazily) without its bookkeeping variables.

    Every done chunk is verified first (:func:`verify`): damage raises :class:`StoreError`. An
    incomplete store raises :class:`BayeslinError` unless ``allow_incomplete``, in which case
    only the finished chunks' items are returned (attrs ``complete=False``).

    Parameters
    ----------
    path : str or Path
        The store directory.
    allow_incomplete : bool
        Return the finished chunks of an incomplete store instead of raising.

    Returns
    -------
    xarray.Dataset
        The data variables over ``dataset`` (lazily loaded), attr ``complete``.

    Raises
    ------
    StoreError
        A done chunk or the metadata is damaged, or zarr cannot open the store.
    BayeslinError
        ``path`` is not a bayeslin store, or the store is incomplete and not ``allow_incomplete``.
    """
    path = Path(path)
    identity = read_identity(path)
    verify(path)
    try:
        with quiet_leftovers():
            ds = xr.open_zarr(path, consolidated=False, chunks=None)
    except Exception as err:
        raise StoreError(f"store {path} cannot be opened ({_why(err)})") from err
    done = done_mask(path)
    bounds = chunk_bounds(identity["first_item"], identity["num_items"], identity["chunk_size"])
    ds = ds.drop_vars([name for name in BOOKKEEPING if name in ds.variables])  # results never depend on them
    complete = bool(done.all())
    if not complete:
        if not allow_incomplete:
            raise BayeslinError(
                f"store {path} is incomplete ({int(done.sum())}/{done.size} chunks done): rerun to finish it"
            )
        first = identity["first_item"]
        keep = np.concatenate([np.arange(a, b) - first for (a, b), d in zip(bounds, done, strict=True) if d]
                              or [np.zeros(0, dtype=np.int64)])
        ds = ds.isel({ITEM_DIM: keep})
    ds.attrs["complete"] = complete
    return ds


def chunk_log(path: str | Path) -> xr.Dataset:
    """Per-chunk bookkeeping: ``chunk_start/stop/done``, compute/write seconds, finish time, checksums.

    Never fails on damaged bookkeeping: an unreadable or altered row reads as NaN (timings) or 0 (flags,
    checksums), with one :class:`StoreWarning` line. A damaged root ``zarr.json`` is an error.

    Parameters
    ----------
    path : str or Path
        The store directory.

    Returns
    -------
    xarray.Dataset
        The bookkeeping arrays over dim ``chunk`` (``chunk_checksum`` also over ``checksum_array``).

    Raises
    ------
    StoreError
        The root metadata is damaged.
    """
    path = Path(path)
    group = open_group(path)
    identity = read_identity(path)
    bounds = chunk_bounds(identity["first_item"], identity["num_items"], identity["chunk_size"])
    num_chunks = len(bounds)
    out, bad = {}, []
    with quiet_leftovers():
        names = set(group.array_keys())
    for name in BOOKKEEPING:
        if name not in names:
            continue
        try:
            values, ok = _read_rows(_array(group, name))
        except Exception:
            values, ok = None, np.zeros(num_chunks, dtype=bool)
        if values is None or values.shape[0] != num_chunks:
            values = np.zeros((num_chunks, *(() if values is None else values.shape[1:])))
            ok = np.zeros(num_chunks, dtype=bool)
        if name in ("chunk_start", "chunk_stop"):
            values = np.array([b[0 if name == "chunk_start" else 1] for b in bounds], dtype=np.int64)
            ok = np.ones(num_chunks, dtype=bool)  # known from the identity
        if not ok.all():
            values = values.astype(float) if name in TIMINGS else values
            values[~ok] = np.nan if name in TIMINGS else 0
            bad.append(f"{name} (chunks {', '.join(str(c) for c in np.flatnonzero(~ok)[:5])})")
        dims = (CHUNK_DIM,) if values.ndim == 1 else (CHUNK_DIM, "checksum_array")
        out[name] = (dims, values)
    try:
        damage = [d for d in find_damage(path) if d.variable in TIMINGS]
    except StoreError:
        damage = []
    for d in damage:
        out[d.variable][1][d.chunk] = np.nan
    if bad:
        warnings.warn(f"store {path}: bookkeeping {'; '.join(bad)} is unreadable: read as missing (the results are "
                      "intact; a rerun of the command that wrote it rebuilds it)", StoreWarning, stacklevel=2)
    elif damage:
        _warn_timings(path, damage)
    return xr.Dataset(out)
