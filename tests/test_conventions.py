"""Tests for frmask.metrics.conventions: exact equality with pyeer and insightface conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import interpolate
from scipy.interpolate import BSpline

from frmask.metrics.conventions import (
    _slinear_scipy18,
    INSIGHTFACE_ACC_THRESHOLDS,
    INSIGHTFACE_VAL_THRESHOLDS,
    cosine_to_squared_distance,
    insightface_accuracy,
    insightface_folds,
    insightface_val_at_far,
    pyeer_curve,
    pyeer_eer,
    pyeer_fnmr_at_fmr,
)



def _import_pyeer_eer_info():
    """Import pyeer.eer_info, tolerating a setuptools without ``pkg_resources``.

    pyeer 0.5.6's report module does ``import pkg_resources`` at import time
    (only used when writing reports); setuptools >= 81 no longer ships it.
    get_eer_stats never touches it, so a temporary empty stub is enough.
    """
    import importlib
    import sys
    import types

    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        try:
            return importlib.import_module("pyeer.eer_info")
        finally:
            del sys.modules["pkg_resources"]
    return importlib.import_module("pyeer.eer_info")


try:
    eer_info = _import_pyeer_eer_info()
except ImportError:  # pragma: no cover - pyeer is a test dependency
    pytest.skip("pyeer is not installed", allow_module_level=True)
KFold = pytest.importorskip("sklearn.model_selection").KFold


# ---------------------------------------------------------------------------
# pyeer: the installed pyeer is the oracle
# ---------------------------------------------------------------------------

# pyeer attribute name -> FMR target used by get_eer_stats
PYEER_OPS = {"fmr0": 0.0, "fmr1000": 0.001, "fmr100": 0.01, "fmr20": 0.05, "fmr10": 0.1}


def pyeer_stats(genuine, impostor):
    with warnings.catch_warnings():
        # pyeer warns on AUC < 0.5 and on non-crossing curves; irrelevant to the oracle values.
        warnings.simplefilter("ignore")
        return eer_info.get_eer_stats(genuine, impostor, hformat=False, ds_scores=False)


def assert_matches_pyeer(genuine, impostor):
    ref = pyeer_stats(genuine, impostor)
    thr, fmr, fnmr = pyeer_curve(genuine, impostor)
    assert thr.dtype == fmr.dtype == fnmr.dtype == np.float64
    assert np.array_equal(thr, ref.thrs)
    assert np.array_equal(np.signbit(thr), np.signbit(ref.thrs))
    assert np.array_equal(fmr, ref.fmr)
    assert np.array_equal(fnmr, ref.fnmr)
    for name, op in PYEER_OPS.items():
        t, achieved, fn = pyeer_fnmr_at_fmr(genuine, impostor, op)
        assert t == getattr(ref, name + "_th"), name
        assert fn == getattr(ref, name), name
        assert achieved == ref.fmr[np.argmin(np.abs(ref.fmr - op))], name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eer, eer_t = pyeer_eer(genuine, impostor)
    assert eer == ref.eer
    assert eer_t == ref.eer_th


@pytest.mark.parametrize("seed", range(6))
def test_pyeer_random_overlapping(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.6, 0.15, rng.integers(1, 400))
    i = rng.normal(0.3, 0.15, rng.integers(1, 3000))
    assert_matches_pyeer(g, i)


@pytest.mark.parametrize("seed", range(4))
def test_pyeer_heavy_ties(seed):
    rng = np.random.default_rng(100 + seed)
    g = rng.integers(0, 6, rng.integers(1, 60)).astype(np.float64)
    i = rng.integers(0, 6, rng.integers(1, 200)).astype(np.float64)
    assert_matches_pyeer(g, i)


def test_pyeer_separated():
    rng = np.random.default_rng(7)
    assert_matches_pyeer(rng.uniform(0.7, 1.0, 200), rng.uniform(-1.0, 0.2, 5000))
    # reversed (genuine below impostors)
    assert_matches_pyeer(rng.uniform(-1.0, 0.2, 200), rng.uniform(0.7, 1.0, 500))


@pytest.mark.parametrize(
    ("g", "i"), [([0.5], [0.2]), ([0.2], [0.5]), ([0.3], [0.3]), ([1.0], [0.0, 0.0, 0.0, 1.0, 1.0])]
)
def test_pyeer_tiny(g, i):
    assert_matches_pyeer(np.array(g), np.array(i))


@pytest.mark.filterwarnings("ignore:It is possible that you had set the wrong score type:UserWarning")
def test_pyeer_all_equal_warns_like_pyeer():
    g = np.full(5, 0.4)
    i = np.full(9, 0.4)
    assert_matches_pyeer(g, i)
    with pytest.warns(RuntimeWarning):
        eer, t = pyeer_eer(g, i)
    assert (eer, t) == (1.0, 0.4)
    with pytest.warns(RuntimeWarning, match="do not intersect"):
        eer_info.get_eer_stats(g, i)


def test_pyeer_float32_input():
    rng = np.random.default_rng(3)
    g = rng.normal(0.6, 0.2, 300).astype(np.float32)
    i = rng.normal(0.3, 0.2, 2000).astype(np.float32)
    assert_matches_pyeer(g, i)
    # pyeer widens float32 exactly to float64: same results as widened input
    thr32, fmr32, fnmr32 = pyeer_curve(g, i)
    thr64, fmr64, fnmr64 = pyeer_curve(g.astype(np.float64), i.astype(np.float64))
    assert np.array_equal(thr32, thr64) and np.array_equal(fmr32, fmr64) and np.array_equal(fnmr32, fnmr64)
    assert pyeer_stats(g, i).thrs.dtype == np.float64


def test_pyeer_signed_zero_tie():
    g = np.array([-0.0, 0.5, 0.0])
    i = np.array([0.0, -0.0, 0.1])
    assert_matches_pyeer(g, i)
    assert_matches_pyeer(i, g)


def test_pyeer_curve_definition():
    g = np.array([3.0, 1.0, 2.0, 2.0])
    i = np.array([0.0, 2.0, 1.0])
    thr, fmr, fnmr = pyeer_curve(g, i)
    assert thr.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert fmr.tolist() == [3 / 3, 2 / 3, 1 / 3, 0 / 3]  # impostor >= t
    assert fnmr.tolist() == [0 / 4, 0 / 4, 1 / 4, 3 / 4]  # genuine < t


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40), st.lists(finite, min_size=1, max_size=80))
def test_pyeer_property_floats(g, i):
    assert_matches_pyeer(np.array(g), np.array(i))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=30),
    st.lists(st.integers(0, 5), min_size=1, max_size=60),
)
def test_pyeer_property_ties(g, i):
    assert_matches_pyeer(np.array(g, dtype=np.float64), np.array(i, dtype=np.float64))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=30),
    st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=60),
)
def test_pyeer_property_float32(g, i):
    assert_matches_pyeer(np.array(g, dtype=np.float32), np.array(i, dtype=np.float32))


def test_pyeer_fmr_op_may_exceed_target():
    # nearest-FMR rule: 1 false match in 60 (FMR 0.0167) is nearer to 0.01 than 0
    g = np.linspace(0.5, 1.0, 10)
    i = np.r_[np.linspace(0.0, 0.4, 59), 0.9]
    t, achieved, fnmr = pyeer_fnmr_at_fmr(g, i, 0.01)
    assert achieved == 1 / 60 > 0.01
    assert t == 0.5 and fnmr == 0.0  # first threshold with that FMR: the lowest genuine score


# ---------------------------------------------------------------------------
# insightface: independent plain-loop oracle from the protocol's definition
# ---------------------------------------------------------------------------


def oracle_splits(n, folds):
    if folds == 1:
        idx = np.arange(n)
        return [(idx, idx)]
    return list(KFold(n_splits=folds, shuffle=False).split(np.arange(n)))


def oracle_rates(threshold, dist, same):
    """(acc, val, far) at one threshold, "same" predicted iff dist < threshold (None if undefined)."""
    pred = np.less(dist, threshold)
    tp = int(np.sum(pred & same))
    fp = int(np.sum(pred & ~same))
    tn = int(np.sum(~pred & ~same))
    fn = int(np.sum(~pred & same))
    acc = float(tp + tn) / len(dist)
    val = float(tp) / float(tp + fn) if tp + fn else None
    far = float(fp) / float(fp + tn) if fp + tn else None
    return acc, val, far


def oracle_accuracy(dist, same, folds, thresholds):
    accs, thrs = [], []
    for train, test in oracle_splits(len(dist), folds):
        train_acc = [oracle_rates(t, dist[train], same[train])[0] for t in thresholds]
        best = 0
        for k in range(len(thresholds)):
            if train_acc[k] > train_acc[best]:
                best = k
        accs.append(oracle_rates(thresholds[best], dist[test], same[test])[0])
        thrs.append(thresholds[best])
    accs = np.array(accs)
    return np.mean(accs), np.std(accs), accs, np.array(thrs)


def scipy18_interp1d_slinear(x, y, x_new):
    """interp1d(x, y, kind='slinear')(x_new) of scipy <= 1.8, rebuilt from scipy's own BSpline.

    scipy <= 1.8 sorted x stably, then built BSpline(t=[x0, x..., x_last], c=y, k=1) without
    rejecting repeated x, and raised when x_new fell outside [x0, x_last].
    """
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order], y[order]
    if not xs[0] <= x_new <= xs[-1]:
        raise ValueError("x_new out of the interpolation range")
    spline = BSpline.construct_fast(np.r_[xs[0], xs, xs[-1]], np.ascontiguousarray(ys, dtype=float), 1)
    return spline(x_new)


def oracle_val(dist, same, far_target, folds, thresholds):
    vals, fars = [], []
    for train, test in oracle_splits(len(dist), folds):
        far_train = np.zeros(len(thresholds))
        for k, t in enumerate(thresholds):
            far_train[k] = oracle_rates(t, dist[train], same[train])[2]
        if far_train.max() >= far_target:
            if np.all(np.diff(far_train) > 0):  # current scipy still accepts it
                threshold = interpolate.interp1d(far_train, thresholds, kind="slinear")(far_target)
            else:
                threshold = scipy18_interp1d_slinear(far_train, thresholds, far_target)
        else:
            threshold = 0.0
        _, v, f = oracle_rates(threshold, dist[test], same[test])
        vals.append(v)
        fars.append(f)
    return np.mean(vals), np.std(vals), np.mean(fars)


def assert_accuracy_matches(dist, same, folds=10, thresholds=INSIGHTFACE_ACC_THRESHOLDS):
    mean, std, accs, thrs = insightface_accuracy(dist, same, folds=folds, thresholds=thresholds)
    rmean, rstd, raccs, rthrs = oracle_accuracy(dist, same, folds, thresholds)
    assert mean == rmean and std == rstd
    assert np.array_equal(accs, raccs) and np.array_equal(thrs, rthrs)
    return mean


def assert_val_matches(dist, same, far=1e-3, folds=10, thresholds=INSIGHTFACE_VAL_THRESHOLDS):
    got = insightface_val_at_far(dist, same, far=far, folds=folds, thresholds=thresholds)
    ref = oracle_val(dist, same, far, folds, thresholds)
    assert got == tuple(ref)
    return got


def lfw_shaped(seed, dim=64):
    """6000 pairs as in LFW's insightface .bin: 10 blocks of 300 same then 300 different."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6000, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(6000, dim))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    mix = np.where(same, rng.uniform(0.1, 1.0, 6000), 0.0)[:, None]
    e2 = mix * a + (1 - mix) * b
    e2 /= np.linalg.norm(e2, axis=1, keepdims=True)
    cos = np.sum(a * e2, axis=1)
    return cosine_to_squared_distance(cos), same


