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
    ``coverage``: the nose coverage of a built-in mask, ``low``, ``medium`` or ``high`` (None: ``high``, the mask
    as designed; see :mod:`frmask.synth.shapes`); templates have none. ``color``: a colour name of
    :func:`frmask.synth.colors.named_color` given to every image (instead of drawing from ``colors``).
    """

    mask_type: str = "surgical"
    template: str | None = None
    colors: str = "realistic"
    jitter: float = 0.0
    legacy: str | None = None
    warp: str = "homography"
    coverage: str | None = None
    color: str | None = None


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


def template_kind(spec: MaskSpec) -> str:
    """``"maskinv"``, ``"masktheface"`` or ``"builtin"``: which kind of template ``spec`` draws."""
    if spec.legacy == "maskinv" or (spec.template and os.path.basename(spec.template) == "maskinv_mask_img.png"):
        return "maskinv"
    if spec.template:
        if os.path.isdir(spec.template) or os.path.basename(spec.template) == "masks.cfg":
            return "masktheface"
        raise ValueError(f"{spec.template}: a template is maskinv_mask_img.png, or a MaskTheFace folder or its "
                         f"masks.cfg")
    return "builtin"


LANDMARK_CHOICES = ("5", "68", "auto")


def use_landmarks68(spec: MaskSpec, landmarks: str, *, auto: bool) -> bool:
    """Whether MaskTheFace anchors come from dlib's 68 landmarks of each face (instead of their estimated
    place in the aligned frame). ``landmarks``: ``"5"`` never, ``"68"`` always (an error without the extra
    ``frmask[landmarks68]``), ``"auto"`` gives ``auto`` when the extra is installed. Other templates are
    placed on the five points either way (False)."""
    if landmarks not in LANDMARK_CHOICES:
        raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_CHOICES)}, got {landmarks!r}")
    if landmarks == "5" or template_kind(spec) != "masktheface" or spec.legacy:
        return False
    from frmask.faces import landmarks68

    if landmarks == "68":
        landmarks68.model_path()  # raises Landmarks68Unavailable with the install hint
        landmarks68._dlib()
        return True
    return auto and landmarks68.available()


def load_template(spec: MaskSpec):
    """The MaskTemplate of a spec: the MaskInv template file (its five anchors are built in), a MaskTheFace
    folder or ``masks.cfg`` (``mask_type`` names the mask in it), or a built-in mask type."""
    kind = template_kind(spec)
    if spec.coverage is not None and kind != "builtin":
        raise ValueError(f"coverage {spec.coverage!r} applies to the built-in masks only (surgical, n95, kn95, cloth); "
                         f"a template file is drawn as it is")
    if kind == "maskinv":
        from frmask.synth.maskinv import maskinv_template

        return maskinv_template(spec.template)
    if kind == "masktheface":
        from frmask.synth.masktheface import masktheface_template

        return masktheface_template(spec.template, spec.mask_type)
    from frmask.synth.shapes import builtin_template

    return builtin_template(spec.mask_type, scale=BUILTIN_SCALE, coverage=spec.coverage or "high")


def check_spec(spec: MaskSpec):
    """The spec's template (:func:`load_template`), after checking its fixed colour name: a bad template, coverage or
    colour raises ValueError before any work."""
    if spec.color is not None:
        from frmask.synth.colors import named_color

        named_color(spec.color)
    return load_template(spec)


def variant_label(spec: MaskSpec) -> tuple[str, str]:
    """``(coverage, color)`` of a spec as the sidecars record them: the built-in mask's coverage level (empty for
    templates) and the fixed colour's name (empty when colours are drawn per image)."""
    return ("" if template_kind(spec) != "builtin" else spec.coverage or "high"), spec.color or ""


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
        self.fixed = None
        if spec.color is not None:
            from frmask.synth.colors import named_color

            self.fixed = named_color(spec.color)
        elif spec.colors == "uniform":
            pass
        elif spec.colors.lower().endswith((".txt", ".csv")) and os.path.isfile(spec.colors) and \
                not _is_palette_csv(spec.colors):
            self.by_index = read_color_file(spec.colors)
        else:
            self.palette = load_palette(spec.colors)

    def __call__(self, index: int) -> np.ndarray:
        from frmask.synth.colors import random_color
        from frmask.synth.seeding import image_rng

        if self.fixed is not None:
            return self.fixed.copy()
        if self.by_index is not None:
            if index not in self.by_index:
                raise ValueError(f"the colour file has no colour for image index {index}")
            return np.asarray(self.by_index[index], dtype=np.uint8)
        return random_color(image_rng(self.seed, self.benchmark, index, "color"), self.palette)

    def many(self, indices) -> np.ndarray:
        """uint8 (n, 3): the colours of ``indices``, the same as calling this object on each (the palette and
        uniform draws are recomputed in bulk by :mod:`frmask.synth.fastrng`, exactly)."""
        from frmask.synth import fastrng

        if self.fixed is not None:
            return np.tile(self.fixed, (len(indices), 1))
        if self.by_index is None and len(indices) > 16 and fastrng.selfcheck():
            palette = None if self.palette is None else self.palette.rgb
            return fastrng.random_colors(self.seed, self.benchmark, indices, palette)
        return np.stack([self(i) for i in indices]) if len(indices) else np.zeros((0, 3), np.uint8)


