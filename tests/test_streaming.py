"""frmask.metrics.streaming.ScoreAccumulator against the in-memory frmask.metrics functions (the oracle)."""

import os
import pickle

import zlib

import numpy as np
import pytest

import frmask.metrics as m
from frmask.metrics._scores import prepare_scores
from frmask.metrics.streaming import InexactError, ScoreAccumulator

# Seeds are fixed (never Python's salted hash()); FRMASK_TEST_SEED shifts them to explore other draws.
SEED_OFFSET = int(os.environ.get("FRMASK_TEST_SEED", "0"))

TARGETS = (0.1, 0.05, 0.01, 0.003, 0.001)


def random_chunks(rng, x, max_chunks=12, allow_empty=True):
    """Split x at random cut points (some chunks possibly empty)."""
    n_cuts = int(rng.integers(0, max_chunks))
    cuts = np.sort(rng.integers(0 if allow_empty else 1, max(x.size, 1), n_cuts))
    return np.split(x, cuts)


def feed(acc, g_chunks, i_chunks, rng=None):
    """Add the chunks to acc, interleaving genuine and impostor chunks in a random order."""
    items = [("g", c) for c in g_chunks] + [("i", c) for c in i_chunks]
    if rng is not None:
        order = rng.permutation(len(items))
        # keep each kind's chunks in order (the oracle sees the concatenation), interleave kinds randomly
        kinds = [items[j][0] for j in order]
        gi, ii = iter(g_chunks), iter(i_chunks)
        items = [("g", next(gi)) if k == "g" else ("i", next(ii)) for k in kinds]
    for kind, c in items:
        if kind == "g":
            acc.add(genuine=c)
        else:
            acc.add(impostor=c)
    return acc


def assert_same_point(a, b):
    assert a == b, f"{a} != {b}"  # dataclass equality: every field
    assert type(a.threshold) is float


def make_scores(rng, kind, n_g=400, n_i=20000):
    if kind == "normal":
        return rng.normal(0.6, 0.15, n_g), rng.normal(0.1, 0.15, n_i)
    if kind == "ties":  # integer scores: heavy ties inside and across the sets
        return rng.integers(40, 100, n_g), rng.integers(0, 60, n_i)
    if kind == "float_ties":
        return rng.integers(40, 100, n_g).astype(np.float64) / 8, rng.integers(0, 60, n_i).astype(np.float64) / 8
    if kind == "float32":
        return (rng.normal(0.6, 0.15, n_g).astype(np.float32),
                np.round(rng.normal(0.1, 0.15, n_i), 3).astype(np.float32))  # float32 with ties
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["normal", "ties", "float_ties", "float32"])
@pytest.mark.parametrize("expected", [None, "exact"])
def test_random_chunkings_match_in_memory(kind, expected):
    rng = np.random.default_rng(SEED_OFFSET + zlib.crc32(repr((kind, expected)).encode()))
    for _ in range(4):
        g, i = make_scores(rng, kind)
        g_chunks, i_chunks = random_chunks(rng, g), random_chunks(rng, i, max_chunks=30)
        g_all, i_all = np.concatenate(g_chunks), np.concatenate(i_chunks)
        acc = ScoreAccumulator(TARGETS, expected_impostors=None if expected is None else i.size, bins=512,
                               hist_range=(-100, 100) if kind == "ties" else (-1, 2))
        feed(acc, g_chunks, i_chunks, rng)
        assert acc.n_genuine == g.size and acc.n_impostor == i.size and acc.n_fta == 0
        for t in TARGETS:
            assert_same_point(acc.fnmr_at_fmr(t), m.fnmr_at_fmr(g_all, i_all, t))
            assert acc.tpr_at_far(t) == m.tpr_at_far(g_all, i_all, t)
        assert acc.fdr() == pytest.approx(m.fdr(g_all, i_all), rel=1e-12)
        if expected is not None:
            assert acc.buffer_size <= 2 * acc.keep + max(c.size for c in i_chunks)


