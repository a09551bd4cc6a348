"""The identity-folder protocol: listing, exhaustive pair counts (checked by brute force), masked probes as
`frmask synth --images` writes them, bad input, and scoring a small tree through `score_protocol`."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.protocols import load_protocol
from frmask.protocols.folder import FolderProtocol, list_identities

ORL = Path(__file__).resolve().parents[2] / "shared" / "data" / "orl"
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason="../shared/data/orl is absent")


def make_tree(root: Path, counts: dict[str, int], size: int = 112) -> Path:
    """Random aligned-size PNGs, ``counts[name]`` of them per identity, plus a stray text file per folder."""
    rng = np.random.default_rng(7)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("ignored")
        for k in range(n):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"{k:02d}.png"), img)
    (root / "top-level.png").write_bytes((root / next(iter(counts)) / "00.png").read_bytes())  # ignored
    return root


def brute_pairs(labels, ordered):
    idx = range(len(labels))
    pairs = itertools.permutations(idx, 2) if ordered else itertools.combinations(idx, 2)
    return [(i, j, labels[i] == labels[j]) for i, j in pairs]


@pytest.mark.parametrize("mask", ["none", "masked-vs-masked", "masked-vs-nonmasked"])
def test_pairs_match_brute_force(tmp_path, mask):
    make_tree(tmp_path / "ids", {"b": 3, "a": 2, "c": 1})
    p = load_protocol("folder", tmp_path / "ids", mask=mask)
    assert isinstance(p, FolderProtocol)
    assert p.identities == ["a", "b", "c"]  # sorted by folder name; .txt and top-level files ignored
    assert [e.key.split("#")[0] for e in p.images[:6]] == ["a/00.png", "a/01.png", "b/00.png", "b/01.png",
                                                          "b/02.png", "c/00.png"]
    labels = list(p.identity[p.reference])
    expected = brute_pairs(labels, mask == "masked-vs-nonmasked")
    got = list(zip((p.pair_a % 6).tolist(), (p.pair_b % 6).tolist(), p.genuine.tolist()))
    assert sorted(got) == sorted(expected)
    assert p.n_pairs == len(expected) and p.n_genuine_pairs == sum(g for _, _, g in expected)
    assert (p.identity[p.pair_b] == p.identity[p.pair_a]).tolist() == p.genuine.tolist()
    assert set(p.pair_b.tolist()) <= set(p.probe.tolist()) and set(p.pair_a.tolist()) <= set(p.reference.tolist())
    assert list(p.subjects_a[:2]) == ["a", "a"]
    assert p.scenario_names() == ["all"]
    # pair_index numbers the pair (reference position i, probe position j) as the listing orders it
    i, j = np.array(expected, dtype=object)[:, :2].astype(np.int64).T
    listed = {(a, b): k for k, (a, b) in enumerate(zip((p.pair_a % 6).tolist(), (p.pair_b % 6).tolist()))}
    assert p.pair_index(i, j).tolist() == [listed[(a, b)] for a, b in zip(i.tolist(), j.tolist())]


def test_bad_trees(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_protocol("folder", tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no identity subfolders"):
        load_protocol("folder", tmp_path / "flat")
    root = make_tree(tmp_path / "ids", {"a": 2})
    (root / "empty1").mkdir()
    (root / "empty2").mkdir()
    (root / "empty2" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"2 identity folder\(s\) hold no image.*empty1, empty2"):
        list_identities(root)
    with pytest.raises(ValueError, match="unknown mask mode"):
        load_protocol("folder", tmp_path / "ids", mask="legacy-maskinv")


def test_lists_pairs_lazily(tmp_path):
    p = load_protocol("folder", make_tree(tmp_path / "ids", {"a": 2, "b": 2}))
    assert "_pairs" not in vars(p)  # nothing listed until asked
    assert p.n_pairs == 6 and p.n_genuine_pairs == 2
    assert "_pairs" not in vars(p)


@needs_orl
def test_masked_probes_are_the_synth_folder_crops(tmp_path):
    """A probe's bytes are exactly the file `frmask synth --images` writes for that image (same seed)."""
    from frmask.synth.benchmark import MaskSpec
    from frmask.synth.folder import synth_folder

    src = tmp_path / "orl"
    for who in ("s1", "s2"):
        (src / who).mkdir(parents=True)
        for k in (1, 2):
            shutil.copy(ORL / who / f"{k}.pgm", src / who / f"{k}.pgm")
    spec = MaskSpec(mask_type="n95")
    p = load_protocol("folder", src, mask="masked-vs-nonmasked", spec=spec, seed=3)
    synth_folder(src, tmp_path / "out", spec=spec, seed=3, landmarks="5")
    for k, i in enumerate(p.probe):
        rel = p.images[i].key.split("#")[0]
        written = tmp_path / "out" / Path(rel).with_suffix(".png")
        data = p.image_bytes(int(i))
        if written.is_file():
            assert data == written.read_bytes()
        else:
            assert data.startswith(b"frmask-fta:")
    for i in p.reference:  # references are the files as they are
        assert p.image_bytes(int(i)) == Path(p.images[i].path).read_bytes()


def test_scores_through_score_protocol(tmp_path):
    """A small tree goes through the ordinary scorer; scores are the cosines of the embeddings."""
    onnx = pytest.importorskip("onnx")  # noqa: F841
    from test_score import means_model

    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.scoring import score_protocol

    p = load_protocol("folder", make_tree(tmp_path / "ids", {"a": 2, "b": 3}))
    model = tmp_path / "means.onnx"
    model.write_bytes(means_model())
    res = score_protocol(OnnxEmbedder(str(model)), p)
    assert res.reports["all"].n_genuine == 1 + 3 and res.reports["all"].n_impostor == 6
    from frmask.embed.pipeline import embed_protocol

    emb = embed_protocol(p, OnnxEmbedder(str(model))).embeddings.astype(np.float64)
    brute = np.array([emb[i] @ emb[j] for i, j in zip(p.pair_a, p.pair_b)])
    np.testing.assert_allclose(res.scores, brute, rtol=0, atol=1e-12)
