"""Tests of frmask.synth.shapes: built-in mask templates drawn in the 112x112 ArcFace frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frmask.faces.align import ARCFACE_112
from frmask.synth.shapes import (
    FRAME_REGION,
    MASK_TYPES,
    builtin_template,
    frame_to_template,
)
from frmask.synth.template import FIVE_POINTS, MaskTemplate

EYES = ARCFACE_112[:2]
COVERED = {
    "nose landmark": tuple(ARCFACE_112[2]),
    "nose tip": (56.0, 76.0),
    "mouth left": tuple(ARCFACE_112[3]),
    "mouth right": tuple(ARCFACE_112[4]),
    "chin": (56.0, 108.0),
}


@pytest.fixture(scope="module")
def templates() -> dict:
    return {name: builtin_template(name) for name in MASK_TYPES}


def _alpha_in_frame(template: MaskTemplate, size: int = 112, landmarks=ARCFACE_112) -> np.ndarray:
    """The template's alpha (0..1) warped by the homography from its anchors onto ``landmarks``."""
    homography, _ = cv2.findHomography(template.anchor_array(), np.asarray(landmarks, np.float64))
    warped = cv2.warpPerspective(template.rgba[..., 3], homography, (size, size), flags=cv2.INTER_LINEAR)
    return warped.astype(np.float64) / 255.0


def _disc(center, radius: float, size: int = 112) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius ** 2


def test_mask_types_tuple():
    assert MASK_TYPES == ("surgical", "n95", "kn95", "cloth")


@pytest.mark.parametrize("name", MASK_TYPES)
def test_builds_a_valid_template(name, templates):
    template = templates[name]
    assert isinstance(template, MaskTemplate)
    assert template.name == name
    assert template.landmarks == FIVE_POINTS
    assert template.rgba.dtype == np.uint8 and template.rgba.shape == (368, 512, 4)
    np.testing.assert_allclose(template.anchor_array(), frame_to_template(ARCFACE_112, 4))
    # Re-validating through the constructor accepts it.
    MaskTemplate(name=name, rgba=template.rgba, anchors=dict(template.anchors))


@pytest.mark.parametrize("name", MASK_TYPES)
def test_deterministic(name, templates):
    again = builtin_template(name)
    assert again.rgba.tobytes() == templates[name].rgba.tobytes()
    assert again.anchors == templates[name].anchors


@pytest.mark.parametrize("name", MASK_TYPES)
def test_grey_shading_and_alpha(name, templates):
    rgba = templates[name].rgba
    assert np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 1], rgba[..., 2])
    alpha = rgba[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, 0] == 0 and alpha[0, -1] == 0
    inside = alpha == 255
    # Mostly opaque or transparent; only the anti-aliased rim is in between.
    assert ((alpha > 0) & (alpha < 255)).sum() < 0.1 * inside.sum()
    lum = rgba[..., 0][inside].astype(np.float64)
    median = np.median(lum)
    assert 120 <= median <= 245  # light grey, room for highlights before clipping
    assert lum.std() / median > 0.03  # shading is present
    assert (lum > 0).all()


@pytest.mark.parametrize("name", MASK_TYPES)
def test_geometry_in_arcface_frame(name, templates):
    alpha = _alpha_in_frame(templates[name])
    for eye in EYES:
        assert alpha[_disc(eye, 4.0)].max() < 0.02, f"{name} covers an eye"
    for label, (x, y) in COVERED.items():
        assert alpha[round(y), round(x)] > 0.98, f"{name} does not cover the {label}"
    mouth = alpha[86:100, 36:77]
    assert mouth.min() > 0.98, f"{name} leaves part of the mouth region uncovered"
    # The top edge sits on the nose bridge, a bit below the eye line.
    column = alpha[:, 56]
    top = int(np.argmax(column > 0.5))
    assert 57 <= top <= 67
    # The sides reach towards the cheeks.
    assert alpha[88, 24] > 0.98 and alpha[88, 88] > 0.98


