"""Score tables: CSV files of labelled comparison scores.

Format: a header line naming at least ``score`` and ``label`` (1 = genuine pair, 0 = impostor pair),
optionally ``subject_a`` and ``subject_b`` (the identities compared, used for subject-level bootstrap
intervals); other columns are ignored. An empty score field or ``nan`` marks a failure to acquire (a
missing template). Errors name the file and line (the header is line 1); a header naming ``score``,
``label``, ``subject_a`` or ``subject_b`` twice is refused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FTA_MARKERS = {"", "nan", "na", "null"}


class ScoreFileError(ValueError):
    """A score file that cannot be read, with the file and line named."""


@dataclass(frozen=True)
class ScoreTable:
    """Labelled pair scores in file order; subjects are None when the file has no subject columns."""

    scores: np.ndarray
    labels: np.ndarray
    subject_a: np.ndarray | None = None
    subject_b: np.ndarray | None = None

    def __len__(self) -> int:
        return self.scores.size


def _line_of_row(path: Path, row: int) -> int:
    """File line number of data row ``row`` (0-based, blank rows skipped, the header is the first non-blank one).

    A slow scan, only used to report an error.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next((r for r in reader if any(c.strip() for c in r)), None)  # the header (blank lines before it skipped)
        start = reader.line_num
        seen = 0
        for r in reader:
            if any(cell.strip() for cell in r):
                if seen == row:
                    return start + 1 if seen == 0 else reader.line_num
                seen += 1
            start = reader.line_num
    return start


def _header(path: Path) -> tuple[list[str], bool]:
    """The header's column names, stripped and lower-cased (the needed ones must be there exactly once), and
    whether it is the file's first line and a line of its own (what the fast reader assumes)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            names = next((r for r in reader if any(c.strip() for c in r)), None)
            first_line = reader.line_num == 1
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{path}: not a readable CSV file: {exc}") from None
    except csv.Error as exc:
        raise ScoreFileError(f"{path} line 1: not a readable CSV header: {exc}") from None
    if not names or not any(n.strip() for n in names):
        raise ScoreFileError(f"{path}: the file is empty (expected a header with 'score' and 'label')")
    names = [n.strip().lower() for n in names]
    for col in ("score", "label", "subject_a", "subject_b"):
        at = [i + 1 for i, n in enumerate(names) if n == col]
        if len(at) > 1:
            raise ScoreFileError(f"{path} line 1: column {col!r} appears {len(at)} times (columns "
                                 f"{', '.join(map(str, at))}); name each column once")
    missing = [c for c in ("score", "label") if c not in names]
    if missing:
        raise ScoreFileError(f"{path} line 1: missing column(s) {', '.join(map(repr, missing))}; "
                             f"the header must name 'score' and 'label' (found: {', '.join(names)})")
    return names, first_line


def _count_lines(path: Path) -> int:
    """An upper bound on the data rows: the newlines in the file, plus one for a last line without one."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


EXACT_COUNT_BYTES = 64 << 20  # files up to this size have their lines counted for the memory check


