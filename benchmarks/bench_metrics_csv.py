"""Benchmark: `frmask metrics` on a large score CSV against the fastest plain reader of its two columns.

Writes a CSV of N rows (``score,label``; 1 % genuine; float32 scores in their shortest decimal form) to a
temporary folder (removed afterwards), then times, each in a fresh process so that its peak memory is its
own:

- frmask: the library path ``frmask metrics FILE`` runs (:func:`frmask.io.scores_csv.read_score_table`, then
  :func:`frmask.metrics.pairs_report`), with the reading time shown apart;
- the baselines, reading only the two columns into numpy with fixed types: ``pyarrow.csv.read_csv`` (all
  cores) and pandas' C engine. The fastest is the baseline.

Prints each time, each process's peak RSS, and the ratio baseline time / frmask time (the issue's target:
>= 0.50 at 1e8 rows). The machine may be shared: run it twice and read the numbers as noisy.
Run by hand:  python benchmarks/bench_metrics_csv.py [--rows 100000000] [--keep-file]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CHUNK = 5_000_000  # rows generated and written at a time


def write_csv(path: str, rows: int, seed: int = 0) -> None:
    """``rows`` rows of ``score,label``: genuine (1 %) ~ N(0.6, 0.1), impostor ~ N(0.1, 0.1), as float32."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    options = pcsv.WriteOptions(include_header=True)
    with pcsv.CSVWriter(path, pa.schema([("score", pa.float32()), ("label", pa.int8())]), write_options=options) as w:
        for start in range(0, rows, CHUNK):
            m = min(CHUNK, rows - start)
            labels = (rng.random(m) < 0.01).astype(np.int8)
            scores = (rng.standard_normal(m, dtype=np.float32) * np.float32(0.1)
                      + np.where(labels == 1, np.float32(0.6), np.float32(0.1)).astype(np.float32))
            w.write_table(pa.table({"score": scores, "label": labels}))


def _frmask(path: str) -> dict:
    from frmask.io.scores_csv import REPORT_BYTES_PER_ROW, read_score_table
    from frmask.metrics import pairs_report

    t0 = time.perf_counter()
    table = read_score_table(path, bytes_per_row=REPORT_BYTES_PER_ROW)
    t1 = time.perf_counter()
    rep = pairs_report(table.scores, table.labels)
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "read_s": t1 - t0, "report_s": t2 - t1, "rows": len(table),
            "eer": float(rep["eer"])}


def _pyarrow(path: str) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    t0 = time.perf_counter()
    convert = pcsv.ConvertOptions(column_types={"score": pa.float64(), "label": pa.int8()},
                                  include_columns=["score", "label"])
    table = pcsv.read_csv(path, convert_options=convert)
    scores = table.column("score").to_numpy()
    labels = table.column("label").to_numpy()
    return {"seconds": time.perf_counter() - t0, "rows": len(scores) + 0 * len(labels)}


def _pandas_c(path: str) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(path, usecols=["score", "label"], dtype={"score": np.float64, "label": np.int8}, engine="c")
    scores, labels = df["score"].to_numpy(), df["label"].to_numpy()
    return {"seconds": time.perf_counter() - t0, "rows": len(scores) + 0 * len(labels)}


READERS = {"frmask": _frmask, "pyarrow.csv.read_csv": _pyarrow, "pandas C engine": _pandas_c}


def _child(name: str, path: str) -> None:
    import pandas  # noqa: F401 - imports are not reading: every reader starts with them loaded
    import pyarrow.compute  # noqa: F401
    import pyarrow.csv  # noqa: F401

    import frmask.metrics  # noqa: F401

    result = READERS[name](path)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(result))


def _run(name: str, path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, path], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e8, help="rows of the CSV (default 1e8)")
    ap.add_argument("--dir", default=None, help="folder for the temporary CSV (default: the system's)")
    ap.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    rows = int(args.rows)
    folder = tempfile.mkdtemp(prefix="bench_metrics_csv-", dir=args.dir)
    try:
        path = os.path.join(folder, "scores.csv")
        t0 = time.perf_counter()
        write_csv(path, rows)
        size = os.path.getsize(path)
        print(f"{rows:.0e} rows, {size / 1e9:.2f} GB of CSV written in {time.perf_counter() - t0:.1f} s "
              f"({os.cpu_count()} CPUs)")
        results = {name: _run(name, path) for name in READERS}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name, r in results.items():
        extra = f" (read {r['read_s']:.2f} s + report {r['report_s']:.2f} s)" if "read_s" in r else ""
        print(f"  {name:22s} {r['seconds']:8.2f} s{extra}, peak RSS {r['peak_rss_mb']:,.0f} MB "
              f"({r['peak_rss_mb'] * 2**20 / rows:.0f} B/row)")
    base_name = min((n for n in results if n != "frmask"), key=lambda n: results[n]["seconds"])
    base, ours = results[base_name]["seconds"], results["frmask"]
    print(f"baseline (fastest reader of the two columns): {base_name}, {base:.2f} s")
    print(f"speed ratio baseline / frmask metrics: {base / ours['seconds']:.2f} (target >= 0.50); "
          f"reading alone: {base / ours['read_s']:.2f}")


if __name__ == "__main__":
    main()