@pytest.mark.parametrize("name", MASK_TYPES)
def test_mask_extends_below_the_crop(name, templates):
    template = templates[name]
    alpha = template.rgba[..., 3]
    x56, _ = frame_to_template([(56.0, 0.0)], 4)[0]
    rows = np.nonzero(alpha[:, round(x56)] > 127)[0]
    bottom_frame = (rows.max() + 0.5) / 4 - 0.5 + FRAME_REGION[1]
    assert 117.0 <= bottom_frame <= 126.0


@pytest.mark.parametrize("name", MASK_TYPES)
def test_size_scales_with_scale(name, templates):
    big = templates[name]
    small = builtin_template(name, scale=2)
    assert small.rgba.shape == (184, 256, 4)
    np.testing.assert_allclose(small.anchor_array() + 0.5, (big.anchor_array() + 0.5) / 2)
    area_small = small.rgba[..., 3].astype(np.float64).sum()
    area_big = big.rgba[..., 3].astype(np.float64).sum()
    assert area_big / area_small == pytest.approx(4.0, rel=0.03)
    # Both land on the same place in the 112 frame.
    diff = np.abs(_alpha_in_frame(small) - _alpha_in_frame(big))
    assert diff.mean() < 0.01


@pytest.mark.parametrize("name", MASK_TYPES)
def test_lands_on_any_face(name, templates):
    """Warped onto a rotated, scaled face in a large image the mask still covers nose and mouth only."""
    angle, scale, shift = np.deg2rad(12.0), 3.2, np.array([70.0, 40.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_112 @ rot.T * scale + shift
    alpha = _alpha_in_frame(templates[name], size=480, landmarks=landmarks)
    for eye in landmarks[:2]:
        assert alpha[_disc(eye, 4.0 * scale, 480)].max() < 0.02
    for x, y in landmarks[2:]:
        assert alpha[round(y), round(x)] > 0.98


def test_surgical_has_pleats(templates):
    rgba = templates["surgical"].rgba
    x, _ = frame_to_template([(30.0, 0.0)], 4)[0]
    col = rgba[:, round(x)]
    lum = col[col[:, 3] == 255, 0].astype(np.float64)
    smooth = np.convolve(lum, np.ones(3) / 3, mode="same")[2:-2]
    minima = np.nonzero((smooth[1:-1] < smooth[:-2]) & (smooth[1:-1] <= smooth[2:])
                        & (smooth[1:-1] < np.median(smooth) * 0.9))[0]
    assert len(minima) >= 3


def test_kn95_has_a_centre_fold(templates):
    rgba = templates["kn95"].rgba
    (xl, y), (xr, _) = frame_to_template([(40.0, 90.0), (72.0, 90.0)], 4)
    row = rgba[round(y), :, 0].astype(np.float64)
    left, right = row[int(xl) - 8:int(xl) + 8].mean(), row[int(xr) - 8:int(xr) + 8].mean()
    assert abs(left - right) > 0.05 * max(left, right)  # two panels lit differently
    xc = round(frame_to_template([(56.0, 90.0)], 4)[0, 0])
    # A dark crease at the seam, darker than the panels beside it.
    assert row[xc - 3:xc + 4].min() < min(row[xc - 12], row[xc + 12]) - 3


def test_unknown_name_lists_the_types():
    with pytest.raises(ValueError, match="surgical, n95, kn95, cloth"):
        builtin_template("gas")


@pytest.mark.parametrize("scale", [0, -1, float("nan"), 100, "big"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        builtin_template("surgical", scale=scale)


def test_small_scale_still_valid():
    template = builtin_template("n95", scale=1)
    assert template.rgba.shape == (92, 128, 4)
    alpha = _alpha_in_frame(template)
    assert alpha[92, 56] > 0.98 and alpha[_disc(EYES[0], 4.0)].max() < 0.02


# --- nose coverage levels ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def levels() -> dict:
    from frmask.synth.shapes import COVERAGE_LEVELS

    return {(name, level): builtin_template(name, scale=2, coverage=level)
            for name in MASK_TYPES for level in COVERAGE_LEVELS}


def _edges_on_axis(template: MaskTemplate, scale: float) -> tuple[float, float]:
    """Frame heights where alpha crosses 0.5 on the axis x = 56, top and bottom (linear between pixels)."""
    x56 = round(frame_to_template([(56.0, 0.0)], scale)[0, 0])
    col = template.rgba[:, x56, 3].astype(np.float64) / 255.0
    inside = np.nonzero(col > 0.5)[0]
    r, b = inside.min(), inside.max()
    top_px = r - 1 + (0.5 - col[r - 1]) / (col[r] - col[r - 1])
    bottom_px = b + (col[b] - 0.5) / (col[b] - col[b + 1])
    to_frame = lambda px: (px + 0.5) / scale - 0.5 + FRAME_REGION[1]  # noqa: E731
    return to_frame(top_px), to_frame(bottom_px)


def test_coverage_levels_are_defined_from_the_landmarks():
    from frmask.synth.shapes import COVERAGE_LEVELS, coverage_top

    assert COVERAGE_LEVELS == ("low", "medium", "high")
    eye, nose, mouth = ARCFACE_112[:2, 1].mean(), ARCFACE_112[2, 1], ARCFACE_112[3:, 1].mean()
    for name in MASK_TYPES:
        assert coverage_top(name, "medium") == pytest.approx(eye + 0.75 * (nose - eye))  # across the nose
        assert coverage_top(name, "low") == pytest.approx(nose + 0.25 * (mouth - nose))  # below the tip
        assert eye + 0.3 * (nose - eye) < coverage_top(name, "high") < eye + 0.5 * (nose - eye)  # on the bridge


@pytest.mark.parametrize("name", MASK_TYPES)
def test_coverage_top_edge_height_per_level(name, levels):
    from frmask.synth.shapes import COVERAGE_LEVELS, coverage_top

    bottoms = []
    for level in COVERAGE_LEVELS:
        top, bottom = _edges_on_axis(levels[name, level], 2)
        assert top == pytest.approx(coverage_top(name, level), abs=0.3), f"{name} {level}"
        bottoms.append(bottom)
    # The chin stays where it is; only the top edge (and the sides with it) moves.
    assert max(bottoms) - min(bottoms) < 0.3


@pytest.mark.parametrize("name", MASK_TYPES)
def test_coverage_alpha_in_the_nose_region_per_level(name, levels):
    nose_x, nose_y = ARCFACE_112[2]
    bridge = _disc((56.0, 62.5), 1.5)
    tip = _disc((nose_x, nose_y), 2.0)
    below_tip = _disc((56.0, 82.0), 2.0)
    expected = {"high": (1, 1), "medium": (0, 1), "low": (0, 0)}  # (bridge covered, tip covered)
    for level, (bridge_on, tip_on) in expected.items():
        alpha = _alpha_in_frame(levels[name, level])
        for region, on in ((bridge, bridge_on), (tip, tip_on)):
            assert (alpha[region].min() > 0.98) if on else (alpha[region].max() < 0.02), f"{name} {level}"
        assert alpha[below_tip].min() > 0.98 and alpha[86:100, 36:77].min() > 0.98  # nostrils down: covered
        for eye in EYES:
            assert alpha[_disc(eye, 4.0)].max() < 0.02
    covered = [(_alpha_in_frame(levels[name, lv])[:80] > 0.5).sum() for lv in ("low", "medium", "high")]
    assert covered[0] < covered[1] < covered[2]


@pytest.mark.parametrize("name", MASK_TYPES)
def test_default_coverage_is_high_and_unchanged(name, templates, levels):
    assert builtin_template(name, coverage="high").rgba.tobytes() == templates[name].rgba.tobytes()
    assert builtin_template(name, scale=2).rgba.tobytes() == levels[name, "high"].rgba.tobytes()


def test_coverage_is_drawn_at_any_resolution(levels):
    small = builtin_template("surgical", scale=1, coverage="low")
    diff = np.abs(_alpha_in_frame(small) - _alpha_in_frame(levels["surgical", "low"]))
    assert diff.mean() < 0.01


@pytest.mark.parametrize("bad", ["none", "HIGH", 1])
def test_unknown_coverage_names_the_levels(bad):
    with pytest.raises(ValueError, match="low, medium, high"):
        builtin_template("surgical", coverage=bad)
