"""Exhaustive protocol of an identity-folder tree: every image compared with every other.

``DIR`` holds one subfolder per identity (``DIR/<identity>/<image>``, any readable image format; other
files such as ``.txt`` and files directly in ``DIR`` are ignored). Identities are sorted by folder name and
images by file name. Two images are a genuine pair when they sit in the same folder, an impostor pair
otherwise. With N images of which n_k belong to identity k, and G = sum_k n_k (n_k - 1) / 2:

* ``mask="none"``: every unordered pair {i, j}, i < j, of unmasked images: N (N - 1) / 2 pairs, G genuine;
* ``mask="masked-vs-masked"``: the same unordered pairs, both images masked;
* ``mask="masked-vs-nonmasked"``: every image is an unmasked *reference* and a masked *probe*; every ordered
  (reference i, probe j), i != j: N (N - 1) pairs, 2 G genuine.

Masked images are the 112x112 crops ``frmask synth --images DIR`` writes (same seed and mask options: image
i of the sorted recursive listing of DIR is seeded with ``(seed, DIR's folder name, i)``), built when their
bytes are read. An image where no face is found is a failure to acquire (its pairs get NaN scores).

How a caller uses it (e.g. for mask-effect grids)::

    p = load_protocol("folder", "orl", mask="masked-vs-nonmasked", spec=MaskSpec(), seed=0)
    p.identity[k]                # identity index of image entry k (name: p.identities[p.identity[k]])
    p.reference, p.probe         # entry indices of the reference side and of the probe side
    p.image_bytes(p.probe[i])    # the masked 112x112 PNG/JPEG bytes of image i (a face-less image: FTA)
    p.images[p.probe[i]].path    # its source file

For ``none`` and ``masked-vs-masked`` both sides are the same N entries (``reference is probe``) and
``ordered`` is False; for ``masked-vs-nonmasked`` entries 0..N-1 are the references and N..2N-1 the probes.
The explicit pair arrays (``pair_a``, ``pair_b``, ``genuine``, ``subjects_a``, ``subjects_b``) are built on
first use, so :func:`frmask.scoring.score_protocol` works on small sets; large sets are scored block-wise
by :mod:`frmask.exhaustive`, which never lists the pairs.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from frmask.protocols.base import FTA_PREFIX, ImageEntry, Protocol, check_align

MASK_MODES = ("none", "masked-vs-masked", "masked-vs-nonmasked")
MAX_LISTED_PAIRS = 50_000_000  # explicit pair arrays beyond this are refused: score block-wise instead


def is_image(path: Path) -> bool:
    from frmask.synth.folder import IMAGE_SUFFIXES

    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_identities(root) -> tuple[list[str], list[list[Path]]]:
    """``(identity names, image paths per identity)`` of an identity-folder tree, both sorted.

    ValueError when ``root`` is not a folder, holds no subfolder, or a subfolder holds no image (all such
    subfolders are named).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected one subfolder of images per identity)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no identity subfolders (expected {root}/<identity>/<image files>)")
    images = [sorted((p for p in f.iterdir() if is_image(p)), key=lambda p: p.name) for f in folders]
    empty = [f.name for f, imgs in zip(folders, images) if not imgs]
    if empty:
        from frmask.synth.folder import IMAGE_SUFFIXES

        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise ValueError(f"{root}: {len(empty)} identity folder(s) hold no image ({', '.join(IMAGE_SUFFIXES)}): "
                         f"{shown}")
    return [f.name for f in folders], images


class _MaskedReader:
    """Bytes of entry k: the file, or (for masked entries) the crop ``frmask synth --images`` writes."""

    def __init__(self, entries: list[ImageEntry], masked: np.ndarray, synth_index: np.ndarray, root: Path,
                 spec, seed: int, detector: str):
        self.entries, self.masked, self.synth_index = entries, masked, synth_index
        self.root, self.spec, self.seed, self.detector = root, spec, seed, detector
        self._state = None
        self._lock = threading.Lock()

    def __call__(self, k: int) -> bytes:
        entry = self.entries[k]
        data = Path(entry.path).read_bytes()
        if not self.masked[k]:
            return data
        from frmask.io.errors import FormatError
        from frmask.io.insightface_bin import decode_image
        from frmask.synth.folder import folder_state, mask_face

        try:
            rgb = decode_image(data, source=entry.path)
        except FormatError as exc:
            return FTA_PREFIX + f"unreadable image: {exc}".encode()
        rel = Path(entry.path).relative_to(self.root).as_posix()
        with self._lock:  # one detector and render state, built once
            if self._state is None:
                from frmask.synth.benchmark import use_landmarks68

                points68 = use_landmarks68(self.spec, "auto", auto=True)
                self._state = folder_state(self.spec, self.seed, self.root.resolve().name, self.detector, None,
                                           points68)
            out = mask_face(self._state, rgb, int(self.synth_index[k]), rel, Path(entry.path).suffix)
        if isinstance(out, str):
            return FTA_PREFIX + out.encode()
        return out[0]


