"""Drawing helpers of the built-in masks (:mod:`frmask.synth.shapes`): a supersampled canvas in the 112x112
ArcFace frame, smooth curves, shading and the packing of a grey RGBA template.

Pixel convention (as in :mod:`frmask.faces.align`): the centre of template pixel ``(col, row)`` is
``(x, y) = (col, row)``; a frame point ``p`` maps to ``(p - origin + 0.5) * scale - 0.5``, ``origin`` the
top-left corner of :data:`FRAME_REGION`.
"""

from __future__ import annotations

import numpy as np

FRAME_REGION = (-8.0, 40.0, 120.0, 132.0)
"""``(x0, y0, x1, y1)``: the part of the 112x112 ArcFace frame that a built-in template covers."""

_LIGHT = np.array([-0.32, -0.42, 0.85])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
_GREY = 210.0  # RGB value of luminance 1.0; shading values stay below 1.2, so no clipping


# ---------------------------------------------------------------------------------------------------


class Canvas:
    """A supersampled drawing surface; ``X``, ``Y`` hold the design coordinates of every pixel.

    ``squash``: None, or ``(c, k)``: design point (x, y) is drawn at frame point (x, c - (c - y) k) (the
    coverage levels, module docstring); without it design and frame coordinates are the same.
    """

    _SHIFT = 4

    def __init__(self, width: int, height: int, scale: float, squash=None):
        self.width, self.height, self.scale = width, height, scale
        self.squash = squash
        x0, y0 = FRAME_REGION[:2]
        xs = (np.arange(width, dtype=np.float32) + 0.5) / scale - 0.5 + x0
        ys = (np.arange(height, dtype=np.float32) + 0.5) / scale - 0.5 + y0
        if squash is not None:
            c, k = squash
            ys = (c - (c - ys.astype(np.float64)) / k).astype(np.float32)  # the design y drawn at each row
        self.X, self.Y = np.meshgrid(xs, ys)

    def _px(self, points, weights=None) -> np.ndarray:
        x0, y0 = FRAME_REGION[:2]
        pts = np.asarray(points, dtype=np.float64)
        if self.squash is not None:
            c, k = self.squash
            w = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
            pts = pts.copy()
            pts[:, 1] += w * ((c - (c - pts[:, 1]) * k) - pts[:, 1])
        pts = (pts - (x0, y0) + 0.5) * self.scale - 0.5
        return np.round(pts * (1 << self._SHIFT)).astype(np.int32)

    def fill(self, polygon) -> np.ndarray:
        """Anti-aliased coverage (float32 in [0, 1]) of a closed polygon given in frame coordinates."""
        import cv2

        img = np.zeros((self.height, self.width), np.uint8)
        cv2.fillPoly(img, [self._px(polygon)], 255, cv2.LINE_AA, self._SHIFT)
        return img.astype(np.float32) / 255.0

    def line(self, points, width: float, weights=None) -> np.ndarray:
        """Anti-aliased coverage of an open polyline of ``width`` frame pixels; ``weights`` (one per point, 0..1)
        scale how far each point follows the canvas's squash (0: it stays where it is designed)."""
        import cv2

        img = np.zeros((self.height, self.width), np.uint8)
        thickness = max(1, round(width * self.scale))
        cv2.polylines(img, [self._px(points, weights)], False, 255, thickness, cv2.LINE_AA, self._SHIFT)
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


def catmull_rom(points, samples: int = 24, closed: bool = False) -> np.ndarray:
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


def bezier(p0, p1, p2, samples: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    p0, p1, p2 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def mirror(points) -> np.ndarray:
    """Points mirrored about the face's vertical axis x = 56 (order reversed)."""
    p = np.asarray(points, dtype=np.float64)[::-1].copy()
    p[:, 0] = 112.0 - p[:, 0]
    return p


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(x: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(x / width) ** 2)


def face_height(c: Canvas, wrap: float = 46.0, depth: float = 32.0) -> np.ndarray:
    """A cylinder-like surface that wraps around the lower face: sides turn away from the viewer."""
    dx = (c.X - 56.0) / wrap
    return depth * np.sqrt(np.clip(1.0 - dx * dx, 0.02, None))


def texture(c: Canvas, seed: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise (fixed seed), correlation length ``sigma`` frame pixels."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((c.height, c.width)).astype(np.float32)
    noise = c.blur(noise, sigma)
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def loops(c: Canvas, curves, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and shading of ear loops / straps (round cords, shaded across their width)."""
    cover = np.zeros((c.height, c.width), np.float32)
    for curve in curves:
        curve = np.asarray(curve, dtype=np.float64)
        # The end nearer the face's axis is attached to the mask and follows it; the other stays at the ear.
        ramp = np.linspace(1.0, 0.0, len(curve))
        weights = ramp if abs(curve[0, 0] - 56.0) < abs(curve[-1, 0] - 56.0) else ramp[::-1]
        cover = np.maximum(cover, c.line(curve, width, weights))
    # A cord is darker at its rims: use the blurred coverage as a height profile.
    profile = c.blur(cover, width * 0.35)
    shade = 0.62 + 0.3 * np.clip(profile, 0, 1)
    return cover, shade


def composite(body_a, body_l, loop_a, loop_l) -> tuple[np.ndarray, np.ndarray]:
    """Body over loops; luminance where alpha is 0 keeps the body's (extrapolated) shading."""
    under = loop_a * (1.0 - body_a)
    alpha = body_a + under
    lum = np.where(alpha > 1e-6, (body_l * body_a + loop_l * under) / np.maximum(alpha, 1e-6), body_l)
    return lum, alpha


def downsample(lum: np.ndarray, alpha: np.ndarray, k: int) -> np.ndarray:
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
