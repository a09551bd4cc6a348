"""What every face detector shares: the :class:`Face` record, the :class:`Detector` base class (options,
lazy thread-safe model loading, picklability, face selection) and greedy non-maximum suppression."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from frmask._onnx import make_session

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
