"""Verification accuracy: at a threshold, the best over all thresholds, and k-fold (LFW protocol).

Accuracy = (true accepts + true rejects) / (N_G + N_I), accepting when score >= threshold. Under the
default ``fta="reject"`` a genuine failure to acquire is an error and an impostor one a correct rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frmask.metrics._scores import ScoreError, ScoreSets, as_score_array, prepare_scores
from frmask.metrics._select import CHUNK, reject_all_threshold, top_k_desc


def _count_ge_exact(x: np.ndarray, t: float) -> int:
    """#{x >= t} with the comparison done in float64 (a caller's threshold is never rounded)."""
    t = np.float64(t)
    return sum(int(np.count_nonzero(x[s:s + CHUNK] >= t)) for s in range(0, x.size, CHUNK))


def accuracy_at_threshold(genuine, impostor, threshold: float, *, higher_is_genuine: bool = True,
                          fta: str = "reject") -> float:
    """Fraction of correct decisions when accepting score >= threshold (distance <= threshold)."""
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    t = s.sign * float(threshold)
    correct = _count_ge_exact(s.genuine, t) + (s.impostor.size - _count_ge_exact(s.impostor, t))
    return (correct + s.rejected_impostor) / (s.n_genuine + s.n_impostor)


def max_accuracy_point(s: ScoreSets, top: np.ndarray | None = None) -> tuple[float, object]:
    """Best accuracy and its working-space threshold; see :func:`max_accuracy`.

    ``top`` may pass the impostor scores sorted descending if the caller already selected at least the
    min(N_G, N_I) + 1 largest (or all of them). Streamed sets (``n_acquired_impostor`` set) hold only such a
    top, and count the rest.
    """
    g = np.sort(s.genuine)
    imp = s.impostor
    n_imp = getattr(s, "n_acquired_impostor", imp.size)  # streamed sets hold only their top impostors
    k = min(g.size, n_imp)
    need = min(k + 1, n_imp)
    if top is None or top.size < need:
        top = top_k_desc(imp, need)
    top = top[:need]
    cand = np.unique(np.concatenate([g, top]))
    if top.size < n_imp:
        cand = cand[cand > top[k]]  # counts from `top` are exact only above its last value
    tp = g.size - np.searchsorted(g, cand, side="left")
    fp = top.size - np.searchsorted(top[::-1], cand, side="left")
    gain = tp - fp  # correct decisions relative to rejecting everything
    base = n_imp + s.rejected_impostor
    total = s.n_genuine + s.n_impostor
    if cand.size == 0 or gain.max() <= 0:
        return base / total, reject_all_threshold(g, imp)
    best = int(gain.max())
    j = int(np.flatnonzero(gain == best)[-1])  # ties: the highest threshold
    return (base + best) / total, cand[j]


