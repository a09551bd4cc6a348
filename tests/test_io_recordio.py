"""Tests of frmask.io.recordio: MXNet RecordIO framing, image-record headers, reader and writer."""

from __future__ import annotations

import gc
import struct
from pathlib import Path

import numpy as np
import pytest

from frmask.io import recordio
from frmask.io.errors import FormatError
from frmask.io.recordio import (
    MAGIC,
    IRHeader,
    RecordKeyError,
    RecordReader,
    RecordWriter,
    frame,
    pack,
    unpack,
)

M = struct.pack("<I", MAGIC)


def _head(cflag: int, length: int) -> bytes:
    return struct.pack("<II", MAGIC, (cflag << 29) | length)


def _write(folder: Path, payloads: dict[int, bytes], name: str = "train") -> tuple[Path, Path]:
    rec, idx = folder / f"{name}.rec", folder / f"{name}.idx"
    with RecordWriter(rec, idx) as writer:
        for key, payload in payloads.items():
            writer.write(key, payload)
    return rec, idx


# ------------------------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", _head(0, 0)),
        (b"abcd", _head(0, 4) + b"abcd"),
        (b"abcde", _head(0, 5) + b"abcde\0\0\0"),
        # magic at aligned offset 4: parts "abcd" (start) and "xy" (end), magic dropped
        (b"abcd" + M + b"xy", _head(1, 4) + b"abcd" + _head(3, 2) + b"xy\0\0"),
        # magic first, twice in a row, and last
        (M + M + b"wxyz" + M, _head(1, 0) + _head(2, 0) + _head(2, 4) + b"wxyz" + _head(3, 0)),
        # unaligned magic is stored as is
        (b"a" + M + b"bcd", _head(0, 8) + b"a" + M + b"bcd"),
    ],
)
def test_frame_follows_dmlc_rule(payload: bytes, expected: bytes) -> None:
    assert frame(payload) == expected


def test_frame_rejects_oversized_payload(monkeypatch) -> None:
    monkeypatch.setattr(recordio, "MAX_PAYLOAD", 7)
    with pytest.raises(ValueError, match="exceeds"):
        frame(b"12345678")
    with pytest.raises(TypeError):
        frame(5)  # type: ignore[arg-type]  # bytes(5) would silently be 5 zero bytes


def test_written_file_bytes(tmp_path: Path) -> None:
    rec, idx = _write(tmp_path, {7: b"hello", 3: b"abcd" + M})
    assert rec.read_bytes() == _head(0, 5) + b"hello\0\0\0" + _head(1, 4) + b"abcd" + _head(3, 0)
    assert idx.read_text() == "7\t0\n3\t16\n"


# ------------------------------------------------------------------------------------- image records


def test_pack_scalar_label_matches_mxnet_layout() -> None:
    payload = pack(IRHeader(9, 3.0, 11, 12), b"JPEG")
    assert payload == struct.pack("<IfQQ", 0, 3.0, 11, 12) + b"JPEG"
    header, image = unpack(payload)
    assert header == IRHeader(0, 3.0, 11, 12) and image == b"JPEG"
    assert pack(header, image) == payload


def test_pack_array_label() -> None:
    payload = pack(IRHeader(0, [1.0, 85743.0], 0, 0), b"")  # MS1MV2 record 0 style
    assert payload == struct.pack("<IfQQ", 2, 0.0, 0, 0) + np.array([1, 85743], "<f4").tobytes()
    header, image = unpack(payload)
    assert header.flag == 2 and image == b""
    assert header.label.dtype == np.float32 and header.label.tolist() == [1.0, 85743.0]
    assert pack(header, image) == payload
    with pytest.raises(ValueError, match="at least one"):
        pack(IRHeader(0, [], 0, 0), b"")


def test_unpack_errors() -> None:
    with pytest.raises(FormatError, match="shorter than the 24-byte header"):
        unpack(b"\0" * 23)
    with pytest.raises(FormatError, match="announces 3 labels"):
        unpack(struct.pack("<IfQQ", 3, 0.0, 0, 0) + b"\0" * 8)


# --------------------------------------------------------------------------------- reader and writer


