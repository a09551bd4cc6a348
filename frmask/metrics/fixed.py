"""Error rates at a fixed decision threshold: the deployed operating point, as NIST FRVT measures the effect of
masks (NISTIR 8311): the threshold is calibrated once on one set of comparisons (unmasked) and applied unchanged
to another (masked probes).

Rule (as everywhere in :mod:`frmask.metrics`): a comparison is accepted when ``score >= threshold`` (with
``higher_is_genuine=False``, distances: when ``distance <= threshold``); a score equal to the threshold is
accepted. With N_G genuine and N_I impostor comparisons in the denominators (failures to acquire included under
``fta="reject"``, where a genuine FTA is a false non-match and an impostor FTA a correct rejection):

* FMR(t)  = #{impostor score >= t} / N_I
* FNMR(t) = (#{genuine score < t} + genuine FTA) / N_G

exact ratios of integer counts. Applied to the scores a threshold was calibrated on (:func:`fnmr_at_fmr`), it
gives back that operating point's rates exactly.
"""

from __future__ import annotations

import math

import numpy as np

from frmask.metrics._scores import ScoreError, prepare_scores
from frmask.metrics.rates import OperatingPoint

__all__ = ["fnmr_ratio", "rates_at_threshold"]


def rates_at_threshold(genuine, impostor, threshold, *, higher_is_genuine: bool = True,
                       fta: str = "reject") -> OperatingPoint:
    """The :class:`OperatingPoint` of the fixed ``threshold`` (module docstring): achieved ``fmr`` and ``fnmr``
    with their integer counts; ``target`` is NaN (no target was searched for) and ``below_resolution`` False.
    A NaN or infinite threshold raises :class:`ScoreError`."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ScoreError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise ScoreError(f"threshold must be finite, got {threshold!r}")
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    t = s.sign * value  # working space (similarities), compared in float64: no rounding of the threshold
    fm = int(np.count_nonzero(s.impostor.astype(np.float64, copy=False) >= t))
    fnm = int(np.count_nonzero(s.genuine.astype(np.float64, copy=False) < t)) + s.rejected_genuine
    return OperatingPoint(threshold=value, fmr=fm / s.n_impostor, fnmr=fnm / s.n_genuine, false_matches=fm,
                          false_non_matches=fnm, n_genuine=s.n_genuine, n_impostor=s.n_impostor)


def fnmr_ratio(fnmr: float, baseline_fnmr: float) -> float | None:
    """``fnmr / baseline_fnmr``: how many times more often genuine comparisons fail than in the baseline at the
    same threshold. None when the baseline has no false non-match (the ratio is undefined; compare the rates)."""
    if not baseline_fnmr > 0:
        return None
    return float(fnmr) / float(baseline_fnmr)
