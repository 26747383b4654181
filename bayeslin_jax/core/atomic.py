"""Atomic output files: a reader sees the previous good file or the complete new one, never a cut one.

Every writer here creates a temporary file in the destination's folder with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a fresh, private name; no symlink is followed), writes it, ``fsync``\\ s
it, renames it over the destination (``os.replace``, atomic on POSIX) and ``fsync``\\ s the folder. On any
failure (a full disk, a read-only folder, an exception in the caller's writer, Ctrl-C) the temporary file is
removed, the previous file is left byte for byte, and :class:`~bayeslin_jax.core.errors.BayeslinIOError` (exit
status 3; :class:`~bayeslin_jax.core.errors.BayeslinError`, status 2, for a path problem) is raised with a
one-line message naming the file: ``cannot write report.json: disk full``.

* :func:`atomic_write_text`, :func:`atomic_write_bytes`: a whole file at once;
* :func:`atomic_path`: a context manager giving a temporary path for writers that want a path (matplotlib's
  ``savefig``, ``np.save``), renamed into place when the block ends without an error;
* :func:`atomic_open`: the same with an open file object (``csv.writer``);
* :func:`atomic_folder`: a folder replaced as a whole or not at all (written as a sibling temporary folder,
  then swapped in).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bayeslin_jax.core.errors import BayeslinError, BayeslinIOError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
PATH_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EROFS,
               errno.ENAMETOOLONG, errno.ELOOP}
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        if err.errno in DISK_FULL:
            return "disk full"
        return (err.strerror or str(err) or type(err).__name__).strip().splitlines()[0]
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def write_error(path: str | Path, err: BaseException) -> BayeslinError:
    """The one-line error for a failed write of ``path`` (status 3 for I/O, 2 for a path problem).

    Parameters
    ----------
    path : str or Path
        The file named in the message.
    err : BaseException
        What went wrong (an ``OSError``'s errno decides the class).

    Returns
    -------
    BayeslinError
        A :class:`~bayeslin_jax.core.errors.BayeslinError` for a path problem (missing folder, permission, ...),
        else a :class:`~bayeslin_jax.core.errors.BayeslinIOError`; to be raised ``from err``.
    """
    message = f"cannot write {path}: {_reason(err)}"
    if isinstance(err, OSError) and err.errno in PATH_ERRNOS:
        return BayeslinError(message)
    return BayeslinIOError(message)


def temp_name(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh temporary name next to ``path``: ``.<name>.<hex><suffix>`` (hidden, never a real output name).

    Parameters
    ----------
    path : Path
        The destination.
    suffix : str, optional
        The temporary name's suffix (default ``".tmp"``).

    Returns
    -------
    Path
        A name in ``path``'s folder (nothing is created).
    """
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


def create_exclusive(path: Path, mode: int = 0o644) -> int:
    """Create ``path`` with ``O_CREAT | O_EXCL | O_NOFOLLOW``; returns the descriptor (raises if it exists).

    Parameters
    ----------
    path : Path
        The file to create.
    mode : int, optional
        Permission bits (default ``0o644``, before the umask).

    Returns
    -------
    int
        An open, write-only file descriptor.
    """
    return os.open(path, _FLAGS, mode)


def fsync_dir(folder: Path) -> None:
    """``fsync`` a folder so a rename in it survives power loss (a no-op where folders cannot be opened).

    Parameters
    ----------
    folder : Path
        The folder.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]


def atomic_write_bytes(path: str | Path, data: bytes, shown: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``.

    ``shown``: the name errors give for the file (default ``path``; e.g. the final name of a file written
    into an :func:`atomic_folder`).

    Parameters
    ----------
    path : str or Path
        The destination.
    data : bytes
        The whole content.
    shown : str or Path, optional
        The name errors give for the file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BayeslinError
        A path problem (status 2); :class:`~bayeslin_jax.core.errors.BayeslinIOError` (status 3) for an I/O
        failure such as a full disk. The previous file is left as it was.
    """
    path = Path(path)
    shown = path if shown is None else shown
    tmp = temp_name(path)
    try:
        fd = create_exclusive(tmp)
    except OSError as err:
        raise write_error(shown, err) from err
    try:
        try:
            _write_all(fd, bytes(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, Exception):
            raise write_error(shown, err) from err
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", shown: str | Path | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``.

    Parameters
    ----------
    path : str or Path
        The destination.
    text : str
        The whole content.
    encoding : str, optional
        Text encoding (default UTF-8).
    shown : str or Path, optional
        The name errors give for the file (default ``path``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BayeslinError
        As :func:`atomic_write_bytes`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bayeslin_jax.core.atomic import atomic_write_text
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = atomic_write_text(Path(folder) / "report.txt", "done")
    ...     print(path.read_text())
    done
    """
    return atomic_write_bytes(path, text.encode(encoding), shown=shown)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, shown: str | Path | None = None) -> Iterator[Path]:
    """A temporary path next to ``path`` (created empty, exclusively) for a writer that wants a path.

    The temporary name keeps ``path``'s suffix (``suffix`` overrides it), so writers that pick a format from
    the name (``savefig``) choose the right one. When the block ends without an error the file is synced and
    renamed over ``path``; otherwise it is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The destination.
    suffix : str, optional
        The temporary file's suffix (default: ``path``'s, or ``".tmp"``).
    shown : str or Path, optional
        The name errors give for the file (default ``path``).

    Yields
    ------
    Path
        The temporary file to write.

    Raises
    ------
    BayeslinError
        As :func:`atomic_write_bytes` (an exception in the block becomes a one-line write error unless it is
        already a ``BayeslinError``).
    """
    path = Path(path)
    shown = path if shown is None else shown
    tmp = temp_name(path, suffix if suffix is not None else (path.suffix or ".tmp"))
    try:
        os.close(create_exclusive(tmp))
    except OSError as err:
        raise write_error(shown, err) from err
    try:
        yield tmp
        if tmp.is_symlink() or not tmp.is_file():
            raise OSError(errno.EIO, "the temporary file was replaced while writing")
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, BayeslinError):
            raise
        if isinstance(err, Exception):
            raise write_error(shown, err) from err
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
                ) -> Iterator[IO]:
    """An open file object on a temporary file, renamed over ``path`` when the block ends without an error.

    Parameters
    ----------
    path : str or Path
        The destination.
    mode : {"w", "wb"}, optional
        Text (default) or binary.
    encoding : str or None, optional
        Text encoding (default UTF-8; ignored for ``"wb"``).
    newline : str or None, optional
        As :func:`open` (``""`` for ``csv.writer``).

    Yields
    ------
    IO
        The open temporary file.

    Raises
    ------
    ValueError
        For a mode other than ``"w"`` or ``"wb"``.
    BayeslinError
        As :func:`atomic_path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes new files only (mode 'w' or 'wb'), got {mode!r}")
    with atomic_path(path) as tmp:
        kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A sibling temporary folder whose files replace the folder ``path`` as a whole when the block succeeds.

    Every file is written (and synced) in the temporary folder first. When the block ends without an error
    and ``path`` is missing or holds nothing but files of the same names (a previous report), the new folder
    is swapped in: the old one renamed aside, the new one renamed into place, the old one removed. When
    ``path`` also holds other things (a folder of the user's), they are left alone and each new file is
    renamed over its namesake (each atomic, all written before the first rename). On any failure the
    temporary folder is removed and ``path`` is left as it was. Only folders this call created are removed.

    Parameters
    ----------
    path : str or Path
        The destination folder (its parents are created).

    Yields
    ------
    Path
        The temporary folder to write the files into.

    Raises
    ------
    BayeslinError
        ``path`` is a symlink or not a folder, or as :func:`atomic_path`.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise BayeslinError(f"cannot write into {path}: it is not a folder")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path, ".tmp-folder")
        tmp.mkdir(mode=0o755)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        yield tmp
        names = sorted(item.name for item in tmp.iterdir())
        for name in names:
            _fsync_file(tmp / name)
        fsync_dir(tmp)
        if not path.exists():
            os.rename(tmp, path)
        elif all(item.name in names and item.is_file() and not item.is_symlink() for item in path.iterdir()):
            old = temp_name(path, ".old-folder")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)  # put the previous folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            for name in names:
                os.replace(tmp / name, path / name)
            tmp.rmdir()
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, BayeslinError):
            raise
        if isinstance(err, Exception):
            raise write_error(path, err) from err
        raise
    fsync_dir(parent)


def savefig(fig, path: str | Path, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)`` atomically (format from ``path``'s suffix unless given); returns ``path``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        The destination.
    **kwargs
        Passed to ``fig.savefig``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BayeslinError
        As :func:`atomic_path`.
    """
    path = Path(path)
    kwargs.setdefault("format", path.suffix[1:].lower() or None)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return path