def test_cosine_to_squared_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 8))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(50, 8))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    d = cosine_to_squared_distance(np.sum(a * b, axis=1).astype(np.float32))
    assert d.dtype == np.float64
    assert np.allclose(d, np.sum((a - b) ** 2, axis=1), atol=1e-6)
    assert cosine_to_squared_distance(np.array([1.0, 0.0, -1.0])).tolist() == [0.0, 2.0, 4.0]


@pytest.mark.parametrize(("n", "folds"), [(6000, 10), (10, 10), (23, 10), (7, 3), (100, 7), (5, 2)])
def test_folds_match_sklearn_kfold(n, folds):
    ours = insightface_folds(n, folds)
    ref = list(KFold(n_splits=folds, shuffle=False).split(np.arange(n)))
    assert len(ours) == len(ref)
    for (tr, te), (rtr, rte) in zip(ours, ref):
        assert np.array_equal(tr, rtr) and np.array_equal(te, rte)


def test_folds_single_and_invalid():
    (tr, te), = insightface_folds(9, 1)
    assert np.array_equal(tr, np.arange(9)) and np.array_equal(te, np.arange(9))
    with pytest.raises(ValueError):
        insightface_folds(5, 10)
    with pytest.raises(ValueError):
        insightface_folds(5, 0)


