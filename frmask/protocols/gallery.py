"""The 1:N identification split of an identity-folder tree: a gallery of enrolled images and the probes.

``DIR/<identity>/<image>`` as :mod:`frmask.protocols.folder` reads it (identities sorted by folder name, images
by file name: ``10.pgm`` sorts before ``2.pgm``). With ``gallery_per_identity`` K and ``nonmated_fraction`` F:

* **Left-out identities** (open set): m = ``round(F * n_identities)`` identities (Python's ``round``: halves to
  even) chosen by ``numpy.random.default_rng(seed).choice(n_identities, m, replace=False)`` among all
  identities (so the choice does not depend on K) are not enrolled; all their images are *non-mated* probes.
* **Enrolled identities**: the first K images of each other identity are its gallery templates, the rest its
  *mated* probes (an identity with exactly K images has none).
* **Identities with fewer than K images** cannot be enrolled with K templates: they are not enrolled and all
  their images become non-mated probes too. They are named in :attr:`GallerySplit.short` (``frmask identify``
  prints them), never dropped silently.
* A split that enrols no identity, or leaves no mated probe (every enrolled identity has exactly K images),
  is an error.

``mask``: ``none``; ``masked-vs-nonmasked`` masks the probes only, the gallery stays unmasked (as NIST's mask
studies do); ``masked-vs-masked`` masks both. Masked images are exactly those of the folder protocol (the crops
``frmask synth --images DIR`` writes with the same seed and mask options), read through its reader.

Entries: ``images[:n_gallery]`` are the gallery, ``images[n_gallery:]`` the probes, in tree order;
:meth:`GallerySplit.image_bytes` reads them, so :func:`frmask.embed.pipeline.embed_protocol` embeds a split as
it embeds any protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frmask.protocols.base import ImageEntry
from frmask.protocols.folder import MASK_MODES, FolderProtocol, load_folder


def _named(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass
class GallerySplit:
    """Gallery and probes of an identity-folder tree (module docstring)."""

    name: str
    images: list[ImageEntry]
    identities: list[str]
    identity: np.ndarray  # identity index of each entry
    n_gallery: int
    enrolled: np.ndarray  # per identity: True when its K templates are in the gallery
    left_out: list[str]  # identities left out by the non-mated fraction
    short: list[str]  # identities with fewer than K images (not enrolled, probes only)
    settings: dict = field(default_factory=dict)
    description: str = ""
    folder: FolderProtocol | None = field(default=None, repr=False)
    source: np.ndarray | None = field(default=None, repr=False)  # entry index in ``folder`` of each entry

    @property
    def n_identities(self) -> int:
        return len(self.identities)

    @property
    def gallery_identity(self) -> np.ndarray:
        return self.identity[:self.n_gallery]

    @property
    def probe_identity(self) -> np.ndarray:
        return self.identity[self.n_gallery:]

    @property
    def probe_mate(self) -> np.ndarray:
        """Per probe the identity index of its mate in the gallery, -1 for a non-mated probe."""
        ident = self.probe_identity
        return np.where(self.enrolled[ident], ident, -1)

    @property
    def n_probes(self) -> int:
        return len(self.images) - self.n_gallery

    def image_bytes(self, index: int) -> bytes:
        """The encoded bytes of entry ``index`` (masked where the split masks it)."""
        return self.folder.image_bytes(int(self.source[index]))


def split_gallery(data, gallery_per_identity: int, *, nonmated_fraction: float = 0.0, seed: int = 0,
                  mask: str = "none", spec=None, align: str = "auto", detector: str = "yunet") -> GallerySplit:
    """The gallery/probe split of the identity folders under ``data`` (module docstring).

    ``spec``/``seed``: the masks, as ``frmask synth`` draws them (``seed`` also chooses the left-out
    identities); ``align`` applies to unmasked images (``auto``: 112x112 images are aligned crops, others are
    detected). ValueError for K < 1, F outside [0, 1), an unknown mask mode, a tree the folder protocol refuses
    (no subfolder, an identity folder without images), or a split that enrols no identity or leaves no
    mated probe.
    """
    k = int(gallery_per_identity)
    if k < 1 or k != gallery_per_identity:
        raise ValueError(f"gallery_per_identity must be a whole number >= 1, got {gallery_per_identity!r}")
    f = float(nonmated_fraction)
    if not (0.0 <= f < 1.0):
        raise ValueError(f"nonmated_fraction must lie in [0, 1), got {nonmated_fraction!r}")
    if mask not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mask!r} for identification; choose one of {', '.join(MASK_MODES)}")
    folder = load_folder(data, mask=mask, spec=spec, seed=seed, align=align, detector=detector)
    names = folder.identities
    ident = folder.identity[folder.reference]  # identity of image i of the tree, in tree order
    counts = np.bincount(ident, minlength=len(names))
    m = round(f * len(names))
    left = np.zeros(len(names), bool)
    left[np.random.default_rng(seed).choice(len(names), m, replace=False)] = True
    short = ~left & (counts < k)
    enrolled = ~left & ~short
    if not enrolled.any():
        why = (f"{m} of {len(names)} identities are left out (nonmated_fraction {f:g})" if m else "")
        if short.any():
            why += ("; " if why else "") + f"{int(short.sum())} have fewer than {k} images"
        raise ValueError(f"{data}: the gallery is empty: no identity can be enrolled with {k} image(s) ({why})")
    position = np.arange(len(ident)) - np.r_[0, np.cumsum(counts)][ident]  # index of each image in its folder
    in_gallery = enrolled[ident] & (position < k)
    if not (enrolled & (counts > k)).any():
        raise ValueError(f"{data}: no mated probe: every enrolled identity has exactly {k} image(s), all in the "
                         f"gallery; lower --gallery-per-identity")
    positions = np.r_[np.flatnonzero(in_gallery), np.flatnonzero(~in_gallery)]
    source = np.r_[folder.reference[positions[:in_gallery.sum()]], folder.probe[positions[in_gallery.sum():]]]
    images = [folder.images[i] for i in source]
    settings = {"gallery_per_identity": k, "nonmated_fraction": f, "seed": seed, "mask": mask}
    split = GallerySplit("identify", images, names, ident[positions], int(in_gallery.sum()), enrolled,
                         [names[i] for i in np.flatnonzero(left)], [names[i] for i in np.flatnonzero(short)],
                         settings, "", folder, source)
    mated = int(np.count_nonzero(split.probe_mate >= 0))
    what = "" if mask == "none" else f", {mask}"
    split.description = (f"identity folders at {data}: {len(names)} identities, {split.n_gallery} gallery images "
                         f"({int(enrolled.sum())} identities x {k}), {mated} mated and {split.n_probes - mated} "
                         f"non-mated probes ({m} identities left out, seed {seed}"
                         + (f"; {int(short.sum())} with fewer than {k} images, probes only" if short.any() else "")
                         + f"){what}")
    return split


def short_note(split: GallerySplit) -> str | None:
    """The line saying which identities had fewer than K images (None when none had)."""
    if not split.short:
        return None
    k = split.settings["gallery_per_identity"]
    return (f"{len(split.short)} identities have fewer than {k} images and are not enrolled; their images are "
            f"non-mated probes: {_named(split.short)}")
