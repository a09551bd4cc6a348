"""Training data: RecordIO or image-folder datasets of aligned faces, mask augmentation, a resumable sampler.

Conventions:

* A sample key is ``(epoch, index)``. :class:`TrainDataset` is stateless: sample ``(e, i)`` is the same
  tensors whatever the worker, the process or the order in which samples are drawn. Every random choice of
  that sample comes from ``image_rng(seed, f"{name}/epoch{e}", i, stream)`` (:mod:`frmask.synth.seeding`)
  with one stream per kind of choice: ``"flip"`` (horizontal flip), ``"mask"`` (masked or not, and the mask
  type), ``"color"`` (mask colour), ``"jitter"`` (anchor shifts).
* Images are aligned 112x112 RGB crops (grey images are replicated to RGB). Tensors are float32
  ``(3, 112, 112)``, RGB, ``(x - 127.5) / 127.5``. The mask is drawn in the aligned frame on the ArcFace
  template landmarks (:func:`frmask.synth.benchmark.frame_landmarks`), then teacher and student get the same
  flip. The teacher image is never masked (defect 4 of DESIGN.md); the flips are shared (defect 6).
* Labels are ``0 .. num_classes - 1``. Image folders: one sub-folder per identity, sorted by name, label =
  position; images inside sorted by relative path. RecordIO in the MS1MV2 layout (record 0 a header whose two
  labels are ``(first identity key, end)``; image keys ``1 .. first identity key - 1``; identity records whose
  labels are the ``[start, end)`` key range of their images): label = position of the identity record.
  RecordIO without that header: every record is an image and the labels are the values of the records'
  headers (the first value when a record carries several), the sorted distinct values numbered 0, 1, ...
* ``align``: ``"none"`` (images are aligned 112x112 crops already; any other size is an error naming the
  image), ``"detect"`` (YuNet runs once over every image when the dataset is opened; its five landmarks are
  kept and each ``__getitem__`` warps with them; images without a face are listed in ``failures`` and left
  out), ``"auto"`` (``"none"`` for RecordIO; for folders ``"none"`` when the first image is 112x112, else
  ``"detect"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frmask.synth.seeding import image_rng
from frmask.train.masks import AUGMENT_DEVICES, MaskAugment, batch_fields

__all__ = [
    "ALIGN_MODES",
    "SIZE",
    "FolderIndex",
    "MaskAugment",
    "TrainDataset",
    "TrainSampler",
    "decode_rgb",
    "index_folder",
    "open_dataset",
]

SIZE = 112
ALIGN_MODES = ("auto", "none", "detect")


# ------------------------------------------------------------------------------------------- images


def decode_rgb(data: bytes, where: str) -> np.ndarray:
    """Decode an encoded image to uint8 (H, W, 3) RGB (grey images replicated): :func:`frmask.io.insightface_bin.
    decode_image`, whose :class:`~frmask.io.errors.FormatError` (a ValueError) names ``where``."""
    from frmask.io.insightface_bin import decode_image

    return decode_image(data, source=where)


def _check_aligned(image: np.ndarray, where: str) -> np.ndarray:
    if image.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{where}: image is {image.shape[1]}x{image.shape[0]}, but align='none' needs aligned "
                         f"{SIZE}x{SIZE} crops (use align='detect' to detect and align the faces)")
    return image


def _to_tensor(image: np.ndarray, flip: bool):
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) tensor in [-1, 1], flipped left-right when ``flip``."""
    import torch

    if flip:
        image = image[:, ::-1]
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    return torch.from_numpy(chw).to(torch.float32).sub_(127.5).div_(127.5)


# --------------------------------------------------------------------------------------------- sources


class _FolderSource:
    """Image files under ``root`` (relative posix paths)."""

    def __init__(self, root: str, files: tuple):
        self.root, self.files = root, files

    def read(self, i: int) -> bytes:
        path = os.path.join(self.root, self.files[i])
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the image ({exc.strerror or exc})") from None

    def where(self, i: int) -> str:
        return os.path.join(self.root, self.files[i])

    def short(self, i: int) -> str:
        return self.files[i]


