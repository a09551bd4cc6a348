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

from frmask.metrics.streaming import _Moments

SLICE = 1 << 17  # scores per slice: the float64 scratch (1 MiB) stays in cache


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
    """Reusable scratch and running sums; :meth:`scan` one block of float32 scores at a time."""

    def __init__(self, acc):
        self.acc = acc
        self.fast = fast_binning(acc)
        self.bins = acc._bins
        self.shift = float(-acc._lo * acc._scale) + 1.0  # storage index = floor(x * scale) + shift
        self.f32 = np.empty(SLICE, np.float32)
        self.f64 = np.empty(SLICE, np.float64)
        self.idx = np.empty(SLICE, np.intp)

    def scan(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, float, float], float]:
        """(histogram [underflow, bins..., overflow], float64 (count, mean, M2), minimum) of float32 ``x``."""
        flat = x.reshape(-1)
        n = flat.size
        hist = np.zeros(self.bins + 2, np.int64)
        mom = _Moments()
        lowest = math.inf
        acc, scale = self.acc, self.acc._scale
        for s in range(0, n, SLICE):
            xc = flat[s:s + SLICE]
            m = xc.size
            b = self.f64[:m]
            np.copyto(b, xc)
            mc = float(b.sum()) / m
            lowest = min(lowest, float(xc.min()))
            if self.fast:
                y = self.f32[:m]
                with np.errstate(over="ignore"):  # huge scores overflow to +-inf: the end bins
                    np.multiply(xc, np.float32(scale), out=y)  # exact: a power of two
                np.floor(y, out=y)
                np.add(y, np.float32(self.shift), out=y)  # exact: integers below 2**24
                np.clip(y, 0.0, float(self.bins + 1), out=y)
                idx = self.idx[:m]
                np.copyto(idx, y, casting="unsafe")
                hist += np.bincount(idx, minlength=self.bins + 2)
                if lowest < 0:
                    tiny = int(np.count_nonzero((xc < 0) & (xc >= -(2.0**-54))))
                    if tiny:  # 1 + x rounds to 1 in float64 (module docstring)
                        j = int(self.shift) - 1
                        hist[j] -= tiny
                        hist[j + 1] += tiny
            np.subtract(b, mc, out=b)
            np.square(b, out=b)
            m2c = float(b.sum())
            if not self.fast:
                np.copyto(b, xc)
                hist += acc._bin_counts(b, self.idx[:m])
            mom.combine(m, mc, m2c)
        return hist, (mom.n, mom.mean, mom.m2), lowest
