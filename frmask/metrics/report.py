"""One call for every verification figure: :func:`verification_report` and :func:`pairs_report`.

The dict keys of :meth:`VerificationReport.to_dict` are a stable contract (they name the MaskInv
paper's columns):

=================  =================================================================================
key                meaning
=================  =================================================================================
``n_genuine``      genuine comparisons in the denominators (FTA included under ``fta="reject"``)
``n_impostor``     impostor comparisons in the denominators (idem)
``n_fta``          failures to acquire (NaN scores), genuine + impostor, whatever the policy
``fmr100``         FNMR at the strict operating point FMR <= 1 %
``fmr1000``        FNMR at the strict operating point FMR <= 0.1 %
``eer``            equal error rate (FVC2000 definition, :mod:`frmask.metrics.eer`)
``fdr``            Fisher discriminant ratio
``tpr_at_far``     1 - FNMR at the strict operating point FMR <= ``far`` (default 0.2 %, MFR2's FAR2000)
``acc_at_far``     accuracy at that threshold (MFR2's ACC2000)
``max_accuracy``   best accuracy over every threshold (MFR2's ACC)
=================  =================================================================================

Further keys: the thresholds (``*_threshold``) and achieved FMRs (``*_fmr``) of each operating point,
``far``, ``convention``, ``fta_policy``, extra FMR targets as ``fnmr_at_fmr_<target>``, k-fold accuracy
(``kfold_accuracy``, ``kfold_std``) from :func:`pairs_report`, and ``<key>_ci_low``/``<key>_ci_high`` when
confidence intervals were asked for.

Conventions (``convention=``): ``"iso"`` (default) uses the strict rules above. ``"pyeer"`` reproduces
pyeer 0.5.6: ``fmr100``/``fmr1000`` are the FNMR at the threshold whose FMR is *nearest* the target (it
may exceed it) and ``eer`` is pyeer's. ``"insightface"`` reproduces insightface's LFW-style evaluation:
``kfold_accuracy`` on a 0.01 grid of squared distances and ``tpr_at_far`` as its 10-fold interpolated
VAL@FAR; it needs pairs in protocol order, so only :func:`pairs_report` accepts it. Keys a convention does
not define keep their strict ISO value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from frmask.metrics._scores import ScoreError, ScoreSets, as_score_array, genuine_mask, prepare_scores
from frmask.metrics._select import top_k_desc
from frmask.metrics.accuracy import kfold_accuracy, max_accuracy_point
from frmask.metrics.eer import eer_point
from frmask.metrics.rates import impostor_rank_for, point_at_fmr
from frmask.metrics.separation import fdr_of

CONVENTIONS = ("iso", "pyeer", "insightface")
STABLE_KEYS = ("n_genuine", "n_impostor", "n_fta", "fmr100", "fmr1000", "eer", "fdr", "tpr_at_far",
               "acc_at_far", "max_accuracy")
CI_KEYS = ("fmr100", "fmr1000", "eer", "tpr_at_far", "acc_at_far", "max_accuracy")


@dataclass(frozen=True)
class VerificationReport:
    """Every verification figure of one score set; see the module docstring for the keys."""

    n_genuine: int
    n_impostor: int
    n_fta: int
    fmr100: float
    fmr1000: float
    eer: float
    fdr: float
    tpr_at_far: float
    acc_at_far: float
    max_accuracy: float
    far: float = 0.002
    convention: str = "iso"
    fta_policy: str = "reject"
    details: dict = field(default_factory=dict)
    notes: tuple = ()

    def to_dict(self) -> dict:
        """Flat dict: the stable keys first, then thresholds, extras and settings."""
        d = {k: getattr(self, k) for k in STABLE_KEYS}
        d.update(self.details)
        d.update(far=self.far, convention=self.convention, fta_policy=self.fta_policy)
        return d

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def to_series(self, name: str | None = None):
        """The report as a pandas Series (one row of a comparison table)."""
        import pandas as pd

        return pd.Series(self.to_dict(), name=name)

    def to_frame(self, name: str | None = None):
        """The report as a one-row pandas DataFrame."""
        return self.to_series(name).to_frame().T

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` plus ``notes``; non-finite numbers are written as null."""
        d = {k: _json_value(v) for k, v in self.to_dict().items()}
        d["notes"] = list(self.notes)
        return json.dumps(d, indent=indent, allow_nan=False)


