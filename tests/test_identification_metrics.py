"""1:N identification metrics (frmask.metrics.identification): a hand-computed case, and random score
matrices with ties forced by rounding, FTAs and unenrolled identities against brute-force loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from frmask.metrics.identification import (
    SearchResults,
    cmc,
    fnir,
    fnir_at_fpir,
    fnir_fpir_curve,
    fpir,
    identification_ci,
    identification_report,
    identity_scores,
    probe_results,
    rank1,
)

NAN = float("nan")


def hand_case():
    """3 identities (A has two templates), 4 mated probes (one FTA) and 2 non-mated ones."""
    gallery = np.array([0, 0, 1, 2])
    scores = np.array([[0.9, 0.5, 0.3, 0.2],    # mate A: A = 0.9, rank 1
                       [0.6, 0.7, 0.7, 0.1],    # mate B: A = max(0.6, 0.7) = 0.7 ties B: rank 2 (pessimistic)
                       [0.2, 0.1, 0.8, 0.5],    # mate C: B above: rank 2
                       [0.4, 0.6, 0.55, 0.1],   # non-mated: top 0.6
                       [0.3, 0.2, 0.35, 0.1],   # non-mated: top 0.35
                       [NAN, NAN, NAN, NAN]])   # mate A, failure to acquire: a miss
    mate = np.array([0, 1, 2, -1, -1, 0])
    return scores, gallery, mate


def test_hand_computed_case():
    scores, gallery, mate = hand_case()
    res = probe_results(scores, gallery, mate, subject=np.array([0, 1, 2, 3, 4, 0]))
    np.testing.assert_array_equal(res.rank[res.mated], [1, 2, 2, np.inf])
    np.testing.assert_array_equal(res.nonmated_top(), [0.6, 0.35])
    rank, mate_score = res.mated_arrays()
    np.testing.assert_array_equal(cmc(rank, 3), [0.25, 0.75, 0.75])
    assert rank1(rank) == 0.25
    assert fpir(res.nonmated_top(), 0.5) == 0.5 and fpir(res.nonmated_top(), 0.6) == 0.5
    assert fpir(res.nonmated_top(), 0.61) == 0.0
    assert fnir(rank, mate_score, 0.5) == 0.75 and fnir(rank, mate_score, 0.95) == 1.0
    half, tenth = fnir_at_fpir(rank, mate_score, res.nonmated_top(), (0.5, 0.1))
    # k = 1 false positive allowed of 2: v = 0.35, the threshold is the smallest score above it, 0.6
    assert (half.threshold, half.fpir, half.fnir, half.false_positives, half.resolved) == (0.6, 0.5, 0.75, 1, True)
    # 0.1 < 1/2: not resolved; the FPIR = 0 point above the top non-mated score 0.6 keeps the 0.9 mate
    assert (tenth.threshold, tenth.fpir, tenth.fnir, tenth.resolved) == (0.9, 0.0, 0.75, False)
    rep = identification_report(res, max_rank=3, targets=(0.5, 0.1))
    assert rep["n_mated"] == 4 and rep["n_nonmated"] == 2 and rep["n_fta_mated"] == 1
    assert rep["cmc"] == [0.25, 0.75, 0.75] and rep["fnir_at_fpir_unresolved"] == ["0.1"]
    assert rep["fnir_at_fpir"]["0.5"]["threshold"] == 0.6 and rep["fnir_at_fpir"]["0.5"]["fnir"] == 0.75


def test_ties_are_pessimistic_and_order_free():
    """A mate tied with a rival is at rank 2 whichever comes first; two rivals tied above it: rank 3."""
    for s, expected in (([0.5, 0.5, 0.1], 2), ([0.5, 0.1, 0.5], 2), ([0.5, 0.7, 0.7], 3), ([0.5, 0.4, 0.4], 1)):
        res = probe_results(np.array([s]), np.arange(3), np.array([0]))
        assert res.rank[0] == expected


def test_unenrolled_mate_and_fta_nonmated():
    """A mate whose identity has no template (-inf) is a miss; a non-mated FTA is never a false positive."""
    ids = identity_scores(np.array([[0.3, 0.2], [NAN, NAN], [0.9, 0.1]]), np.array([0, 0]), n_identities=2)
    assert np.isneginf(ids[0, 1]) and np.isnan(ids[1]).all()
    res = probe_results(np.array([[0.3, 0.2], [NAN, NAN], [0.9, 0.1]]), np.array([0, 0]), np.array([1, -1, 0]),
                        n_identities=2)
    assert res.rank[0] == np.inf and res.rank[2] == 1
    assert fpir(res.nonmated_top(), -10.0) == 0.0
    rep = identification_report(res, max_rank=2, targets=(0.5,))
    assert rep["n_mated_not_enrolled"] == 1 and rep["n_fta_nonmated"] == 1 and rep["fnir_at_fpir_unresolved"] == ["0.5"]


# ------------------------------------------------------------------------------------------- brute force

def brute(scores, gallery, mate, max_rank, targets):
    """Loops over probes, identities and every observed threshold: the definitions of the module docstring."""
    n_ids = int(gallery.max()) + 1 + 1  # one identity without any template
    ranks, mate_scores, tops = [], [], []
    for p in range(scores.shape[0]):
        row = [max([scores[p, j] for j in range(len(gallery)) if gallery[j] == i], default=-math.inf)
               for i in range(n_ids)]
        fta = any(math.isnan(v) for v in row)
        if mate[p] < 0:
            tops.append(NAN if fta else max(row))
            continue
        ms = NAN if fta else row[mate[p]]
        mate_scores.append(ms)
        if fta or ms == -math.inf:
            ranks.append(math.inf)
        else:
            ranks.append(1 + sum(1 for i in range(n_ids) if i != mate[p] and row[i] >= ms))
    n_m, n_nm = len(ranks), len(tops)
    curve = [sum(r <= k for r in ranks) / n_m for k in range(1, max_rank + 1)]

    def fpir_at(t):
        return sum(1 for v in tops if v >= t) / n_nm if n_nm else NAN

    def fnir_at(t):
        return sum(1 for r, s in zip(ranks, mate_scores) if not (r == 1 and s >= t)) / n_m

    observed = sorted({s for r, s in zip(ranks, mate_scores) if r == 1} | {v for v in tops if not math.isnan(v)})
    candidates = observed + [float(np.nextafter(observed[-1], math.inf))]
    points = {}
    for target in targets if n_nm else ():
        feasible = [t for t in candidates if fpir_at(t) <= target]
        t = min(feasible)
        assert fnir_at(t) == min(fnir_at(u) for u in feasible)  # the smallest feasible threshold is the best
        points[target] = (t, fpir_at(t), fnir_at(t), target * n_nm >= 1)
    points.update({target: (NAN, NAN, NAN, False) for target in targets if not n_nm})
    return ranks, mate_scores, tops, curve, points, fpir_at, fnir_at


@pytest.mark.parametrize("seed", range(12))
def test_random_matrices_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_ids = int(rng.integers(3, 9))
    per = rng.integers(1, 4, n_ids)
    gallery = np.repeat(np.arange(n_ids), per)
    n_probes = int(rng.integers(20, 60))
    digits = int(rng.integers(1, 3))  # 1 decimal: many ties; 2: some
    scores = np.round(rng.uniform(-1, 1, (n_probes, gallery.size)), digits)
    scores[rng.random(n_probes) < 0.08] = np.nan
    mate = rng.integers(-1, n_ids + 1, n_probes)  # -1: non-mated; n_ids: the identity with no template
    mate[:2] = [0, -1]
    max_rank, targets = 6, (0.05, 0.1, 0.25, 0.5)
    ranks, _, tops, curve, points, fpir_at, fnir_at = brute(scores, gallery, mate, max_rank, targets)
    res = probe_results(scores, gallery, mate, n_identities=n_ids + 1)
    rank, mate_score = res.mated_arrays()
    np.testing.assert_array_equal(rank, ranks)
    np.testing.assert_array_equal(res.nonmated_top(), tops)
    np.testing.assert_array_equal(cmc(rank, max_rank), curve)
    for t in (-0.5, 0.0, 0.3, 0.7):
        assert fpir(res.nonmated_top(), t) == fpir_at(t) and fnir(rank, mate_score, t) == fnir_at(t)
    for p in fnir_at_fpir(rank, mate_score, res.nonmated_top(), targets):
        t, fp, fn, resolved = points[p.target]
        assert (p.threshold, p.fpir, p.fnir, p.resolved) == (t, fp, fn, resolved)
    thresholds, fp_curve, fn_curve = fnir_fpir_curve(rank, mate_score, res.nonmated_top())
    assert [fpir_at(t) for t in thresholds] == list(fp_curve) and [fnir_at(t) for t in thresholds] == list(fn_curve)
    # blocks of probes scored apart and concatenated give the same results
    parts = [probe_results(scores[a:a + 7], gallery, mate[a:a + 7], n_identities=n_ids + 1)
             for a in range(0, n_probes, 7)]
    merged = SearchResults.concat(parts)
    for field in ("subject", "mate", "mate_score", "rank", "top_score"):
        np.testing.assert_array_equal(getattr(merged, field), getattr(res, field))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    scores = np.round(rng.uniform(-1, 1, (80, 10)), 2)
    mate = np.where(np.arange(80) < 60, np.arange(80) % 10, -1)
    subject = np.where(mate >= 0, mate, 10 + np.arange(80) % 7)
    res = probe_results(scores, np.arange(10), mate, subject=subject)
    a = identification_ci(res, n_boot=200, seed=3, max_rank=5, targets=(0.1, 0.01))
    assert a == identification_ci(res, n_boot=200, seed=3, max_rank=5, targets=(0.1, 0.01))
    est = identification_report(res, max_rank=5, targets=(0.1,))
    assert a["rank1"][0] <= est["rank1"] <= a["rank1"][1] and len(a["cmc"]) == 5
    assert set(a["fnir_at_fpir"]) == {"0.1"}  # 0.01 < 1/20 is never resolved
    assert a != identification_ci(res, n_boot=200, seed=4, max_rank=5, targets=(0.1,))


def test_bad_input():
    with pytest.raises(ValueError, match="no mated search"):
        cmc(np.array([]))
    with pytest.raises(ValueError, match="closed-set"):
        fpir(np.array([]), 0.5)
    with pytest.raises(ValueError, match="outside the 2 gallery identities"):
        probe_results(np.zeros((1, 2)), np.array([0, 1]), np.array([2]))
    with pytest.raises(ValueError, match="target FPIR"):
        fnir_at_fpir(np.array([1.0]), np.array([0.5]), np.array([0.2]), (1.5,))


def test_plots_draw_the_exact_curves(tmp_path):
    from frmask.metrics.identification_plots import plot_cmc, plot_fnir_fpir

    scores, gallery, mate = hand_case()
    res = probe_results(scores, gallery, mate)
    rank, mate_score = res.mated_arrays()
    fig = plot_cmc([("m", cmc(rank, 3))], tmp_path / "cmc.png")
    (line,) = [a for a in fig.axes[0].lines if a.get_gid() == "cmc-m"]
    np.testing.assert_array_equal(line.get_ydata(), [25, 75, 75])
    curve = fnir_fpir_curve(rank, mate_score, res.nonmated_top())
    points = fnir_at_fpir(rank, mate_score, res.nonmated_top(), (0.5,))
    fig = plot_fnir_fpir([("m", curve, points, 2)], tmp_path / "fnir_fpir.png")
    (line,) = [a for a in fig.axes[0].lines if a.get_gid() == "fnir-fpir-m"]
    np.testing.assert_array_equal(line.get_xdata(), np.maximum(curve[1], 0.25))  # FPIR 0 drawn at 0.5 / N
    np.testing.assert_array_equal(line.get_ydata(), 100 * curve[2])
    assert (tmp_path / "cmc.png").stat().st_size > 1000 and (tmp_path / "fnir_fpir.png").stat().st_size > 1000
