"""Streaming, mergeable score accumulation: exact strict-ISO operating points for huge impostor sets.

:class:`ScoreAccumulator` is fed genuine and impostor scores in chunks (``add``), possibly in several
processes whose accumulators are combined afterwards (``merge`` / ``ScoreAccumulator.merged``). It gives

* **exact** strict-ISO FNMR at the FMR targets declared up front (:meth:`ScoreAccumulator.fnmr_at_fmr`):
  the same :class:`~frmask.metrics.OperatingPoint`, field for field, as :func:`frmask.metrics.fnmr_at_fmr`
  on the concatenated data, or an :class:`InexactError` when exactness cannot be proven, never a wrong
  number. Only the top impostor scores are kept; every genuine score is kept (they are comparatively few);
* the **exact** Fisher discriminant ratio (:meth:`ScoreAccumulator.fdr`) from streamed float64 moments
  (count, mean, M2 per set, merged with Chan et al.'s parallel formula);
* an **approximate** DET and EER from a fine histogram with a stated, rigorous error bound
  (:meth:`ScoreAccumulator.approximate_det`, :meth:`ScoreAccumulator.approximate_eer`).

Block engines (:mod:`frmask.exhaustive`) feed it chunk summaries instead of every score
(:meth:`ScoreAccumulator.add_impostor_summary`, :meth:`ScoreAccumulator.add_failures`) and set moments they
combined in their own fixed order (:meth:`ScoreAccumulator.replace_moments`).

Conventions are those of :mod:`frmask.metrics`: similarity scores, accept when ``score >= threshold``;
``higher_is_genuine=False`` takes distances, negated on input (the *working space*) and whose thresholds
are negated back on output. NaN is a failure to acquire handled by the ``fta`` policy, an infinite
score raises. The working dtype of the exact answers is float32 when every chunk ever added (genuine and
impostor, empty ones included) is float16/float32, else float64 -- exactly the dtype the in-memory
functions would use on the concatenated chunks. Nothing depends on chunking or order except which
answers can be proven exact.

Impostor buffer. Let f (:attr:`ScoreAccumulator.floor_value`) be the largest impostor score ever
discarded (-inf while none was). Invariant: **every acquired impostor score > f is in the buffer**
(which holds only genuine impostor values, as a multiset). Scores below f are dropped on arrival (they
can never be used: an answer is only given when the needed buffered values are all >= f). The buffer is
compacted with ``np.partition`` to its ``keep`` largest values whenever it holds more than ``2 * keep``:

* ``expected_impostors=E`` given: keep = floor(max_target * E) + 1. The answers are then guaranteed exact
  while the final ``n_impostor <= E`` (k + 1 <= keep for every declared target, and the kept values are
  the true top ``keep``);
* otherwise (adaptive): keep = floor(2 * max_target * n) + 2 with n the impostor count so far. Exact for
  stationary streams; an adversarial order (a few very high impostor scores first, then a flood of low
  ones) can make it unprovable, and :class:`InexactError` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from frmask.metrics._scores import (
    FTA_POLICIES,
    ScoreError,
    ScoreSets,
    allowed_errors,
    as_score_array,
    rate_target,
)
from frmask.metrics._select import CHUNK, top_k_desc
from frmask.metrics.rates import OperatingPoint, _point, point_at_fmr

__all__ = ["InexactError", "ScoreAccumulator", "ScoreHistogram"]

_SMALL_FLOATS = (np.dtype(np.float16), np.dtype(np.float32))
_SLICE = 1 << 16  # elements per scan slice: float64 scratch stays in cache
_EDGES: dict = {}  # (lo, hi, bins) -> the read-only bin edges of that geometry


class InexactError(ScoreError):
    """The streamed impostor buffer cannot prove an exact answer; pass ``expected_impostors``."""


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of one score set in the accumulator's bins, in working space (distances negated).

    Bin ``j`` holds the scores x with ``edges[j] <= x < edges[j + 1]``; ``underflow`` counts x < edges[0]
    and ``overflow`` counts x >= edges[-1]. The edges are the exact float64 values where the monotone bin
    index ``floor((x - lo) * scale)`` (float64 arithmetic) changes, so ``x >= edges[j]`` holds exactly for
    the scores in bins ``>= j`` and in the overflow. Failures to acquire are not counted here.
    """

    edges: np.ndarray
    counts: np.ndarray
    underflow: int
    overflow: int

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.underflow + self.overflow


@dataclass(frozen=True)
class _StreamedSets(ScoreSets):
    """ScoreSets whose ``impostor`` array holds only the top buffered values; the count is carried."""

    n_acquired_impostor: int = 0

    @property
    def n_impostor(self) -> int:
        return self.n_acquired_impostor + self.rejected_impostor


