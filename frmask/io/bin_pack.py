"""Build an insightface ``.bin`` benchmark from a folder of aligned faces (``frmask pack-bin``).

``DIR/<identity>/<image>`` (identities sorted by folder name, images by file name, as
:func:`frmask.protocols.folder.list_identities` lists them) holds aligned 112x112 crops. Every image is
decoded once to check it; an image that cannot be decoded (or whose header claims too many pixels) is left
out and listed in ``failures`` (``stop_on_error`` raises instead), and an image of another size is an error
naming it (the folder must be aligned already, e.g. the crops ``frmask synth --images`` writes or
:func:`frmask.faces.align_face`'s). The pairs are :func:`frmask.protocols.pair_selection.select_pairs` of
the usable images: seeded, ``folds`` contiguous folds, each half genuine, no pair twice (``disjoint``: no
identity in two folds).

Images are stored as the ``.bin`` files insightface releases hold them: a JPEG or PNG file byte for byte
(no re-compression, so the benchmark's pixels are the folder's), any other format re-encoded losslessly as
PNG (:func:`frmask.io.images.stored_bytes`). Each file is read and decoded once; past :data:`KEEP_BYTES`
of files (a folder far larger than any benchmark) only a digest is kept and the chosen images are read
again, a JPEG or PNG whose bytes are the ones checked without a second decode. An image in several pairs is
one ``bytes`` object, which the pickle stores once and refers back to (a plain ``pickle.load`` gives the same
list as a copy per pair). The file is written atomically (:func:`frmask.io.insightface_bin.write_bin`); the
same folder, pair count, folds and seed give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BinPackSummary", "pack_bin"]

SIZE = 112
KEEP_BYTES = 1 << 30
"""Files are held in memory between the check and the write up to this many bytes (1 GiB, many times a
benchmark's size); beyond it the chosen ones are read again."""


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


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _check(data: bytes, path: Path) -> np.ndarray:
    from frmask.io.insightface_bin import decode_image

    image = decode_image(data, source=path)
    if image.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{path}: image is {image.shape[1]}x{image.shape[0]}; a .bin benchmark holds aligned "
                         f"{SIZE}x{SIZE} crops: align the faces first (frmask.faces.align_face, or the crops "
                         f"frmask synth --images writes)")
    return image


def pack_bin(folder, out, *, n_pairs: int = 6000, folds: int = 10, seed: int = 0, disjoint: bool = False,
             stop_on_error: bool = False, progress=None) -> BinPackSummary:
    """Write the ``.bin`` of ``n_pairs`` pairs of the identity folder ``folder`` to ``out`` (module notes).

    ``progress`` is called with 1 after each image checked (and each image read again, past
    :data:`KEEP_BYTES`). ValueError (nothing
    written) when the folder is not an identity tree, an image is not 112x112, or the usable images cannot
    give ``n_pairs / 2`` distinct genuine or impostor pairs (with ``disjoint``: a fold its share).
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
    kept, digests, verbatim = {}, {}, []  # stored bytes while they fit in KEEP_BYTES, else a digest
    kept_bytes = 0
    for label, images in enumerate(per_identity):
        for path in images:
            try:
                data = _read(path)
                rgb = _check(data, path)
            except FormatError as exc:
                if stop_on_error:
                    raise
                failures.append((path.relative_to(folder).as_posix(), f"unreadable image: {exc}"))
            else:
                k = len(paths)
                paths.append(path)
                labels.append(label)
                verbatim.append(is_jpeg(data) or is_png(data))
                if kept_bytes + len(data) <= KEEP_BYTES:
                    kept[k] = stored_bytes(data, rgb, str(path))
                    kept_bytes += len(kept[k])
                else:
                    digests[k] = _digest(data)
            if progress is not None:
                progress(1)
    labels = np.asarray(labels, np.int64)
    genuine_available, impostor_available = count_pairs(labels)
    pairs = select_pairs(labels, n_pairs, folds=folds, seed=seed, disjoint=disjoint)
    chosen = np.unique(np.concatenate([pairs.a, pairs.b]))
    for k in (int(k) for k in chosen):
        if k not in kept:  # read again; a JPEG/PNG with the bytes checked above is not decoded twice
            data = _read(paths[k])
            same = verbatim[k] and _digest(data) == digests[k]
            kept[k] = data if same else stored_bytes(data, _check(data, paths[k]), str(paths[k]))
            if progress is not None:
                progress(1)
    reencoded = sum(not verbatim[int(k)] for k in chosen)
    images = [kept[int(k)] for k in np.stack([pairs.a, pairs.b], axis=1).ravel()]
    write_bin(out, BinBenchmark(images, pairs.genuine))
    return BinPackSummary(os.fspath(out), pairs.n_pairs, int(pairs.genuine.sum()), pairs.folds, len(paths),
                          len(np.unique(labels)), genuine_available, impostor_available, reencoded, failures,
                          time.perf_counter() - t0)