def _is_palette_csv(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline().strip().lower().replace(" ", "") == "name,r,g,b"


def _encode_like(original: bytes, rgb: np.ndarray) -> bytes:
    import cv2

    return _encode_bgr_like(original, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _encode_bgr_like(original: bytes, bgr: np.ndarray) -> bytes:
    """Encode a BGR image in the format of ``original``: PNG, or JPEG at :data:`JPEG_QUALITY`."""
    import cv2

    if original[:8] == b"\x89PNG\r\n\x1a\n":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("image encoding failed")
    return buf.tobytes()


def prepare_template(spec: MaskSpec):
    """The template and, when every image shares it (no jitter, no legacy rendering), the one warp."""
    template = load_template(spec)
    shared = None if spec.jitter or spec.legacy else shared_warp(template, spec.warp)
    return template, shared


def shared_warp(template, method: str = "homography"):
    """``warp_template(template, frame_landmarks(), (112, 112), method=method)``, kept in the on-disk template
    cache (:mod:`frmask.synth.template_cache`) under the template's content, so a fresh process skips the
    warp of a large template (~0.1 s for MaskInv's)."""
    import hashlib
    import json

    from frmask.synth.render import WarpedMask, warp_template
    from frmask.synth.template_cache import cached_arrays

    landmarks = frame_landmarks()
    if method != "homography":
        return warp_template(template, landmarks, (SIZE, SIZE), method=method)
    rgba = np.ascontiguousarray(template.rgba)
    content = hashlib.sha256(rgba.data)
    content.update(json.dumps([template.name, rgba.shape, list(template.anchors.items())]).encode())  # in order
    key = {"template": content.hexdigest(), "size": SIZE, "method": method,
           "landmarks": {k: [float(v) for v in landmarks[k]] for k in template.landmarks}}
    fields = ("alpha", "shade", "rgb", "homography")

    def compute() -> dict:
        warped = warp_template(template, landmarks, (SIZE, SIZE), method=method)
        return {name: getattr(warped, name) for name in fields}

    def looks_right(arrays: dict) -> bool:
        shapes = {"alpha": (SIZE, SIZE), "shade": (SIZE, SIZE), "rgb": (SIZE, SIZE, 3), "homography": (3, 3)}
        return sorted(arrays) == sorted(fields) and all(arrays[k].shape == shapes[k] for k in fields) and \
            all(arrays[k].dtype == (np.float64 if k == "homography" else np.float32) for k in fields)

    arrays = cached_arrays("warp", key, ("frmask.synth.render", "frmask.faces.align"), compute, looks_right)
    for a in arrays.values():
        a.setflags(write=False)
    return WarpedMask(**{name: arrays[name] for name in fields})


def render_state(spec: MaskSpec, seed: int, dataset: str, prepared, *, landmarks68: bool = False) -> dict:
    """Everything :func:`render_one` needs, built once per run (or per worker process). ``landmarks68``:
    place MaskTheFace anchors from each face's 68 landmarks (see :func:`use_landmarks68`)."""
    template, warped = prepared
    return dict(spec=spec, seed=seed, dataset=dataset, template=template, warped=warped,
                colorize=_Colorizer(spec, seed, dataset), landmarks68=landmarks68)


def render_one(st: dict, image: np.ndarray, index: int, color, anchors: dict | None = None) -> tuple[np.ndarray, list]:
    """Mask one aligned 112x112 RGB image: the legacy renderer, the shared warp, or a per-image warp (jitter,
    or MaskTheFace anchors from 68 landmarks). ``anchors``: the image's own MaskTheFace anchors (112 frame);
    without them and with ``st["landmarks68"]`` they are found on ``image`` itself. Returns the masked image
    and the jitter offsets it used (empty without jitter)."""
    from frmask.synth.maskinv import render_maskinv_legacy
    from frmask.synth.render import apply_mask, jitter_offsets, warp_template
    from frmask.synth.seeding import image_rng

    spec: MaskSpec = st["spec"]
    if spec.legacy == "maskinv":
        return render_maskinv_legacy(image, color, st["template"]), []
    if anchors is None and st.get("landmarks68"):
        from frmask.faces.landmarks68 import landmarks68_aligned, masktheface_anchors

        anchors = masktheface_anchors(landmarks68_aligned(image))
    if anchors is None and st["warped"] is not None:
        return apply_mask(image, st["warped"], color), []
    points = frame_landmarks() if anchors is None else {**frame_landmarks(), **anchors}
    if not spec.jitter and anchors is not None:
        warped = warp_template(st["template"], points, (SIZE, SIZE), method=spec.warp)
        return apply_mask(image, warped, color), []
    off = jitter_offsets(image_rng(st["seed"], st["dataset"], index, "jitter"), len(st["template"].landmarks),
                         spec.jitter)
    warped = warp_template(st["template"], points, (SIZE, SIZE), jitter=off, method=spec.warp)
    return apply_mask(image, warped, color), np.round(off, 4).ravel().tolist()


_DECODE_BATCH = 32  # images decoded, blended and encoded together (stays in the CPU caches)


def _decode_bgr(data: bytes, index: int, source=None, limit: int | None = None) -> np.ndarray:
    """One benchmark image as BGR uint8 (112, 112, 3): :func:`~frmask.io.insightface_bin.decode_image`
    without its conversion to RGB, and the size check (``limit``: :func:`frmask.io.images.max_pixels`).
    Errors name ``source`` (the ``.bin``) and ``index``."""
    import cv2

    from frmask.io.errors import FormatError
    from frmask.io.images import check_pixels

    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise FormatError("empty image data", path=source, index=index)
    check_pixels(data, path=source, index=index, limit=limit)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FormatError(f"cannot decode image ({exc})", path=source, index=index) from exc
    if bgr is None:
        raise FormatError(f"cannot decode image ({buf.size} bytes, not a valid JPEG/PNG)", path=source, index=index)
    if bgr.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{source + ': ' if source else ''}image {index} is {bgr.shape[1]}x{bgr.shape[0]}; benchmark images must be aligned "
                         f"{SIZE}x{SIZE} crops")
    return bgr


def _mask_chunk(st: dict, job) -> list[tuple[int, bytes, tuple, list]]:
    """Mask the images of one chunk: [(index, encoded bytes, rgb colour, jitter offsets)].

    ``job`` is (indices, encoded images[, uint8 (n, 3) RGB colours]). The shared-warp path works in BGR,
    as OpenCV decodes and encodes, blending with the colours' BGR order: the same bytes as in RGB.
    """
    import cv2

    from frmask.io.images import max_pixels
    from frmask.synth.render import blend_inplace

    limit = max_pixels()
    indices, blobs, *given = job  # (indices, blobs[, colours]): colours are drawn here when not given
    colors = given[0] if given else st["colorize"].many(indices)
    shared = st["warped"] is not None and not st["spec"].legacy and not st.get("landmarks68")
    out = []
    batch = np.empty((_DECODE_BATCH, SIZE, SIZE, 3), np.uint8)
    for start in range(0, len(indices), _DECODE_BATCH):
        idx = indices[start:start + _DECODE_BATCH]
        data = blobs[start:start + _DECODE_BATCH]
        rgb_colors = colors[start:start + _DECODE_BATCH]
        images = batch[:len(idx)]
        for k, (i, blob) in enumerate(zip(idx, data)):
            images[k] = _decode_bgr(blob, i, st.get("source"), limit)
        if shared:  # the fast path: one warp, blended in batches
            blend_inplace(images, st["warped"], rgb_colors[:, ::-1].astype(np.float32))
            encoded = [_encode_bgr_like(b, img) for b, img in zip(data, images)]
            jitters = [[] for _ in idx]
        else:
            rendered = [render_one(st, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), i, c)
                        for img, i, c in zip(images, idx, rgb_colors)]
            encoded = [_encode_like(b, r[0]) for b, r in zip(data, rendered)]
            jitters = [r[1] for r in rendered]
        out += [(i, e, tuple(int(v) for v in c), j) for i, e, c, j in zip(idx, encoded, rgb_colors.tolist(), jitters)]
    return out


