"""MFR2 (Anwar & Raychowdhury, 2020): 53 identities, 269 images with real masks, 848 pairs.

Layout of the folder: ``Name/Name_000N.png`` (N 1-based, 160x160 loose crops: frmask detects the face
and aligns it to the model's input), ``pairs.txt`` (no header; ``Name i j`` for a genuine pair,
``Name1 i Name2 j`` for an impostor pair, whitespace separated) and ``mfr2_labels.txt`` (``Name, i,
masktype`` with ``no-mask`` for an unmasked face).

Scenarios, from the real mask labels: ``mask-vs-nomask`` (exactly one image masked), ``mask-vs-mask``
(both) and ``nomask-vs-nomask`` (neither). With the shared copy: 383 / 396 / 69 pairs (184 / 232 / 8
genuine). The paper's MFR2 columns are TPR at FAR 0.2 % ("FAR2000"), the accuracy at that threshold
("ACC2000") and the best accuracy ("ACC"); with 424 impostor pairs, the finest FMR step is 1/424.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frmask.protocols.base import ImageEntry, Protocol, check_align, missing_files_error

NO_MASK = "no-mask"
SCENARIOS = ("mask-vs-nomask", "mask-vs-mask", "nomask-vs-nomask")


def image_name(name: str, number: int) -> str:
    """Relative path of image ``number`` of ``name``: ``Name/Name_000N.png``."""
    return f"{name}/{name}_{number:04d}.png"


def _number(text: str, path: Path, line: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: image number {text!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{path}, line {line}: image numbers start at 1, got {value}")
    return value


def read_pairs(path) -> list[tuple[tuple[str, int], tuple[str, int], bool]]:
    """The pairs of an MFR2/LFW-style ``pairs.txt``: ``[((name, i), (name, j), genuine), ...]``.

    ``Name i j`` is a genuine pair, ``Name1 i Name2 j`` an impostor pair (whitespace or tabs); blank lines
    are skipped; a first line of two integers (LFW's ``folds pairs`` header) is skipped. Any other line is a
    ValueError naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    pairs = []
    for n, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue
        if len(parts) == 3:
            a = (parts[0], _number(parts[1], path, n))
            b = (parts[0], _number(parts[2], path, n))
            pairs.append((a, b, True))
        elif len(parts) == 4:
            a = (parts[0], _number(parts[1], path, n))
            b = (parts[2], _number(parts[3], path, n))
            pairs.append((a, b, a[0] == b[0]))
        else:
            raise ValueError(f"{path}, line {n}: expected 'Name i j' (genuine) or 'Name1 i Name2 j' (impostor), "
                             f"got {raw.strip()!r}")
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def read_labels(path) -> dict[tuple[str, int], str]:
    """``(name, number) -> mask type`` from ``mfr2_labels.txt`` (``Name, i, masktype`` lines)."""
    path = Path(path)
    labels = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise ValueError(f"{path}, line {n}: expected 'Name, i, masktype', got {raw.strip()!r}")
        key = (parts[0], _number(parts[1], path, n))
        if key in labels:
            raise ValueError(f"{path}, line {n}: {parts[0]} {key[1]} is labelled twice")
        labels[key] = parts[2]
    return labels


def load_mfr2(data, *, align: str = "detect") -> Protocol:
    """The MFR2 protocol of the folder ``data`` (module docstring). Every image file the pairs name must
    exist (one error lists all missing ones) and, when ``mfr2_labels.txt`` is present, carry a label."""
    root = Path(data)
    align = check_align(align)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected the MFR2 folder with pairs.txt)")
    pairs_file = root / "pairs.txt"
    if not pairs_file.is_file():
        raise ValueError(f"{root}: no pairs.txt here (is this the MFR2 folder?)")
    pairs = read_pairs(pairs_file)
    labels_file = root / "mfr2_labels.txt"
    labels = read_labels(labels_file) if labels_file.is_file() else None

    index: dict[tuple[str, int], int] = {}
    images: list[ImageEntry] = []
    missing, unlabelled = [], []
    for line, (a, b, _) in enumerate(pairs, start=1):
        for ident in (a, b):
            if ident in index:
                continue
            rel = image_name(*ident)
            path = root / rel
            if not path.is_file():
                missing.append((f"pair {line} ({ident[0]} {ident[1]})", path))
            label = None
            if labels is not None:
                label = labels.get(ident)
                if label is None:
                    unlabelled.append(rel)
            index[ident] = len(images)
            images.append(ImageEntry(rel, path, align, label))
    if missing:
        raise missing_files_error(missing, pairs_file)
    if unlabelled:
        raise ValueError(f"{labels_file}: no mask label for {len(unlabelled)} image(s): {', '.join(unlabelled)}")

    a_idx = np.array([index[a] for a, _, _ in pairs])
    b_idx = np.array([index[b] for _, b, _ in pairs])
    genuine = np.array([g for _, _, g in pairs])
    subjects_a = np.array([a[0] for a, _, _ in pairs], dtype=object)
    subjects_b = np.array([b[0] for _, b, _ in pairs], dtype=object)
    scenarios = {}
    if labels is not None:
        masked = np.array([entry.label != NO_MASK for entry in images])
        n_masked = masked[a_idx].astype(int) + masked[b_idx].astype(int)
        scenarios = {"mask-vs-nomask": n_masked == 1, "mask-vs-mask": n_masked == 2, "nomask-vs-nomask": n_masked == 0}
    return Protocol("mfr2", images, a_idx, b_idx, genuine, subjects_a, subjects_b, scenarios, folds=None,
                    description=f"MFR2 at {root}: {len(images)} images, {len(genuine)} pairs")


