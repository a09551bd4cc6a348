"""Five-point landmark templates and similarity alignment of faces.

Conventions: points are ``(x, y)`` in pixels with OpenCV's convention that the centre of pixel
``(col, row)`` is at ``x = col, y = row`` (so an image of width ``W`` spans ``-0.5 <= x <= W - 0.5``).
The five landmarks are, in this order: left eye, right eye (as seen in the image), nose tip, left mouth
corner, right mouth corner. A 2x3 ``matrix`` maps a point ``p`` to ``matrix[:, :2] @ p + matrix[:, 2]``
(``cv2.warpAffine``'s forward map, from the input image to the output image).

This module needs only numpy; :func:`align_face` imports OpenCV when called.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ARCFACE_112",
    "LEGACY_96x112",
    "BORDER_MODES",
    "LANDMARK_MARGIN",
    "template_for",
    "similarity_transform",
    "transform_points",
    "alignment_matrix",
    "align_face",
]


def _frozen(points: list[tuple[float, float]]) -> np.ndarray:
    array = np.array(points, dtype=np.float64)
    array.setflags(write=False)
    return array


ARCFACE_112 = _frozen([
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
])
"""ArcFace / insightface 5-point template of a 112x112 crop, shape (5, 2), (x, y)."""

LEGACY_96x112 = _frozen([(x - 8.0, y) for x, y in ARCFACE_112])
"""The same points for 96x112 (width x height) crops: ``x - 8``, as in SphereFace/CosFace code."""

BORDER_MODES = ("constant", "replicate", "reflect", "reflect101")
"""Values of ``align_face(border=...)``: black fill, edge pixels, mirror with / without the edge pixel."""

LANDMARK_MARGIN = 0.1
"""Default tolerance of :func:`align_face` for landmarks outside the image, as a fraction of its size."""


def template_for(size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """The ArcFace template for an output of ``size = (width, height)`` pixels, shape (5, 2).

    The 112x112 template is scaled uniformly by ``height / 112`` and centred horizontally:
    ``x' = x * height / 112 + (width - height) / 2`` and ``y' = y * height / 112``. For square sizes
    this is insightface's scaling by ``s / 112``; for ``(96, 112)`` it gives :data:`LEGACY_96x112`.
    (insightface's ``estimate_norm`` treats sizes that are multiples of 128 but not of 112 differently:
    it scales by ``s / 128`` and shifts x by ``8 * s / 128``; that rule is not reproduced here.)
    """
    width, height = check_size(size)
    scale = height / 112.0
    points = ARCFACE_112 * scale
    points[:, 0] += (width - height) / 2.0
    return points


def check_size(size) -> tuple[int, int]:
    """``(width, height)`` as positive ints, or a ValueError."""
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"size must be (width, height) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def as_points(points, name: str) -> np.ndarray:
    """``points`` as a finite float64 (N, 2) array, or a ValueError naming ``name``."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain non-finite values")
    return array


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) from ``src`` to ``dst``.

    Umeyama's method (IEEE TPAMI 13(4), 1991): with centred point sets and the cross-covariance
    ``C = dst_c.T @ src_c / N = U S Vt``, the rotation is ``R = U D Vt`` where ``D = diag(1, det(U Vt))``
    forbids a reflection, the scale is ``trace(S D) / var(src)`` and the translation maps the ``src``
    centroid onto the ``dst`` centroid. Returns the 2x3 float64 matrix; raises ``ValueError`` when the
    inputs do not match or all ``src`` points coincide (no scale can be estimated).
    """
    src = as_points(src, "src points")
    dst = as_points(dst, "dst points")
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching sets of at least 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = np.mean(np.sum(src_c**2, axis=1))
    if src_var <= 1e-24 * max(1.0, float(np.max(np.abs(src))) ** 2):
        raise ValueError("src points all coincide; a similarity transform is undefined")
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = float(s @ d) / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to (N, 2) ``points``; returns float64 (N, 2)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape (2, 3), got {matrix.shape}")
    points = as_points(points, "points")
    return points @ matrix[:, :2].T + matrix[:, 2]


def _check_landmarks_shape(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2) (x, y), got {landmarks.shape}")
    return as_points(landmarks, "landmarks")


def check_not_degenerate(points: np.ndarray, what: str = "landmarks", line_tol: float = 1e-3,
                         coincide_tol: float = 1e-6) -> None:
    """ValueError when two points coincide or all lie on one line (relative to their spread)."""
    centred = points - points.mean(axis=0)
    spread = float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))
    gaps = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    gaps[np.diag_indices(len(points))] = np.inf
    if spread == 0.0 or gaps.min() <= coincide_tol * spread:
        i, j = np.unravel_index(np.argmin(gaps), gaps.shape)
        raise ValueError(f"degenerate {what}: points {i} and {j} coincide at {tuple(points[i])}")
    axes = np.linalg.svd(centred, compute_uv=False)
    if axes[1] <= line_tol * axes[0]:
        raise ValueError(f"degenerate {what}: all {len(points)} points lie on one line")


def alignment_matrix(landmarks: np.ndarray, size: tuple[int, int] = (112, 112),
                     template: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 similarity matrix that maps ``landmarks`` onto ``template`` (default: :func:`template_for`)."""
    landmarks = _check_landmarks_shape(landmarks)
    check_not_degenerate(landmarks)
    if template is None:
        template = template_for(size)
    template = as_points(template, "template points")
    if template.shape != (5, 2):
        raise ValueError(f"template must have shape (5, 2), got {template.shape}")
    return similarity_transform(landmarks, template)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must have shape (H, W) or (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return np.ascontiguousarray(image)


def _check_inside(landmarks: np.ndarray, width: int, height: int, margin: float) -> None:
    """ValueError for a landmark farther than ``margin * width`` (x) or ``margin * height`` (y) outside the image."""
    low = np.array([-0.5 - margin * width, -0.5 - margin * height])
    high = np.array([width - 0.5 + margin * width, height - 0.5 + margin * height])
    outside = np.flatnonzero(np.any((landmarks < low) | (landmarks > high), axis=1))
    if outside.size:
        i = int(outside[0])
        raise ValueError(
            f"landmark {i} at {tuple(landmarks[i])} lies outside the {width}x{height} image "
            f"(allowed margin {margin:g} of the image size)"
        )


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: tuple[int, int] = (112, 112),
    template: np.ndarray | None = None,
    border: str = "constant",
    *,
    margin: float = LANDMARK_MARGIN,
) -> np.ndarray:
    """Warp ``image`` so that its five ``landmarks`` land on ``template``; returns ``(h, w[, 3])`` uint8.

    ``size`` is ``(width, height)`` of the output; ``template`` defaults to :func:`template_for(size)
    <template_for>`. The matrix is :func:`similarity_transform` from the landmarks to the template and
    the warp is ``cv2.warpAffine`` with bilinear interpolation. ``border`` is one of
    :data:`BORDER_MODES` (``"constant"`` fills with black, as insightface does). Landmarks may lie up to
    ``margin`` times the image width (x) / height (y) outside the image, for faces cut by the frame;
    farther out, or degenerate (two coinciding, or all on one line), they raise ``ValueError``.
    """
    import cv2

    image = _check_image(image)
    landmarks = _check_landmarks_shape(landmarks)
    _check_inside(landmarks, image.shape[1], image.shape[0], margin)
    width, height = check_size(size)
    matrix = alignment_matrix(landmarks, (width, height), template)
    modes = {
        "constant": cv2.BORDER_CONSTANT,
        "replicate": cv2.BORDER_REPLICATE,
        "reflect": cv2.BORDER_REFLECT,
        "reflect101": cv2.BORDER_REFLECT_101,
    }
    if border not in modes:
        raise ValueError(f"border must be one of {BORDER_MODES}, got {border!r}")
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=modes[border], borderValue=0)
