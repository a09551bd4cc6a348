"""Validated score sets: the input layer every metric goes through.

Conventions (see ``frmask.metrics`` for the full list):

* Scores are similarities (higher = more likely the same person); ``higher_is_genuine=False`` accepts
  distances, which are negated internally and whose thresholds are negated back on output, so a
  distance pair is accepted when ``distance <= threshold``.
* A NaN score is a failure to acquire (FTA: a missing template). The ``fta`` policy decides:
  ``"reject"`` (default, ISO/IEC 19795-1 generalised rates, as NIST does): the pair stays in the
  denominators and always counts as a non-match (a genuine FTA is a false non-match, an impostor FTA a
  correct rejection); ``"exclude"``: the pair is removed from the denominators; ``"error"``: raise.
  FTAs are always counted and reported, never dropped silently.
* Infinite scores are always an error: they are not missing templates but broken scores.
* Float32 input stays float32 (no copy of a large impostor set); anything else is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

FTA_POLICIES = ("reject", "exclude", "error")


class ScoreError(ValueError):
    """Invalid scores, labels or targets given to a metric."""


@dataclass(frozen=True)
class ScoreSets:
    """Finite genuine and impostor similarity scores plus the failure-to-acquire bookkeeping.

    ``genuine`` and ``impostor`` hold only acquired (finite) scores, as similarities, in the working
    dtype. ``sign`` is +1 for similarity input and -1 for distance input (thresholds are multiplied by
    it on output).
    """

    genuine: np.ndarray
    impostor: np.ndarray
    fta_genuine: int = 0
    fta_impostor: int = 0
    fta_policy: str = "reject"
    sign: int = 1

    @property
    def n_fta(self) -> int:
        return self.fta_genuine + self.fta_impostor

    @property
    def rejected_genuine(self) -> int:
        """Genuine pairs that count as false non-matches at every threshold (FTA under ``reject``)."""
        return self.fta_genuine if self.fta_policy == "reject" else 0

    @property
    def rejected_impostor(self) -> int:
        """Impostor pairs that count as correct rejections at every threshold (FTA under ``reject``)."""
        return self.fta_impostor if self.fta_policy == "reject" else 0

    @property
    def n_genuine(self) -> int:
        """Genuine comparisons in the rate denominators."""
        return self.genuine.size + self.rejected_genuine

    @property
    def n_impostor(self) -> int:
        """Impostor comparisons in the rate denominators."""
        return self.impostor.size + self.rejected_impostor

    @property
    def dtype(self) -> np.dtype:
        return self.genuine.dtype

    def output_threshold(self, t) -> float:
        """A working-space threshold as the caller sees it (negated back for distances)."""
        return float(self.sign * t)

    def input_threshold(self, t: float):
        """A caller's threshold in working space, in the working dtype."""
        return self.dtype.type(self.sign * t)


def working_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 when every input fits float32 exactly (float16/float32), else float64."""
    if all(a.dtype in (np.float16, np.float32) for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_score_array(values, name: str) -> np.ndarray:
    """A 1-D numeric array (no copy when possible); clear errors for other shapes and types."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ScoreError(f"{name} scores must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ScoreError(f"{name} scores must be numbers, got dtype {arr.dtype}")
    return arr


def _split_failures(arr: np.ndarray, name: str, policy: str) -> tuple[np.ndarray, int]:
    """Remove NaN (FTA) entries according to ``policy``; raise on infinities."""
    if not np.issubdtype(arr.dtype, np.floating) or np.isfinite(arr).all():
        return arr, 0
    inf_at = np.flatnonzero(np.isinf(arr))
    if inf_at.size:
        raise ScoreError(f"{name} score at index {inf_at[0]} is {arr[inf_at[0]]}: scores must be finite "
                         f"({inf_at.size} infinite value(s)); use NaN for a failure to acquire")
    nan_mask = np.isnan(arr)
    n_nan = int(np.count_nonzero(nan_mask))
    if policy == "error":
        first = int(np.flatnonzero(nan_mask)[0])
        raise ScoreError(f"{name} score at index {first} is NaN ({n_nan} NaN value(s)) and the FTA policy is "
                         f"'error'; use fta='reject' or fta='exclude' to count missing templates")
    return arr[~nan_mask], n_nan


def prepare_scores(genuine, impostor, *, higher_is_genuine: bool = True, fta: str = "reject") -> ScoreSets:
    """Validate genuine and impostor scores and return a :class:`ScoreSets`.

    Raises :class:`ScoreError` for non-1-D or non-numeric input, infinite scores, NaN scores under
    ``fta="error"``, an unknown FTA policy, or a set with no acquired (finite) score.
    """
    if fta not in FTA_POLICIES:
        raise ScoreError(f"unknown FTA policy {fta!r}; choose one of {', '.join(FTA_POLICIES)}")
    g = as_score_array(genuine, "genuine")
    i = as_score_array(impostor, "impostor")
    if g.size == 0:
        raise ScoreError("the genuine score set is empty")
    if i.size == 0:
        raise ScoreError("the impostor score set is empty")
    g, fta_g = _split_failures(g, "genuine", fta)
    i, fta_i = _split_failures(i, "impostor", fta)
    if g.size == 0:
        raise ScoreError(f"no genuine score was acquired (all {fta_g} are NaN)")
    if i.size == 0:
        raise ScoreError(f"no impostor score was acquired (all {fta_i} are NaN)")
    dtype = working_dtype(g, i)
    sign = 1 if higher_is_genuine else -1
    g = g.astype(dtype, copy=False)
    i = i.astype(dtype, copy=False)
    if sign < 0:
        g, i = -g, -i
    return ScoreSets(g, i, fta_g, fta_i, fta, sign)


def genuine_mask(scores, labels) -> np.ndarray:
    """The labels of pair scores as a bool mask (True = genuine), validated: the shape of the scores, only
    1 (genuine) and 0 (impostor)."""
    s = as_score_array(scores, "pair")
    lab = np.asarray(labels)
    if lab.shape != s.shape:
        raise ScoreError(f"labels have shape {lab.shape} but scores have shape {s.shape}")
    if lab.dtype == bool:
        return lab
    if lab.dtype in (np.int8, np.uint8) and np.count_nonzero(lab.view(np.uint8) > 1) == 0:
        return lab.view(bool)  # one byte per label, all 0/1: viewed as bool (no copy)
    bad = np.flatnonzero((lab != 0) & (lab != 1))
    if bad.size:
        raise ScoreError(f"label at index {bad[0]} is {lab[bad[0]].item()!r}; labels must be 1 (genuine) or 0 (impostor)")
    return lab.astype(bool)


def split_by_label(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Split pair scores by labels (1 = genuine, 0 = impostor); labels other than 0/1 are an error."""
    s = as_score_array(scores, "pair")
    is_genuine = genuine_mask(s, labels)
    return s[is_genuine], s[~is_genuine]


def rate_target(value, name: str = "target") -> Fraction:
    """A rate target in (0, 1) as an exact fraction of the decimal it prints as (0.001 is exactly 1/1000)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ScoreError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not (0.0 < v < 1.0):
        raise ScoreError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return Fraction(repr(v))


def allowed_errors(target: Fraction, n: int) -> int:
    """The largest error count k with k / n <= target, computed exactly."""
    return (target.numerator * n) // target.denominator
