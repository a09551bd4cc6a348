"""Benchmark: what the issue-15 safety checks cost, each against the same work without it, in one run.

1. ``read_bin`` of a 12,000-image .bin of real aligned faces (bench_synth's), with and without the opcode
   prescan that bounds what a pickle may allocate.
2. ``synth_bin`` (masked-vs-masked, 1 worker, in this process) with and without the header check of every
   image against the pixel limit before it is decoded.
3. Replacing an output folder of 12,000 image files: ``frmask._atomic_folder.replace_dir`` (manifest with SHA-256 of
   every file, check of the old folder against its manifest, deletion of exactly what it lists) against a bare
   ``os.replace`` + ``shutil.rmtree``.

Run by hand:  python benchmarks/bench_safety.py [--images 12000] [--repeat 5]
Target: each check costs <= 5 % of the work it guards (ratios printed; a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_synth import MFR2, build_bin  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@contextmanager
def patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not (MFR2 / "mfr2_labels.txt").is_file():
        raise SystemExit(f"needs MFR2 at {MFR2}")
    import frmask.io.images as images
    import frmask.io.insightface_bin as ib
    from frmask import _atomic_folder
    from frmask.synth.benchmark import synth_bin

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "faces.bin"
        build_bin(src, args.images)
        bench = ib.read_bin(src)  # bench_synth repeats the faces: distinct objects, so each is stored (as in lfw.bin)
        ib.write_bin(src, ib.BinBenchmark([bytes(bytearray(b)) for b in bench.images], bench.issame))
        print(f"{args.images:,} images, {src.stat().st_size / 1e6:.1f} MB .bin; best of {args.repeat}")

        checked = best(lambda: ib.read_bin(src), args.repeat)
        with patched(ib, "_prescan", lambda data, path: None):
            bare = best(lambda: ib.read_bin(src), args.repeat)
        print(f"read_bin:  with prescan {checked:.3f} s, without {bare:.3f} s  -> {checked / bare:.3f}x")

        def synth():
            synth_bin(src, tmp / "out.bin", benchmark="lfw", mode="masked-vs-masked")

        synth()  # warm the template cache
        repeat = max(1, args.repeat // 2)
        checked = best(synth, repeat)
        with patched(images, "check_pixels", lambda data, **kw: None):
            bare = best(synth, repeat)
        print(f"synth_bin: with header check {checked:.3f} s, without {bare:.3f} s  -> {checked / bare:.3f}x")

        blobs = ib.read_bin(src).images

        def build(target: Path) -> Path:
            folder = _atomic_folder.make_temp_dir(target)
            for k, blob in enumerate(blobs):
                sub = folder / f"id{k % 100:03d}"
                sub.mkdir(exist_ok=True)
                (sub / f"{k}.jpg").write_bytes(blob)
            return folder

        def with_manifest():
            out = tmp / "run"
            folder = build(out)
            t0 = time.perf_counter()
            _atomic_folder.replace_dir(folder, out)
            return time.perf_counter() - t0

        def bare_replace():
            out = tmp / "plain"
            folder = build(out)
            t0 = time.perf_counter()
            if out.exists():
                old = tmp / ".plain.old"
                os.replace(out, old)
                os.replace(folder, out)
                shutil.rmtree(old)
            else:
                os.replace(folder, out)
            return time.perf_counter() - t0

        with_manifest(), bare_replace()  # first: a new folder; then each replaces the previous one
        t_build = best(lambda: shutil.rmtree(build(tmp / "scratch")), args.repeat)
        t_m = min(with_manifest() for _ in range(args.repeat))
        t_b = min(bare_replace() for _ in range(args.repeat))
        print(f"replace a {len(blobs):,}-file folder: manifest {t_m:.3f} s, bare {t_b:.3f} s; writing the "
              f"files {t_build:.3f} s  -> manifest adds {(t_m - t_b) / t_build:.1%} of the writing")


if __name__ == "__main__":
    main()
