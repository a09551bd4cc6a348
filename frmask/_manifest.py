"""Manifests of output folders: what frmask wrote in a folder, and whether a folder holds anything else.

A folder frmask writes carries :data:`MANIFEST`, the list of the files and sub-folders it wrote (with each
file's size and SHA-256), written just before the folder is put in place (:mod:`frmask._atomic_folder`).
A folder may be replaced only when every entry in it is listed there, unchanged (the same size and, for a
file modified since the manifest was written, the same SHA-256; files the user deleted are fine).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

MANIFEST = ".frmask-manifest.json"
_MANIFEST_FORMAT = "frmask-output-folder"


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


def written_entries(folder: Path, legacy) -> dict | None:
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
    written = written_entries(folder, legacy)
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


def remove_written(folder: Path, legacy=None) -> bool:
    """Delete from ``folder`` only what its manifest (or, without one, ``legacy``'s names) lists, then the
    folder if that empties it. True when the folder is gone."""
    written = written_entries(folder, legacy) or {}
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
