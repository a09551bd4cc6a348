"""Pack an image folder (one sub-folder per identity) into MS1MV2-style RecordIO: ``.rec`` + ``.idx``.

Layout written (keys; ``N`` images, ``K`` identities, labels 0..K-1 in sorted folder order):

* key 0: header-only record, ``flag = 2``, labels ``(N + 1, N + 1 + K)`` = (first identity key, end);
* keys 1..N: images, grouped by identity, header label = the identity's label (float), ``id`` = the key;
* keys N+1..N+K: one header-only record per identity, labels ``(start, end)``: its images' key range
  (end exclusive).

Payloads are aligned 112x112 crops. With ``align="none"`` a JPEG or PNG file is stored byte for byte (after
checking that it decodes to 112x112) and any other format is re-encoded as PNG; with ``align="detect"`` the
aligned crops are encoded as JPEG (quality 95) for JPEG sources and PNG otherwise. Images in which no face is
found, or that cannot be decoded, are left out and listed in the summary's ``failures``, never dropped
silently (``stop_on_error`` stops at an undecodable one instead). Output is all or nothing
(:class:`frmask.io.recordio.RecordWriter`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frmask.io.images import encode_rgb, is_jpeg, stored_bytes
from frmask.train.data import SIZE, _FolderSource, _check_aligned, decode_rgb, index_folder

__all__ = ["JPEG_QUALITY", "PackSummary", "pack_folder"]

JPEG_QUALITY = 95


@dataclass
class PackSummary:
    """What :func:`pack_folder` wrote: counts, failures ``[(relative path, reason)]`` and the output paths."""

    n_identities: int
    n_images: int
    align: str
    rec: str
    idx: str
    identities: tuple = ()
    failures: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_failures(self) -> int:
        return len(self.failures)


def _payload(data: bytes, where: str, landmarks: np.ndarray | None) -> bytes:
    """The stored bytes of one image (module notes)."""
    image = decode_rgb(data, where)
    if landmarks is None:
        _check_aligned(image, where)
        return stored_bytes(data, image, where)
    from frmask.faces.align import align_face

    aligned = align_face(image, landmarks.astype(np.float64), size=(SIZE, SIZE))
    return encode_rgb(aligned, jpeg=is_jpeg(data), quality=JPEG_QUALITY, where=where)


def pack_folder(src, rec_path, *, align: str = "auto", detector: str = "yunet", progress=None,
                stop_on_error: bool = False) -> PackSummary:
    """Write the identity folder ``src`` as ``rec_path`` + ``rec_path`` with suffix ``.idx`` (module notes).

    ``align``: ``"none"`` (images already aligned 112x112), ``"detect"`` or ``"auto"`` (``"none"`` when the
    first image is 112x112). ``progress`` is called with 1 after each image. An image that cannot be read
    or decoded (or whose header claims more than :func:`frmask.io.images.max_pixels` pixels) is left out and
    listed in ``failures`` with its reason, as images without a face are; ``stop_on_error=True`` raises on
    it instead. Bad input (no folder, an empty identity folder, fewer than 2 identities, an unaligned image
    with ``align="none"``, an identity left without a usable image) raises ``ValueError`` and leaves no
    output behind.
    """
    from frmask.io.errors import FormatError
    from frmask.io.recordio import IRHeader, RecordWriter, pack

    t0 = time.perf_counter()
    rec_path = Path(rec_path)
    src = Path(src)
    if src.resolve() in rec_path.resolve().parents:
        raise ValueError(f"{rec_path}: the output must not lie inside the source folder {src}")
    index = index_folder(src, align=align, detector=detector)
    source = _FolderSource(index.root, index.files)
    n, k = len(index.files), len(index.identities)
    idx_path = rec_path.with_suffix(".idx")
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    failures = list(index.failures)
    counts = np.zeros(k, np.int64)
    with RecordWriter(rec_path, idx_path) as writer:
        header = writer.write(0, pack(IRHeader(0, [n + 1, n + 1 + k], 0, 0), b""))
        key = 1
        for i in range(n):
            lm = None if index.landmarks is None else index.landmarks[i]
            try:
                payload = _payload(source.read(i), source.where(i), lm)
            except FormatError as exc:  # undecodable or oversized: this image only (ValueError: the whole input)
                if stop_on_error:
                    raise
                failures.append((source.short(i), f"unreadable image: {exc}"))
            else:
                writer.write(key, pack(IRHeader(0, float(index.labels[i]), key, 0), payload))
                counts[index.labels[i]] += 1
                key += 1
            if progress is not None:
                progress(1)
        if (counts == 0).any():
            empty = index.identities[int(np.flatnonzero(counts == 0)[0])]
            raise ValueError(f"{src / empty}: no usable image in this identity folder: "
                             + "; ".join(f"{p} ({r})" for p, r in failures if p.split("/", 1)[0] == empty))
        n = key - 1
        writer.rewrite(header, pack(IRHeader(0, [n + 1, n + 1 + k], 0, 0), b""))  # same length: two labels
        starts = np.concatenate([[0], np.cumsum(counts)]) + 1
        for label in range(k):
            writer.write(n + 1 + label, pack(IRHeader(0, [int(starts[label]), int(starts[label + 1])], 0, 0), b""))
    return PackSummary(k, n, index.align, os.fspath(rec_path), os.fspath(idx_path), index.identities,
                       failures, time.perf_counter() - t0)
