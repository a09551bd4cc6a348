"""Benchmark: `frmask score` as K processes under torchrun against one plain process, same run, same data.

Scores MFR2 (266 images: YuNet detection, alignment, SFace; no cache) as one plain process (the baseline),
then with `torchrun --standalone --nproc-per-node K` for each K asked, checks that every metrics.json equals
the baseline's (up to run.embedding.seconds and run.processes) and prints the wall times and their ratios to
the baseline. Then times the gather of the embeddings alone (`frmask.distributed.gather_arrays` over gloo)
for ROWS x 512 float32 rows split over 2 processes.

Run by hand:  python benchmarks/bench_distributed.py [--k 1 2] [--gather-rows 200000] [--gather-only]
Target: K processes on K free cores within 1/K of the baseline plus a few seconds of start-up (each process
imports torch and loads the model); the gather a small part of the embedding time (on a loaded machine the
ratios are noisy: compare within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MFR2 = ROOT.parent / "shared" / "data" / "mfr2"


def _score(out: Path, k: int | None) -> float:
    args = ["score", "sface", "--protocol", "mfr2", "--data", str(MFR2), "--no-cache", "--gallery", "0",
            "--out", str(out)]
    launcher = [sys.executable, "-m", "frmask"] if k is None else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", "-m", "frmask"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    t0 = time.perf_counter()
    subprocess.run([*launcher, *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def _metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    m["run"]["embedding"].pop("seconds")
    m["run"].pop("processes", None)
    return m


def _gather_worker(rank: int, port: int, rows: int, out: str) -> None:
    import numpy as np
    import torch

    from frmask import distributed

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    with distributed.process_group("cpu"):
        mine = np.random.default_rng(rank).random((len(distributed.my_shard(rows)), 512), dtype=np.float32)
        distributed.barrier()
        t0 = time.perf_counter()
        whole = np.concatenate(distributed.gather_arrays(mine))
        seconds = time.perf_counter() - t0
        assert whole.shape == (rows, 512)
    if rank == 0:
        Path(out).write_text(str(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2], help="process counts to run")
    parser.add_argument("--gather-rows", type=int, default=200_000)
    parser.add_argument("--gather-only", action="store_true", help="only time the gather")
    args = parser.parse_args()
    if not MFR2.is_dir() and not args.gather_only:
        raise SystemExit(f"{MFR2} is absent")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = None if args.gather_only else _score(tmp / "one", None)
        if base is not None:
            print(f"one process (baseline): {base:.1f} s")
        for k in [] if args.gather_only else args.k:
            wall = _score(tmp / f"k{k}", k)
            same = _metrics(tmp / f"k{k}") == _metrics(tmp / "one")
            print(f"torchrun K={k}: {wall:.1f} s = {wall / base:.2f} x the baseline; metrics identical: {same}")
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(_gather_worker, args=(port, args.gather_rows, str(tmp / "gather")), nprocs=2, join=True)
        seconds = float((tmp / "gather").read_text())
        mb = args.gather_rows * 512 * 4 / 2**20
        print(f"gather_arrays of {args.gather_rows:,} x 512 float32 ({mb:.0f} MiB) over 2 gloo processes: "
              f"{seconds:.2f} s ({mb / seconds:.0f} MiB/s)")


if __name__ == "__main__":
    main()