def max_accuracy(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> tuple[float, float]:
    """The best accuracy over every threshold, exactly, and the threshold reaching it.

    Candidates are every distinct acquired score plus a threshold above all scores (reject everything).
    Ties go to the highest threshold (the strictest decision, as insightface's grid search picks the
    smallest distance). Only the min(N_G, N_I) + 1 largest impostor scores can matter (accepting more
    impostors than there are genuine scores is worse than rejecting everything), so they are found by
    selection and nothing is sorted but the genuine scores and that top.
    """
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    acc, t = max_accuracy_point(s)
    return acc, s.output_threshold(t)


@dataclass(frozen=True)
class KFoldAccuracy:
    """Per-fold accuracies of a k-fold protocol, their mean and population standard deviation."""

    mean: float
    std: float
    accuracies: np.ndarray
    thresholds: np.ndarray
    method: str


def kfold_splits(n: int, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) indices of ``folds`` contiguous folds of range(n), as sklearn's unshuffled KFold.

    The first n % folds folds hold one extra item; train is every other index, in order. With
    ``folds=1`` train = test = all indices (as insightface's LFold does).
    """
    n, folds = int(n), int(folds)
    if folds < 1 or folds > n:
        raise ScoreError(f"cannot split {n} pairs into {folds} folds (folds must be between 1 and {n})")
    indices = np.arange(n)
    if folds == 1:
        return [(indices, indices)]
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    stops = np.cumsum(sizes)
    return [(np.concatenate([indices[:stop - size], indices[stop:]]), indices[stop - size:stop])
            for size, stop in zip(sizes, stops)]


def _fold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
    """(start, stop) of each contiguous test fold, the folds of :func:`kfold_splits` without index arrays."""
    n, folds = int(n), int(folds)
    if folds < 1 or folds > n:
        raise ScoreError(f"cannot split {n} pairs into {folds} folds (folds must be between 1 and {n})")
    if folds == 1:
        return [(0, n)]
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops)]


def _gather(scores: np.ndarray, keep: np.ndarray, ranges) -> np.ndarray:
    """scores[keep] over the given index ranges, in order (slices: no index arrays)."""
    return np.concatenate([scores[a:b][keep[a:b]] for a, b in ranges])


def _fold_genuine_and_counts(scores, is_genuine, bounds) -> tuple[list[np.ndarray], np.ndarray]:
    """Each fold's genuine scores (input order), and per fold the counts (acquired genuine, NaN genuine,
    acquired impostor, NaN impostor): one pass over the pairs serves every training set."""
    floating = np.issubdtype(scores.dtype, np.floating)
    genuine, counts = [], []
    for a, b in bounds:
        x, lab = scores[a:b], is_genuine[a:b]
        g = x[lab]
        nan_g = int(np.count_nonzero(np.isnan(g))) if floating else 0
        nan_all = int(np.count_nonzero(np.isnan(x))) if floating else 0
        n_i = (b - a) - g.size
        genuine.append(g)
        counts.append((g.size - nan_g, nan_g, n_i - (nan_all - nan_g), nan_all - nan_g))
    return genuine, np.asarray(counts, dtype=np.int64).reshape(-1, 4)


def _training_sets(scores, folds_g, counts, others, f, folds, higher_is_genuine, fta):
    """The training ScoreSets of fold ``f`` as :func:`prepare_scores` would build them from the gathered
    training pairs, but holding as impostors only the top of the other folds' tops (all that
    :func:`max_accuracy_point` reads; the acquired count is carried, as streamed sets do). None when a
    training set lacks acquired genuine or impostor scores (the caller then raises prepare_scores' error)."""
    from frmask.metrics._scores import _split_failures, working_dtype
    from frmask.metrics.streaming import _StreamedSets

    train = counts.sum(axis=0) if folds == 1 else counts.sum(axis=0) - counts[f]
    acq_g, nan_g, acq_i, nan_i = (int(v) for v in train)
    if acq_g == 0 or acq_i == 0:
        return None
    raw_g = np.concatenate(folds_g if folds == 1 else folds_g[:f] + folds_g[f + 1:])
    g, _ = _split_failures(raw_g, "genuine", fta)
    dtype = working_dtype(scores)
    sign = 1 if higher_is_genuine else -1
    g = sign * g.astype(dtype, copy=False)
    top = top_k_desc(np.concatenate(others).astype(dtype, copy=False), min(acq_g, acq_i) + 1)
    return _StreamedSets(g, top, nan_g, nan_i, fta, sign, n_acquired_impostor=acq_i)


def _fold_impostor_tops(scores, is_genuine, bounds, higher_is_genuine) -> list[np.ndarray]:
    """The largest acquired impostor scores (working space, float64) of each fold, enough for any training set.

    The best-accuracy search of a training set needs its min(N_G, N_I) + 1 largest impostor scores
    (:func:`max_accuracy_point`); they lie among the union of each other fold's as many largest, and
    min(N_G, N_I) of a training set is at most that of all pairs. So one selection per fold serves all.
    """
    sign = 1.0 if higher_is_genuine else -1.0
    finite = ~np.isnan(scores)
    k = min(int(np.count_nonzero(is_genuine & finite)), int(np.count_nonzero(~is_genuine & finite))) + 1
    tops = []
    for a, b in bounds:
        x = scores[a:b][~is_genuine[a:b] & finite[a:b]].astype(np.float64, copy=False)  # a copy already
        tops.append(top_k_desc(x if sign > 0 else -x, k))
    return tops


def kfold_accuracy(scores, labels, folds: int = 10, *, method: str = "exact", higher_is_genuine: bool = True,
                   fta: str = "reject") -> KFoldAccuracy:
    """LFW-protocol accuracy: contiguous folds, a threshold chosen on the other folds, applied to each.

    ``method="exact"`` picks the threshold with :func:`max_accuracy` on the training folds (every distinct
    score is a candidate). ``method="insightface"`` reproduces insightface's evaluation: squared distances
    d = 2 - 2 * cosine (or the scores themselves with ``higher_is_genuine=False``), a grid of thresholds
    0, 0.01, ..., 3.99, "same" when d < threshold, the first best grid threshold. With ``folds=1`` the
    threshold is chosen and applied on all pairs. The std is the population standard deviation (ddof=0).
    """
    s_all = as_score_array(scores, "pair")
    from frmask.metrics._scores import genuine_mask

    lab = genuine_mask(s_all, labels)  # validates shape and labels
    if method == "insightface":
        return _insightface_kfold(s_all, lab, folds, higher_is_genuine, fta)
    if method != "exact":
        raise ScoreError(f"unknown k-fold method {method!r}; choose 'exact' or 'insightface'")
    bounds = _fold_bounds(s_all.size, folds)
    tops = _fold_impostor_tops(s_all, lab, bounds, higher_is_genuine)
    folds_g, counts = _fold_genuine_and_counts(s_all, lab, bounds)
    # Every training set is valid (no infinite score, no NaN under fta="error"): the training sets are
    # built from per-fold pieces without gathering their impostors (see _training_sets); otherwise
    # prepare_scores on the gathered sets raises its usual error.
    quick = not (np.issubdtype(s_all.dtype, np.floating) and np.isinf(s_all).any()) and \
        not (fta == "error" and counts[:, 1:4:2].any())
    accs, thrs = [], []
    for f, (a, b) in enumerate(bounds):
        rest = [(0, s_all.size)] if folds == 1 else [(0, a), (b, s_all.size)]
        others = tops if folds == 1 else tops[:f] + tops[f + 1:]
        s = _training_sets(s_all, folds_g, counts, others, f, folds, higher_is_genuine, fta) if quick else None
        if s is not None:
            top = s.impostor  # already the top the search needs
        else:
            try:
                s = prepare_scores(_gather(s_all, lab, rest), _gather(s_all, ~lab, rest),
                                   higher_is_genuine=higher_is_genuine, fta=fta)
            except ScoreError as exc:
                raise ScoreError(f"fold {f + 1}: the training folds cannot choose a threshold: {exc}") from None
            top = top_k_desc(np.concatenate(others).astype(s.dtype, copy=False),
                             min(s.genuine.size, s.impostor.size) + 1)
        _, t = max_accuracy_point(s, top)
        thr = s.output_threshold(t)
        accs.append(_accuracy_on(s_all[a:b], lab[a:b], s.sign * thr, s.sign, fta))
        thrs.append(thr)
    accs = np.asarray(accs)
    return KFoldAccuracy(float(accs.mean()), float(accs.std()), accs, np.asarray(thrs), "exact")


def _accuracy_on(scores: np.ndarray, genuine: np.ndarray, t: float, sign: int, fta: str) -> float:
    """Accuracy of the working-space threshold t on labelled pairs, NaN handled by the FTA policy."""
    x = sign * scores.astype(np.float64)
    nan = np.isnan(x)
    if fta == "exclude":
        x, genuine, nan = x[~nan], genuine[~nan], nan[~nan]
    accept = (x >= t) & ~nan
    correct = np.count_nonzero(accept == genuine)
    return correct / x.size if x.size else float("nan")


def _insightface_kfold(scores, issame, folds, higher_is_genuine, fta) -> KFoldAccuracy:
    from frmask.metrics.conventions import cosine_to_squared_distance, insightface_accuracy

    x = scores.astype(np.float64)
    nan = np.isnan(x)
    if np.isinf(x).any():
        raise ScoreError(f"pair score at index {int(np.flatnonzero(np.isinf(x))[0])} is infinite")
    if nan.any():
        if fta == "error":
            raise ScoreError(f"pair score at index {int(np.flatnonzero(nan)[0])} is NaN and the FTA policy is 'error'")
        if fta == "exclude":
            x, issame = x[~nan], issame[~nan]
    d = cosine_to_squared_distance(x) if higher_is_genuine else x
    d = np.where(np.isnan(d), np.inf, d)  # a failure to acquire is never accepted
    mean, std, accs, thrs = insightface_accuracy(d, issame, folds=folds)
    return KFoldAccuracy(float(mean), float(std), np.asarray(accs), np.asarray(thrs), "insightface")
