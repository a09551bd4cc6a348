"""Errors shared by the file-format modules of :mod:`frmask.io`."""

from __future__ import annotations

import os


class FormatError(ValueError):
    """A file does not follow the format it is read as.

    The message always starts with the file (when known) and ends with where in the file the problem
    is: a byte offset, a line number or an item index. The same facts are kept as attributes
    (``path``, ``offset``, ``line``, ``index``; ``None`` when not applicable) for programs.

    >>> str(FormatError("bad magic 0x00000000", path="train.rec", offset=48))
    'train.rec: bad magic 0x00000000 (at byte offset 48)'
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        self.line = line
        self.index = index
        super().__init__(_compose(message, self.path, offset, line, index))


def _compose(message: str, path: str | None, offset: int | None, line: int | None, index: int | None) -> str:
    where = []
    if index is not None:
        where.append(f"index {index}")
    if line is not None:
        where.append(f"line {line}")
    if offset is not None:
        where.append(f"byte offset {offset}")
    text = message if path is None else f"{path}: {message}"
    return f"{text} (at {', '.join(where)})" if where else text