def synth_bin(data, out, *, benchmark: str, mode: str = "masked-vs-masked", spec: MaskSpec = MaskSpec(),
              seed: int = 0, workers: int = 1, chunk: int = 512, progress=None, landmarks: str = "5") -> SynthSummary:
    """Write a masked copy of the ``.bin`` benchmark ``data`` to ``out`` (atomically), with a sidecar CSV
    ``<out>.masks.csv`` (index, masked, mask type, colour, jitter) and a preview contact sheet
    ``<out>.preview.png``. ``progress`` is called with the number of images finished after each chunk.
    ``landmarks``: where a MaskTheFace template's anchors go: ``"5"`` or ``"auto"`` at their estimated place
    in the aligned frame, ``"68"`` from dlib's 68 landmarks found on each aligned image (needs
    ``frmask[landmarks68]``).
    """
    import time

    from frmask.io.insightface_bin import BinBenchmark, read_bin

    t0 = time.perf_counter()
    check_benchmark(benchmark)
    masked_indices(0, mode)  # validates the mode before any work
    if spec.legacy not in (None, "maskinv"):
        raise ValueError(f"unknown legacy renderer {spec.legacy!r}; the only one is 'maskinv'")
    points68 = use_landmarks68(spec, landmarks, auto=False)
    from frmask._paths import refuse_same

    for path in (os.fspath(out), os.fspath(out) + ".masks.csv", os.fspath(out) + ".preview.png"):
        refuse_same(path, data)  # X.bin -> X.bin (or a link to it) would overwrite the input
    bench = read_bin(data)
    todo = masked_indices(len(bench.images), mode)
    images = list(bench.images)
    idx = np.flatnonzero(todo).tolist()
    rows = {}
    if idx:
        st = render_state(spec, seed, benchmark, prepare_template(spec), landmarks68=points68)
        st["source"] = os.fspath(data)  # named with the index in image errors
        colors = st["colorize"].many(idx)
        jobs = [(idx[s:s + chunk], [images[i] for i in idx[s:s + chunk]], colors[s:s + chunk])
                for s in range(0, len(idx), chunk)]
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
    sidecar = _sidecar_text(len(images), rows, name, variant_label(spec))
    preview = _preview(bench.images, images, idx, spec, seed, benchmark)
    from frmask._atomic import write_bytes_atomic, write_text_atomic
    from frmask.io.insightface_bin import write_bin

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


