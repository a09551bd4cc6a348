"""Faces: landmark templates, 5-point similarity alignment, detectors (YuNet, MTCNN) and landmark CSVs.

Importing this package needs only numpy; OpenCV and onnxruntime are imported when used.
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

_LAZY = {
    "DETECTORS": "frmask.faces.detect",
    "Detector": "frmask.faces.detect",
    "Face": "frmask.faces.detect",
    "ModelFileError": "frmask._resources",
    "get_detector": "frmask.faces.detect",
    "read_landmarks_csv": "frmask.faces.landmarks_csv",
    "write_landmarks_csv": "frmask.faces.landmarks_csv",
}


def __getattr__(name: str):
    """The detector and landmark-CSV names are imported on first use (the alignment path stays light)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DETECTORS",
    "Detector",
    "Face",
    "ModelFileError",
    "get_detector",
    "read_landmarks_csv",
    "write_landmarks_csv",
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
