"""Atomic output: files and folders are built under a temporary name beside the target, then renamed.

An interrupted or failed write never leaves a partial file or folder at the target path, and a completed
one survives a crash (file and folder are fsynced). Files get the usual permissions (0666 less umask).

Temporary names (frmask's own, and only these are ever cleaned up): ``.NAME.XXXXXXXX.tmp`` for a file
``NAME``, ``.NAME.tmp-XXXXXXXX`` for a folder being built and ``.NAME.old-XXXXXXXX`` for the folder it
replaces, ``XXXXXXXX`` being :mod:`tempfile`'s 8 random characters. The writing process holds an exclusive
``flock`` on each temporary entry while it lives. **Stale rule**: a ``kill -9`` leaves such an entry behind;
the next write of the same target in that folder removes it when (1) no live process holds its lock and (2)
it was last modified before the current process imported this module. Both must hold, so an entry still
being written, or made by another process since this one started, is never touched. Where ``flock`` does
not exist (not POSIX), nothing is cleaned. A stale ``.old-`` folder loses only the entries its manifest
lists (below); anything else in it stays.

Folders (:func:`replace_dir`): a folder frmask writes carries :data:`MANIFEST`, the list of the files and
sub-folders it wrote (with each file's size and SHA-256), written from the temporary folder just before the
rename. An existing target is replaced only when every entry in it is listed there, unchanged (the same size and,
for a file modified since the manifest was written, the same SHA-256; files the user deleted are fine); anything else is refused
with the entries named, and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import warnings
from pathlib import Path

_STARTED = time.time()  # entries last modified before this are old enough to be stale (module docstring)

MANIFEST = ".frmask-manifest.json"
_MANIFEST_FORMAT = "frmask-output-folder"

_RANDOM = r"[a-z0-9_]{8}"
_TEMP_FILE = re.compile(rf"^\.(?P<target>.+)\.{_RANDOM}\.tmp$")
_TEMP_DIR = re.compile(rf"^\.(?P<target>.*)\.(?P<kind>tmp|old)-{_RANDOM}$")


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


def _try_lock(fd: int) -> bool:
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


# ------------------------------------------------------------------------------------------- stale temps


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
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if not _try_lock(fd):
            return False  # a live process is writing it
        if kind == "file":
            path.unlink()
        elif kind == "tmp":
            shutil.rmtree(path)
        else:  # a replaced folder moved aside: only what its manifests list goes
            for inner in list(path.iterdir()):
                if inner.is_dir() and not inner.is_symlink():
                    _remove_written(inner)
            path.rmdir()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------- atomic files


def _new_temp_file(target: Path) -> tuple[int, Path]:
    """``(fd, path)`` of a new temporary file ``.NAME.XXXXXXXX.tmp`` beside ``target``, locked while ``fd`` is
    open; stale temporary files of ``target`` are removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    _try_lock(fd)
    return fd, Path(tmp)


def open_temp_file(target):
    """``(binary file open for writing, its path)``: a new locked temporary file beside ``target`` for a
    writer that renames it itself (as :class:`frmask.io.recordio.RecordWriter` does); stale ones of
    ``target`` are removed first. The lock lasts until the file is closed."""
    fd, tmp = _new_temp_file(Path(target))
    os.chmod(tmp, 0o666 & ~_umask())
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
    Stale temporary files of ``path`` left by a killed run are removed first (module docstring).

    An OSError about the temporary (making it, writing it in the caller's block, renaming it) is raised
    again naming ``path``, never the hidden file; other errors pass unchanged."""
    path = Path(path)
    try:
        fd, tmp = _new_temp_file(path)
    except OSError as exc:
        raise _destination_error(exc, path) from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
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


def csv_text(rows) -> str:
    """Rows (sequences of values) as CSV text through the csv module: a field holding a comma, a quote or a
    newline is quoted and round-trips; ``None`` is an empty field; lines end with ``\\n``."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_csv_atomic(path, rows) -> None:
    """Write ``rows`` (the header first) to ``path`` as CSV (:func:`csv_text`), atomically."""
    write_text_atomic(path, csv_text(rows))


# --------------------------------------------------------------------------------------- atomic folders


class TempDir(type(Path())):
    """The path of a temporary folder made by :func:`make_temp_dir`; ``release()`` drops its lock."""

    _fd: int | None = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def make_temp_dir(target) -> TempDir:
    """A new, locked temporary folder ``.NAME.tmp-XXXXXXXX`` beside ``target``, to build it in and then hand
    to :func:`replace_dir`. Stale temporary folders of ``target`` are removed first (module docstring)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    tmp = TempDir(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_RDONLY)
        if _try_lock(fd):
            tmp._fd = fd
        else:
            os.close(fd)
    return tmp


def discard_temp_dir(tmp) -> None:
    """Remove a temporary folder that will not be used (an error or an interrupt while building it)."""
    if isinstance(tmp, TempDir):
        tmp.release()
    shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _walk(folder: Path, prefix: str = ""):
    """``(relative posix path, DirEntry)`` of everything under ``folder`` (symlinks not followed)."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        rel = prefix + entry.name
        yield rel, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, rel + "/")


