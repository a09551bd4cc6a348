"""Pair selection (frmask.protocols.pair_selection) against brute force, and ``frmask pack-bin``: a .bin built
from an identity folder of aligned faces, read back and scored (the README's lfw.bin from one's own faces)."""

from __future__ import annotations

import itertools
import json
import pickle

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from forged_images import random_identity_folders
from frmask.cli import main
from frmask.io.insightface_bin import read_bin
from frmask.protocols.pair_selection import count_pairs, select_pairs


def brute_pairs(labels):
    """Every unordered pair (a < b) of distinct images, split into genuine and impostor."""
    pairs = list(itertools.combinations(range(len(labels)), 2))
    return ({p for p in pairs if labels[p[0]] == labels[p[1]]}, {p for p in pairs if labels[p[0]] != labels[p[1]]})


LABELS = np.array([3, 0, 3, 1, 0, 3, 2, 1, 3, 0, 0, 2, 5])  # unsorted, one identity with a single image


def test_pairs_are_distinct_balanced_folded_and_deterministic():
    genuine, impostor = brute_pairs(LABELS)
    assert count_pairs(LABELS) == (len(genuine), len(impostor)) == (6 + 6 + 1 + 1, 78 - 14)
    p = select_pairs(LABELS, 12, folds=3, seed=5)
    got = list(zip(p.a.tolist(), p.b.tolist()))
    assert len(set(got)) == 12 and all(a < b for a, b in got)
    # each fold: 2 genuine pairs, then 2 impostor pairs
    assert p.genuine.tolist() == [True, True, False, False] * 3 and p.folds == 3
    assert all((pair in genuine) == same for pair, same in zip(got, p.genuine))
    assert all(pair in (genuine if same else impostor) for pair, same in zip(got, p.genuine))
    again = select_pairs(LABELS, 12, folds=3, seed=5)
    assert np.array_equal(again.a, p.a) and np.array_equal(again.b, p.b)
    other = select_pairs(LABELS, 12, folds=3, seed=6)
    assert list(zip(other.a, other.b)) != got


def test_every_pair_reachable_exactly_once():
    """Asking for all the genuine pairs gives each exactly once, and the impostors are a distinct sample."""
    genuine, impostor = brute_pairs(LABELS)
    p = select_pairs(LABELS, 2 * len(genuine), folds=1, seed=0)
    got = list(zip(p.a.tolist(), p.b.tolist()))
    assert sorted(got[:len(genuine)]) == sorted(genuine)
    assert len(set(got[len(genuine):])) == len(genuine) and set(got[len(genuine):]) <= impostor


def test_selection_is_uniform_over_pairs():
    """Over many seeds each genuine pair of a lopsided set (identity sizes 4, 2) is drawn about equally often."""
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    genuine, _ = brute_pairs(labels)  # 6 + 1 = 7 pairs
    counts = dict.fromkeys(genuine, 0)
    for seed in range(700):
        p = select_pairs(labels, 2, folds=1, seed=seed)
        counts[(int(p.a[0]), int(p.b[0]))] += 1
    assert all(60 <= c <= 140 for c in counts.values()), counts  # expected 100 each


