"""Selection and counting primitives that scale to 1e8 scores (O(n) passes, bounded extra memory)."""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 22  # 4M elements: 16 MB of float32 per temporary


def top_k_desc(x: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """The ``k`` largest values of ``x`` sorted in descending order (all of ``x`` when k >= x.size).

    Works chunk by chunk with ``np.partition`` (selection, never a full sort of ``x``), so the extra
    memory is O(chunk + k) whatever the size of ``x``.
    """
    n = x.size
    if k <= 0:
        return x[:0].copy()
    if k >= n:
        return np.sort(x)[::-1]
    if n > 2 * chunk and 4 * k < n:
        top = _top_k_by_cut(x, k, chunk)
        if top is not None:
            return top
    if n <= 2 * chunk:
        top = np.partition(x, n - k)[n - k:]
        return np.sort(top)[::-1]
    held: list[np.ndarray] = []
    held_size = 0
    for start in range(0, n, chunk):
        part = x[start:start + chunk]
        if part.size > k:
            part = np.partition(part, part.size - k)[part.size - k:]
        else:
            part = part.copy()
        held.append(part)
        held_size += part.size
        if held_size > max(4 * k, chunk):
            merged = np.concatenate(held)
            held = [np.partition(merged, merged.size - k)[merged.size - k:]]
            held_size = k
    merged = np.concatenate(held)
    if merged.size > k:
        merged = np.partition(merged, merged.size - k)[merged.size - k:]
    return np.sort(merged)[::-1]


def count_ge(x: np.ndarray, t) -> int:
    """Number of elements >= t, in chunks (bounded temporaries)."""
    t = x.dtype.type(t)
    if x.size <= CHUNK:
        return int(np.count_nonzero(x >= t))
    return sum(int(np.count_nonzero(x[s:s + CHUNK] >= t)) for s in range(0, x.size, CHUNK))


def values_between(x: np.ndarray, low, high) -> np.ndarray:
    """The elements v with low < v < high (either bound may be None = unbounded), in chunks."""
    parts = []
    lo = None if low is None else x.dtype.type(low)
    hi = None if high is None else x.dtype.type(high)
    for s in range(0, x.size, CHUNK):
        c = x[s:s + CHUNK]
        mask = np.ones(c.shape, bool)
        if lo is not None:
            mask &= c > lo
        if hi is not None:
            mask &= c < hi
        parts.append(c[mask])
    return np.concatenate(parts) if parts else x[:0].copy()


def mean_var(x: np.ndarray) -> tuple[float, float]:
    """Mean and population variance in float64, two passes in chunks (no float64 copy of x)."""
    n = x.size
    total = 0.0
    for s in range(0, n, CHUNK):
        total += float(np.sum(x[s:s + CHUNK], dtype=np.float64))
    mean = total / n
    sq = 0.0
    for s in range(0, n, CHUNK):
        d = np.subtract(x[s:s + CHUNK], mean, dtype=np.float64)  # one float64 temporary, whatever x's dtype
        sq += float(np.dot(d, d))
    return mean, sq / n


def reject_all_threshold(*arrays: np.ndarray):
    """The smallest working-dtype value above every score: accepting ``score >= t`` accepts nothing."""
    top = max(a.max() for a in arrays if a.size)
    return np.nextafter(top, np.inf)


SAMPLE = 1 << 16  # values of the strided sample that estimates a cut below the k largest


def _top_k_by_cut(x: np.ndarray, k: int, chunk: int) -> np.ndarray | None:
    """The k largest values of x sorted descending, found by one filtering pass: a cut estimated from a strided
    sample (with a margin) keeps every value not below it (NaN included, as ``np.partition`` ranks NaN
    highest); None when fewer than k values pass (the caller then selects chunk by chunk). Exact either way:
    when at least k values are >= the cut, the k largest are all among them."""
    step = max(1, x.size // SAMPLE)
    sample = np.sort(x[::step])
    m = sample.size
    want = k * m / x.size
    rank = int(1.2 * want + 4 * np.sqrt(want) + 16)  # expected kept values: about 1.2 k
    if rank >= m:
        return None
    cut = sample[m - 1 - rank]
    kept = [c[~(c < cut)] for c in (x[s:s + chunk] for s in range(0, x.size, chunk))]
    kept = np.concatenate(kept)
    if kept.size < k:
        return None
    return np.sort(np.partition(kept, kept.size - k)[kept.size - k:])[::-1]
