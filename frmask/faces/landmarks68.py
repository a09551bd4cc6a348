"""dlib's 68-point face landmarks (the optional extra ``frmask[landmarks68]``) and MaskTheFace's six anchors.

Points use dlib's / iBUG 300-W numbering, as seen in the image: 0-16 the jaw outline from image-left to
image-right (8 = chin), 27-30 the nose bridge from between the eyes down to the tip, 36-41 the eye on
image-left, 42-47 the eye on image-right, 48-67 the mouth (48 and 54 its corners). Coordinates follow
:mod:`frmask.faces.align` (pixel centres at integers).

The shape predictor is dlib's ``shape_predictor_68_face_landmarks.dat``, shipped by the PyPI package
``face-recognition-models``; ``dlib-bin`` provides dlib. Both load offline. The predictor refines a face box;
here the box is fixed in the aligned ArcFace frame (:data:`ALIGNED_BOX_112`: the median box of dlib's own
frontal face detector on 98 aligned MFR2 faces), so it always matches what the predictor was trained on.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "ALIGNED_BOX_112",
    "Landmarks68Unavailable",
    "available",
    "face_turn_angle",
    "landmarks68",
    "landmarks68_aligned",
    "masktheface_anchors",
    "model_path",
]

ALIGNED_BOX_112 = (14.5, 32.0, 92.0, 109.5)
"""(left, top, right, bottom) of the predictor's face box in the 112x112 ArcFace frame."""

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
_HINT = "68-point landmarks need dlib and its model: pip install frmask[landmarks68]"

_JAW = slice(0, 17)
_EYE_LEFT = slice(36, 42)
_EYE_RIGHT = slice(42, 48)
_BOTTOM_LIP = [54, 55, 56, 57, 58, 59, 48, 64, 65, 66, 67, 60]  # MaskTheFace's "bottom_lip" group


class Landmarks68Unavailable(ImportError):
    """dlib or its 68-point model is not installed (``pip install frmask[landmarks68]``)."""


def model_path() -> str:
    """Path of ``shape_predictor_68_face_landmarks.dat`` in the installed ``face-recognition-models``.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer ship). Raises :class:`Landmarks68Unavailable` when it is missing.
    """
    from frmask._resources import package_dir

    try:
        path = package_dir("face_recognition_models", "face-recognition-models", "landmarks68") / "models" / MODEL_FILE
    except ImportError:
        path = None
    if path is None or not path.is_file():
        raise Landmarks68Unavailable(f"{_HINT} (the package face-recognition-models with {MODEL_FILE} is missing)")
    return str(path)


def available() -> bool:
    """True when dlib imports and the 68-point model file is installed."""
    try:
        _dlib()
        model_path()
    except Landmarks68Unavailable:
        return False
    return True


def _dlib():
    try:
        import dlib
    except ImportError:
        raise Landmarks68Unavailable(f"{_HINT} (dlib is not installed)") from None
    return dlib


@lru_cache(maxsize=1)
def _predictor():
    return _dlib().shape_predictor(model_path())  # ~0.6 s: once per process


