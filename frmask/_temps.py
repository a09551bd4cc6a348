"""frmask's temporary entries beside an output: their names, their locks, and the cleanup of stale ones.

Names (frmask's own, and only these are ever cleaned up): ``.NAME.XXXXXXXX.tmp`` for a file ``NAME``,
``.NAME.tmp-XXXXXXXX`` for a folder being built and ``.NAME.old-XXXXXXXX`` for the folder it replaces,
``XXXXXXXX`` being :mod:`tempfile`'s 8 random characters. The writing process holds an exclusive ``flock``
on each temporary entry while it lives. **Stale rule**: a ``kill -9`` leaves such an entry behind; the next
write of the same target in that folder removes it when (1) no live process holds its lock and (2) it was
last modified before the current process imported this module. Both must hold, so an entry still being
written, or made by another process since this one started, is never touched. Where ``flock`` does not
exist (not POSIX), nothing is cleaned. A stale ``.old-`` folder loses only the entries its manifest lists
(:mod:`frmask._manifest`); anything else in it stays.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from pathlib import Path

_STARTED = time.time()  # entries last modified before this are old enough to be stale (module docstring)

_RANDOM = r"[a-z0-9_]{8}"
_TEMP_FILE = re.compile(rf"^\.(?P<target>.+)\.{_RANDOM}\.tmp$")
_TEMP_DIR = re.compile(rf"^\.(?P<target>.*)\.(?P<kind>tmp|old)-{_RANDOM}$")


def try_lock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another process holds one (or no
    flock exists here)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _temp_target(name: str, is_dir: bool) -> tuple[str, str] | None:
    """``(target name, kind)`` of one of frmask's temporary names (``file``, ``tmp`` or ``old``), else None."""
    match = (_TEMP_DIR if is_dir else _TEMP_FILE).match(name)
    if match is None:
        return None
    return match["target"], (match["kind"] if is_dir else "file")


def remove_stale_temps(folder, target, *, keep=()) -> list[Path]:
    """Remove the stale temporary entries (module docstring) that frmask left in ``folder`` while writing
    ``target`` (a name, or a predicate on names); ``keep``: paths never to touch. Returns what was removed."""
    folder = Path(folder)
    wanted = target if callable(target) else (lambda name: name == target)
    keep = {os.path.abspath(k) for k in keep}
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or os.path.abspath(entry.path) in keep:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (is_dir or stat.S_ISREG(info.st_mode)):
            continue  # never a symlink or anything else
        parsed = _temp_target(entry.name, is_dir)
        if parsed is None or not wanted(parsed[0]) or info.st_mtime >= _STARTED:
            continue
        if _remove_if_unlocked(Path(entry.path), parsed[1]):
            removed.append(Path(entry.path))
    return removed


def _remove_if_unlocked(path: Path, kind: str) -> bool:
    from frmask._manifest import remove_written

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if not try_lock(fd):
            return False  # a live process is writing it
        if kind == "file":
            path.unlink()
        elif kind == "tmp":
            shutil.rmtree(path)
        else:  # a replaced folder moved aside: only what its manifests list goes
            for inner in list(path.iterdir()):
                if inner.is_dir() and not inner.is_symlink():
                    remove_written(inner)
            path.rmdir()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