class _Moments:
    """Float64 count, mean and M2 (sum of squared deviations), merged with Chan et al.'s formula."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0):
        self.n, self.mean, self.m2 = n, mean, m2

    def combine(self, n: int, mean: float, m2: float) -> None:
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        tot = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / tot)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * n / tot)
        self.n = tot

    def copy(self) -> _Moments:
        return _Moments(self.n, self.mean, self.m2)

    @property
    def variance(self) -> float:
        return self.m2 / self.n


def _ordered_key(x: np.ndarray) -> np.ndarray:
    """uint64 keys ordered like the float64 values (for bisection over the floats)."""
    b = x.view(np.uint64)
    sign = np.uint64(1 << 63)
    return np.where(b & sign, ~b, b | sign)


def _from_key(k: np.ndarray) -> np.ndarray:
    sign = np.uint64(1 << 63)
    b = np.where(k & sign, k & ~sign, ~k)
    return b.astype(np.uint64).view(np.float64)


def _cut_for(f: float, dtype: np.dtype):
    """The smallest value c of ``dtype`` with c >= f, so that ``x >= c`` is exactly ``x >= f`` for x of dtype."""
    c = dtype.type(f)
    if float(c) < f:
        c = np.nextafter(c, dtype.type(np.inf))
    return c


class ScoreAccumulator:
    """Streaming, mergeable accumulator of genuine and impostor scores (module docstring for the design).

    Parameters
    ----------
    fmr_targets:
        The FMR targets :meth:`fnmr_at_fmr` / :meth:`tpr_at_far` will be asked for (each in (0, 1), read as
        the decimal it prints as). The impostor buffer is sized for the largest one.
    expected_impostors:
        An upper bound on the final number of impostor comparisons (``n_impostor``, FTAs included under
        ``fta="reject"``). With it the buffer is fixed at floor(max_target * E) + 1 values and every answer
        is exact while ``n_impostor <= E``. Without it the buffer adapts to the count seen so far.
    hist_range, bins:
        ``bins`` uniform histogram bins over ``hist_range = (lo, hi)`` in **working space** (for distances,
        the range of the negated distances, e.g. ``(-2.0, 0.0)`` for distances in [0, 2]); scores outside
        go to underflow/overflow counts. The DET/EER approximations are only as fine as these bins.
    higher_is_genuine:
        False for distances (negated on input, thresholds negated back on output).
    fta:
        Failure-to-acquire policy for NaN scores: ``"reject"`` (default; in the denominators, always a
        non-match), ``"exclude"`` (out of the denominators, still counted in ``n_fta``) or ``"error"``.
    """

    def __init__(self, fmr_targets=(0.01, 0.001), *, expected_impostors=None, hist_range=(-1.0, 1.0),
                 bins: int = 2**16, higher_is_genuine: bool = True, fta: str = "reject"):
        if fta not in FTA_POLICIES:
            raise ScoreError(f"unknown FTA policy {fta!r}; choose one of {', '.join(FTA_POLICIES)}")
        if isinstance(fmr_targets, (int, float, np.floating)):
            fmr_targets = (fmr_targets,)
        targets = [rate_target(t, "target FMR") for t in fmr_targets]
        if not targets:
            raise ScoreError("declare at least one FMR target")
        self._targets: tuple[Fraction, ...] = tuple(sorted(set(targets)))
        self._max_target = self._targets[-1]
        if expected_impostors is not None:
            if isinstance(expected_impostors, (bool, np.bool_)) or int(expected_impostors) != expected_impostors \
                    or expected_impostors < 1:
                raise ScoreError(f"expected_impostors must be a positive integer, got {expected_impostors!r}")
            expected_impostors = int(expected_impostors)
        self._expected = expected_impostors
        try:
            lo, hi = (float(v) for v in hist_range)
        except (TypeError, ValueError):
            raise ScoreError(f"hist_range must be a pair (lo, hi) of numbers, got {hist_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
            raise ScoreError(f"hist_range must be finite with lo < hi, got {hist_range!r}")
        if isinstance(bins, (bool, np.bool_)) or int(bins) != bins or bins < 1:
            raise ScoreError(f"bins must be a positive integer, got {bins!r}")
        self._lo, self._hi, self._bins = lo, hi, int(bins)
        self._scale = self._bins / (hi - lo)
        self._sign = 1 if higher_is_genuine else -1
        self._fta = fta
        key = (self._lo, self._hi, self._bins)
        if key not in _EDGES:  # the bisection takes a while for 2**16 bins: once per geometry
            _EDGES[key] = self._compute_edges()
            _EDGES[key].flags.writeable = False
        self._edges = _EDGES[key]

        self._genuine: list[np.ndarray] = []  # acquired, working space, float32 or float64
        self._genuine_cat: np.ndarray | None = None
        self._buffer: list[np.ndarray] = []  # float64, working space
        self._buffer_size = 0
        self._floor = -math.inf
        self._imp_min = math.inf
        self._n_acq_g = 0
        self._n_acq_i = 0
        self._fta_g = 0
        self._fta_i = 0
        self._float32_only = True
        self._mom_g = _Moments()
        self._mom_i = _Moments()
        self._hist_g = np.zeros(self._bins + 2, np.int64)  # [underflow, bins..., overflow]
        self._hist_i = np.zeros(self._bins + 2, np.int64)

    # ------------------------------------------------------------------ configuration & counts
    @property
    def fmr_targets(self) -> tuple[float, ...]:
        """The declared FMR targets, ascending."""
        return tuple(float(t) for t in self._targets)

    @property
    def expected_impostors(self) -> int | None:
        return self._expected

    @property
    def higher_is_genuine(self) -> bool:
        return self._sign > 0

    @property
    def fta(self) -> str:
        return self._fta

    @property
    def n_genuine(self) -> int:
        """Genuine comparisons in the rate denominators (genuine FTAs included under ``fta="reject"``)."""
        return self._n_acq_g + (self._fta_g if self._fta == "reject" else 0)

    @property
    def n_impostor(self) -> int:
        """Impostor comparisons in the rate denominators (impostor FTAs included under ``fta="reject"``)."""
        return self._n_acq_i + (self._fta_i if self._fta == "reject" else 0)

    @property
    def n_fta(self) -> int:
        """Failures to acquire (NaN scores) seen, genuine and impostor, whatever the policy."""
        return self._fta_g + self._fta_i

    @property
    def floor_value(self) -> float:
        """f: the largest impostor score ever discarded (working space), -inf if none was.

        Every acquired impostor score > f is in the buffer.
        """
        return self._floor

    @property
    def buffer_size(self) -> int:
        """Number of impostor scores currently buffered."""
        return self._buffer_size

    @property
    def keep(self) -> int:
        """The number of top impostor scores kept at each compaction (module docstring)."""
        if self._expected is not None:
            return allowed_errors(self._max_target, self._expected) + 1
        return allowed_errors(2 * self._max_target, self.n_impostor) + 2

    # ------------------------------------------------------------------ histogram geometry
    def _raw_index(self, x64: np.ndarray) -> np.ndarray:
        """floor((x - lo) * scale) in float64, unclipped: monotone non-decreasing in x (may be +-inf)."""
        with np.errstate(over="ignore"):
            return np.floor((x64 - self._lo) * self._scale)

    def _compute_edges(self) -> np.ndarray:
        """edges[j] = the smallest float64 x with raw_index(x) >= j, j = 0..bins (bisection on float order).

        raw_index is monotone (IEEE subtraction, multiplication by scale > 0 and floor are all monotone), so
        {x : raw_index(x) >= j} = [edges[j], +inf) over the float64 values.
        """
        j = np.arange(self._bins + 1, dtype=np.float64)
        big = np.finfo(np.float64).max
        lo_k = np.full(j.shape, _ordered_key(np.array([-big]))[0])  # predicate false
        hi_k = np.full(j.shape, _ordered_key(np.array([big]))[0])  # predicate true
        # Invariant: raw(from_key(lo_k)) < j <= raw(from_key(hi_k)) (both ends hold for j in 0..bins).
        assert (self._raw_index(_from_key(lo_k)) < j).all() and (self._raw_index(_from_key(hi_k)) >= j).all()
        while True:
            gap = hi_k - lo_k
            if (gap <= 1).all():
                break
            mid = lo_k + gap // np.uint64(2)
            ok = self._raw_index(_from_key(mid)) >= j
            hi_k = np.where(ok, mid, hi_k)
            lo_k = np.where(ok, lo_k, mid)
        return _from_key(hi_k) + 0.0  # -0.0 -> 0.0

    def _bin_counts(self, x64: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Histogram of float64 working-space values, [underflow, bins..., overflow].

        Overwrites x64 (and the scratch ``idx``, same length): the same float64 operations as
        :meth:`_raw_index`, then clipped to [-1, bins] (underflow / overflow) and shifted by one.
        """
        with np.errstate(over="ignore"):  # huge scores overflow to +-inf: under/overflow bins, as intended
            np.subtract(x64, self._lo, out=x64)
            np.multiply(x64, self._scale, out=x64)
        np.floor(x64, out=x64)
        np.clip(x64, -1.0, float(self._bins), out=x64)
        np.copyto(idx, x64, casting="unsafe")  # exact: integral values in [-1, bins]
        idx += 1
        return np.bincount(idx, minlength=self._bins + 2)

    # ------------------------------------------------------------------ input
    def _validate(self, values, name: str, offset: int) -> tuple:
        """Validate one chunk without recording anything.

        Returns (acquired scores in working space, number of FTA, float64 sum of the acquired or None,
        whether the chunk's dtype is float16/float32, whether the returned array is a private copy).
        """
        arr = as_score_array(values, name)
        small = arr.dtype in _SMALL_FLOATS
        owned = False
        if arr.dtype not in (np.float32, np.float64):
            # float16 -> float32 (exact); integers and other floats -> float64, as the in-memory functions do
            arr = arr.astype(np.float32 if small else np.float64)
            owned = True
        total = float(np.sum(arr, dtype=np.float64)) if arr.size else 0.0
        n_fta = 0
        if not math.isfinite(total):  # some NaN/inf, or a float64 overflow of the sum: look closely
            inf_at = np.flatnonzero(np.isinf(arr))
            if inf_at.size:
                i = int(inf_at[0])
                raise ScoreError(f"{name} score at index {i} of this chunk (index {offset + i} of the {name} "
                                 f"stream) is {arr[i]}: scores must be finite ({inf_at.size} infinite value(s) "
                                 f"in the chunk); use NaN for a failure to acquire")
            nan_mask = np.isnan(arr)
            n_fta = int(np.count_nonzero(nan_mask))
            if n_fta and self._fta == "error":
                i = int(np.flatnonzero(nan_mask)[0])
                raise ScoreError(f"{name} score at index {i} of this chunk (index {offset + i} of the {name} "
                                 f"stream) is NaN ({n_fta} NaN value(s) in the chunk) and the FTA policy is "
                                 f"'error'; use fta='reject' or fta='exclude' to count missing templates")
            if n_fta:
                arr = arr[~nan_mask]
                owned = True
            total = None
        if self._sign < 0:
            arr = np.negative(arr)
            owned = True
            total = None if total is None else -total
        return arr, n_fta, total, small, owned

    def _scan(self, x: np.ndarray, total: float | None) -> tuple[_Moments, np.ndarray]:
        """Moments (two passes, float64, as in :func:`frmask.metrics.fdr`) and histogram of acquired
        working-space scores, in cache-sized slices with reused scratch buffers."""
        n = x.size
        hist = np.zeros(self._bins + 2, np.int64)
        if n == 0:
            return _Moments(), hist
        if total is None:
            total = sum(float(np.sum(x[s:s + CHUNK], dtype=np.float64)) for s in range(0, n, CHUNK))
        mean = total / n
        m2 = 0.0
        size = min(n, _SLICE)
        buf, dev, idx = np.empty(size), np.empty(size), np.empty(size, np.intp)
        for s in range(0, n, _SLICE):
            m = min(_SLICE, n - s)
            b, d = buf[:m], dev[:m]
            np.copyto(b, x[s:s + m])  # exact widening to float64
            np.subtract(b, mean, out=d)
            np.square(d, out=d)
            m2 += float(np.sum(d))  # pairwise summation; no BLAS call (threads) in the hot loop
            hist += self._bin_counts(b, idx[:m])
        return _Moments(n, mean, m2), hist

    def add(self, genuine=None, impostor=None) -> ScoreAccumulator:
        """Add a chunk of genuine and/or impostor scores (1-D array-likes); returns self.

        Both chunks are validated before anything is recorded, so a chunk that raises leaves the
        accumulator unchanged. Errors (:class:`ScoreError`) name the index within the chunk and within
        the stream of that kind (the running offset).
        """
        parts = []
        seen_g, seen_i = self._n_acq_g + self._fta_g, self._n_acq_i + self._fta_i  # entries received so far
        for values, name, offset in ((genuine, "genuine", seen_g), (impostor, "impostor", seen_i)):
            parts.append(None if values is None else self._validate(values, name, offset))
        for part, is_genuine in zip(parts, (True, False)):
            if part is None:
                continue
            x, n_fta, total, small, owned = part
            self._float32_only = self._float32_only and small
            mom, hist = self._scan(x, total)
            if is_genuine:
                self._fta_g += n_fta
                self._n_acq_g += x.size
                self._mom_g.combine(mom.n, mom.mean, mom.m2)
                self._hist_g += hist
                if x.size:
                    self._genuine.append(x if owned else x.copy())  # never alias the caller's array
                    self._genuine_cat = None
            else:
                self._fta_i += n_fta
                self._n_acq_i += x.size
                self._mom_i.combine(mom.n, mom.mean, mom.m2)
                self._hist_i += hist
                if x.size:
                    self._imp_min = min(self._imp_min, float(x.min()))
                    self._push_impostors(x)
        return self

    def add_impostor_summary(self, *, n: int, candidates: np.ndarray, histogram: np.ndarray, minimum: float,
                             moments: tuple[int, float, float]) -> ScoreAccumulator:
        """Record a chunk of ``n`` acquired float32 similarity impostor scores from its summary; returns self.

        For block engines (:mod:`frmask.exhaustive`) that compute the chunk's statistics themselves (on a
        torch device) instead of handing over every score. The caller vouches for the summary, computed as
        :meth:`add` would: ``candidates`` (float32) holds every score of the chunk that is
        ``>= floor_value`` at the time of the call (others may be included); ``histogram`` (int64, length
        ``bins + 2``: underflow, bins, overflow) counts the chunk with the float64 bin index of
        :class:`ScoreHistogram`; ``minimum`` is its smallest score; ``moments`` its float64 (count, mean,
        M2). Similarity accumulators only (``higher_is_genuine=True``); no NaN (count failures to acquire
        with :meth:`add_failures`).
        """
        if self._sign < 0:
            raise ScoreError("add_impostor_summary takes similarity scores (higher_is_genuine=True)")
        hist = np.asarray(histogram, np.int64)
        if hist.shape != (self._bins + 2,) or int(hist.sum()) != n:
            raise ScoreError(f"impostor histogram must have {self._bins + 2} counts summing to n={n}")
        if n == 0:
            return self
        cand = np.asarray(candidates)
        if cand.dtype != np.float32:
            raise ScoreError(f"impostor candidates must be float32, got {cand.dtype}")
        self._n_acq_i += int(n)
        self._hist_i += hist
        self._mom_i.combine(*moments)
        self._imp_min = min(self._imp_min, float(minimum))
        if cand.size:
            self._push_impostors(cand)
        return self

    def add_failures(self, *, genuine: int = 0, impostor: int = 0) -> ScoreAccumulator:
        """Count failures to acquire (comparisons with no score, as NaN in :meth:`add`) without arrays."""
        if (genuine or impostor) and self._fta == "error":
            raise ScoreError(f"{genuine + impostor} comparison(s) have no score (failure to acquire) and the FTA "
                             f"policy is 'error'")
        self._fta_g += int(genuine)
        self._fta_i += int(impostor)
        return self

    def replace_moments(self, genuine: tuple[int, float, float], impostor: tuple[int, float, float]) -> None:
        """Set the float64 (count, mean, M2) of the acquired genuine and impostor scores behind :meth:`fdr`.

        :meth:`merge` combines moments in merge order, so the last bits of the FDR depend on how a stream
        was split between accumulators; an engine that keeps per-chunk moments and combines them in its own
        fixed order (:mod:`frmask.exhaustive`) sets the result here, so the FDR does not. The counts must
        be the accumulator's.
        """
        if int(genuine[0]) != self._n_acq_g or int(impostor[0]) != self._n_acq_i:
            raise ScoreError(f"moments counts {genuine[0]}/{impostor[0]} differ from the acquired genuine/impostor "
                             f"counts {self._n_acq_g}/{self._n_acq_i}")
        self._mom_g = _Moments(*genuine)
        self._mom_i = _Moments(*impostor)

    def _push_impostors(self, x: np.ndarray) -> None:
        """Buffer the acquired working-space impostor scores x, keeping the invariant on f."""
        if self._floor > -math.inf:
            # Scores below f can never be used (an answer needs buffered values >= f): drop them; the
            # largest discarded score stays <= f, so f is unchanged.
            x = x[x >= _cut_for(self._floor, x.dtype)]
        keep = self.keep
        if x.size > 2 * keep:  # reduce the chunk alone first, in its own dtype
            cut = x.size - keep
            p = np.partition(x, cut)
            self._floor = max(self._floor, float(p[:cut].max()))
            x = p[cut:]
        if x.size:
            self._buffer.append(x.astype(np.float64))  # always a copy: the buffer owns its arrays
            self._buffer_size += x.size
        if self._buffer_size > 2 * keep:
            self._compact(keep)

    def _consolidated(self) -> np.ndarray:
        if len(self._buffer) != 1:
            buf = np.concatenate(self._buffer) if self._buffer else np.empty(0, np.float64)
            self._buffer = [buf]
        return self._buffer[0]

    def _compact(self, keep: int | None) -> None:
        """Drop buffered values below f, then keep the ``keep`` largest (all if None); f = max(f, largest
        discarded)."""
        buf = self._consolidated()
        if self._floor > -math.inf:
            buf = buf[buf >= self._floor]  # values below f are useless (see _push_impostors)
        if keep is not None and buf.size > keep:
            cut = buf.size - keep
            p = np.partition(buf, cut)
            self._floor = max(self._floor, float(p[:cut].max()))
            buf = p[cut:]
        self._buffer = [buf]
        self._buffer_size = buf.size

    # ------------------------------------------------------------------ merging
    def _config(self) -> tuple:
        return (self._targets, self._lo, self._hi, self._bins, self._sign, self._fta, self._expected)

    def merge(self, other: ScoreAccumulator) -> ScoreAccumulator:
        """Add ``other``'s scores to this accumulator (``other`` is unchanged); returns self.

        Both must have the same declared targets, histogram range and bins, sign, FTA policy and buffer
        policy (``expected_impostors``), else :class:`ScoreError`. The result is the accumulator of the
        concatenated streams: f = max of both floors (every impostor above it is in one of the buffers),
        buffers concatenated and recompacted, histograms, counts and FTA counts added, moments merged.
        """
        if not isinstance(other, ScoreAccumulator):
            raise ScoreError(f"can only merge a ScoreAccumulator, got {type(other).__name__}")
        if other._config() != self._config():
            names = ("fmr_targets", "hist_range lo", "hist_range hi", "bins", "higher_is_genuine sign", "fta",
                     "expected_impostors")
            diff = [f"{n}: {a!r} vs {b!r}" for n, a, b in zip(names, self._config(), other._config()) if a != b]
            raise ScoreError("cannot merge accumulators built differently (" + "; ".join(diff) + ")")
        o_genuine = list(other._genuine)
        o_buffer = list(other._buffer)
        o_mom_g, o_mom_i = other._mom_g.copy(), other._mom_i.copy()
        o_hist_g, o_hist_i = other._hist_g.copy(), other._hist_i.copy()
        o_state = (other._floor, other._imp_min, other._n_acq_g, other._n_acq_i, other._fta_g, other._fta_i,
                   other._float32_only)
        floor, imp_min, n_g, n_i, fta_g, fta_i, f32 = o_state

        self._genuine.extend(o_genuine)
        self._genuine_cat = None
        self._buffer.extend(o_buffer)
        self._buffer_size = sum(b.size for b in self._buffer)
        self._floor = max(self._floor, floor)
        self._imp_min = min(self._imp_min, imp_min)
        self._n_acq_g += n_g
        self._n_acq_i += n_i
        self._fta_g += fta_g
        self._fta_i += fta_i
        self._float32_only = self._float32_only and f32
        self._mom_g.combine(o_mom_g.n, o_mom_g.mean, o_mom_g.m2)
        self._mom_i.combine(o_mom_i.n, o_mom_i.mean, o_mom_i.m2)
        self._hist_g += o_hist_g
        self._hist_i += o_hist_i
        keep = self.keep
        self._compact(keep if self._buffer_size > 2 * keep else None)
        return self

    @classmethod
    def merged(cls, accumulators) -> ScoreAccumulator:
        """A new accumulator combining ``accumulators`` (none of them is modified); see :meth:`merge`."""
        accs = list(accumulators)
        if not accs:
            raise ScoreError("merged() needs at least one accumulator")
        first = accs[0]
        if not isinstance(first, ScoreAccumulator):
            raise ScoreError(f"can only merge ScoreAccumulator objects, got {type(first).__name__}")
        out = cls(tuple(float(t) for t in first._targets), expected_impostors=first._expected,
                  hist_range=(first._lo, first._hi), bins=first._bins, higher_is_genuine=first._sign > 0,
                  fta=first._fta)
        for a in accs:
            out.merge(a)
        return out

    # ------------------------------------------------------------------ exact answers
    def _dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self._float32_only else np.dtype(np.float64)

    def _check_nonempty(self) -> None:
        if self._n_acq_g + self._fta_g == 0:
            raise ScoreError("the genuine score set is empty")
        if self._n_acq_i + self._fta_i == 0:
            raise ScoreError("the impostor score set is empty")
        if self._n_acq_g == 0:
            raise ScoreError(f"no genuine score was acquired (all {self._fta_g} are NaN)")
        if self._n_acq_i == 0:
            raise ScoreError(f"no impostor score was acquired (all {self._fta_i} are NaN)")

    def _genuine_array(self) -> np.ndarray:
        if self._genuine_cat is None:
            g = np.concatenate(self._genuine)
            self._genuine = [g]
            self._genuine_cat = g
        return self._genuine_cat.astype(self._dtype(), copy=False)

    def _declared(self, target) -> Fraction:
        t = rate_target(target, "target FMR")
        if t not in self._targets:
            listed = ", ".join(repr(float(x)) for x in self._targets)
            raise ScoreError(f"FMR target {target!r} was not declared; this accumulator answers only the "
                             f"targets it was built with: {listed}")
        return t

    def _exact_top(self, k: int) -> np.ndarray | None:
        """The k+1 largest impostor scores (descending, float64) when provably exact, else None.

        Proof of exactness. Let top = the buffer sorted descending and suppose top.size >= k+1 and
        v = top[k] >= f. Every acquired impostor x > v satisfies x > f, so by the invariant it is buffered;
        in the sorted buffer those values sit before position k (top[k] = v is not > v). Hence
        #{impostors > v} = #{buffered > v} <= k, while #{impostors >= v} >= #{buffered >= v} >= k + 1, so v
        is the true (k+1)-th largest impostor score. The true k largest are all the c values > v (all
        buffered, all in top[:k]) plus k - c copies of v, which is exactly top[:k] as a multiset. So the
        strict rule sees the same v and the same top[:k] as on the full data. Ties at f are fine.
        """
        top = top_k_desc(self._consolidated(), k + 1)
        if top.size < k + 1 or top[k] < self._floor:
            return None
        return top

    def _sets(self, top: np.ndarray) -> _StreamedSets:
        wd = self._dtype()
        return _StreamedSets(self._genuine_array(), top.astype(wd), self._fta_g, self._fta_i, self._fta,
                             self._sign, n_acquired_impostor=self._n_acq_i)

    def is_exact(self, target) -> bool:
        """Whether :meth:`fnmr_at_fmr` can answer ``target`` exactly now (declared targets only)."""
        t = self._declared(target)
        self._check_nonempty()
        k = allowed_errors(t, self.n_impostor)
        return k >= self._n_acq_i or self._exact_top(k) is not None

    def fnmr_at_fmr(self, target) -> OperatingPoint:
        """The strict-ISO operating point at a declared FMR target, exactly as :func:`frmask.metrics.fnmr_at_fmr`.

        Every field equals the in-memory function's on the concatenated chunks (same threshold, rates,
        counts, flags). Raises :class:`ScoreError` for an undeclared target and :class:`InexactError` when
        the buffer cannot prove the answer (module docstring): then rebuild with ``expected_impostors``.
        """
        t = self._declared(target)
        self._check_nonempty()
        k = allowed_errors(t, self.n_impostor)
        below = k == 0
        if k >= self._n_acq_i:
            # Every acquired impostor may match: accept everything (as the in-memory rule does).
            wd = self._dtype()
            g = self._genuine_array()
            s = _StreamedSets(g, np.empty(0, wd), self._fta_g, self._fta_i, self._fta, self._sign,
                              n_acquired_impostor=self._n_acq_i)
            thr = min(g.min(), wd.type(self._imp_min))
            return _point(s, thr, self._n_acq_i, s.rejected_genuine, target, below)
        top = self._exact_top(k)
        if top is None:
            raise InexactError(
                f"cannot prove an exact FNMR at FMR target {target!r}: it needs the {k + 1} largest of "
                f"{self._n_acq_i} impostor scores, but only {self._buffer_size} are buffered and impostor "
                f"scores up to {self._floor!r} were discarded (the stream began with unusually high impostor "
                f"scores). Build the accumulator with expected_impostors >= {self.n_impostor} to keep the "
                f"needed scores from the start")
        s = self._sets(top)
        return point_at_fmr(s, target, s.impostor)

    def max_accuracy(self) -> tuple[float, float]:
        """(best accuracy, threshold) over every threshold, exactly as :func:`frmask.metrics.max_accuracy`.

        Only the min(N_G, N_I) + 1 largest impostor scores matter (accepting more impostors than there are
        genuine scores is worse than rejecting everything), so the answer is exact when the buffer proves
        them (size it with a declared target of at least N_G / E); else :class:`InexactError`.
        """
        from frmask.metrics.accuracy import max_accuracy_point

        self._check_nonempty()
        k = min(self._n_acq_g, self._n_acq_i)
        complete = k >= self._n_acq_i and self._floor == -math.inf  # every impostor score is buffered
        top = np.sort(self._consolidated())[::-1] if complete else self._exact_top(k)
        if top is None:
            raise InexactError(f"cannot prove the best accuracy: it needs the {k + 1} largest of {self._n_acq_i} "
                               f"impostor scores, but only {self._buffer_size} are buffered; declare an FMR target "
                               f">= {(k + 1) / max(1, self.n_impostor):.3g} with expected_impostors")
        s = self._sets(top)
        acc, t = max_accuracy_point(s, s.impostor)
        return acc, s.output_threshold(t)

    def tpr_at_far(self, target) -> float:
        """True acceptance rate (1 - FNMR) at the strict operating point of :meth:`fnmr_at_fmr`."""
        return self.fnmr_at_fmr(target).tpr

    def fdr(self) -> float:
        """Fisher discriminant ratio (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2), population variances.

        From the streamed float64 moments of the acquired scores (FTAs have no score, whatever the policy);
        agrees with :func:`frmask.metrics.fdr` to rounding (~1e-12 relative or better). inf when both sets
        are constant and different, NaN when constant and equal.
        """
        self._check_nonempty()
        mg, mi = self._mom_g, self._mom_i
        num = (mg.mean - mi.mean) ** 2
        den = mg.variance + mi.variance
        if den == 0.0:
            return float("inf") if num > 0 else float("nan")
        return num / den

    # ------------------------------------------------------------------ histogram approximations
    @property
    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges in working space (float64, non-decreasing); see :class:`ScoreHistogram`."""
        return self._edges.copy()

    def _histogram(self, h: np.ndarray) -> ScoreHistogram:
        return ScoreHistogram(self._edges.copy(), h[1:-1].copy(), int(h[0]), int(h[-1]))

    @property
    def genuine_histogram(self) -> ScoreHistogram:
        """Acquired genuine scores per bin (working space)."""
        return self._histogram(self._hist_g)

    @property
    def impostor_histogram(self) -> ScoreHistogram:
        """Acquired impostor scores per bin (working space)."""
        return self._histogram(self._hist_i)

    def _edge_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(false matches, false non-matches) at every edge, exact integers."""
        hi, hg = self._hist_i, self._hist_g
        # false matches at edge j: impostors in bins >= j plus overflow = suffix sums over storage [j+1:].
        fm = np.cumsum(hi[::-1])[::-1][1:]  # length bins + 1: fm[j] = sum(hi[j+1:])
        # false non-matches at edge j: underflow + bins < j (storage [:j+1]) + rejected genuine FTAs.
        fnm = np.cumsum(hg)[:-1] + (self._fta_g if self._fta == "reject" else 0)
        return fm.astype(np.int64), fnm.astype(np.int64)

    def approximate_det(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(thresholds, fmr, fnmr, max_error): DET points at the bin edges, exact there.

        ``thresholds`` are the ``bins + 1`` edges as the caller sees them (negated back for distances; in
        working space they ascend). At each, FMR = #{impostor >= edge} / N_I and FNMR =
        #{genuine < edge} / N_G (FTAs as by the policy) are **exact**: a score equal to an edge is counted in
        the bin starting at it, consistently with ``>=``. The edges are float64 values: compare float32
        scores with them in float64 (rounding an edge to float32 could move it across a score).

        Error bound: for any threshold t between two consecutive edges e_j <= t <= e_{j+1}, FMR(t) lies
        between FMR(e_{j+1}) and FMR(e_j), which differ by the impostor mass of bin j, and likewise for
        FNMR; so both rates at t are within ``max_error`` = max over bins of max(impostor fraction,
        genuine fraction) of the rates at either neighbouring edge. Below the first or above the last
        edge the bound is instead the underflow / overflow mass (see the histogram properties).
        """
        self._check_nonempty()
        fm, fnm = self._edge_counts()
        ni, ng = self.n_impostor, self.n_genuine
        inner_i, inner_g = self._hist_i[1:-1], self._hist_g[1:-1]
        max_error = max(int(inner_i.max()) / ni, int(inner_g.max()) / ng)
        return self._sign * self._edges, fm / ni, fnm / ng, float(max_error)

    def approximate_eer(self) -> tuple[float, float]:
        """(eer_estimate, error_bound) with |EER - eer_estimate| <= error_bound for the exact FVC2000 EER.

        The exact EER (:func:`frmask.metrics.eer`) is the midpoint of FNMR and FMR at a threshold on the
        crossing of the DET step functions. Using the exact rates at the edges (plus accept-all and
        reject-all), let D = FNMR - FMR (non-decreasing in the threshold). If D = 0 at an edge, FMR and FNMR
        are equal and constant on the whole region where D = 0, so the EER is that rate exactly (bound 0);
        the same holds when even accepting everything gives D > 0. Otherwise, with e_lo the last edge where
        D < 0 and e_hi the next one (D > 0), both FVC2000 thresholds have rates between those at e_lo and
        e_hi, so the EER lies in [(FNMR(e_lo) + FMR(e_hi)) / 2, (FNMR(e_hi) + FMR(e_lo)) / 2]: the estimate
        is the middle of that interval and the bound its half-width (rounded outward), at most
        ``max_error / 2`` of :meth:`approximate_det` when the crossing lies inside ``hist_range``.
        """
        self._check_nonempty()
        fm, fnm = self._edge_counts()
        ni, ng = self.n_impostor, self.n_genuine
        rg = self._fta_g if self._fta == "reject" else 0
        # Extended edges: accept-all (-inf), the bin edges, reject-all (+inf). Python ints: exact.
        fm_x = [self._n_acq_i] + [int(v) for v in fm] + [0]
        fnm_x = [rg] + [int(v) for v in fnm] + [ng]

        def d_sign(j: int) -> int:
            d = fnm_x[j] * ni - fm_x[j] * ng
            return (d > 0) - (d < 0)

        def midpoint(j: int) -> float:
            return (fnm_x[j] * ni + fm_x[j] * ng) / (2 * ng * ni)  # same rounding as frmask.metrics.eer

        if d_sign(0) > 0:
            return midpoint(0), 0.0
        # D is non-decreasing along the extended edges, D(-inf) <= 0 and D(+inf) > 0: bisect for the last j
        # with D <= 0.
        lo, hi = 0, len(fm_x) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if d_sign(mid) <= 0:
                lo = mid
            else:
                hi = mid
        if d_sign(lo) == 0:
            return midpoint(lo), 0.0
        low = Fraction(fnm_x[lo] * ni + fm_x[hi] * ng, 2 * ng * ni)
        high = Fraction(fnm_x[hi] * ni + fm_x[lo] * ng, 2 * ng * ni)
        est = float((low + high) / 2)
        # Any float EER rounded from a value in [low, high] lies in [float(low), float(high)].
        bound_q = max(Fraction(est) - Fraction(float(low)), Fraction(float(high)) - Fraction(est))
        bound = float(bound_q)
        if Fraction(bound) < bound_q:
            bound = math.nextafter(bound, math.inf)
        return est, bound

    def __repr__(self) -> str:
        return (f"ScoreAccumulator(targets={list(self.fmr_targets)}, n_genuine={self.n_genuine}, "
                f"n_impostor={self.n_impostor}, n_fta={self.n_fta}, buffered={self._buffer_size}, "
                f"floor={self._floor!r})")
