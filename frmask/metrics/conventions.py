"""Compatibility conventions: reproduce figures published with pyeer and insightface.

frmask's default metrics follow ISO/IEC 19795-1 strictly (an operating point
"FNMR @ FMR = x" uses the best threshold whose FMR does not exceed x).  Many
papers instead report numbers produced by two popular tools whose
conventions differ; the functions here re-implement those conventions
exactly (bit-for-bit equal results, not approximations), so that published
figures can be reproduced and compared like with like.  They are *not* the
ISO values and should be labelled as such:

* **pyeer** (``pyeer.eer_info.get_eer_stats`` with ``hformat=False``,
  ``ds_scores=False``).  Every distinct observed score is a threshold and a
  comparison is a match when ``score >= t``.  "FMR100"/"FMR1000" is the FNMR at
  the threshold whose FMR is *nearest* to the target, which may lie *above*
  the target (ISO would never exceed it).  The EER is the midpoint of FMR and
  FNMR at one of the two thresholds bracketing the crossing.
* **insightface** (``recognition/arcface_torch/eval/verification.py``, the
  LFW-style protocol).  Scores are squared L2 distances of L2-normalised
  embeddings, "same" is predicted when ``distance < t`` (strict), thresholds
  come from a coarse fixed grid, accuracy is a 10-fold cross-validated mean,
  and VAL@FAR uses a threshold *linearly interpolated* on the training folds'
  FAR-vs-threshold grid, so the FAR achieved on the test folds is only near
  the target.  That interpolation is scipy's ``interp1d(kind='slinear')`` as
  it behaved up to scipy 1.8, which accepted the repeated FAR values that a
  threshold grid always produces; scipy >= 1.9 raises "Expect x to not have
  duplicates" there (insightface issues #2152, #2290), so it is emulated
  here (see :func:`insightface_val_at_far`).

Inputs are 1-D numeric arrays without NaN/inf (validated upstream); only
numpy is needed.  Both tools work in float64: float32 (or float16) input is
widened exactly to float64 before any comparison.  pyeer 0.5.6 does the same
(its ``np.array`` of ``(np.float32, int)`` tuples comes out float64), and
insightface's own pipeline holds embeddings, hence distances, in float64.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "pyeer_curve",
    "pyeer_fnmr_at_fmr",
    "pyeer_eer",
    "cosine_to_squared_distance",
    "insightface_folds",
    "insightface_accuracy",
    "insightface_val_at_far",
    "INSIGHTFACE_ACC_THRESHOLDS",
    "INSIGHTFACE_VAL_THRESHOLDS",
]

#: Default threshold grid of insightface's accuracy protocol (``np.arange(0, 4, 0.01)``).
INSIGHTFACE_ACC_THRESHOLDS: np.ndarray = np.arange(0, 4, 0.01)
#: Default threshold grid of insightface's VAL@FAR protocol (``np.arange(0, 4, 0.001)``).
INSIGHTFACE_VAL_THRESHOLDS: np.ndarray = np.arange(0, 4, 0.001)


def _as_f64(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    return arr


# ---------------------------------------------------------------------------
# pyeer
# ---------------------------------------------------------------------------


def pyeer_curve(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pyeer's ROC: ``(thresholds, fmr, fnmr)`` as float64 arrays.

    Thresholds are the ascending distinct values of genuine ∪ impostor
    (similarity scores).  At threshold ``t``: FM = #impostor >= t and
    FNM = #genuine < t (ties at ``t`` are matches); FMR = FM / n_impostor,
    FNMR = FNM / n_genuine.  Of equal values such as -0.0 and 0.0 the
    threshold keeps the first one in (genuine, impostor) order, as pyeer does.
    """
    g = _as_f64(genuine, "genuine")
    i = _as_f64(impostor, "impostor")
    both = np.sort(np.concatenate((g, i)), kind="stable")
    first = np.empty(both.size, dtype=bool)
    first[0] = True
    np.not_equal(both[1:], both[:-1], out=first[1:])
    thresholds = both[first]
    fnm = np.searchsorted(np.sort(g), thresholds, side="left")
    fm = i.size - np.searchsorted(np.sort(i), thresholds, side="left")
    return thresholds, fm / i.size, fnm / g.size


