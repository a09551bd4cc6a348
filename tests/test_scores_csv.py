"""Score CSV reading (frmask.io.scores_csv): the streamed typed reader, its general fallback, refusals."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from frmask._memory import format_bytes
from frmask.cli import main
from frmask.io import _scores_fast, scores_csv
from frmask.io.scores_csv import ScoreFileError, read_score_table


def _oracle(path):
    """An independent reading of a canonical score file: the csv module and Python's float()."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if any(v.strip() for v in r.values())]
    s = np.array([float("nan") if r["score"].strip().lower() in ("", "nan", "na", "null") else float(r["score"])
                  for r in rows])
    return s, np.array([int(r["label"]) for r in rows], np.int8), [r.get("subject_a") for r in rows]


def _random_file(path, n, seed, subjects=False):
    rng = np.random.default_rng(seed)
    lab = rng.random(n) < 0.3
    x = rng.normal(size=n) * 10.0 ** rng.integers(-8, 3, n)
    with open(path, "w") as f:
        f.write("score,label" + (",subject_a,subject_b" if subjects else "") + "\n")
        for k in range(n):
            v = ["", "NaN", "null", "NA"][k % 4] if k % 37 == 5 else repr(float(x[k]))
            row = [v, "1" if lab[k] else "0"]
            if subjects:
                a = f"s{k % 7}"
                row += [a, a if lab[k] else f"t{k % 5}"]
            f.write(",".join(row) + "\n")


@pytest.mark.parametrize("subjects", [False, True])
def test_fast_and_general_paths_agree_with_an_oracle(tmp_path, monkeypatch, subjects):
    p = tmp_path / "s.csv"
    _random_file(p, 3000, 1, subjects)
    fast = read_score_table(p)
    calls = []
    real = _scores_fast.read_columns
    monkeypatch.setattr(_scores_fast, "read_columns", lambda *a: calls.append(1) or real(*a))
    read_score_table(p)
    assert calls == [1]  # the canonical file took the fast path
    monkeypatch.setattr(_scores_fast, "BLOCK", 4096)  # many streamed batches
    small_blocks = read_score_table(p)

    def irregular(*a):
        raise _scores_fast.Irregular("forced")

    monkeypatch.setattr(_scores_fast, "read_columns", irregular)
    general = read_score_table(p, chunk_rows=7)
    s, lab, sa = _oracle(p)
    for t in (fast, small_blocks, general):
        assert t.scores.dtype == np.float64 and t.labels.dtype == np.int8
        assert t.scores.tobytes() == s.tobytes() and t.labels.tobytes() == lab.tobytes()
        if subjects:
            assert t.subject_a.tolist() == sa and t.subject_a.dtype == general.subject_a.dtype
        else:
            assert t.subject_a is None


@pytest.mark.parametrize("text, message", [
    ("score,label\n0.5,1\n 0.25 ,0\n0.1, 1\n", None),  # spaces: general path, same values
    ("score,label\n0.5,1\n0.2,0\n-nan,0\n", "line 4: score '-nan' is not a number"),
    ("score,label\n0.5,1\n0.2,0\n1e400,0\n", "line 4: score '1e400' is infinite"),
    ("score,label\n0.5,1\n0.2,01\n", "line 3: label '01' must be 1"),
    ("score,label\n0.5,1\n0.2,0x1\n", "line 3: label '0x1' must be 1"),
    ("\nscore,label\n0.5,1\n\n0.2,0\n0.3,2\n", "line 6: label '2' must be 1"),
    ("score,label\n0.5,1\n0.2,0,7\n", "not a readable CSV file"),
])
def test_irregular_fields_keep_todays_values_and_messages(tmp_path, text, message):
    p = tmp_path / "s.csv"
    p.write_text(text)
    if message is None:
        t = read_score_table(p)
        assert t.scores.tolist() == [0.5, 0.25, 0.1] and t.labels.tolist() == [1, 0, 1]
    else:
        with pytest.raises(ScoreFileError, match=message.replace("(", r"\(")):
            read_score_table(p, chunk_rows=2)


@pytest.mark.parametrize("header", ["score,label,score", "Score,label, SCORE", "label,score,Label"])
def test_duplicate_columns_are_refused(tmp_path, header):
    p = tmp_path / "s.csv"
    p.write_text(header + "\n0.5,1,0.1\n0.2,0,0.9\n")
    with pytest.raises(ScoreFileError, match=r"line 1: column '(score|label)' appears 2 times \(columns 1, 3\)"):
        read_score_table(p)


