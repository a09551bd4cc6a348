"""Benchmark: how fast the training data comes, per DataLoader worker, with and without mask augmentation.

Real faces: MFR2 (``../shared/data/mfr2``) detected, aligned and packed once into a RecordIO file (as
``frmask pack`` does), then read as training samples over several epochs (each epoch draws new masks).
Four pipelines, each measured in the same run (best of ``--rounds`` alternating rounds):

- ``p=0 worker``: no masks, the per-sample path (decode, flip, float tensors in the worker);
- ``p=0 batch``: no masks, the batch path (the worker sends the flipped uint8 image; the normalisation runs in
  :class:`~frmask.train.masks.BatchAugment` on ``--device``);
- ``p=0.5 worker``: masks drawn per sample in the worker (the CPU renderer), the MaskInv setting;
- ``p=0.5 batch``: the workers decode, flip and draw each sample's mask parameters, and ``BatchAugment`` draws
  the batch's masks on ``--device`` in one pass.

First in one process (``DataLoader`` without workers: everything, the device half on ``--device`` included, in
series), then through ``DataLoader`` with ``--workers`` processes and batches of ``--batch``. Two figures each:
samples/s of wall-clock time, and samples per CPU second of one worker (each sample is stamped with its worker's
``time.process_time()``; in one process, this process's CPU time): the second is what a worker delivers when it
has a core to itself, and it stays meaningful on a shared, busy machine where wall-clock rates swing with the
load. With ``--device cuda`` the device half runs on the GPU in the main process as in training (in the wall
figures, synchronised); on the CPU the DataLoader figures leave it out (it is the training device's work, not the
workers': on a GPU it takes none of their CPU) and it is timed on its own on collated batches (microseconds per
sample of the main process). The last line, ``p=0.5 per worker / p=0 per worker: R``, divides the batch path at
p = 0.5 by the faster of the two no-mask paths, per worker CPU second through the DataLoader (target R >= 0.8
on the CPU). An H100 at 40 % model FLOPs utilisation with iResNet-100 takes about 4,100 images/s
(989e12 * 0.4 / (4 * 24.18e9)).

With ``--device cuda`` the device half runs on the GPU in the
main process as in training and is included (synchronised); on the CPU it is left out of the worker figures
(it is the training device's work, not the workers': on a GPU it takes none of their CPU) and timed on its own
on collated batches (microseconds per sample of the main process). The last line,
``p=0.5 per worker / p=0 per worker: R``, divides the batch path at p = 0.5 by the faster of the two no-mask
paths, per DataLoader worker (target R >= 0.8 on the CPU). An H100 at 40 % model FLOPs utilisation with
iResNet-100 takes about 4,100 images/s (989e12 * 0.4 / (4 * 24.18e9)).

With ``--device cuda`` it also times, in the same run, ``BatchAugment`` on a batch of 512 (p = 0.5) and the
iResNet-100 KD step on 512 images (``bench_train.bare_setup``: bf16, channels-last, student forward and
backward, teacher forward) and prints their ratio (target under 2 %).

Run by hand:  python benchmarks/bench_train_data.py [--workers 2] [--batch 64] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth import MFR2

PIPELINES = ("p=0 worker", "p=0 batch", "p=0.5 worker", "p=0.5 batch")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _open(rec: Path, name: str, device):
    """(dataset, batch transform or None) of pipeline ``name``."""
    from frmask.train.data import MaskAugment, open_dataset
    from frmask.train.masks import BatchAugment

    p = 0.5 if name.startswith("p=0.5") else 0.0
    mask = MaskAugment(prob=p).prepare() if p else None
    augment = name.split()[1]
    dataset = open_dataset(rec, mask=mask, seed=0, augment=augment)
    return dataset, (BatchAugment(mask, device) if augment == "batch" else None)


class _Stamped:
    """The dataset, each sample stamped with its worker's CPU time (``time.process_time``) when it is done."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        import torch

        info = torch.utils.data.get_worker_info()
        return {**self.dataset[key], "_cpu": time.process_time(), "_worker": -1 if info is None else info.id}