def test_chunk_order_does_not_change_exact_results():
    rng = np.random.default_rng(7)
    g, i = make_scores(rng, "float_ties", n_i=30000)
    i_chunks = random_chunks(rng, i, max_chunks=20, allow_empty=False)
    results = []
    for perm in range(4):
        order = rng.permutation(len(i_chunks)) if perm else np.arange(len(i_chunks))
        acc = ScoreAccumulator(TARGETS, bins=256)
        feed(acc, [g], [i_chunks[j] for j in order])
        results.append(([acc.fnmr_at_fmr(t) for t in TARGETS], acc.impostor_histogram.counts))
    for ops, counts in results[1:]:
        assert ops == results[0][0]
        np.testing.assert_array_equal(counts, results[0][1])


def test_mixed_dtypes_follow_the_concatenation():
    rng = np.random.default_rng(3)
    g = rng.normal(0.6, 0.1, 300)  # float64 genuine + float32 impostors: float64 working dtype
    i = rng.normal(0.1, 0.1, 5000).astype(np.float32)
    acc = ScoreAccumulator((0.01,)).add(genuine=g).add(impostor=i[:2000]).add(impostor=i[2000:])
    assert_same_point(acc.fnmr_at_fmr(0.01), m.fnmr_at_fmr(g, i, 0.01))
    # float16 and float32 only: float32; thresholds above all scores are the next float32
    g16 = np.array([0.5, 0.25], np.float16)
    i32 = np.array([0.75, 0.1, 0.2], np.float32)
    acc = ScoreAccumulator((0.1,)).add(genuine=g16, impostor=i32)
    assert_same_point(acc.fnmr_at_fmr(0.1), m.fnmr_at_fmr(g16, i32, 0.1))
    # integer chunks are float64
    acc = ScoreAccumulator((0.1,)).add(genuine=[3, 4], impostor=[1, 2, 5])
    assert_same_point(acc.fnmr_at_fmr(0.1), m.fnmr_at_fmr([3, 4], [1, 2, 5], 0.1))


def test_accept_all_and_below_resolution():
    g = np.array([0.9, 0.4, np.nan, 0.7])
    i = np.concatenate([[0.3, 0.8, 0.1], np.full(97, np.nan)])  # 3 acquired impostors, 100 in N_I
    acc = ScoreAccumulator((0.98, 0.001))
    acc.add(genuine=g[:2], impostor=i[:50]).add(genuine=g[2:], impostor=i[50:])
    for t in (0.98, 0.001):  # k = 98 >= 3 acquired: accept everything; k = 0: below resolution
        assert_same_point(acc.fnmr_at_fmr(t), m.fnmr_at_fmr(g, i, t))
    assert acc.fnmr_at_fmr(0.001).below_resolution


# ---------------------------------------------------------------------------- merging


def build(parts_g, parts_i, **kw):
    acc = ScoreAccumulator(TARGETS, bins=1024, **kw)
    for c in parts_g:
        acc.add(genuine=c)
    for c in parts_i:
        acc.add(impostor=c)
    return acc


