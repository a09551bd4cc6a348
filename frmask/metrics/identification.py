"""1:N identification metrics: CMC, rank-1, FPIR, FNIR and FNIR at FPIR targets (NIST IR 8271 definitions).

A *search* compares one probe with every enrolled gallery identity. A *mated* search is one whose identity is
in the gallery (its *mate*); a *non-mated* search is one whose identity is not. Definitions, as NIST IR 8271
(FRVT Part 2: Identification) gives them, with every count an exact integer:

* **Identity score.** An identity with several enrolled templates scores the *maximum* over its templates.
  An identity with no acquired template (every gallery image failed) scores -inf: it can never be returned.
* **Rank of the mate** (ties: *pessimistic*). rank = 1 + #{other gallery identities whose score is >= the
  mate's score}. A rival tied with the mate counts against it, as a score equal to the threshold is accepted
  in verification (``score >= t``, :mod:`frmask.metrics.rates`): at the mate's own score the tied rival is
  returned too, so the mate is not alone at rank 1. The rank never depends on the order of the gallery.
* **CMC(r)** = #{mated searches with rank <= r} / N_mated, for r = 1..R; **rank-1** = CMC(1).
* **FPIR(t)** = #{non-mated searches whose top-1 identity score is >= t} / N_nonmated.
* **FNIR(t)** = #{mated searches whose mate is not returned at rank 1 with a score >= t} / N_mated: the
  *rank-1* FNIR that NIST FRVT reports in its FPIR-based figures (a mate at rank 2 is a miss at any t).
* **Threshold at an FPIR target** (the strict rule of the verification FMR, :func:`frmask.metrics.fnmr_at_fmr`):
  with k = floor(target * N_nonmated) false positives allowed and v the (k+1)-th largest non-mated top score,
  every t > v has FPIR(t) <= target and no t <= v does. FNIR is non-increasing as t falls, so the best point is
  just above v: FPIR = #{top > v} / N_nonmated, FNIR = #{mated searches not at rank 1 with score > v} /
  N_mated; the threshold reported is the smallest observed score above v (rank-1 mate scores and non-mated top
  scores), or the next float above v when there is none. When k reaches the number of acquired non-mated
  searches, every threshold is allowed and the lowest observed score is taken.
* **Resolution.** A target below 1 / N_nonmated (fewer than 1/target non-mated searches) cannot be resolved:
  the only point it allows has FPIR = 0 whatever the system. Such a point is marked ``resolved=False``
  (:class:`FpirPoint`) and :func:`identification_report` leaves it out of ``fnir_at_fpir``, listing it under
  ``fnir_at_fpir_unresolved``. With no non-mated search at all (a closed-set gallery) no target is resolved.
* **Failures to acquire.** A probe without a template (an FTA: NaN scores) is a search that returns nothing:
  a mated FTA is a miss at every rank and threshold (rank = inf), a non-mated FTA a correct non-match (never a
  false positive); both stay in the denominators (ISO/IEC 19795-1 generalised rates, as NIST does).

Per-search results (:class:`SearchResults`) hold all that the figures need (mate score, rank, top score), so
probes can be scored in blocks or on other processes and the results concatenated in probe order: the
metrics of the concatenation are exactly those of one pass (:meth:`SearchResults.concat`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from frmask.metrics._scores import ScoreError, allowed_errors, rate_target
from frmask.metrics.rates import _smallest_above

DEFAULT_MAX_RANK = 20
DEFAULT_FPIR_TARGETS = (0.001, 0.01, 0.1)


# ------------------------------------------------------------------------------------------- per search

@dataclass(frozen=True)
class SearchResults:
    """One entry per search (probe), in probe order.

    ``subject``: the probe's identity code (for the subject bootstrap); ``mate``: the identity code of its
    mate in the gallery, -1 for a non-mated search; ``mate_score``: the mate's identity score (NaN for a
    non-mated search or an FTA, -inf when the mate has no acquired template); ``rank``: the mate's rank
    (module docstring; inf for a miss: FTA or mate not enrolled; NaN for a non-mated search); ``top_score``:
    the highest identity score of the search (NaN for an FTA).
    """

    subject: np.ndarray
    mate: np.ndarray
    mate_score: np.ndarray
    rank: np.ndarray
    top_score: np.ndarray

    def __post_init__(self):
        n = len(self.mate)
        for name in ("subject", "mate", "mate_score", "rank", "top_score"):
            if np.shape(getattr(self, name)) != (n,):
                raise ScoreError(f"search results: {name} must have one entry per search ({n})")

    @property
    def mated(self) -> np.ndarray:
        return self.mate >= 0

    @property
    def n_searches(self) -> int:
        return len(self.mate)

    @classmethod
    def concat(cls, parts) -> SearchResults:
        """The results of several probe blocks, in the order given (exact: nothing is recomputed)."""
        parts = list(parts)
        if not parts:
            raise ScoreError("no search results to concatenate")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("subject", "mate", "mate_score", "rank", "top_score")))

    def take(self, index) -> SearchResults:
        """The searches ``index`` (e.g. a bootstrap resample: indices may repeat)."""
        return SearchResults(self.subject[index], self.mate[index], self.mate_score[index], self.rank[index],
                             self.top_score[index])

    def mated_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rank, mate_score)`` of the mated searches."""
        m = self.mated
        return self.rank[m], self.mate_score[m]

    def nonmated_top(self) -> np.ndarray:
        """The top-1 scores of the non-mated searches (NaN for an FTA)."""
        return self.top_score[~self.mated]


