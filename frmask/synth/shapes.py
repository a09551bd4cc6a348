"""Built-in mask templates drawn by frmask's own code: surgical, N95, KN95 and cloth masks.

Every mask is defined geometrically in the 112x112 ArcFace frame (:data:`frmask.faces.align.ARCFACE_112`):
its outline, folds, seams and ear loops are given in that frame's pixel coordinates, relative to the five
landmarks (eyes at y ~ 51.6, nose tip at y ~ 71.7, mouth corners at y ~ 92.3). The masks reach below the
crop (the chin, down to y ~ 122), so :func:`builtin_template` renders the frame region
``x in [-8, 120), y in [40, 132)`` (:data:`FRAME_REGION`) at ``scale`` template pixels per frame pixel and
returns the ArcFace points mapped into that image as anchors. Warping the template onto a face with the
homography from its anchors to the face's landmarks puts the mask on the face at any resolution.

Appearance: the RGB channels are a neutral grey *shading* image. Luminance carries the light and the
relief (pleats, folds, seams, fabric texture); a renderer colours the mask by multiplying a colour by the
normalised luminance. Alpha is 255 inside the mask (ear loops and straps included), 0 outside, with
anti-aliased edges. Rendering is deterministic (numpy + OpenCV, the fabric texture uses a fixed seed).

Shapes (the names NIST FRVT uses for its digital masks, NISTIR 8311): ``surgical`` is the *wide* mask (a
pleated rectangle from cheek to cheek), ``n95`` and ``kn95`` are *round* masks (a moulded cup; a folded
two-panel mask), ``cloth`` a contoured fabric mask.

Nose coverage (``coverage``, :data:`COVERAGE_LEVELS`), defined by the top edge's height on the face's
vertical axis x = 56, with the landmark heights y_eye = 51.60 (mean of the eyes), y_nose = 71.74 (nose
tip) and y_mouth = 92.28 (mean of the mouth corners):

* ``high`` (the default, the masks as drawn): the top edge on the nose bridge, at y = 59.4 (cloth),
  59.8 (kn95), 60.4 (n95) or 60.6 (surgical), about 0.4 of the way from the eye line to the nose tip;
* ``medium``: the top edge across the middle of the nose, y = y_eye + 0.75 (y_nose - y_eye) = 66.70, so
  the tip (5 px lower) is covered;
* ``low``: the top edge below the nose tip, y = y_nose + 0.25 (y_mouth - y_nose) = 76.88: the nose is
  exposed.

A lower level is the same mask design pulled down: every design point (x, y) is drawn at
(x, c - (c - y) k) with c the mask's bottom (chin) height on the axis and k = (c - top_level) /
(c - top_high), so the chin stays where it is and the side outline, pleats, seams and nose wire follow
the top edge; the ear loops keep their ends at the ears (the shift fades out along each loop).
:func:`coverage_top` gives the top edge's height of every mask and level.

Pixel convention (as in :mod:`frmask.faces.align`): the centre of template pixel ``(col, row)`` is
``(x, y) = (col, row)``; a frame point ``p`` maps to ``(p - origin + 0.5) * scale - 0.5``.
"""

from __future__ import annotations

import math

import numpy as np

from frmask.faces.align import ARCFACE_112
from frmask.synth.drawing import (
    FRAME_REGION,
    Canvas,
    bezier,
    catmull_rom,
    composite,
    downsample,
    face_height,
    gauss,
    loops,
    mirror,
    smoothstep,
    texture,
)
from frmask.synth.template import FIVE_POINTS, MaskTemplate

__all__ = ["COVERAGE_LEVELS", "FRAME_REGION", "MASK_TYPES", "SHAPE_NAMES", "builtin_template", "check_coverage",
           "coverage_top", "frame_to_template"]

MASK_TYPES = ("surgical", "n95", "kn95", "cloth")
"""Names of the built-in mask types, in a fixed order."""

SHAPE_NAMES = {"surgical": "wide", "n95": "round", "kn95": "round", "cloth": "cloth"}
"""NIST FRVT's shape name of each built-in mask type."""