@pytest.mark.parametrize("expected", [None, 60000])
def test_merge_equals_single_accumulator(expected):
    rng = np.random.default_rng(11)
    g = rng.normal(0.5, 0.2, 2000)
    i = np.round(rng.normal(0.0, 0.2, 60000), 4)
    g[rng.integers(0, g.size, 5)] = np.nan
    i[rng.integers(0, i.size, 50)] = np.nan
    single = build(np.array_split(g, 3), np.array_split(i, 7), expected_impostors=expected)
    # four "processes" with uneven splits, pickled as if sent back to the parent
    cuts_g, cuts_i = [0, 100, 900, 1500, 2000], [0, 30000, 31000, 59000, 60000]
    workers = []
    for w in range(4):
        part_i = i[cuts_i[w]:cuts_i[w + 1]]
        acc = build([g[cuts_g[w]:cuts_g[w + 1]]], np.array_split(part_i, 1 + w), expected_impostors=expected)
        workers.append(pickle.loads(pickle.dumps(acc)))
    merged = ScoreAccumulator.merged(workers)
    chained = ScoreAccumulator.merged(workers[:1]).merge(workers[1]).merge(ScoreAccumulator.merged(workers[2:]))
    for acc in (merged, chained):
        assert (acc.n_genuine, acc.n_impostor, acc.n_fta) == (single.n_genuine, single.n_impostor, single.n_fta)
        for t in TARGETS:
            op = m.fnmr_at_fmr(g, i, t)
            assert_same_point(acc.fnmr_at_fmr(t), op)
            assert_same_point(single.fnmr_at_fmr(t), op)
        for h, hs in ((acc.impostor_histogram, single.impostor_histogram),
                      (acc.genuine_histogram, single.genuine_histogram)):
            np.testing.assert_array_equal(h.counts, hs.counts)
            assert (h.underflow, h.overflow) == (hs.underflow, hs.overflow)
        assert acc.fdr() == pytest.approx(single.fdr(), rel=1e-12)
        assert acc.fdr() == pytest.approx(m.fdr(g, i), rel=1e-12)
        assert acc.approximate_eer() == single.approximate_eer()
    # merging leaves the inputs untouched
    assert (workers[0].n_impostor, workers[0].n_fta) == (30000, np.isnan(i[:30000]).sum() + np.isnan(g[:100]).sum())


def test_merge_with_itself_doubles():
    acc = ScoreAccumulator((0.1,)).add(genuine=[0.9, 0.8], impostor=[0.1, 0.2, 0.3])
    acc.merge(acc)
    assert (acc.n_genuine, acc.n_impostor) == (4, 6)
    assert_same_point(acc.fnmr_at_fmr(0.1), m.fnmr_at_fmr([0.9, 0.8] * 2, [0.1, 0.2, 0.3] * 2, 0.1))


@pytest.mark.parametrize("kw", [
    {"fmr_targets": (0.01,)}, {"bins": 128}, {"hist_range": (-2.0, 2.0)}, {"higher_is_genuine": False},
    {"fta": "exclude"}, {"expected_impostors": 1000}])
def test_mismatched_merge_raises(kw):
    base = {"fmr_targets": (0.01, 0.001), "bins": 256}
    a = ScoreAccumulator(base.pop("fmr_targets"), **base)
    other = {"fmr_targets": (0.01, 0.001), "bins": 256}
    other.update(kw)
    b = ScoreAccumulator(other.pop("fmr_targets"), **other)
    with pytest.raises(m.ScoreError, match="cannot merge"):
        a.merge(b)
    with pytest.raises(m.ScoreError):
        ScoreAccumulator.merged([a, b])
    with pytest.raises(m.ScoreError):
        a.merge([1, 2, 3])
    with pytest.raises(m.ScoreError):
        ScoreAccumulator.merged([])


# ---------------------------------------------------------------------------- adversarial streams


def answers_or_inexact(acc, g, i, targets):
    """Every target either raises InexactError or equals the oracle; returns how many raised."""
    raised = 0
    for t in targets:
        try:
            op = acc.fnmr_at_fmr(t)
        except InexactError as e:
            assert "expected_impostors" in str(e)
            assert not acc.is_exact(t)
            raised += 1
            continue
        assert acc.is_exact(t)
        assert_same_point(op, m.fnmr_at_fmr(g, i, t))
    return raised


