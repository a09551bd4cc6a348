"""Build an insightface ``.bin`` benchmark from a folder of aligned faces (``frmask pack-bin``).

``DIR/<identity>/<image>`` (identities sorted by folder name, images by file name, as
:func:`frmask.protocols.folder.list_identities` lists them) holds aligned 112x112 crops. Every image is
decoded once to check it; an image that cannot be decoded (or whose header claims too many pixels) is left
out and listed in ``failures`` (``stop_on_error`` raises instead), and an image of another size is an error
naming it (the folder must be aligned already: ``frmask synth --images`` and ``frmask pack --align detect``
detect and align). The pairs are :func:`frmask.protocols.pair_selection.select_pairs` of the usable images:
seeded, ``folds`` contiguous folds, each half genuine, no pair twice.

Images are stored as the ``.bin`` files insightface releases hold them: a JPEG or PNG file byte for byte
(no re-compression, so the benchmark's pixels are the folder's), any other format re-encoded losslessly as
PNG (:func:`frmask.io.images.stored_bytes`). An image in several pairs is one ``bytes`` object, which
the pickle stores once and refers back to (a plain ``pickle.load`` gives the same list as a copy per pair). The file is written atomically (:func:`frmask.io.insightface_bin.write_bin`); the same
folder, pair count, folds and seed give the same bytes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BinPackSummary", "pack_bin"]

SIZE = 112


@dataclass
class BinPackSummary:
    """What :func:`pack_bin` wrote: counts, failures ``[(relative path, reason)]``, the available pairs."""

    path: str
    n_pairs: int
    n_genuine: int
    folds: int
    n_images: int
    n_identities: int
    genuine_available: int
    impostor_available: int
    n_reencoded: int = 0
    failures: list = field(default_factory=list)
    seconds: float = 0.0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OSError(f"{path}: cannot read the image ({exc.strerror or exc})") from None


def _check(data: bytes, path: Path) -> np.ndarray:
    from frmask.io.insightface_bin import decode_image

    image = decode_image(data, source=path)
    if image.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{path}: image is {image.shape[1]}x{image.shape[0]}; a .bin benchmark holds aligned "
                         f"{SIZE}x{SIZE} crops (align the folder first: frmask pack --align detect, or the "
                         f"crops frmask synth --images writes)")
    return image


def pack_bin(folder, out, *, n_pairs: int = 6000, folds: int = 10, seed: int = 0, stop_on_error: bool = False,
             progress=None) -> BinPackSummary:
    """Write the ``.bin`` of ``n_pairs`` pairs of the identity folder ``folder`` to ``out`` (module notes).

    ``progress`` is called with 1 after each image checked and each image stored. ValueError (nothing
    written) when the folder is not an identity tree, an image is not 112x112, or the usable images cannot
    give ``n_pairs / 2`` distinct genuine or impostor pairs.
    """
    from frmask.io.errors import FormatError
    from frmask.io.images import is_jpeg, is_png, stored_bytes
    from frmask.io.insightface_bin import BinBenchmark, write_bin
    from frmask.protocols.folder import list_identities
    from frmask.protocols.pair_selection import count_pairs, select_pairs

    t0 = time.perf_counter()
    folder = Path(folder)
    _, per_identity = list_identities(folder)
    paths, labels, failures = [], [], []
    for label, images in enumerate(per_identity):
        for path in images:
            try:
                _check(_read(path), path)
            except FormatError as exc:
                if stop_on_error:
                    raise
                failures.append((path.relative_to(folder).as_posix(), f"unreadable image: {exc}"))
            else:
                paths.append(path)
                labels.append(label)
            if progress is not None:
                progress(1)
    labels = np.asarray(labels, np.int64)
    genuine_available, impostor_available = count_pairs(labels)
    pairs = select_pairs(labels, n_pairs, folds=folds, seed=seed)
    stored, reencoded = {}, 0
    images = []
    for k in np.stack([pairs.a, pairs.b], axis=1).ravel():
        k = int(k)
        if k not in stored:
            data = _read(paths[k])
            stored[k] = stored_bytes(data, _check(data, paths[k]), str(paths[k]))
            reencoded += not (is_jpeg(data) or is_png(data))
            if progress is not None:
                progress(1)
        images.append(stored[k])
    write_bin(out, BinBenchmark(images, pairs.genuine))
    return BinPackSummary(os.fspath(out), pairs.n_pairs, int(pairs.genuine.sum()), pairs.folds, len(paths),
                          len(np.unique(labels)), genuine_available, impostor_available, reencoded, failures,
                          time.perf_counter() - t0)