COVERAGE_LEVELS = ("low", "medium", "high")
"""Nose coverage levels of the built-in masks (module docstring), least covered first."""

DEFAULT_COVERAGE = "high"

# Top edge and bottom (chin) heights of each mask as drawn, on the axis x = 56 (control points of the outlines).
_TOP_CHIN = {"surgical": (60.6, 121.2), "n95": (60.4, 121.8), "kn95": (59.8, 124.0), "cloth": (59.4, 121.8)}
_EYE_Y = float(ARCFACE_112[:2, 1].mean())
_NOSE_Y = float(ARCFACE_112[2, 1])
_MOUTH_Y = float(ARCFACE_112[3:, 1].mean())




def frame_to_template(points, scale: float = 4) -> np.ndarray:
    """Map ``(n, 2)`` points of the 112x112 ArcFace frame to pixels of a template built at ``scale``."""
    scale = _check_scale(scale)
    pts = np.asarray(points, dtype=np.float64)
    origin = np.array(FRAME_REGION[:2])
    return (pts - origin + 0.5) * scale - 0.5


def check_coverage(coverage) -> str:
    """``coverage`` if it is one of :data:`COVERAGE_LEVELS` (None: the default ``high``), else ValueError."""
    if coverage is None:
        return DEFAULT_COVERAGE
    if not isinstance(coverage, str) or coverage not in COVERAGE_LEVELS:
        raise ValueError(f"unknown coverage {coverage!r}; the levels are {', '.join(COVERAGE_LEVELS)}")
    return coverage


def coverage_top(name: str, coverage: str = DEFAULT_COVERAGE) -> float:
    """Height (y in the 112x112 frame) of the top edge of built-in mask ``name`` at level ``coverage``, on the
    face's vertical axis x = 56 (module docstring)."""
    _check_name(name)
    coverage = check_coverage(coverage)
    if coverage == "high":
        return _TOP_CHIN[name][0]
    if coverage == "medium":
        return _EYE_Y + 0.75 * (_NOSE_Y - _EYE_Y)
    return _NOSE_Y + 0.25 * (_MOUTH_Y - _NOSE_Y)


def _squash(name: str, coverage: str):
    """``(c, k)`` of the vertical map y -> c - (c - y) k that draws ``name`` at ``coverage`` (None for high)."""
    if coverage == DEFAULT_COVERAGE:
        return None
    top, chin = _TOP_CHIN[name]
    return chin, (chin - coverage_top(name, coverage)) / (chin - top)


def _check_name(name) -> None:
    if not isinstance(name, str) or name not in _RENDERERS:
        raise ValueError(f"unknown mask type {name!r}; built-in mask types are {', '.join(MASK_TYPES)}")


def builtin_template(name: str, scale: float = 4, coverage: str = DEFAULT_COVERAGE) -> MaskTemplate:
    """Render the built-in mask ``name`` (one of :data:`MASK_TYPES`) at ``scale`` x the 112 frame, with its
    top edge at the nose ``coverage`` level (:data:`COVERAGE_LEVELS`; ``high``, the default, is the mask as
    designed).

    Returns a :class:`MaskTemplate` of size ``ceil(128 * scale) x ceil(92 * scale)`` (width x height)
    whose anchors are the five ArcFace points (``left_eye``, ``right_eye``, ``nose``, ``mouth_left``,
    ``mouth_right``) mapped by :func:`frame_to_template`. ``scale`` lies in [0.5, 16] (any real number;
    4 gives a 512x368 template, about 0.15 s). Unknown names and bad scales raise ``ValueError``.
    Where alpha is 0 the RGB channels continue the shading, so bilinear warps show no dark fringe.
    """
    _check_name(name)
    coverage = check_coverage(coverage)
    scale = _check_scale(scale)
    width = math.ceil((FRAME_REGION[2] - FRAME_REGION[0]) * scale - 1e-9)
    height = math.ceil((FRAME_REGION[3] - FRAME_REGION[1]) * scale - 1e-9)

    def render() -> dict:
        # Draw at an integer supersampling factor, then average k x k blocks: smooth edges and thin lines
        # even at small scales. The frame -> pixel map stays exact under block averaging.
        k = max(1, math.ceil(8.0 / scale))
        canvas = Canvas(width * k, height * k, scale * k, _squash(name, coverage))
        lum, alpha = _RENDERERS[name](canvas)
        return {"rgba": downsample(lum, alpha, k)}

    def looks_right(arrays: dict) -> bool:
        rgba = arrays.get("rgba")
        return len(arrays) == 1 and rgba is not None and rgba.dtype == np.uint8 and rgba.shape == (height, width, 4)

    from frmask.synth.template_cache import cached_arrays

    # Drawing takes ~0.2 s; the on-disk cache (keyed by this module's source) makes later processes instant.
    rgba = cached_arrays("builtin", {"name": name, "scale": scale, "coverage": coverage}, ("frmask.synth.shapes", "frmask.synth.drawing"), render,
                         looks_right)["rgba"]
    anchors_px = frame_to_template(ARCFACE_112, scale)
    anchors = {key: (float(x), float(y)) for key, (x, y) in zip(FIVE_POINTS, anchors_px)}
    return MaskTemplate(name=name, rgba=rgba, anchors=anchors)