def test_memory_refusal_is_a_clear_error(tmp_path, monkeypatch):
    p = tmp_path / "s.csv"
    _random_file(p, 50, 2)
    monkeypatch.setattr("frmask._memory.available_memory", lambda: 1000)
    per_row = scores_csv.REPORT_BYTES_PER_ROW
    with pytest.raises(ValueError, match=rf"s.csv \(51 lines, about {per_row} bytes each\) needs about "
                                          rf"{re.escape(format_bytes(51 * per_row))} of memory, but only 1 kB is available"):
        read_score_table(p, bytes_per_row=scores_csv.REPORT_BYTES_PER_ROW)


def test_metrics_under_an_address_space_limit_fails_with_a_message(tmp_path):
    """A real `ulimit -v`: the command refuses before allocating (no segfault, no traceback)."""
    p = tmp_path / "s.csv"
    n = 400_000
    rng = np.random.default_rng(0)
    with open(p, "w") as f:
        f.write("score,label\n")
        f.write("".join(f"{v:.4f},{k % 2}\n" for k, v in enumerate(rng.random(n))))
    code = (
        "import resource, sys\n"
        "from frmask.cli import main\n"
        "import numpy, pandas, pyarrow.csv, frmask.io.scores_csv, frmask.metrics\n"
        "vm = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (16 << 20), resource.RLIM_INFINITY))\n"
        "main(['metrics', sys.argv[1]])\n")
    res = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    per_row = scores_csv.REPORT_BYTES_PER_ROW
    assert (f"Error: {p} ({n + 1:,} lines, about {per_row} bytes each) needs about "
            f"{format_bytes((n + 1) * per_row)} of memory") in res.stderr
    assert "is available to this process" in res.stderr and "Traceback" not in res.stderr


def test_metrics_cli_output_unchanged_and_all_or_nothing(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["metrics"])
    assert res.exit_code == 0, res.output
    # the README's example table, figure for figure
    for line in ("example_scores.csv: 900 genuine, 3,600 impostor comparisons, 3 failure(s) to acquire",
                 "FNMR @ FMR <= 1 %          fmr100                         8.11 %      0.3017",
                 "EER                        eer                            3.89 %      0.2504",
                 "k-fold accuracy            kfold_accuracy         97.42 % ± 0.90         n/a"):
        assert line in res.output
    a, b = tmp_path / "a.json", tmp_path / "b.csv"
    res = runner.invoke(main, ["metrics", "--json", str(a), "--csv", "/proc/b.csv"])
    assert res.exit_code == 1 and "/proc/b.csv: cannot write the file" in res.output
    assert ".tmp" not in res.output and not a.exists() and list(tmp_path.iterdir()) == []
    res = runner.invoke(main, ["metrics", "--json", str(a), "--csv", str(b), "--hist", str(tmp_path / "no" / "h.png"
                                                                                            ).replace("no", "\0")])
    assert res.exit_code != 0 and not a.exists() and not b.exists()
    res = runner.invoke(main, ["metrics", "--json", str(a), "--csv", str(b)])
    assert res.exit_code == 0 and json.loads(a.read_text())["n_genuine"] == 900 and b.read_text().startswith("n_")


@pytest.mark.parametrize("folds", ["0", "-3"])
def test_metrics_refuses_folds_below_one(folds):
    res = CliRunner().invoke(main, ["metrics", "--folds", folds])
    assert res.exit_code == 2 and f"{folds} is not in the range x>=1" in res.output


def test_memory_check_estimates_the_lines_of_a_large_file(tmp_path, monkeypatch):
    """Past EXACT_COUNT_BYTES the line count of the memory check is estimated from the file's head (within a
    few % on uniform rows) and the refusal says "about"; the table read is the same."""
    p = tmp_path / "s.csv"
    _random_file(p, 3000, 1, False)
    exact = scores_csv._count_lines(p)
    monkeypatch.setattr(scores_csv, "EXACT_COUNT_BYTES", 16 * 1024)
    rows, is_exact = scores_csv._line_estimate(p)
    assert not is_exact and abs(rows - exact) < 0.1 * exact
    assert len(read_score_table(p)) == 3000
    monkeypatch.setattr("frmask._memory.available_memory", lambda: 1000)
    with pytest.raises(ValueError, match=rf"s.csv \(about {rows:,} lines, about {scores_csv.REPORT_BYTES_PER_ROW} "
                                          rf"bytes each\) needs about"):
        read_score_table(p, bytes_per_row=scores_csv.REPORT_BYTES_PER_ROW)