def exhaustive_pairs(subjects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair ``i < j`` of a list of images' subjects, in row-major order: ``(a, b, genuine)``
    with ``genuine[k]`` True when images ``a[k]`` and ``b[k]`` show the same subject."""
    subjects = np.asarray(subjects, dtype=object)
    a, b = np.triu_indices(len(subjects), k=1)
    return a, b, subjects[a] == subjects[b]


def load_mfr2_unmasked(data, *, align: str = "detect") -> Protocol:
    """MFR2's unmasked faces as an exhaustive protocol: the images labelled ``no-mask`` in ``mfr2_labels.txt``
    (98 of 269 in the shared copy, sorted by name and number), every unordered pair of them compared (4,753
    pairs: 45 genuine, 4,708 impostor). The baseline of a mask-effect analysis (:mod:`frmask.effect`): its
    images are faces without a mask, which synthetic masks are then drawn onto."""
    root = Path(data)
    align = check_align(align)
    labels_file = root / "mfr2_labels.txt"
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected the MFR2 folder with mfr2_labels.txt)")
    if not labels_file.is_file():
        raise ValueError(f"{root}: no mfr2_labels.txt here; the unmasked MFR2 faces are found by their labels")
    keys = sorted(key for key, label in read_labels(labels_file).items() if label == NO_MASK)
    if len(keys) < 2:
        raise ValueError(f"{labels_file}: fewer than two images are labelled {NO_MASK!r}")
    missing = [(f"{labels_file.name}: {name} {number}", root / image_name(name, number)) for name, number in keys
               if not (root / image_name(name, number)).is_file()]
    if missing:
        raise missing_files_error(missing, labels_file)
    images = [ImageEntry(image_name(*key), root / image_name(*key), align, NO_MASK) for key in keys]
    subjects = np.array([name for name, _ in keys], dtype=object)
    a, b, genuine = exhaustive_pairs(subjects)
    if not genuine.any():
        raise ValueError(f"{labels_file}: no subject has two {NO_MASK!r} images, so there is no genuine pair")
    return Protocol("mfr2-unmasked", images, a, b, genuine, subjects[a], subjects[b], {}, folds=None,
                    description=f"MFR2's unmasked faces at {root}: {len(images)} images, all {len(a):,} pairs "
                                f"({int(genuine.sum())} genuine)")
