"""ISO/IEC 19795-1 verification rates: operating points and exact DET/ROC step curves.

Decision rule: a comparison is accepted when ``score >= threshold`` (for distances, with
``higher_is_genuine=False``: when ``distance <= threshold``). With N_G genuine and N_I impostor
comparisons in the denominators (failures to acquire included under the default ``fta="reject"``):

* FMR(t)  = #{impostor score >= t} / N_I   (false match rate)
* FNMR(t) = (#{genuine score < t} + genuine FTA) / N_G   (false non-match rate)

Rates are exact ratios of integer counts, never interpolated. Targets are read as the decimal they print
as (``0.001`` is exactly 1/1000), so ``floor(target * N)`` has no rounding surprise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from frmask.metrics._scores import ScoreError, ScoreSets, allowed_errors, prepare_scores, rate_target
from frmask.metrics._select import reject_all_threshold, top_k_desc


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold and the exact error rates it achieves.

    ``threshold``: accept when score >= threshold (distance <= threshold for distance input).
    ``fmr``/``fnmr``: achieved rates; ``false_matches``/``false_non_matches`` the integer counts behind
    them; ``target`` the requested rate; ``below_resolution`` is True when the target is smaller than the
    finest step of the rate (1/N), in which case the strict rule can only reach a rate of 0.
    """

    threshold: float
    fmr: float
    fnmr: float
    target: float = float("nan")
    false_matches: int = 0
    false_non_matches: int = 0
    n_genuine: int = 0
    n_impostor: int = 0
    below_resolution: bool = False

    @property
    def tpr(self) -> float:
        """True positive (genuine acceptance) rate, 1 - FNMR."""
        return (self.n_genuine - self.false_non_matches) / self.n_genuine

    @property
    def accuracy(self) -> float:
        """Fraction of correct decisions at this threshold over all comparisons."""
        correct = (self.n_genuine - self.false_non_matches) + (self.n_impostor - self.false_matches)
        return correct / (self.n_genuine + self.n_impostor)

    def to_dict(self) -> dict:
        return asdict(self)


def _point(s: ScoreSets, t, fm: int, fnm: int, target, below: bool) -> OperatingPoint:
    return OperatingPoint(
        threshold=s.output_threshold(t), fmr=fm / s.n_impostor, fnmr=fnm / s.n_genuine,
        target=float(target), false_matches=fm, false_non_matches=fnm,
        n_genuine=s.n_genuine, n_impostor=s.n_impostor, below_resolution=below)


def _smallest_above(v, *arrays: np.ndarray):
    """The smallest value > v among the arrays, or the next representable value above v."""
    best = None
    for a in arrays:
        above = a[a > v]
        if above.size:
            m = above.min()
            best = m if best is None or m < best else best
    return best if best is not None else np.nextafter(v, v.dtype.type(np.inf))


def impostor_rank_for(s: ScoreSets, target) -> int:
    """The number k of false matches allowed by an FMR target: floor(target * N_I)."""
    return allowed_errors(rate_target(target, "target FMR"), s.n_impostor)


def point_at_fmr(s: ScoreSets, target, top: np.ndarray) -> OperatingPoint:
    """Strict operating point at an FMR target, given the impostor scores sorted descending.

    ``top`` must hold at least the k+1 largest acquired impostor scores (k = floor(target * N_I)),
    or all of them. See :func:`fnmr_at_fmr` for the rule.
    """
    k = impostor_rank_for(s, target)
    below = k == 0
    g = s.genuine
    if k >= s.impostor.size:
        # Every acquired impostor may match: accept everything.
        t = min(g.min(), s.impostor.min())
        return _point(s, t, int(s.impostor.size), s.rejected_genuine, target, below)
    if top.size < k + 1:
        raise ValueError("internal: not enough top impostor scores for this target")
    v = top[k]  # the (k+1)-th largest impostor score: thresholds must lie above it
    fm = int(np.count_nonzero(top[:k] > v))
    fnm = int(np.count_nonzero(g <= v)) + s.rejected_genuine
    t = _smallest_above(v, g, top[:k])
    return _point(s, t, fm, fnm, target, below)