def landmarks68(image: np.ndarray, box) -> np.ndarray:
    """The 68 landmarks of the face in ``box = (left, top, right, bottom)`` (pixels) of a uint8 RGB or grey
    image, as float64 (68, 2) (x, y)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    left, top, right, bottom = (int(round(float(v))) for v in box)
    if right <= left or bottom <= top:
        raise ValueError(f"empty face box {tuple(box)}")
    dlib = _dlib()
    shape = _predictor()(np.ascontiguousarray(image), dlib.rectangle(left, top, right, bottom))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def landmarks68_aligned(image: np.ndarray) -> np.ndarray:
    """The 68 landmarks of an aligned square ArcFace crop (any size; 112 or larger), in its pixels."""
    image = np.asarray(image)
    if image.ndim < 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"an aligned crop is square, got shape {image.shape}")
    s = image.shape[0] / 112.0
    return landmarks68(image, tuple(v * s for v in ALIGNED_BOX_112))


# ---------------------------------------------------------------------------------------------------
# MaskTheFace's six anchors
# ---------------------------------------------------------------------------------------------------

def _hits(point: np.ndarray, direction: np.ndarray, polyline: np.ndarray) -> list[np.ndarray]:
    """Where the infinite line ``point + t * direction`` crosses the segments of ``polyline``, in order."""
    out = []
    for a, b in zip(polyline[:-1], polyline[1:]):
        seg = b - a
        den = direction[0] * seg[1] - direction[1] * seg[0]
        if abs(den) < 1e-12:
            continue
        diff = a - point
        s = (diff[0] * direction[1] - diff[1] * direction[0]) / den  # position along the segment
        if -1e-9 <= s <= 1 + 1e-9:
            hit = a + s * seg
            if not out or np.linalg.norm(hit - out[-1]) > 1e-6:  # a shared vertex counts once
                out.append(hit)
    return out


def _jaw_ellipse(jaw: np.ndarray, n: int = 180) -> np.ndarray:
    """A closed polyline on the ellipse fitted to the jaw points (to reach beyond a short jaw outline)."""
    import cv2

    (cx, cy), (w, h), deg = cv2.fitEllipse(jaw.astype(np.float32))
    t = np.linspace(0.0, 2 * np.pi, n + 1)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    x, y = 0.5 * w * np.cos(t), 0.5 * h * np.sin(t)
    return np.column_stack([cx + c * x - s * y, cy + s * x + c * y])


def _outer_pair(point, direction, jaw, fallback) -> tuple[np.ndarray, np.ndarray]:
    """The first and last crossings of a line with the jaw outline (left to right), else with the ellipse
    fitted to it (outermost along ``direction``), else the ``fallback`` pair."""
    hits = _hits(point, direction, jaw)
    if len(hits) >= 2:
        return hits[0], hits[-1]
    hits = _hits(point, direction, _jaw_ellipse(jaw))
    if len(hits) >= 2:
        along = [float(np.dot(h - point, direction)) for h in hits]
        return hits[int(np.argmin(along))], hits[int(np.argmax(along))]
    return fallback


def masktheface_anchors(points: np.ndarray) -> dict[str, tuple[float, float]]:
    """MaskTheFace's six anchor points ``mask_a`` .. ``mask_f`` from 68 landmarks (same pixels).

    The construction follows MaskTheFace (``get_six_points``): with the eye line through the two eye
    centres and the nose length ``y30 - y27``,

    * ``mask_b``: the middle of the nose bridge (points 27 and 30);
    * ``mask_a`` / ``mask_c``: where the eye line, moved down by the nose length, crosses the jaw outline
      (first and last crossing; an ellipse fitted to the jaw extends a short outline);
    * ``mask_e``: the chin: the mean of where the jaw outline is crossed by the perpendicular to the eye line
      through the eyes' middle moved down by half the nose length, and by the line from point 27 through the
      bottom lip's centre;
    * ``mask_d`` / ``mask_f``: where the eye line, moved down to the bottom lip's lowest point, crosses the
      jaw outline.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (68, 2) or not np.all(np.isfinite(p)):
        raise ValueError(f"need 68 finite (x, y) landmarks, got shape {p.shape}")
    jaw = p[_JAW]
    eye_l, eye_r = p[_EYE_LEFT].mean(axis=0), p[_EYE_RIGHT].mean(axis=0)
    eye_dir = eye_r - eye_l
    if np.linalg.norm(eye_dir) < 1e-6:
        raise ValueError("degenerate landmarks: the two eye centres coincide")
    eye_mid = (eye_l + eye_r) / 2
    nose = p[30, 1] - p[27, 1]
    lip = p[_BOTTOM_LIP]

    b = (p[27] + p[30]) / 2
    chin_lines = [(eye_mid + (0.0, nose / 2), np.array([-eye_dir[1], eye_dir[0]])),
                  (p[27], lip.mean(axis=0) - p[27])]
    chin = [h[0] for h in (_hits(pt, d, jaw) for pt, d in chin_lines) if h]
    e = np.mean(chin, axis=0) if chin else p[8]
    a, c = _outer_pair(eye_l + (0.0, nose), eye_dir, jaw, (p[0], p[16]))
    d, f = _outer_pair(eye_l + (0.0, lip[:, 1].max() - eye_mid[1]), eye_dir, jaw, (p[5], p[11]))
    return {name: (float(x), float(y)) for name, (x, y) in
            zip(("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f"), (a, b, c, d, e, f))}


def face_turn_angle(points: np.ndarray) -> float:
    """MaskTheFace's head-turn angle in degrees: the nose bridge (27 -> 30) against the line from point 27
    through the bottom lip's centre. MaskTheFace uses its ``_left`` mask variants above +13 and ``_right``
    below -13."""
    p = np.asarray(points, dtype=np.float64)

    def direction(v) -> float:
        deg = math.degrees(math.atan2(v[1], v[0]))
        if v[0] < 0:
            deg += 180
        if deg < 0:
            deg += 360
        return deg - 180 if deg > 180 else deg

    return direction(p[30] - p[27]) - direction(p[_BOTTOM_LIP].mean(axis=0) - p[27])