def test_adversarial_order_is_exact_or_inexact_never_wrong():
    rng = np.random.default_rng(5)
    g = rng.normal(0.5, 0.1, 500)
    high = rng.uniform(0.9, 1.0, 20)  # a few very high impostor scores first...
    flood = rng.normal(-0.5, 0.1, 200000)  # ...then a flood of low ones
    chunks = [high] + np.array_split(flood, 50)
    i = np.concatenate(chunks)
    acc = ScoreAccumulator(TARGETS, bins=256).add(genuine=g)
    for c in chunks:
        acc.add(impostor=c)
    assert answers_or_inexact(acc, g, i, TARGETS) > 0  # this stream defeats the adaptive buffer
    assert acc.floor_value > 0.9
    # with expected_impostors the same stream is exact
    acc = ScoreAccumulator(TARGETS, expected_impostors=i.size, bins=256).add(genuine=g)
    for c in chunks:
        acc.add(impostor=c)
    for t in TARGETS:
        assert_same_point(acc.fnmr_at_fmr(t), m.fnmr_at_fmr(g, i, t))
    # ... but only while n_impostor <= expected_impostors: more data can become inexact, never wrong
    extra = rng.normal(0.95, 0.01, 2 * i.size)
    acc.add(impostor=extra)
    answers_or_inexact(acc, g, np.concatenate([i, extra]), TARGETS)


@pytest.mark.parametrize("order", ["descending", "random", "ascending", "blocks"])
def test_orderings_never_wrong(order):
    rng = np.random.default_rng(SEED_OFFSET + zlib.crc32(repr(order).encode()))
    for trial in range(4):
        g = np.round(rng.normal(0.4, 0.2, 300), 2)
        i = np.round(rng.normal(0.0, 0.2, 20000), 3)
        if order == "descending":
            i = np.sort(i)[::-1].copy()
        elif order == "ascending":
            i = np.sort(i)
        elif order == "blocks":  # shuffled blocks of decreasing level: the highest block first
            i = np.concatenate([rng.permutation(b) for b in np.array_split(np.sort(i)[::-1], 5)])
        chunks = random_chunks(rng, i, max_chunks=40)
        expected = None if trial % 2 == 0 else int(i.size * 0.5)  # an underestimate: may become inexact
        acc = ScoreAccumulator(TARGETS, expected_impostors=expected, bins=64).add(genuine=g)
        for c in chunks:
            acc.add(impostor=c)
        answers_or_inexact(acc, g, i, TARGETS)


def test_expected_impostors_exceeded_is_never_wrong():
    rng = np.random.default_rng(9)
    g = rng.normal(0.5, 0.1, 200)
    first = rng.normal(0.0, 0.1, 10000)
    later = rng.normal(0.5, 0.05, 40000)  # more impostors than announced, and higher ones
    acc = ScoreAccumulator(TARGETS, expected_impostors=10000, bins=64).add(genuine=g, impostor=first)
    for c in np.array_split(later, 8):
        acc.add(impostor=c)
    assert answers_or_inexact(acc, g, np.concatenate([first, later]), TARGETS) >= 0


# ---------------------------------------------------------------------------- histogram, DET, EER


def brute_rates(g, i, t, fta_g=0, fta_i=0):
    """Exact (fm, fnm) with float64 comparisons (no rounding of t to the score dtype)."""
    g = np.asarray(g, np.float64)
    i = np.asarray(i, np.float64)
    return int(np.count_nonzero(i >= t)), int(np.count_nonzero(g < t)) + fta_g


def test_values_on_edges_go_to_the_upper_bin():
    acc = ScoreAccumulator((0.1,), hist_range=(0.0, 1.0), bins=10)
    e = acc.edges
    assert e.size == 11 and np.all(np.diff(e) > 0)
    assert e[0] == 0.0 and abs(e[-1] - 1.0) <= 1e-15
    below = np.nextafter(e, -np.inf)
    acc.add(genuine=[0.5], impostor=np.concatenate([e, below]))
    h = acc.impostor_histogram
    # e[j] is in bin j (the last edge in the overflow), nextafter(e[j], -inf) in bin j-1 (the first in the underflow)
    np.testing.assert_array_equal(h.counts, np.full(10, 2))
    assert (h.underflow, h.overflow) == (1, 1)
    # decimal-looking edges such as 0.3, 0.7 are handled consistently whatever their float rounding
    for x in (0.1, 0.3, 0.7, 0.9):
        j = int(np.searchsorted(e, x, side="right")) - 1  # the bin whose [e_j, e_j+1) contains x
        one = ScoreAccumulator((0.1,), hist_range=(0.0, 1.0), bins=10).add(impostor=[x])
        assert one.impostor_histogram.counts[j] == 1


