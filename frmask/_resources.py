"""Where frmask's bundled data files are, installed or in a source checkout."""

from __future__ import annotations

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
