"""Brute-force reference implementations: every candidate threshold evaluated directly from the definitions.

Slow (O(n^2)) and obviously correct; used to check frmask.metrics on small inputs. Candidate thresholds are
every distinct score plus one above all scores (nothing accepted); accept when score >= t.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def candidates(g, i):
    g = np.asarray(g, dtype=np.float64)
    i = np.asarray(i, dtype=np.float64)
    ts = sorted(set(g.tolist()) | set(i.tolist()))
    return ts + [float(np.nextafter(max(ts), np.inf))]


def counts(g, i, t, fta_g=0):
    """(false matches, false non-matches) at threshold t."""
    fm = sum(1 for x in i if x >= t)
    fnm = sum(1 for x in g if x < t) + fta_g
    return fm, fnm


def strict_fnmr_at_fmr(g, i, target, fta_g=0, fta_i=0):
    """(threshold, fm, fnm): the smallest candidate threshold whose FMR <= target (lowest FNMR)."""
    n_i = len(i) + fta_i
    t_ok = [t for t in candidates(g, i) if Fraction(counts(g, i, t)[0], n_i) <= Fraction(repr(float(target)))]
    t = min(t_ok)
    fm, fnm = counts(g, i, t, fta_g)
    return t, fm, fnm


def strict_fmr_at_fnmr(g, i, target, fta_g=0):
    """(threshold, fm, fnm): the largest candidate threshold whose FNMR <= target (lowest FMR)."""
    n_g = len(g) + fta_g
    t_ok = [t for t in candidates(g, i) + [min(candidates(g, i))]
            if Fraction(counts(g, i, t, fta_g)[1], n_g) <= Fraction(repr(float(target)))]
    t = max(t_ok)
    fm, fnm = counts(g, i, t, fta_g)
    return t, fm, fnm


def fvc_eer(g, i, fta_g=0, fta_i=0):
    """(eer, threshold) by the FVC2000 rule over every candidate threshold, with exact fractions."""
    n_g, n_i = len(g) + fta_g, len(i) + fta_i
    pts = []
    for t in candidates(g, i):
        fm, fnm = counts(g, i, t, fta_g)
        pts.append((t, Fraction(fnm, n_g), Fraction(fm, n_i)))
    le = [p for p in pts if p[1] <= p[2]]
    ge = [p for p in pts if p[1] >= p[2]]
    if not le:
        t, fnmr, fmr = ge[0]
        return float((fnmr + fmr) / 2), t
    t1, fnmr1, fmr1 = max(le, key=lambda p: p[0])
    t2, fnmr2, fmr2 = min(ge, key=lambda p: p[0])
    if fnmr1 + fmr1 <= fnmr2 + fmr2:
        return float((fnmr1 + fmr1) / 2), t1
    return float((fnmr2 + fmr2) / 2), t2


def max_accuracy(g, i, fta_g=0, fta_i=0):
    """(accuracy, threshold): best accuracy over every candidate; ties -> highest threshold."""
    n = len(g) + len(i) + fta_g + fta_i
    best = None
    for t in candidates(g, i):
        fm, fnm = counts(g, i, t, fta_g)
        correct = (len(g) + fta_g - fnm) + (len(i) + fta_i - fm)
        if best is None or correct >= best[0]:
            best = (correct, t)
    return best[0] / n, best[1]


def fdr(g, i):
    g = [Fraction(x) for x in np.asarray(g, dtype=np.float64).tolist()]
    i = [Fraction(x) for x in np.asarray(i, dtype=np.float64).tolist()]
    mg, mi = sum(g) / len(g), sum(i) / len(i)
    vg = sum((x - mg) ** 2 for x in g) / len(g)
    vi = sum((x - mi) ** 2 for x in i) / len(i)
    if vg + vi == 0:
        return float("inf") if mg != mi else float("nan")
    return float((mg - mi) ** 2 / (vg + vi))
