"""Masked versions of insightface ``.bin`` benchmarks (lfw, cfp_fp, cfp_ff, agedb_30, calfw, cplfw).

A benchmark holds 2N aligned 112x112 images; pair i is images 2i and 2i+1. Modes decide which images get
a mask:

* ``none``: no image (a re-encode-free copy, for a like-for-like baseline);
* ``masked-vs-masked``: every image;
* ``masked-vs-nonmasked``: the second image of each pair (the probe), so every pair compares an
  unmasked reference with a masked probe;
* ``legacy-maskinv``: images with index >= N, the published code's split (defect 3 of DESIGN.md: half of
  the pairs get no mask and half get two). For comparison with published numbers only.

Every random choice for image i (its colour, its anchor jitter) comes from
``image_rng(seed, benchmark, i, stream)``, so the output is byte-identical whatever the worker count or
chunking. Unmasked images are copied byte for byte; masked ones are re-encoded in their own format (JPEG at
quality 95, or PNG).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

BENCHMARKS = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw")
MODES = ("none", "masked-vs-masked", "masked-vs-nonmasked", "legacy-maskinv")
JPEG_QUALITY = 95
SIZE = 112
BUILTIN_SCALE = 2  # built-in masks are drawn at 2 template pixels per pixel of the 112x112 output


@dataclass(frozen=True)
class MaskSpec:
    """What to draw: a mask type (built-in name) or template file, colours, jitter, legacy rendering.

    ``colors``: a palette name (``realistic``), ``uniform`` (the paper's uniform random RGB), or the path
    of a published colour file (``idx,[r g b]`` lines, matched by image index). ``jitter``: the maximum
    anchor shift in pixels of a 112 crop (0 for evaluation). ``warp``: ``homography`` (least squares over
    the anchors) or ``piecewise`` (piecewise-affine, exact at every anchor). ``legacy``: ``"maskinv"`` reproduces the
    published rendering bit for bit (its defects included), only for comparison with published numbers.
    """

    mask_type: str = "surgical"
    template: str | None = None
    colors: str = "realistic"
    jitter: float = 0.0
    legacy: str | None = None
    warp: str = "homography"


@dataclass
class SynthSummary:
    """What a run did: counts, and where its outputs went."""

    benchmark: str
    mode: str
    n_pairs: int
    n_images: int
    n_masked: int
    outputs: dict = field(default_factory=dict)
    seconds: float = 0.0


def masked_indices(n_images: int, mode: str) -> np.ndarray:
    """Boolean array: which of the 2N images of a benchmark get a mask in ``mode`` (module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    idx = np.arange(n_images)
    if mode == "none":
        return np.zeros(n_images, bool)
    if mode == "masked-vs-masked":
        return np.ones(n_images, bool)
    if mode == "masked-vs-nonmasked":
        return idx % 2 == 1
    return idx >= n_images // 2


def check_benchmark(name: str) -> str:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return name


def load_template(spec: MaskSpec):
    """The MaskTemplate of a spec: the MaskInv template file (its five anchors are built in), a MaskTheFace
    folder or ``masks.cfg`` (``mask_type`` names the mask in it), or a built-in mask type."""
    if spec.legacy == "maskinv" or (spec.template and os.path.basename(spec.template) == "maskinv_mask_img.png"):
        from frmask.synth.maskinv import maskinv_template

        return maskinv_template(spec.template)
    if spec.template:
        if os.path.isdir(spec.template) or os.path.basename(spec.template) == "masks.cfg":
            from frmask.synth.masktheface import masktheface_template

            return masktheface_template(spec.template, spec.mask_type)
        raise ValueError(f"{spec.template}: a template is maskinv_mask_img.png, or a MaskTheFace folder or its "
                         f"masks.cfg")
    from frmask.synth.shapes import builtin_template

    return builtin_template(spec.mask_type, scale=BUILTIN_SCALE)


def frame_landmarks() -> dict:
    """Every named anchor position in the aligned ArcFace 112x112 frame: the five landmarks and
    MaskTheFace's six estimated points."""
    from frmask.synth.maskinv import ARCFACE_LANDMARKS
    from frmask.synth.masktheface import FRAME_ANCHORS_112

    return {**ARCFACE_LANDMARKS, **FRAME_ANCHORS_112}


class _Colorizer:
    """Picks image i's colour from (seed, benchmark, i): a palette, uniform RGB, or a colour file."""

    def __init__(self, spec: MaskSpec, seed: int, benchmark: str):
        from frmask.synth.colors import load_palette, read_color_file

        self.seed, self.benchmark = seed, benchmark
        self.by_index = None
        self.palette = None
        if spec.colors == "uniform":
            pass
        elif spec.colors.lower().endswith((".txt", ".csv")) and os.path.isfile(spec.colors) and \
                not _is_palette_csv(spec.colors):
            self.by_index = read_color_file(spec.colors)
        else:
            self.palette = load_palette(spec.colors)

    def __call__(self, index: int) -> np.ndarray:
        from frmask.synth.colors import random_color
        from frmask.synth.seeding import image_rng

        if self.by_index is not None:
            if index not in self.by_index:
                raise ValueError(f"the colour file has no colour for image index {index}")
            return np.asarray(self.by_index[index], dtype=np.uint8)
        return random_color(image_rng(self.seed, self.benchmark, index, "color"), self.palette)


def _is_palette_csv(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline().strip().lower().replace(" ", "") == "name,r,g,b"


def _encode_like(original: bytes, rgb: np.ndarray) -> bytes:
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if original[:8] == b"\x89PNG\r\n\x1a\n":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("image encoding failed")
    return buf.tobytes()


def prepare_template(spec: MaskSpec):
    """The template and, when every image shares it (no jitter, no legacy rendering), the one warp."""
    from frmask.synth.render import warp_template

    template = load_template(spec)
    shared = None if spec.jitter or spec.legacy else warp_template(template, frame_landmarks(), (SIZE, SIZE),
                                                                     method=spec.warp)
    return template, shared


def render_state(spec: MaskSpec, seed: int, dataset: str, prepared) -> dict:
    """Everything :func:`render_one` needs, built once per run (or per worker process)."""
    template, warped = prepared
    return dict(spec=spec, seed=seed, dataset=dataset, template=template, warped=warped,
                colorize=_Colorizer(spec, seed, dataset))


def render_one(st: dict, image: np.ndarray, index: int, color) -> tuple[np.ndarray, list]:
    """Mask one aligned 112x112 RGB image: the legacy renderer, the shared warp, or a per-image jittered
    warp. Returns the masked image and the jitter offsets it used (empty without jitter)."""
    from frmask.synth.maskinv import render_maskinv_legacy
    from frmask.synth.render import apply_mask, jitter_offsets, warp_template
    from frmask.synth.seeding import image_rng

    spec: MaskSpec = st["spec"]
    if spec.legacy == "maskinv":
        return render_maskinv_legacy(image, color, st["template"]), []
    if st["warped"] is not None:
        return apply_mask(image, st["warped"], color), []
    off = jitter_offsets(image_rng(st["seed"], st["dataset"], index, "jitter"), len(st["template"].landmarks),
                         spec.jitter)
    warped = warp_template(st["template"], frame_landmarks(), (SIZE, SIZE), jitter=off, method=spec.warp)
    return apply_mask(image, warped, color), np.round(off, 4).ravel().tolist()


def contact_sheet_png(top: list, bottom: list) -> bytes:
    """PNG of two rows of equally sized RGB tiles (originals above their masked versions)."""
    import cv2

    sheet = np.vstack([np.hstack(top), np.hstack(bottom)])
    return cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))[1].tobytes()


def _mask_chunk(st: dict, job) -> list[tuple[int, bytes, tuple, list]]:
    """Mask the images of one chunk: [(index, encoded bytes, rgb colour, jitter offsets)]."""
    from frmask.io.insightface_bin import decode_image
    from frmask.synth.render import apply_mask_batch

    indices, blobs = job
    images = np.empty((len(indices), SIZE, SIZE, 3), np.uint8)
    for k, (i, data) in enumerate(zip(indices, blobs)):
        img = decode_image(data, i)
        if img.shape[:2] != (SIZE, SIZE):
            raise ValueError(f"image {i} is {img.shape[1]}x{img.shape[0]}; benchmark images must be aligned "
                             f"{SIZE}x{SIZE} crops")
        images[k] = img
    colors = np.stack([st["colorize"](i) for i in indices]) if indices else np.zeros((0, 3), np.uint8)
    if st["warped"] is not None and not st["spec"].legacy:  # the fast path: one warp, blended in batches
        out, jitters = apply_mask_batch(images, st["warped"], colors), [[] for _ in indices]
    else:
        rendered = [render_one(st, img, i, c) for img, i, c in zip(images, indices, colors)]
        out, jitters = [r[0] for r in rendered], [r[1] for r in rendered]
    return [(i, _encode_like(b, o), tuple(int(v) for v in c), j)
            for i, b, o, c, j in zip(indices, blobs, out, colors, jitters)]


def synth_bin(data, out, *, benchmark: str, mode: str = "masked-vs-masked", spec: MaskSpec = MaskSpec(),
              seed: int = 0, workers: int = 1, chunk: int = 512, progress=None) -> SynthSummary:
    """Write a masked copy of the ``.bin`` benchmark ``data`` to ``out`` (atomically), with a sidecar CSV
    ``<out>.masks.csv`` (index, masked, mask type, colour, jitter) and a preview contact sheet
    ``<out>.preview.png``. ``progress`` is called with the number of images finished after each chunk.
    """
    import time

    from frmask.io.insightface_bin import BinBenchmark, read_bin, write_bin

    t0 = time.perf_counter()
    check_benchmark(benchmark)
    masked_indices(0, mode)  # validates the mode before any work
    if spec.legacy not in (None, "maskinv"):
        raise ValueError(f"unknown legacy renderer {spec.legacy!r}; the only one is 'maskinv'")
    bench = read_bin(data)
    todo = masked_indices(len(bench.images), mode)
    images = list(bench.images)
    idx = np.flatnonzero(todo).tolist()
    jobs = [(idx[s:s + chunk], [images[i] for i in idx[s:s + chunk]]) for s in range(0, len(idx), chunk)]
    rows = {}
    if jobs:
        st = render_state(spec, seed, benchmark, prepare_template(spec))
        if workers > 1:
            # Threads, not processes: JPEG decoding/encoding and the numpy blend release the GIL, and
            # nothing has to be pickled across processes. Results are placed by index: same output for any N.
            # OpenCV's own thread pool would compete with ours: one OpenCV thread while they run, then the
            # caller's setting back.
            import cv2

            cv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                with ThreadPoolExecutor(workers) as pool:
                    for res in pool.map(lambda job: _mask_chunk(st, job), jobs):
                        _collect(res, images, rows, progress)
            finally:
                cv2.setNumThreads(cv_threads)
        else:
            for job in jobs:
                _collect(_mask_chunk(st, job), images, rows, progress)
    masked = BinBenchmark(images, bench.issame)
    name = spec.legacy and "maskinv-legacy" or (spec.template and os.path.basename(spec.template)) or spec.mask_type
    sidecar = _sidecar_text(len(images), rows, name)
    preview = _preview(bench.images, images, idx)
    from frmask._atomic import write_bytes_atomic, write_text_atomic

    out = os.fspath(out)
    write_bin(out, masked)
    write_text_atomic(out + ".masks.csv", sidecar)
    write_bytes_atomic(out + ".preview.png", preview)
    return SynthSummary(benchmark, mode, bench.n_pairs, len(images), len(idx),
                        {"bin": out, "sidecar": out + ".masks.csv", "preview": out + ".preview.png"},
                        time.perf_counter() - t0)


def _collect(res, images, rows, progress) -> None:
    for i, blob, color, jitter in res:
        images[i] = blob
        rows[i] = (color, jitter)
    if progress is not None:
        progress(len(res))


def _sidecar_text(n: int, rows: dict, mask_name: str) -> str:
    lines = ["index,masked,mask_type,r,g,b,jitter"]
    for i in range(n):
        if i in rows:
            (r, g, b), jitter = rows[i]
            lines.append(f"{i},1,{mask_name},{r},{g},{b},{' '.join(map(str, jitter))}")
        else:
            lines.append(f"{i},0,,,,,")
    return "\n".join(lines) + "\n"


def _preview(before, after, masked_idx, n: int = 8) -> bytes:
    """PNG contact sheet: original above masked, for up to ``n`` masked images spread over the set."""
    import cv2

    from frmask.io.insightface_bin import decode_image

    picks = [masked_idx[k] for k in np.linspace(0, len(masked_idx) - 1, min(n, len(masked_idx))).astype(int)] \
        if masked_idx else list(range(min(n, len(before))))
    tiles_top = [cv2.resize(decode_image(before[i], i), (SIZE, SIZE)) for i in picks]
    tiles_bot = [cv2.resize(decode_image(after[i], i), (SIZE, SIZE)) for i in picks]
    return contact_sheet_png(tiles_top, tiles_bot)
