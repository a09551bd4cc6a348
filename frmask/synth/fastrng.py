"""The first draws of :func:`frmask.synth.seeding.image_rng` for many images at once, bit for bit.

Building one ``SeedSequence`` -> ``PCG64`` -> ``Generator`` per image costs about 30 us, which dominates
the colour choice of a large benchmark. This module recomputes the same numbers without building those
objects: numpy's ``SeedSequence`` hash (32-bit words, vectorised over images), PCG64's seeding and its
first outputs (128-bit integers), and ``Generator.integers``' bounded draw (Lemire's multiply-shift on
32-bit words, which numpy uses for ranges below 2**32). The seeding scheme itself is unchanged
(:mod:`frmask.synth.seeding`).

Whenever Lemire's method could reject a draw (a rare case, probability about ``range / 2**32``), the
image falls back to the real generator, so the result always equals
``random_color(image_rng(seed, dataset, i, stream), palette)``. :func:`selfcheck` compares the two on a
few images; callers use the fast path only when it passes (a numpy that changed its generators makes
it fail, and everything falls back to numpy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from frmask.synth.seeding import _u64_words, image_rng, name_words

__all__ = ["random_colors", "selfcheck"]

# numpy.random.SeedSequence constants (numpy/random/bit_generator.pyx), pool of 4 words.
_POOL = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_M32 = 0xFFFFFFFF
# PCG64 (XSL-RR 128/64) multiplier.
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1


class _Hash:
    """SeedSequence's running hash constant, advanced once per ``hashmix``."""

    def __init__(self):
        self.value = _INIT_A

    def mix(self, words: np.ndarray) -> np.ndarray:
        words = words ^ np.uint32(self.value)
        self.value = (self.value * _MULT_A) & _M32
        words = words * np.uint32(self.value)
        return words ^ (words >> np.uint32(16))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
    return r ^ (r >> np.uint32(16))


def _seed_states(entropy: list) -> np.ndarray:
    """``SeedSequence(entropy).generate_state(8, uint32)`` for each image: ``entropy`` is a list of uint32
    words, each a scalar (shared) or an (n,) array (per image). Returns uint32 (n, 8)."""
    with np.errstate(over="ignore"):
        words = [np.asarray(w, dtype=np.uint32) for w in entropy]
        h = _Hash()
        pool = [h.mix(words[i]) if i < len(words) else h.mix(np.uint32(0)) for i in range(_POOL)]
        for src in range(_POOL):
            for dst in range(_POOL):
                if src != dst:
                    pool[dst] = _mix(pool[dst], h.mix(pool[src]))
        for src in range(_POOL, len(words)):
            for dst in range(_POOL):
                pool[dst] = _mix(pool[dst], h.mix(words[src]))
        n = max(np.size(p) for p in pool)
        out = np.empty((n, 8), np.uint32)
        hb = _INIT_B
        for k in range(8):
            v = pool[k % _POOL] ^ np.uint32(hb)
            hb = (hb * _MULT_B) & _M32
            v = v * np.uint32(hb)
            out[:, k] = v ^ (v >> np.uint32(16))
    return out


def _entropy(seed: int, dataset: str, indices: np.ndarray, stream: str) -> list:
    idx = np.asarray(indices, dtype=np.uint64)
    lo = (idx & np.uint64(_M32)).astype(np.uint32)
    hi = (idx >> np.uint64(32)).astype(np.uint32)
    return [*_u64_words(seed, "seed"), *name_words(dataset), lo, hi, *name_words(stream)]


def _pcg_first_outputs(states: np.ndarray, count: int) -> list[list[int]]:
    """The first ``count`` 64-bit outputs of ``PCG64`` seeded from each row of ``states`` (uint32 (n, 8))."""
    s64 = np.ascontiguousarray(states).view("<u8").astype(np.uint64)  # (n, 4) as SeedSequence gives them
    out = []
    for a, b, c, d in s64.tolist():
        initstate = (a << 64) | b
        inc = (((c << 64) | d) << 1 | 1) & _M128
        st = (inc * 1) & _M128  # state 0, one step: 0 * mult + inc
        st = (st + initstate) & _M128
        st = (st * _PCG_MULT + inc) & _M128
        draws = []
        for _ in range(count):
            st = (st * _PCG_MULT + inc) & _M128
            x = ((st >> 64) ^ st) & _M64
            rot = st >> 122
            draws.append(((x >> rot) | (x << ((64 - rot) & 63))) & _M64)
        out.append(draws)
    return out


def _u32_stream(outputs: list[int]):
    """PCG64's ``next_uint32``: the low half of each 64-bit output, then its high half."""
    for v in outputs:
        yield v & _M32
        yield v >> 32


def _bounded(words, n_draws: int, high: int) -> list[int] | None:
    """``n_draws`` Lemire draws in [0, high) from 32-bit ``words``; None where a rejection could occur."""
    out = []
    for _ in range(n_draws):
        m = next(words) * high
        if (m & _M32) < high:
            return None  # numpy may reject and redraw here: let numpy decide
        out.append(m >> 32)
    return out


def random_colors(seed: int, dataset: str, indices, palette, stream: str = "color") -> np.ndarray:
    """uint8 (n, 3): ``random_color(image_rng(seed, dataset, i, stream), palette)`` for each ``i`` of
    ``indices``, where ``palette`` is None (uniform RGB) or a uint8 (K, 3) array."""
    from frmask.synth.colors import random_color

    indices = [int(i) for i in indices]
    n = len(indices)
    out = np.empty((n, 3), np.uint8)
    if n == 0:
        return out
    for i in indices:
        _u64_words(i, "index")  # same errors as image_rng
    states = _seed_states(_entropy(seed, dataset, np.array(indices, dtype=np.uint64), stream))
    uniform = palette is None
    high = 256 if uniform else len(palette)
    draws_per_image = 3 if uniform else 1
    if not 1 <= high <= _M32:
        raise ValueError(f"a palette must hold 1 .. 2**32 - 1 colours, got {high}")
    outputs = _pcg_first_outputs(states, (draws_per_image + 1) // 2)
    for k, (i, raw) in enumerate(zip(indices, outputs)):
        values = [0] * draws_per_image if high == 1 else _bounded(_u32_stream(raw), draws_per_image, high)
        if values is None:
            out[k] = random_color(image_rng(seed, dataset, i, stream), palette)
        elif uniform:
            out[k] = values
        else:
            out[k] = palette[values[0]]
    return out


@lru_cache(maxsize=1)
def selfcheck() -> bool:
    """True when :func:`random_colors` matches numpy's generators on a few images (uniform and a palette)."""
    from frmask.synth.colors import random_color

    try:
        palette = np.arange(21 * 3, dtype=np.uint8).reshape(21, 3)
        idx = [0, 1, 2, 977, 2**40 + 3]
        for pal in (None, palette):
            fast = random_colors(12345, "selfcheck", idx, pal)
            slow = np.stack([random_color(image_rng(12345, "selfcheck", i, "color"), pal) for i in idx])
            if not np.array_equal(fast, slow):
                return False
        return True
    except Exception:  # noqa: BLE001 - any failure means: use numpy's own generators
        return False