def test_disjoint_folds_keep_each_identity_in_one_fold():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(30), rng.integers(1, 7, 30)))
    genuine, impostor = brute_pairs(labels)
    p = select_pairs(labels, 60, folds=5, seed=2, disjoint=True)
    got = list(zip(p.a.tolist(), p.b.tolist()))
    assert len(set(got)) == 60 and all(a < b for a, b in got)
    assert p.genuine.tolist() == ([True] * 6 + [False] * 6) * 5
    assert all(pair in (genuine if same else impostor) for pair, same in zip(got, p.genuine))
    fold_of = {}
    for i, (a, b) in enumerate(got):
        for identity in (labels[a], labels[b]):
            assert fold_of.setdefault(identity, i // 12) == i // 12, f"identity {identity} in two folds"
    again = select_pairs(labels, 60, folds=5, seed=2, disjoint=True)
    assert np.array_equal(again.a, p.a) and np.array_equal(again.b, p.b)
    with pytest.raises(ValueError, match=r"identity-disjoint fold \d+ of 10 \(\d+ images of \d+ identities\)"):
        select_pairs(LABELS, 20, folds=10, disjoint=True)  # 5 identities cannot fill 10 folds


def test_selection_errors_name_the_counts():
    with pytest.raises(ValueError, match=r"need 20 distinct genuine pairs, but 13 images of 5 identities \(4 with "
                                         r"2 or more images\) give only 14: ask for at most 20 pairs"):
        select_pairs(LABELS, 40, folds=10)
    with pytest.raises(ValueError, match="multiple of 2 x 10 folds = 20"):
        select_pairs(LABELS, 30)
    with pytest.raises(ValueError, match=r"impostor pairs.*give only 0 \(impostors need 2 or more identities\)"):
        select_pairs([1, 1, 1], 2, folds=1)
    with pytest.raises(ValueError, match="folds"):
        select_pairs(LABELS, 4, folds=0)


# ------------------------------------------------------------------------------------------- pack-bin


@pytest.fixture
def faces(tmp_path):
    root = tmp_path / "faces"
    random_identity_folders(root, identities=4, per_identity=3, seed=1)  # 12 genuine pairs
    return root


def test_pack_bin_round_trip_and_score(faces, tmp_path):
    from test_score import means_model

    out = tmp_path / "my.bin"
    runner = CliRunner()
    res = runner.invoke(main, ["pack-bin", str(faces), "--pairs", "20", "--seed", "3", "--out", str(out),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "12 images of 4 identities give 12 genuine and 54 impostor pairs" in res.output
    assert "20 pairs (10 genuine) in 10 folds, seed 3; 0 image(s) re-encoded" in res.output
    bench = read_bin(out)
    files = sorted(p for p in faces.rglob("*.png"))
    by_bytes = {p.read_bytes(): p for p in files}
    assert bench.n_pairs == 20 and bench.issame.tolist() == [True, False] * 10
    pairs = set()
    for i in range(20):
        a, b = by_bytes[bench.images[2 * i]], by_bytes[bench.images[2 * i + 1]]  # stored byte for byte
        assert (a.parent == b.parent) == bench.issame[i] and a != b
        pairs.add((a, b))
    assert len(pairs) == 20
    with open(out, "rb") as f:  # as insightface loads it: a plain pickle of (list of bytes, list of bool)
        bins, issame = pickle.load(f, encoding="bytes")
    assert bins == bench.images and issame == bench.issame.tolist() and type(issame[0]) is bool
    assert out.stat().st_size < sum(len(b) for b in bins)  # an image in several pairs is stored once
    second = tmp_path / "again.bin"
    assert runner.invoke(main, ["pack-bin", str(faces), "--pairs", "20", "--seed", "3", "--out", str(second),
                                "--no-progress"]).exit_code == 0
    assert second.read_bytes() == out.read_bytes()
    import frmask.io.bin_pack as bin_pack

    with pytest.MonkeyPatch.context() as mp:  # a folder larger than the bytes held: the chosen files read again
        mp.setattr(bin_pack, "KEEP_BYTES", 3 * faces.joinpath("id0", "0.png").stat().st_size)
        bin_pack.pack_bin(faces, tmp_path / "reread.bin", n_pairs=20, seed=3)
    assert (tmp_path / "reread.bin").read_bytes() == out.read_bytes()

    res = runner.invoke(main, ["pack-bin", str(faces), "--pairs", "8", "--folds", "2", "--disjoint", "--out",
                               str(tmp_path / "disjoint.bin"), "--no-progress"])
    assert res.exit_code == 0 and "8 pairs (4 genuine) in 2 identity-disjoint folds" in res.output, res.output
    halves = [{by_bytes[im].parent for im in read_bin(tmp_path / "disjoint.bin").images[k:k + 8]} for k in (0, 8)]
    assert halves[0].isdisjoint(halves[1])

    (tmp_path / "means.onnx").write_bytes(means_model())
    res = runner.invoke(main, ["score", str(tmp_path / "means.onnx"), "--protocol", "lfw", "--data", str(out),
                               "--out", str(tmp_path / "run"), "--no-cache", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    # each image is embedded once, however many pairs it is in
    assert f"40 images (0 from the cache, {len(set(bench.images))} embedded" in res.output
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())["all"]
    assert (report["n_genuine"], report["n_impostor"]) == (10, 10) and 0 <= report["kfold_accuracy"] <= 1


def test_pack_bin_bad_input(faces, tmp_path):
    runner = CliRunner()
    out = tmp_path / "x.bin"
    res = runner.invoke(main, ["pack-bin", str(faces), "--pairs", "40", "--out", str(out), "--no-progress"])
    assert res.exit_code == 1 and "need 20 distinct genuine pairs" in res.output and "give only 12" in res.output
    assert not out.exists()
    # an undecodable image is left out and listed; a BMP is re-encoded as PNG with the same pixels
    (faces / "id0" / "broken.png").write_bytes(b"not an image")
    bmp = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    (faces / "id4").mkdir()
    cv2.imwrite(str(faces / "id4" / "0.bmp"), bmp)
    cv2.imwrite(str(faces / "id4" / "1.bmp"), bmp[::-1])
    res = runner.invoke(main, ["pack-bin", str(faces), "--pairs", "26", "--folds", "1", "--out", str(out),
                               "--no-progress"])  # all 13 genuine pairs, so the BMP pair too
    assert res.exit_code == 0, res.output
    assert "14 images of 5 identities give 13 genuine" in res.output and "1 image(s) left out" in res.output
    assert "; 2 image(s) re-encoded as PNG" in res.output
    assert "id0/broken.png: unreadable image" in res.output
    bench = read_bin(out)
    assert all(im[:8] == b"\x89PNG\r\n\x1a\n" for im in bench.images)
    decoded = [bench.decode(k) for k in range(len(bench.images))]
    for flipped in (bmp, bmp[::-1]):  # cv2 wrote BGR arrays: the files' RGB pixels are reversed in the last axis
        assert any(np.array_equal(d, flipped[..., ::-1]) for d in decoded)
    # an image that is not an aligned 112x112 crop is an error naming it, and nothing is written
    cv2.imwrite(str(faces / "id1" / "big.png"), np.zeros((160, 160, 3), np.uint8))
    res = runner.invoke(main, ["pack-bin", str(faces), "--pairs", "20", "--out", str(tmp_path / "y.bin")])
    assert res.exit_code == 1 and "big.png: image is 160x160" in res.output and not (tmp_path / "y.bin").exists()
