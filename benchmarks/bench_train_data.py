"""Benchmark: how fast the training data comes, per CPU worker, with and without mask augmentation.

Real faces: MFR2 (``../shared/data/mfr2``) detected, aligned and packed once into a RecordIO file (as
``frmask pack`` does), then read as training samples (decode, flip, mask augmentation with probability
``p``, tensors for teacher and student) over several epochs (each epoch draws new masks). Measured in one
process with ``dataset[(epoch, i)]`` calls, best of ``--rounds`` alternating rounds:

- baseline: ``p = 0`` (decode and tensors only, what an unmasked ElasticFace run costs);
- ``p = 0.5`` (the MaskInv variants' setting) and ``p = 1``;

and, last, the same through ``torch.utils.data.DataLoader`` with ``--workers`` processes and batches of
``--batch``. The ratio to the baseline says what masking costs; samples/s per worker says how many workers
feed a GPU at a given rate (an H100 at 40 % model FLOPs utilisation with iResNet-100 takes about 4,100
images/s: 989e12 * 0.4 / (4 * 24.18e9)).

Run by hand:  python benchmarks/bench_train_data.py [--workers 2] [--samples 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth import MFR2  # noqa: E402


def per_sample_rate(dataset, samples: int, epoch0: int) -> float:
    n = len(dataset)
    t0 = time.perf_counter()
    for k in range(samples):
        dataset[(epoch0 + k // n, k % n)]
    return samples / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=MFR2, help="identity folder to pack (default: MFR2)")
    ap.add_argument("--samples", type=int, default=600, help="samples per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"data folder not found: {args.data}")

    import torch

    from frmask.train.data import MaskAugment, TrainSampler, open_dataset
    from frmask.train.pack import pack_folder

    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "train.rec"
        summary = pack_folder(args.data, rec)
        print(f"packed {summary.n_images} faces of {summary.n_identities} identities ({summary.align}) "
              f"in {summary.seconds:.1f} s")
        datasets = {p: open_dataset(rec, mask=MaskAugment(prob=p).prepare() if p else None, seed=0)
                    for p in (0.0, 0.5, 1.0)}
        for ds in datasets.values():
            per_sample_rate(ds, 50, 0)  # warm-up: caches, templates, palette
        best = {p: 0.0 for p in datasets}
        for r in range(args.rounds):
            for p, ds in datasets.items():
                best[p] = max(best[p], per_sample_rate(ds, args.samples, 1 + r * 10))
        base = best[0.0]
        for p, rate in best.items():
            label = "baseline (no masks)" if p == 0 else f"mask probability {p:g}"
            print(f"{label:<24} {rate:7.0f} samples/s in one process  ({rate / base:.2f}x the baseline)")

        ds = datasets[0.5]
        sampler = TrainSampler(len(ds), args.batch, seed=0)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                                             prefetch_factor=4 if args.workers else None)
        batches = max(4, args.samples * max(1, args.workers) // args.batch)
        iterator = iter(loader)
        next(iterator)  # workers started
        t0 = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rate = batches * args.batch / (time.perf_counter() - t0)
        print(f"DataLoader, {args.workers} workers, batch {args.batch}, p 0.5: {rate:.0f} samples/s "
              f"({rate / max(1, args.workers):.0f} per worker); an H100 at 40 % MFU (~4,100 images/s) needs "
              f"about {4100 / (rate / max(1, args.workers)):.0f} such workers")


if __name__ == "__main__":
    main()