def test_round_trip_5000_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    payloads = {}
    for key in range(5000):
        image = rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        if key % 97 == 0:
            image = M + image + M  # some payloads need splitting
        payloads[key] = pack(IRHeader(0, float(key % 13), key, 0), image)
    rec, idx = _write(tmp_path, payloads)
    with RecordReader(rec, idx) as reader:
        assert len(reader) == 5000 and reader.keys == tuple(range(5000))
        assert dict(iter(reader)) == payloads
        assert unpack(reader.read(4321))[0].id == 4321
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.idx", "train.rec"]


def test_idx_found_next_to_rec_or_scanned(tmp_path: Path) -> None:
    payloads = {10: b"a" * 9, 20: M, 30: b""}
    rec, idx = _write(tmp_path, payloads)
    with RecordReader(rec) as reader:  # sibling train.idx
        assert reader.idx_path == idx and reader.keys == (10, 20, 30)
    idx.unlink()
    with RecordReader(rec) as reader:  # sequential scan numbers records 0, 1, 2
        assert reader.idx_path is None and reader.keys == (0, 1, 2)
        assert [payload for _, payload in reader] == list(payloads.values())
        assert reader.offset(2) == (8 + 12) + (8 + 8)  # 9 bytes padded; M split in two empty parts


@pytest.mark.parametrize(
    "payload",
    [M, M * 3, b"abcd" + M + b"efgh" + M + b"ij", b"x" * 4 + M + b"x" * 5, b"ab" + M + b"cd", M + b"\0\0\0"],
)
def test_payloads_with_magic_round_trip(tmp_path: Path, payload: bytes) -> None:
    rec, idx = _write(tmp_path, {0: b"first", 1: payload, 2: b"last"})
    for idx_path in (idx, None):
        with RecordReader(rec, idx_path) as reader:
            assert reader.read(1) == payload and reader.read(2) == b"last"


def test_missing_key(tmp_path: Path) -> None:
    rec, idx = _write(tmp_path, {0: b"x"})
    with RecordReader(rec, idx) as reader:
        assert 5 not in reader and 0 in reader
        with pytest.raises(RecordKeyError, match=r"train\.idx: no record with key 5"):
            reader.read(5)
        with pytest.raises(KeyError):
            reader.read(5)


def test_bad_magic_names_offset(tmp_path: Path) -> None:
    rec, idx = _write(tmp_path, {0: b"abcdefgh", 1: b"second"})
    data = bytearray(rec.read_bytes())
    data[16] ^= 0xFF  # first byte of record 1, at offset 16
    rec.write_bytes(bytes(data))
    with RecordReader(rec, idx) as reader:
        assert reader.read(0) == b"abcdefgh"
        with pytest.raises(FormatError, match=r"train\.rec: bad magic 0xced723f5.*byte offset 16"):
            reader.read(1)
    idx.unlink()
    with pytest.raises(FormatError, match="byte offset 16"):
        RecordReader(rec)


def test_idx_offset_inside_a_record(tmp_path: Path) -> None:
    rec, idx = _write(tmp_path, {0: b"abcdefgh"})
    idx.write_text("0\t4\n")
    with RecordReader(rec, idx) as reader, pytest.raises(FormatError, match="bad magic.*byte offset 4"):
        reader.read(0)


@pytest.mark.parametrize("cut", [1, 4, 8, 12, 27])
def test_truncated_file(tmp_path: Path, cut: int) -> None:
    rec, idx = _write(tmp_path, {0: b"abcd", 1: b"abcd" + M + b"efghijkl"})
    data = rec.read_bytes()  # record 1 starts at offset 12; its second part at 24
    rec.write_bytes(data[: len(data) - cut])
    with RecordReader(rec, idx) as reader:
        assert reader.read(0) == b"abcd"
        with pytest.raises(FormatError, match=r"train\.rec: truncated record.*byte offset (12|24)"):
            reader.read(1)
    idx.unlink()
    with pytest.raises(FormatError, match="truncated record"):
        RecordReader(rec)