@pytest.mark.parametrize("kind", ["normal", "float32", "edges", "distance", "fta"])
def test_approximate_det_exact_at_edges_and_eer_within_bound(kind):
    rng = np.random.default_rng(SEED_OFFSET + ["normal", "float32", "edges", "distance", "fta"].index(kind))
    bins, hist_range, sign, fta = 200, (-1.0, 1.5), 1, "reject"
    for trial in range(3):
        g = rng.normal(0.5, 0.2, 3000)
        i = rng.normal(0.0, 0.2, 30000)
        if kind == "float32":
            g, i = g.astype(np.float32), i.astype(np.float32)
        if kind == "edges":  # many scores exactly on edges, plus values out of range
            e = ScoreAccumulator((0.1,), hist_range=hist_range, bins=bins).edges
            g = np.concatenate([g, rng.choice(e, 500), [-5.0, 7.0]])
            i = np.concatenate([i, rng.choice(e, 5000), [-9.0, 3.0]])
        if kind == "distance":
            sign, hist_range = -1, (-1.5, 1.0)
            g, i = 1.0 - g, 1.0 - i
        if kind == "fta":
            fta = ["reject", "exclude"][trial % 2]
            g[rng.integers(0, g.size, 30)] = np.nan
            i[rng.integers(0, i.size, 300)] = np.nan
        acc = ScoreAccumulator((0.01,), hist_range=hist_range, bins=bins, higher_is_genuine=sign > 0, fta=fta)
        feed(acc, random_chunks(rng, g), random_chunks(rng, i), rng)
        s = prepare_scores(g, i, higher_is_genuine=sign > 0, fta=fta)
        thr, fmr, fnmr, max_error = acc.approximate_det()
        edges = acc.edges
        np.testing.assert_array_equal(thr, sign * edges)
        for j, t in enumerate(edges):
            fm, fnm = brute_rates(s.genuine, s.impostor, t, s.rejected_genuine)
            assert fmr[j] == fm / s.n_impostor and fnmr[j] == fnm / s.n_genuine
        if sign < 0:  # as the caller sees it: accept distance <= threshold
            j = bins // 2
            assert fmr[j] == np.count_nonzero(i[~np.isnan(i)] <= thr[j]) / s.n_impostor
        # the bound: at any threshold between two edges, rates within max_error of both edges' rates
        hi, hg = acc.impostor_histogram.counts, acc.genuine_histogram.counts
        assert max_error == max(hi.max() / s.n_impostor, hg.max() / s.n_genuine)
        for t in rng.uniform(edges[0], edges[-1], 50):
            j = int(np.searchsorted(edges, t, side="right")) - 1
            fm, fnm = brute_rates(s.genuine, s.impostor, t, s.rejected_genuine)
            for jj in (j, j + 1):
                assert abs(fm / s.n_impostor - fmr[jj]) <= max_error + 1e-12  # float rounding of the ratios
                assert abs(fnm / s.n_genuine - fnmr[jj]) <= max_error + 1e-12
        est, bound = acc.approximate_eer()
        exact = m.eer(g, i, higher_is_genuine=sign > 0, fta=fta)
        assert abs(exact - est) <= bound
        assert bound <= max_error / 2 + 1e-15


