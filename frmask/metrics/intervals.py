"""Confidence intervals: binomial intervals for one rate, and a subject-level bootstrap.

Face comparison scores are correlated within an identity (one bad photo of a subject spoils many pairs),
so resampling pairs as if independent gives intervals that are too narrow. :func:`bootstrap_ci` resamples
*subjects* with replacement (the subsets bootstrap of Bolle, Ratha and Pankanti, 2004): a genuine pair of
subject a is repeated m_a times and an impostor pair of subjects (a, b) m_a * m_b times, where m_x is how
often subject x was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from frmask.metrics._scores import ScoreError, as_score_array


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval [low, high] at ``level``."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n_resamples: int = 0


def rate_ci(errors: int, trials: int, level: float = 0.95, method: str = "wilson") -> Interval:
    """Binomial confidence interval for an error rate errors / trials.

    ``method="wilson"`` (Wilson score interval, no continuity correction) or ``"clopper-pearson"``
    (exact, conservative). Computed by :func:`scipy.stats.binomtest`.
    """
    from scipy.stats import binomtest

    methods = {"wilson": "wilson", "clopper-pearson": "exact"}
    if method not in methods:
        raise ScoreError(f"unknown interval method {method!r}; choose 'wilson' or 'clopper-pearson'")
    if not (0 < level < 1):
        raise ScoreError(f"confidence level must lie strictly between 0 and 1, got {level}")
    if trials < 1 or not (0 <= errors <= trials):
        raise ScoreError(f"need 0 <= errors <= trials and trials >= 1, got {errors} of {trials}")
    ci = binomtest(int(errors), int(trials)).proportion_ci(confidence_level=level, method=methods[method])
    return Interval(errors / trials, float(ci.low), float(ci.high), level, method)


def _subject_codes(genuine_subjects, impostor_subjects, n_g: int, n_i: int):
    gs = np.asarray(genuine_subjects)
    if gs.ndim == 2:
        if gs.shape[1] != 2 or np.any(gs[:, 0] != gs[:, 1]):
            raise ScoreError("genuine pairs must compare a subject with itself")
        gs = gs[:, 0]
    ims = np.asarray(impostor_subjects)
    if gs.shape != (n_g,):
        raise ScoreError(f"genuine_subjects must have one subject per genuine score ({n_g}), got shape {gs.shape}")
    if ims.shape != (n_i, 2):
        raise ScoreError(f"impostor_subjects must have shape ({n_i}, 2): the two subjects of each impostor pair")
    names, codes = np.unique(np.concatenate([gs.astype(str), ims.astype(str).ravel()]), return_inverse=True)
    return names.size, codes[:n_g], codes[n_g:].reshape(n_i, 2)


def subject_counts(rng: np.random.Generator, n_subjects: int) -> np.ndarray:
    """How often each of ``n_subjects`` subjects is drawn in one resample of subjects with replacement."""
    return np.bincount(rng.integers(0, n_subjects, n_subjects), minlength=n_subjects)


def bootstrap_resamples(genuine, impostor, *, genuine_subjects=None, impostor_subjects=None, n_boot: int = 1000,
                        seed: int = 0):
    """Yield ``n_boot`` resampled (genuine, impostor) pairs of arrays; see :func:`bootstrap_ci`."""
    g = as_score_array(genuine, "genuine")
    i = as_score_array(impostor, "impostor")
    if n_boot < 1:
        raise ScoreError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    by_subject = genuine_subjects is not None or impostor_subjects is not None
    if by_subject:
        if genuine_subjects is None or impostor_subjects is None:
            raise ScoreError("give both genuine_subjects and impostor_subjects to bootstrap by subject")
        n_subj, gc, ic = _subject_codes(genuine_subjects, impostor_subjects, g.size, i.size)
    for _ in range(n_boot):
        if by_subject:
            m = subject_counts(rng, n_subj)
            yield np.repeat(g, m[gc]), np.repeat(i, m[ic[:, 0]] * m[ic[:, 1]])
        else:
            yield g[rng.integers(0, g.size, g.size)], i[rng.integers(0, i.size, i.size)]


def percentile_interval(values, level: float) -> tuple[float, float]:
    """The two-sided percentile interval of bootstrap values."""
    if not (0 < level < 1):
        raise ScoreError(f"confidence level must lie strictly between 0 and 1, got {level}")
    lo, hi = np.quantile(np.asarray(values, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(genuine, impostor, statistic: Callable[[np.ndarray, np.ndarray], float], *,
                 genuine_subjects=None, impostor_subjects=None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic(genuine, impostor)``.

    With ``genuine_subjects`` (one id per genuine score) and ``impostor_subjects`` (two ids per impostor
    score, shape (n, 2)) whole subjects are resampled (module docstring); without them, genuine and
    impostor scores are resampled separately (pairs treated as independent, method ``"pairs"``).
    Resamples left without a genuine or impostor score are skipped. Deterministic for a given ``seed``.
    """
    if not (0 < level < 1):
        raise ScoreError(f"confidence level must lie strictly between 0 and 1, got {level}")
    estimate = float(statistic(as_score_array(genuine, "genuine"), as_score_array(impostor, "impostor")))
    values = [float(statistic(gb, ib))
              for gb, ib in bootstrap_resamples(genuine, impostor, genuine_subjects=genuine_subjects,
                                                impostor_subjects=impostor_subjects, n_boot=n_boot, seed=seed)
              if gb.size and ib.size]
    if not values:
        raise ScoreError("no bootstrap resample had both genuine and impostor scores")
    lo, hi = percentile_interval(values, level)
    by_subject = genuine_subjects is not None
    return Interval(estimate, lo, hi, level, "subjects" if by_subject else "pairs", len(values))