class Feed:
    """One pipeline's batches through a DataLoader (persistent workers), made device-ready."""

    def __init__(self, rec: Path, name: str, device, workers: int, batch: int, epoch0: int, device_half: bool):
        import torch

        from frmask.train.data import TrainSampler

        self.dataset, self.transform = _open(rec, name, device)
        if not device_half:
            self.transform = None
        self.device, self.batch = device, batch
        sampler = TrainSampler(len(self.dataset), batch, seed=0, start_step=epoch0)
        self.prefetch = 2 * workers
        self.loader = torch.utils.data.DataLoader(
            _Stamped(self.dataset), batch_size=batch, sampler=sampler, num_workers=workers,
            prefetch_factor=2 if workers else None, persistent_workers=bool(workers),
            pin_memory=device.type == "cuda")
        self.iterator = iter(self.loader)
        self.last: dict = {}  # worker -> CPU stamp of its latest batch

    def _next(self) -> tuple[int, float]:
        batch = next(self.iterator)
        worker, stamp = int(batch.pop("_worker")[0]), float(batch.pop("_cpu").max())
        if self.transform is not None:
            self.transform(batch)
        return worker, stamp

    def rate(self, batches: int) -> tuple[float, float]:
        """``(samples/s, samples per CPU second of one worker)`` over ``batches`` batches, after draining what the
        workers prefetched while idle. Without workers the CPU is this process's (the device half included)."""
        for _ in range(self.prefetch):
            worker, self.last[worker] = self._next()
        _sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        cpu, counted = 0.0, 0
        for _ in range(batches):
            worker, stamp = self._next()
            if worker >= 0 and worker in self.last:
                cpu, counted = cpu + stamp - self.last[worker], counted + 1
            self.last[worker] = stamp
        _sync(self.device)  # the last batch is finished before the clock stops
        wall = time.perf_counter() - t0
        if self.prefetch == 0:
            cpu, counted = time.process_time() - c0, batches
        return batches * self.batch / wall, counted * self.batch / max(cpu, 1e-9)


def measure(rec: Path, device, workers: int, batch: int, batches: int, rounds: int, device_half: bool) -> dict:
    """Best ``(samples/s, samples per worker CPU second)`` of each pipeline over alternating rounds."""
    feeds = {name: Feed(rec, name, device, workers, batch, k * 1000, device_half) for k, name in enumerate(PIPELINES)}
    for feed in feeds.values():  # warm-up: workers started, templates and palette loaded, device levels copied
        feed.rate(2)
    best = {name: (0.0, 0.0) for name in feeds}
    for _ in range(rounds):
        for name, feed in feeds.items():
            wall, cpu = feed.rate(batches)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    return best


def report(title: str, best: dict, per: int) -> float:
    """Print the rates; returns the batch path's ratio at p = 0.5 to the faster no-mask path (CPU based)."""
    base = max(best["p=0 worker"][1], best["p=0 batch"][1])
    print(title)
    for name, (wall, cpu) in best.items():
        print(f"  {name:<14} {wall:7.0f} samples/s wall ({wall / per:6.0f} per worker); {cpu:6.0f} per worker CPU "
              f"second = {cpu / base:.2f}x the faster no-mask path")
    return best["p=0.5 batch"][1] / base