def _json_value(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def target_key(t: float) -> str:
    """The report key of an extra FMR target: ``fnmr_at_fmr_<repr(t)>``."""
    return "fnmr_at_fmr_" + repr(float(t))


def resolution_notes(p100, p1000, pfar, far: float, extra, n_impostor: int) -> list[str]:
    """The notes of operating points whose FMR target is below the finest step 1/N_I (``extra``: the
    ``(target, point)`` of the extra targets)."""
    notes = []
    for name, p in (("FMR 1%", p100), ("FMR 0.1%", p1000), (f"FAR {far:g}", pfar)):
        if p.below_resolution:
            notes.append(f"{name} is below the finest FMR step 1/{n_impostor} = {1 / n_impostor:.4%}: "
                         f"the strict rule gives FMR = 0 there")
    for t, p in extra:
        if p.below_resolution:
            notes.append(f"FMR {t:g} is below the finest FMR step 1/{n_impostor}: the strict rule gives FMR = 0")
    return notes


def fta_note(fta_genuine: int, fta_impostor: int, fta: str) -> str:
    """The note on failures to acquire of a report."""
    verb = "counted as non-matches" if fta == "reject" else "excluded from the rates"
    return f"{fta_genuine + fta_impostor} failure(s) to acquire ({fta_genuine} genuine, {fta_impostor} impostor) {verb}"


def _figures(s: ScoreSets, far: float, fmr_targets) -> tuple[dict, list]:
    """Strict ISO figures of prepared score sets, sharing one top-k selection of the impostors."""
    targets = [0.01, 0.001, far, *fmr_targets]
    k_max = max(impostor_rank_for(s, t) for t in targets)
    need = min(max(k_max + 1, min(s.genuine.size, s.impostor.size) + 1), s.impostor.size)
    top = top_k_desc(s.impostor, need)
    p100, p1000, pfar = (point_at_fmr(s, t, top) for t in (0.01, 0.001, far))
    e = eer_point(s)
    acc, acc_t = max_accuracy_point(s, top)
    out = dict(fmr100=p100.fnmr, fmr1000=p1000.fnmr, eer=e.eer, fdr=fdr_of(s), tpr_at_far=pfar.tpr,
               acc_at_far=pfar.accuracy, max_accuracy=acc,
               fmr100_threshold=p100.threshold, fmr100_fmr=p100.fmr,
               fmr1000_threshold=p1000.threshold, fmr1000_fmr=p1000.fmr,
               eer_threshold=e.threshold, far_threshold=pfar.threshold, far_fmr=pfar.fmr,
               max_accuracy_threshold=s.output_threshold(acc_t))
    extra = []
    for t in fmr_targets:
        p = point_at_fmr(s, t, top)
        out[target_key(t)] = p.fnmr
        out[target_key(t) + "_threshold"] = p.threshold
        extra.append((t, p))
    return out, resolution_notes(p100, p1000, pfar, far, extra, s.n_impostor)


def verification_report(genuine, impostor, *, far: float = 0.002, fmr_targets=(), convention: str = "iso",
                        higher_is_genuine: bool = True, fta: str = "reject", ci: float | None = None,
                        genuine_subjects=None, impostor_subjects=None, n_boot: int = 1000,
                        seed: int = 0) -> VerificationReport:
    """Every verification figure of genuine and impostor scores in one call (keys: module docstring).

    ``ci`` (e.g. 0.95) adds percentile-bootstrap intervals for the rates, resampling subjects when
    ``genuine_subjects`` and ``impostor_subjects`` are given (see :func:`frmask.metrics.bootstrap_ci`).
    Handles 1e8 impostor scores in a few seconds: one chunked top-k selection serves every operating
    point, the EER needs about log2(N_G) counting passes, and nothing large is sorted.
    """
    if convention not in CONVENTIONS:
        raise ScoreError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    if convention == "insightface":
        raise ScoreError("the insightface convention needs pairs in protocol order: use pairs_report(scores, labels)")
    s = prepare_scores(genuine, impostor, higher_is_genuine=higher_is_genuine, fta=fta)
    figures, notes = _figures(s, far, fmr_targets)
    if s.n_fta:
        notes.append(fta_note(s.fta_genuine, s.fta_impostor, fta))
    if convention == "pyeer":
        _apply_pyeer(s, figures, notes)
    if ci is not None:
        _add_ci(figures, notes, genuine, impostor, far, ci, genuine_subjects, impostor_subjects, n_boot, seed,
                higher_is_genuine, fta)
    stable = {k: figures.pop(k) for k in STABLE_KEYS[3:]}
    return VerificationReport(n_genuine=s.n_genuine, n_impostor=s.n_impostor, n_fta=s.n_fta, **stable,
                              far=float(far), convention=convention, fta_policy=fta, details=figures,
                              notes=tuple(notes))


def _apply_pyeer(s: ScoreSets, figures: dict, notes: list) -> None:
    from frmask.metrics import conventions as conv

    g, i = s.genuine.astype(np.float64), s.impostor.astype(np.float64)
    for key, target in (("fmr100", 0.01), ("fmr1000", 0.001)):
        t, fmr, fnmr = conv.pyeer_fnmr_at_fmr(g, i, target)
        figures.update({key: float(fnmr), f"{key}_threshold": s.output_threshold(t), f"{key}_fmr": float(fmr)})
    e, t = conv.pyeer_eer(g, i)
    figures.update(eer=float(e), eer_threshold=s.output_threshold(t))
    if s.n_fta:
        notes.append("the pyeer convention ignores failures to acquire in fmr100, fmr1000 and eer")


def _add_ci(figures, notes, genuine, impostor, far, level, gsub, isub, n_boot, seed, higher_is_genuine, fta):
    from frmask.metrics.intervals import bootstrap_resamples, percentile_interval

    values: dict[str, list] = {k: [] for k in CI_KEYS}
    for gb, ib in bootstrap_resamples(genuine, impostor, genuine_subjects=gsub, impostor_subjects=isub,
                                      n_boot=n_boot, seed=seed):
        try:
            s = prepare_scores(gb, ib, higher_is_genuine=higher_is_genuine, fta=fta)
        except ScoreError:
            continue  # a resample without acquired genuine or impostor scores
        fig = _figures(s, far, ())[0]
        for k in CI_KEYS:
            values[k].append(fig[k])
    if not values[CI_KEYS[0]]:
        raise ScoreError("no bootstrap resample had both genuine and impostor scores")
    for k in CI_KEYS:
        figures[f"{k}_ci_low"], figures[f"{k}_ci_high"] = percentile_interval(values[k], level)
    how = "subjects" if gsub is not None else "pairs (no subject ids given: intervals may be too narrow)"
    notes.append(f"{level:.0%} percentile bootstrap intervals, {len(values[CI_KEYS[0]])} resamples of {how}, "
                 f"seed {seed}")


def pairs_report(scores, labels, *, subjects_a=None, subjects_b=None, folds: int = 10,
                 convention: str = "iso", higher_is_genuine: bool = True, fta: str = "reject",
                 **kwargs) -> VerificationReport:
    """:func:`verification_report` of labelled pairs (1 genuine, 0 impostor) in protocol order.

    Adds ``kfold_accuracy`` and ``kfold_std`` over ``folds`` contiguous folds (exact threshold search,
    or insightface's grid under ``convention="insightface"``, which also sets ``tpr_at_far`` to
    insightface's 10-fold VAL@FAR). ``subjects_a``/``subjects_b`` (the subject of each side of each pair)
    enable the subject bootstrap when ``ci`` is given.
    """
    if convention not in CONVENTIONS:
        raise ScoreError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    s_all = as_score_array(scores, "pair")
    lab = np.asarray(labels)
    is_g = genuine_mask(s_all, lab)  # validates the labels (a view of 0/1 int8 labels, no copy)
    g, i = s_all[is_g], s_all[~is_g]
    if subjects_a is not None and subjects_b is not None:
        a, b = np.asarray(subjects_a), np.asarray(subjects_b)
        kwargs.setdefault("genuine_subjects", a[is_g])
        kwargs.setdefault("impostor_subjects", np.stack([a[~is_g], b[~is_g]], axis=1))
    base = "pyeer" if convention == "pyeer" else "iso"
    rep = verification_report(g, i, convention=base, higher_is_genuine=higher_is_genuine, fta=fta, **kwargs)
    details = dict(rep.details)
    notes = list(rep.notes)
    method = "insightface" if convention == "insightface" else "exact"
    try:
        kf = kfold_accuracy(s_all, lab, folds, method=method, higher_is_genuine=higher_is_genuine, fta=fta)
        details.update(kfold_accuracy=kf.mean, kfold_std=kf.std)
    except (ScoreError, ValueError) as exc:  # e.g. a fold whose other folds hold no genuine pair
        notes.append(f"{folds}-fold accuracy skipped: {exc}")
    tpr = rep.tpr_at_far
    if convention == "insightface":
        from frmask.metrics.conventions import cosine_to_squared_distance, insightface_val_at_far

        x = s_all.astype(np.float64)
        keep = ~np.isnan(x) if fta == "exclude" else np.ones(x.size, bool)
        d = cosine_to_squared_distance(x[keep]) if higher_is_genuine else x[keep]
        d = np.where(np.isnan(d), np.inf, d)
        val, val_std, far_mean = insightface_val_at_far(d, is_g[keep], far=rep.far, folds=folds)
        tpr = float(val)
        details.update(tpr_at_far_std=float(val_std), far_achieved_mean=float(far_mean))
        notes.append("insightface convention: tpr_at_far is VAL@FAR (10-fold, interpolated on a 0.001 distance grid)")
    return VerificationReport(**{**{k: getattr(rep, k) for k in STABLE_KEYS}, "tpr_at_far": tpr}, far=rep.far,
                              convention=convention, fta_policy=fta, details=details, notes=tuple(notes))
