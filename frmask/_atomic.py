"""Atomic output files: a file is written under a temporary name beside the target, then renamed.

An interrupted or failed write never leaves a partial file at the target path, and a completed one survives
a crash (the file and its folder are fsynced). Files get the usual permissions (0666 less umask). The
temporary's name, its lock and the cleanup of those a killed run left are :mod:`frmask._temps`'; folders
are :mod:`frmask._atomic_folder`'s. An OSError about a temporary names the user's destination, never the
hidden file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from frmask._temps import remove_stale_temps, try_lock


def fsync_dir(folder) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def umask() -> int:
    """The process umask, read without changing it where possible (Linux), else via os.umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp_file(target: Path) -> tuple[int, Path]:
    """``(fd, path)`` of a new temporary file ``.NAME.XXXXXXXX.tmp`` beside ``target``, locked while ``fd`` is
    open; stale temporary files of ``target`` are removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try_lock(fd)
    return fd, Path(tmp)


def open_temp_file(target):
    """``(binary file open for writing, its path)``: a new locked temporary file beside ``target`` for a
    writer that renames it itself (as :class:`frmask.io.recordio.RecordWriter` does); stale ones of
    ``target`` are removed first. The lock lasts until the file is closed."""
    fd, tmp = _new_temp_file(Path(target))
    os.chmod(tmp, 0o666 & ~umask())
    return os.fdopen(fd, "wb"), tmp


def _names_temp(exc: OSError, tmp: Path) -> bool:
    """Whether ``exc`` is about the temporary ``tmp``."""
    return any(name is not None and os.fspath(name) == os.fspath(tmp) for name in (exc.filename, exc.filename2))


def _destination_error(exc: OSError, path: Path) -> OSError:
    """``exc`` raised again naming the user's destination ``path``, never frmask's hidden temporary."""
    return OSError(exc.errno, f"{path}: cannot write the file: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.
    Stale temporary files of ``path`` left by a killed run are removed first (the stale rule of
    :mod:`frmask._temps`).

    An OSError about the temporary (making it, writing it in the caller's block, renaming it) is raised
    again naming ``path``, never the hidden file; other errors pass unchanged."""
    path = Path(path)
    try:
        fd, tmp = _new_temp_file(path)
    except OSError as exc:
        raise _destination_error(exc, path) from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and _names_temp(exc, tmp):
            raise _destination_error(exc, path) from None
        raise
    finally:
        os.close(fd)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_paths(paths):
    """Yield one temporary path per target (all created first); on success all replace their targets,
    on any error (while creating the temporaries or in the caller's block) none does and all are removed.

    For commands with several outputs: either every file is written or none is. An OSError about a
    temporary (or about creating one) is raised again naming the user's path, never the hidden file (each
    :func:`atomic_path` does it for its own).
    """
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]
