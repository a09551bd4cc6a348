"""Masked versions of image folders: detect, align to 112x112, mask, keep the folder structure.

Every image under the source folder (recursively, sorted by relative path) gets index i in that order;
its random choices come from ``image_rng(seed, <source folder name>, i, stream)``. An image that cannot be
read (unreadable, undecodable, or a header claiming more than :func:`frmask.io.images.max_pixels` pixels)
or in which no face is found is written to ``failures.csv`` (path and reason, the same reasons ``score``
gives its failures to acquire) and counted, never dropped silently. Beside the masked images the output
folder holds ``masks.csv`` (index, path, mask, colour, jitter) and ``preview.png`` (aligned originals above
their masked versions); the CSVs are written with the csv module (a name with a comma or quote round-trips).

The output folder is built under a temporary name beside ``dst`` and renamed into place when complete, so an
error or Ctrl-C leaves nothing partial. An existing ``dst`` is replaced only when it holds nothing but what
an earlier frmask run wrote there (:func:`frmask._atomic_folder.replace_dir`); ``dst`` must not be the source
folder, lie inside it or hold it.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frmask.synth.benchmark import (JPEG_QUALITY, SIZE, MaskSpec, check_spec, prepare_template, render_one,
                                    render_state, use_landmarks68, variant_label)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


@dataclass
class FolderSummary:
    n_images: int
    n_masked: int
    failures: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    seconds: float = 0.0


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, as sorted relative paths."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


_STATE: dict = {}


_ALIGN68 = 224  # faces are aligned at this size for the 68-point predictor (more pixels than the 112 crop)


def folder_state(spec: MaskSpec, seed: int, dataset: str, detector: str, landmarks: dict | None, points68: bool,
                 threads: int = 0) -> dict:
    """What :func:`mask_face` needs for one folder run: the render state, the detector (None when a landmark
    table is given) and the 68-point switch."""
    det = None
    if landmarks is None:
        from frmask.faces.detect import get_detector

        det = get_detector(detector, threads=threads)
    # The 68-point anchors come from the original image (see mask_face), not from the 112 crop.
    return dict(render_state(spec, seed, dataset, prepare_template(spec)), detector=det, landmarks=landmarks,
                points68=points68)


def _init(spec: MaskSpec, seed: int, dataset: str, detector: str, landmarks: dict | None, points68: bool,
          threads: int) -> None:
    import cv2

    if threads:
        cv2.setNumThreads(threads)  # a worker process per core: no nested thread pools
    _STATE.update(folder_state(spec, seed, dataset, detector, landmarks, points68, threads))


def mask_face(st: dict, rgb: np.ndarray, i: int, rel: str, suffix: str):
    """Image ``i`` (relative path ``rel``) of a folder run, masked as ``frmask synth --images`` writes it:
    ``(encoded bytes, colour, jitter, aligned crop, masked crop)``, or a failure reason (str). ``suffix``:
    the source file's suffix (``.pgm`` sources are written as PNG, JPEG at :data:`JPEG_QUALITY`)."""
    import cv2

    from frmask.faces.align import align_face

    if st["landmarks"] is not None:
        lm = st["landmarks"].get(rel)
        if lm is None:
            return "no landmarks in the landmark file"
    else:
        face = st["detector"].detect_largest(rgb)
        if face is None:
            return "no face detected"
        lm = face.landmarks
    try:
        aligned = align_face(rgb, lm, size=(SIZE, SIZE))
    except ValueError as exc:
        return f"cannot align: {exc}"
    anchors = None
    if st["points68"]:
        from frmask.faces.landmarks68 import landmarks68_aligned, masktheface_anchors

        big = align_face(rgb, lm, size=(_ALIGN68, _ALIGN68))
        anchors = {k: (x * SIZE / _ALIGN68, y * SIZE / _ALIGN68)
                   for k, (x, y) in masktheface_anchors(landmarks68_aligned(big)).items()}
    color = st["colorize"](i)
    try:
        masked, jitter = render_one(st, aligned, i, color, anchors)
    except ValueError as exc:
        if anchors is None:
            raise
        return f"cannot place the mask on the 68 landmarks: {exc}"
    suffix = suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix if suffix != ".pgm" else ".png", cv2.cvtColor(masked, cv2.COLOR_RGB2BGR), params)
    if not ok:
        return f"cannot encode {suffix}"
    return buf.tobytes(), color, jitter, aligned, masked


