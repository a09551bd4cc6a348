"""MXNet RecordIO (``train.rec`` + ``train.idx``, the MS1MV2 layout), read and written without mxnet.

Framing (dmlc-core ``recordio``; all integers little-endian):

* a record is one or more *parts*; each part is ``uint32 magic 0xced7230a``, ``uint32 lrec``, then
  ``length`` data bytes. ``length = lrec & (2**29 - 1)``; ``cflag = lrec >> 29`` is 0 for a whole record
  and 1 / 2 / 3 for the first / a middle / the last part of a split record;
* a payload is split wherever it contains the magic number at a 4-byte aligned position ``i`` (that is,
  ``i % 4 == 0``; files and payloads start 4-aligned): the four magic bytes are dropped and the bytes
  between two occurrences become a part. A reader joins the parts with the magic bytes in between. This
  keeps the magic out of the stream at aligned positions, so a reader can resynchronise on it;
* after the last part, zero bytes pad the record to a multiple of 4 bytes (middle parts are always a
  multiple of 4 long, so only the end needs padding).

:func:`frame` follows dmlc-core's ``RecordIOWriter::WriteRecord`` byte for byte, so files written here
are identical to files written by ``mx.recordio.MXIndexedRecordIO``. Payloads must be shorter than
``2**29`` bytes. Padding bytes are not checked when reading.

The ``.idx`` file has one line per record, ``key<TAB>byte offset of the record\\n``, with integer keys.

Image records (:func:`pack` / :func:`unpack`) start with the header ``<IfQQ`` (uint32 ``flag``,
float32 ``label``, uint64 ``id``, uint64 ``id2``). When ``flag > 0`` the header's ``label`` field is
unused (written as 0) and ``flag`` float32 labels follow it; the encoded image comes last. In MS1MV2,
record 0 is such a header-only record whose two labels give the key range of the identity records.
"""

from __future__ import annotations

import contextlib
import numbers
import operator
import os
import re
import struct
import weakref
from pathlib import Path
from typing import IO, Callable, Iterator, NamedTuple

import numpy as np

from frmask._atomic import fsync_dir

from frmask.io.errors import FormatError

__all__ = [
    "MAGIC",
    "MAX_PAYLOAD",
    "IRHeader",
    "pack",
    "unpack",
    "frame",
    "RecordReader",
    "RecordWriter",
    "RecordKeyError",
    "FormatError",
]

MAGIC = 0xCED7230A
"""Magic number that starts every part of a record."""

MAX_PAYLOAD = (1 << 29) - 1
"""Largest payload a record can hold, in bytes."""

_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1  # lower 29 bits of a part's length word
_PART_HEAD = struct.Struct("<II")
_IR_HEAD = struct.Struct("<IfQQ")
_IDX_LINE = re.compile(r"(-?[0-9]+)\t([0-9]+)")

PathLike = str | os.PathLike[str]


class RecordKeyError(FormatError, KeyError):
    """A key that the record file does not hold (both a :class:`FormatError` and a ``KeyError``)."""

    __str__ = FormatError.__str__  # KeyError would quote the message


def _as_bytes(data: bytes) -> bytes:
    """``data`` (any bytes-like object) as ``bytes``; ``TypeError`` for anything else, ints included."""
    return data if type(data) is bytes else memoryview(data).tobytes()


# ------------------------------------------------------------------------------------- image records


