"""Five-point landmark files: CSV with one row per image.

Format: a header line naming the columns ``image,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5`` (in any order; other
columns are ignored; names are matched without regard to case or surrounding spaces), then one row per
image: the image's name or relative path and its five points in the order of
:data:`frmask.faces.align.ARCFACE_112` (left eye, right eye as seen in the image, nose tip, left mouth
corner, right mouth corner), in pixels. Blank lines are skipped. Errors are
:class:`frmask.io.errors.FormatError` naming the file and line (the header is line 1).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from frmask.io.errors import FormatError

__all__ = ["LANDMARK_COLUMNS", "read_landmarks_csv", "write_landmarks_csv"]

LANDMARK_COLUMNS = ("image",) + tuple(f"{axis}{k}" for k in range(1, 6) for axis in "xy")
"""The columns of a landmark CSV: ``image, x1, y1, ..., x5, y5``."""


def read_landmarks_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a landmark CSV (module docstring): ``{image: float64 (5, 2) array of (x, y)}`` in file order.

    Raises :class:`~frmask.io.errors.FormatError` (a ``ValueError``) naming the file and line for a
    missing column, a missing field, a value that is not a finite number, an empty image name or an
    image listed twice (with the line of its first row), and ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise FormatError("the file is empty (expected a header: " + ",".join(LANDMARK_COLUMNS) + ")",
                              path=path, line=1)
        header_line = reader.line_num
        names = [cell.strip().lower() for cell in header]
        missing = [c for c in LANDMARK_COLUMNS if c not in names]
        if missing:
            raise FormatError(f"missing column(s) {', '.join(missing)}; the header must name "
                              + ",".join(LANDMARK_COLUMNS) + f" (found: {','.join(names)})",
                              path=path, line=header_line)
        duplicated = sorted({c for c in LANDMARK_COLUMNS if names.count(c) > 1})
        if duplicated:
            raise FormatError(f"column(s) {', '.join(duplicated)} named more than once", path=path,
                              line=header_line)
        index = [names.index(c) for c in LANDMARK_COLUMNS]

        result: dict[str, np.ndarray] = {}
        first_line: dict[str, int] = {}
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num  # a quoted field may span lines: report the first
            if not any(cell.strip() for cell in row):
                continue
            values = []
            for column, position in zip(LANDMARK_COLUMNS, index):
                if position >= len(row):
                    raise FormatError(f"missing field {column!r} (the row has {len(row)} fields, the header "
                                      f"{len(names)})", path=path, line=start)
                values.append(row[position].strip())
            image = values[0]
            if not image:
                raise FormatError("empty image name", path=path, line=start)
            numbers = []
            for column, text in zip(LANDMARK_COLUMNS[1:], values[1:]):
                try:
                    number = float(text)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    shown = "an empty field" if not text else repr(text)
                    raise FormatError(f"{column} of {image!r} is {shown}, not a finite number",
                                      path=path, line=start)
                numbers.append(number)
            if image in result:
                raise FormatError(f"image {image!r} is listed twice (first on line {first_line[image]})",
                                  path=path, line=start)
            result[image] = np.array(numbers, dtype=np.float64).reshape(5, 2)
            first_line[image] = start
    return result


def write_landmarks_csv(path: str | os.PathLike[str], landmarks: dict[str, np.ndarray]) -> None:
    """Write ``{image: (5, 2) points}`` as a landmark CSV (atomically; floats written exactly, ``repr``)."""
    from frmask._atomic import atomic_path

    rows = []
    for image, points in landmarks.items():
        image = str(image)
        if not image.strip() or image != image.strip():
            raise ValueError(f"image names must be non-empty without surrounding spaces, got {image!r}")
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (5, 2) or not np.all(np.isfinite(points)):
            raise ValueError(f"landmarks of {image!r} must be a finite (5, 2) array, got shape {points.shape}")
        rows.append([image] + [repr(float(v)) for v in points.ravel()])
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LANDMARK_COLUMNS)
        writer.writerows(rows)
