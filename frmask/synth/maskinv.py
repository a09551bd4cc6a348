"""The synthetic mask of the MaskInv paper (Huber et al., FG 2021) and a bit-exact legacy renderer.

The template is the public ``mask_img.png`` of the MaskInv code release (1627x1085 RGBA, a light-grey
surgical mask drawn frontally, alpha 0 outside). Its five anchor points, as used by the published
code, are template pixels that must land on the face landmarks:

======================  =============================================
template pixel (x, y)   landmark (as seen in the image)
======================  =============================================
(678, 464)              ``nose`` (tip)
(548, 614)              ``mouth_right`` (mouth corner on image-right)
(991, 664)              ``mouth_left`` (mouth corner on image-left)
(1009, 64)              ``left_eye`` (eye on image-left)
(557, 64)               ``right_eye`` (eye on image-right)
======================  =============================================

The template is mirrored relative to the image (its small-x anchors go to the image's large-x
landmarks); the homography absorbs the reflection, and the mask is left-right symmetric anyway.
The eye anchors lie above the drawn mask, whose top edge (template y ~ 182) lands on the nose bridge.

:func:`maskinv_template` loads it as a :class:`~frmask.synth.template.MaskTemplate` for the
frmask renderer (:mod:`frmask.synth.render`). :func:`render_maskinv_legacy` reproduces the
published evaluation code's rendering bit for bit, defects included, only to compare with published
numbers.
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..faces.align import ARCFACE_112, LEGACY_96x112
from .template import FIVE_POINTS, MaskTemplate, TemplateError

__all__ = [
    "ARCFACE_LANDMARKS",
    "LEGACY_LANDMARKS",
    "MASKINV_ANCHORS",
    "TEMPLATE_FILENAME",
    "default_template_path",
    "legacy_color",
    "maskinv_template",
    "render_maskinv_legacy",
]

TEMPLATE_FILENAME = "maskinv_mask_img.png"

MASKINV_ANCHORS = {
    "nose": (678, 464),
    "mouth_right": (548, 614),
    "mouth_left": (991, 664),
    "left_eye": (1009, 64),
    "right_eye": (557, 64),
}
"""Template pixel (x, y) of each landmark, as in the published code (mirrored: see the module notes)."""

ARCFACE_LANDMARKS = {name: (float(x), float(y)) for name, (x, y) in zip(FIVE_POINTS, ARCFACE_112)}
"""The ArcFace 112x112 template as a dict landmark name -> (x, y)."""

LEGACY_LANDMARKS = {name: (float(x), float(y)) for name, (x, y) in zip(FIVE_POINTS, LEGACY_96x112)}
"""The legacy 96x112 template (ArcFace x - 8) as a dict; the published code used it on 112x112 crops."""

# The published code's source and destination order: nose, then the mouth corner on image-right, the
# one on image-left, the eye on image-left, the eye on image-right.
_LEGACY_ORDER = ("nose", "mouth_right", "mouth_left", "left_eye", "right_eye")


def default_template_path() -> Path:
    """``../shared/data/templates/maskinv_mask_img.png`` beside the source checkout (may not exist)."""
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "templates" / TEMPLATE_FILENAME


def maskinv_template(path=None) -> MaskTemplate:
    """Load the MaskInv template (RGBA) with its five anchors built in.

    ``path`` defaults to :func:`default_template_path` when that file exists; otherwise a path is
    required. Raises ``FileNotFoundError`` naming the path, or :class:`TemplateError` for a file that
    is not an 8-bit RGBA image.
    """
    if path is None:
        path = default_template_path()
        if not path.is_file():
            raise FileNotFoundError(f"the MaskInv template is not at the default path {path}; pass "
                                    f"maskinv_template(path=...) pointing to {TEMPLATE_FILENAME}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"MaskInv template not found: {path}")
    stat = path.stat()
    return _load_template(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _load_template(path: str, mtime_ns: int, size: int) -> MaskTemplate:
    """Decode once per file version; the returned template's image is read-only, so it can be shared."""
    import cv2

    bgra = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if bgra is None:
        raise TemplateError(f"cannot decode the MaskInv template {path}")
    if bgra.dtype != np.uint8 or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise TemplateError(f"the MaskInv template {path} must be an 8-bit RGBA image, got shape {bgra.shape} "
                            f"dtype {bgra.dtype}")
    rgba = np.ascontiguousarray(bgra[..., [2, 1, 0, 3]])
    rgba.setflags(write=False)
    return MaskTemplate(name="maskinv", rgba=rgba, anchors=dict(MASKINV_ANCHORS))


def legacy_color(rng: np.random.Generator) -> np.ndarray:
    """The published code's colour draw, ``randint(0, 150, 3)``, from a seeded generator: int64 (3,)."""
    return rng.integers(0, 150, size=3, dtype=np.int64)


