"""Separation of the genuine and impostor score distributions."""

from __future__ import annotations

from frmask.metrics._scores import ScoreSets, prepare_scores
from frmask.metrics._select import mean_var


def fdr_of(s: ScoreSets) -> float:
    """Fisher discriminant ratio of prepared score sets; see :func:`fdr`."""
    mg, vg = mean_var(s.genuine)
    mi, vi = mean_var(s.impostor)
    num = (mg - mi) ** 2
    den = vg + vi
    if den == 0.0:
        return float("inf") if num > 0 else float("nan")
    return num / den


def fdr(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> float:
    """Fisher discriminant ratio (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2) with population variances.

    Computed in float64 over the acquired scores only (failures to acquire have no score, whatever the
    FTA policy). Returns inf when both sets are constant and different, NaN when constant and equal.
    The sign of the scores does not matter, so distances give the same value.
    """
    return fdr_of(prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta))