class FolderProtocol(Protocol):
    """The exhaustive protocol of an identity-folder tree (module docstring); pairs are listed lazily."""

    def __init__(self, name: str, images: list[ImageEntry], identities: list[str], identity: np.ndarray,
                 reference: np.ndarray, probe: np.ndarray, ordered: bool, mask: str, description: str,
                 reader=None):
        self.name, self.images, self.description, self.reader = name, images, description, reader
        self.identities = identities
        self.identity = np.asarray(identity, np.int64)
        self.reference, self.probe = np.asarray(reference, np.int64), np.asarray(probe, np.int64)
        self.ordered, self.mask = bool(ordered), mask
        self.scenarios: dict = {}
        self.folds = None

    def __repr__(self) -> str:
        return f"FolderProtocol({self.description})"

    @property
    def n_identity_images(self) -> int:
        """N: the images of the tree (each appears once per side)."""
        return len(self.reference)

    @property
    def n_pairs(self) -> int:
        n = self.n_identity_images
        return n * (n - 1) if self.ordered else n * (n - 1) // 2

    @property
    def n_genuine_pairs(self) -> int:
        counts = np.bincount(self.identity[self.reference], minlength=len(self.identities)).astype(np.int64)
        g = int((counts * (counts - 1) // 2).sum())
        return 2 * g if self.ordered else g

    @cached_property
    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n_pairs > MAX_LISTED_PAIRS:
            raise ValueError(f"{self.name}: {self.n_pairs:,} pairs are too many to list; score them block-wise "
                             f"(frmask.exhaustive.score_folder, or frmask score --protocol folder)")
        n = self.n_identity_images
        if self.ordered:
            i, j = np.divmod(np.arange(n * n, dtype=np.int64), n)
            keep = i != j
            i, j = i[keep], j[keep]
        else:
            i, j = np.triu_indices(n, k=1)
        return self.reference[i], self.probe[j]

    def pair_index(self, i, j) -> np.ndarray:
        """Index, in the pair order above, of the pair (reference position i, probe position j): computed, so
        block-wise scoring can number its pairs without listing them."""
        i, j, n = np.asarray(i, np.int64), np.asarray(j, np.int64), self.n_identity_images
        if self.ordered:
            return i * (n - 1) + j - (j > i)
        return i * n - i * (i + 1) // 2 + (j - i - 1)

    @property
    def pair_a(self) -> np.ndarray:
        return self._pairs[0]

    @property
    def pair_b(self) -> np.ndarray:
        return self._pairs[1]

    @cached_property
    def genuine(self) -> np.ndarray:
        return self.identity[self.pair_a] == self.identity[self.pair_b]

    @cached_property
    def subjects_a(self) -> np.ndarray:
        return np.asarray(self.identities, dtype=object)[self.identity[self.pair_a]]

    @cached_property
    def subjects_b(self) -> np.ndarray:
        return np.asarray(self.identities, dtype=object)[self.identity[self.pair_b]]


def load_folder(data, *, mask: str = "none", spec=None, seed: int = 0, align: str = "auto",
                detector: str = "yunet") -> FolderProtocol:
    """The exhaustive protocol of the identity folders under ``data`` (module docstring).

    ``align`` applies to the unmasked images (``auto``: 112x112 images are aligned crops, others are
    detected); masked images are synthesised crops. ``spec``/``seed``: the masks, as ``frmask synth``.
    """
    from frmask.synth.benchmark import MaskSpec, load_template
    from frmask.synth.folder import list_images

    root = Path(data)
    align = check_align(align)
    if mask not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mask!r} for the folder protocol; choose one of {', '.join(MASK_MODES)}")
    names, per_identity = list_identities(root)
    spec = spec or MaskSpec()
    if mask != "none":
        load_template(spec)  # a bad template fails here, before any work
    synth_order = {rel.as_posix(): i for i, rel in enumerate(list_images(root))}
    paths = [p for imgs in per_identity for p in imgs]
    ident = np.concatenate([np.full(len(imgs), k, np.int64) for k, imgs in enumerate(per_identity)])
    n = len(paths)
    rels = [p.relative_to(root).as_posix() for p in paths]
    plain = [ImageEntry(rel, p, align, names[ident[k]]) for k, (rel, p) in enumerate(zip(rels, paths))]
    masked_entries = [ImageEntry(rel + "#masked", p, "none", names[ident[k]])
                      for k, (rel, p) in enumerate(zip(rels, paths))]
    if mask == "none":
        images, is_masked, reference, probe, ordered = plain, np.zeros(n, bool), np.arange(n), np.arange(n), False
    elif mask == "masked-vs-masked":
        images, is_masked, reference, probe, ordered = masked_entries, np.ones(n, bool), np.arange(n), np.arange(n), False
    else:
        images = plain + masked_entries
        is_masked = np.r_[np.zeros(n, bool), np.ones(n, bool)]
        reference, probe, ordered = np.arange(n), np.arange(n, 2 * n), True
    identity = np.concatenate([ident, ident]) if len(images) == 2 * n else ident
    reader = None
    if is_masked.any():
        synth_index = np.array([synth_order[rel] for rel in rels] * (len(images) // n), np.int64)
        reader = _MaskedReader(images, is_masked, synth_index, root, spec, seed, detector)
    what = "" if mask == "none" else f", {mask} ({spec.mask_type if spec.template is None else spec.template}, seed {seed})"
    proto = FolderProtocol("folder", images, names, identity, reference, probe, ordered, mask, "", reader)
    proto.description = (f"identity folders at {root}: {len(names)} identities, {n} images, {proto.n_pairs:,} pairs "
                         f"({proto.n_genuine_pairs:,} genuine){what}")
    return proto