def pyeer_fnmr_at_fmr(genuine: np.ndarray, impostor: np.ndarray, fmr: float) -> tuple[float, float, float]:
    """pyeer's "FMR<op>" operating point: ``(threshold, fmr_achieved, fnmr)``.

    Picks the *first* (lowest) threshold minimising ``|FMR - fmr|``
    (``np.argmin``), so the achieved FMR may exceed the target.  pyeer's
    ``fmr100`` / ``fmr1000`` / ``fmr0`` use ``fmr`` = 0.01 / 0.001 / 0.
    """
    thresholds, fmr_curve, fnmr_curve = pyeer_curve(genuine, impostor)
    idx = int(np.argmin(np.abs(fmr_curve - fmr)))
    return float(thresholds[idx]), float(fmr_curve[idx]), float(fnmr_curve[idx])


def pyeer_eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """pyeer's EER: ``(eer, threshold)``.

    With ``d = FMR - FNMR`` over ascending thresholds, ``t2`` is the first
    index with ``d <= 0`` and ``t1 = t2 - 1`` (or ``t2`` when ``d[t2] == 0``
    or ``t2 == 0``); the index with the smaller ``FMR + FNMR`` wins (``t1`` on
    ties) and EER = (FNMR + FMR) / 2 there.  If ``d`` never reaches 0 (e.g.
    every genuine score equals the maximum score) pyeer gives up: this
    returns ``(1.0, lowest threshold)`` and emits a ``RuntimeWarning``.
    """
    thresholds, fmr, fnmr = pyeer_curve(genuine, impostor)
    diff = fmr - fnmr
    crossing = np.flatnonzero(diff <= 0)
    if crossing.size == 0:
        warnings.warn(
            "pyeer convention: the FMR and FNMR curves do not cross; EER reported as 1 "
            "(as pyeer does). Are these dissimilarity scores?",
            RuntimeWarning,
            stacklevel=2,
        )
        return 1.0, float(thresholds[0])
    t2 = int(crossing[0])
    t1 = t2 - 1 if (diff[t2] != 0 and t2 != 0) else t2
    k = t1 if fmr[t1] + fnmr[t1] <= fmr[t2] + fnmr[t2] else t2
    return float((fnmr[k] + fmr[k]) / 2), float(thresholds[k])


# ---------------------------------------------------------------------------
# insightface
# ---------------------------------------------------------------------------


def cosine_to_squared_distance(scores: np.ndarray) -> np.ndarray:
    """Cosine similarity of unit vectors -> squared L2 distance, ``2 - 2*s`` (float64).

    Direction flips: higher similarity = smaller distance.  Note insightface
    computes ``sum((e1 - e2)**2)`` from the embeddings, whose rounding can
    differ from ``2 - 2*cos`` in the last bits; pass its distances directly
    for bit-exact reproduction.
    """
    return 2.0 - 2.0 * np.asarray(scores, dtype=np.float64)