def _check_scale(scale) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a number, got {scale!r}") from None
    if not (math.isfinite(value) and 0.5 <= value <= 16):
        raise ValueError(f"scale must lie in [0.5, 16], got {scale!r}")
    return value


# ---------------------------------------------------------------------------------------------------
# Mask types
# ---------------------------------------------------------------------------------------------------


def _surgical(c: Canvas):
    """A pleated rectangular mask: three downward pleats, hemmed edges, a nose wire, four ear-loop ends."""
    # Top edge: lifted over the nose bridge by the nose wire; bottom edge: under the chin.
    top = catmull_rom([(13.5, 68.0), (26.0, 65.2), (40.0, 62.4), (56.0, 60.6), (72.0, 62.4),
                        (86.0, 65.2), (98.5, 68.0)])
    bottom = catmull_rom([(97.5, 105.0), (88.0, 113.5), (72.0, 119.6), (56.0, 121.2), (40.0, 119.6),
                           (24.0, 113.5), (14.5, 105.0)])
    outline = np.vstack([top, bottom])
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    # The top and bottom edges at every pixel's x; the pleats are laid out between them.
    y_top = np.interp(c.X, top[:, 0], top[:, 1])
    y_bot = np.interp(c.X, bottom[::-1, 0], bottom[::-1, 1])
    span = np.maximum(y_bot - y_top, 1.0)
    side = np.clip(np.abs(c.X - 56.0) / 42.0, 0.0, 1.0)  # 0 at the centre, 1 at the sides

    # Relief: the face surface, the tent over the nose, the fabric sloping back under the chin.
    z = face_height(c)
    ridge_h = np.interp(c.Y, [58.0, 64.0, 73.0, 88.0, 110.0], [2.5, 5.0, 7.0, 3.0, 0.0])
    ridge_w = np.interp(c.Y, [58.0, 73.0, 110.0], [6.0, 10.0, 22.0])
    z = z + ridge_h * gauss(c.X - 56.0, ridge_w)
    z = z - 10.0 * np.clip((c.Y - 95.0) / 26.0, 0.0, None) ** 2
    shade = c.lambert(z)

    # Pleats: three folds, spread open over the chin and nose, bunched together towards the loops.
    spacing = (0.25 - 0.1 * side ** 1.5) * span  # frame pixels between pleats
    centre = 0.52 * span
    pleat = np.zeros_like(shade)
    strength = 0.55 + 0.45 * side
    for i in (-1, 0, 1):
        dy = (c.Y - y_top) - (centre + i * spacing)  # > 0 below the crease
        pleat += (0.10 * gauss(dy + 1.6, 1.5)        # the fold's lit upper face
                  - 0.22 * gauss(dy - 0.25, 0.45)    # the crease
                  - 0.10 * gauss(dy - 1.4, 1.3))     # its shadow below
    hem_in = smoothstep(2.2, 3.2, d_edge)
    shade = shade * (1.0 + strength * pleat * hem_in)

    # Hems: a bound band along every edge, with a stitch line on its inner side.
    shade = shade * (1.0 - 0.12 * gauss(d_edge - 2.6, 0.35) + 0.04 * gauss(d_edge - 1.3, 0.8))
    shade = shade * (1.0 - 0.08 * gauss(d_edge, 0.5))
    # Nose wire: a slightly raised strip inside the top hem over the nose bridge.
    wire = gauss(c.Y - y_top - 1.4, 0.55) * smoothstep(13.0, 11.0, np.abs(c.X - 56.0))
    shade = shade * (1.0 + 0.10 * wire) * (1.0 - 0.08 * gauss(c.Y - y_top - 2.3, 0.35)
                                           * smoothstep(13.0, 11.0, np.abs(c.X - 56.0)))
    shade = shade * (1.0 + 0.015 * texture(c, 11, 0.35))
    # Ear loops from the four corners back to the ears.
    left = [bezier((14.5, 68.6), (8.0, 64.5), (2.0, 63.0)),
            bezier((15.2, 104.4), (8.0, 90.0), (2.5, 76.0))]
    loop_a, loop_l = loops(c, left + [mirror(p) for p in left], 0.75)
    return composite(body, shade, loop_a, loop_l)