def device_half(rec: Path, device, batch: int, rounds: int) -> None:
    """Microseconds per sample of BatchAugment on collated batches of ``batch`` (p = 0 and p = 0.5): CPU time
    of this process on the CPU (one thread, as set in main), wall-clock time (synchronised) on CUDA."""
    import torch

    clock = time.perf_counter if device.type == "cuda" else time.process_time
    for name in ("p=0 batch", "p=0.5 batch"):
        dataset, transform = _open(rec, name, device)
        n = len(dataset)
        loaded = torch.utils.data.default_collate([dataset[(3 + k // n, k % n)] for k in range(batch)])
        transform(loaded)
        best = float("inf")
        for _ in range(rounds * 3):
            _sync(device)
            t0 = clock()
            transform(loaded)
            _sync(device)
            best = min(best, clock() - t0)
        print(f"  {name:<14} {best / batch * 1e6:7.0f} us per sample ({int(loaded['masked'].sum())} of {batch} "
              f"masked; {'wall' if device.type == 'cuda' else 'CPU'} time)")


def gpu_share(rec: Path, device, steps: int) -> None:
    """Time BatchAugment on 512 samples (p = 0.5) against the iResNet-100 KD step on 512 images."""
    import torch
    from bench_train import bare_setup

    from frmask.train.config import load_config

    dataset, transform = _open(rec, "p=0.5 batch", device)
    n = len(dataset)
    batch = torch.utils.data.default_collate([dataset[(k // n, k % n)] for k in range(512)])
    batch = {k: v.pin_memory() for k, v in batch.items()}

    def augment_time(reps: int):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            out = transform(batch)
        _sync(device)
        return (time.perf_counter() - t0) / reps, out

    augment_time(3)
    aug, out = min((augment_time(10) for _ in range(3)), key=lambda r: r[0])
    config = load_config("lg", "paper", {"batch_size": 512})
    step = bare_setup(config, 10000, device)
    train_batch = {"student": out["student"].contiguous(memory_format=torch.channels_last),
                   "teacher": out["teacher"].contiguous(memory_format=torch.channels_last),
                   "label": torch.randint(0, 10000, (512,), device=device)}

    def step_time(reps: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            step(train_batch)
        _sync(device)
        return (time.perf_counter() - t0) / reps

    step_time(3)
    kd = min(step_time(steps) for _ in range(3))
    masked = int(batch["masked"].sum())
    print(f"GPU: BatchAugment of 512 samples ({masked} masked) {aug * 1e3:.2f} ms; iResNet-100 KD step on 512 "
          f"images {kd * 1e3:.1f} ms ({512 / kd:.0f} images/s); augmentation / step: {aug / kd:.2%} (target < 2 %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=MFR2, help="identity folder to pack (default: MFR2)")
    ap.add_argument("--rec", type=Path, default=None, help="use this packed .rec (kept) instead of packing --data")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where BatchAugment runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=None, help="timed batches per round (default: 600 samples "
                    "per worker, at least 4)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed KD steps per round with --device cuda")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"data folder not found: {args.data}")

    import torch

    from frmask.train.pack import pack_folder

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    torch.set_num_threads(1)  # as in a DataLoader worker; the main process gets one core too
    with tempfile.TemporaryDirectory() as tmp:
        rec = args.rec or Path(tmp) / "train.rec"
        if not rec.is_file():
            summary = pack_folder(args.data, rec)
            print(f"packed {summary.n_images} faces of {summary.n_identities} identities ({summary.align}) "
                  f"in {summary.seconds:.1f} s")
        print(f"data {rec}; device {device}, batch {args.batch}")
        batches = max(4, 600 // args.batch)
        report("one process (no DataLoader workers; decode, masks and device half in series):",
               measure(rec, device, 0, args.batch, batches, args.rounds, True), 1)
        workers = max(1, args.workers)
        batches = args.batches or max(4, 600 * workers // args.batch)
        cuda = device.type == "cuda"
        where = "device half on the GPU, included" if cuda else "device half left out, timed below"
        ratio = report(f"DataLoader, {workers} workers ({where}):",
                       measure(rec, device, workers, args.batch, batches, args.rounds, cuda), workers)
        print(f"device half (BatchAugment on {device}, batch {args.batch}, main process):")
        device_half(rec, device, args.batch, args.rounds)
        if cuda:
            gpu_share(rec, device, args.steps)
        print(f"p=0.5 per worker / p=0 per worker: {ratio:.2f}")


if __name__ == "__main__":
    main()