def _listing(folder: Path) -> dict:
    """The manifest entries of ``folder``'s contents: ``{path: {"size", "sha256"}}`` for files, ``{path:
    {"dir": True}}`` for folders (nothing time-dependent: the manifest is as deterministic as the folder)."""
    entries = {}
    for rel, entry in _walk(folder):
        if rel == MANIFEST:
            continue
        if entry.is_dir(follow_symlinks=False):
            entries[rel] = {"dir": True}
        elif entry.is_file(follow_symlinks=False):
            entries[rel] = {"size": entry.stat(follow_symlinks=False).st_size, "sha256": _sha256(entry.path)}
        else:
            raise ValueError(f"{entry.path}: not a plain file or folder; an frmask output folder holds only those")
    return entries


def write_manifest(folder) -> None:
    """Write :data:`MANIFEST` into ``folder``, listing everything it holds now."""
    folder = Path(folder)
    data = {"format": _MANIFEST_FORMAT, "version": 1, "entries": _listing(folder)}
    (folder / MANIFEST).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")


def _manifest(folder: Path) -> dict | None:
    """The entries of ``folder``'s manifest; None when it has none or it is not one of frmask's."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _MANIFEST_FORMAT or not isinstance(data.get("entries"), dict):
        return None
    return data["entries"]


def _written(folder: Path, legacy) -> dict | None:
    """What frmask wrote in ``folder``: its manifest's entries, else (older frmask versions wrote no manifest)
    ``legacy(folder)`` (a set of names, or None) as entries without sizes; None when neither says."""
    entries = _manifest(folder)
    if entries is not None:
        return entries
    names = legacy(folder) if legacy is not None else None
    if names is None:
        return None
    return {name: {"dir": True} if (folder / name).is_dir() and not (folder / name).is_symlink() else {}
            for name in names}


def _changed(entry: os.DirEntry, listed: dict, written_ns: int) -> bool:
    """Whether a file differs from its manifest entry: with its size, a file not modified after the manifest
    was written (``written_ns``) is taken as unchanged, as make does; otherwise (an edit, a copy) the contents'
    SHA-256 decides."""
    info = entry.stat(follow_symlinks=False)
    if info.st_size != listed.get("size"):
        return True
    return info.st_mtime_ns > written_ns and _sha256(entry.path) != listed["sha256"]


def foreign_entries(folder, legacy=None) -> list[str]:
    """The entries of the existing folder ``folder`` that frmask did not write there (module docstring), each
    with why; empty when it may be replaced. ``legacy``: for folders without a manifest, a function of the
    folder giving the names older frmask versions wrote there (or None: not such a folder)."""
    folder = Path(folder)
    written = _written(folder, legacy)
    written_ns = 0  # unknown: every file's contents are checked
    with contextlib.suppress(OSError):
        written_ns = os.stat(folder / MANIFEST).st_mtime_ns
    problems = []
    for rel, entry in _walk(folder):
        if rel == MANIFEST and written is not None:
            continue
        listed = None if written is None else written.get(rel)
        if listed is None:
            problems.append(f"{rel} (not written by frmask)" if written is not None else rel)
        elif entry.is_symlink() or entry.is_dir() != bool(listed.get("dir")):
            problems.append(f"{rel} (replaced since frmask wrote it)")
        elif "sha256" in listed and _changed(entry, listed, written_ns):
            problems.append(f"{rel} (changed since frmask wrote it)")
    return problems


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
        if _written(out, legacy) is None:
            raise ValueError(f"{out}: not an frmask run or output folder, and not empty ({listed}); frmask "
                             f"replaces its output folder as a whole: choose another output folder")
        raise ValueError(f"{out}: not replaced: it holds entries that frmask did not write there: {listed}; "
                         f"move those away or choose another output folder")


def _remove_written(folder: Path, legacy=None) -> bool:
    """Delete from ``folder`` only what its manifest (or, without one, ``legacy``'s names) lists, then the
    folder if that empties it. True when the folder is gone."""
    written = _written(folder, legacy) or {}
    for rel, listed in sorted(written.items(), key=lambda kv: -kv[0].count("/")):
        path = os.path.join(folder, rel)
        with contextlib.suppress(OSError):
            if listed.get("dir"):
                os.rmdir(path)  # only when empty
            elif stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
    with contextlib.suppress(OSError):
        (folder / MANIFEST).unlink()
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


def replace_dir(tmp, out, *, legacy=None) -> None:
    """Put the finished temporary folder ``tmp`` (beside ``out``) at ``out``, with its manifest: a new ``out``
    is a rename; an existing one must pass :func:`check_replaceable` and is moved aside, replaced, then
    emptied of exactly what frmask wrote. On any failure ``out`` is left as it was. ``legacy``: see
    :func:`foreign_entries`."""
    lock = tmp if isinstance(tmp, TempDir) else None
    tmp, out = Path(tmp), Path(out)
    check_replaceable(out, legacy)
    write_manifest(tmp)
    os.chmod(tmp, 0o777 & ~_umask())
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
        if not (_remove_written(moved, legacy) and _rmdir(old)):
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
