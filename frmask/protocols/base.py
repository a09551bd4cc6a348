"""The :class:`Protocol` type: the images to embed, the pairs to compare, and the scenarios to report.

A protocol lists its images once (``images``, each embedded once however many pairs use it) and its pairs
as indices into that list. ``genuine`` is True for a same-subject pair. ``scenarios`` maps a scenario
name (``mask-vs-nomask`` ...) to a boolean selection of pairs; every protocol also reports ``all``.
``folds``: the number of contiguous folds for k-fold accuracy (10 for the LFW-style ``.bin``
benchmarks), or None where the protocol defines none.

Images are read as encoded bytes (:meth:`Protocol.image_bytes`): the bytes key the embedding cache, so a
re-run on the same files with the same model is instant, and a changed file is embedded again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ALIGN_MODES = ("auto", "detect", "none")
#: image bytes starting with this are a failure to acquire found while reading (the rest is the reason)
FTA_PREFIX = b"frmask-fta:"


@dataclass(frozen=True)
class ImageEntry:
    """One image of a protocol: a display ``key`` (unique), its file (None for images held in memory),
    ``align`` (``none``: already an aligned ArcFace-template crop; ``detect``: find the face and align it;
    ``auto``: aligned when it is a 112x112 crop, detected otherwise) and an optional ``label`` (e.g.
    MFR2's mask type)."""

    key: str
    path: Path | None = None
    align: str = "auto"
    label: str | None = None


@dataclass
class Protocol:
    """Images, pairs and scenarios of one verification protocol (module docstring)."""

    name: str
    images: list[ImageEntry]
    pair_a: np.ndarray
    pair_b: np.ndarray
    genuine: np.ndarray
    subjects_a: np.ndarray | None = None
    subjects_b: np.ndarray | None = None
    scenarios: dict[str, np.ndarray] = field(default_factory=dict)
    folds: int | None = None
    description: str = ""
    reader: Callable[[int], bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.pair_a = np.asarray(self.pair_a, dtype=np.int64)
        self.pair_b = np.asarray(self.pair_b, dtype=np.int64)
        self.genuine = np.asarray(self.genuine, dtype=bool)
        n = len(self.genuine)
        if self.pair_a.shape != (n,) or self.pair_b.shape != (n,):
            raise ValueError(f"protocol {self.name}: pair_a, pair_b and genuine must have one entry per pair")
        if n == 0:
            raise ValueError(f"protocol {self.name}: no pairs")
        for side in (self.pair_a, self.pair_b):
            if side.min() < 0 or side.max() >= len(self.images):
                raise ValueError(f"protocol {self.name}: a pair refers to an image outside 0..{len(self.images) - 1}")
        for name, sel in self.scenarios.items():
            sel = np.asarray(sel, dtype=bool)
            if sel.shape != (n,):
                raise ValueError(f"protocol {self.name}: scenario {name!r} must select among the {n} pairs")
            self.scenarios[name] = sel

    @property
    def n_pairs(self) -> int:
        return len(self.genuine)

    def image_bytes(self, index: int) -> bytes:
        """The encoded bytes of image ``index`` (its file, or the protocol's in-memory reader)."""
        if self.reader is not None:
            return self.reader(index)
        entry = self.images[index]
        return Path(entry.path).read_bytes()

    def scenario_names(self) -> list[str]:
        """``all`` followed by the protocol's own scenarios that hold at least one pair."""
        return ["all"] + [name for name, sel in self.scenarios.items() if sel.any()]

    def selection(self, scenario: str) -> np.ndarray:
        """Boolean selection of the pairs of ``scenario`` (``all``: every pair)."""
        if scenario == "all":
            return np.ones(self.n_pairs, bool)
        if scenario not in self.scenarios:
            raise ValueError(f"protocol {self.name} has no scenario {scenario!r}; it has "
                             f"{', '.join(self.scenario_names())}")
        return self.scenarios[scenario]


def check_align(align: str) -> str:
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
    return align


def missing_files_error(missing: list[tuple[str, Path]], source: Path) -> ValueError:
    """One error naming every missing file (with where it was named), so a user fixes them all at once."""
    lines = "\n".join(f"  {where}: {path}" for where, path in missing)
    return ValueError(f"{source}: {len(missing)} image file(s) named in the pairs do not exist:\n{lines}")
