"""ISO/IEC 19795-1 verification metrics: exact, fast, and documented.

Conventions shared by every function (details in each module's docstring):

* Inputs are array-likes of genuine and impostor **similarity** scores (higher = same person);
  ``higher_is_genuine=False`` takes distances instead. A comparison is accepted when
  ``score >= threshold`` (``distance <= threshold``).
* Rates are exact ratios of integer counts: FMR(t) = #{impostor >= t} / N_I, FNMR(t) = #{genuine < t} / N_G.
  Nothing is interpolated unless the function's name or convention says so.
* Operating points follow the strict ISO rule: the lowest FNMR among thresholds whose achieved FMR is at
  most the target (and the mirror rule for FMR at an FNMR target).
* NaN scores are failures to acquire (FTA), always counted; ``fta="reject"`` (default) counts them as
  non-matches, ``fta="exclude"`` removes them, ``fta="error"`` raises. Infinite scores raise.
* Invalid input raises :class:`ScoreError` (a ``ValueError``) with a message naming the index.
"""

from frmask.metrics._scores import FTA_POLICIES, ScoreError, split_by_label
from frmask.metrics.accuracy import KFoldAccuracy, accuracy_at_threshold, kfold_accuracy, max_accuracy
from frmask.metrics.eer import EqualErrorRate, eer, eer_info, eer_threshold
from frmask.metrics.fixed import fnmr_ratio, rates_at_threshold
from frmask.metrics.intervals import Interval, bootstrap_ci, rate_ci
from frmask.metrics.rates import Curve, OperatingPoint, det_curve, fmr_at_fnmr, fnmr_at_fmr, roc_curve, tpr_at_far
from frmask.metrics.report import CONVENTIONS, STABLE_KEYS, VerificationReport, pairs_report, verification_report
from frmask.metrics.plots import plot_det, plot_score_histograms
from frmask.metrics.separation import fdr
from frmask.metrics.streaming import InexactError, ScoreAccumulator, ScoreHistogram

__all__ = [
    "CONVENTIONS", "FTA_POLICIES", "STABLE_KEYS", "Curve", "EqualErrorRate", "InexactError", "Interval",
    "KFoldAccuracy", "ScoreAccumulator", "ScoreHistogram",
    "OperatingPoint", "ScoreError", "VerificationReport", "accuracy_at_threshold", "bootstrap_ci", "det_curve",
    "eer", "eer_info", "eer_threshold", "fdr", "fmr_at_fnmr", "fnmr_at_fmr", "fnmr_ratio", "kfold_accuracy", "max_accuracy",
    "pairs_report", "plot_det", "plot_score_histograms", "rate_ci", "rates_at_threshold", "roc_curve", "split_by_label", "tpr_at_far", "verification_report",
]
