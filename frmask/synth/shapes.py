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

Pixel convention (as in :mod:`frmask.faces.align`): the centre of template pixel ``(col, row)`` is
``(x, y) = (col, row)``; a frame point ``p`` maps to ``(p - origin + 0.5) * scale - 0.5``.
"""

from __future__ import annotations

import math

import numpy as np

from frmask.faces.align import ARCFACE_112
from frmask.synth.template import FIVE_POINTS, MaskTemplate

__all__ = ["FRAME_REGION", "MASK_TYPES", "builtin_template", "frame_to_template"]

MASK_TYPES = ("surgical", "n95", "kn95", "cloth")
"""Names of the built-in mask types, in a fixed order."""

FRAME_REGION = (-8.0, 40.0, 120.0, 132.0)
"""``(x0, y0, x1, y1)``: the part of the 112x112 ArcFace frame that a built-in template covers."""

_LIGHT = np.array([-0.32, -0.42, 0.85])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
_GREY = 210.0  # RGB value of luminance 1.0; shading values stay below 1.2, so no clipping


def frame_to_template(points, scale: float = 4) -> np.ndarray:
    """Map ``(n, 2)`` points of the 112x112 ArcFace frame to pixels of a template built at ``scale``."""
    scale = _check_scale(scale)
    pts = np.asarray(points, dtype=np.float64)
    origin = np.array(FRAME_REGION[:2])
    return (pts - origin + 0.5) * scale - 0.5


def builtin_template(name: str, scale: float = 4) -> MaskTemplate:
    """Render the built-in mask ``name`` (one of :data:`MASK_TYPES`) at ``scale`` x the 112 frame.

    Returns a :class:`MaskTemplate` of size ``ceil(128 * scale) x ceil(92 * scale)`` (width x height)
    whose anchors are the five ArcFace points (``left_eye``, ``right_eye``, ``nose``, ``mouth_left``,
    ``mouth_right``) mapped by :func:`frame_to_template`. ``scale`` lies in [0.5, 16] (any real number;
    4 gives a 512x368 template, about 0.15 s). Unknown names and bad scales raise ``ValueError``.
    Where alpha is 0 the RGB channels continue the shading, so bilinear warps show no dark fringe.
    """
    if not isinstance(name, str) or name not in _RENDERERS:
        raise ValueError(f"unknown mask type {name!r}; built-in mask types are {', '.join(MASK_TYPES)}")
    scale = _check_scale(scale)
    width = math.ceil((FRAME_REGION[2] - FRAME_REGION[0]) * scale - 1e-9)
    height = math.ceil((FRAME_REGION[3] - FRAME_REGION[1]) * scale - 1e-9)

    def render() -> dict:
        # Draw at an integer supersampling factor, then average k x k blocks: smooth edges and thin lines
        # even at small scales. The frame -> pixel map stays exact under block averaging.
        k = max(1, math.ceil(8.0 / scale))
        canvas = _Canvas(width * k, height * k, scale * k)
        lum, alpha = _RENDERERS[name](canvas)
        return {"rgba": _downsample(lum, alpha, k)}

    def looks_right(arrays: dict) -> bool:
        rgba = arrays.get("rgba")
        return len(arrays) == 1 and rgba is not None and rgba.dtype == np.uint8 and rgba.shape == (height, width, 4)

    from frmask.synth.template_cache import cached_arrays

    # Drawing takes ~0.2 s; the on-disk cache (keyed by this module's source) makes later processes instant.
    rgba = cached_arrays("builtin", {"name": name, "scale": scale}, ("frmask.synth.shapes",), render,
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
# Drawing helpers
# ---------------------------------------------------------------------------------------------------


class _Canvas:
    """A supersampled drawing surface; ``X``, ``Y`` hold the frame coordinates of every pixel."""

    _SHIFT = 4

    def __init__(self, width: int, height: int, scale: float):
        self.width, self.height, self.scale = width, height, scale
        x0, y0 = FRAME_REGION[:2]
        xs = (np.arange(width, dtype=np.float32) + 0.5) / scale - 0.5 + x0
        ys = (np.arange(height, dtype=np.float32) + 0.5) / scale - 0.5 + y0
        self.X, self.Y = np.meshgrid(xs, ys)

    def _px(self, points) -> np.ndarray:
        x0, y0 = FRAME_REGION[:2]
        pts = (np.asarray(points, dtype=np.float64) - (x0, y0) + 0.5) * self.scale - 0.5
        return np.round(pts * (1 << self._SHIFT)).astype(np.int32)

    def fill(self, polygon) -> np.ndarray:
        """Anti-aliased coverage (float32 in [0, 1]) of a closed polygon given in frame coordinates."""
        import cv2

        img = np.zeros((self.height, self.width), np.uint8)
        cv2.fillPoly(img, [self._px(polygon)], 255, cv2.LINE_AA, self._SHIFT)
        return img.astype(np.float32) / 255.0

    def line(self, points, width: float) -> np.ndarray:
        """Anti-aliased coverage of an open polyline of ``width`` frame pixels."""
        import cv2

        img = np.zeros((self.height, self.width), np.uint8)
        thickness = max(1, round(width * self.scale))
        cv2.polylines(img, [self._px(points)], False, 255, thickness, cv2.LINE_AA, self._SHIFT)
        return img.astype(np.float32) / 255.0

    def inside_distance(self, coverage: np.ndarray) -> np.ndarray:
        """Distance (frame pixels) from each inside pixel to the outline; 0 outside."""
        import cv2

        hard = (coverage >= 0.5).astype(np.uint8)
        return cv2.distanceTransform(hard, cv2.DIST_L2, 5) / np.float32(self.scale)

    def blur(self, field: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur with ``sigma`` in frame pixels."""
        import cv2

        return cv2.GaussianBlur(field, (0, 0), sigma * self.scale, borderType=cv2.BORDER_REPLICATE)

    def lambert(self, z: np.ndarray, ambient: float = 0.3) -> np.ndarray:
        """Diffuse shading of the height field ``z`` (frame pixels) under a light from upper left front."""
        gy, gx = np.gradient(z.astype(np.float32), 1.0 / self.scale)
        norm = np.sqrt(gx * gx + gy * gy + 1.0)
        ndotl = (-gx * _LIGHT[0] - gy * _LIGHT[1] + _LIGHT[2]) / norm
        return ambient + (1.0 - ambient) * np.clip(ndotl, 0.0, 1.0)


