"""insightface ``.bin`` benchmarks (lfw, cfp_fp, cfp_ff, agedb_30, calfw, cplfw) as protocols, masked on the fly.

Pair i compares images 2i and 2i+1 (aligned 112x112 crops); accuracy is reported over 10 contiguous folds
as in the paper's Table IV. ``mask`` applies a synthesis mode of :mod:`frmask.synth.benchmark` while the
images are read: image i is masked and re-encoded exactly as ``frmask synth --benchmark NAME --mode MODE
--seed SEED`` writes it (same colours, same jitter, same JPEG/PNG bytes), so scoring on the fly and scoring
the masked ``.bin`` give the same result.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from frmask.protocols.base import ImageEntry, Protocol


def load_bin(benchmark: str, data, *, mask: str = "none", spec=None, seed: int = 0) -> Protocol:
    """The protocol of the ``.bin`` file ``data`` named ``benchmark``, masked with ``mask`` (a mode of
    :data:`frmask.synth.benchmark.MODES`) using ``spec`` (a :class:`~frmask.synth.benchmark.MaskSpec`)."""
    from frmask.io.insightface_bin import read_bin
    from frmask.synth.benchmark import MODES, MaskSpec, check_benchmark, check_spec, masked_indices

    benchmark = check_benchmark(benchmark)
    if mask not in MODES:
        raise ValueError(f"unknown mask mode {mask!r}; choose one of {', '.join(MODES)}")
    spec = spec or MaskSpec()
    path = Path(data)
    if not path.is_file():
        raise ValueError(f"{path}: no such .bin file")
    if mask != "none":
        check_spec(spec)  # a bad template or colour fails here, before any work
    bench = read_bin(path)
    n = len(bench.images)
    to_mask = np.zeros(n, bool)
    to_mask[masked_indices(n, mask)] = True
    reader = _MaskingReader(bench.images, to_mask, benchmark, spec, seed)
    images = [ImageEntry(f"{path.name}#{i}", None, "none", "masked" if to_mask[i] else "no-mask") for i in range(n)]
    first = np.arange(0, n, 2)
    what = "" if mask == "none" else f", {mask} ({spec.mask_type if spec.template is None else spec.template}, seed {seed})"
    return Protocol(benchmark, images, first, first + 1, bench.issame, None, None, {}, folds=10,
                    description=f"{benchmark} from {path}: {bench.n_pairs} pairs{what}", reader=reader)


class _MaskingReader:
    """Image i's bytes: the original, or masked and re-encoded as the synthesizer writes it."""

    def __init__(self, blobs: list[bytes], to_mask: np.ndarray, benchmark: str, spec, seed: int):
        self.blobs, self.to_mask = blobs, to_mask
        self.benchmark, self.spec, self.seed = benchmark, spec, seed
        self._state = None
        self._lock = threading.Lock()

    def _render_state(self) -> dict:
        with self._lock:
            if self._state is None:
                from frmask.synth.benchmark import prepare_template, render_state

                self._state = render_state(self.spec, self.seed, self.benchmark, prepare_template(self.spec))
        return self._state

    def __call__(self, index: int) -> bytes:
        blob = self.blobs[index]
        if not self.to_mask[index]:
            return blob
        from frmask.synth.benchmark import _mask_chunk  # the synthesizer's own per-chunk path: same bytes

        return _mask_chunk(self._render_state(), ([index], [blob]))[0][1]
