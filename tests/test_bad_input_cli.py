"""Issue 15 item 8 through the CLI: inputs that gave wrong results silently or misleading messages now get one
line naming the file (and the index or shape), exit status 1, no traceback and no output left behind."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

from frmask.cli import main
from forged_images import random_identity_folders


def _image_model() -> bytes:
    """A "model" whose output is its (N, 3, 112, 112) input: an image, not an embedding."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 112, 112])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 112, 112])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "image", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def pairs(tmp_path):
    """Two aligned crops and a pairs CSV of them."""
    random_identity_folders(tmp_path / "img", 1, 2, seed=0)
    (tmp_path / "pairs.csv").write_text("img/id0/0.png,img/id0/1.png,1\nimg/id0/0.png,img/id0/0.png,1\n")
    return tmp_path


def _fails(args, *expected: str, cwd: Path) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output
    for text in expected:
        assert text in result.output, result.output
    assert not (cwd / "out").exists() and not list(cwd.glob(".out*")) and not list(cwd.glob("*.out.bin*"))
    return result.output


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "bad.onnx: the file is empty (0 bytes), not an ONNX model"),
    (b"PK\x03\x04 a zip, not a model", "bad.onnx: not an ONNX model"),
    (_image_model(), "bad.onnx: output 'out' has shape (N, 3, 112, 112), an image"),
], ids=["empty", "not-onnx", "image-output"])
def test_score_refuses_files_that_are_not_embedding_models(pairs, content, expected):
    model = pairs / "bad.onnx"
    model.write_bytes(content)
    output = _fails(["score", str(model), "--protocol", "csv", "--data", str(pairs / "pairs.csv"), "--no-cache",
                     "--out", str(pairs / "out")], expected, cwd=pairs)
    assert "image-like input" not in output


def test_score_csv_protocol_given_a_folder_says_what_it_needs(pairs):
    _fails(["score", "sface", "--protocol", "csv", "--data", str(pairs / "img"), "--out", str(pairs / "out")],
           f"{pairs / 'img'}: is a folder; --protocol csv needs a pairs CSV file", "use --protocol folder", cwd=pairs)


def test_bins_of_zero_pairs_or_with_a_non_image_are_named(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(pickle.dumps(([], []), protocol=4))
    for args in (["synth", "--benchmark", "lfw", "--data", str(empty), "--out", str(tmp_path / "e.out.bin")],
                 ["score", "sface", "--protocol", "lfw", "--data", str(empty), "--out", str(tmp_path / "out")]):
        _fails(args, f"{empty}: holds 0 pairs", cwd=tmp_path)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(pickle.dumps(([b"\x89PNG not really", b"hello"], [True]), protocol=4))
    _fails(["synth", "--benchmark", "lfw", "--data", str(junk), "--out", str(tmp_path / "j.out.bin")],
           f"{junk}: cannot decode image", "(at index 0)", cwd=tmp_path)