def render_maskinv_legacy(image_rgb_112: np.ndarray, color, template: MaskTemplate | None = None) -> np.ndarray:
    """Mask a 112x112 RGB crop exactly as the published MaskInv evaluation code did (``simulatedMask``).

    For comparisons with published numbers only; :mod:`frmask.synth.render` is the correct renderer.
    ``color`` is the published colour value (three integers, drawn there as ``randint(0, 150, 3)``:
    see :func:`legacy_color`; a colour file gives one per image). Returns a new uint8 array (the
    published code wrote into its input, which also leaked the mask into the teacher's input in
    training).

    The steps, and the defects kept on purpose:

    1. Landmarks: the 96x112 template (:data:`LEGACY_LANDMARKS`, ArcFace x - 8) is used on 112x112
       crops, so the mask sits about 8 px left of the face (DESIGN defect 1). Each coordinate is
       truncated with ``int()`` before the fit.
    2. ``cv2.findHomography`` (method 0) from the anchors (in the order nose, mouth corner image-right,
       mouth corner image-left, eye image-left, eye image-right) to those points, then
       ``cv2.warpPerspective`` of the uint8 template *as read by OpenCV, BGRA*, bilinear, constant 0
       border, rounded to uint8 by OpenCV.
    3. Colour (DESIGN defect 2), in float64: ``a = A / 255``; every channel ``v`` becomes
       ``v / 255 * 100`` and a "CMYK to RGB" formula is applied with cyan, magenta, yellow, black =
       the B, G, R, A channels: ``out_c = 255 * (1 - (v_c + v_A) / 100)``, i.e. about
       ``255 - channel - alpha``. Inside the mask (A = 255) that is ``-channel``: the shading is inverted
       and the values are negative. ``color`` is then added per channel and the B-derived value is
       written to the image's R channel (B/R swapped).
    4. Blend ``a * value + |1 - a| * image`` per channel, stored into the uint8 image by numpy's
       unchecked cast: truncated towards zero and wrapped modulo 256 (x86-64 behaviour), so the
       negative values of step 3 wrap into bright colours and anything above 255 wraps to dark; no
       clipping anywhere.
    """
    image = np.asarray(image_rgb_112)
    if image.dtype != np.uint8 or image.shape != (112, 112, 3):
        raise ValueError(f"the legacy renderer takes a uint8 112x112 RGB crop, got {image.dtype} {image.shape}")
    color = np.asarray(color)
    if color.shape != (3,) or not np.issubdtype(color.dtype, np.integer):
        raise ValueError(f"color must be three integers (the published colour value), got {color!r}")
    if template is None:
        template = maskinv_template()
    missing = [n for n in _LEGACY_ORDER if n not in template.anchors]
    if missing:
        raise ValueError(f"mask template {template.name!r} lacks the anchors {missing} the legacy renderer needs")

    warped = _legacy_warp(template)
    alpha = warped[:, :, 3] / 255
    keep = np.abs(1 - alpha)
    scaled = warped / 255 * 100
    black = scaled[:, :, 3]
    painted = np.stack([255 * (1.0 - (scaled[:, :, c] + black) / float(100)) for c in range(3)], axis=2)
    painted = painted + color
    out = image.copy()
    for c in range(3):
        value = alpha * painted[:, :, c] + keep * out[:, :, c]
        # numpy's float64 -> uint8 store on x86-64: truncate towards zero, keep the low 8 bits.
        out[:, :, c] = (np.trunc(value).astype(np.int64) & 0xFF).astype(np.uint8)
    return out


_LEGACY_WARPS: weakref.WeakKeyDictionary[MaskTemplate, np.ndarray] = weakref.WeakKeyDictionary()


def _legacy_warp(template: MaskTemplate) -> np.ndarray:
    """Steps 1 and 2 of :func:`render_maskinv_legacy`: the uint8 BGRA template warped onto a 112x112 crop.

    The landmarks are fixed, so the warp is the same for every image; it is computed once per template.
    """
    import cv2

    warped = _LEGACY_WARPS.get(template)
    if warped is None:
        bgra = np.ascontiguousarray(template.rgba[..., [2, 1, 0, 3]])  # as cv2.imread returned it
        src = np.array([template.anchors[n] for n in _LEGACY_ORDER], dtype=np.float32)
        # The published landmark array is float32 and each coordinate goes through int() (truncation).
        legacy32 = np.array([LEGACY_LANDMARKS[n] for n in _LEGACY_ORDER], dtype=np.float32)
        dst = np.array([[int(x), int(y)] for x, y in legacy32], dtype=np.float32)
        homography, _ = cv2.findHomography(src, dst)
        warped = cv2.warpPerspective(bgra, homography, (112, 112), None, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
        warped.setflags(write=False)
        _LEGACY_WARPS[template] = warped
    return warped
