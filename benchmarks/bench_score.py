"""Benchmark: embedding throughput of the scoring pipeline against bare ``session.run`` on CPU.

1. Builds a .bin of aligned 112x112 JPEG faces (MFR2 ``no-mask`` faces from ../shared/data, detected with
   frmask's YuNet and aligned, repeated to --images).
2. Pipeline: ``frmask.embed.pipeline.embed_protocol`` on that benchmark (read, JPEG decode, alignment check,
   batching, preprocessing, inference), no cache.
3. Bare: the same model's ``session.run`` on input tensors prepared beforehand (the same batches), in the
   same process, with the same onnxruntime session options.

Run by hand:  python benchmarks/bench_score.py [--images 2000] [--model sface|PATH.onnx] [--repeats 3]
Target: the pipeline at >= 80 % of bare inference speed on CPU. The two are timed alternately, --repeats
times each, and the best of each is compared (the machine is shared; the best run is the least disturbed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_synth import MFR2, build_bin  # noqa: E402


def bare(embedder, images: np.ndarray) -> float:
    """Seconds for session.run over pre-made input tensors, batch by batch as the embedder would."""
    step = embedder.batch_size
    batches = []
    for first in range(0, len(images), step):
        chunk = images[first:first + step]
        if embedder.fixed_batch is not None and len(chunk) < embedder.fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((embedder.fixed_batch - len(chunk),) + chunk.shape[1:], np.uint8)])
        batches.append(embedder._prepare(chunk))
    session, name, out = embedder._session, embedder.profile.input_name, embedder.profile.output_name
    t0 = time.perf_counter()
    for x in batches:
        session.run([out], {name: x})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="sface")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="image preparation threads of the pipeline")
    args = ap.parse_args()
    if not MFR2.is_dir():
        sys.exit(f"needs the MFR2 faces at {MFR2}")
    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.embed.pipeline import embed_protocol
    from frmask.io.insightface_bin import read_bin
    from frmask.protocols import load_protocol

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "faces.bin"
        n_faces = build_bin(data, args.images)
        print(f"built {data.name}: {args.images:,} aligned 112x112 JPEG images from {n_faces} real MFR2 faces")
        protocol = load_protocol("lfw", data)
        embedder = OnnxEmbedder(args.model, device="cpu")
        print(f"model {args.model}: {embedder!r}")
        decoded = np.stack([read_bin(data).decode(i) for i in range(args.images)])
        t_pipe, t_bare = [], []
        for _ in range(args.repeats):
            t_bare.append(bare(embedder, decoded))
            t0 = time.perf_counter()
            res = embed_protocol(protocol, embedder, threads=args.threads)
            t_pipe.append(time.perf_counter() - t0)
            assert not res.failures
        pipe_rate, bare_rate = args.images / min(t_pipe), args.images / min(t_bare)
        print(f"bare session.run on pre-made tensors: {', '.join(f'{t:.2f}' for t in t_bare)} s -> best "
              f"{bare_rate:,.0f} images/s")
        print(f"pipeline (read, decode, align, batch, infer): {', '.join(f'{t:.2f}' for t in t_pipe)} s -> best "
              f"{pipe_rate:,.0f} images/s")
        ratio = pipe_rate / bare_rate
        print(f"pipeline / bare = {ratio:.2f}: target >= 0.80 -> {'met' if ratio >= 0.8 else 'MISSED'}")


if __name__ == "__main__":
    main()
