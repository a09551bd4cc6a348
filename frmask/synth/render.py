"""Render a mask template onto face images: homography, warp, colour with shading, alpha blend.

The pipeline for one face (or one aligned benchmark, where every image shares the landmarks):

1. :func:`fit_homography` maps the template's anchor points onto the face landmarks (least squares
   over all anchor pairs, so a template with five anchors needs no exact projective consistency).
2. :func:`warp_template` warps the template's premultiplied RGBA into the output frame once and
   returns a :class:`WarpedMask`: coverage ``alpha``, a luminance ``shade`` normalised to 1.0 over
   the mask's typical luminance, and the warped template colours ``rgb``.
3. :func:`apply_mask` / :func:`apply_mask_batch` blend one or many images with that warp:
   ``out = image * (1 - alpha) + alpha * clip(color * shade, 0, 255)``, in float32, rounded to the
   nearest integer and clipped to 0..255 (never a uint8 wrap-around). ``color=None`` blends the
   template's own colours instead. Warping once and blending many images is the fast path.

Large templates (the MaskInv template is 1627x1085 and lands on ~60 output pixels) are first reduced
by area averaging to the power-of-two level whose remaining minification is below 2, so that the
bilinear warp does not alias the pleats and edges into noise. The reduction works on premultiplied
colours, so transparent pixels never bleed their colour into the mask edge.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from frmask.faces.align import as_points, check_not_degenerate, check_size
from frmask.synth.template import FIVE_POINTS, MaskTemplate

__all__ = [
    "LUMA_WEIGHTS",
    "JitterPlacer",
    "WarpedMask",
    "apply_mask",
    "apply_mask_batch",
    "fit_homography",
    "jitter_offsets",
    "place_template",
    "project_points",
    "template_level",
    "warp_template",
]

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)
"""ITU-R BT.601 luma weights (R, G, B) used for the template's shading."""

_ALPHA_FLOOR = 1e-4  # warped coverage below this is numerical dust and set to 0
_CHUNK = 8  # images blended per step of apply_mask_batch (keeps temporaries in cache; measured fastest)
_PAINT_CACHE = 64  # painted windows kept per WarpedMask (a palette's colours; 64 x ~70 KB)


# ----------------------------------------------------------------------------------------------------
# homography
# ----------------------------------------------------------------------------------------------------

def _normaliser(points: np.ndarray) -> np.ndarray:
    """Hartley's similarity: centroid to the origin, mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = np.mean(np.linalg.norm(points - centre, axis=1))
    scale = math.sqrt(2.0) / spread
    return np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = points @ matrix[:, :2].T + matrix[:, 2]
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def project_points(homography: np.ndarray, points) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography; returns float64 (N, 2)."""
    homography = np.asarray(homography, dtype=np.float64)
    if homography.shape != (3, 3):
        raise ValueError(f"homography must have shape (3, 3), got {homography.shape}")
    return _apply(homography, as_points(points, "points"))


def _check_spread(points: np.ndarray, what: str) -> None:
    check_not_degenerate(points, what, line_tol=1e-6, coincide_tol=1e-9)
    scale = float(np.sqrt(np.mean(np.sum((points - points.mean(axis=0)) ** 2, axis=1))))
    if len(points) == 4:
        for k in range(4):
            rest = np.delete(points, k, axis=0)
            a, b, c = rest
            cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if abs(cross) <= 1e-6 * scale**2:
                raise ValueError(f"degenerate {what}: with 4 points no 3 may be collinear, but points "
                                 f"{[i for i in range(4) if i != k]} are")


