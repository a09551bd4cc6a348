"""frmask.metrics against hand-computed cases, brute-force oracles, scikit-learn and hypothesis."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import frmask.metrics as m
import oracles

# The hand example: 5 genuine and 7 impostor scores with ties inside each set (0.8, 0.5) and across (0.3).
G = [0.9, 0.8, 0.8, 0.6, 0.3]
I = [0.7, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1]


class TestHandExample:
    def test_fnmr_at_fmr(self):
        # target 0.15: k = floor(1.05) = 1 false match allowed; the 2nd largest impostor is 0.5, so the
        # threshold is the smallest score above it, 0.6: FNMR = #{g <= 0.5}/5 = 1/5, FMR = #{i > 0.5}/7 = 1/7.
        op = m.fnmr_at_fmr(G, I, 0.15)
        assert (op.threshold, op.fnmr, op.fmr) == (0.6, 1 / 5, 1 / 7)
        assert (op.false_non_matches, op.false_matches, op.below_resolution) == (1, 1, False)
        # target 0.3: k = 2; the 3rd largest impostor is 0.5, tied with the 2nd: only 1 impostor lies
        # above it, so the achieved FMR (1/7) is below the target.
        op = m.fnmr_at_fmr(G, I, 0.3)
        assert (op.threshold, op.fnmr, op.fmr) == (0.6, 1 / 5, 1 / 7)
        # target 0.45: k = 3; 4th largest impostor 0.4 -> threshold 0.5, FMR 3/7, FNMR 1/5.
        op = m.fnmr_at_fmr(G, I, 0.45)
        assert (op.threshold, op.fnmr, op.fmr) == (0.5, 1 / 5, 3 / 7)
        # target 0.1 < 1/7: no false match allowed; threshold above the top impostor 0.7 -> 0.8.
        op = m.fnmr_at_fmr(G, I, 0.1)
        assert (op.threshold, op.fnmr, op.fmr, op.below_resolution) == (0.8, 2 / 5, 0.0, True)

    def test_fmr_at_fnmr(self):
        # target 0.2: k = 1 -> threshold = 2nd smallest genuine 0.6: FNMR 1/5, FMR #{i >= 0.6}/7 = 1/7.
        op = m.fmr_at_fnmr(G, I, 0.2)
        assert (op.threshold, op.fnmr, op.fmr) == (0.6, 1 / 5, 1 / 7)
        # target 0.5: k = 2 -> 3rd smallest genuine 0.8 (tied): FNMR #{g < 0.8}/5 = 2/5, FMR 0.
        op = m.fmr_at_fnmr(G, I, 0.5)
        assert (op.threshold, op.fnmr, op.fmr) == (0.8, 2 / 5, 0.0)
        # target 0.1: k = 0 -> smallest genuine 0.3: FNMR 0, FMR #{i >= 0.3}/7 = 5/7.
        op = m.fmr_at_fnmr(G, I, 0.1)
        assert (op.threshold, op.fnmr, op.fmr) == (0.3, 0.0, 5 / 7)

    def test_tpr_at_far(self):
        assert m.tpr_at_far(G, I, 0.15) == 4 / 5

    def test_eer(self):
        # At 0.5: FNMR 1/5 <= FMR 3/7 (t1); at 0.6: FNMR 1/5 >= FMR 1/7 (t2). Sums 22/35 vs 12/35 -> t2:
        # EER interval [1/7, 1/5], EER = 6/35.
        e = m.eer_info(G, I)
        assert (e.threshold, e.low, e.high) == (0.6, 1 / 7, 1 / 5)
        assert e.eer == float(Fraction(6, 35))
        assert m.eer(G, I) == e.eer and m.eer_threshold(G, I) == 0.6

    def test_accuracy(self):
        # At 0.5: 4 genuine accepted, 4 impostors rejected -> 8/12. At 0.6 and at 0.8: 10/12 (tie -> 0.8).
        assert m.accuracy_at_threshold(G, I, 0.5) == 8 / 12
        assert m.accuracy_at_threshold(G, I, 0.6) == 10 / 12
        assert m.max_accuracy(G, I) == (10 / 12, 0.8)

    def test_fdr(self):
        mg, vg = Fraction(17, 25), Fraction(57, 1250)
        mi, vi = Fraction(27, 70), Fraction(87, 2450)
        assert m.fdr(G, I) == pytest.approx(float((mg - mi) ** 2 / (vg + vi)), rel=1e-14)

    def test_det_and_roc_curves(self):
        c = m.det_curve(G, I)
        assert c.threshold[:9].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        assert c.threshold[9] > 0.9
        assert c.fmr.tolist() == [7 / 7, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 1 / 7, 1 / 7, 0, 0, 0]
        assert c.fnmr.tolist() == [0, 0, 0, 1 / 5, 1 / 5, 1 / 5, 2 / 5, 2 / 5, 4 / 5, 1]
        r = m.roc_curve(G, I)
        assert r.threshold.tolist() == c.threshold[::-1].tolist()
        assert r.tpr.tolist() == (1 - c.fnmr[::-1]).tolist()

    def test_report(self):
        rep = m.verification_report(G, I, far=0.15)
        d = rep.to_dict()
        assert list(d)[:10] == list(m.STABLE_KEYS)
        assert (d["n_genuine"], d["n_impostor"], d["n_fta"]) == (5, 7, 0)
        assert d["tpr_at_far"] == 4 / 5 and d["acc_at_far"] == 10 / 12
        assert d["max_accuracy"] == 10 / 12 and d["eer"] == float(Fraction(6, 35))
        assert d["fmr100"] == 2 / 5 and d["fmr1000"] == 2 / 5  # both below 1/7: FMR 0, threshold 0.8
        assert any("below the finest FMR step" in n for n in rep.notes)

    def test_distances(self):
        dg, di = [1 - x for x in G], [1 - x for x in I]
        op = m.fnmr_at_fmr(dg, di, 0.15, higher_is_genuine=False)
        assert (op.fnmr, op.fmr) == (1 / 5, 1 / 7)
        assert op.threshold == pytest.approx(1 - 0.6)
        assert m.eer(dg, di, higher_is_genuine=False) == m.eer(G, I)

    def test_fta_policies(self):
        g = G + [float("nan")]
        i = I + [float("nan")]
        op = m.fnmr_at_fmr(g, i, 0.15)  # reject: N_G = 6 with one FNM always, N_I = 8, k = 1
        assert (op.n_genuine, op.n_impostor, op.fnmr, op.fmr) == (6, 8, 2 / 6, 1 / 8)
        ex = m.fnmr_at_fmr(g, i, 0.15, fta="exclude")
        assert (ex.fnmr, ex.fmr) == (1 / 5, 1 / 7)
        with pytest.raises(m.ScoreError, match="index 5 is NaN"):
            m.fnmr_at_fmr(g, I, 0.15, fta="error")
        rep = m.verification_report(g, i)
        assert rep.n_fta == 2 and rep.n_genuine == 6


class TestBadInput:
    @pytest.mark.parametrize("target", [0, 1, -0.1, 1.5, float("nan"), "x"])
    def test_target_outside_unit_interval(self, target):
        with pytest.raises(m.ScoreError, match="between 0 and 1|number in"):
            m.fnmr_at_fmr(G, I, target)

    def test_empty(self):
        with pytest.raises(m.ScoreError, match="genuine score set is empty"):
            m.eer([], I)
        with pytest.raises(m.ScoreError, match="impostor score set is empty"):
            m.verification_report(G, [])

    def test_inf(self):
        with pytest.raises(m.ScoreError, match="impostor score at index 2 is inf"):
            m.eer(G, [0.1, 0.2, np.inf])

    def test_all_nan(self):
        with pytest.raises(m.ScoreError, match="no genuine score was acquired"):
            m.eer([np.nan, np.nan], I)

    def test_labels(self):
        with pytest.raises(m.ScoreError, match="label at index 1 is 2"):
            m.split_by_label([0.1, 0.2], [1, 2])

    def test_shapes_and_types(self):
        with pytest.raises(m.ScoreError, match="1-D"):
            m.eer([[0.1, 0.2]], I)
        with pytest.raises(m.ScoreError, match="numbers"):
            m.eer(["a", "b"], I)
        with pytest.raises(m.ScoreError, match="convention"):
            m.verification_report(G, I, convention="nope")
        with pytest.raises(m.ScoreError, match="FTA policy"):
            m.eer(G, I, fta="ignore")


# ---- oracles ----------------------------------------------------------------------------------------------

def _sets(draw_values):
    return st.lists(draw_values, min_size=1, max_size=40)


tied = st.integers(0, 6).map(float)  # heavy ties, integer scores
smooth = st.floats(-1, 1, allow_nan=False, width=32)
values = st.one_of(tied, smooth)
targets = st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.7, 0.9, 0.99])


@settings(max_examples=300, deadline=None)
@given(_sets(values), _sets(values), targets, st.integers(0, 2), st.integers(0, 2))
def test_operating_points_match_brute_force(g, i, target, fta_g, fta_i):
    gn = g + [float("nan")] * fta_g
    inn = i + [float("nan")] * fta_i
    op = m.fnmr_at_fmr(gn, inn, target)
    t, fm, fnm = oracles.strict_fnmr_at_fmr(g, i, target, fta_g, fta_i)
    assert (op.threshold, op.false_matches, op.false_non_matches) == (t, fm, fnm)
    if Fraction(fta_g, len(g) + fta_g) <= Fraction(repr(target)):
        op = m.fmr_at_fnmr(gn, inn, target)
        t, fm, fnm = oracles.strict_fmr_at_fnmr(g, i, target, fta_g)
        assert (op.threshold, op.false_matches, op.false_non_matches) == (t, fm, fnm)
    else:
        with pytest.raises(m.ScoreError, match="failure-to-acquire floor"):
            m.fmr_at_fnmr(gn, inn, target)


@settings(max_examples=300, deadline=None)
@given(_sets(values), _sets(values), st.integers(0, 3), st.integers(0, 2))
def test_eer_accuracy_fdr_match_brute_force(g, i, fta_g, fta_i):
    gn = g + [float("nan")] * fta_g
    inn = i + [float("nan")] * fta_i
    e = m.eer_info(gn, inn)
    assert (e.eer, e.threshold) == oracles.fvc_eer(g, i, fta_g, fta_i)
    assert m.max_accuracy(gn, inn) == oracles.max_accuracy(g, i, fta_g, fta_i)
    expected = oracles.fdr(g, i)
    got = m.fdr(gn, inn)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(_sets(values), _sets(values))
def test_curves_match_sklearn(g, i):
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(g)), np.zeros(len(i))]
    s = np.r_[g, i].astype(np.float64)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    c = m.roc_curve(np.asarray(g, np.float64), np.asarray(i, np.float64))
    assert np.array_equal(c.fmr, fpr)
    assert np.allclose(c.tpr, tpr, rtol=0, atol=1e-15)
    assert np.array_equal(c.threshold[1:], thr[1:]) and c.threshold[0] > thr[1]


@settings(max_examples=150, deadline=None)
@given(_sets(values), _sets(values), targets)
def test_fnmr_at_fmr_matches_sklearn_operating_point(g, i, target):
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(g)), np.zeros(len(i))]
    fpr, tpr, _ = roc_curve(y, np.r_[g, i], drop_intermediate=False)
    # Exact comparison of counts: the float 1/3 is below 3/9, so FMR 3/9 does not meet target 1/3.
    false_matches = np.rint(fpr * len(i)).astype(int)
    allowed = np.array([Fraction(int(c), len(i)) <= Fraction(repr(target)) for c in false_matches])
    best_tpr = tpr[allowed].max()
    assert m.fnmr_at_fmr(g, i, target).fnmr == pytest.approx(1 - best_tpr, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_random_larger_sets_and_float32(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.6, 0.15, 300).astype(np.float32)
    i = rng.normal(0.1, 0.15, 3000).astype(np.float32)
    for target in (0.01, 0.001, 0.002):
        op = m.fnmr_at_fmr(g, i, target)
        t, fm, fnm = oracles.strict_fnmr_at_fmr(g, i, target)
        assert (op.threshold, op.false_matches, op.false_non_matches) == (t, fm, fnm)
        assert (g >= np.float32(op.threshold)).sum() == op.n_genuine - op.false_non_matches
    assert (m.eer(g, i), m.eer_threshold(g, i)) == oracles.fvc_eer(g, i)
    assert m.max_accuracy(g, i) == oracles.max_accuracy(g, i)


def test_all_equal_scores():
    g, i = [0.5] * 4, [0.5] * 6
    op = m.fnmr_at_fmr(g, i, 0.5)
    assert (op.fmr, op.fnmr) == (0.0, 1.0) and op.threshold > 0.5
    assert m.eer_info(g, i).eer == oracles.fvc_eer(g, i)[0]
    assert m.max_accuracy(g, i) == oracles.max_accuracy(g, i)
    assert np.isnan(m.fdr(g, i))


def test_large_input_uses_chunked_selection():
    """Past the chunk size the top-k path is the chunked one; it must agree with a full sort."""
    from frmask.metrics import _select

    rng = np.random.default_rng(7)
    x = rng.integers(0, 1000, 3 * _select.CHUNK + 123).astype(np.float32)  # many ties
    for k in (1, 17, 40_000):
        assert np.array_equal(_select.top_k_desc(x, k), np.sort(x)[::-1][:k])
    g = rng.integers(500, 1000, 2000).astype(np.float32)
    op = m.fnmr_at_fmr(g, x, 0.001)
    xs = np.sort(x)[::-1]
    k = (x.size * 1) // 1000
    v = xs[k]
    assert op.false_matches == int((x > v).sum()) and op.false_non_matches == int((g <= v).sum())
    e = m.eer_info(g, x)
    curve = m.det_curve(g, x)
    j = int(np.flatnonzero(curve.threshold == e.threshold)[0])
    assert e.low in (curve.fmr[j], curve.fnmr[j]) and e.high in (curve.fmr[j], curve.fnmr[j])


def test_kfold_exact_matches_per_fold_brute_force():
    rng = np.random.default_rng(3)
    n = 203
    labels = (np.arange(n) // 7) % 2
    scores = np.round(np.where(labels == 1, rng.normal(0.5, 0.2, n), rng.normal(0.1, 0.2, n)), 2)
    kf = m.kfold_accuracy(scores, labels, folds=10)
    folds = [test for _, test in m.accuracy.kfold_splits(n, 10)]
    assert [f.size for f in folds] == [21, 21, 21] + [20] * 7
    accs = []
    for f, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n), test)
        gt, it = scores[train][labels[train] == 1], scores[train][labels[train] == 0]
        _, t = oracles.max_accuracy(gt, it)
        accs.append(np.mean((scores[test] >= t) == (labels[test] == 1)))
        assert kf.thresholds[f] == t
    assert kf.accuracies.tolist() == accs
    assert kf.mean == pytest.approx(np.mean(accs)) and kf.std == pytest.approx(np.std(accs))


@pytest.mark.parametrize("fta", ["reject", "exclude"])
@pytest.mark.parametrize("higher_is_genuine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kfold_with_failures_matches_max_accuracy_of_each_training_set(fta, higher_is_genuine, dtype):
    """k-fold builds its training sets from per-fold pieces (no gathered impostors): the thresholds must be
    those of max_accuracy on the gathered training pairs, with NaN (FTA), ties and distances."""
    rng = np.random.default_rng(7)
    n = 157
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.normal(0, 1, n) + labels * (1 if higher_is_genuine else -1), 1).astype(dtype)
    scores[rng.random(n) < 0.08] = np.nan
    kf = m.kfold_accuracy(scores, labels, folds=7, fta=fta, higher_is_genuine=higher_is_genuine)
    for f, (train, test) in enumerate(m.accuracy.kfold_splits(n, 7)):
        g, i = scores[train][labels[train] == 1], scores[train][labels[train] == 0]
        _, t = m.max_accuracy(g, i, fta=fta, higher_is_genuine=higher_is_genuine)
        assert kf.thresholds[f] == t
        x, same = scores[test], labels[test] == 1
        if fta == "exclude":
            x, same = x[~np.isnan(x)], same[~np.isnan(x)]
        accept = (x >= t) if higher_is_genuine else (x <= t)
        assert kf.accuracies[f] == np.mean(accept == same)


def test_intervals():
    from scipy.stats import binomtest

    iv = m.rate_ci(3, 100, method="clopper-pearson")
    ref = binomtest(3, 100).proportion_ci(method="exact")
    assert (iv.low, iv.high) == (ref.low, ref.high) and iv.estimate == 0.03
    w = m.rate_ci(0, 50)
    assert w.low == 0.0 and 0 < w.high < 0.1
    with pytest.raises(m.ScoreError):
        m.rate_ci(5, 3)


def test_bootstrap_by_subject_is_deterministic_and_wider_for_correlated_scores():
    rng = np.random.default_rng(0)
    n_subj = 30
    offset = rng.normal(0, 0.3, n_subj)  # a per-subject quality effect: scores correlate within subjects
    gs = np.repeat(np.arange(n_subj), 10)
    g = 0.6 + offset[gs] + rng.normal(0, 0.05, gs.size)
    isub = rng.integers(0, n_subj, (3000, 2))
    isub = isub[isub[:, 0] != isub[:, 1]]
    i = 0.1 + 0.5 * (offset[isub[:, 0]] + offset[isub[:, 1]]) + rng.normal(0, 0.05, len(isub))
    stat = lambda a, b: m.eer(a, b)  # noqa: E731
    a = m.bootstrap_ci(g, i, stat, genuine_subjects=gs, impostor_subjects=isub, n_boot=200, seed=1)
    b = m.bootstrap_ci(g, i, stat, genuine_subjects=gs, impostor_subjects=isub, n_boot=200, seed=1)
    p = m.bootstrap_ci(g, i, stat, n_boot=200, seed=1)
    assert a == b and a.method == "subjects" and p.method == "pairs"
    assert a.low <= a.estimate <= a.high
    assert (a.high - a.low) > 1.5 * (p.high - p.low)


def test_kfold_hand_example():
    # The hand example as 12 pairs in protocol order, 2 contiguous folds of 6.
    scores = [0.9, 0.7, 0.8, 0.5, 0.8, 0.5, 0.6, 0.4, 0.3, 0.3, 0.2, 0.1]
    labels = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    # Fold 1 is tested with a threshold chosen on pairs 7-12 (g {0.6, 0.3}, i {0.4, 0.3, 0.2, 0.1}): 0.6 gives
    # 5/6 there; on pairs 1-6 it accepts 0.9, 0.8, 0.8 and the impostor 0.7 -> 5/6 correct.
    # Fold 2 is tested with the threshold chosen on pairs 1-6: 0.8 separates them perfectly; on pairs 7-12
    # it rejects everything -> the 4 impostors right, the 2 genuine wrong: 4/6.
    kf = m.kfold_accuracy(scores, labels, folds=2)
    assert kf.thresholds.tolist() == [0.6, 0.8]
    assert kf.accuracies.tolist() == [5 / 6, 4 / 6]
    assert kf.mean == 0.75 and kf.std == pytest.approx(1 / 12)


def test_subject_bootstrap_weights():
    """A genuine pair of subject a appears m_a times, an impostor pair (a, b) m_a * m_b times."""
    from frmask.metrics.intervals import bootstrap_resamples

    g = np.array([1.0, 2.0, 3.0])
    gs = np.array(["a", "b", "c"])
    i = np.array([10.0, 20.0, 30.0])
    isub = np.array([["a", "b"], ["a", "c"], ["b", "c"]])
    rng = np.random.default_rng(11)
    for gb, ib in bootstrap_resamples(g, i, genuine_subjects=gs, impostor_subjects=isub, n_boot=20, seed=11):
        mult = np.bincount(rng.integers(0, 3, 3), minlength=3)  # subjects a, b, c in sorted order
        assert sorted(gb.tolist()) == sorted(np.repeat(g, mult).tolist())
        expected = np.repeat(i, [mult[0] * mult[1], mult[0] * mult[2], mult[1] * mult[2]])
        assert sorted(ib.tolist()) == sorted(expected.tolist())


# ---- rates at a fixed threshold -------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(_sets(values), _sets(values), _sets(values), st.integers(0, 2), st.integers(0, 2), st.booleans())
def test_rates_at_threshold_match_brute_force(g, i, thresholds, fta_g, fta_i, distance):
    """Every threshold (scores themselves included: ties are accepted) against the definitions, for both
    directions and with failures to acquire."""
    from frmask.metrics.fixed import rates_at_threshold

    gn, inn = g + [float("nan")] * fta_g, i + [float("nan")] * fta_i
    for t in thresholds + g[:3] + i[:3]:
        if distance:  # accept distance <= t: the same counts as similarity -d >= -t
            op = rates_at_threshold([-x for x in gn], [-x for x in inn], -t, higher_is_genuine=False)
        else:
            op = rates_at_threshold(gn, inn, t)
        fm = sum(1 for x in i if x >= t)
        fnm = sum(1 for x in g if x < t) + fta_g
        assert (op.false_matches, op.false_non_matches) == (fm, fnm)
        assert op.fmr == fm / (len(i) + fta_i) and op.fnmr == fnm / (len(g) + fta_g)
        assert op.threshold == (-t if distance else t)


@settings(max_examples=200, deadline=None)
@given(_sets(values), _sets(values), targets, st.integers(0, 2))
def test_a_calibrated_threshold_gives_back_its_operating_point(g, i, target, fta_g):
    from frmask.metrics.fixed import rates_at_threshold

    gn = g + [float("nan")] * fta_g
    op = m.fnmr_at_fmr(gn, i, target)
    fixed = rates_at_threshold(gn, i, op.threshold)
    assert (fixed.false_matches, fixed.false_non_matches, fixed.fmr, fixed.fnmr) == \
        (op.false_matches, op.false_non_matches, op.fmr, op.fnmr)


def test_rates_at_threshold_hand_example_and_errors():
    from frmask.metrics.fixed import fnmr_ratio, rates_at_threshold

    # genuine 0.2 0.5 0.5 0.9, impostor 0.1 0.5 0.6; t = 0.5 accepts the ties: 1 FNM of 4, 2 FM of 3.
    op = rates_at_threshold([0.2, 0.5, 0.5, 0.9], [0.1, 0.5, 0.6], 0.5)
    assert (op.false_non_matches, op.fnmr, op.false_matches, op.fmr) == (1, 0.25, 2, 2 / 3)
    assert fnmr_ratio(0.5, 0.25) == 2.0 and fnmr_ratio(0.5, 0.0) is None
    for bad in (float("nan"), float("inf"), "x"):
        with pytest.raises(m.ScoreError, match="threshold"):
            rates_at_threshold([0.2], [0.1], bad)


def test_top_k_by_cut_agrees_with_chunked_selection():
    """The one-pass cut path (sampled cut, filter, partition) gives exactly the chunked path's values: ties,
    sorted input (a strided sample that misleads), NaN (ranked highest, as np.partition does), small chunks."""
    from frmask.metrics import _select

    rng = np.random.default_rng(11)
    ties = rng.integers(0, 50, 200_000).astype(np.float64)
    ascending = np.sort(rng.standard_normal(200_000))
    with_nan = rng.standard_normal(200_000).astype(np.float32)
    with_nan[[5, 777]] = np.nan
    for x in (ties, ascending, ascending[::-1].copy(), with_nan):
        for k in (1, 9, 1000, 12_000):
            fast = _select.top_k_desc(x, k, chunk=4096)
            orig, _select._top_k_by_cut = _select._top_k_by_cut, lambda *a: None
            try:
                slow = _select.top_k_desc(x, k, chunk=4096)
            finally:
                _select._top_k_by_cut = orig
            assert np.array_equal(fast, slow, equal_nan=True)
            assert np.array_equal(fast, np.sort(x)[::-1][:k], equal_nan=True)  # NaN sorts highest, as in partition
    assert _select._top_k_by_cut(with_nan, 1000, 4096) is not None  # the cut path itself ran


def test_int8_labels_viewed_and_checked():
    """0/1 int8 labels are used as a bool view; any other byte is still refused with its index."""
    from frmask.metrics._scores import genuine_mask

    s = np.array([0.1, 0.2, 0.3])
    assert genuine_mask(s, np.array([1, 0, 1], np.int8)).tolist() == [True, False, True]
    with pytest.raises(m.ScoreError, match="label at index 2 is -1"):
        genuine_mask(s, np.array([1, 0, -1], np.int8))
    with pytest.raises(m.ScoreError, match="label at index 0 is 2"):
        genuine_mask(s, np.array([2, 0, 1], np.uint8))
