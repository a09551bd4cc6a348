"""Equal error rate, computed exactly from the DET step points (the FVC2000 definition).

The DET step functions FMR(t) (non-increasing) and FNMR(t) (non-decreasing) rarely cross exactly at a
threshold. Following Maio et al., "FVC2000: Fingerprint Verification Competition" (IEEE TPAMI 2002),
over the candidate thresholds T (every distinct acquired score, plus one threshold above all scores):

* t1 = the highest t in T with FNMR(t) <= FMR(t), and t2 = the lowest t in T with FNMR(t) >= FMR(t);
* if FNMR(t1) + FMR(t1) <= FNMR(t2) + FMR(t2), the EER interval is [FNMR(t1), FMR(t1)] and the EER
  threshold is t1; otherwise the interval is [FMR(t2), FNMR(t2)] and the threshold is t2;
* EER = the midpoint of the interval. When FMR = FNMR holds over a range of thresholds, the EER is that
  common rate and the threshold reported is the highest of the range. When even accepting everything
  gives FNMR > FMR (only possible with many genuine failures to acquire), t1 does not exist and t2 is used.

All comparisons are exact integer cross-multiplications of the counts. The search needs no sort of the
impostor scores: a bisection over the sorted distinct genuine scores, with one counting pass over the
impostors per step (about log2(n_genuine) passes), then the impostor scores that fall between the two
bracketing genuine scores are extracted and sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frmask.metrics._scores import ScoreSets, prepare_scores
from frmask.metrics._select import count_ge, reject_all_threshold, values_between


@dataclass(frozen=True)
class EqualErrorRate:
    """The EER, its interval [low, high] and the threshold it was read at (accept when score >= it)."""

    eer: float
    threshold: float
    low: float
    high: float


def _result(s: ScoreSets, t, fnm: int, fm: int, fnmr_side_low: bool) -> EqualErrorRate:
    ng, ni = s.n_genuine, s.n_impostor
    fnmr, fmr = fnm / ng, fm / ni
    low, high = (fnmr, fmr) if fnmr_side_low else (fmr, fnmr)
    eer = (fnm * ni + fm * ng) / (2 * ng * ni)  # exact midpoint, rounded once
    return EqualErrorRate(eer=eer, threshold=s.output_threshold(t), low=low, high=high)


def eer_point(s: ScoreSets) -> EqualErrorRate:
    """The FVC2000 EER of prepared score sets (see the module docstring)."""
    g = np.sort(s.genuine)
    imp = s.impostor
    ng, ni = s.n_genuine, s.n_impostor
    rg = s.rejected_genuine
    u, below_u = np.unique(g, return_index=True)  # distinct genuine values; #{g < u_j}
    m = u.size

    def fnmr_le_fmr(fnm: int, fm: int) -> bool:
        return fnm * ni <= fm * ng

    if not fnmr_le_fmr(rg, imp.size):
        # Accepting everything already gives FNMR > FMR: t1 does not exist, t2 is the lowest threshold.
        t = min(g[0], imp.min())
        return _result(s, t, rg, int(imp.size), fnmr_side_low=False)

    fm_cache: dict[int, int] = {}

    def fm_at(j: int) -> int:  # false matches at threshold u_j, 1 <= j <= m
        if j not in fm_cache:
            fm_cache[j] = count_ge(imp, u[j - 1])
        return fm_cache[j]

    # Bisection: D(u_lo) <= 0 < D(u_hi), with u_0 = -inf and u_{m+1} = +inf as sentinels.
    lo, hi = 0, m + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fnmr_le_fmr(int(below_u[mid - 1]) + rg, fm_at(mid)):
            lo = mid
        else:
            hi = mid
    j = lo
    fnm_inside = (int(below_u[j]) if j < m else g.size) + rg  # FNM on (u_j, u_{j+1}]
    fm_right = fm_at(j + 1) if j + 1 <= m else 0

    # Candidates in ascending threshold order, each (threshold, fnm, fm).
    cands: list[tuple] = []
    if j >= 1:
        cands.append((u[j - 1], int(below_u[j - 1]) + rg, fm_at(j)))
    between = np.sort(values_between(imp, u[j - 1] if j >= 1 else None, u[j] if j < m else None))
    if between.size:
        w, first = np.unique(between, return_index=True)
        for wk, fk in zip(w, first):
            cands.append((wk, fnm_inside, fm_right + int(between.size - fk)))
    if j < m:
        cands.append((u[j], fnm_inside, fm_right))
    else:
        cands.append((reject_all_threshold(g, imp), ng, 0))

    i1 = max(k for k, (_, fnm, fm) in enumerate(cands) if fnmr_le_fmr(fnm, fm))
    i2 = min(k for k, (_, fnm, fm) in enumerate(cands) if fm * ng <= fnm * ni)
    t1, fnm1, fm1 = cands[i1]
    t2, fnm2, fm2 = cands[i2]
    if (fnm1 - fnm2) * ni <= (fm2 - fm1) * ng:
        return _result(s, t1, fnm1, fm1, fnmr_side_low=True)
    return _result(s, t2, fnm2, fm2, fnmr_side_low=False)


def eer_info(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> EqualErrorRate:
    """EER with its interval and threshold (FVC2000 definition, module docstring)."""
    return eer_point(prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta))


def eer(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> float:
    """The equal error rate (FVC2000 definition: midpoint of the EER interval, module docstring)."""
    return eer_info(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta).eer


def eer_threshold(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> float:
    """The threshold at which the EER is read (t1 or t2 of the FVC2000 definition)."""
    return eer_info(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta).threshold