def _line_estimate(path: Path) -> tuple[int, bool]:
    """(lines, exact) for the memory check: counted in files up to :data:`EXACT_COUNT_BYTES`, else estimated
    from the line density of the file's first :data:`EXACT_COUNT_BYTES` / 16 bytes (a pass over a large file
    costs as much as a good part of reading it)."""
    size = path.stat().st_size
    if size <= EXACT_COUNT_BYTES:
        return _count_lines(path), True
    with open(path, "rb") as f:
        head = f.read(EXACT_COUNT_BYTES // 16)
    return int(size * max(head.count(b"\n"), 1) / len(head)) + 1, False


# Peak bytes per row of `frmask metrics` (without --ci): while reading, pyarrow's table (8) and the result (9);
# then the table, the report's genuine/impostor split (8) and the per-fold impostor selections. Measured peak RSS
# less the interpreter's: 35 B/row on 1e7 rows, 31 on 1e8 (benchmarks/bench_metrics_csv.py); plus margin.
REPORT_BYTES_PER_ROW = 48


def read_score_table(path, *, chunk_rows: int = 1 << 20, bytes_per_row: int = 9) -> ScoreTable:
    """Read a score CSV (module docstring); raises :class:`ScoreFileError` naming the file and line.

    Canonical files go through pyarrow's typed multithreaded reader (17 bytes per row at the peak of
    reading), anything else through pandas in chunks of ``chunk_rows`` rows with the same checks and
    messages. The result takes 9 bytes per row (plus the subject strings); the file is refused up front,
    with the figure, when ``bytes_per_row`` times its line count (counted, or estimated for files past
    :data:`EXACT_COUNT_BYTES`; what the caller will need, e.g. :data:`REPORT_BYTES_PER_ROW`) would not fit.
    """
    from frmask._memory import require_memory
    from frmask.io._scores_fast import Irregular, read_columns

    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: no such file")
    names, first_line = _header(path)
    rows, exact = _line_estimate(path)
    subjects = "subject_a" in names and "subject_b" in names
    about = "" if exact else "about "
    require_memory(rows * max(bytes_per_row, 9), f"{path} ({about}{rows:,} lines, about {bytes_per_row} bytes each)")
    unique = [n if n not in names[:i] else f"\0{i}" for i, n in enumerate(names)]
    try:
        if not first_line:
            raise Irregular("the header is not the first line")
        scores, labels, subj_a, subj_b = read_columns(path, unique, FTA_MARKERS, subjects)
        n = scores.size
    except Irregular:
        rows = _count_lines(path)
        scores = np.empty(rows, np.float64)
        labels = np.empty(rows, np.int8)
        n, subj_a, subj_b = _read_general(path, scores, labels, subjects, chunk_rows)
    if n == 0:
        raise ScoreFileError(f"{path}: no score rows after the header")
    scores, labels = scores[:n], labels[:n]
    if subjects:
        _check_subjects(path, labels, subj_a, subj_b)
    return ScoreTable(scores, labels, subj_a, subj_b)


def _read_general(path: Path, scores, labels, subjects: bool, chunk_rows: int):
    """Any readable CSV, through pandas in chunks: strips fields, names the line of the first bad one."""
    import pandas as pd

    n = 0
    sa, sb = [], []
    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, chunksize=chunk_rows)
        for df in chunks:
            df.columns = [c.strip().lower() for c in df.columns]
            m = len(df)
            _convert(path, df, n, scores[n:n + m], labels[n:n + m])
            if subjects:
                sa.append(df["subject_a"].str.strip().to_numpy(dtype=str))
                sb.append(df["subject_b"].str.strip().to_numpy(dtype=str))
            n += m
    except pd.errors.EmptyDataError:
        raise ScoreFileError(f"{path}: the file is empty (expected a header with 'score' and 'label')") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ScoreFileError(f"{path}: not a readable CSV file: {exc}") from None
    if not subjects:
        return n, None, None
    return n, np.concatenate(sa) if sa else np.empty(0, str), np.concatenate(sb) if sb else np.empty(0, str)


def _convert(path: Path, df, offset: int, scores_out: np.ndarray, labels_out: np.ndarray) -> None:
    """Check and convert one chunk of string fields (rows offset.. of the file) into the output slices."""
    import pandas as pd

    def fail(row: int, message: str):
        raise ScoreFileError(f"{path} line {_line_of_row(path, offset + row)}: {message}")

    raw_scores = df["score"].str.strip()
    scores = pd.to_numeric(raw_scores, errors="coerce").to_numpy(dtype=np.float64)
    is_marker = raw_scores.str.lower().isin(FTA_MARKERS).to_numpy()
    bad = np.flatnonzero(np.isnan(scores) & ~is_marker)
    if bad.size:
        fail(bad[0], f"score {raw_scores.iloc[bad[0]]!r} is not a number")
    bad = np.flatnonzero(np.isinf(scores))
    if bad.size:
        fail(bad[0], f"score {raw_scores.iloc[bad[0]]!r} is infinite; use an empty field for a failure to acquire")
    raw_labels = df["label"].str.strip()
    ok = raw_labels.isin(["0", "1"]).to_numpy()
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        fail(row, f"label {raw_labels.iloc[row]!r} must be 1 (genuine) or 0 (impostor)")
    scores_out[:] = scores
    labels_out[:] = (raw_labels == "1").to_numpy()


def _check_subjects(path: Path, labels: np.ndarray, subj_a: np.ndarray, subj_b: np.ndarray) -> None:
    def fail(row: int, message: str):
        raise ScoreFileError(f"{path} line {_line_of_row(path, int(row))}: {message}")

    empty = np.flatnonzero((subj_a == "") | (subj_b == ""))
    if empty.size:
        fail(empty[0], "empty subject field (subject_a and subject_b must both be given on every row)")
    mixed = np.flatnonzero((labels == 1) != (subj_a == subj_b))
    if mixed.size:
        r = mixed[0]
        kind = "genuine" if labels[r] == 1 else "impostor"
        fail(r, f"{kind} pair compares subjects {str(subj_a[r])!r} and {str(subj_b[r])!r}; genuine pairs must compare "
                f"a subject with itself and impostor pairs two different subjects")