def test_lfw_shaped_accuracy_and_val():
    dist, same = lfw_shaped(1)
    mean = assert_accuracy_matches(dist, same)
    assert 0.5 < mean < 1.0
    val, val_std, far = assert_val_matches(dist, same)
    assert 0.0 < val < 1.0 and far < 0.01


@pytest.mark.parametrize("seed", range(3))
def test_accuracy_random(seed):
    rng = np.random.default_rng(10 + seed)
    n = int(rng.integers(20, 400))
    same = rng.random(n) < 0.5
    dist = np.where(same, rng.normal(1.0, 0.4, n), rng.normal(1.6, 0.4, n)).clip(0, 4)
    assert_accuracy_matches(dist, same, folds=int(rng.integers(1, 11)))


def test_accuracy_ties_on_grid():
    # distances equal to grid thresholds: checks the strict "<" rule and first-max argmax
    rng = np.random.default_rng(5)
    n = 500
    same = rng.random(n) < 0.5
    k = np.where(same, rng.integers(40, 160, n), rng.integers(120, 240, n))
    dist = INSIGHTFACE_ACC_THRESHOLDS[k]
    assert_accuracy_matches(dist, same)
    coarse = np.arange(0, 4, 0.25)
    assert_accuracy_matches(np.round(dist * 4) / 4, same, folds=7, thresholds=coarse)


