"""The block engine (frmask.exhaustive) on random embeddings: every pair once, the same figures as the
explicit pair path (every mask mode, failures to acquire, ties), exact float32 binning, and a result that
does not depend on how the block plan is split between processes."""

from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pytest

from frmask.exhaustive import (Block, block_edges, comparison_set, declared_targets, merge_parts, plan_blocks,
                               run_blocks, score_embeddings)
from frmask.exhaustive_report import block_report, kept_scores
from frmask.exhaustive_stats import BlockStatistics
from frmask.metrics import ScoreAccumulator, verification_report


def unit(rng, n, d=8, distinct=None):
    """n random unit float32 vectors; with ``distinct``, drawn from that many vectors (so scores tie)."""
    base = rng.standard_normal((distinct or n, d)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base if distinct is None else base[rng.integers(0, distinct, n)]


def make_set(mode, rng, n=70, ids=9, ties=False, fta=()):
    """(embeddings, identity, reference, probe, ordered) of one of the three folder mask modes."""
    identity = np.sort(rng.integers(0, ids, n))
    e = unit(rng, n, distinct=12 if ties else None)
    if mode != "masked-vs-nonmasked":
        e = e.copy()
        e[list(fta)] = np.nan
        return e, identity, None, None, False
    masked = unit(rng, n, distinct=12 if ties else None)
    emb = np.concatenate([e, masked])
    for k in fta:  # a failure on the reference side and another on the probe side
        emb[k] = np.nan
        emb[n + (k + 3) % n] = np.nan
    return emb, np.concatenate([identity, identity]), np.arange(n), np.arange(n, 2 * n), True


def explicit(emb, identity, reference, probe, ordered):
    """Every pair by brute force: (i, j, genuine, float64 score) in protocol order."""
    n = len(identity) if reference is None else len(reference)
    ref = np.arange(n) if reference is None else reference
    prb = ref if probe is None else probe
    pairs = itertools.permutations(range(n), 2) if ordered else itertools.combinations(range(n), 2)
    i, j = np.array(list(pairs)).T
    a, b = emb[ref[i]].astype(np.float64), emb[prb[j]].astype(np.float64)
    return i, j, identity[ref[i]] == identity[prb[j]], np.einsum("ij,ij->i", a, b)


MODES = ["none", "masked-vs-masked", "masked-vs-nonmasked"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("fta", ["reject", "exclude"])
def test_engine_lists_every_pair_once_and_matches_the_pair_path(mode, ties, fta):
    rng = np.random.default_rng(11)
    emb, identity, ref, prb, ordered = make_set(mode, rng, ties=ties, fta=(4, 30))
    cs = comparison_set(emb, identity, reference=ref, probe=prb, ordered=ordered, fta=fta, block=16)
    i, j, g, s = explicit(emb, identity, ref, prb, ordered)
    lost = np.isnan(s)
    assert (cs.genuine_pairs, cs.impostor_pairs) == (int(g.sum()), int((~g).sum()))
    assert (cs.fta_genuine, cs.fta_impostor) == (int((g & lost).sum()), int((~g & lost).sum()))
    full = score_embeddings(cs, keep_impostors=None, progress=False)
    # the kept pairs are exactly the acquired pairs, with their labels and scores
    for kept, label in ((full.genuine, True), (full.impostor, False)):
        want = np.flatnonzero((g == label) & ~lost)
        assert np.array_equal(kept.i, i[want]) and np.array_equal(kept.j, j[want])
        np.testing.assert_allclose(kept.score, s[want], atol=2e-6)
    # the accumulator's figures equal verification_report on the same (float32) scores
    gs, im = kept_scores(full, cs)
    ref_rep = verification_report(gs, im, fta=fta).to_dict()
    acc = full.accumulator
    for t, key in ((0.01, "fmr100"), (0.001, "fmr1000"), (0.002, "tpr_at_far")):
        p = acc.fnmr_at_fmr(t)
        assert (p.tpr if key == "tpr_at_far" else p.fnmr) == ref_rep[key]
    assert acc.max_accuracy() == (ref_rep["max_accuracy"], ref_rep["max_accuracy_threshold"])
    assert (acc.n_genuine, acc.n_impostor, acc.n_fta) == (ref_rep["n_genuine"], ref_rep["n_impostor"], ref_rep["n_fta"])
    assert acc.fdr() == pytest.approx(ref_rep["fdr"], rel=1e-12)
    # and the streamed report (what a big run writes) agrees with the explicit one, EER within its bound
    streamed = score_embeddings(cs, keep_impostors=5, progress=False)
    rep = block_report(streamed, cs).to_dict()
    for key in ("n_genuine", "n_impostor", "n_fta", "fmr100", "fmr1000", "tpr_at_far", "acc_at_far", "max_accuracy",
                "fmr100_threshold", "fmr1000_threshold", "far_threshold", "max_accuracy_threshold"):
        assert rep[key] == ref_rep[key], key
    assert rep["fdr"] == pytest.approx(ref_rep["fdr"], rel=1e-12)
    assert rep["eer_approximate"] and abs(rep["eer"] - ref_rep["eer"]) <= rep["eer_bound"]
    assert not rep["max_accuracy_approximate"]
    # the top impostor pairs kept are the highest, ties broken by pair order
    top = full.impostor.top(5).sorted()
    assert np.array_equal(streamed.impostor.i, top.i) and np.array_equal(streamed.impostor.score, top.score)


def test_plan_split_between_processes_gives_identical_reports():
    """Process r of K runs plan[r::K]; merged, the report JSON and kept pairs are the same bytes for any K."""
    rng = np.random.default_rng(5)
    emb, identity, ref, prb, ordered = make_set("masked-vs-nonmasked", rng, n=90, ids=12, fta=(7,))
    cs = comparison_set(emb, identity, reference=ref, probe=prb, ordered=ordered, block=16)
    plan = cs.plan()
    targets = declared_targets(0.002, (1e-4,))
    outputs = set()
    for k in (1, 2, 3):
        parts = [run_blocks(cs, plan[r::k], fmr_targets=targets, keep_impostors=40) for r in range(k)]
        parts = [pickle.loads(pickle.dumps(p)) for p in parts]  # as torch.distributed.gather_object sends them
        merged = merge_parts(cs, parts[::-1])  # gathered in any order
        rep = block_report(merged, cs, fmr_targets=(1e-4,))
        kept = merged.impostor
        outputs.add(json.dumps(rep.to_dict()) + kept.i.tobytes().hex() + kept.score.tobytes().hex()
                    + merged.genuine.score.tobytes().hex())
    assert len(outputs) == 1


def test_merge_refuses_missing_or_repeated_blocks():
    rng = np.random.default_rng(1)
    emb, identity, *_ = make_set("none", rng, n=40)
    cs = comparison_set(emb, identity, block=8)
    plan = cs.plan()
    with pytest.raises(ValueError, match="not run"):
        merge_parts(cs, [run_blocks(cs, plan[1:])])
    with pytest.raises(ValueError, match="twice"):
        merge_parts(cs, [run_blocks(cs, plan), run_blocks(cs, plan[:1])])


def test_block_edges_follow_identities_and_the_plan_covers_each_pair_once():
    ident = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    assert block_edges(10, 4, ident) == [0, 3, 5, 9, 10]  # identity 2 is longer than a block: cut inside
    assert block_edges(10, 4) == [0, 4, 8, 10]
    plan = plan_blocks([0, 3, 5, 9, 10], triangular=True)
    cells = np.zeros((10, 10), int)
    for b in plan:
        sub = cells[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
        sub += np.triu(np.ones_like(sub), 1) if b.triangle else 1
    assert (cells == np.triu(np.ones((10, 10), int), 1)).all()
    assert [b.index for b in plan] == list(range(len(plan))) and plan[0] == Block(0, (0, 3), (0, 3), True)


def test_float32_binning_is_the_accumulators_float64_binning():
    """Bin edges, their float32 neighbours, tiny negatives (1 + x rounds to 1 in float64), +-1 and beyond."""
    edges = (np.arange(-2**15, 2**15 + 1, 97) / 2**15).astype(np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(-2)), np.nextafter(edges, np.float32(2))])
    tiny = np.array([-2.0**-54, -2.0**-55, -2.0**-53, -2.0**-60, -1e-30, 2.0**-60, -0.0, 0.0, -2.0**-149],
                    np.float32)
    x = np.concatenate([near, tiny, np.array([1, -1, 1.5, -1.5, 3e38, -3e38], np.float32),
                        np.random.default_rng(0).uniform(-1.1, 1.1, 300_000).astype(np.float32)])
    acc = ScoreAccumulator((0.01,), bins=2**16)
    hist, (n, mean, _), lowest, _ = BlockStatistics(acc, threads=2).scan(x)
    one = BlockStatistics(acc, threads=1).scan(x, cut=np.float32(0.5))  # the same bits with one thread
    two = BlockStatistics(acc, threads=3).scan(x, cut=np.float32(0.5))
    assert np.array_equal(one[0], hist) and one[1:3] == two[1:3] and np.array_equal(one[3], two[3])
    assert np.array_equal(one[3], np.flatnonzero(x >= np.float32(0.5)))
    acc.add(impostor=x)
    h = acc.impostor_histogram
    assert np.array_equal(hist, np.r_[h.underflow, h.counts, h.overflow])
    assert n == x.size and lowest == x.min() and mean == pytest.approx(float(np.mean(x, dtype=np.float64)), rel=1e-9)
    other = ScoreAccumulator((0.01,), hist_range=(-1.0, 2.0), bins=1000)  # not a power-of-two geometry
    hist2 = BlockStatistics(other).scan(x)[0]
    other.add(impostor=x)
    h2 = other.impostor_histogram
    assert np.array_equal(hist2, np.r_[h2.underflow, h2.counts, h2.overflow])


def test_bad_sets_are_refused_clearly():
    rng = np.random.default_rng(2)
    e = unit(rng, 6)
    with pytest.raises(ValueError, match="no genuine pair"):
        comparison_set(e, np.arange(6))
    with pytest.raises(ValueError, match="no impostor pair"):
        comparison_set(e, np.zeros(6))
    e[2] = np.nan
    with pytest.raises(ValueError, match="img2.*failure to acquire"):
        comparison_set(e, np.array([0, 0, 1, 1, 2, 2]), fta="error", names=[f"img{k}" for k in range(6)])
    e[2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        comparison_set(e, np.array([0, 0, 1, 1, 2, 2]))


def test_accumulator_summary_entry_points_check_their_input():
    from frmask.metrics import ScoreError

    acc = ScoreAccumulator((0.01,), expected_impostors=10, fta="error")
    with pytest.raises(ScoreError, match="policy is 'error'"):
        acc.add_failures(impostor=1)
    with pytest.raises(ScoreError, match="summing to n=3"):
        acc.add_impostor_summary(n=3, candidates=np.zeros(3, np.float32), histogram=np.zeros(acc._bins + 2, np.int64),
                                 minimum=0.0, moments=(3, 0.0, 0.0))
    acc.add(genuine=np.ones(2, np.float32))
    with pytest.raises(ScoreError, match="differ from the acquired"):
        acc.replace_moments((1, 1.0, 0.0), (0, 0.0, 0.0))


def test_keeping_every_pair_after_the_buffer_compacted():
    """The accumulator drops low impostors (its floor rises) while the run keeps every pair: both stay exact."""
    rng = np.random.default_rng(3)
    e = unit(rng, 600)
    cs = comparison_set(e, np.sort(rng.integers(0, 300, 600)), block=128)
    part = score_embeddings(cs, keep_impostors=None, progress=False)
    assert part.accumulator.floor_value > -np.inf and len(part.impostor) == cs.impostor_pairs
    ref = verification_report(*kept_scores(part, cs))
    assert part.accumulator.fnmr_at_fmr(0.001).fnmr == ref.fmr1000
    assert part.accumulator.max_accuracy()[0] == ref.max_accuracy


def test_sets_too_large_for_exact_figures_are_refused_up_front():
    from frmask.exhaustive import check_buffer

    check_buffer(10**9, (0.01,))  # 1e7 scores: fine
    with pytest.raises(ValueError, match="2,600,000,000,000 impostor comparisons.*too large"):
        check_buffer(2_600_000_000_000, (0.001, 0.01))
