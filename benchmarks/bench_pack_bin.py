"""Benchmark: ``frmask pack-bin`` (frmask.io.bin_pack.pack_bin) against the least any packer must do.

Input: a forged aligned identity folder (``--identities`` x ``--per-identity`` smooth 112x112 JPEG faces-sized
images, quality 95; by default 1,700 identities x 4 = 6,800 images, about LFW's size). Measured in
one process, best of ``--rounds`` alternating rounds:

- baseline: read every file, decode it once with ``cv2.imdecode`` (the check that it is an image, which any
  careful packer does), then pickle the ``--pairs`` pairs' bytes (pairs drawn naively with numpy, no checks);
- ``pack_bin``: the same work through frmask (listing, checks, seeded pair selection without duplicates,
  re-reading and re-checking the chosen images, atomic write).

Also the pair selection alone on MS1MV2's size (5.8 M images of 85,742 identities), which never lists pairs.

Run by hand:  python benchmarks/bench_pack_bin.py [--identities 1700] [--per-identity 4] [--pairs 6000]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np


def forge(root: Path, identities: int, per_identity: int) -> None:
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    for i in range(identities):
        folder = root / f"person_{i:05d}"
        folder.mkdir(parents=True)
        for k in range(per_identity):
            a, b, c = rng.uniform(0.02, 0.1, 3)
            base = 128 + 60 * np.sin(a * xx + b * yy + c * i)
            img = np.clip(base[..., None] + rng.normal(0, 6, (112, 112, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{k:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])


def baseline(root: Path, out: Path, pairs: int) -> None:
    import cv2

    files = sorted(root.glob("*/*.jpg"))
    data = []
    for f in files:
        blob = f.read_bytes()
        if cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR) is None:
            raise ValueError(f)
        data.append(blob)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(data), 2 * pairs)
    with open(out, "wb") as fh:
        pickle.dump(([data[i] for i in idx], [bool(k % 2) for k in range(pairs)]), fh, protocol=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=1700)
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from frmask.io.bin_pack import pack_bin
    from frmask.protocols.pair_selection import select_pairs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "faces"
        forge(root, args.identities, args.per_identity)
        n = args.identities * args.per_identity
        jobs = {"baseline": lambda: baseline(root, Path(tmp) / "base.bin", args.pairs),
                "pack_bin": lambda: pack_bin(root, Path(tmp) / "frmask.bin", n_pairs=args.pairs, seed=0)}
        wall = dict.fromkeys(jobs, float("inf"))
        cpu = dict.fromkeys(jobs, float("inf"))
        for _ in range(args.rounds):
            for name, job in jobs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                job()
                wall[name] = min(wall[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], time.process_time() - c0)
        print(f"{n:,} images of {args.identities:,} identities, {args.pairs:,} pairs (best of {args.rounds}):")
        for name in jobs:
            print(f"  {name:<9} {wall[name]:6.2f} s wall ({n / wall[name]:7,.0f} images/s), {cpu[name]:6.2f} s CPU")
        print(f"  pack_bin / baseline: {wall['pack_bin'] / wall['baseline']:.2f}x wall, "
              f"{cpu['pack_bin'] / cpu['baseline']:.2f}x CPU (the CPU ratio is the steadier on a loaded machine)")

    labels = np.repeat(np.arange(85_742), np.diff(np.linspace(0, 5_822_653, 85_743).astype(np.int64)))
    t0 = time.perf_counter()
    select_pairs(labels, 6000, seed=0)
    print(f"select_pairs on {len(labels):,} images of 85,742 identities: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