def _catmull_rom(points, samples: int = 24, closed: bool = False) -> np.ndarray:
    """A smooth curve through ``points`` (Catmull-Rom, centripetal-free uniform variant)."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.vstack([p[-1], p, p[0], p[1]])
    else:
        p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    if not closed:
        out.append(p[-2][None])
    return np.vstack(out)


def _bezier(p0, p1, p2, samples: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    p0, p1, p2 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _mirror(points) -> np.ndarray:
    """Points mirrored about the face's vertical axis x = 56 (order reversed)."""
    p = np.asarray(points, dtype=np.float64)[::-1].copy()
    p[:, 0] = 112.0 - p[:, 0]
    return p


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(x / width) ** 2)


def _face_height(c: _Canvas, wrap: float = 46.0, depth: float = 32.0) -> np.ndarray:
    """A cylinder-like surface that wraps around the lower face: sides turn away from the viewer."""
    dx = (c.X - 56.0) / wrap
    return depth * np.sqrt(np.clip(1.0 - dx * dx, 0.02, None))


def _texture(c: _Canvas, seed: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise (fixed seed), correlation length ``sigma`` frame pixels."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((c.height, c.width)).astype(np.float32)
    noise = c.blur(noise, sigma)
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def _loops(c: _Canvas, curves, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and shading of ear loops / straps (round cords, shaded across their width)."""
    cover = np.zeros((c.height, c.width), np.float32)
    for curve in curves:
        cover = np.maximum(cover, c.line(curve, width))
    # A cord is darker at its rims: use the blurred coverage as a height profile.
    profile = c.blur(cover, width * 0.35)
    shade = 0.62 + 0.3 * np.clip(profile, 0, 1)
    return cover, shade


def _composite(body_a, body_l, loop_a, loop_l) -> tuple[np.ndarray, np.ndarray]:
    """Body over loops; luminance where alpha is 0 keeps the body's (extrapolated) shading."""
    under = loop_a * (1.0 - body_a)
    alpha = body_a + under
    lum = np.where(alpha > 1e-6, (body_l * body_a + loop_l * under) / np.maximum(alpha, 1e-6), body_l)
    return lum, alpha


def _downsample(lum: np.ndarray, alpha: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (premultiplied) and pack a grey RGBA uint8 image."""
    h, w = lum.shape[0] // k, lum.shape[1] // k
    if k > 1:
        a = alpha.reshape(h, k, w, k).mean(axis=(1, 3))
        la = (lum * alpha).reshape(h, k, w, k).mean(axis=(1, 3))
        lm = lum.reshape(h, k, w, k).mean(axis=(1, 3))
        lum = np.where(a > 1e-6, la / np.maximum(a, 1e-6), lm)
        alpha = a
    grey = np.clip(np.round(lum * _GREY), 0, 255).astype(np.uint8)
    a8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([grey, grey, grey, a8]))


# ---------------------------------------------------------------------------------------------------
# Mask types
# ---------------------------------------------------------------------------------------------------


def _surgical(c: _Canvas):
    """A pleated rectangular mask: three downward pleats, hemmed edges, a nose wire, four ear-loop ends."""
    # Top edge: lifted over the nose bridge by the nose wire; bottom edge: under the chin.
    top = _catmull_rom([(13.5, 68.0), (26.0, 65.2), (40.0, 62.4), (56.0, 60.6), (72.0, 62.4),
                        (86.0, 65.2), (98.5, 68.0)])
    bottom = _catmull_rom([(97.5, 105.0), (88.0, 113.5), (72.0, 119.6), (56.0, 121.2), (40.0, 119.6),
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
    z = _face_height(c)
    ridge_h = np.interp(c.Y, [58.0, 64.0, 73.0, 88.0, 110.0], [2.5, 5.0, 7.0, 3.0, 0.0])
    ridge_w = np.interp(c.Y, [58.0, 73.0, 110.0], [6.0, 10.0, 22.0])
    z = z + ridge_h * _gauss(c.X - 56.0, ridge_w)
    z = z - 10.0 * np.clip((c.Y - 95.0) / 26.0, 0.0, None) ** 2
    shade = c.lambert(z)

    # Pleats: three folds, spread open over the chin and nose, bunched together towards the loops.
    spacing = (0.25 - 0.1 * side ** 1.5) * span  # frame pixels between pleats
    centre = 0.52 * span
    pleat = np.zeros_like(shade)
    strength = 0.55 + 0.45 * side
    for i in (-1, 0, 1):
        dy = (c.Y - y_top) - (centre + i * spacing)  # > 0 below the crease
        pleat += (0.10 * _gauss(dy + 1.6, 1.5)        # the fold's lit upper face
                  - 0.22 * _gauss(dy - 0.25, 0.45)    # the crease
                  - 0.10 * _gauss(dy - 1.4, 1.3))     # its shadow below
    hem_in = _smoothstep(2.2, 3.2, d_edge)
    shade = shade * (1.0 + strength * pleat * hem_in)

    # Hems: a bound band along every edge, with a stitch line on its inner side.
    shade = shade * (1.0 - 0.12 * _gauss(d_edge - 2.6, 0.35) + 0.04 * _gauss(d_edge - 1.3, 0.8))
    shade = shade * (1.0 - 0.08 * _gauss(d_edge, 0.5))
    # Nose wire: a slightly raised strip inside the top hem over the nose bridge.
    wire = _gauss(c.Y - y_top - 1.4, 0.55) * _smoothstep(13.0, 11.0, np.abs(c.X - 56.0))
    shade = shade * (1.0 + 0.10 * wire) * (1.0 - 0.08 * _gauss(c.Y - y_top - 2.3, 0.35)
                                           * _smoothstep(13.0, 11.0, np.abs(c.X - 56.0)))
    shade = shade * (1.0 + 0.015 * _texture(c, 11, 0.35))
    # Ear loops from the four corners back to the ears.
    left = [_bezier((14.5, 68.6), (8.0, 64.5), (2.0, 63.0)),
            _bezier((15.2, 104.4), (8.0, 90.0), (2.5, 76.0))]
    loop_a, loop_l = _loops(c, left + [_mirror(p) for p in left], 0.75)
    return _composite(body, shade, loop_a, loop_l)


def _n95(c: _Canvas):
    """A moulded cup respirator: dome shading, a moulded rim, a nose clip and two head straps per side."""
    outline = _catmull_rom([(56.0, 60.4), (65.0, 61.2), (74.0, 63.8), (82.5, 69.5), (88.5, 78.5),
                            (90.5, 90.0), (88.0, 102.5), (80.5, 113.0), (68.0, 120.0), (56.0, 121.8),
                            (44.0, 120.0), (31.5, 113.0), (24.0, 102.5), (21.5, 90.0), (23.5, 78.5),
                            (29.5, 69.5), (38.0, 63.8), (47.0, 61.2)], closed=True)
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    # Dome: an ellipsoidal cup centred a little below the nose tip, on the face's wrap.
    ex = (c.X - 56.0) / 36.0
    ey = (c.Y - 91.0) / 33.0
    r2 = ex * ex + ey * ey
    z = 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)) + 0.4 * _face_height(c)
    # The moulded rim: a flat flange along the edge with a gentle step up to the cup.
    rim = _smoothstep(2.0, 3.8, d_edge)
    z = z * (0.85 + 0.15 * rim)
    shade = c.lambert(c.blur(z, 0.8), ambient=0.35)
    shade = shade * (1.0 - 0.16 * np.clip(r2, 0, 1) ** 1.5)  # radial darkening of the cup
    shade = shade * (1.0 - 0.08 * _gauss(d_edge - 3.0, 0.4) + 0.04 * _gauss(d_edge - 1.4, 0.8))
    shade = shade * (1.0 - 0.10 * _gauss(d_edge, 0.5))
    # Nose clip: an aluminium strip under the shell, just below the top edge.
    clip = c.fill(_catmull_rom([(46.0, 63.4), (56.0, 62.5), (66.0, 63.4), (66.0, 65.2), (56.0, 64.4),
                                (46.0, 65.2)], closed=True, samples=12))
    clip = c.blur(clip, 0.3)
    shade = shade * (1.0 + 0.07 * clip) * (1.0 - 0.35 * np.clip(c.blur(clip, 0.5) - clip, 0, 1))
    # Moulded shell: a fine non-woven fibre texture.
    shade = shade * (1.0 + 0.02 * _texture(c, 95, 0.3) + 0.015 * _texture(c, 96, 1.2))
    # Straps: the upper one over the ears to the crown, the lower one round the neck; staples on the rim.
    left = [_bezier((24.0, 76.0), (13.0, 67.0), (1.0, 57.0)),
            _bezier((24.5, 104.0), (12.0, 106.0), (-1.0, 103.0))]
    strap_a, strap_l = _loops(c, left + [_mirror(p) for p in left], 1.6)
    lum, alpha = _composite(body, shade, strap_a, strap_l)
    lum = _darken_marks(c, lum, ((25.0, 76.6), (25.4, 103.4), (87.0, 76.6), (86.6, 103.4)), 0.35, 0.9, 0.25)
    return lum, alpha


def _darken_marks(c: _Canvas, lum: np.ndarray, centres, half_w: float, half_h: float, strength: float):
    """Darken small rounded rectangles (staples, weld points) of half-size (half_w, half_h) at ``centres``."""
    for cx, cy in centres:
        mark = c.fill(_catmull_rom([(cx - half_w, cy - half_h), (cx + half_w, cy - half_h),
                                    (cx + half_w, cy + half_h), (cx - half_w, cy + half_h)], closed=True, samples=4))
        lum = lum * (1.0 - strength * mark)
    return lum


def _kn95(c: _Canvas):
    """A folded KN95: two flat panels meeting at a vertical centre seam, welded edges, ear loops."""
    half = [(56.0, 59.8), (44.0, 62.6), (30.0, 66.2), (18.0, 70.0), (15.2, 74.0), (15.8, 92.0),
            (18.5, 101.5), (28.0, 110.5), (42.0, 118.5), (56.0, 124.0)]
    left = _catmull_rom(half, samples=16)
    outline = np.vstack([left, _mirror(left)[1:-1]])
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    dx = c.X - 56.0
    # Two panels: each tilts away from the seam (a roof ridge), on the face's wrap.
    z = _face_height(c, wrap=50.0, depth=28.0) - 0.5 * np.sqrt(dx * dx + 0.3)
    z = z + 5.0 * _gauss(c.Y - 80.0, 22.0) * _gauss(dx, 30.0)
    z = z - 6.0 * np.clip((c.Y - 100.0) / 24.0, 0.0, None) ** 2
    shade = c.lambert(z, ambient=0.32)
    # The centre seam: a welded ridge with a bright edge on the lit side and a dark line at the fold.
    seam = 0.10 * _gauss(dx + 0.9, 0.6) - 0.24 * _gauss(dx - 0.1, 0.4) - 0.05 * _gauss(dx - 1.0, 0.8)
    shade = shade * (1.0 + seam * _smoothstep(0.5, 2.0, d_edge))
    # Welded border: a band of embossed dots 0.8 - 2.6 px inside the edge, with a line inside it.
    band = _smoothstep(0.6, 0.9, d_edge) * _smoothstep(2.8, 2.5, d_edge)
    dots = 0.5 + 0.5 * np.cos(2 * np.pi * c.X / 1.6) * np.cos(2 * np.pi * c.Y / 1.6)
    shade = shade * (1.0 - 0.07 * band * dots) * (1.0 - 0.12 * _gauss(d_edge - 2.9, 0.35))
    shade = shade * (1.0 - 0.08 * _gauss(d_edge, 0.5))
    # A horizontal weld line across the lower part of each panel (the chin fold of a KN95).
    y_fold = 104.0 + 10.0 * (1.0 - np.clip(np.abs(dx) / 40.0, 0, 1)) ** 1.5
    shade = shade * (1.0 - 0.07 * _gauss(c.Y - y_fold, 0.4) * _smoothstep(1.5, 4.0, d_edge))
    # Nose wire: a slight strip under the top edge on both sides of the seam.
    nose_y = np.interp(np.abs(dx), [0.0, 12.0, 20.0], [60.8, 62.6, 64.0])
    wire = _gauss(c.Y - nose_y - 1.7, 0.5) * _smoothstep(15.0, 12.0, np.abs(dx)) * _smoothstep(0.8, 2.0, np.abs(dx))
    shade = shade * (1.0 + 0.08 * wire)
    shade = shade * (1.0 + 0.015 * _texture(c, 5, 0.35))
    loops_left = [_bezier((16.2, 72.0), (9.0, 68.0), (2.5, 65.0)),
                  _bezier((17.0, 99.0), (9.0, 88.0), (3.0, 77.0))]
    loop_a, loop_l = _loops(c, loops_left + [_mirror(p) for p in loops_left], 0.75)
    lum, alpha = _composite(body, shade, loop_a, loop_l)
    lum = _darken_marks(c, lum, ((16.6, 72.4), (17.4, 98.6), (95.4, 72.4), (94.6, 98.6)), 1.1, 1.1, 0.12)
    return lum, alpha


def _cloth(c: _Canvas):
    """A contoured fabric mask: a curved centre seam, woven texture, soft wrinkles, stitched hems."""
    half = [(56.0, 59.4), (47.0, 60.8), (36.0, 63.6), (24.0, 66.6), (14.5, 69.0), (13.2, 78.0),
            (14.0, 96.0), (17.5, 104.0), (26.0, 112.0), (40.0, 119.0), (56.0, 121.8)]
    left = _catmull_rom(half, samples=16)
    outline = np.vstack([left, _mirror(left)[1:-1]])
    body = c.fill(outline)
    d_edge = c.inside_distance(body)

    dx = c.X - 56.0
    # The seam follows the profile: the fabric bulges over nose and chin and curves gently away.
    z = _face_height(c, wrap=47.0, depth=30.0)
    z = z + np.interp(c.Y, [58.0, 66.0, 76.0, 92.0, 110.0, 124.0], [3.0, 7.0, 10.0, 9.0, 4.0, 0.0]) \
        * _gauss(dx, 22.0)
    z = z - 9.0 * np.clip((c.Y - 98.0) / 26.0, 0.0, None) ** 2
    # Soft wrinkles where the fabric is gathered towards the ear loops: ridges fanning out from the sides.
    ax = np.abs(dx)
    along = np.clip((ax - 16.0) / 26.0, 0.0, 1.0)  # 0 inside, 1 at the side
    fade = _smoothstep(0.0, 0.45, along) * _smoothstep(1.0, 0.85, along)
    for y_side, y_mid, amp in ((80.0, 74.0, 0.8), (86.0, 87.0, 1.0), (92.0, 100.0, 0.8)):
        y_w = y_mid + (y_side - y_mid) * along
        z = z + amp * fade * _gauss(c.Y - y_w, 1.5)
    shade = c.lambert(c.blur(z, 0.4), ambient=0.3)
    # The centre seam: a stitched ridge.
    seam = -0.16 * _gauss(dx, 0.45) + 0.06 * _gauss(dx + 1.1, 0.6) - 0.04 * _gauss(dx - 1.0, 0.7)
    shade = shade * (1.0 + seam * _smoothstep(0.5, 2.0, d_edge))
    # Hems: a turned edge with a dashed top-stitch; wider channels at the sides carry the loops.
    angle = np.arctan2(c.Y - 92.0, dx)
    dash = _smoothstep(0.2, 0.5, 0.5 + 0.5 * np.cos(angle * 110.0))
    shade = shade * (1.0 - 0.12 * _gauss(d_edge - 2.0, 0.3) * dash) * (1.0 - 0.06 * _gauss(d_edge - 3.0, 0.6))
    shade = shade * (1.0 + 0.05 * _gauss(d_edge - 1.0, 0.7)) * (1.0 - 0.10 * _gauss(d_edge, 0.5))
    x_side = np.interp(c.Y, [69.0, 78.0, 96.0, 104.0], [14.5, 13.2, 14.0, 17.5])
    channel = _gauss(ax - (56.0 - x_side) + 4.0, 0.35) * _smoothstep(66.0, 72.0, c.Y) * _smoothstep(105.0, 100.0, c.Y)
    shade = shade * (1.0 - 0.12 * channel)
    # Woven fabric: fine warp/weft threads and a slubby irregularity.
    weave = np.cos(2 * np.pi * (c.X + 0.3 * c.Y) / 0.9) * np.cos(2 * np.pi * (c.Y - 0.3 * c.X) / 0.9)
    shade = shade * (1.0 + 0.03 * weave + 0.03 * _texture(c, 2020, 0.25) + 0.025 * _texture(c, 2021, 1.5))
    loops_left = [_bezier((14.0, 70.5), (8.0, 67.0), (2.0, 64.5)),
                  _bezier((15.0, 100.0), (8.0, 88.0), (2.5, 77.0))]
    loop_a, loop_l = _loops(c, loops_left + [_mirror(p) for p in loops_left], 1.2)
    return _composite(body, shade, loop_a, loop_l)


_RENDERERS = {"surgical": _surgical, "n95": _n95, "kn95": _kn95, "cloth": _cloth}
