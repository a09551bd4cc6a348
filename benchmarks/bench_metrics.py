"""Benchmark: the full verification report on 1e4 genuine + 1e8 impostor float32 scores.

Prints the time and peak extra memory (tracemalloc: numpy reports its allocations there) of
``frmask.metrics.verification_report``, and the ratio against computing the same figures from
scikit-learn's ``roc_curve`` in the same run. scikit-learn needs several float64/int64 copies of the
input, so by default its path is timed at 1e7 impostors and compared with frmask at the same size.

Run by hand:  python benchmarks/bench_metrics.py [--impostors 100000000] [--sklearn-impostors 10000000]
Targets (2-core machine): report on 1e8 impostors < 3 s and < 2x the input's memory; >= 10x sklearn.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from frmask.metrics import verification_report


def sklearn_figures(g: np.ndarray, i: np.ndarray, far: float = 0.002) -> dict:
    """FMR100, FMR1000, TPR@FAR, EER (crossing) and best accuracy from sklearn's ROC curve."""
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(g.size, np.int8), np.zeros(i.size, np.int8)]
    fpr, tpr, _ = roc_curve(y, np.r_[g, i], drop_intermediate=False)
    out = {}
    for key, target in (("fmr100", 0.01), ("fmr1000", 0.001), ("far", far)):
        out[key] = 1.0 - tpr[fpr <= target].max()
    fnr = 1.0 - tpr
    j = int(np.argmin(np.abs(fnr - fpr)))
    out["eer"] = (fnr[j] + fpr[j]) / 2
    out["max_accuracy"] = ((tpr * g.size + (1 - fpr) * i.size) / (g.size + i.size)).max()
    return out


def timed(fn, *args, **kw):
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn(*args, **kw)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genuine", type=int, default=10_000)
    ap.add_argument("--impostors", type=int, default=100_000_000)
    ap.add_argument("--sklearn-impostors", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    g = rng.normal(0.55, 0.12, args.genuine).astype(np.float32)
    i = rng.normal(0.0, 0.1, args.impostors).astype(np.float32)
    mb = 1 << 20
    print(f"input: {g.size:,} genuine + {i.size:,} impostor float32 scores = {(g.nbytes + i.nbytes) / mb:,.0f} MB")

    times = []
    for _ in range(args.repeats):
        rep, t, peak = timed(verification_report, g, i)
        times.append(t)
    print(f"frmask verification_report @ {i.size:.0e}: best {min(times):.2f} s of {args.repeats}, "
          f"peak extra memory {peak / mb:,.0f} MB = {peak / i.nbytes:.2f}x the impostor input")
    print(f"  fmr100 {rep.fmr100:.5f}  fmr1000 {rep.fmr1000:.5f}  eer {rep.eer:.5f}  tpr@far {rep.tpr_at_far:.5f}"
          f"  max_acc {rep.max_accuracy:.7f}")
    print(f"  targets: < 3 s -> {'met' if min(times) < 3 else 'MISSED'};  < 2x input memory -> "
          f"{'met' if peak < 2 * i.nbytes else 'MISSED'}")

    n = min(args.sklearn_impostors, i.size)
    i_small = i[:n]
    ours = min(timed(verification_report, g, i_small)[1] for _ in range(args.repeats))
    ref, t_sk, peak_sk = timed(sklearn_figures, g, i_small)
    small = verification_report(g, i_small)
    print(f"at {n:.0e} impostors: frmask {ours:.3f} s, sklearn roc_curve path {t_sk:.2f} s "
          f"(peak {peak_sk / mb:,.0f} MB) -> frmask is {t_sk / ours:.1f}x faster (target >= 10x)")
    same = {k: abs(getattr(small, k) - ref[k]) < 1e-12 for k in ("fmr100", "fmr1000", "max_accuracy")}
    same["tpr_at_far"] = abs(small.tpr_at_far - (1 - ref["far"])) < 1e-12
    print(f"  same figures (to 1e-12; sklearn forms 1 - TPR in floating point): {same}, "
          f"eer diff {abs(small.eer - ref['eer']):.2e} (sklearn path: nearest crossing, not FVC)")


if __name__ == "__main__":
    main()