@lru_cache(maxsize=64)
def _checked_source(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The spread check, Hartley normaliser and normalised points of float64 (n, 2) source points, cached
    (the source points are a template's anchors, the same for every image it is warped onto)."""
    src = np.frombuffer(data, dtype=np.float64).reshape(n, 2)
    _check_spread(src, "src points")
    t_src = _normaliser(src)
    return _readonly(t_src), _readonly(_apply(t_src, src))


def fit_homography(src, dst) -> np.ndarray:
    """The 3x3 homography ``H`` (``H[2, 2] = 1``) mapping ``src`` points onto ``dst`` points.

    Needs at least 4 pairs; with more it is the least-squares fit over all pairs
    (``cv2.findHomography`` with ``method=0``: Hartley-normalised DLT refined by Levenberg-Marquardt
    on the reprojection error in ``dst``). Raises ``ValueError`` for mismatched or non-finite input and
    for degenerate configurations (coinciding points, all points on a line, 3 of 4 collinear, or a
    fit whose matrix is singular).
    """
    import cv2

    src = as_points(src, "src points")
    dst = as_points(dst, "dst points")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 4:
        raise ValueError(f"a homography needs at least 4 point pairs, got {len(src)}")
    t_src, s = _checked_source(src.tobytes(), len(src))
    _check_spread(dst, "dst points")

    # Algebraic rank check on normalised coordinates: a unique fit needs a one-dimensional null space.
    t_dst = _normaliser(dst)
    d = _apply(t_dst, dst)
    n = len(s)
    design = np.zeros((2 * n, 9))
    design[0::2, 0:2], design[0::2, 2] = s, 1.0
    design[0::2, 6:8], design[0::2, 8] = -d[:, :1] * s, -d[:, 0]
    design[1::2, 3:5], design[1::2, 5] = s, 1.0
    design[1::2, 6:8], design[1::2, 8] = -d[:, 1:] * s, -d[:, 1]
    _, sv, vt = np.linalg.svd(design)
    if sv[7] <= 1e-9 * sv[0]:
        raise ValueError("degenerate point configuration: the homography is not determined by these points")
    normalised = vt[-1].reshape(3, 3)
    cond = np.linalg.svd(normalised, compute_uv=False)
    if cond[2] <= 1e-9 * cond[0]:
        raise ValueError("degenerate point configuration: the fitted homography is singular")
    fallback = np.linalg.inv(t_dst) @ normalised @ t_src

    homography, _ = cv2.findHomography(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), 0)
    if homography is None or not np.all(np.isfinite(homography)) or abs(homography[2, 2]) < 1e-12:
        homography = fallback
    homography = np.asarray(homography, dtype=np.float64)
    return homography / homography[2, 2]


# ----------------------------------------------------------------------------------------------------
# template preparation (cached per template object)
# ----------------------------------------------------------------------------------------------------

class _Prepared:
    """Premultiplied float32 RGBA of a template, its luminance normaliser and reduced levels."""

    def __init__(self, template: MaskTemplate):
        rgba = np.asarray(template.rgba)
        alpha = rgba[..., 3].astype(np.float32) / np.float32(255.0)
        premultiplied = np.empty(rgba.shape, dtype=np.float32)
        np.multiply(rgba[..., :3], alpha[..., None], out=premultiplied[..., :3], dtype=np.float32)
        premultiplied[..., 3] = alpha
        luma = rgba[..., :3].astype(np.float64) @ LUMA_WEIGHTS
        inside = alpha > 0.5
        if not inside.any():
            inside = alpha > 0
        median = float(np.median(luma[inside]))
        if not median > 0:
            raise ValueError(f"mask template {template.name!r}: its opaque part is black, shading is undefined")
        self.luma_median = median
        rows = np.flatnonzero(rgba[..., 3].any(axis=1))
        cols = np.flatnonzero(rgba[..., 3].any(axis=0))
        self.corners = np.array([[cols[0], rows[0]], [cols[-1], rows[0]], [cols[0], rows[-1]],
                                 [cols[-1], rows[-1]]], dtype=np.float64)  # of the opaque part's bounding box
        self.shape = rgba.shape[:2]
        self.levels = {0: (premultiplied, np.eye(3))}

    def level(self, k: int):
        """Level ``k``: the template reduced by ``2**k`` (area averaging) and the map template -> level."""
        import cv2

        if k not in self.levels:
            base, _ = self.levels[0]
            h, w = self.shape
            lw, lh = max(1, round(w / 2**k)), max(1, round(h / 2**k))
            image = cv2.resize(base, (lw, lh), interpolation=cv2.INTER_AREA)
            sx, sy = lw / w, lh / h
            # cv2.resize maps pixel centres: x_level = sx * (x + 0.5) - 0.5
            to_level = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
            self.levels[k] = (image, to_level)
        return self.levels[k]


_PREPARED: weakref.WeakKeyDictionary[MaskTemplate, _Prepared] = weakref.WeakKeyDictionary()


def _prepared(template: MaskTemplate) -> _Prepared:
    prepared = _PREPARED.get(template)
    if prepared is None:
        prepared = _Prepared(template)
        _PREPARED[template] = prepared
    return prepared


# ----------------------------------------------------------------------------------------------------
# warping
# ----------------------------------------------------------------------------------------------------

def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class WarpedMask:
    """A template warped into an output frame of ``size = (width, height)``; all arrays read-only.

    ``alpha``: float32 (H, W) coverage in [0, 1]. ``shade``: float32 (H, W), the template's luminance
    divided by its median over the template's opaque part (1.0 = typical mask brightness; 1.0 where
    ``alpha`` is 0). ``rgb``: float32 (H, W, 3) the warped template colours (not premultiplied,
    0..255; 0 where ``alpha`` is 0). ``homography``: the 3x3 map from template to output pixels.
    """

    alpha: np.ndarray
    shade: np.ndarray
    rgb: np.ndarray
    homography: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return int(self.alpha.shape[1]), int(self.alpha.shape[0])

    @cached_property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: the smallest window holding every pixel with ``alpha > 0`` (may be empty)."""
        rows = np.flatnonzero(self.alpha.any(axis=1))
        cols = np.flatnonzero(self.alpha.any(axis=0))
        if rows.size == 0:
            return 0, 0, 0, 0
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

    @cached_property
    def _window(self):
        """The blend's per-pixel factors over :attr:`bbox`, each a contiguous float32 (h, w, 3) array (the
        value repeated over the channels, so that numpy's loops run over whole rows, not triples)."""
        y0, y1, x0, x1 = self.bbox
        alpha = np.ascontiguousarray(self.alpha[y0:y1, x0:x1])[..., None]
        own_paint = alpha * self.rgb[y0:y1, x0:x1]  # alpha * template colour, for color=None
        alpha3 = np.repeat(alpha, 3, axis=2)
        shade3 = np.repeat(np.ascontiguousarray(self.shade[y0:y1, x0:x1])[..., None], 3, axis=2)
        return alpha3, np.float32(1.0) - alpha3, shade3, own_paint

    @cached_property
    def _paints(self) -> dict:
        """Painted windows ``alpha * min(color * shade, 255)`` of recently used colours, by (r, g, b)."""
        return {}

    def _paint(self, colors: np.ndarray) -> list:
        """float32 (h, w, 3) painted windows of the float32 (n, 3) ``colors`` (cached for a palette's few;
        safe to call from several threads: a race only computes a colour twice)."""
        alpha, _, shade, _ = self._window
        cache = self._paints
        keys = [c.tobytes() for c in colors]
        found = {key: cache.get(key) for key in keys}
        missing = [key for key, p in found.items() if p is None]
        if missing:
            todo = np.frombuffer(b"".join(missing), dtype=np.float32).reshape(-1, 3)
            paint = todo[:, None, None, :] * shade
            np.minimum(paint, np.float32(255.0), out=paint)
            paint *= alpha
            fresh = dict(zip(missing, paint))
            found.update(fresh)
            if len(fresh) <= _PAINT_CACHE:
                if len(cache) + len(fresh) > _PAINT_CACHE:
                    cache.clear()
                cache.update(fresh)
        return [found[key] for key in keys]


def _landmark_array(template: MaskTemplate, landmarks) -> np.ndarray:
    names = template.landmarks
    if isinstance(landmarks, Mapping):
        missing = [n for n in names if n not in landmarks]
        if missing:
            raise ValueError(f"mask template {template.name!r} needs landmarks {list(names)}; "
                             f"missing: {missing} (got {sorted(landmarks)})")
        points = []
        for n in names:
            p = np.asarray(landmarks[n], dtype=np.float64).reshape(-1)
            if p.shape != (2,) or not np.all(np.isfinite(p)):
                raise ValueError(f"landmark {n!r} must be a finite (x, y) pair, got {landmarks[n]!r}")
            points.append(p)
        return np.array(points)
    array = np.asarray(landmarks, dtype=np.float64)
    if array.shape == (5, 2) and set(names) <= set(FIVE_POINTS):
        by_name = dict(zip(FIVE_POINTS, array))
        return _landmark_array(template, by_name)
    raise ValueError("landmarks must be a dict name -> (x, y), or a (5, 2) array in the order "
                     f"{FIVE_POINTS} for a five-point template; got {type(landmarks).__name__} {array.shape}")


WARP_METHODS = ("homography", "piecewise")


def place_template(template: MaskTemplate, landmarks, size=(112, 112), jitter=None, *,
                   margin: float = 0.25) -> tuple[np.ndarray, int]:
    """Where :func:`warp_template` puts ``template`` (same arguments and errors): ``(homography, level)``,
    the float64 3x3 map from template pixels to output pixels and the power-of-two reduction ``level`` of the
    template that the warp samples (see the module notes and :func:`template_level`)."""
    if not isinstance(template, MaskTemplate):
        raise TypeError(f"template must be a MaskTemplate, got {type(template).__name__}")
    width, height = check_size(size)
    dst = _landmark_array(template, landmarks)
    names = template.landmarks
    if jitter is not None:
        jitter = np.asarray(jitter, dtype=np.float64)
        if jitter.shape != dst.shape or not np.all(np.isfinite(jitter)):
            raise ValueError(f"jitter must be a finite array of shape {dst.shape} (one (dx, dy) per anchor "
                             f"{list(names)}), got {jitter.shape}")
        dst = dst + jitter
    low = np.array([-0.5 - margin * width, -0.5 - margin * height])
    high = np.array([width - 0.5 + margin * width, height - 0.5 + margin * height])
    outside = [f"{n} at ({x:.1f}, {y:.1f})" for n, (x, y), bad in
               zip(names, dst, np.any((dst < low) | (dst > high), axis=1)) if bad]
    if outside:
        raise ValueError(f"landmarks far outside the {width}x{height} output image: {', '.join(outside)} "
                         f"(allowed margin {margin:g} of the image size)")

    src = template.anchor_array()
    homography = fit_homography(src, dst)
    return homography, _level(template, homography, src, dst)


def _level(template: MaskTemplate, homography: np.ndarray, src: np.ndarray, dst: np.ndarray) -> int:
    """The template level a warp by ``homography`` samples; ValueError when it folds the template."""
    prepared = _prepared(template)
    # The mask must lie entirely on one side of the homography's horizon, or the warp folds it.
    w = prepared.corners @ homography[2, :2] + homography[2, 2]
    if not (np.all(w > 0) or np.all(w < 0)):
        raise ValueError(f"the landmarks {dict(zip(template.landmarks, map(tuple, dst.round(2))))} give a "
                         f"homography that folds mask template {template.name!r} across its horizon")

    # Minification (template pixels per output pixel) at the anchors' centroid picks the level.
    centre = src.mean(axis=0)
    jac = _jacobian(homography, centre)
    minification = 1.0 / math.sqrt(max(abs(np.linalg.det(jac)), 1e-300))
    k = max(0, math.floor(math.log2(minification))) if minification > 1 else 0
    return min(k, math.floor(math.log2(max(prepared.shape))))


class JitterPlacer:
    """:func:`place_template` of one template and one set of landmarks under many small anchor shifts.

    ``placer(jitter)`` equals ``place_template(template, landmarks, size, jitter, margin=margin)`` exactly, for
    any finite (n_anchors, 2) ``jitter``. The unshifted placement is checked once. Shifts of at most ``max_shift``
    pixels per coordinate move each point by at most ``d = sqrt(2) * max_shift``; when ``4 d`` is below the
    smallest distance between two landmarks (no two can meet), ``2 sqrt(n) d`` below the second singular value of
    the centred landmarks (by Weyl's bound they cannot all fall on a line), the shifted points stay inside the
    margin and there are at least 5 of them (4 points have the extra 3-collinear rule), no shift reaches the
    degenerate cases of :func:`fit_homography`, and the fit is ``cv2.findHomography`` alone (what
    :func:`fit_homography` returns) without the per-call checks: about 4x faster. Larger jitters, and a fit
    that fails, go through :func:`place_template` (and its errors).
    """

    def __init__(self, template: MaskTemplate, landmarks, size=(112, 112), max_shift: float = 3.0, *,
                 margin: float = 0.25):
        self.template, self.landmarks, self.size, self.margin = template, landmarks, size, margin
        place_template(template, landmarks, size, margin=margin)  # the unshifted placement is valid
        self._src = template.anchor_array()
        self._dst = _landmark_array(template, landmarks)
        width, height = check_size(size)
        n, d = len(self._dst), math.sqrt(2.0) * max_shift
        gaps = np.linalg.norm(self._dst[:, None] - self._dst[None], axis=2)[np.triu_indices(n, 1)]
        spread = np.linalg.svd(self._dst - self._dst.mean(axis=0), compute_uv=False)[1]
        low = np.array([-0.5 - margin * width, -0.5 - margin * height]) + max_shift
        high = np.array([width - 0.5 + margin * width, height - 0.5 + margin * height]) - max_shift
        safe = (n >= 5 and 4 * d < gaps.min() and 2 * math.sqrt(n) * d < spread
                and bool(np.all((self._dst >= low) & (self._dst <= high))))
        self.max_shift = float(max_shift) if safe else -1.0  # -1: every call takes the checked path

    def __call__(self, jitter) -> tuple[np.ndarray, int]:
        import cv2

        jitter = np.asarray(jitter, dtype=np.float64)
        if jitter.shape != self._dst.shape or not np.all(np.abs(jitter) <= self.max_shift):
            return place_template(self.template, self.landmarks, self.size, jitter, margin=self.margin)
        dst = self._dst + jitter
        homography, _ = cv2.findHomography(self._src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), 0)
        if homography is None or not np.all(np.isfinite(homography)) or abs(homography[2, 2]) < 1e-12:
            return place_template(self.template, self.landmarks, self.size, jitter, margin=self.margin)
        homography = np.asarray(homography, dtype=np.float64)
        homography = homography / homography[2, 2]
        return homography, _level(self.template, homography, self._src, dst)


