"""Mask colours: named palettes, random draws, and the published code's colour files.

Palettes are CSV files ``name,r,g,b`` (a header line, then one sRGB colour per line, 0..255) in the
resource package :mod:`frmask.colors` (the folder ``data/colors/`` of the source tree). The shipped
``realistic`` palette holds common surgical, KN95 and cloth mask colours; the ``named`` palette holds the
plain colours that mask-effect studies name (NIST FRVT's light-blue, white, black, ...), one colour per
name, for a fixed colour per image: :func:`named_color` and ``frmask synth --color NAME``.

:func:`random_color` draws from a palette or, with no palette, uniformly from all 24-bit RGB colours
(the MaskInv paper's "random colour"). Pass it the image's own generator from
:func:`frmask.synth.seeding.image_rng` so that colours never depend on processing order.

:func:`read_color_file` reads the colour files of the published MaskInv evaluation code, lines like
``12,[ 34 120 255]``, keyed by the image index written on each line (the published code matched them
by line position instead, one of its defects).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from frmask._resources import colors_dir
from pathlib import Path

import numpy as np

__all__ = [
    "ColorFileError",
    "Palette",
    "PaletteError",
    "color_names",
    "load_palette",
    "named_color",
    "palette_names",
    "random_color",
    "read_color_file",
]


class PaletteError(ValueError):
    """A palette that is missing or malformed."""


class ColorFileError(ValueError):
    """A malformed line in a published-format colour file; the message names the file and line."""


@dataclass(frozen=True, eq=False)
class Palette:
    """Named sRGB colours: ``names`` (K,) and ``rgb`` uint8 (K, 3), read-only."""

    name: str
    names: tuple
    rgb: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def as_dict(self) -> dict:
        return {n: tuple(int(v) for v in c) for n, c in zip(self.names, self.rgb)}


def palette_names() -> list[str]:
    """Names of the palettes shipped in :mod:`frmask.colors`."""
    root = colors_dir()
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".csv"))


def _parse_palette(text: str, name: str, origin: str) -> Palette:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != ["name", "r", "g", "b"]:
        raise PaletteError(f"palette {origin}: the first line must be the header 'name,r,g,b'")
    names, rgb = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 4:
            raise PaletteError(f"palette {origin} line {lineno}: expected 4 fields name,r,g,b, got {row!r}")
        try:
            values = [int(c) for c in row[1:]]
        except ValueError:
            raise PaletteError(f"palette {origin} line {lineno}: r, g, b must be integers, got {row[1:]!r}") from None
        if not all(0 <= v <= 255 for v in values):
            raise PaletteError(f"palette {origin} line {lineno}: r, g, b must lie in 0..255, got {values}")
        names.append(row[0].strip())
        rgb.append(values)
    if not names:
        raise PaletteError(f"palette {origin} holds no colours")
    array = np.array(rgb, dtype=np.uint8)
    array.setflags(write=False)
    return Palette(name=name, names=tuple(names), rgb=array)


def load_palette(name: str = "realistic") -> Palette:
    """Load the palette ``name`` (``data/colors/<name>.csv``, installed as ``frmask.colors``).

    A ``name`` that is a path to an existing ``.csv`` file loads that file instead.
    """
    path = Path(name)
    if path.suffix.lower() == ".csv" and path.is_file():
        return _parse_palette(path.read_text(encoding="utf-8"), path.stem, str(path))
    resource = colors_dir().joinpath(f"{name}.csv")
    if not resource.is_file():
        raise PaletteError(f"no palette named {name!r}; available: {', '.join(palette_names()) or 'none'}")
    return _parse_palette(resource.read_text(encoding="utf-8"), name, f"{name!r}")


NAMED_PALETTE = "named"


def color_names() -> tuple[str, ...]:
    """The names of :func:`named_color` (``data/colors/named.csv``), in the file's order."""
    return load_palette(NAMED_PALETTE).names


def named_color(name: str) -> np.ndarray:
    """The RGB of a named colour of ``data/colors/named.csv`` (``light-blue``, ``white``, ``black``, ``grey``,
    ...) as a uint8 (3,) array; an unknown name raises :class:`PaletteError` listing the names."""
    palette = load_palette(NAMED_PALETTE)
    if name not in palette.names:
        raise PaletteError(f"unknown colour {name!r}; the named colours are {', '.join(palette.names)}")
    return palette.rgb[palette.names.index(name)].copy()


def _palette_array(palette) -> np.ndarray:
    if isinstance(palette, Palette):
        return palette.rgb
    if isinstance(palette, str):
        return load_palette(palette).rgb
    array = np.asarray(palette)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise PaletteError(f"a palette must be a Palette, a palette name or a (K, 3) array, got shape {array.shape}")
    if not np.all((array >= 0) & (array <= 255)):
        raise PaletteError("palette colours must lie in 0..255")
    return array.astype(np.uint8)


def random_color(rng: np.random.Generator, palette=None) -> np.ndarray:
    """One colour as a uint8 (3,) RGB array.

    ``palette`` None draws each channel uniformly from 0..255 (the paper's random colour); otherwise
    one colour is chosen uniformly from ``palette`` (a :class:`Palette`, a palette name or a (K, 3)
    array). Uses exactly one draw from ``rng`` either way.
    """
    if palette is None:
        return rng.integers(0, 256, size=3, dtype=np.int64).astype(np.uint8)
    colors = _palette_array(palette)
    return colors[int(rng.integers(0, len(colors)))].copy()


_LINE = re.compile(r"^\s*([+-]?\d+)\s*,\s*\[([^\[\]]*)\]\s*$")


def read_color_file(path) -> dict[int, tuple[int, int, int]]:
    """Read a colour file of the published MaskInv code: ``{image index: (r, g, b)}``.

    Each non-blank line is ``index,[v1 v2 v3]`` (numpy's print of an int array: whitespace-separated,
    commas allowed, e.g. ``12,[ 34 120 255]``). Lines are keyed by their index, not by their position.
    The values are the published code's additive colour offsets (0..149 there); any integers in
    0..255 are accepted. Raises :class:`ColorFileError` naming the file and line for a malformed line,
    a negative index, a value out of range or an index given twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"colour file not found: {path}") from None
    colors: dict[int, tuple[int, int, int]] = {}
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ColorFileError(f"{path} line {lineno}: expected 'index,[r g b]', got {line.strip()!r}")
        index = int(match.group(1))
        fields = [f for f in re.split(r"[\s,]+", match.group(2).strip()) if f]
        try:
            values = tuple(int(f) for f in fields)
        except ValueError:
            raise ColorFileError(f"{path} line {lineno}: colour values must be integers, got {line.strip()!r}") from None
        if len(values) != 3:
            raise ColorFileError(f"{path} line {lineno}: expected 3 colour values, got {len(values)} in {line.strip()!r}")
        if index < 0:
            raise ColorFileError(f"{path} line {lineno}: negative image index {index}")
        if not all(0 <= v <= 255 for v in values):
            raise ColorFileError(f"{path} line {lineno}: colour values must lie in 0..255, got {values}")
        if index in colors:
            raise ColorFileError(f"{path} line {lineno}: image index {index} already given on line {first_line[index]}")
        colors[index] = values
        first_line[index] = lineno
    return colors
