"""Atomic file output: write to a temporary file beside the target, fsync, then rename over it.

An interrupted or failed write never leaves a partial file at the target path, and a completed one
survives a crash (file and folder are fsynced). The file gets the usual permissions (0666 less umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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


def _umask() -> int:
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


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    temporary (or about creating one) is raised again naming the user's path, never the hidden file.
    """
    paths = [Path(p) for p in paths]
    current = None
    temporaries: dict[str, Path] = {}
    try:
        with contextlib.ExitStack() as stack:
            for current in paths:
                temporaries[str(stack.enter_context(atomic_path(current)))] = current
            current = None
            yield [Path(t) for t in temporaries]
    except OSError as exc:
        target = temporaries.get(str(exc.filename)) or current
        if target is None:
            raise
        raise OSError(exc.errno, f"{target}: cannot write the file: {exc.strerror}") from None