def template_level(template: MaskTemplate, level: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(image, to_level, luma_median)``: the premultiplied float32 (h, w, 4) RGBA of ``template`` reduced by
    ``2**level`` (area averaging; cached per template object), the 3x3 map from template pixels to that
    image's pixels, and the median luminance of the template's opaque part (the shading's 1.0)."""
    prepared = _prepared(template)
    image, to_level = prepared.level(int(level))
    return image, to_level, prepared.luma_median


def warp_template(template: MaskTemplate, landmarks, size=(112, 112), jitter=None, *,
                  margin: float = 0.25, method: str = "homography") -> WarpedMask:
    """Warp ``template`` so its anchors land on ``landmarks`` in a ``size = (width, height)`` frame.

    ``landmarks``: dict landmark name -> (x, y) output pixel (a (5, 2) array in
    :data:`~frmask.synth.template.FIVE_POINTS` order is accepted for five-point templates).
    ``jitter``: optional (n_anchors, 2) offsets in output pixels added to the landmarks, in the order
    of ``template.landmarks`` (see :func:`jitter_offsets`). Landmarks more than ``margin`` times the
    width / height outside the frame, missing names, and homographies that fold the mask across the
    horizon raise ``ValueError``.

    The warp is ``cv2.warpPerspective`` with bilinear sampling of the premultiplied RGBA (after an
    area reduction of large templates, see the module notes), zero outside the template.

    ``method="piecewise"`` warps piecewise-affinely instead, so every anchor lands exactly on its landmark
    (a homography fits four or more anchors only in the least-squares sense): the anchors plus the corners
    of the template's opaque box (placed by the homography, so the mask keeps its shape beyond the
    anchors) are triangulated, and each triangle is mapped affinely.
    """
    import cv2

    homography, k = place_template(template, landmarks, size, jitter, margin=margin)
    width, height = check_size(size)
    prepared = _prepared(template)
    image, to_level = prepared.level(k)
    if method == "homography":
        level_h = homography @ np.linalg.inv(to_level)
        warped = cv2.warpPerspective(image, level_h, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    elif method == "piecewise":  # through the anchors' targets themselves, not their least-squares fit
        dst = _landmark_array(template, landmarks) + (0.0 if jitter is None else np.asarray(jitter, np.float64))
        warped = _warp_piecewise(image, to_level, template.anchor_array(), dst, homography, prepared.corners, (width, height))
    else:
        raise ValueError(f"unknown warp method {method!r}; choose one of {', '.join(WARP_METHODS)}")

    alpha, shade, rgb, bbox = _unpremultiply(warped, prepared.luma_median)
    mask = WarpedMask(alpha=_readonly(alpha), shade=_readonly(shade), rgb=_readonly(rgb),
                      homography=_readonly(homography))
    mask.__dict__["bbox"] = bbox  # the cached property's value, known already
    return mask


def _unpremultiply(warped: np.ndarray, luma_median: float):
    """``(alpha, shade, rgb, bbox)`` of a warped premultiplied float32 RGBA frame (see :class:`WarpedMask`).

    Coverage below ``_ALPHA_FLOOR`` is set to 0; pixel by pixel, ``alpha = clip(a, 0, 1)``, ``rgb =
    clip(premultiplied / alpha, 0, 255)`` and ``shade = max(luma(premultiplied) / (alpha * luma_median), 0)``
    where covered, and ``(0, 1, 0)`` elsewhere. Only the window around the covered pixels is computed
    (every operation is per pixel, so the values are those of the whole frame's computation).
    """
    height, width = warped.shape[:2]
    alpha = np.zeros((height, width), np.float32)
    shade = np.ones((height, width), np.float32)
    rgb = np.zeros((height, width, 3), np.float32)
    covered_full = warped[..., 3] >= np.float32(_ALPHA_FLOOR)
    rows = np.flatnonzero(covered_full.any(axis=1))
    if rows.size == 0:
        return alpha, shade, rgb, (0, 0, 0, 0)
    cols = np.flatnonzero(covered_full.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    window = np.ascontiguousarray(warped[y0:y1, x0:x1])
    a = np.clip(window[..., 3], 0.0, 1.0)
    a[a < _ALPHA_FLOOR] = 0.0
    covered = a > 0
    safe = np.where(covered, a, np.float32(1.0))
    colour = np.clip(window[..., :3] / safe[..., None], 0.0, 255.0).astype(np.float32)
    colour[~covered] = 0.0
    luma = (window[..., :3].astype(np.float64) @ LUMA_WEIGHTS) / (safe * luma_median)
    light = np.where(covered, luma, 1.0).astype(np.float32)
    np.maximum(light, 0.0, out=light)
    alpha[y0:y1, x0:x1] = a
    shade[y0:y1, x0:x1] = light
    rgb[y0:y1, x0:x1] = colour
    return alpha, shade, rgb, (y0, y1, x0, x1)


def _warp_piecewise(image, to_level, src, dst, homography, corners, size) -> np.ndarray:
    """Sample ``image`` (a template level) piecewise-affinely: anchors map exactly onto ``dst``."""
    import cv2
    from skimage.transform import PiecewiseAffineTransform

    # Only the box corners join the anchors: points along one edge would be collinear in the template and
    # give degenerate triangles.
    frame = np.asarray(corners, dtype=np.float64)
    ctrl_src = np.vstack([src, frame])
    ctrl_dst = np.vstack([dst, _apply(homography, frame)])
    inverse = PiecewiseAffineTransform.from_estimate(ctrl_dst, ctrl_src)
    if not inverse:
        raise ValueError("the landmarks give a degenerate piecewise-affine warp")
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    out_pts = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    tpl = inverse(out_pts)
    outside = ~np.all(np.isfinite(tpl), axis=1) | np.all(tpl == -1, axis=1)
    lvl = _apply(to_level, np.nan_to_num(tpl))
    lvl[outside] = -1e6  # far outside the template: transparent
    map_x = lvl[:, 0].reshape(height, width).astype(np.float32)
    map_y = lvl[:, 1].reshape(height, width).astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=(0, 0, 0, 0))


def _jacobian(homography: np.ndarray, point: np.ndarray) -> np.ndarray:
    x, y = point
    h = homography
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    return np.array([[(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
                     [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2]])


def jitter_offsets(rng: np.random.Generator, n_anchors: int, max_shift: float = 3.0, size=112) -> np.ndarray:
    """Random anchor shifts for training: float64 (n_anchors, 2), each coordinate uniform in
    ``[-max_shift, max_shift]`` pixels of a 112-pixel crop, scaled by ``size / 112`` (``size`` an int,
    or ``(width, height)`` scaled by the height). Evaluation uses no jitter."""
    if isinstance(size, (tuple, list)):
        size = check_size(tuple(size))[1]
    if not (isinstance(n_anchors, (int, np.integer)) and n_anchors > 0):
        raise ValueError(f"n_anchors must be a positive integer, got {n_anchors!r}")
    if not (max_shift >= 0 and math.isfinite(max_shift)):
        raise ValueError(f"max_shift must be finite and >= 0, got {max_shift!r}")
    scale = float(size) / 112.0
    return rng.uniform(-max_shift, max_shift, size=(int(n_anchors), 2)) * scale


# ----------------------------------------------------------------------------------------------------
# blending
# ----------------------------------------------------------------------------------------------------

def _check_colors(colors, n: int) -> np.ndarray | None:
    if colors is None:
        return None
    array = np.asarray(colors, dtype=np.float64)
    if array.shape != (n, 3):
        raise ValueError(f"colors must have shape ({n}, 3), got {array.shape}")
    if not np.all(np.isfinite(array)) or array.min(initial=0) < 0 or array.max(initial=0) > 255:
        raise ValueError("colours must be RGB values in 0..255")
    return array.astype(np.float32)


def apply_mask_batch(images: np.ndarray, warped: WarpedMask, colors=None) -> np.ndarray:
    """Blend ``warped`` onto every image: uint8 (N, H, W, 3) RGB in, a new uint8 array out.

    ``colors``: (N, 3) RGB values in 0..255, one per image, or None to keep the template's own
    colours. Per pixel and channel, in float32: ``m = min(color * shade, 255)`` (or the template
    colour), ``out = image * (1 - alpha) + alpha * m``, rounded half to even and clipped to 0..255.
    Pixels with ``alpha == 0`` are copied unchanged. The inputs are never modified.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    width, height = warped.size
    if images.shape[1:3] != (height, width):
        raise ValueError(f"images are {images.shape[2]}x{images.shape[1]} but the mask was warped for "
                         f"{width}x{height}")
    colors = _check_colors(colors, images.shape[0])
    out = images.copy()
    blend_inplace(out, warped, colors)
    return out


def blend_inplace(images: np.ndarray, warped: WarpedMask, colors: np.ndarray | None) -> None:
    """The arithmetic of :func:`apply_mask_batch`, written into ``images`` (uint8 (N, H, W, 3), checked
    by the caller) with ``colors`` float32 (N, 3) (or None). The channel order is the caller's: BGR images
    with BGR colours give the same bytes, channel for channel, as RGB with RGB."""
    n = images.shape[0]
    y0, y1, x0, x1 = warped.bbox
    if n == 0 or y1 == y0:
        return
    if colors is not None:
        colors = np.ascontiguousarray(colors, dtype=np.float32)
    _, keep, _, own_paint = warped._window
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        window = images[start:stop, y0:y1, x0:x1]
        region = np.multiply(window, keep, dtype=np.float32)  # image * (1 - alpha)
        if colors is None:
            region += own_paint
        else:
            for k, paint in enumerate(warped._paint(colors[start:stop])):
                region[k] += paint  # alpha * min(color * shade, 255)
        np.rint(region, out=region)  # a convex mix of values in 0..255: no clipping needed
        np.copyto(window, region, casting="unsafe")


def apply_mask(image: np.ndarray, warped: WarpedMask, color=None) -> np.ndarray:
    """Blend ``warped`` onto one uint8 (H, W, 3) RGB image with ``color`` (RGB 0..255, or None for the
    template's own colours); the same arithmetic as :func:`apply_mask_batch`, bit for bit."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    colors = None if color is None else np.asarray(color, dtype=np.float64).reshape(1, -1)
    return apply_mask_batch(image[None], warped, colors)[0]
