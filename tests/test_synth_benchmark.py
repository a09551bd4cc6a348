"""Masked .bin benchmarks: modes, determinism across workers, sidecars, bad input, and the CLI."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from frmask.cli import main
from frmask.io.insightface_bin import BinBenchmark, decode_image, read_bin, write_bin
from frmask.synth.benchmark import MaskSpec, masked_indices, synth_bin

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _face_like(k: int) -> bytes:
    """A deterministic 112x112 JPEG: a smooth skin-toned gradient with some texture."""
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:112, 0:112]
    base = np.stack([150 + 40 * np.sin(x / 17 + k), 110 + 30 * np.cos(y / 13), 90 + 20 * np.sin((x + y) / 23)], -1)
    img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


@pytest.fixture(scope="module")
def small_bin(tmp_path_factory):
    path = tmp_path_factory.mktemp("bin") / "tiny.bin"
    imgs = [_face_like(k) for k in range(40)]
    write_bin(path, BinBenchmark(imgs, np.array([k % 2 == 0 for k in range(20)])))
    return path


def test_masked_indices():
    assert masked_indices(6, "none").tolist() == [False] * 6
    assert masked_indices(6, "masked-vs-masked").all()
    assert masked_indices(6, "masked-vs-nonmasked").tolist() == [False, True] * 3
    assert masked_indices(6, "legacy-maskinv").tolist() == [False] * 3 + [True] * 3
    with pytest.raises(ValueError, match="unknown mode"):
        masked_indices(6, "half")


@pytest.mark.parametrize("mode", ["masked-vs-nonmasked", "masked-vs-masked", "none"])
def test_modes_change_exactly_the_right_images(small_bin, tmp_path, mode):
    out = tmp_path / "out.bin"
    summary = synth_bin(small_bin, out, benchmark="lfw", mode=mode, seed=3)
    before, after = read_bin(small_bin), read_bin(out)
    assert np.array_equal(before.issame, after.issame)
    changed = [a != b for a, b in zip(before.images, after.images)]
    assert changed == masked_indices(40, mode).tolist()
    assert summary.n_masked == sum(changed)
    if mode == "masked-vs-nonmasked":  # exactly one image of every pair is masked
        assert all(changed[2 * i] + changed[2 * i + 1] == 1 for i in range(20))
    sidecar = (tmp_path / "out.bin.masks.csv").read_text().splitlines()
    assert sidecar[0] == "index,masked,mask_type,r,g,b,jitter,coverage,color" and len(sidecar) == 41
    assert [line.split(",")[1] == "1" for line in sidecar[1:]] == changed
    assert (tmp_path / "out.bin.preview.png").read_bytes()[:4] == b"\x89PNG"


def test_deterministic_across_workers_and_seeds(small_bin, tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    synth_bin(small_bin, a, benchmark="lfw", seed=7, workers=1, chunk=5)
    synth_bin(small_bin, b, benchmark="lfw", seed=7, workers=2, chunk=16)
    synth_bin(small_bin, c, benchmark="lfw", seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a.bin.masks.csv").read_text() == (tmp_path / "b.bin.masks.csv").read_text()
    assert a.read_bytes() != c.read_bytes()
    # the same image index gets the same colour whatever else is in the set (cfp_fp would differ: the
    # benchmark name is part of the seed)
    d = tmp_path / "d.bin"
    synth_bin(small_bin, d, benchmark="cfp_fp", seed=7)
    assert d.read_bytes() != a.read_bytes()


def test_mask_lands_on_the_lower_face(small_bin, tmp_path):
    out = tmp_path / "out.bin"
    synth_bin(small_bin, out, benchmark="lfw", spec=MaskSpec(colors="uniform"), seed=1)
    before = decode_image(read_bin(small_bin).images[0]).astype(int)
    after = decode_image(read_bin(out).images[0]).astype(int)
    diff = np.abs(after - before).sum(-1) > 40
    assert diff[90:100, 45:67].mean() > 0.9  # mouth region covered
    assert diff[45:58, 30:80].mean() < 0.02  # eye band untouched (JPEG noise aside)


def test_jitter_and_colour_file(small_bin, tmp_path):
    colors = tmp_path / "colors.txt"
    colors.write_text("".join(f"{i},[{i} 100 200]\n" for i in range(40)))
    out = tmp_path / "j.bin"
    synth_bin(small_bin, out, benchmark="lfw", spec=MaskSpec(colors=str(colors), jitter=3.0), seed=0)
    rows = [line.split(",") for line in (tmp_path / "j.bin.masks.csv").read_text().splitlines()[1:]]
    assert [(int(r[3]), int(r[4]), int(r[5])) for r in rows] == [(i, 100, 200) for i in range(40)]
    shifts = np.array([list(map(float, r[6].split())) for r in rows])
    assert shifts.shape == (40, 10) and np.abs(shifts).max() <= 3.0 and np.abs(shifts).max() > 1.0


def test_bad_input_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x80\x04not a pickle")
    out = tmp_path / "out.bin"
    with pytest.raises(ValueError, match="bad.bin"):
        synth_bin(bad, out, benchmark="lfw")
    wrong_size = tmp_path / "big.bin"
    img = cv2.imencode(".jpg", np.zeros((100, 90, 3), np.uint8))[1].tobytes()
    write_bin(wrong_size, BinBenchmark([img, img], np.array([True])))
    with pytest.raises(ValueError, match="image 0 is 90x100"):
        synth_bin(wrong_size, out, benchmark="lfw")
    with pytest.raises(ValueError, match="unknown benchmark"):
        synth_bin(wrong_size, out, benchmark="ijbc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin", "big.bin"]


def test_cli_synth(small_bin, tmp_path):
    out = tmp_path / "mm.bin"
    res = CliRunner().invoke(main, ["synth", "--benchmark", "lfw", "--data", str(small_bin), "--out", str(out),
                                    "--mode", "masked-vs-nonmasked", "--mask-type", "kn95", "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert "20 of 40 images masked" in res.output and out.is_file()
    res = CliRunner().invoke(main, ["synth", "--benchmark", "nope", "--data", str(small_bin), "--out", str(out)])
    assert res.exit_code == 1 and "unknown benchmark 'nope'" in res.output


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_synth_workers_auto_and_byte_identical(small_bin, tmp_path, monkeypatch):
    from frmask._cores import available_cores, resolve_workers

    runs = {}
    for workers in ("1", "2", None):  # None: the default, auto
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        args = ["synth", "--benchmark", "lfw", "--data", str(small_bin), "--out", str(folder / "m.bin"),
                "--mask-type", "cloth", "--jitter", "2", "--seed", "3"]
        res = CliRunner().invoke(main, args + (["--workers", workers] if workers else []))
        assert res.exit_code == 0, res.output
        runs[workers] = _files(folder)
    assert runs["1"] == runs["2"] == runs[None] and set(runs["1"]) == {"m.bin", "m.bin.masks.csv", "m.bin.preview.png"}
    import os

    assert resolve_workers("auto") == available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity")
    assert available_cores() == max(1, os.cpu_count() or 1)  # the fallback
    res = CliRunner().invoke(main, ["synth", "--benchmark", "lfw", "--data", str(small_bin), "--out",
                                    str(tmp_path / "x.bin"), "--workers", "0"])
    assert res.exit_code == 2 and "workers must be 'auto' or a positive integer, got 0" in res.output
    assert not (tmp_path / "x.bin").exists()


def test_legacy_maskinv_on_bin(small_bin, tmp_path):
    template = SHARED / "templates" / "maskinv_mask_img.png"
    if not template.is_file():
        pytest.skip(f"MaskInv template not found at {template}")
    out = tmp_path / "legacy.bin"
    synth_bin(small_bin, out, benchmark="lfw", mode="legacy-maskinv",
              spec=MaskSpec(template=str(template), legacy="maskinv"), seed=0)
    changed = [a != b for a, b in zip(read_bin(small_bin).images, read_bin(out).images)]
    assert changed == [False] * 20 + [True] * 20


def test_coverage_and_named_colour_variants(small_bin, tmp_path):
    """--coverage and --color: every masked image gets exactly that variant, and the sidecar says so."""
    from frmask.synth.colors import color_names, named_color

    assert {"light-blue", "white", "black", "grey", "red", "green"} <= set(color_names())
    outs = {}
    for coverage in ("low", "high"):
        out = tmp_path / f"{coverage}.bin"
        synth_bin(small_bin, out, benchmark="lfw", mode="masked-vs-nonmasked", seed=0,
                  spec=MaskSpec(mask_type="n95", coverage=coverage, color="black"))
        outs[coverage] = read_bin(out)
        rows = [line.split(",") for line in (tmp_path / f"{coverage}.bin.masks.csv").read_text().splitlines()[1:]]
        masked = [r for r in rows if r[1] == "1"]
        assert len(masked) == 20
        assert all(r[2] == "n95" and r[7] == coverage and r[8] == "black" for r in masked)
        assert all(tuple(map(int, r[3:6])) == tuple(named_color("black")) for r in masked)
        # Preview: originals, then the low, medium and high rows.
        preview = cv2.imdecode(np.frombuffer((tmp_path / f"{coverage}.bin.preview.png").read_bytes(), np.uint8), 1)
        assert preview.shape[0] == 4 * 112
    default = tmp_path / "default.bin"
    synth_bin(small_bin, default, benchmark="lfw", mode="masked-vs-nonmasked", seed=0,
              spec=MaskSpec(mask_type="n95", color="black"))
    assert read_bin(default).images == outs["high"].images  # high is the default
    low, high = (decode_image(outs[c].images[1]).astype(int) for c in ("low", "high"))
    nose = high[60:68, 50:62] - low[60:68, 50:62]  # the bridge: masked (black) at high, skin at low
    assert np.abs(nose).mean() > 30 and np.abs(high[95:100, 40:70] - low[95:100, 40:70]).mean() < 10


def test_variant_bad_input(small_bin, tmp_path):
    runner = CliRunner()
    out = tmp_path / "x.bin"
    res = runner.invoke(main, ["synth", "--benchmark", "lfw", "--data", str(small_bin), "--out", str(out),
                               "--color", "mauve"])
    assert res.exit_code == 1 and "unknown colour 'mauve'" in res.output and "light-blue" in res.output
    template = SHARED / "templates" / "maskinv_mask_img.png"
    res = runner.invoke(main, ["synth", "--benchmark", "lfw", "--data", str(small_bin), "--out", str(out),
                               "--template", str(template), "--coverage", "low"])
    assert res.exit_code == 1 and "built-in masks only" in res.output
    assert not out.exists()