def _process(job):
    """Mask one image: (index, relative path, source, destination) -> (index, rel, error or None, record)."""
    from frmask.io.errors import FormatError
    from frmask.io.insightface_bin import decode_image

    i, rel, src, dst, keep = job
    try:
        with open(src, "rb") as f:
            rgb = decode_image(f.read())
    except OSError as exc:
        return i, rel, f"unreadable image: {exc.strerror or exc}", None
    except FormatError as exc:  # undecodable, or a header claiming too many pixels: as `score` reports it
        return i, rel, f"unreadable image: {exc}", None
    out = mask_face(_STATE, rgb, i, rel, Path(dst).suffix)
    if isinstance(out, str):
        return i, rel, out, None
    data, color, jitter, aligned, masked = out
    suffix = Path(dst).suffix.lower()
    out_path = Path(dst if suffix != ".pgm" else Path(dst).with_suffix(".png"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)  # inside the run's temporary folder: renamed into place as a whole
    return i, rel, None, (tuple(int(v) for v in color), jitter, aligned if keep else None, masked if keep else None)


def _legacy_outputs(folder: Path) -> set | None:
    """What an older frmask (no manifest) wrote in an output folder: its sidecars and the images its
    ``masks.csv`` lists (with the folders holding them); None when ``folder`` has no such ``masks.csv``."""
    import csv

    try:
        with open(folder / "masks.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError):
        return None
    if not rows or rows[0][:2] != ["index", "path"]:
        return None
    names = {"masks.csv", "failures.csv", "preview.png"}
    for row in rows[1:]:
        if len(row) > 1:
            rel = Path(row[1])
            names |= {rel.as_posix(), rel.with_suffix(".png").as_posix(), *(p.as_posix() for p in rel.parents)}
    return names - {"."}


def _run_jobs(jobs: list, init_args: tuple, workers: int, progress) -> tuple[list, list]:
    """Mask every job (in worker processes when ``workers > 1``): ``(failures [(path, reason)], done
    [(index, path, record)])``, in index order."""
    results = []
    if workers > 1:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(*init_args, 1)) as pool:
            for res in pool.map(_process, jobs, chunksize=16):
                results.append(res)
                if progress:
                    progress(1)
    else:
        _init(*init_args, 0)
        for job in jobs:
            results.append(_process(job))
            if progress:
                progress(1)
    failures = [(rel, err) for _, rel, err, _ in results if err]
    return failures, [(i, rel, rec) for i, rel, err, rec in results if not err]


def synth_folder(src, dst, *, spec: MaskSpec = MaskSpec(), seed: int = 0, detector: str = "yunet",
                 landmarks_csv=None, workers: int = 1, progress=None, landmarks: str = "auto") -> FolderSummary:
    """Mask every face image under ``src`` into ``dst`` (module docstring).

    ``landmarks``: where a MaskTheFace template's six anchors go. ``"68"``: computed as MaskTheFace does from
    dlib's 68 landmarks of each face (found on the face aligned at 224x224, mapped to the 112 crop; needs
    ``pip install frmask[landmarks68]``); ``"5"``: their estimated place in the aligned frame; ``"auto"``
    (default): 68 when that extra is installed. Other templates always use the five points.
    """
    import time

    from frmask import _atomic_folder
    from frmask._csv_text import write_csv_atomic
    from frmask._paths import refuse_nested

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ValueError(f"{src}: not a folder")
    refuse_nested(dst, src, "source")
    files = list_images(src)
    if not files:
        raise ValueError(f"{src}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    table = None
    if landmarks_csv is not None:
        from frmask.faces.landmarks_csv import read_landmarks_csv

        table = read_landmarks_csv(landmarks_csv)
    check_spec(spec)  # fail fast on a bad template or colour, before any output
    points68 = use_landmarks68(spec, landmarks, auto=True)
    _atomic_folder.check_replaceable(dst, _legacy_outputs)  # before the long part
    dataset = src.resolve().name
    shown = set(np.linspace(0, len(files) - 1, min(8, len(files))).astype(int).tolist())  # preview tiles
    tmp = _atomic_folder.make_temp_dir(dst)
    try:
        failures, done = _run_jobs([(i, rel.as_posix(), str(src / rel), str(tmp / rel), i in shown)
                                    for i, rel in enumerate(files)],
                                   (spec, seed, dataset, detector, table, points68), workers, progress)
        name = spec.legacy and "maskinv-legacy" or (spec.template and os.path.basename(spec.template)) or \
            spec.mask_type
        variant = tuple(variant_label(spec))
        write_csv_atomic(tmp / "masks.csv", [
            ("index", "path", "mask_type", "r", "g", "b", "jitter", "coverage", "color")] + [
            (i, rel, name, r, g, b, " ".join(map(str, jit)), *variant) for i, rel, ((r, g, b), jit, _, _) in done])
        write_csv_atomic(tmp / "failures.csv", [("path", "reason"), *failures])
        outputs = {"images": str(dst), "sidecar": str(dst / "masks.csv"), "failures": str(dst / "failures.csv")}
        tiles = [(i, rec) for i, _, rec in done if rec[2] is not None]
        if tiles:
            from frmask.synth.preview import contact_sheet_png, coverage_rows

            originals = [r[2] for _, r in tiles]
            rows = coverage_rows(spec, seed, dataset, originals, [i for i, _ in tiles], [r[0] for _, r in tiles],
                                 [r[3] for _, r in tiles])
            (tmp / "preview.png").write_bytes(contact_sheet_png(originals, *rows))
            outputs["preview"] = str(dst / "preview.png")
        _atomic_folder.replace_dir(tmp, dst, legacy=_legacy_outputs)
    except BaseException:  # an error or Ctrl-C: nothing of this run is left behind
        _atomic_folder.discard_temp_dir(tmp)
        raise
    return FolderSummary(len(files), len(done), failures, outputs, time.perf_counter() - t0)
