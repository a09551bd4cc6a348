"""A generic protocol: a CSV of pairs ``path_a,path_b,label`` with optional ``subject_a,subject_b`` and
``scenario`` columns.

- With a header row naming the columns (any order; ``path_a``, ``path_b``, ``label`` required), or without
  one: then 3 columns (``path_a,path_b,label``) or 5 (``+ subject_a,subject_b``).
- ``label``: ``1``/``0``, ``true``/``false``, ``genuine``/``impostor`` (case-insensitive; 1 = same person).
- Paths are relative to ``root`` (default: the CSV's own folder) unless absolute. An image used by several
  pairs is embedded once.
- ``align``: ``auto`` (a 112x112 image is taken as an aligned ArcFace crop, anything else is detected and
  aligned), ``detect`` or ``none`` (every image is an aligned crop of the model's template).
- A ``scenario`` column adds one scenario per distinct value (reported beside ``all``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from frmask.protocols.base import ImageEntry, Protocol, check_align, missing_files_error

REQUIRED = ("path_a", "path_b", "label")
OPTIONAL = ("subject_a", "subject_b", "scenario")
_TRUE = {"1", "true", "genuine", "same", "yes"}
_FALSE = {"0", "false", "impostor", "different", "no"}


def _label(text: str, path: Path, line: int) -> bool:
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(f"{path}, line {line}: label {text!r} is not 1/0, true/false or genuine/impostor")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(n, row) for n, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: empty pairs file")
    first = [c.strip().lower() for c in rows[0][1]]
    if "path_a" in first:
        unknown = [c for c in first if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise ValueError(f"{path}, line 1: unknown column(s) {unknown}; expected {REQUIRED} and optionally {OPTIONAL}")
        absent = [c for c in REQUIRED if c not in first]
        if absent:
            raise ValueError(f"{path}, line 1: missing column(s) {absent}")
        return first, rows[1:]
    width = len(rows[0][1])
    if width == 3:
        return list(REQUIRED), rows
    if width == 5:
        return list(REQUIRED) + ["subject_a", "subject_b"], rows
    raise ValueError(f"{path}, line {rows[0][0]}: expected a header row or 3 columns (path_a,path_b,label) "
                     f"or 5 (+ subject_a,subject_b), got {width}")


def load_csv_pairs(data, *, root=None, align: str = "auto", name: str | None = None) -> Protocol:
    """The protocol of the pairs CSV ``data`` (module docstring)."""
    path = Path(data)
    align = check_align(align)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; --protocol csv needs a pairs CSV file (path_a,path_b,label); "
                         f"for a folder of identity sub-folders use --protocol folder")
    if not path.is_file():
        raise ValueError(f"{path}: no such pairs file")
    base = Path(root) if root is not None else path.parent
    columns, rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: no pairs after the header")
    col = {c: k for k, c in enumerate(columns)}
    index: dict[Path, int] = {}
    images: list[ImageEntry] = []
    a_idx, b_idx, genuine, subj_a, subj_b, scen = [], [], [], [], [], []
    missing = []
    for line, row in rows:
        if len(row) != len(columns):
            raise ValueError(f"{path}, line {line}: expected {len(columns)} columns ({','.join(columns)}), got {len(row)}")
        ids = []
        for side in ("path_a", "path_b"):
            text = row[col[side]].strip()
            if not text:
                raise ValueError(f"{path}, line {line}: empty {side}")
            file = Path(text) if Path(text).is_absolute() else base / text
            if file not in index:
                if not file.is_file():
                    missing.append((f"line {line}", file))
                index[file] = len(images)
                images.append(ImageEntry(text, file, align))
            ids.append(index[file])
        a_idx.append(ids[0])
        b_idx.append(ids[1])
        genuine.append(_label(row[col["label"]], path, line))
        if "subject_a" in col and "subject_b" in col:
            subj_a.append(row[col["subject_a"]].strip())
            subj_b.append(row[col["subject_b"]].strip())
        if "scenario" in col:
            scen.append(row[col["scenario"]].strip())
    if missing:
        raise missing_files_error(missing, path)
    scenarios = {}
    if scen:
        values = np.array(scen, dtype=object)
        scenarios = {s: values == s for s in dict.fromkeys(scen) if s and s != "all"}
    subjects = (np.array(subj_a, dtype=object), np.array(subj_b, dtype=object)) if subj_a else (None, None)
    return Protocol(name or path.stem, images, a_idx, b_idx, genuine, *subjects, scenarios, folds=None,
                    description=f"pairs from {path}: {len(images)} images, {len(genuine)} pairs")
