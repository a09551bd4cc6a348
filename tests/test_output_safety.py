"""Issue 15: outputs that never overwrite their input, CSVs that round-trip any name, image headers checked
before decoding, `pack` going on past an undecodable image, checkpoint temporaries of a killed save."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from forged_images import png_claiming

from frmask import _csv_text, _temps
from frmask.cli import main
from frmask.io.errors import FormatError
from frmask.io.images import MAX_PIXELS, check_pixels, claimed_size
from frmask.io.insightface_bin import BinBenchmark, decode_image, write_bin

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def _jpeg(k: int, size=(112, 112)) -> bytes:
    rng = np.random.default_rng(k)
    img = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()




# ------------------------------------------------------------------------------ synth --data X --out X


def test_synth_bin_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "x.bin"
    write_bin(src, BinBenchmark([_jpeg(k) for k in range(4)], np.array([True, False])))
    original = src.read_bytes()
    (tmp_path / "alias.bin").symlink_to(src)
    os.link(src, tmp_path / "hard.bin")
    runner = CliRunner()
    for out in ("x.bin", "alias.bin", "hard.bin", "sub/../x.bin"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        r = runner.invoke(main, ["synth", "--benchmark", "lfw", "--data", str(src), "--out", str(tmp_path / out)])
        assert r.exit_code == 1 and "this output is the input" in r.output, r.output
    r = runner.invoke(main, ["synth", "--benchmark", "lfw", "--data", str(src), "--out", str(src)[:-4]])
    assert r.exit_code == 0, r.output  # OUT.masks.csv etc. beside "x": fine
    assert src.read_bytes() == original
    odd = tmp_path / "q.bin.masks.csv"  # an input named like the sidecar of OUT=q.bin
    write_bin(odd, BinBenchmark([_jpeg(k) for k in range(4)], np.array([True, False])))
    r = runner.invoke(main, ["synth", "--benchmark", "lfw", "--data", str(odd), "--out", str(tmp_path / "q.bin")])
    assert r.exit_code == 1 and "this output is the input" in r.output and not (tmp_path / "q.bin").exists()


# -------------------------------------------------------------------------------------- CSV quoting


def test_bin_sidecar_quotes_names(tmp_path):
    from frmask.synth.benchmark import _sidecar_text

    text = _sidecar_text(3, {1: ((1, 2, 3), [0.5, -1.25])}, 'my,"odd"\nmask', ("high", "a,b"))
    rows = list(csv.reader(io.StringIO(text)))
    empty = ["", "", "", "", "", "", ""]
    assert rows == [["index", "masked", "mask_type", "r", "g", "b", "jitter", "coverage", "color"],
                    ["0", "0", *empty], ["1", "1", 'my,"odd"\nmask', "1", "2", "3", "0.5 -1.25", "high", "a,b"],
                    ["2", "0", *empty]]


def test_train_logs_quote_metric_names_and_keep_them_on_resume(tmp_path):
    from frmask.train.logs import RunLogger

    log = RunLogger(tmp_path, tensorboard=False)
    log.log_eval(1, {"a,b.bin_acc": 0.5, 'q"uote_acc': 0.25})
    log.log_eval(2, {"a,b.bin_acc": 0.75})
    RunLogger(tmp_path, start_step=1, tensorboard=False)  # a resume at step 1 rewrites eval.csv
    with open(tmp_path / "eval.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [["step", "metric", "value"], ["1", "a,b.bin_acc", "0.5"], ["1", 'q"uote_acc', "0.25"]]


def test_csv_text_round_trips():
    rows = [("a,b", 'q"', "new\nline", None, 3), ("", " x ", "é", 1.5, "")]
    back = list(csv.reader(io.StringIO(_csv_text.csv_text(rows))))
    assert back == [["a,b", 'q"', "new\nline", "", "3"], ["", " x ", "é", "1.5", ""]]


# ------------------------------------------------------------------------------------- image headers


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif", ".pgm"])
def test_claimed_size_matches_the_decoder(ext):
    img = np.random.default_rng(0).integers(0, 256, (37, 53) if ext == ".pgm" else (37, 53, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if ext == ".jpg" else []
    data = cv2.imencode(ext, img, params)[1].tobytes()
    assert claimed_size(data) == (53, 37)


def test_claimed_size_of_real_jpegs_and_bad_data():
    for path in sorted(LFW.glob("*.jpg")):  # real camera JPEGs (skipped where the shared data is absent)
        data = path.read_bytes()
        assert claimed_size(data) == tuple(reversed(decode_image(data).shape[:2]))
    assert claimed_size(b"") is None and claimed_size(b"\xff\xd8\xff") is None and claimed_size(b"junk") is None
    assert claimed_size(png_claiming(60000, 60000)) == (60000, 60000)


def test_oversized_headers_are_refused_before_decoding(monkeypatch):
    data = png_claiming(20000, 20000)  # cv2 would allocate 1.2 GB for it
    with pytest.raises(FormatError, match=r"x.png: image header claims 20000x20000 pixels, more than the 67,108,864"):
        decode_image(data, source="x.png")
    assert MAX_PIXELS == 8192 * 8192
    monkeypatch.setenv("FRMASK_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(FormatError, match=r"claims 53x37 pixels, more than the 1,000 .*\(at index 4\)"):
        check_pixels(cv2.imencode(".png", np.zeros((37, 53), np.uint8))[1].tobytes(), index=4)
    check_pixels(cv2.imencode(".png", np.zeros((20, 50), np.uint8))[1].tobytes())  # 1,000 pixels: allowed


def test_synth_bin_names_an_oversized_image(tmp_path):
    from frmask.synth.benchmark import synth_bin

    src = tmp_path / "x.bin"
    write_bin(src, BinBenchmark([_jpeg(0), png_claiming(60000, 60000)], np.array([True])))
    with pytest.raises(FormatError, match=r"claims 60000x60000 .*\(at index 1\)"):
        synth_bin(src, tmp_path / "y.bin", benchmark="lfw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


# --------------------------------------------------------------------------------------------- pack


@pytest.fixture
def identities(tmp_path):
    root = tmp_path / "ids"
    for k in range(3):
        (root / f"id{k}").mkdir(parents=True)
        for j in range(2):
            (root / f"id{k}" / f"{j}.jpg").write_bytes(_jpeg(10 * k + j))
    (root / "id1" / "1.jpg").write_bytes(b"broken")
    (root / "id2" / "2.png").write_bytes(png_claiming(60000, 60000))
    return root


def test_pack_lists_undecodable_images_and_goes_on(identities, tmp_path):
    from frmask.io.recordio import RecordReader, unpack
    from frmask.train.pack import pack_folder

    summary = pack_folder(identities, tmp_path / "train.rec", align="none")
    assert [p for p, _ in summary.failures] == ["id1/1.jpg", "id2/2.png"]
    assert "cannot decode image" in summary.failures[0][1] and "claims 60000x60000" in summary.failures[1][1]
    assert (summary.n_images, summary.n_identities) == (5, 3)
    with RecordReader(tmp_path / "train.rec") as reader:
        assert list(reader.keys) == list(range(1 + 5 + 3))
        head, _ = unpack(reader.read(0))
        assert head.flag == 2 and head.label.tolist() == [6.0, 9.0]
        ranges = [unpack(reader.read(6 + c))[0].label.tolist() for c in range(3)]
        assert ranges == [[1.0, 3.0], [3.0, 4.0], [4.0, 6.0]]
        labels = [float(unpack(reader.read(key))[0].label) for key in range(1, 6)]
        assert labels == [0.0, 0.0, 1.0, 2.0, 2.0]
        assert unpack(reader.read(3))[1] == (identities / "id1" / "0.jpg").read_bytes()
    from frmask.train.data import open_dataset

    assert open_dataset(tmp_path / "train.rec", mask=None).labels.tolist() == [0, 0, 1, 2, 2]


def test_pack_stop_on_error_and_the_cli(identities, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["pack", str(identities), "--out", str(tmp_path / "a.rec"), "--align", "none",
                             "--no-progress"])
    assert r.exit_code == 0 and "2 image(s) left out" in r.output and "id1/1.jpg: unreadable image" in r.output
    r = runner.invoke(main, ["pack", str(identities), "--out", str(tmp_path / "b.rec"), "--align", "none",
                             "--no-progress", "--stop-on-error"])
    assert r.exit_code == 1 and "1.jpg: cannot decode image" in r.output and "Traceback" not in r.output
    assert not list(tmp_path.glob("b.*")) and not list(tmp_path.glob(".b.*"))
    (identities / "id1" / "0.jpg").write_bytes(b"also broken")  # id1 left without any usable image
    r = runner.invoke(main, ["pack", str(identities), "--out", str(tmp_path / "c.rec"), "--align", "none",
                             "--no-progress"])
    assert r.exit_code == 1 and "id1: no usable image in this identity folder" in r.output
    assert not list(tmp_path.glob("c.*")) and not list(tmp_path.glob(".c.*"))


# --------------------------------------------------------------------------------- killed saves' temps


def test_checkpoint_save_removes_stale_temps_of_any_step(tmp_path):
    pytest.importorskip("torch")
    from frmask.train.checkpoint import checkpoint_dir, save_checkpoint

    folder = checkpoint_dir(tmp_path)
    folder.mkdir(parents=True)
    stale = folder / ".step_00000100.pt.k2j3h4g5.tmp"  # what kill -9 during the save of step 100 leaves
    keep = folder / ".notes.k2j3h4g5.tmp"  # not a checkpoint's temporary name
    for p in (stale, keep):
        p.write_bytes(b"x" * 1000)
        t = _temps._STARTED - 60
        os.utime(p, (t, t))
    save_checkpoint(tmp_path, 150, {"x": 1})
    assert sorted(p.name for p in folder.iterdir()) == [keep.name, "step_00000150.pt"]
