"""A mask template: an RGBA image plus named anchor points mapped to named face landmarks.

Landmark names (the 5-point set of frmask.faces, as seen in the image): ``left_eye``, ``right_eye``,
``nose``, ``mouth_left``, ``mouth_right``. Templates with other anchors (MaskTheFace's six points on the
68-point landmarks) use names of their own and say which landmarks they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIVE_POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Anchors are attachment points and may sit a little beyond the drawn pixels (MaskTheFace's own masks.cfg
# puts some up to 12 % outside their image); farther than this fraction of the image size is an error.
ANCHOR_MARGIN = 0.25


class TemplateError(ValueError):
    """An invalid mask template (no alpha, anchors outside the image, unknown landmark)."""


@dataclass(frozen=True, eq=False)
class MaskTemplate:
    """An RGBA mask image (H, W, 4 uint8; alpha 0 outside the mask) and its anchors.

    ``anchors`` maps a landmark name to the (x, y) template pixel that must land on that landmark.
    ``name`` identifies the mask type in sidecars and reports.
    """

    name: str
    rgba: np.ndarray
    anchors: dict = field(default_factory=dict)

    def __post_init__(self):
        rgba = np.asarray(self.rgba)
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise TemplateError(f"mask template {self.name!r}: need an RGBA uint8 image (H, W, 4), "
                                f"got shape {rgba.shape} dtype {rgba.dtype}")
        if not rgba[..., 3].any():
            raise TemplateError(f"mask template {self.name!r}: the alpha channel is empty")
        if len(self.anchors) < 4:
            raise TemplateError(f"mask template {self.name!r}: a homography needs at least 4 anchors, "
                                f"got {len(self.anchors)}")
        h, w = rgba.shape[:2]
        mx, my = ANCHOR_MARGIN * w, ANCHOR_MARGIN * h
        for key, (x, y) in self.anchors.items():
            if not (-mx <= x <= w - 1 + mx and -my <= y <= h - 1 + my):
                raise TemplateError(f"mask template {self.name!r}: anchor {key!r} at ({x}, {y}) lies outside "
                                    f"the {w}x{h} image (by more than {ANCHOR_MARGIN:.0%} of its size)")

    @property
    def landmarks(self) -> tuple:
        """The landmark names this template's anchors need, in a fixed order."""
        return tuple(self.anchors)

    def anchor_array(self) -> np.ndarray:
        """Anchor points as a float64 (n, 2) array in the order of :attr:`landmarks`."""
        return np.array([self.anchors[k] for k in self.landmarks], dtype=np.float64)
