"""Benchmark: the cost of one mask variant in `frmask effect`, against the bare model on the same crops.

A variant masks every probe crop, encodes it (PNG, the embedding cache's key), looks it up in the cache and
embeds it. This measures, on MFR2's unmasked faces (98 images, 97 probes per variant) with SFace and no cache,
the wall time of each variant's stage of `run_effect` and, in the same process, the bare model's time on the
same masked crops (`OnnxEmbedder.embed`, nothing else). The ratio is the pipeline's overhead.

Run by hand:  python benchmarks/bench_effect.py [--variants 4] [--repeat 2]
Target (2-core machine): each variant within 1.25x the bare model's time on its crops.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MFR2 = ROOT.parent / "shared" / "data" / "mfr2"


class _Timer:
    """A progress bar that records how long each stage took."""

    stages: list = []

    def __init__(self, desc: str, total: int):
        self.desc, self.t0 = desc, time.perf_counter()

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        _Timer.stages.append((self.desc, time.perf_counter() - self.t0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from frmask.effect import aligned_crops, grid_variants, load_effect_protocol, masked_crops, parse_grid, run_effect
    from frmask.embed.onnx_model import OnnxEmbedder

    protocol = load_effect_protocol("mfr2", MFR2)
    model = OnnxEmbedder("sface")
    variants = grid_variants(parse_grid("mask-type=surgical,n95;coverage=low,high;color=light-blue,black"))
    variants = variants[:args.variants]
    crops, _ = aligned_crops(protocol)
    probes = sorted(set(protocol.pair_b.tolist()))
    best_pipeline, best_bare = {}, {}
    for _ in range(args.repeat):
        _Timer.stages = []
        run_effect(model, protocol, variants, targets=[0.01], cache=None, progress=_Timer)
        for desc, seconds in _Timer.stages:
            if desc.startswith("variant"):
                best_pipeline[desc] = min(seconds, best_pipeline.get(desc, np.inf))
        for k, variant in enumerate(variants, start=1):
            masked = masked_crops(variant, crops, probes)
            batch = np.stack([masked[i] for i in sorted(masked)])
            t0 = time.perf_counter()
            for start in range(0, len(batch), 64):
                model.embed(batch[start:start + 64])
            desc = f"variant {k}/{len(variants)} {variant.label}"
            best_bare[desc] = min(time.perf_counter() - t0, best_bare.get(desc, np.inf))
    print(f"{len(probes)} probes per variant, best of {args.repeat} runs (noisy shared machine)")
    print(f"{'stage':<40} {'pipeline s':>10} {'bare model s':>12} {'ratio':>6}")
    for desc in best_pipeline:
        p, b = best_pipeline[desc], best_bare[desc]
        print(f"{desc:<40} {p:10.2f} {b:12.2f} {p / b:6.2f}")


if __name__ == "__main__":
    main()
