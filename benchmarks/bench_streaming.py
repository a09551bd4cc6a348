"""Benchmark: streaming 1e8 float32 impostor scores through ScoreAccumulator in 1e7 chunks.

Prints the accumulation time and throughput, and checks the streamed FMR100/FMR1000 operating points
against the in-memory functions on the same data (the baseline, timed in the same run).
Run by hand:  python benchmarks/bench_streaming.py [--impostors 100000000] [--chunk 10000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import frmask.metrics as m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impostors", type=int, default=10**8)
    ap.add_argument("--chunk", type=int, default=10**7)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    n, chunk = args.impostors, args.chunk
    g = rng.standard_normal(20000, dtype=np.float32) * np.float32(0.1) + np.float32(0.5)
    imp = rng.standard_normal(n, dtype=np.float32) * np.float32(0.15)
    acc = m.ScoreAccumulator((0.01, 0.001), expected_impostors=n)
    acc.add(genuine=g)
    t0 = time.perf_counter()
    for s in range(0, n, chunk):
        acc.add(impostor=imp[s:s + chunk])
    streamed = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [m.fnmr_at_fmr(g, imp, t) for t in (0.01, 0.001)]
    in_memory = time.perf_counter() - t0
    same = all(acc.fnmr_at_fmr(t) == r for t, r in zip((0.01, 0.001), ref))
    print(f"streamed {n:.0e} float32 impostors in {n // chunk} chunks: {streamed:.2f} s "
          f"({n / streamed / 1e6:.0f} M scores/s), buffer {acc.buffer_size:,} values; "
          f"in-memory fnmr_at_fmr x2: {in_memory:.2f} s; identical operating points: {same}")


if __name__ == "__main__":
    main()