def test_accuracy_float32_distances():
    dist, same = lfw_shaped(2, dim=16)
    d32 = dist[:1200].astype(np.float32)
    assert_accuracy_matches(d32, same[:1200], folds=4)


@pytest.mark.parametrize("seed", range(3))
def test_val_random(seed):
    rng = np.random.default_rng(20 + seed)
    n = 600
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    dist = np.where(same, rng.normal(1.0, 0.4, n), rng.normal(1.7, 0.3, n)).clip(0, 4)
    grid = np.arange(0, 4, 0.01)
    for far in (1e-3, 1e-2, 0.1):
        assert_val_matches(dist, same, far=far, thresholds=grid)


def test_val_ties_on_grid():
    rng = np.random.default_rng(8)
    same = np.tile(np.r_[np.ones(40, bool), np.zeros(40, bool)], 5)
    grid = np.arange(0, 4, 0.05)
    k = np.where(same, rng.integers(10, 40, same.size), rng.integers(25, 60, same.size))
    dist = grid[k]
    for far in (1e-3, 0.05, 0.2):
        assert_val_matches(dist, same, far=far, folds=5, thresholds=grid)


def test_val_unreachable_far_uses_threshold_zero():
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 4)
    dist = np.where(same, 0.5, 5.0)  # impostors beyond the whole grid: FAR_train is always 0
    got = assert_val_matches(dist, same, folds=4)
    assert got == (0.0, 0.0, 0.0)


def test_val_far_below_training_range_raises_like_insightface():
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 4)
    dist = np.where(same, 0.5, 1.0)
    dist[~same] = np.where(np.arange((~same).sum()) % 5 == 0, -0.1, 1.0)  # FAR_train(0) = 0.2
    with pytest.raises(ValueError):
        oracle_val(dist, same, 1e-3, 4, INSIGHTFACE_VAL_THRESHOLDS)
    with pytest.raises(ValueError):
        insightface_val_at_far(dist, same, folds=4)