def _sidecar_text(n: int, rows: dict, mask_name: str, variant: tuple[str, str]) -> str:
    from frmask._csv_text import csv_text

    coverage, color = variant
    lines = [("index", "masked", "mask_type", "r", "g", "b", "jitter", "coverage", "color")]
    for i in range(n):
        if i in rows:
            (r, g, b), jitter = rows[i]
            lines.append((i, 1, mask_name, r, g, b, " ".join(map(str, jitter)), coverage, color))
        else:
            lines.append((i, 0, "", "", "", "", "", "", ""))
    return csv_text(lines)


def _preview(before, after, masked_idx, spec: MaskSpec, seed: int, benchmark: str, n: int = 8) -> bytes:
    """PNG contact sheet: originals above their masked versions, for up to ``n`` masked images spread over the
    set; a built-in mask shows one row per coverage level (:func:`frmask.synth.preview.coverage_rows`)."""
    import cv2

    from frmask.io.insightface_bin import decode_image
    from frmask.synth.preview import contact_sheet_png, coverage_rows

    picks = [masked_idx[k] for k in np.linspace(0, len(masked_idx) - 1, min(n, len(masked_idx))).astype(int)] \
        if masked_idx else list(range(min(n, len(before))))
    tiles_top = [cv2.resize(decode_image(before[i], i), (SIZE, SIZE)) for i in picks]
    tiles_bot = [cv2.resize(decode_image(after[i], i), (SIZE, SIZE)) for i in picks]
    if not masked_idx:
        return contact_sheet_png(tiles_top, tiles_bot)
    colors = _Colorizer(spec, seed, benchmark).many(picks)
    return contact_sheet_png(tiles_top, *coverage_rows(spec, seed, benchmark, tiles_top, picks, colors, tiles_bot))