class _RecordSource:
    """Image records ``keys`` (a ``range`` when contiguous, else an int64 array) of a ``.rec`` file; the reader
    opens lazily in each process and is never pickled (forked workers inherit it: reads are positional)."""

    def __init__(self, rec: str, keys, reader=None):
        self.rec, self.keys, self._reader = rec, keys, reader

    def __getstate__(self):
        return {"rec": self.rec, "keys": self.keys, "_reader": None}

    def __len__(self) -> int:
        return len(self.keys)

    def reader(self):
        if self._reader is None:
            from frmask.io.recordio import RecordReader

            self._reader = RecordReader(self.rec)
        return self._reader

    def read(self, i: int) -> bytes:
        from frmask.io.recordio import unpack

        key = int(self.keys[i])
        _, image = unpack(self.reader().read(key))
        return image

    def where(self, i: int) -> str:
        return f"{self.rec}: record {int(self.keys[i])}"

    def short(self, i: int) -> str:
        return f"record {int(self.keys[i])}"


# --------------------------------------------------------------------------------------------- dataset


class TrainDataset:
    """Map-style dataset of ``(epoch, index)`` keys (module notes); build it with :func:`open_dataset`.

    Attributes: ``name`` (seeds), ``seed``, ``mask``, ``labels`` (int64 per index), ``num_classes``,
    ``classes`` (identity folder names, or the original RecordIO label values), ``align`` (``"none"`` or
    ``"detect"``), ``landmarks`` (float32 (N, 5, 2) detected landmarks with ``align="detect"``, else None),
    ``failures`` (``[(image, reason)]`` left out by detection), ``augment`` (``"worker"``: samples are float
    tensors with the mask drawn here; ``"batch"``: uint8 images and mask parameters for
    :class:`frmask.train.masks.BatchAugment`, see :meth:`__getitem__`).
    """

    def __init__(self, source, labels, *, name: str, seed: int, mask: MaskAugment | None, classes=(),
                 align: str = "none", landmarks: np.ndarray | None = None, failures=(), augment: str = "worker"):
        if augment not in AUGMENT_DEVICES[1:]:
            raise ValueError(f"a dataset's augment mode is 'worker' or 'batch', got {augment!r}")
        self.augment = augment
        self._source = source
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name, self.seed, self.mask = name, int(seed), mask
        self.classes = tuple(classes)
        self.num_classes = len(self.classes) if self.classes else int(self.labels.max()) + 1
        self.align = align
        self.landmarks = landmarks
        self.failures = list(failures)
        image_rng(self.seed, name, 0)  # validates seed and name types

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"TrainDataset(name={self.name!r}, images={len(self)}, classes={self.num_classes}, "
                f"align={self.align!r}, failures={len(self.failures)}, mask={self.mask!r})")

    def where(self, index: int) -> str:
        """The file (or record) that image ``index`` comes from."""
        return self._source.where(index)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` aligned, uint8 (112, 112, 3) RGB, before any flip or mask."""
        where = self._source.where(index)
        rgb = decode_rgb(self._source.read(index), where)
        if self.landmarks is None:
            return _check_aligned(rgb, where)
        from frmask.faces.align import align_face

        return align_face(rgb, self.landmarks[index].astype(np.float64), size=(SIZE, SIZE))

    def _flip(self, epoch: int, index: int) -> bool:
        return bool(image_rng(self.seed, f"{self.name}/epoch{epoch}", index, "flip").random() < 0.5)

    def _sample(self, key) -> tuple[np.ndarray, np.ndarray | None, bool]:
        """The aligned image, its masked version (None when not masked) and the flip of sample ``key``."""
        epoch, index = self._check_key(key)
        stream = f"{self.name}/epoch{epoch}"
        image = self.image(index)
        flip = self._flip(epoch, index)
        masked = None
        if self.mask is not None:
            student, was_masked = self.mask.augment(image, self.seed, stream, index)
            masked = student if was_masked else None
        return image, masked, flip

    def arrays(self, key) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(teacher, student, masked)`` of sample ``key`` as uint8 (112, 112, 3) RGB arrays, flips applied."""
        image, masked, flip = self._sample(key)
        student = image if masked is None else masked
        if flip:
            image, student = image[:, ::-1], student[:, ::-1]
        return image, student, masked is not None

    def __getitem__(self, key) -> dict:
        """``augment="worker"``: ``teacher``, ``student`` (float32 (3, 112, 112) in [-1, 1]), ``label``,
        ``masked``. ``augment="batch"``: ``image`` (uint8 (3, 112, 112) RGB, flipped), ``label`` (int), ``masked``,
        ``flip`` (bools) and the mask parameters of :func:`frmask.train.masks.batch_fields` (plain values: the
        DataLoader's collate makes one tensor of each per batch)."""
        import torch

        if self.augment == "batch":
            return self._batch_item(key)
        image, masked, flip = self._sample(key)
        teacher = _to_tensor(image, flip)
        student = teacher if masked is None else _to_tensor(masked, flip)
        return {"teacher": teacher, "student": student, "label": torch.tensor(int(self.labels[key[1]])),
                "masked": torch.tensor(masked is not None)}

    def _batch_item(self, key) -> dict:
        import torch

        epoch, index = self._check_key(key)
        image = self.image(index)
        flip = self._flip(epoch, index)
        draw = None if self.mask is None else self.mask.draw(self.seed, f"{self.name}/epoch{epoch}", index)
        view = image[:, ::-1] if flip else image
        chw = torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))
        return {"image": chw, "label": int(self.labels[index]), "masked": draw is not None, "flip": flip,
                **batch_fields(self.mask, draw)}

    def _check_key(self, key) -> tuple[int, int]:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(f"sample keys are (epoch, index) tuples (see TrainSampler), got {key!r}")
        epoch, index = (int(k) for k in key)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        return epoch, index


# ------------------------------------------------------------------------------------- image folders


@dataclass
class FolderIndex:
    """An identity folder listed (and, with ``align="detect"``, detected): what a dataset or a pack needs.

    ``files``/``labels``: the images kept (relative posix paths) and their labels; ``landmarks``: float32
    (N, 5, 2) in the original images for ``align="detect"``; ``failures``: ``[(relative path, reason)]``.
    """

    root: str
    identities: tuple
    files: tuple
    labels: np.ndarray
    align: str
    landmarks: np.ndarray | None = None
    failures: list = field(default_factory=list)


def _list_identities(root: Path) -> tuple[list[str], list[list[str]]]:
    from frmask.synth.folder import IMAGE_SUFFIXES, list_images

    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if stray:
        raise ValueError(f"{root}: image {stray[0]!r} lies outside the identity folders; put every image in "
                         f"the sub-folder of its identity")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = []
    for name in names:
        found = [(Path(name) / rel).as_posix() for rel in list_images(root / name)]
        if not found:
            raise ValueError(f"{root / name}: identity folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files.append(found)
    if len(names) < 2:
        raise ValueError(f"{root}: found {len(names)} identity folder(s); training needs at least 2 (one "
                         f"sub-folder per identity)")
    return names, files


def _detect_all(read, n: int, short, detector: str) -> tuple[np.ndarray, list]:
    """Landmarks (N, 5, 2) float32 (NaN where none) of every image, and ``[(image, reason)]`` failures."""
    from frmask.faces.align import alignment_matrix
    from frmask.faces.detect import get_detector

    det = get_detector(detector)
    landmarks = np.full((n, 5, 2), np.nan, np.float32)
    failures = []
    for i in range(n):
        try:
            rgb = decode_rgb(read(i), short(i))
        except ValueError:
            failures.append((short(i), "unreadable image"))
            continue
        face = det.detect_largest(rgb)
        if face is None:
            failures.append((short(i), "no face detected"))
            continue
        try:
            alignment_matrix(face.landmarks)
        except ValueError as exc:
            failures.append((short(i), f"cannot align: {exc}"))
            continue
        landmarks[i] = face.landmarks
    return landmarks, failures


def index_folder(root, *, align: str = "auto", detector: str = "yunet") -> FolderIndex:
    """List an identity folder (module notes); with ``align="detect"`` run the detector over every image."""
    _check_align(align)
    root = Path(root)
    names, per_identity = _list_identities(root)
    files = tuple(f for group in per_identity for f in group)
    labels = np.repeat(np.arange(len(names), dtype=np.int64), [len(g) for g in per_identity])
    source = _FolderSource(str(root), files)
    if align != "detect":  # the first image decides "auto" and checks "none" early
        first = decode_rgb(source.read(0), source.where(0))
        if align == "none":
            _check_aligned(first, source.where(0))
        align = "none" if first.shape[:2] == (SIZE, SIZE) else "detect"
    if align == "none":
        return FolderIndex(str(root), tuple(names), files, labels, "none")
    landmarks, failures = _detect_all(source.read, len(files), source.short, detector)
    keep = ~np.isnan(landmarks[:, 0, 0])
    counts = np.bincount(labels[keep], minlength=len(names))
    empty = [names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        lost = [f"{p} ({r})" for p, r in failures if p.split("/", 1)[0] == empty[0]]
        raise ValueError(f"{root / empty[0]}: no usable face in this identity folder: {'; '.join(lost)}")
    return FolderIndex(str(root), tuple(names), tuple(f for f, k in zip(files, keep) if k), labels[keep],
                       "detect", landmarks[keep], failures)


# ------------------------------------------------------------------------------------------- RecordIO


def _record_label(payload: bytes, where: str) -> float:
    from frmask.io.recordio import unpack

    header, _ = unpack(payload)
    label = header.label if header.flag == 0 else header.label[0]
    if not np.isfinite(label):
        raise ValueError(f"{where}: label {label} is not finite")
    return float(label)


def _identity_ranges(reader, first: int, end: int) -> list[tuple[int, int]] | None:
    """The ``[start, end)`` image ranges of identity records ``first .. end - 1``, or None when absent."""
    from frmask.io.recordio import unpack

    if end <= first or any(k not in reader for k in (first, end - 1)):
        return None
    ranges = []
    for key in range(first, end):
        if key not in reader:
            return None
        header, _ = unpack(reader.read(key))
        if header.flag < 2:
            return None
        ranges.append((int(header.label[0]), int(header.label[1])))
    return ranges


def _index_recordio(rec: Path) -> tuple[_RecordSource, np.ndarray, tuple]:
    """Image keys, labels and class values of a ``.rec`` (module notes)."""
    from frmask.io.recordio import RecordReader, unpack

    reader = RecordReader(rec)
    try:
        if len(reader) == 0:
            raise ValueError(f"{rec}: holds no records")
        first_key = reader.keys[0]
        header, _ = unpack(reader.read(first_key))
        ranges = None
        if header.flag > 0:
            if header.flag < 2:
                raise ValueError(f"{rec}: header record {first_key} has {header.flag} label; the MS1MV2 layout "
                                 f"needs two (first identity key, end)")
            first_id, end_id = int(header.label[0]), int(header.label[1])
            image_keys = range(1, first_id)
            present = np.isin(np.arange(1, first_id), np.fromiter(reader.keys, np.int64, len(reader)))
            if not present.all():
                raise ValueError(f"{rec}: header record says images are keys 1..{first_id - 1}, but key "
                                 f"{int(np.argmin(present)) + 1} is not in the index")
            ranges = _identity_ranges(reader, first_id, end_id)
        else:
            image_keys = np.asarray(reader.keys, dtype=np.int64)
            start = int(image_keys[0]) if len(image_keys) else 0
            if np.array_equal(image_keys, np.arange(start, start + len(image_keys))):
                image_keys = range(start, start + len(image_keys))  # compact to pickle
        if ranges is not None:
            labels = np.full(first_id - 1, -1, np.int64)
            for label, (start, stop) in enumerate(ranges):
                if not 1 <= start < stop <= first_id:
                    raise ValueError(f"{rec}: identity record {first_id + label} gives image range "
                                     f"[{start}, {stop}), outside the image keys 1..{first_id - 1} or empty")
                if np.any(labels[start - 1:stop - 1] >= 0):
                    raise ValueError(f"{rec}: identity record {first_id + label} overlaps another identity")
                labels[start - 1:stop - 1] = label
            if np.any(labels < 0):
                key = int(image_keys[np.argmax(labels < 0)])
                raise ValueError(f"{rec}: image record {key} belongs to no identity record")
            classes = tuple(range(len(ranges)))
        else:
            raw = np.array([_record_label(reader.read(int(k)), f"{rec}: record {int(k)}") for k in image_keys])
            values, labels = np.unique(raw, return_inverse=True)
            classes = tuple(float(v) for v in values)
            labels = labels.astype(np.int64)
        if len(classes) < 2:
            raise ValueError(f"{rec}: holds {len(classes)} identity; training needs at least 2")
    except BaseException:
        reader.close()
        raise
    return _RecordSource(str(rec), image_keys, reader), labels, classes


# ------------------------------------------------------------------------------------------- opening


def _check_align(align: str) -> None:
    if align not in ALIGN_MODES:
        raise ValueError(f"unknown align mode {align!r}; choose one of {', '.join(ALIGN_MODES)}")


def _record_path(path: Path) -> Path | None:
    if path.is_file():
        if path.suffix.lower() != ".rec":
            raise ValueError(f"{path}: a dataset is a RecordIO .rec file or a folder of identity folders")
        return path
    if path.is_dir() and (path / "train.rec").is_file():
        return path / "train.rec"
    return None


def open_dataset(path, *, mask: MaskAugment | None, seed: int = 0, align: str = "auto", name: str | None = None,
                 detector: str = "yunet", augment: str = "worker") -> TrainDataset:
    """Open a training dataset: a ``.rec`` file (``.idx`` beside it, or scanned), a folder holding
    ``train.rec``, or a folder with one sub-folder per identity (module notes).

    ``name`` (used for the seeds) defaults to the folder's name, or for RecordIO to
    ``"<parent folder>/<file name>"`` (``faces_emore/train.rec``). ``mask`` None: no mask augmentation.
    ``augment``: where the masks are drawn, ``"worker"`` or ``"batch"`` (:class:`TrainDataset`).
    """
    _check_align(align)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    if mask is not None:
        mask.prepare()
    rec = _record_path(path)
    if rec is not None:
        source, labels, classes = _index_recordio(rec)
        dataset_name = name or f"{rec.resolve().parent.name}/{rec.name}"
        landmarks, failures, used = None, [], "none"
        if align == "detect":
            landmarks, failures = _detect_all(source.read, len(labels), source.short, detector)
            keep = ~np.isnan(landmarks[:, 0, 0])
            if np.any(np.bincount(labels[keep], minlength=len(classes)) == 0):
                k = int(np.flatnonzero(np.bincount(labels[keep], minlength=len(classes)) == 0)[0])
                raise ValueError(f"{rec}: no usable face for identity {classes[k]!r}")
            source = _RecordSource(source.rec, np.asarray(source.keys, np.int64)[keep], source._reader)
            landmarks, labels, used = landmarks[keep], labels[keep], "detect"
        else:
            _check_aligned(decode_rgb(source.read(0), source.where(0)), source.where(0))
        return TrainDataset(source, labels, name=dataset_name, seed=seed, mask=mask, classes=classes, align=used,
                            landmarks=landmarks, failures=failures, augment=augment)
    index = index_folder(path, align=align, detector=detector)
    return TrainDataset(_FolderSource(index.root, index.files), index.labels, name=name or path.resolve().name,
                        seed=seed, mask=mask, classes=index.identities, align=index.align,
                        landmarks=index.landmarks, failures=index.failures, augment=augment)


# -------------------------------------------------------------------------------------------- sampler


class TrainSampler:
    """Infinite, resumable stream of ``(epoch, index)`` keys for one DDP rank.

    Epoch ``e`` is the permutation of ``range(n)`` drawn from ``image_rng(seed, "sampler", e, "permutation")``.
    Concatenating the epochs, each cut to ``steps_per_epoch = n // global_batch`` full batches (the last
    partial batch of an epoch is dropped), global step ``s`` is the batch ``s``; rank ``r`` of ``world_size``
    yields the contiguous slice ``[r * G / W, (r + 1) * G / W)`` of every global batch, from ``start_step`` on.
    Iterating again starts again at ``start_step``. Use with ``DataLoader(ds, batch_size=G // W, sampler=...)``.
    """

    def __init__(self, n: int, global_batch: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        n, g, w, r, s = (int(v) for v in (n, global_batch, world_size, rank, start_step))
        if g < 1 or w < 1:
            raise ValueError(f"global batch ({g}) and world size ({w}) must be positive")
        if g % w:
            raise ValueError(f"global batch {g} is not divisible by the world size {w}")
        if not 0 <= r < w:
            raise ValueError(f"rank {r} is not in [0, {w})")
        if n < g:
            raise ValueError(f"the dataset has {n} images, fewer than one global batch of {g}")
        if s < 0:
            raise ValueError(f"start_step must be >= 0, got {s}")
        image_rng(seed, "sampler", 0)  # validates the seed
        self.n, self.global_batch, self.seed = n, g, int(seed)
        self.rank, self.world_size, self.start_step = r, w, s
        self.local_batch = g // w
        self.steps_per_epoch = n // g

    def __repr__(self) -> str:
        return (f"TrainSampler(n={self.n}, global_batch={self.global_batch}, seed={self.seed}, rank={self.rank}, "
                f"world_size={self.world_size}, start_step={self.start_step})")

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of epoch ``epoch`` (int64, all ``n`` indices; the tail past full batches is unused)."""
        return image_rng(self.seed, "sampler", int(epoch), "permutation").permutation(self.n)

    def global_batch_keys(self, step: int) -> list[tuple[int, int]]:
        """All ``global_batch`` keys of global step ``step`` (every rank's slice, in rank order)."""
        epoch, at = divmod(int(step), self.steps_per_epoch)
        perm = self.permutation(epoch)[at * self.global_batch:(at + 1) * self.global_batch]
        return [(epoch, int(i)) for i in perm]

    def __iter__(self):
        step = self.start_step
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        cached_epoch, perm = -1, None
        while True:
            epoch, at = divmod(step, self.steps_per_epoch)
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, self.permutation(epoch)
            base = at * self.global_batch
            for i in perm[base + lo:base + hi]:
                yield epoch, int(i)
            step += 1
