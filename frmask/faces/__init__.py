"""Faces: landmark templates and 5-point similarity alignment (detectors live in their own modules).

Importing this package needs only numpy; OpenCV is imported when an image is warped.
"""

from frmask.faces.align import (
    ARCFACE_112,
    BORDER_MODES,
    LANDMARK_MARGIN,
    LEGACY_96x112,
    align_face,
    alignment_matrix,
    similarity_transform,
    template_for,
    transform_points,
)

__all__ = [
    "ARCFACE_112",
    "BORDER_MODES",
    "LANDMARK_MARGIN",
    "LEGACY_96x112",
    "align_face",
    "alignment_matrix",
    "similarity_transform",
    "template_for",
    "transform_points",
]
