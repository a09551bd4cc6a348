"""Benchmark: exhaustive verification of N random unit 512-d embeddings (every pair) through the report.

Baseline, measured in the same run: the bare float32 matrix products of the same blocks (the engine's
floor). The whole run (frmask.exhaustive: masks, histogram, moments, top-impostor buffer, then the
verification report) is printed as a throughput ratio to it (target >= 0.60), with the peak memory
(target < 1 GB) and the time it projects for the 9.7e7-pair (insightface masked challenge) and
2.6e12-pair (multi-racial) sets on this machine. Also times 1e6 puts and gets of the embedding cache.
Run by hand:  python benchmarks/bench_compare.py [--n 30000] [--ids 3000] [--block 4096] [--cache-n 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_products(cs, plan) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in plan:
            s = cs.rows[b.rows[0]:b.rows[1]] @ cs.cols[b.cols[0]:b.cols[1]].T
            float(s[0, 0])  # make sure the product is done (asynchronous devices)
    return time.perf_counter() - t0


def bench_cache(n: int, dim: int = 512) -> str:
    from frmask.embed.cache import EmbeddingCache

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    keys = [f"{i:064x}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddingCache(Path(tmp) / "c.sqlite") as cache:
        t0 = time.perf_counter()
        for s in range(0, n, 10_000):  # the pipeline's batches are smaller; this is the bulk case
            cache.put_many("m", dict(zip(keys[s:s + 10_000], vectors[s:s + 10_000])))
        put = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = cache.get_many("m", keys)
        get = time.perf_counter() - t0
        ok = len(got) == n and np.array_equal(got[keys[-1]], vectors[-1])
    return (f"embedding cache, {n:,} x {dim}-d: put {put:.1f} s ({n / put:,.0f}/s), get {get:.1f} s "
            f"({n / get:,.0f}/s), read back intact: {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000, help="embeddings (default 30,000: 4.5e8 pairs)")
    ap.add_argument("--ids", type=int, default=None, help="identities (default n / 10)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--block", type=int, default=None, help="rows per block (default: the engine's)")
    ap.add_argument("--cache-n", type=int, default=1_000_000, help="embeddings for the cache line (0: skip)")
    args = ap.parse_args()

    import torch

    from frmask.exhaustive import DEFAULT_BLOCK, comparison_set, score_embeddings
    from frmask.exhaustive_report import block_report, top_impostors_kept

    n, ids = args.n, args.ids or max(2, args.n // 10)
    rng = np.random.default_rng(2026)
    emb = rng.standard_normal((n, args.dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    identity = np.sort(rng.integers(0, ids, n))
    print(f"{n:,} embeddings ({args.dim}-d) of {ids:,} identities, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads")

    cs = comparison_set(emb, identity, block=args.block or DEFAULT_BLOCK)
    plan = cs.plan()
    bare = bare_products(cs, plan)
    t0 = time.perf_counter()
    cs = comparison_set(emb, identity, block=args.block or DEFAULT_BLOCK)
    part = score_embeddings(cs, keep_impostors=top_impostors_kept(cs, ()))
    report = block_report(part, cs)
    whole = time.perf_counter() - t0
    pairs = cs.n_pairs
    ratio = bare / whole
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux -> GiB
    print(f"{pairs:,} pairs ({cs.genuine_pairs:,} genuine) in {len(plan)} blocks of {cs.block}: "
          f"bare products {bare:.1f} s ({pairs / bare / 1e6:.0f} M pairs/s); whole run through the report "
          f"{whole:.1f} s ({pairs / whole / 1e6:.0f} M pairs/s)")
    print(f"throughput ratio whole/bare = {ratio:.2f} (target >= 0.60); peak memory (max RSS) {peak:.2f} GiB "
          f"(target < 1 GB)")
    d = report.to_dict()
    print(f"fmr100 {d['fmr100']:.4f}  fmr1000 {d['fmr1000']:.4f}  eer {d['eer']:.4f} (+- {d.get('eer_bound')})  "
          f"max_accuracy {d['max_accuracy']:.6f}  kept {len(part.genuine):,} genuine + {len(part.impostor):,} "
          f"top impostor pairs")
    rate = pairs / whole
    for name, m in (("insightface masked challenge", 9.7e7), ("insightface multi-racial", 2.6e12)):
        sec = m / rate
        print(f"projected on this machine for {m:.2g} pairs ({name}): {sec:,.0f} s = {sec / 3600:,.1f} h")
    if args.cache_n:
        print(bench_cache(args.cache_n))
    print("(timings on a shared, noisy machine: compare ratios measured in one run, not absolute times)")


if __name__ == "__main__":
    main()