def _n95(c: Canvas):
    """A moulded cup respirator: dome shading, a moulded rim, a nose clip and two head straps per side."""
    outline = catmull_rom([(56.0, 60.4), (65.0, 61.2), (74.0, 63.8), (82.5, 69.5), (88.5, 78.5),
                            (90.5, 90.0), (88.0, 102.5), (80.5, 113.0), (68.0, 120.0), (56.0, 121.8),
                            (44.0, 120.0), (31.5, 113.0), (24.0, 102.5), (21.5, 90.0), (23.5, 78.5),
                            (29.5, 69.5), (38.0, 63.8), (47.0, 61.2)], closed=True)
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    # Dome: an ellipsoidal cup centred a little below the nose tip, on the face's wrap.
    ex = (c.X - 56.0) / 36.0
    ey = (c.Y - 91.0) / 33.0
    r2 = ex * ex + ey * ey
    z = 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)) + 0.4 * face_height(c)
    # The moulded rim: a flat flange along the edge with a gentle step up to the cup.
    rim = smoothstep(2.0, 3.8, d_edge)
    z = z * (0.85 + 0.15 * rim)
    shade = c.lambert(c.blur(z, 0.8), ambient=0.35)
    shade = shade * (1.0 - 0.16 * np.clip(r2, 0, 1) ** 1.5)  # radial darkening of the cup
    shade = shade * (1.0 - 0.08 * gauss(d_edge - 3.0, 0.4) + 0.04 * gauss(d_edge - 1.4, 0.8))
    shade = shade * (1.0 - 0.10 * gauss(d_edge, 0.5))
    # Nose clip: an aluminium strip under the shell, just below the top edge.
    clip = c.fill(catmull_rom([(46.0, 63.4), (56.0, 62.5), (66.0, 63.4), (66.0, 65.2), (56.0, 64.4),
                                (46.0, 65.2)], closed=True, samples=12))
    clip = c.blur(clip, 0.3)
    shade = shade * (1.0 + 0.07 * clip) * (1.0 - 0.35 * np.clip(c.blur(clip, 0.5) - clip, 0, 1))
    # Moulded shell: a fine non-woven fibre texture.
    shade = shade * (1.0 + 0.02 * texture(c, 95, 0.3) + 0.015 * texture(c, 96, 1.2))
    # Straps: the upper one over the ears to the crown, the lower one round the neck; staples on the rim.
    left = [bezier((24.0, 76.0), (13.0, 67.0), (1.0, 57.0)),
            bezier((24.5, 104.0), (12.0, 106.0), (-1.0, 103.0))]
    strap_a, strap_l = loops(c, left + [mirror(p) for p in left], 1.6)
    lum, alpha = composite(body, shade, strap_a, strap_l)
    lum = _darken_marks(c, lum, ((25.0, 76.6), (25.4, 103.4), (87.0, 76.6), (86.6, 103.4)), 0.35, 0.9, 0.25)
    return lum, alpha