def fnmr_at_fmr(genuine, impostor, fmr, *, higher_is_genuine: bool = True, fta: str = "reject") -> OperatingPoint:
    """The lowest FNMR among thresholds whose FMR is at most ``fmr`` (the strict ISO rule).

    With k = floor(fmr * N_I) false matches allowed and v the (k+1)-th largest impostor score, every
    threshold t > v has FMR <= fmr and no threshold t <= v does, so the best threshold is the smallest
    score above v: FNMR = #{genuine <= v} / N_G and FMR = #{impostor > v} / N_I (the achieved FMR, which
    is below the target when impostor scores tie at v). The returned threshold is the smallest observed
    score above v (or the next float above v when there is none). Targets below 1/N_I give FMR = 0 and
    set ``below_resolution``. Uses selection (``np.partition``) in chunks, never a full sort, so 1e8
    impostor scores are handled in O(n) time and bounded extra memory.
    """
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    k = impostor_rank_for(s, fmr)
    return point_at_fmr(s, fmr, top_k_desc(s.impostor, k + 1))


def tpr_at_far(genuine, impostor, far, *, higher_is_genuine: bool = True, fta: str = "reject") -> float:
    """True acceptance rate at the strict operating point of :func:`fnmr_at_fmr` (1 - FNMR)."""
    op = fnmr_at_fmr(genuine, impostor, far, higher_is_genuine=higher_is_genuine, fta=fta)
    return op.tpr


def point_at_fnmr(s: ScoreSets, target) -> OperatingPoint:
    """Strict operating point at an FNMR target; see :func:`fmr_at_fnmr`."""
    k = allowed_errors(rate_target(target, "target FNMR"), s.n_genuine) - s.rejected_genuine
    if k < 0:
        floor = s.rejected_genuine / s.n_genuine
        raise ScoreError(f"target FNMR {target} is below the failure-to-acquire floor {floor:.6g}: "
                         f"no threshold reaches it")
    g, i = s.genuine, s.impostor
    below = allowed_errors(rate_target(target), s.n_genuine) == 0
    if k >= g.size:
        t = reject_all_threshold(g, i)
    else:
        t = np.partition(g, k)[k]  # the (k+1)-th smallest genuine score
    fnm = int(np.count_nonzero(g < t)) + s.rejected_genuine
    fm = int(np.count_nonzero(i >= t))
    return _point(s, t, fm, fnm, target, below)


def fmr_at_fnmr(genuine, impostor, fnmr, *, higher_is_genuine: bool = True, fta: str = "reject") -> OperatingPoint:
    """The lowest FMR among thresholds whose FNMR is at most ``fnmr`` (mirror of :func:`fnmr_at_fmr`).

    With k = floor(fnmr * N_G) false non-matches allowed (genuine FTAs use part of that allowance), the
    best threshold is the (k+1)-th smallest acquired genuine score u: FNMR = #{genuine < u} / N_G and
    FMR = #{impostor >= u} / N_I. When every acquired genuine score may be rejected, nothing is accepted.
    Raises :class:`ScoreError` when genuine FTAs alone exceed the target.
    """
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    return point_at_fnmr(s, fnmr)


@dataclass(frozen=True)
class Curve:
    """Exact step points of a DET/ROC curve: one entry per candidate threshold.

    ``threshold[j]`` is accepted when score >= threshold[j]; ``fmr[j]`` and ``fnmr[j]`` are the exact
    rates there. Candidates are every distinct acquired score plus one threshold above all scores
    (nothing accepted: FMR = 0).
    """

    threshold: np.ndarray
    fmr: np.ndarray
    fnmr: np.ndarray

    @property
    def tpr(self) -> np.ndarray:
        return 1.0 - self.fnmr

    def __len__(self) -> int:
        return self.threshold.size


def curve_counts(s: ScoreSets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working-space thresholds (ascending) with the false-match and false-non-match counts at each."""
    g = np.sort(s.genuine)
    i = np.sort(s.impostor)
    t = np.unique(np.concatenate([g, i]))
    t = np.append(t, reject_all_threshold(g, i))
    fnm = np.searchsorted(g, t, side="left") + s.rejected_genuine
    fm = i.size - np.searchsorted(i, t, side="left")
    return t, fm.astype(np.int64), fnm.astype(np.int64)


def det_curve(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> Curve:
    """Exact DET step points, thresholds ascending (FMR falling, FNMR rising). Sorts the scores."""
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    t, fm, fnm = curve_counts(s)
    return Curve(s.sign * t.astype(np.float64), fm / s.n_impostor, fnm / s.n_genuine)


def roc_curve(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> Curve:
    """The same exact step points as :func:`det_curve`, thresholds descending (FMR rising), ROC order."""
    c = det_curve(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    return Curve(c.threshold[::-1].copy(), c.fmr[::-1].copy(), c.fnmr[::-1].copy())
