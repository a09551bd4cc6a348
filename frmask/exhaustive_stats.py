"""Statistics of one block of float32 scores for :mod:`frmask.exhaustive`: histogram, moments, minimum,
and the pairs kept with their scores.

Everything is numpy on cache-sized slices with reused scratch buffers (single-threaded, so the bits do
not depend on thread counts), and exactly what :class:`~frmask.metrics.ScoreAccumulator` would compute:

* histogram (:func:`block_statistics`): the accumulator bins x with ``floor((x - lo) * scale)`` in float64.
  When ``scale`` is a power of two and ``lo * scale`` an integer (the engine's 2**16 bins over [-1, 1]),
  that equals ``floor(x * scale) - lo * scale`` computed in float32 -- both are exact -- except where
  float64 rounds ``x - lo``: for lo = -1, only x in [-2**-54, 0), where 1 + x rounds to 1. Those few are
  moved to the float64 bin. Other geometries use the accumulator's own float64 binning.
* moments: float64 (count, mean, M2) per slice (two passes over the slice, in cache), combined with Chan et
  al.'s formula in slice order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from frmask._cores import available_cores
from frmask.metrics.streaming import _Moments

SLICE = 1 << 17  # scores per slice: the float64 scratch (1 MiB) stays in cache
BIN_BATCH = 1 << 20  # bin indices gathered before one bincount (its 2**16-long result is then cheap)
THREADS = min(2, available_cores())  # statistics threads per process
_TINY = int(np.array([-(2.0**-54)], np.float32).view(np.int32)[0])  # int32 views <= this: x in [-2**-54, -0.0]


@dataclass
class KeptPairs:
    """Pairs kept with their scores: positions ``i`` (reference) and ``j`` (probe), float32 ``score``."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> KeptPairs:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))

    @classmethod
    def concat(cls, parts) -> KeptPairs:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("i", "j", "score")))

    def __len__(self) -> int:
        return self.score.size

    def select(self, mask_or_index) -> KeptPairs:
        return KeptPairs(self.i[mask_or_index], self.j[mask_or_index], self.score[mask_or_index])

    def sorted(self) -> KeptPairs:
        """In pair order (i, then j): the order of :class:`~frmask.protocols.folder.FolderProtocol`'s pairs."""
        return self.select(np.lexsort((self.j, self.i)))

    def top(self, k: int) -> KeptPairs:
        """The k highest scores, ties broken by pair order (so the choice does not depend on the split)."""
        return self.select(np.lexsort((self.j, self.i, -self.score.astype(np.float64)))[:k])


def _power_of_two(v: float) -> bool:
    m, _ = math.frexp(v)
    return v > 0 and m == 0.5


def fast_binning(acc) -> bool:
    """Whether :func:`block_statistics` may bin in float32 for this accumulator (module docstring)."""
    return _power_of_two(acc._scale) and float(acc._lo * acc._scale).is_integer() and acc._lo == -1.0


class BlockStatistics:
    """Reusable scratch buffers and worker threads; :meth:`scan` one block of float32 scores at a time.

    The slices of a block are shared among :data:`THREADS` threads (numpy releases the GIL), each with its
    own scratch; every slice's moments are combined afterwards in slice order, so the result is the same
    bits whatever the number of threads."""

    def __init__(self, acc, threads: int | None = None):
        self.acc = acc
        self.fast = fast_binning(acc)
        self.bins = acc._bins
        self.shift = float(-acc._lo * acc._scale) + 1.0  # storage index = floor(x * scale) + shift
        self.threads = max(1, threads or THREADS)
        self._scratch = [(np.empty(SLICE, np.float32), np.empty(SLICE, np.float64), np.empty(BIN_BATCH, np.intp))
                         for _ in range(self.threads)]
        self._pool = None

    def __getstate__(self):
        raise TypeError("BlockStatistics holds scratch buffers and threads: not picklable")

    def close(self) -> None:
        """Stop the worker threads (a later :meth:`scan` starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _slices(self, flat: np.ndarray, w: int, cut) -> tuple:
        """Worker ``w``'s share of the slices: (hist, [(slice, n, mean, M2)], minimum, [(slice, hits)])."""
        y32, b, idx = self._scratch[w]
        hist = np.zeros(self.bins + 2, np.int64)
        moments, hits = [], []
        lowest = math.inf
        filled = 0
        scale, shift = np.float32(self.acc._scale), np.float32(self.shift)
        for k in range(w, -(-flat.size // SLICE), self.threads):
            s = k * SLICE
            xc = flat[s:s + SLICE]
            m = xc.size
            bm = b[:m]
            np.copyto(bm, xc)
            mc = float(bm.sum()) / m
            lowest = min(lowest, float(xc.min()))
            if cut is not None:
                hit = np.flatnonzero(xc >= cut)
                if hit.size:
                    hits.append((k, hit + s))
            if self.fast:
                if filled + m > idx.size:
                    hist += np.bincount(idx[:filled], minlength=self.bins + 2)
                    filled = 0
                y = y32[:m]
                with np.errstate(over="ignore"):  # huge scores overflow to +-inf: the end bins
                    np.multiply(xc, scale, out=y)  # exact: a power of two
                np.floor(y, out=y)
                np.add(y, shift, out=y)  # exact: integers below 2**24
                np.clip(y, 0.0, float(self.bins + 1), out=y)
                np.copyto(idx[filled:filled + m], y, casting="unsafe")
                filled += m
                if np.count_nonzero(xc.view(np.int32) <= _TINY) and lowest < 0:  # tiny negatives or -0.0
                    tiny = int(np.count_nonzero((xc < 0) & (xc >= -(2.0**-54))))
                    if tiny:  # 1 + x rounds to 1 in float64 (module docstring)
                        j = int(self.shift) - 1
                        hist[j] -= tiny
                        hist[j + 1] += tiny
            np.subtract(bm, mc, out=bm)
            np.square(bm, out=bm)
            moments.append((k, m, mc, float(bm.sum())))
            if not self.fast:
                np.copyto(bm, xc)
                hist += self.acc._bin_counts(bm, idx[:m])
        if filled:
            hist += np.bincount(idx[:filled], minlength=self.bins + 2)
        return hist, moments, lowest, hits

    def scan(self, x: np.ndarray, cut=None) -> tuple[np.ndarray, tuple[int, float, float], float, np.ndarray | None]:
        """(histogram [underflow, bins..., overflow], float64 (count, mean, M2), minimum, flat indices of the
        scores >= ``cut`` in order, or None without ``cut``) of float32 ``x``."""
        flat = x.reshape(-1)
        n_slices = -(-flat.size // SLICE)
        if self.threads == 1 or n_slices < 2:
            results = [self._slices(flat, w, cut) for w in range(self.threads)]
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="frmask-stats")
            results = list(self._pool.map(lambda w: self._slices(flat, w, cut), range(self.threads)))
        hist = results[0][0]
        for r in results[1:]:
            hist += r[0]
        mom = _Moments()
        for _, m, mc, m2c in sorted(t for r in results for t in r[1]):
            mom.combine(m, mc, m2c)
        hits = None
        if cut is not None:
            parts = [h for _, h in sorted((t for r in results for t in r[3]), key=lambda t: t[0])]
            hits = np.concatenate(parts) if parts else np.empty(0, np.intp)
        return hist, (mom.n, mom.mean, mom.m2), min(r[2] for r in results), hits