class IRHeader(NamedTuple):
    """Header of an image record. ``label`` is a float, or a float32 array when ``flag > 0``."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack(header: IRHeader | tuple, image_bytes: bytes) -> bytes:
    """Build an image-record payload, as ``mx.recordio.pack``.

    The ``flag`` given in ``header`` is ignored: a scalar ``label`` is stored in the header with
    ``flag = 0``; an array-like ``label`` is stored after the header as float32 with ``flag`` = its size
    and 0 in the header's label field.
    """
    _, label, id_, id2 = header
    if isinstance(label, numbers.Real):
        flag, scalar, extra = 0, float(label), b""
    else:
        labels = np.asarray(label, dtype="<f4").ravel()
        if labels.size == 0:
            raise ValueError("an array label needs at least one value")
        flag, scalar, extra = labels.size, 0.0, labels.tobytes()
    return _IR_HEAD.pack(flag, scalar, id_, id2) + extra + _as_bytes(image_bytes)


def unpack(payload: bytes) -> tuple[IRHeader, bytes]:
    """Split an image-record payload into its header and the encoded image, as ``mx.recordio.unpack``.

    With ``flag > 0`` the returned ``label`` is a float32 array of ``flag`` values; otherwise it is the
    header's float. ``pack(*unpack(p)) == p`` for every payload written by :func:`pack`.
    """
    if len(payload) < _IR_HEAD.size:
        raise FormatError(f"record payload of {len(payload)} bytes is shorter than the {_IR_HEAD.size}-byte header")
    flag, label, id_, id2 = _IR_HEAD.unpack_from(payload)
    start = _IR_HEAD.size
    if flag > 0:
        if len(payload) < start + 4 * flag:
            raise FormatError(f"record header announces {flag} labels but the payload has {len(payload)} bytes")
        label = np.frombuffer(payload, dtype="<f4", count=flag, offset=start).astype(np.float32)
        start += 4 * flag
    return IRHeader(flag, label, id_, id2), bytes(payload[start:])


# ------------------------------------------------------------------------------------------- framing


def _aligned_magic_positions(payload: bytes) -> Iterator[int]:
    """Offsets ``i % 4 == 0`` where ``payload[i:i + 4]`` is the magic number, in increasing order."""
    i = payload.find(_MAGIC_BYTES)
    while i >= 0:
        if i % 4 == 0:
            yield i
            i = payload.find(_MAGIC_BYTES, i + 4)
        else:
            i = payload.find(_MAGIC_BYTES, i + 1)


def frame(payload: bytes) -> bytes:
    """The bytes that store ``payload`` as one record in a ``.rec`` file (dmlc-core's rule, see above)."""
    payload = _as_bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"record payload of {len(payload)} bytes exceeds the RecordIO limit of {MAX_PAYLOAD}")
    out = []
    start = 0
    for i in _aligned_magic_positions(payload):
        out += [_PART_HEAD.pack(MAGIC, ((1 if start == 0 else 2) << 29) | (i - start)), payload[start:i]]
        start = i + 4
    out += [_PART_HEAD.pack(MAGIC, ((3 if start else 0) << 29) | (len(payload) - start)), payload[start:]]
    out.append(b"\0" * (-len(payload) % 4))
    return b"".join(out)


def _walk_record(read_at: Callable[[int, int], bytes], offset: int, size: int, path: Path,
                 want_data: bool, key: int | None = None) -> tuple[bytes, int]:
    """Read (or, with ``want_data=False``, only check) the record at ``offset``; return it and the next offset.
    ``key``: the record's key (its index in the file when there is no ``.idx``), named in errors."""
    parts = []
    pos = offset
    record = "a record" if key is None else f"record {key}"
    while True:
        head = read_at(pos, _PART_HEAD.size) if pos + _PART_HEAD.size <= size else b""
        if len(head) < _PART_HEAD.size:
            if pos >= size:
                raise FormatError(f"truncated file: {record} starts at byte {pos}, past the end of the file "
                                  f"({size} bytes; the .rec was cut short, or its .idx belongs to another file)",
                                  path=path, offset=pos, index=key)
            raise FormatError(f"truncated record: {record} has only {size - pos} of the {_PART_HEAD.size} bytes "
                              f"of a part header before the file ends ({size} bytes)", path=path, offset=pos,
                              index=key)
        magic, lrec = _PART_HEAD.unpack(head)
        if magic != MAGIC:
            raise FormatError(f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}", path=path, offset=pos)
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        expected = (0, 1) if pos == offset else (2, 3)
        if cflag not in expected:
            where = "first" if pos == offset else "continuation"
            raise FormatError(f"{where} part has continuation flag {cflag}, expected one of {expected}",
                              path=path, offset=pos)
        stored = length + (-length % 4)  # as dmlc's reader: every part is padded to 4 bytes
        data_at = pos + _PART_HEAD.size
        if data_at + stored > size:
            raise FormatError(f"truncated record: a part of {record} holds {length} bytes but the file ends "
                              f"{size - data_at} bytes after its header ({size} bytes)", path=path, offset=pos,
                              index=key)
        if want_data:
            data = read_at(data_at, length)
            if len(data) != length:
                raise FormatError(f"truncated record: {record} (the file shrank while reading)", path=path,
                                  offset=pos, index=key)
            parts.append(data)
        pos = data_at + stored
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(parts), pos