def identity_scores(scores, gallery_identity, n_identities: int | None = None) -> np.ndarray:
    """Fold a (probes x templates) score matrix into (probes x identities): each identity's score is the
    maximum over its templates; an identity with no template gets -inf. A row holding a NaN (an FTA probe)
    becomes all NaN."""
    s = np.asarray(scores, dtype=np.float64)
    gid = np.asarray(gallery_identity, dtype=np.int64)
    if s.ndim != 2 or gid.shape != (s.shape[1],):
        raise ScoreError(f"scores must be (probes, templates) with one gallery identity per template; got {s.shape}"
                         f" and {gid.shape}")
    n = int(gid.max()) + 1 if n_identities is None else int(n_identities)
    out = np.full((s.shape[0], n), -np.inf)
    np.maximum.at(out.T, gid, s.T)
    out[np.isnan(s).any(axis=1)] = np.nan
    return out


def search_results(id_scores, mate, subject=None) -> SearchResults:
    """The :class:`SearchResults` of a (probes x identities) matrix of identity scores.

    ``mate``: per probe the column of its mate, -1 for a non-mated search; ``subject``: the probe's identity
    code (default: ``mate``). A row holding a NaN is an FTA.
    """
    s = np.asarray(id_scores, dtype=np.float64)
    mate = np.asarray(mate, dtype=np.int64)
    if s.ndim != 2 or mate.shape != (s.shape[0],):
        raise ScoreError(f"identity scores must be (probes, identities) with one mate per probe; got {s.shape} "
                         f"and {mate.shape}")
    if np.any(mate >= s.shape[1]):
        raise ScoreError(f"mate at index {int(np.flatnonzero(mate >= s.shape[1])[0])} is outside the "
                         f"{s.shape[1]} gallery identities")
    fta = np.isnan(s).any(axis=1)
    mate_score = s[np.arange(s.shape[0]), np.maximum(mate, 0)]
    count = (s >= mate_score[:, None]).sum(axis=1)  # the mate itself included: 1 + rivals at or above it
    return searches_from_counts(mate, subject, fta, mate_score, count, s.max(axis=1, initial=-np.inf))


def searches_from_counts(mate, subject, fta, mate_score, count, top) -> SearchResults:
    """:class:`SearchResults` from per-probe reductions of an identity-score matrix, wherever they were made
    (numpy here, torch on a device in :func:`frmask.identify.score_probes`): ``fta`` (the row held a NaN),
    ``mate_score`` (the row's value in column ``max(mate, 0)``), ``count`` (#{columns >= that value}) and
    ``top`` (the row's maximum); entries of FTA rows and of non-mated probes may hold anything."""
    mate = np.asarray(mate, np.int64)
    fta = np.asarray(fta, bool)
    mated = mate >= 0
    mate_score = np.where(mated & ~fta, np.asarray(mate_score, np.float64), np.nan)
    rank = np.where(mated, np.asarray(count, np.float64), np.nan)
    rank[mated & (fta | np.isneginf(mate_score))] = np.inf
    top = np.where(fta, np.nan, np.asarray(top, np.float64))
    return SearchResults(mate.copy() if subject is None else np.asarray(subject, np.int64), mate, mate_score, rank,
                         top)


def probe_results(scores, gallery_identity, mate, *, subject=None, n_identities: int | None = None) -> SearchResults:
    """:func:`search_results` of a (probes x templates) score matrix (:func:`identity_scores` first)."""
    return search_results(identity_scores(scores, gallery_identity, n_identities), mate, subject)


