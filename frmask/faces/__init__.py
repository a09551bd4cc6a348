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
from frmask.faces.detect import DETECTORS, Detector, Face, ModelFileError, get_detector
from frmask.faces.landmarks_csv import read_landmarks_csv, write_landmarks_csv

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
