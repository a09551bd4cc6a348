"""The fast path of :mod:`frmask.io.scores_csv`: pyarrow's multithreaded CSV reader with fixed column types.

Only files whose every field is already in canonical form take it: scores parse as float64 (the same
correctly rounded value as Python's ``float``), the FTA markers (any letter case) become NaN, labels are
exactly ``0`` or ``1``. Anything else (spaces around a value, a non-number, an infinite score, a stray
quote, a ragged row) raises :class:`Irregular`, and the caller reads the file with the general path, which
gives the same values or today's error naming the line. Memory: the output arrays (9 bytes per row, plus the
subject strings) and, while they are filled, pyarrow's table of the wanted columns (about 8 bytes per row,
plus the subject strings): 17 bytes per row at the peak of reading.
"""

from __future__ import annotations

import itertools

import numpy as np

BLOCK = 1 << 24  # bytes of CSV text per block the reader's threads parse (one batch each)


class Irregular(Exception):
    """The file needs the general reader (a field not in canonical form, or a CSV quirk)."""


def _case_variants(word: str) -> list[str]:
    return ["".join(p) for p in itertools.product(*({c.lower(), c.upper()} for c in word))]


def read_columns(path, names: list[str], markers, subjects: bool):
    """The file's columns: returns (scores float64, labels int8, subject_a, subject_b).

    ``names`` are the header's column names (normalised, unique). Subjects come back as numpy str arrays (leading/trailing whitespace removed) when
    ``subjects`` is true, else None. Raises :class:`Irregular` for anything the general reader must judge.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    null_values = sorted({v for m in markers for v in _case_variants(m)})
    wanted = ["score", "label"] + (["subject_a", "subject_b"] if subjects else [])
    types = {"score": pa.float64(), "label": pa.bool_()}
    types.update({c: pa.string() for c in wanted[2:]})
    read = pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK, use_threads=True)
    parse = pcsv.ParseOptions(newlines_in_values=False)
    convert = pcsv.ConvertOptions(column_types=types, include_columns=wanted, null_values=null_values,
                                  true_values=["1"], false_values=["0"], strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)
    n = 0
    sa, sb = [], []
    try:
        table = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        scores = np.empty(table.num_rows, np.float64)
        labels = np.empty(table.num_rows, np.int8)
        for batch in table.to_batches():
            m = batch.num_rows
            s = batch.column("score")
            lab = batch.column("label")
            if lab.null_count:
                raise Irregular("empty label")
            vals = s.to_numpy(zero_copy_only=False)
            nulls = s.is_null().to_numpy(zero_copy_only=False) if s.null_count else None
            if not np.isfinite(vals).all():
                bad = ~np.isfinite(vals)
                if nulls is None or (bad & ~nulls).any():
                    raise Irregular("a NaN or infinite score written as a number")
            scores[n:n + m] = vals
            labels[n:n + m].view(bool)[:] = lab.to_numpy(zero_copy_only=False)
            if subjects:
                sa.append(pc.utf8_trim_whitespace(batch.column("subject_a")))
                sb.append(pc.utf8_trim_whitespace(batch.column("subject_b")))
            n += m
        del table
        pa.default_memory_pool().release_unused()  # the table's memory back now, before the report allocates
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise Irregular(str(exc)) from None
    if not subjects:
        return scores, labels, None, None

    def as_str(chunks):
        if not chunks:
            return np.empty(0, dtype=str)
        return np.asarray(pa.chunked_array(chunks).to_numpy(zero_copy_only=False), dtype=str)

    return scores, labels, as_str(sa), as_str(sb)
