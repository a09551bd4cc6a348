"""Tests of frmask.faces.align: templates, Umeyama similarity estimation and face alignment."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from frmask.faces import (
    ARCFACE_112,
    BORDER_MODES,
    LEGACY_96x112,
    align_face,
    alignment_matrix,
    similarity_transform,
    template_for,
    transform_points,
)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def _invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def _skimage_estimate(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if hasattr(SimilarityTransform, "from_estimate"):
        return SimilarityTransform.from_estimate(src, dst).params[:2]
    tform = SimilarityTransform()
    assert tform.estimate(src, dst)
    return tform.params[:2]


def _synthetic_face(size: int = 112) -> np.ndarray:
    """A smooth RGB test pattern (gradients plus blobs at the landmark positions)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.stack([60 + x, 60 + y, 120 + 40 * np.sin(x / 9.0) * np.cos(y / 11.0)], axis=2)
    for px, py in ARCFACE_112 * size / 112:
        image -= 50 * np.exp(-((x - px) ** 2 + (y - py) ** 2) / 30.0)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ templates


def test_templates() -> None:
    assert ARCFACE_112.shape == (5, 2) and ARCFACE_112.dtype == np.float64
    np.testing.assert_array_equal(ARCFACE_112[0], [38.2946, 51.6963])
    np.testing.assert_array_equal(ARCFACE_112[4], [70.7299, 92.2041])
    np.testing.assert_allclose(LEGACY_96x112, ARCFACE_112 - [8.0, 0.0], atol=1e-12)
    assert not ARCFACE_112.flags.writeable and not LEGACY_96x112.flags.writeable


def test_template_for_sizes() -> None:
    np.testing.assert_array_equal(template_for(), ARCFACE_112)
    np.testing.assert_allclose(template_for((224, 224)), ARCFACE_112 * 2)
    np.testing.assert_allclose(template_for((96, 112)), LEGACY_96x112, atol=1e-12)
    np.testing.assert_allclose(template_for((128, 112)), ARCFACE_112 + [8.0, 0.0])
    template_for().fill(0)  # a fresh copy each time: the constant is not modified
    assert ARCFACE_112[0, 0] == 38.2946
    for bad in [(0, 112), (112,), (112.0, 112)]:
        with pytest.raises(ValueError, match="size"):
            template_for(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- transformations


@pytest.mark.parametrize("seed", range(8))
def test_similarity_matches_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = rng.normal(0, 30, (5, 2)) + 100
    dst = rng.normal(0, 20, (5, 2)) + 50
    if seed % 2:
        dst[:, 0] *= -1  # mirrored data: the best fit must still be a proper rotation
    ours = similarity_transform(src, dst)
    np.testing.assert_allclose(ours, _skimage_estimate(src, dst), atol=1e-9)
    assert np.linalg.det(ours[:, :2]) > 0


def test_similarity_collinear_points_match_skimage() -> None:
    src = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    dst = transform_points(_similarity(2.0, 30.0, 3.0, -1.0), src)
    np.testing.assert_allclose(similarity_transform(src, dst), _similarity(2.0, 30.0, 3.0, -1.0), atol=1e-9)
    np.testing.assert_allclose(similarity_transform(src, dst), _skimage_estimate(src, dst), atol=1e-9)


def test_similarity_exact_recovery_and_errors() -> None:
    matrix = _similarity(0.37, -143.0, 12.5, 80.25)
    np.testing.assert_allclose(similarity_transform(ARCFACE_112, transform_points(matrix, ARCFACE_112)),
                               matrix, atol=1e-12)
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)
    with pytest.raises(ValueError, match="matching"):
        similarity_transform(ARCFACE_112, ARCFACE_112[:4])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        similarity_transform(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        similarity_transform(np.full((5, 2), np.nan), ARCFACE_112)


def test_transform_points() -> None:
    points = np.array([[1.0, 2.0], [-3.0, 0.5]])
    matrix = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_allclose(transform_points(matrix, points), [[8.0, 20.0], [1.0, -3.5]])
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        transform_points(np.eye(3), points)


# ------------------------------------------------------------------------------------------ alignment


def test_alignment_matrix_inverts_known_warp() -> None:
    face_to_image = _similarity(1.7, 18.0, 40.0, 25.0)
    landmarks = transform_points(face_to_image, ARCFACE_112)
    np.testing.assert_allclose(alignment_matrix(landmarks), _invert(face_to_image), atol=1e-6)
    np.testing.assert_allclose(alignment_matrix(landmarks, (224, 224)),
                               2 * _invert(face_to_image), atol=1e-6)


def test_align_face_recovers_synthetic_face() -> None:
    face = _synthetic_face()
    face_to_image = _similarity(1.7, 18.0, 80.0, 20.0)  # the whole face lands inside the 300x300 image
    image = cv2.warpAffine(face, face_to_image, (300, 300), flags=cv2.INTER_LINEAR)
    landmarks = transform_points(face_to_image, ARCFACE_112)
    aligned = align_face(image, landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    diff = np.abs(aligned.astype(int) - face.astype(int))[4:-4, 4:-4]  # bilinear twice: small blur
    assert diff.mean() < 0.1 and diff.max() <= 2  # a 1-pixel misalignment gives a mean of 1.2


def test_align_face_grey_size_template_and_border() -> None:
    grey = cv2.cvtColor(_synthetic_face(), cv2.COLOR_RGB2GRAY)
    out = align_face(grey, ARCFACE_112, size=(96, 112), template=LEGACY_96x112)
    np.testing.assert_array_equal(out, grey[:, 8:104])  # the identity warp, shifted by 8 px
    shrink = ARCFACE_112 * 1.5 - 28  # a large face: the output corners sample outside the image
    assert align_face(grey, shrink, border="constant")[0, 0] == 0
    assert align_face(grey, shrink, border="replicate")[0, 0] == grey[0, 0]
    for border in BORDER_MODES:
        assert align_face(grey, shrink, border=border).shape == (112, 112)
    with pytest.raises(ValueError, match="border"):
        align_face(grey, ARCFACE_112, border="wrap")


@pytest.mark.parametrize(
    ("landmarks", "pattern"),
    [
        (ARCFACE_112[:4], r"shape \(5, 2\)"),
        (np.where(np.eye(5, 2, dtype=bool), np.nan, ARCFACE_112), "non-finite"),
        (ARCFACE_112 + [0.0, 40.0], r"landmark 3 .* outside the 112x112 image"),
        (np.array([[10.0, 10.0], [10.0, 10.0], [50.0, 60.0], [40.0, 90.0], [70.0, 90.0]]),
         "points 0 and 1 coincide"),
        (np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0], [50.0, 50.0]]), "one line"),
    ],
)
def test_align_face_rejects_bad_landmarks(landmarks: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        align_face(_synthetic_face(), landmarks)


def test_landmark_margin() -> None:
    image = _synthetic_face()
    near = ARCFACE_112 + [0.0, 28.0]  # mouth at y ~ 120: outside 112 rows, inside the 10 % margin
    assert align_face(image, near).shape == (112, 112, 3)
    with pytest.raises(ValueError, match="outside"):
        align_face(image, near, margin=0.0)


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        (np.zeros((20, 20, 3), np.float32), "uint8"),
        (np.zeros((20, 20, 4), np.uint8), r"\(H, W\) or \(H, W, 3\)"),
        (np.zeros((0, 20), np.uint8), "empty"),
    ],
)
def test_align_face_rejects_bad_images(image: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        align_face(image, ARCFACE_112 / 6)


def test_import_is_light() -> None:
    code = "import sys, frmask.faces; assert 'cv2' not in sys.modules and 'skimage' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
