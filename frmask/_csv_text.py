"""CSV text through the csv module (quoting that round-trips), and CSV files written atomically."""

from __future__ import annotations

import csv
import io

from frmask._atomic import write_text_atomic


def csv_text(rows) -> str:
    """Rows (sequences of values) as CSV text through the csv module: a field holding a comma, a quote or a
    newline is quoted and round-trips; ``None`` is an empty field; lines end with ``\\n``."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_csv_atomic(path, rows) -> None:
    """Write ``rows`` (the header first) to ``path`` as CSV (:func:`csv_text`), atomically."""
    write_text_atomic(path, csv_text(rows))
