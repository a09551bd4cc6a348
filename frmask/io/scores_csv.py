"""Score tables: CSV files of labelled comparison scores.

Format: a header line naming at least ``score`` and ``label`` (1 = genuine pair, 0 = impostor pair),
optionally ``subject_a`` and ``subject_b`` (the identities compared, used for subject-level bootstrap
intervals); other columns are ignored. An empty score field or ``nan`` marks a failure to acquire (a
missing template). Errors name the file and line (the header is line 1).
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


def _data_line_numbers(path: Path) -> list[int]:
    """File line number of every non-blank data row, in order (slow path, only used to report errors)."""
    lines = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        start = reader.line_num
        for row in reader:
            if any(cell.strip() for cell in row):
                lines.append(start + 1 if not lines else reader.line_num)
            start = reader.line_num
    return lines


def read_score_table(path) -> ScoreTable:
    """Read a score CSV (module docstring); raises :class:`ScoreFileError` naming the file and line."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ScoreFileError(f"{path}: the file is empty (expected a header with 'score' and 'label')") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ScoreFileError(f"{path}: not a readable CSV file: {exc}") from None
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in ("score", "label") if c not in df.columns]
    if missing:
        raise ScoreFileError(f"{path} line 1: missing column(s) {', '.join(map(repr, missing))}; "
                             f"the header must name 'score' and 'label' (found: {', '.join(df.columns)})")
    if len(df) == 0:
        raise ScoreFileError(f"{path}: no score rows after the header")

    def fail(row: int, message: str):
        line = _data_line_numbers(path)[row]
        raise ScoreFileError(f"{path} line {line}: {message}")

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
    labels = (raw_labels == "1").to_numpy().astype(np.int8)
    subj_a = subj_b = None
    if "subject_a" in df.columns and "subject_b" in df.columns:
        subj_a = df["subject_a"].str.strip().to_numpy(dtype=str)
        subj_b = df["subject_b"].str.strip().to_numpy(dtype=str)
        empty = np.flatnonzero((subj_a == "") | (subj_b == ""))
        if empty.size:
            fail(empty[0], "empty subject field (subject_a and subject_b must both be given on every row)")
        mixed = np.flatnonzero((labels == 1) != (subj_a == subj_b))
        if mixed.size:
            r = mixed[0]
            kind = "genuine" if labels[r] == 1 else "impostor"
            fail(r, f"{kind} pair compares subjects {str(subj_a[r])!r} and {str(subj_b[r])!r}; genuine pairs must compare "
                    f"a subject with itself and impostor pairs two different subjects")
    return ScoreTable(scores, labels, subj_a, subj_b)