def insightface_folds(n: int, folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """insightface's ``LFold`` split of ``range(n)``: list of ``(train_idx, test_idx)``.

    Contiguous, unshuffled folds exactly as ``sklearn.model_selection.KFold``
    (the first ``n % folds`` folds get one extra item; train = the rest, in
    order).  ``folds == 1`` gives train = test = all indices.
    """
    from frmask.metrics.accuracy import kfold_splits

    return kfold_splits(n, folds)


def _split_inputs(distances: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = _as_f64(distances, "distances")
    same = np.asarray(issame).ravel().astype(bool)
    if same.shape != d.shape:
        raise ValueError(f"distances ({d.size}) and issame ({same.size}) lengths differ")
    return d, same


def _count_below(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of values strictly below each threshold (values sorted ascending)."""
    return np.searchsorted(sorted_values, thresholds, side="left")


def insightface_accuracy(
    distances: np.ndarray,
    issame: np.ndarray,
    folds: int = 10,
    thresholds: np.ndarray | None = None,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """insightface's cross-validated verification accuracy.

    Returns ``(mean_accuracy, std_accuracy, per_fold_accuracies,
    per_fold_thresholds)``.  "Same" is predicted when ``distance < t``
    (strict; lower distance = same person).  On each fold the grid threshold
    with the highest *training* accuracy (first one on ties, ``np.argmax``)
    is applied to the test fold; the std is the population std (``np.std``).
    ``thresholds`` defaults to ``np.arange(0, 4, 0.01)``.
    """
    d, same = _split_inputs(distances, issame)
    grid = INSIGHTFACE_ACC_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ValueError("thresholds must not be empty")
    accs = []
    best_thr = []
    for train, test in insightface_folds(d.size, folds):
        dtr, str_ = d[train], same[train]
        gen = np.sort(dtr[str_])
        imp = np.sort(dtr[~str_])
        tp = _count_below(gen, grid)
        tn = imp.size - _count_below(imp, grid)
        acc_train = (tp + tn) / dtr.size
        t = grid[int(np.argmax(acc_train))]
        dte, ste = d[test], same[test]
        pred = dte < t
        accs.append(np.count_nonzero(pred == ste) / dte.size)
        best_thr.append(t)
    accs_arr = np.asarray(accs, dtype=np.float64)
    return float(np.mean(accs_arr)), float(np.std(accs_arr)), accs_arr, np.asarray(best_thr, dtype=np.float64)


def _slinear_scipy18(x: np.ndarray, y: np.ndarray, x_new: float) -> float:
    """``scipy.interpolate.interp1d(x, y, kind='slinear')(x_new)`` as in scipy <= 1.8.

    That version built a degree-1 B-spline with knots ``[x0, x0..x_{m-1}, x_{m-1}]``
    and coefficients ``y`` (after a stable sort on ``x``) *without* rejecting
    repeated ``x``.  Evaluation picks the knot interval of the *last* knot
    ``<= x_new`` (capped at the last interval) and applies the de Boor step
    ``y[l-1]*(w*(xb-x)) + y[l]*(w*(x-xa))`` with ``w = 1/(xb-xa)``; a
    zero-length last interval (x_new equal to a repeated maximum) yields 0.0.
    Bit-identical to scipy's BSpline evaluation and, without duplicates, to
    current ``interp1d``.  Out-of-range ``x_new`` raises ``ValueError`` as
    ``interp1d``'s default ``bounds_error`` does.
    """
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ys = y[order]
    m = xs.size
    if m < 2:
        raise ValueError("x and y arrays must have at least 2 entries")
    if x_new < xs[0]:
        raise ValueError("A value in x_new is below the interpolation range.")
    if x_new > xs[-1]:
        raise ValueError("A value in x_new is above the interpolation range.")
    ell = min(m - 1, int(np.searchsorted(xs, x_new, side="right")))
    xa = xs[ell - 1]
    xb = xs[ell]
    if xb == xa:
        return 0.0
    w = 1.0 / (xb - xa)
    return float((0.0 + ys[ell - 1] * (w * (xb - x_new))) + ys[ell] * (w * (x_new - xa)))


def insightface_val_at_far(
    distances: np.ndarray,
    issame: np.ndarray,
    far: float = 1e-3,
    folds: int = 10,
    thresholds: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """insightface's cross-validated VAL @ FAR: ``(val_mean, val_std, far_mean)``.

    Per fold, FAR on the training part is computed at every grid threshold
    ("same" iff ``distance < t``, strict).  If its maximum reaches ``far`` the
    threshold is ``interp1d(far_train, grid, kind='slinear')(far)`` with the
    scipy <= 1.8 semantics that insightface's published numbers were
    computed with (repeated FAR values allowed; identical to current scipy
    wherever current scipy does not raise); otherwise it is 0.0.  VAL (= TAR)
    and FAR are then measured on the test fold; means and population std
    over folds.  ``thresholds`` defaults to
    ``np.arange(0, 4, 0.001)``.  Raises ``ValueError`` where insightface
    would divide by zero (a training fold without impostors, or a test fold
    without genuine or impostor pairs) and, like it, when ``far`` lies below
    the training FAR range (scipy's bounds error).
    """
    d, same = _split_inputs(distances, issame)
    grid = INSIGHTFACE_VAL_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ValueError("thresholds must not be empty")
    vals = []
    fars = []
    for k, (train, test) in enumerate(insightface_folds(d.size, folds)):
        imp_train = np.sort(d[train][~same[train]])
        if imp_train.size == 0:
            raise ValueError(f"fold {k}: training part has no impostor pairs")
        far_train = _count_below(imp_train, grid) / imp_train.size
        if np.max(far_train) >= far:
            threshold = _slinear_scipy18(far_train, grid, float(far))
        else:
            threshold = 0.0
        dte, ste = d[test], same[test]
        n_same = np.count_nonzero(ste)
        n_diff = ste.size - n_same
        if n_same == 0 or n_diff == 0:
            raise ValueError(f"fold {k}: test part needs both genuine and impostor pairs")
        pred = dte < threshold
        vals.append(np.count_nonzero(pred & ste) / n_same)
        fars.append(np.count_nonzero(pred & ~ste) / n_diff)
    vals_arr = np.asarray(vals, dtype=np.float64)
    return float(np.mean(vals_arr)), float(np.std(vals_arr)), float(np.mean(np.asarray(fars, dtype=np.float64)))
