"""Masked versions of image folders: detect, align to 112x112, mask, keep the folder structure.

Every image under the source folder (recursively, sorted by relative path) gets index i in that order;
its random choices come from ``image_rng(seed, <source folder name>, i, stream)``. An image that cannot be
read or in which no face is found is written to ``failures.csv`` (path and reason) and counted, never
dropped silently. Beside the masked images the output folder holds ``masks.csv`` (index, path, mask,
colour, jitter) and ``preview.png`` (aligned originals above their masked versions).
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
    import cv2

    i, rel, src, dst, keep = job
    bgr = cv2.imread(src, cv2.IMREAD_COLOR)
    if bgr is None:
        return i, rel, "unreadable image", None
    out = mask_face(_STATE, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i, rel, Path(dst).suffix)
    if isinstance(out, str):
        return i, rel, out, None
    data, color, jitter, aligned, masked = out
    from frmask._atomic import write_bytes_atomic

    suffix = Path(dst).suffix.lower()
    out_path = dst if suffix != ".pgm" else str(Path(dst).with_suffix(".png"))
    write_bytes_atomic(out_path, data)
    return i, rel, None, (tuple(int(v) for v in color), jitter, aligned if keep else None, masked if keep else None)


def synth_folder(src, dst, *, spec: MaskSpec = MaskSpec(), seed: int = 0, detector: str = "yunet",
                 landmarks_csv=None, workers: int = 1, progress=None, landmarks: str = "auto") -> FolderSummary:
    """Mask every face image under ``src`` into ``dst`` (module docstring).

    ``landmarks``: where a MaskTheFace template's six anchors go. ``"68"``: computed as MaskTheFace does from
    dlib's 68 landmarks of each face (found on the face aligned at 224x224, mapped to the 112 crop; needs
    ``pip install frmask[landmarks68]``); ``"5"``: their estimated place in the aligned frame; ``"auto"``
    (default): 68 when that extra is installed. Other templates always use the five points.
    """
    import time

    from frmask._atomic import write_bytes_atomic, write_text_atomic

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ValueError(f"{src}: not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"{dst}: the output folder must not be the source folder or inside it")
    files = list_images(src)
    if not files:
        raise ValueError(f"{src}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    table = None
    if landmarks_csv is not None:
        from frmask.faces.landmarks_csv import read_landmarks_csv

        table = read_landmarks_csv(landmarks_csv)
    check_spec(spec)  # fail fast on a bad template or colour, before any output
    points68 = use_landmarks68(spec, landmarks, auto=True)
    dataset = src.resolve().name
    shown = set(np.linspace(0, len(files) - 1, min(8, len(files))).astype(int).tolist())  # preview tiles
    jobs = [(i, rel.as_posix(), str(src / rel), str(dst / rel), i in shown) for i, rel in enumerate(files)]
    results = []
    init_args = (spec, seed, dataset, detector, table, points68)
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
    done = [(i, rel, rec) for i, rel, err, rec in results if not err]
    rows = ["index,path,mask_type,r,g,b,jitter,coverage,color"]
    name = spec.legacy and "maskinv-legacy" or (spec.template and os.path.basename(spec.template)) or spec.mask_type
    variant = ",".join(variant_label(spec))
    rows += [f"{i},{rel},{name},{r},{g},{b},{' '.join(map(str, jit))},{variant}"
             for i, rel, ((r, g, b), jit, _, _) in done]
    dst.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst / "masks.csv", "\n".join(rows) + "\n")
    write_text_atomic(dst / "failures.csv", "path,reason\n" + "".join(f"{rel},{err}\n" for rel, err in failures))
    outputs = {"images": str(dst), "sidecar": str(dst / "masks.csv"), "failures": str(dst / "failures.csv")}
    tiles = [(i, rec) for i, _, rec in done if rec[2] is not None]
    if tiles:
        from frmask.synth.preview import contact_sheet_png, coverage_rows

        originals = [r[2] for _, r in tiles]
        rows = coverage_rows(spec, seed, dataset, originals, [i for i, _ in tiles], [r[0] for _, r in tiles],
                             [r[3] for _, r in tiles])
        write_bytes_atomic(dst / "preview.png", contact_sheet_png(originals, *rows))
        outputs["preview"] = str(dst / "preview.png")
    return FolderSummary(len(files), len(done), failures, outputs, time.perf_counter() - t0)