def test_approximate_eer_exact_cases():
    # crossing exactly at an edge (D = 0): bound 0 and the exact value
    acc = ScoreAccumulator((0.1,), hist_range=(0.0, 1.0), bins=4)
    g, i = [0.6, 0.7, 0.2, 0.9], [0.1, 0.3, 0.55, 0.2]
    acc.add(genuine=g, impostor=i)
    est, bound = acc.approximate_eer()
    assert (est, bound) == (m.eer(g, i), 0.0)
    # accepting everything already gives FNMR > FMR (many genuine FTAs): exact, bound 0
    g2, i2 = [0.9] + [np.nan] * 9, [0.1, np.nan, np.nan]
    acc = ScoreAccumulator((0.1,)).add(genuine=g2, impostor=i2)
    assert acc.approximate_eer() == (m.eer(g2, i2), 0.0)
    # FNMR < FMR when accepting everything: a bracketed estimate
    acc = ScoreAccumulator((0.1,)).add(genuine=g2, impostor=[0.1, 0.2])
    est, bound = acc.approximate_eer()
    assert bound > 0 and abs(m.eer(g2, [0.1, 0.2]) - est) <= bound
    # crossing in the underflow region: still a valid (wide) bound
    g3, i3 = np.linspace(-5, -3, 50), np.linspace(-6, -4, 80)
    acc = ScoreAccumulator((0.1,), bins=16).add(genuine=g3, impostor=i3)
    est, bound = acc.approximate_eer()
    assert abs(m.eer(g3, i3) - est) <= bound


# ---------------------------------------------------------------------------- FTA, distances, errors


@pytest.mark.parametrize("fta", ["reject", "exclude"])
def test_fta_policies(fta):
    rng = np.random.default_rng(21)
    g = rng.normal(0.5, 0.2, 500)
    i = np.round(rng.normal(0.0, 0.2, 20000), 3)
    g[rng.integers(0, g.size, 40)] = np.nan
    i[rng.integers(0, i.size, 2000)] = np.nan
    acc = ScoreAccumulator(TARGETS, fta=fta, bins=64)
    feed(acc, random_chunks(rng, g), random_chunks(rng, i, 20), rng)
    s = prepare_scores(g, i, fta=fta)
    assert (acc.n_genuine, acc.n_impostor, acc.n_fta) == (s.n_genuine, s.n_impostor, s.n_fta)
    for t in TARGETS:
        assert_same_point(acc.fnmr_at_fmr(t), m.fnmr_at_fmr(g, i, t, fta=fta))
    assert acc.fdr() == pytest.approx(m.fdr(g, i, fta=fta), rel=1e-12)


def test_fta_error_names_chunk_index_and_offset():
    acc = ScoreAccumulator((0.01,), fta="error")
    acc.add(genuine=[0.9, 0.8], impostor=np.zeros(10))
    bad = np.array([0.1, 0.2, 0.3, np.nan, 0.4])
    with pytest.raises(m.ScoreError, match=r"impostor score at index 3 of this chunk \(index 13 of the impostor"):
        acc.add(genuine=[0.7], impostor=bad)
    # the failed add recorded nothing, not even its valid genuine chunk
    assert (acc.n_genuine, acc.n_impostor, acc.n_fta) == (2, 10, 0)
    with pytest.raises(m.ScoreError, match=r"genuine score at index 0 of this chunk \(index 2 of the genuine"):
        acc.add(genuine=[np.nan])


def test_distances_match_in_memory():
    rng = np.random.default_rng(13)
    for dtype in (np.float64, np.float32):
        g = rng.uniform(0.0, 1.0, 400).astype(dtype)  # distances: genuine low
        i = np.round(rng.uniform(0.6, 2.0, 20000), 3).astype(dtype)
        acc = ScoreAccumulator(TARGETS, higher_is_genuine=False, hist_range=(-2.0, 0.0), bins=128)
        feed(acc, random_chunks(rng, g), random_chunks(rng, i, 25), rng)
        for t in TARGETS:
            op = acc.fnmr_at_fmr(t)
            ref = m.fnmr_at_fmr(g, i, t, higher_is_genuine=False)
            assert_same_point(op, ref)
            # the threshold is a distance: accept distance <= threshold
            assert op.false_matches == np.count_nonzero(i.astype(np.float64) <= op.threshold)
        assert acc.fdr() == pytest.approx(m.fdr(g, i, higher_is_genuine=False), rel=1e-12)
        sim = ScoreAccumulator(TARGETS, bins=128).add(genuine=-g, impostor=-i)
        for t in TARGETS:
            a, b = acc.fnmr_at_fmr(t), sim.fnmr_at_fmr(t)
            assert (a.threshold, a.fnmr, a.fmr) == (-b.threshold, b.fnmr, b.fmr)


