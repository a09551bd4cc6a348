"""Output folders built under a temporary name beside the target, then put in place whole.

:func:`make_temp_dir` makes the locked temporary folder (:mod:`frmask._temps` names it and cleans stale ones),
:func:`replace_dir` puts it at the target with its manifest (:mod:`frmask._manifest`): a new target is a
rename, an existing one is replaced only when frmask wrote everything in it; anything else is refused with
the entries named, and nothing is deleted. The folder is fsynced; an interruption leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from frmask._atomic import fsync_dir, umask
from frmask._manifest import (
    foreign_entries,
    remove_written,
    write_manifest,
    written_entries,
)
from frmask._temps import remove_stale_temps, try_lock


class TempDir(type(Path())):
    """The path of a temporary folder made by :func:`make_temp_dir`; ``release()`` drops its lock."""

    _fd: int | None = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def make_temp_dir(target) -> TempDir:
    """A new, locked temporary folder ``.NAME.tmp-XXXXXXXX`` beside ``target``, to build it in and then hand
    to :func:`replace_dir`. Stale temporary folders of ``target`` are removed first (the stale rule of
    :mod:`frmask._temps`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    tmp = TempDir(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_RDONLY)
        if try_lock(fd):
            tmp._fd = fd
        else:
            os.close(fd)
    return tmp


def discard_temp_dir(tmp) -> None:
    """Remove a temporary folder that will not be used (an error or an interrupt while building it)."""
    if isinstance(tmp, TempDir):
        tmp.release()
    shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(out, legacy=None) -> None:
    """ValueError unless :func:`replace_dir` may put a new folder at ``out``: not the current folder or one
    holding it, not a symlink or a file, and when it exists, holding nothing frmask did not write there."""
    out = Path(out)
    cwd = Path.cwd().resolve()
    if os.path.lexists(out) and out.is_symlink():
        raise ValueError(f"{out}: is a symbolic link; give the folder itself, or a new folder, as the output")
    resolved = out.resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ValueError(f"{out}: is the current folder or holds it; the output folder is replaced as a whole, "
                         f"so give a new folder (e.g. --out runs/NAME)")
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    problems = foreign_entries(out, legacy)
    if problems:
        listed = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        if written_entries(out, legacy) is None:
            raise ValueError(f"{out}: not an frmask run or output folder, and not empty ({listed}); frmask "
                             f"replaces its output folder as a whole: choose another output folder")
        raise ValueError(f"{out}: not replaced: it holds entries that frmask did not write there: {listed}; "
                         f"move those away or choose another output folder")


def replace_dir(tmp, out, *, legacy=None) -> None:
    """Put the finished temporary folder ``tmp`` (beside ``out``) at ``out``, with its manifest: a new ``out``
    is a rename; an existing one must pass :func:`check_replaceable` and is moved aside, replaced, then
    emptied of exactly what frmask wrote. On any failure ``out`` is left as it was. ``legacy``: see
    :func:`foreign_entries`."""
    lock = tmp if isinstance(tmp, TempDir) else None
    tmp, out = Path(tmp), Path(out)
    check_replaceable(out, legacy)
    write_manifest(tmp)
    os.chmod(tmp, 0o777 & ~umask())
    if not os.path.lexists(out):
        os.replace(tmp, out)
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        moved = old / out.name
        try:
            os.replace(out, moved)
        except BaseException:
            old.rmdir()
            raise
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(moved, out)
            old.rmdir()
            raise
        if not (remove_written(moved, legacy) and _rmdir(old)):
            warnings.warn(f"{old}: kept: the previous {out.name} gained entries frmask did not write while it "
                          f"was being replaced", stacklevel=2)
    if lock is not None:
        lock.release()
    fsync_dir(out.parent)
    remove_stale_temps(out.parent, out.name)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except OSError:
        return False
    return True