def test_val_degenerate_test_fold_raises():
    same = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    with pytest.raises(ValueError):
        insightface_val_at_far(np.linspace(0, 2, 20), same, folds=2)


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        insightface_accuracy(np.zeros(10), np.zeros(9, bool))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=12, max_size=60),
    st.integers(1, 6),
)
def test_insightface_property(pairs, folds):
    grid = np.arange(0, 2.2, 0.1)
    dist = grid[np.array([p[0] for p in pairs])]
    same = np.array([p[1] for p in pairs])
    assert_accuracy_matches(dist, same, folds=folds, thresholds=grid)
    splits = oracle_splits(len(dist), folds)
    if all(same[tr].sum() < len(tr) and 0 < same[te].sum() < len(te) for tr, te in splits):
        try:
            ref = oracle_val(dist, same, 0.1, folds, grid)
        except ValueError:
            with pytest.raises(ValueError):
                insightface_val_at_far(dist, same, far=0.1, folds=folds, thresholds=grid)
        else:
            assert insightface_val_at_far(dist, same, far=0.1, folds=folds, thresholds=grid) == tuple(ref)


def test_slinear_emulation_matches_scipy():
    rng = np.random.default_rng(11)
    zeros = 0
    for _ in range(3000):
        m = int(rng.integers(2, 25))
        if rng.random() < 0.6:
            x = np.sort(rng.integers(0, 7, m) / rng.integers(1, 9))  # many repeated x
        else:
            x = rng.random(m)  # unsorted, distinct
        y = rng.random(m) * 4
        x_new = x[rng.integers(m)] if rng.random() < 0.5 else rng.uniform(x.min(), x.max())
        got = _slinear_scipy18(x, y, x_new)
        assert got == scipy18_interp1d_slinear(x, y, x_new)
        if np.unique(x).size == m:
            assert got == interpolate.interp1d(x, y, kind="slinear")(x_new)
        zeros += got == 0.0
    assert zeros > 0  # the repeated-maximum corner case (value 0.0) was exercised
    with pytest.raises(ValueError):
        _slinear_scipy18(np.array([0.1, 0.2]), np.array([1.0, 2.0]), 0.05)
    with pytest.raises(ValueError):
        _slinear_scipy18(np.array([0.1, 0.2]), np.array([1.0, 2.0]), 0.25)


def test_current_scipy_rejects_insightface_far_curve():
    """Documents why the interpolation is emulated: FAR on a grid always repeats values."""
    dist, same = lfw_shaped(3)
    train = np.arange(600, 6000)
    imp = dist[train][~same[train]]
    far_train = np.array([np.mean(imp < t) for t in INSIGHTFACE_VAL_THRESHOLDS])
    assert np.any(np.diff(far_train) == 0)
    try:
        interpolate.interp1d(far_train, INSIGHTFACE_VAL_THRESHOLDS, kind="slinear")(1e-3)
    except ValueError as exc:  # scipy >= 1.9
        assert "duplicates" in str(exc)
    # the emulation answers with a threshold inside the grid
    assert 0.0 < _slinear_scipy18(far_train, INSIGHTFACE_VAL_THRESHOLDS, 1e-3) < 4.0


def test_val_far_equal_to_repeated_max_gives_threshold_zero():
    # 10 impostors per fold, grid stops before the farthest impostor: FAR_train tops out at
    # exactly 0.9 on several grid points; scipy<=1.8 slinear then returns 0.0 at far=0.9.
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 2)
    dist = np.where(same, 0.5, 1.0)
    dist[~same] = np.tile(np.r_[np.linspace(1.0, 1.8, 9), 3.5], 2)
    grid = np.arange(0, 2.5, 0.1)
    got = assert_val_matches(dist, same, far=0.9, folds=2, thresholds=grid)
    assert got == (0.0, 0.0, 0.0)