def test_truncated_rec_with_its_full_idx_names_record_and_offset(tmp_path: Path) -> None:
    """Issue 15 item 8: a .rec cut short while its .idx still lists the lost records said "-N bytes left"."""
    rec, idx = _write(tmp_path, {k: bytes([k]) * 40 for k in range(5)})
    offsets = [int(line.split("\t")[1]) for line in idx.read_text().splitlines()]
    rec.write_bytes(rec.read_bytes()[: offsets[2] + 3])  # record 2 keeps 3 header bytes; 3 and 4 are gone
    size = offsets[2] + 3
    with RecordReader(rec) as reader:
        assert reader.read(1) == bytes([1]) * 40
        with pytest.raises(FormatError, match=rf"train\.rec: truncated record: record 2 has only 3 of the 8 bytes "
                                              rf".*\(at index 2, byte offset {offsets[2]}\)$"):
            reader.read(2)
        with pytest.raises(FormatError) as info:
            reader.read(4)
    message = str(info.value)
    assert message.startswith(f"{rec}: truncated file: record 4 starts at byte {offsets[4]}, past the end of the "
                              f"file ({size} bytes")
    assert message.endswith(f"(at index 4, byte offset {offsets[4]})") and "-" not in message.split(":")[-1]


def test_continuation_out_of_order(tmp_path: Path) -> None:
    rec = tmp_path / "odd.rec"
    rec.write_bytes(_head(2, 4) + b"abcd")
    with pytest.raises(FormatError, match="first part has continuation flag 2.*byte offset 0"):
        RecordReader(rec)
    rec.write_bytes(_head(1, 4) + b"abcd" + _head(0, 0))
    with pytest.raises(FormatError, match="continuation part has continuation flag 0.*byte offset 12"):
        RecordReader(rec)


@pytest.mark.parametrize(
    ("text", "line"),
    [("0\t0\nzero\t12\n", 2), ("0 0\n", 1), ("0\t0\n\n1\t12\n", 2), ("0\t0\n0\t12\n", 2), ("0\t-4\n", 1)],
)
def test_bad_idx_lines(tmp_path: Path, text: str, line: int) -> None:
    rec, idx = _write(tmp_path, {0: b"abcd", 1: b"efgh"})
    idx.write_text(text)
    with pytest.raises(FormatError, match=rf"train\.idx: .*\(at line {line}\)"):
        RecordReader(rec, idx)


def test_reader_closed(tmp_path: Path) -> None:
    rec, idx = _write(tmp_path, {0: b"abcd"})
    reader = RecordReader(rec, idx)
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(0)


def test_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    rec.write_bytes(b"old rec")
    with pytest.raises(RuntimeError), RecordWriter(rec, idx) as writer:
        writer.write(0, b"abcd")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.rec"]
    assert rec.read_bytes() == b"old rec"


def test_writer_garbage_collected_without_close(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path / "a.rec", tmp_path / "a.idx")
    writer.write(0, b"abcd")
    del writer
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_writer_argument_errors_keep_it_usable(tmp_path: Path, monkeypatch) -> None:
    rec, idx = tmp_path / "w.rec", tmp_path / "w.idx"
    writer = RecordWriter(rec, idx)
    assert writer.write(0, b"abc") == 0
    with pytest.raises(ValueError, match="already written"):
        writer.write(0, b"again")
    with pytest.raises(TypeError):
        writer.write("1", b"x")  # type: ignore[arg-type]
    monkeypatch.setattr(recordio, "MAX_PAYLOAD", 4)
    with pytest.raises(ValueError, match="exceeds"):
        writer.write(1, b"too long")
    assert writer.write(np.int64(1), b"ok") == writer.offset - 12
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(2, b"late")
    with RecordReader(rec, idx) as reader:
        assert dict(iter(reader)) == {0: b"abc", 1: b"ok"}


def test_writer_without_idx(tmp_path: Path) -> None:
    rec = tmp_path / "only.rec"
    with RecordWriter(rec, None) as writer:
        writer.write(5, b"abcd")
    assert [p.name for p in tmp_path.iterdir()] == ["only.rec"]
    with RecordReader(rec) as reader:
        assert list(reader) == [(0, b"abcd")]