# -------------------------------------------------------------------------------------------- reading


def _parse_idx(idx_path: Path) -> dict[int, int]:
    """Keys and record offsets of an ``.idx`` file, in file order."""
    offsets: dict[int, int] = {}
    with open(idx_path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            match = _IDX_LINE.fullmatch(raw.strip().decode("ascii", errors="replace"))
            if match is None:
                raise FormatError(f"index line {raw[:60]!r} is not 'key<TAB>offset'", path=idx_path, line=number)
            key, offset = int(match[1]), int(match[2])
            if key in offsets:
                raise FormatError(f"key {key} appears twice", path=idx_path, line=number)
            offsets[key] = offset
    return offsets


class RecordReader:
    """Random and sequential access to the records of a ``.rec`` file.

    Keys come from ``idx_path``; with ``idx_path=None`` from the ``.idx`` file next to ``rec_path``
    (same name, suffix ``.idx``) when there is one, and otherwise from a scan of the whole ``.rec`` file
    at opening, which numbers the records 0, 1, 2, ... in file order. Records are read with positional
    reads (``os.pread`` where available), so one reader can serve several threads, and forked worker
    processes do not disturb each other.
    """

    def __init__(self, rec_path: PathLike, idx_path: PathLike | None = None) -> None:
        self.path = Path(rec_path)
        if idx_path is None and self.path.with_suffix(".idx").is_file():
            idx_path = self.path.with_suffix(".idx")
        self.idx_path = None if idx_path is None else Path(idx_path)
        self._file: IO[bytes] | None = open(self.path, "rb")
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._offsets = _parse_idx(self.idx_path) if self.idx_path is not None else self._scan()
        except BaseException:
            self.close()
            raise
        self._keys = tuple(self._offsets)

    def _read_at(self, offset: int, n: int) -> bytes:
        if self._file is None:
            raise ValueError(f"{self.path}: reader is closed")
        if hasattr(os, "pread"):
            return os.pread(self._file.fileno(), n, offset)
        self._file.seek(offset)
        return self._file.read(n)

    def _scan(self) -> dict[int, int]:
        offsets = {}
        pos = 0
        while pos < self._size:
            key = len(offsets)
            offsets[key] = pos
            _, pos = _walk_record(self._read_at, pos, self._size, self.path, want_data=False, key=key)
        return offsets

    @property
    def keys(self) -> tuple[int, ...]:
        """Record keys in index (file) order (an attribute, as ``MXIndexedRecordIO.keys``).

        Because ``keys`` is not a method, build a dict with ``dict(iter(reader))``, not ``dict(reader)``.
        """
        return self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._offsets

    def offset(self, key: int) -> int:
        """Byte offset of record ``key`` in the ``.rec`` file."""
        try:
            return self._offsets[key]
        except KeyError:
            raise RecordKeyError(f"no record with key {key!r}", path=self.idx_path or self.path) from None

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (split parts joined back)."""
        payload, _ = _walk_record(self._read_at, self.offset(key), self._size, self.path, want_data=True, key=key)
        return payload

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """``(key, payload)`` for every record, in key order."""
        for key in self._keys:
            yield key, self.read(key)

    def close(self) -> None:
        """Close the file; further reads raise ``ValueError``. Closing twice is allowed."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -------------------------------------------------------------------------------------------- writing


def _open_temporary(target: Path) -> tuple[IO[bytes], Path]:
    """A new, exclusive temporary file next to ``target`` (same folder, so a rename is atomic); stale ones of a
    killed run are removed first (:mod:`frmask._temps`)."""
    from frmask._atomic import open_temp_file

    return open_temp_file(target)


def _discard(files: list[IO[bytes]], paths: list[Path]) -> None:
    """Close ``files`` and delete ``paths``, ignoring errors (cleanup of an unfinished writer)."""
    for f in files:
        with contextlib.suppress(OSError):
            f.close()
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


class RecordWriter:
    """Write a ``.rec`` file and its ``.idx`` (``idx_path=None``: no index), all or nothing.

    Records go to temporary files next to the targets. :meth:`close` fsyncs them and renames them over
    ``rec_path`` and then ``idx_path``. :meth:`abort`, an exception inside a ``with`` block, a failed
    :meth:`write` or a writer garbage-collected before closing removes the temporary files and leaves the
    targets untouched. The two renames are atomic one by one, not together: the index is renamed last,
    so a crash between them can leave a new ``.rec`` beside an old ``.idx``. Keys are integers, each
    used once; the index lists them in writing order.
    """

    def __init__(self, rec_path: PathLike, idx_path: PathLike | None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = None if idx_path is None else Path(idx_path)
        files: list[IO[bytes]] = []
        tmps: list[Path] = []
        self._cleanup = weakref.finalize(self, _discard, files, tmps)
        try:
            for target in (self.rec_path, self.idx_path):
                if target is not None:
                    f, tmp = _open_temporary(target)
                    files.append(f)
                    tmps.append(tmp)
        except BaseException:
            self._cleanup()
            raise
        self._files, self._tmps = files, tmps
        self._keys: set[int] = set()
        self._offset = 0
        self._open = True

    @property
    def offset(self) -> int:
        """Byte offset at which the next record will start."""
        return self._offset

    def write(self, key: int, payload: bytes) -> int:
        """Append ``payload`` as record ``key``; return its byte offset.

        Bad arguments (a non-integer or repeated key, a payload of ``2**29`` bytes or more) raise before
        anything is written and leave the writer usable; an I/O error aborts the writer.
        """
        if not self._open:
            raise ValueError(f"{self.rec_path}: writer is closed")
        key = operator.index(key)
        if key in self._keys:
            raise ValueError(f"key {key} was already written")
        data = frame(payload)
        try:
            self._files[0].write(data)
            if self.idx_path is not None:
                self._files[1].write(f"{key}\t{self._offset}\n".encode("ascii"))
        except BaseException:
            self.abort()
            raise
        self._keys.add(key)
        offset = self._offset
        self._offset += len(data)
        return offset

    def close(self) -> None:
        """Finish: fsync and rename the temporary files onto the targets. Closing twice is allowed."""
        if not self._open:
            return
        self._open = False
        try:
            for f in self._files:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            for tmp, target in zip(self._tmps, (self.rec_path, self.idx_path)):
                os.replace(tmp, target)
        except BaseException:
            self._cleanup()
            raise
        self._cleanup.detach()
        for folder in {p.parent for p in (self.rec_path, self.idx_path) if p is not None}:
            fsync_dir(folder)

    def rewrite(self, offset: int, payload: bytes) -> None:
        """Replace the record written at ``offset`` by ``payload``, whose record must have the same length (e.g.
        a header whose values are known only at the end, as ``frmask pack``'s record 0)."""
        if not self._open:
            raise ValueError(f"{self.rec_path}: writer is closed")
        data = frame(payload)
        f = self._files[0]
        end = f.tell()
        if not 0 <= offset <= end - len(data):
            raise ValueError(f"offset {offset}: no record of {len(data)} bytes there")
        f.seek(offset)
        f.write(data)
        f.seek(end)

    def abort(self) -> None:
        """Discard everything written; the targets are left as they were."""
        self._open = False
        self._cleanup()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
