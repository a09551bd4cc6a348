"""A small on-disk cache of prepared mask templates (the built-in masks' rendered images), so that a fresh
``frmask synth`` process does not redraw them (about 0.2 s each).

An entry is one ``.npz`` file (no pickles) named by the SHA-256 of its key. The key holds the request
(mask name, scale) and a *code fingerprint*: the source bytes of every module that shapes the result, the
numpy and OpenCV versions and OpenCV's CPU dispatch line, so any change there simply misses. Each entry
also stores a SHA-256 of its arrays: an unreadable, truncated or altered file is ignored and rewritten.
Files are written atomically (temporary file, fsync, rename), so concurrent runs never see half an entry.
Failing to read or write the cache is never an error: the result is computed as if there were none.

Location: ``$FRMASK_TEMPLATE_CACHE`` if set (``off``, ``0`` or the empty string disable the cache), else
``$XDG_CACHE_HOME/frmask/templates`` (XDG default ``~/.cache``). Entries are ~0.1-0.4 MB; deleting the
folder is always safe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "cached_arrays", "code_fingerprint"]

FORMAT = 1
_DISABLED = ("", "0", "off", "false", "no")


def cache_dir() -> Path | None:
    """The cache folder, or None when disabled (module docstring)."""
    value = os.environ.get("FRMASK_TEMPLATE_CACHE")
    if value is not None:
        return None if value.strip().lower() in _DISABLED else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "frmask" / "templates"


@lru_cache(maxsize=None)
def code_fingerprint(modules: tuple[str, ...]) -> str:
    """SHA-256 over the source files of ``modules`` (dotted names) and the numerical libraries' versions."""
    import importlib.util
    import platform

    import cv2

    h = hashlib.sha256(f"format={FORMAT}\0numpy={np.__version__}\0cv2={cv2.__version__}\0"
                       f"cpu={cv2.getCPUFeaturesLine()}\0{platform.machine()}\0".encode())
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            raise RuntimeError(f"no source file for {name}")
        h.update(name.encode() + b"\0" + Path(spec.origin).read_bytes() + b"\0")
    return h.hexdigest()


def _digest(arrays: dict) -> bytes:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.data)
    return h.digest()


def _load(path: Path) -> dict | None:
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception:  # noqa: BLE001 - missing or unreadable: a miss
        return None
    stored = arrays.pop("__sha256__", None)
    if stored is None or stored.dtype != np.uint8 or stored.tobytes() != _digest(arrays):
        return None
    return arrays


def _store(path: Path, arrays: dict) -> None:
    from frmask._atomic import write_bytes_atomic

    buf = io.BytesIO()
    np.savez(buf, __sha256__=np.frombuffer(_digest(arrays), np.uint8), **arrays)
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError:
        pass  # a read-only or full disk: no cache


def cached_arrays(kind: str, key: dict, modules: tuple[str, ...], compute, check=None) -> dict:
    """``compute()`` (a dict name -> numpy array), or the stored result of an earlier call with the same
    ``kind``, ``key`` (JSON-serialisable) and fingerprint of ``modules``. ``check(arrays)`` may reject a
    stored entry that does not look right (returns False): it is then recomputed and rewritten."""
    folder = cache_dir()
    if folder is None:
        return compute()
    try:
        fingerprint = code_fingerprint(tuple(modules))
    except Exception:  # noqa: BLE001 - cannot fingerprint the code: do not cache
        return compute()
    text = json.dumps({"kind": kind, "key": key, "code": fingerprint}, sort_keys=True)
    path = folder / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:40]}.npz"
    arrays = _load(path)
    if arrays is not None and (check is None or check(arrays)):
        return arrays
    arrays = compute()
    _store(path, arrays)
    return arrays
