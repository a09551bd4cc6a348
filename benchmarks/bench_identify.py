"""Benchmark: the 1:N search of frmask.identify.score_probes against the bare matrix products of the same blocks.

Random unit 512-d float32 embeddings: a gallery of --ids identities x --per templates and --probes probes
(a quarter non-mated). The baseline is the matrix products alone (the same blocks, on the same device),
measured in the same run; the search adds the per-identity maximum, the mate's rank and the top score.
Also prints the peak resident memory, the metrics time, and checks that two block sizes give the same
results. Run by hand:  python benchmarks/bench_identify.py [--ids 5000] [--per 2] [--probes 20000] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def unit(rng, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    import torch

    from frmask.identify import BLOCK, Gallery, identification_metrics, probe_blocks, score_probes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=5000)
    ap.add_argument("--per", type=int, default=2)
    ap.add_argument("--probes", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    gal = unit(rng, args.ids * args.per, args.dim)
    gid = np.repeat(np.arange(args.ids), args.per)
    probes = unit(rng, args.probes, args.dim)
    mate = np.where(rng.random(args.probes) < 0.75, rng.integers(0, args.ids, args.probes), -1)
    probes[mate >= 0] = probes[mate >= 0] * 0.6 + gal[mate[mate >= 0] * args.per] * 0.8  # mates score higher
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    gallery = Gallery(gal, gid, args.ids)

    dev = torch.device(args.device)
    g = torch.from_numpy(gal).to(dev)
    t0 = time.perf_counter()
    for a, b in probe_blocks(args.probes, BLOCK):
        s = torch.from_numpy(probes[a:b]).to(dev) @ g.T
        s.max()  # make sure the product is computed (and synchronised on a GPU)
    bare = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = score_probes(probes, mate, np.where(mate >= 0, mate, args.ids + np.arange(args.probes)), gallery,
                       device=args.device)
    search = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = identification_metrics(res)
    metrics = time.perf_counter() - t0
    other = score_probes(probes[:3000], mate[:3000], np.arange(3000), gallery, device=args.device, block=200)
    same = all(np.array_equal(getattr(other, f), getattr(res, f)[:3000], equal_nan=True)
               for f in ("mate_score", "rank", "top_score"))
    pairs = args.probes * gal.shape[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.probes:,} probes x {gal.shape[0]:,} templates ({args.ids:,} identities), d={args.dim}, "
          f"{args.device}, torch threads {torch.get_num_threads()}")
    print(f"bare matrix products: {bare:.2f} s ({pairs / bare / 1e6:.0f} M scores/s)")
    print(f"search (score_probes): {search:.2f} s ({pairs / search / 1e6:.0f} M scores/s) = "
          f"{100 * bare / search:.0f} % of the bare products' throughput")
    print(f"metrics: {metrics:.3f} s; rank-1 {100 * m['rank1']:.2f} %, FNIR@FPIR<=0.001 "
          f"{100 * m['fnir_at_fpir']['0.001']['fnir']:.2f} %; blocks of 200 give identical results: {same}; "
          f"peak RSS {peak:.0f} MB (the gallery and probes themselves: "
          f"{(gal.nbytes + probes.nbytes) / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