# ------------------------------------------------------------------------------------------- rates

def _mated(rank, mate_score=None):
    r = np.asarray(rank, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ScoreError("no mated search: rank-based figures need at least one")
    if np.isnan(r).any():
        raise ScoreError(f"rank at index {int(np.flatnonzero(np.isnan(r))[0])} is NaN: pass mated searches only")
    if mate_score is None:
        return r
    m = np.asarray(mate_score, dtype=np.float64)
    if m.shape != r.shape:
        raise ScoreError(f"rank and mate_score must have the same shape, got {r.shape} and {m.shape}")
    return r, m


def cmc(rank, max_rank: int = DEFAULT_MAX_RANK) -> np.ndarray:
    """CMC(r) = #{mated searches with rank <= r} / N_mated for r = 1..max_rank (module docstring)."""
    r = _mated(rank)
    if max_rank < 1:
        raise ScoreError(f"max_rank must be at least 1, got {max_rank}")
    counts = np.searchsorted(np.sort(r), np.arange(1, max_rank + 1), side="right")
    return counts / r.size


def rank1(rank) -> float:
    """The rank-1 identification rate, CMC(1)."""
    return float(cmc(rank, 1)[0])


def fpir(nonmated_top, threshold) -> float:
    """FPIR(t) = #{non-mated searches with top-1 score >= t} / N_nonmated (an FTA, NaN, is no false positive)."""
    top = np.asarray(nonmated_top, dtype=np.float64)
    if top.size == 0:
        raise ScoreError("no non-mated search: FPIR is undefined (a closed-set gallery)")
    return int(np.count_nonzero(top >= threshold)) / top.size


def fnir(rank, mate_score, threshold) -> float:
    """FNIR(t) = #{mated searches whose mate is not at rank 1 with score >= t} / N_mated (rank-1 FNIR)."""
    r, m = _mated(rank, mate_score)
    return int(np.count_nonzero(~((r == 1) & (m >= threshold)))) / r.size


@dataclass(frozen=True)
class FpirPoint:
    """The strict operating point at an FPIR ``target`` (module docstring): ``threshold`` (accept when the
    score is >= it), achieved ``fpir`` and ``fnir`` with their integer counts; ``resolved`` is False when the
    target is below 1 / N_nonmated (then the point is the FPIR = 0 one; NaN everywhere without non-mated
    searches)."""

    target: float
    threshold: float
    fpir: float
    fnir: float
    false_positives: int
    false_negatives: int
    n_mated: int
    n_nonmated: int
    resolved: bool

    def to_dict(self) -> dict:
        return asdict(self)


def fnir_at_fpir(rank, mate_score, nonmated_top, targets=DEFAULT_FPIR_TARGETS) -> list[FpirPoint]:
    """The strict operating point (:class:`FpirPoint`) at each FPIR target, in the order given."""
    r, m = _mated(rank, mate_score)
    top = np.asarray(nonmated_top, dtype=np.float64)
    hits = m[(r == 1) & np.isfinite(m)]  # rank-1 mate scores: the only mated searches a threshold can keep
    acquired = np.sort(top[~np.isnan(top)])[::-1]
    n_m, n_nm = r.size, top.size
    points = []
    for target in targets:
        k = allowed_errors(rate_target(target, "target FPIR"), n_nm)
        if n_nm == 0:
            points.append(FpirPoint(float(target), float("nan"), float("nan"), float("nan"), 0, 0, n_m, 0, False))
            continue
        if k >= acquired.size:  # every threshold is allowed: the lowest observed score
            both = np.concatenate([hits, acquired])
            t = float(both.min()) if both.size else float("-inf")
            fp, fn = int(acquired.size), n_m - hits.size
        else:
            v = acquired[k]
            fp = int(np.count_nonzero(acquired > v))
            fn = n_m - int(np.count_nonzero(hits > v))
            t = float(_smallest_above(v, hits, acquired[:k]))
        points.append(FpirPoint(float(target), t, fp / n_nm, fn / n_m, fp, fn, n_m, n_nm, k > 0))
    return points


def fnir_fpir_curve(rank, mate_score, nonmated_top) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact step curve ``(thresholds, fpir, fnir)`` at every observed score (rank-1 mate scores and
    non-mated top scores), thresholds ascending; needs at least one non-mated search."""
    r, m = _mated(rank, mate_score)
    top = np.asarray(nonmated_top, dtype=np.float64)
    if top.size == 0:
        raise ScoreError("no non-mated search: the FNIR(FPIR) curve is undefined (a closed-set gallery)")
    hits = np.sort(m[(r == 1) & np.isfinite(m)])
    acquired = np.sort(top[~np.isnan(top)])
    t = np.unique(np.concatenate([hits, acquired]))
    fp = acquired.size - np.searchsorted(acquired, t, side="left")
    kept = hits.size - np.searchsorted(hits, t, side="left")
    return t, fp / top.size, (r.size - kept) / r.size


# ------------------------------------------------------------------------------------------- report

def target_key(target: float) -> str:
    """The JSON key of an FPIR target: the decimal it prints as (``0.001``)."""
    return repr(float(target))


def identification_report(results: SearchResults, *, max_rank: int = DEFAULT_MAX_RANK,
                          targets=DEFAULT_FPIR_TARGETS) -> dict:
    """The ``identification`` figures of a run: counts, ``rank1``, ``cmc`` (ranks 1..max_rank) and
    ``fnir_at_fpir`` (target key -> the resolved :class:`FpirPoint` as a dict), with the unresolved targets
    listed under ``fnir_at_fpir_unresolved`` (module docstring)."""
    rank, mate_score = results.mated_arrays()
    top = results.nonmated_top()
    curve = cmc(rank, max_rank)
    out = {"n_searches": results.n_searches, "n_mated": int(rank.size), "n_nonmated": int(top.size),
           "n_fta_mated": int(np.count_nonzero(np.isnan(mate_score))),
           "n_mated_not_enrolled": int(np.count_nonzero(np.isneginf(mate_score))),
           "n_fta_nonmated": int(np.count_nonzero(np.isnan(top))),
           "rank1": float(curve[0]), "cmc": [float(c) for c in curve], "fnir_at_fpir": {},
           "fnir_at_fpir_unresolved": []}
    for p in fnir_at_fpir(rank, mate_score, top, targets):
        if p.resolved:
            out["fnir_at_fpir"][target_key(p.target)] = {k: v for k, v in p.to_dict().items() if k != "resolved"}
        else:
            out["fnir_at_fpir_unresolved"].append(target_key(p.target))
    return out


def identification_ci(results: SearchResults, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0,
                      max_rank: int = DEFAULT_MAX_RANK, targets=DEFAULT_FPIR_TARGETS) -> dict:
    """Subject-bootstrap percentile intervals of ``rank1``, each ``cmc`` rank and each FNIR at FPIR target.

    Each resample draws the probes' identities (``results.subject``) with replacement
    (:func:`frmask.metrics.intervals.subject_counts`, ``numpy.random.default_rng(seed)``) and repeats every
    search of an identity drawn m times m times; the gallery stays as enrolled. The FPIR threshold is found
    again in every resample (its strict point); a resample with no mated search, or where a target is not
    resolved, is left out of that figure's interval. Returns ``{"rank1": [lo, hi], "cmc": [[lo, hi], ...],
    "fnir_at_fpir": {key: [lo, hi]}, "level", "n_boot", "seed", "method": "subjects"}``.
    """
    from frmask.metrics.intervals import percentile_interval, subject_counts

    if n_boot < 1:
        raise ScoreError(f"n_boot must be at least 1, got {n_boot}")
    codes, inverse = np.unique(results.subject, return_inverse=True)
    searches = np.arange(results.n_searches)
    rng = np.random.default_rng(seed)
    curves, fnirs = [], {target_key(t): [] for t in targets}
    for _ in range(n_boot):
        m = subject_counts(rng, codes.size)
        sample = results.take(np.repeat(searches, m[inverse]))
        rank, mate_score = sample.mated_arrays()
        if rank.size == 0:
            continue
        curves.append(cmc(rank, max_rank))
        for p in fnir_at_fpir(rank, mate_score, sample.nonmated_top(), targets):
            if p.resolved:
                fnirs[target_key(p.target)].append(p.fnir)
    if not curves:
        raise ScoreError("no bootstrap resample held a mated search")
    curves = np.array(curves)
    return {"rank1": list(percentile_interval(curves[:, 0], level)),
            "cmc": [list(percentile_interval(curves[:, r], level)) for r in range(curves.shape[1])],
            "fnir_at_fpir": {k: list(percentile_interval(v, level)) for k, v in fnirs.items() if v},
            "level": level, "n_boot": n_boot, "seed": seed, "method": "subjects"}