def test_bad_input_errors():
    acc = ScoreAccumulator((0.01, 0.001))
    with pytest.raises(m.ScoreError, match=r"index 2 of this chunk .*finite"):
        acc.add(impostor=[0.1, 0.2, np.inf])
    with pytest.raises(m.ScoreError, match="finite"):
        acc.add(genuine=[-np.inf])
    with pytest.raises(m.ScoreError, match="1-D"):
        acc.add(genuine=np.zeros((2, 2)))
    with pytest.raises(m.ScoreError, match="numbers"):
        acc.add(genuine=["a"])
    with pytest.raises(m.ScoreError, match="empty"):
        acc.fnmr_at_fmr(0.01)
    acc.add(genuine=[0.9, 0.8], impostor=[0.1, 0.2])
    with pytest.raises(m.ScoreError, match=r"not declared.*0\.001, 0\.01"):
        acc.fnmr_at_fmr(0.05)
    with pytest.raises(m.ScoreError):
        acc.tpr_at_far(1.5)
    assert_same_point(acc.fnmr_at_fmr(0.010), m.fnmr_at_fmr([0.9, 0.8], [0.1, 0.2], 0.01))
    assert ScoreAccumulator((0.1,), fta="exclude").add(genuine=[0.5], impostor=[np.nan, 0.2]).n_impostor == 1
    with pytest.raises(m.ScoreError, match="no impostor score was acquired"):
        ScoreAccumulator((0.1,)).add(genuine=[0.5], impostor=[np.nan]).fnmr_at_fmr(0.1)
    for kw in ({"fta": "maybe"}, {"bins": 0}, {"bins": 2.5}, {"hist_range": (1.0, 1.0)},
               {"hist_range": (0.0, np.inf)}, {"hist_range": "ab"}, {"expected_impostors": 0},
               {"expected_impostors": 1.5}):
        with pytest.raises(m.ScoreError):
            ScoreAccumulator((0.01,), **kw)
    for targets in ((), (0.0,), (1.0,), ("x",)):
        with pytest.raises(m.ScoreError):
            ScoreAccumulator(targets)
    assert issubclass(InexactError, m.ScoreError)


def test_caller_arrays_are_not_aliased():
    buf = np.array([0.9, 0.8, 0.7])
    acc = ScoreAccumulator((0.1,)).add(genuine=buf, impostor=np.array([0.1, 0.2]))
    buf[:] = -1.0  # a reused chunk buffer
    assert_same_point(acc.fnmr_at_fmr(0.1), m.fnmr_at_fmr([0.9, 0.8, 0.7], [0.1, 0.2], 0.1))


def test_max_accuracy_matches_in_memory():
    """The streamed best accuracy equals max_accuracy on the concatenated scores (ties from 2-digit
    rounding), with the buffer sized by a target >= (N_G + 1) / N_I."""
    import math

    from frmask.metrics import max_accuracy

    rng = np.random.default_rng(0)
    for _ in range(60):
        ng, ni = int(rng.integers(1, 50)), int(rng.integers(60, 3000))
        g = np.round(rng.normal(0.6, 0.2, ng), 2).astype(np.float32)
        i = np.round(rng.normal(0.1, 0.2, ni), 2).astype(np.float32)
        need = math.ceil(1000 * (ng + 1) / ni) / 1000
        acc = ScoreAccumulator((0.01, need), expected_impostors=ni)
        for part in np.array_split(i, 5):
            acc.add(impostor=part)
        acc.add(genuine=g)
        assert acc.max_accuracy() == max_accuracy(g, i)
