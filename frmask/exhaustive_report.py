"""Verification reports of exhaustive block runs (:mod:`frmask.exhaustive`), exact where provable.

:func:`block_report` gives the usual :class:`~frmask.metrics.VerificationReport` keys of a merged
:class:`~frmask.exhaustive.BlockPart`:

* when every pair's score was kept (small sets): :func:`frmask.metrics.verification_report` of them, all
  exact;
* otherwise, from the accumulator: the FNMR at every declared FMR (``fmr100``, ``fmr1000``, ``tpr_at_far``,
  ``acc_at_far``, ``fnmr_at_fmr_<t>``) and the FDR are exact (the accumulator was sized with the exact
  impostor count); ``max_accuracy`` is exact when the buffer proves it (``max_accuracy_approximate``
  False), else the best accuracy at the histogram bin edges, a lower bound within ``max_accuracy_bound``
  of the true value; ``eer`` is always the histogram estimate (``eer_approximate`` True) with
  ``|EER - eer| <= eer_bound``, and ``eer_threshold`` is None.

Which pairs a run keeps for ``scores.csv`` (:func:`top_impostors_kept`): every pair up to
:data:`ALL_SCORES_LIMIT` pairs; above it every genuine pair and the k + 1 highest impostor pairs, where k =
floor(min target * N_I) is the number of false matches the smallest declared FMR allows (they decide the
FNMR there).
"""

from __future__ import annotations

import numpy as np

ALL_SCORES_LIMIT = 1_000_000  # pairs: up to this, every score goes to scores.csv


def top_impostors_kept(cs, fmr_targets, *, far: float = 0.002, all_scores: bool = False) -> int | None:
    """How many impostor pairs a run keeps with their scores (module docstring): None for all."""
    from frmask.exhaustive import declared_targets
    from frmask.metrics._scores import allowed_errors, rate_target

    if all_scores or cs.n_pairs <= ALL_SCORES_LIMIT:
        return None
    smallest = min(declared_targets(far, fmr_targets))
    return allowed_errors(rate_target(smallest), max(1, cs.n_impostor)) + 1


def kept_scores(part, cs) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) float32 scores of a run that kept every pair, NaN for the pairs lost to failures
    to acquire (as a pair path gives them)."""
    nan = np.float32(np.nan)
    g = np.concatenate([part.genuine.score, np.full(cs.fta_genuine, nan, np.float32)])
    i = np.concatenate([part.impostor.score, np.full(cs.fta_impostor, nan, np.float32)])
    return g, i


def _edge_accuracy(acc) -> tuple[float, float, float]:
    """(best accuracy at the bin edges, its threshold, bound): between edges e_j <= t < e_{j+1} the
    accuracy exceeds that at e_j by at most the impostor count of bin j over N_G + N_I."""
    thresholds, fmr, fnmr, _ = acc.approximate_det()
    ng, ni = acc.n_genuine, acc.n_impostor
    fm = np.rint(fmr * ni)
    fnm = np.rint(fnmr * ng)
    correct = (ng - fnm) + (ni - fm)
    j = int(np.flatnonzero(correct == correct.max())[-1])
    inner = acc.impostor_histogram.counts
    bound = float(max(int(inner.max()), acc.impostor_histogram.overflow, acc.impostor_histogram.underflow)) / (ng + ni)
    return float(correct[j] / (ng + ni)), float(thresholds[j]), bound


def block_report(part, cs, *, far: float = 0.002, fmr_targets=()):
    """The :class:`~frmask.metrics.VerificationReport` of a merged block run (module docstring)."""
    from frmask.metrics import VerificationReport, verification_report
    from frmask.metrics.report import STABLE_KEYS, fta_note, resolution_notes, target_key
    from frmask.metrics.streaming import InexactError

    if part.keep_impostors is None:
        g, i = kept_scores(part, cs)
        rep = verification_report(g, i, far=far, fmr_targets=fmr_targets, fta=cs.fta)
        details = {**rep.details, "eer_approximate": False, "eer_bound": 0.0, "max_accuracy_approximate": False,
                   "max_accuracy_bound": 0.0}
        return VerificationReport(**{k: getattr(rep, k) for k in STABLE_KEYS}, far=rep.far, convention=rep.convention,
                                  fta_policy=rep.fta_policy, details=details, notes=rep.notes)
    acc = part.accumulator
    p100, p1000, pfar = (acc.fnmr_at_fmr(t) for t in (0.01, 0.001, far))
    eer, eer_bound = acc.approximate_eer()
    try:
        best, best_t = acc.max_accuracy()
        acc_approx, acc_bound = False, 0.0
    except InexactError:
        best, best_t, acc_bound = _edge_accuracy(acc)
        acc_approx = True
    details = dict(fmr100_threshold=p100.threshold, fmr100_fmr=p100.fmr, fmr1000_threshold=p1000.threshold,
                   fmr1000_fmr=p1000.fmr, eer_threshold=None, far_threshold=pfar.threshold, far_fmr=pfar.fmr,
                   max_accuracy_threshold=best_t)
    extra = []
    for t in fmr_targets:
        p = acc.fnmr_at_fmr(t)
        details[target_key(t)] = p.fnmr
        details[target_key(t) + "_threshold"] = p.threshold
        extra.append((t, p))
    details.update(eer_approximate=True, eer_bound=eer_bound, max_accuracy_approximate=acc_approx,
                   max_accuracy_bound=acc_bound)
    notes = resolution_notes(p100, p1000, pfar, far, extra, acc.n_impostor)
    if acc.n_fta:
        notes.append(fta_note(cs.fta_genuine, cs.fta_impostor, cs.fta))
    notes.append(f"eer is estimated from a {acc.impostor_histogram.counts.size}-bin histogram: the exact EER is "
                 f"within {eer_bound:.2g} of it" + (f"; max_accuracy is the best at the bin edges, within "
                                                    f"{acc_bound:.2g} of the exact value" if acc_approx else ""))
    return VerificationReport(n_genuine=acc.n_genuine, n_impostor=acc.n_impostor, n_fta=acc.n_fta, fmr100=p100.fnmr,
                              fmr1000=p1000.fnmr, eer=eer, fdr=acc.fdr(), tpr_at_far=pfar.tpr,
                              acc_at_far=pfar.accuracy, max_accuracy=best, far=float(far), convention="iso",
                              fta_policy=cs.fta, details=details, notes=tuple(notes))
