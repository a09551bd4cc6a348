"""Per-image random streams: every random choice for image ``i`` of a data set comes from one generator.

``image_rng(seed, dataset, index, stream)`` builds a :class:`numpy.random.Generator` from a
:class:`numpy.random.SeedSequence` whose entropy is a fixed-length list of 32-bit words:

    [seed (2 words, 64-bit little-endian), sha256(dataset, UTF-8) (8 words), index (2 words),
     sha256(stream, UTF-8) (8 words)]

so the draws for an image depend only on those four values, never on the order in which images are
processed, the batch size or the number of workers, and never on Python's per-process salted
``hash()``. Different ``stream`` names (``"mask"`` for colours, ``"jitter"`` for anchor shifts, ...)
give independent streams for the same image, so adding a new kind of random choice later does not
change the existing ones.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

__all__ = ["image_rng", "image_seed_sequence", "name_words"]

_U64 = 1 << 64


@lru_cache(maxsize=256)
def name_words(name: str) -> tuple[int, ...]:
    """The UTF-8 SHA-256 digest of ``name`` as eight little-endian uint32 words (stable across runs)."""
    if not isinstance(name, str):
        raise TypeError(f"expected a str name, got {type(name).__name__}")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int(w) for w in np.frombuffer(digest, dtype="<u4"))


def _u64_words(value, what: str) -> list[int]:
    if type(value) is not int:  # the common case first (bool, a subclass of int, is refused here)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
        value = int(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{what} must be in [0, 2**64), got {value}")
    return [value & 0xFFFFFFFF, value >> 32]


def image_seed_sequence(seed: int, dataset: str, index: int, stream: str = "mask") -> np.random.SeedSequence:
    """The :class:`~numpy.random.SeedSequence` of image ``index`` of ``dataset`` (see the module notes)."""
    entropy = [*_u64_words(seed, "seed"), *name_words(dataset), *_u64_words(index, "index"), *name_words(stream)]
    # As a uint32 array: the same pool as the list of words (each word < 2**32 is one uint32), built about
    # ten times faster than from a list of Python ints (tests/test_synth_render.py checks the equality).
    return np.random.SeedSequence(np.array(entropy, dtype=np.uint32))


def image_rng(seed: int, dataset: str, index: int, stream: str = "mask") -> np.random.Generator:
    """A fresh PCG64 generator for image ``index`` of ``dataset``: identical inputs give identical draws.

    ``seed`` and ``index`` are integers in ``[0, 2**64)``; ``dataset`` and ``stream`` are any strings
    (hashed with SHA-256, so ``"lfw"`` and ``"LFW"`` differ).
    """
    return np.random.Generator(np.random.PCG64(image_seed_sequence(seed, dataset, index, stream)))