def _darken_marks(c: Canvas, lum: np.ndarray, centres, half_w: float, half_h: float, strength: float):
    """Darken small rounded rectangles (staples, weld points) of half-size (half_w, half_h) at ``centres``."""
    for cx, cy in centres:
        mark = c.fill(catmull_rom([(cx - half_w, cy - half_h), (cx + half_w, cy - half_h),
                                    (cx + half_w, cy + half_h), (cx - half_w, cy + half_h)], closed=True, samples=4))
        lum = lum * (1.0 - strength * mark)
    return lum


def _kn95(c: Canvas):
    """A folded KN95: two flat panels meeting at a vertical centre seam, welded edges, ear loops."""
    half = [(56.0, 59.8), (44.0, 62.6), (30.0, 66.2), (18.0, 70.0), (15.2, 74.0), (15.8, 92.0),
            (18.5, 101.5), (28.0, 110.5), (42.0, 118.5), (56.0, 124.0)]
    left = catmull_rom(half, samples=16)
    outline = np.vstack([left, mirror(left)[1:-1]])
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    dx = c.X - 56.0
    # Two panels: each tilts away from the seam (a roof ridge), on the face's wrap.
    z = face_height(c, wrap=50.0, depth=28.0) - 0.5 * np.sqrt(dx * dx + 0.3)
    z = z + 5.0 * gauss(c.Y - 80.0, 22.0) * gauss(dx, 30.0)
    z = z - 6.0 * np.clip((c.Y - 100.0) / 24.0, 0.0, None) ** 2
    shade = c.lambert(z, ambient=0.32)
    # The centre seam: a welded ridge with a bright edge on the lit side and a dark line at the fold.
    seam = 0.10 * gauss(dx + 0.9, 0.6) - 0.24 * gauss(dx - 0.1, 0.4) - 0.05 * gauss(dx - 1.0, 0.8)
    shade = shade * (1.0 + seam * smoothstep(0.5, 2.0, d_edge))
    # Welded border: a band of embossed dots 0.8 - 2.6 px inside the edge, with a line inside it.
    band = smoothstep(0.6, 0.9, d_edge) * smoothstep(2.8, 2.5, d_edge)
    dots = 0.5 + 0.5 * np.cos(2 * np.pi * c.X / 1.6) * np.cos(2 * np.pi * c.Y / 1.6)
    shade = shade * (1.0 - 0.07 * band * dots) * (1.0 - 0.12 * gauss(d_edge - 2.9, 0.35))
    shade = shade * (1.0 - 0.08 * gauss(d_edge, 0.5))
    # A horizontal weld line across the lower part of each panel (the chin fold of a KN95).
    y_fold = 104.0 + 10.0 * (1.0 - np.clip(np.abs(dx) / 40.0, 0, 1)) ** 1.5
    shade = shade * (1.0 - 0.07 * gauss(c.Y - y_fold, 0.4) * smoothstep(1.5, 4.0, d_edge))
    # Nose wire: a slight strip under the top edge on both sides of the seam.
    nose_y = np.interp(np.abs(dx), [0.0, 12.0, 20.0], [60.8, 62.6, 64.0])
    wire = gauss(c.Y - nose_y - 1.7, 0.5) * smoothstep(15.0, 12.0, np.abs(dx)) * smoothstep(0.8, 2.0, np.abs(dx))
    shade = shade * (1.0 + 0.08 * wire)
    shade = shade * (1.0 + 0.015 * texture(c, 5, 0.35))
    loops_left = [bezier((16.2, 72.0), (9.0, 68.0), (2.5, 65.0)),
                  bezier((17.0, 99.0), (9.0, 88.0), (3.0, 77.0))]
    loop_a, loop_l = loops(c, loops_left + [mirror(p) for p in loops_left], 0.75)
    lum, alpha = composite(body, shade, loop_a, loop_l)
    lum = _darken_marks(c, lum, ((16.6, 72.4), (17.4, 98.6), (95.4, 72.4), (94.6, 98.6)), 1.1, 1.1, 0.12)
    return lum, alpha


def _cloth(c: Canvas):
    """A contoured fabric mask: a curved centre seam, woven texture, soft wrinkles, stitched hems."""
    half = [(56.0, 59.4), (47.0, 60.8), (36.0, 63.6), (24.0, 66.6), (14.5, 69.0), (13.2, 78.0),
            (14.0, 96.0), (17.5, 104.0), (26.0, 112.0), (40.0, 119.0), (56.0, 121.8)]
    left = catmull_rom(half, samples=16)
    outline = np.vstack([left, mirror(left)[1:-1]])
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    dx = c.X - 56.0
    # The seam follows the profile: the fabric bulges over nose and chin and curves gently away.
    z = face_height(c, wrap=47.0, depth=30.0)
    z = z + np.interp(c.Y, [58.0, 66.0, 76.0, 92.0, 110.0, 124.0], [3.0, 7.0, 10.0, 9.0, 4.0, 0.0]) \
        * gauss(dx, 22.0)
    z = z - 9.0 * np.clip((c.Y - 98.0) / 26.0, 0.0, None) ** 2
    # Soft wrinkles where the fabric is gathered towards the ear loops: ridges fanning out from the sides.
    ax = np.abs(dx)
    along = np.clip((ax - 16.0) / 26.0, 0.0, 1.0)  # 0 inside, 1 at the side
    fade = smoothstep(0.0, 0.45, along) * smoothstep(1.0, 0.85, along)
    for y_side, y_mid, amp in ((80.0, 74.0, 0.8), (86.0, 87.0, 1.0), (92.0, 100.0, 0.8)):
        y_w = y_mid + (y_side - y_mid) * along
        z = z + amp * fade * gauss(c.Y - y_w, 1.5)
    shade = c.lambert(c.blur(z, 0.4), ambient=0.3)
    # The centre seam: a stitched ridge.
    seam = -0.16 * gauss(dx, 0.45) + 0.06 * gauss(dx + 1.1, 0.6) - 0.04 * gauss(dx - 1.0, 0.7)
    shade = shade * (1.0 + seam * smoothstep(0.5, 2.0, d_edge))
    # Hems: a turned edge with a dashed top-stitch; wider channels at the sides carry the loops.
    angle = np.arctan2(c.Y - 92.0, dx)
    dash = smoothstep(0.2, 0.5, 0.5 + 0.5 * np.cos(angle * 110.0))
    shade = shade * (1.0 - 0.12 * gauss(d_edge - 2.0, 0.3) * dash) * (1.0 - 0.06 * gauss(d_edge - 3.0, 0.6))
    shade = shade * (1.0 + 0.05 * gauss(d_edge - 1.0, 0.7)) * (1.0 - 0.10 * gauss(d_edge, 0.5))
    x_side = np.interp(c.Y, [69.0, 78.0, 96.0, 104.0], [14.5, 13.2, 14.0, 17.5])
    channel = gauss(ax - (56.0 - x_side) + 4.0, 0.35) * smoothstep(66.0, 72.0, c.Y) * smoothstep(105.0, 100.0, c.Y)
    shade = shade * (1.0 - 0.12 * channel)
    # Woven fabric: fine warp/weft threads and a slubby irregularity.
    weave = np.cos(2 * np.pi * (c.X + 0.3 * c.Y) / 0.9) * np.cos(2 * np.pi * (c.Y - 0.3 * c.X) / 0.9)
    shade = shade * (1.0 + 0.03 * weave + 0.03 * texture(c, 2020, 0.25) + 0.025 * texture(c, 2021, 1.5))
    loops_left = [bezier((14.0, 70.5), (8.0, 67.0), (2.0, 64.5)),
                  bezier((15.0, 100.0), (8.0, 88.0), (2.5, 77.0))]
    loop_a, loop_l = loops(c, loops_left + [mirror(p) for p in loops_left], 1.2)
    return composite(body, shade, loop_a, loop_l)


_RENDERERS = {"surgical": _surgical, "n95": _n95, "kn95": _kn95, "cloth": _cloth}
