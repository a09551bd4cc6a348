"""Tests of frmask.io.insightface_bin: reading, writing and decoding insightface .bin benchmarks."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.io.errors import FormatError
from frmask.io.insightface_bin import PICKLE_PROTOCOL, BinBenchmark, decode_image, read_bin, write_bin

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _images(n: int) -> list[bytes]:
    """``n`` small distinct images, alternately PNG (colour) and JPEG (grey)."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        if i % 2:
            out.append(_encode(rng.integers(0, 256, (12, 10), dtype=np.uint8), ".jpg"))
        else:
            out.append(_encode(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8), ".png"))
    return out


@pytest.fixture
def benchmark() -> BinBenchmark:
    return BinBenchmark(_images(6), np.array([True, False, True]))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_is_byte_exact(tmp_path: Path, benchmark: BinBenchmark) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    write_bin(first, benchmark)
    loaded = read_bin(first)
    assert loaded == benchmark
    assert loaded.n_pairs == 3
    assert loaded.issame.dtype == np.bool_ and not loaded.issame.flags.writeable
    write_bin(second, loaded)
    assert first.read_bytes() == second.read_bytes()
    assert _leftovers(tmp_path) == ["a.bin", "b.bin"]


def test_written_layout_is_plain_pickle(tmp_path: Path, benchmark: BinBenchmark) -> None:
    path = tmp_path / "x.bin"
    write_bin(path, benchmark)
    data = path.read_bytes()
    assert data[:2] == bytes([0x80, PICKLE_PROTOCOL])
    bins, issame = pickle.loads(data)
    assert bins == benchmark.images and issame == [True, False, True]
    assert all(type(b) is bytes for b in bins) and all(type(f) is bool for f in issame)


def test_repeated_image_object_round_trips(tmp_path: Path) -> None:
    image = _images(1)[0]
    original = tmp_path / "dup.bin"
    original.write_bytes(pickle.dumps(([image, image], [True]), protocol=PICKLE_PROTOCOL))
    copy = tmp_path / "copy.bin"
    write_bin(copy, read_bin(original))
    assert copy.read_bytes() == original.read_bytes()


@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_reads_old_layout_with_numpy_arrays_protocol_2(tmp_path: Path, module: str) -> None:
    images = _images(4)
    bins = [np.frombuffer(b, dtype=np.uint8) if i % 2 else bytearray(b) for i, b in enumerate(images)]
    data = pickle.dumps((bins, np.array([False, True])), protocol=2)
    # NumPy 1.x pickles name numpy.core; NumPy 2 names numpy._core. GLOBAL opcodes are text lines.
    data = data.replace(b"cnumpy._core.multiarray\n", f"c{module}\n".encode())
    assert f"c{module}\n_reconstruct\n".encode() in data
    path = tmp_path / "old.bin"
    path.write_bytes(data)
    loaded = read_bin(path)
    assert loaded.images == images
    assert loaded.issame.tolist() == [False, True]


def test_reads_numpy_arrays_protocol_5(tmp_path: Path) -> None:
    images = _images(2)
    bins = [np.frombuffer(b, dtype=np.uint8) for b in images]
    path = tmp_path / "p5.bin"
    path.write_bytes(pickle.dumps((bins, np.array([True])), protocol=5))  # uses numpy's _frombuffer
    loaded = read_bin(path)
    assert loaded.images == images and loaded.issame.tolist() == [True]


def test_reads_python2_pickle_with_str_images(tmp_path: Path) -> None:
    """Python 2 ``str`` (opcode BINSTRING) loads as bytes thanks to encoding='bytes'."""
    images = _images(2)
    body = b"".join(b"T" + struct.pack("<I", len(b)) + b for b in images)
    data = b"\x80\x02]q\x00(" + body + b"e]q\x01(\x88e\x86q\x02."
    path = tmp_path / "py2.bin"
    path.write_bytes(data)
    loaded = read_bin(path)
    assert loaded.images == images and loaded.issame.tolist() == [True]


def test_reads_list_of_numpy_bools(tmp_path: Path) -> None:
    path = tmp_path / "np_bools.bin"
    path.write_bytes(pickle.dumps((_images(2), [np.bool_(False)]), protocol=2))
    assert read_bin(path).issame.tolist() == [False]


def test_refuses_unsafe_pickle(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([Evil(), b"x"], [True])))
    with pytest.raises(FormatError, match=r"evil\.bin.*system"):
        read_bin(path)


def test_refuses_non_latin1_codecs_encode(tmp_path: Path) -> None:
    # protocol-2 style bytes built through _codecs.encode, but with a different codec
    data = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R]\x86."
    path = tmp_path / "codec.bin"
    path.write_bytes(data)
    with pytest.raises(FormatError, match="rot13"):
        read_bin(path)


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"not a pickle at all", "not a readable pickle"),
        (pickle.dumps([b"a", b"b", b"c"]), "list of length 3"),
        (pickle.dumps(([b"a", b"b", b"c"], [True])), "3 images for 1 pairs"),
        (pickle.dumps(("ab", [True])), "bins is a str"),
        (pickle.dumps(([b"a", "b"], [True])), r"image is a str.*index 1"),
        (pickle.dumps(([b"a", np.zeros(3, np.float32)], [True])), r"float32.*index 1"),
        (pickle.dumps(([b"a", b"b"], [1])), r"issame_list element is a int.*index 0"),
        (pickle.dumps(([b"a", b"b"], np.array([1]))), "issame_list is a numpy array of int64"),
        (pickle.dumps(([b"a", b"b"], [True])) + b"junk", r"4 unexpected bytes.*byte offset"),
    ],
)
def test_structure_errors(tmp_path: Path, payload: bytes, pattern: str) -> None:
    _assert_refused(tmp_path / "bad.bin", payload, pattern)


def _assert_refused(path: Path, payload: bytes, pattern: str) -> None:
    """read_bin of a file holding ``payload`` raises a FormatError matching ``pattern`` and naming the file."""
    path.write_bytes(payload)
    with pytest.raises(FormatError, match=pattern) as info:
        read_bin(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("issame", [[], np.zeros(0, bool)], ids=["list", "array"])
def test_a_bin_of_zero_pairs_says_so(tmp_path: Path, issame) -> None:
    """Issue 15 item 8: it said "need at least one array to concatenate" in frmask synth."""
    _assert_refused(tmp_path / "empty.bin", pickle.dumps(([], issame), protocol=4),
                    r"empty\.bin: holds 0 pairs \(an empty benchmark\): there is nothing to score or mask$")


def test_truncated_file(tmp_path: Path, benchmark: BinBenchmark) -> None:
    path = tmp_path / "t.bin"
    write_bin(path, benchmark)
    data = path.read_bytes()
    for cut in (1, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=r"t\.bin: not a readable pickle, or truncated"):
            read_bin(path)


def test_failed_write_leaves_no_file(tmp_path: Path, benchmark: BinBenchmark, monkeypatch) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_bin(target, benchmark)
    assert _leftovers(tmp_path) == ["out.bin"]
    assert target.read_bytes() == b"previous"


def test_write_rejects_other_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_bin(tmp_path / "x.bin", ([b"a", b"b"], [True]))  # type: ignore[arg-type]
    assert _leftovers(tmp_path) == []


def test_benchmark_validation() -> None:
    with pytest.raises(ValueError, match="3 images for 1 pairs"):
        BinBenchmark([b"a", b"b", b"c"], np.array([True]))
    with pytest.raises(TypeError, match=r"images\[1\]"):
        BinBenchmark([b"a", bytearray(b"b")], np.array([True]))
    with pytest.raises(TypeError, match="bool"):
        BinBenchmark([b"a", b"b"], np.array([1]))
    empty = BinBenchmark([], [])
    assert empty.n_pairs == 0 and empty.issame.dtype == np.bool_


def test_decode_colour_and_grey() -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    decoded = decode_image(_encode(rgb[..., ::-1], ".png"), 0)  # imencode takes BGR
    assert decoded.shape == (4, 5, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, rgb)
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    decoded = decode_image(_encode(grey, ".png"))
    np.testing.assert_array_equal(decoded, np.repeat(grey[..., None], 3, axis=2))


def test_decode_errors_name_the_index(benchmark: BinBenchmark) -> None:
    with pytest.raises(FormatError, match=r"cannot decode.*index 7"):
        decode_image(b"\x00garbage-bytes", 7)
    with pytest.raises(FormatError, match=r"lfw\.bin: empty image data \(at index 3\)"):
        decode_image(b"", 3, source="lfw.bin")
    assert benchmark.decode(1).shape == (12, 10, 3)


def test_real_lfw_image_decodes() -> None:
    path = DATA / "lfw" / "Anthony_Hopkins_0001.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    image = decode_image(path.read_bytes(), 0, source=path)
    assert image.shape == (250, 250, 3)


# ------------------------------------------------------------------------- hostile pickles (issue 15, item 3)


def _reduce_pickle(module: bytes, name: bytes, args: bytes) -> bytes:
    """A protocol-2 pickle calling ``module.name(*args)``: ``args`` are the opcodes pushing a tuple."""
    return b"\x80\x02c" + module + b"\n" + name + b"\n" + args + b"R."


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        # bytearray(256 MiB) from a 30-byte file (the 62-byte file asked for 4 GiB)
        (_reduce_pickle(b"builtins", b"bytearray", b"J\x00\x00\x00\x10\x85"), r"bytearray\(int\) is not allowed"),
        # LONG_BINPUT memo index 2**20: CPython's unpickler would size its memo by it (2**29: 8 GB, minutes)
        (b"\x80\x04Nr\x00\x00\x10\x00.", "memo index 1048576 out of range"),
        # numpy _reconstruct preallocating a 256 MiB array
        (_reduce_pickle(b"numpy.core.multiarray", b"_reconstruct",
                        b"cnumpy\nndarray\nJ\x00\x00\x00\x10\x85C\x01b\x87"), "_reconstruct is only allowed"),
        # a length that claims more bytes than the file holds
        (b"\x80\x04\x8e" + (4 << 30).to_bytes(8, "little") + b"abc.", "not a readable pickle, or truncated"),
    ],
    ids=["bytearray-size", "memo-index", "reconstruct-shape", "length-past-end"],
)
def test_hostile_pickles_are_refused_before_allocating(tmp_path: Path, payload: bytes, pattern: str) -> None:
    _assert_refused(tmp_path / "hostile.bin", payload, pattern)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.bin"
    path.write_bytes(pickle.dumps((np.array([b"a", b"b"], dtype=object), [True]), protocol=2))
    with pytest.raises(FormatError, match="numpy arrays of object are not allowed"):
        read_bin(path)


def test_python2_style_bytearray_is_still_read(tmp_path: Path) -> None:
    images = _images(2)
    # Python 2 pickles bytearray as bytearray(<latin-1 text>, 'latin-1')
    parts = [b"c__builtin__\nbytearray\nX" + len(s := b.decode("latin-1").encode("utf-8")).to_bytes(4, "little") + s
             + b"X\x07\x00\x00\x00latin-1\x86R" for b in images]
    payload = b"\x80\x02(]q\x00(" + b"".join(parts) + b"e]q\x01(\x88et."
    path = tmp_path / "py2.bin"
    path.write_bytes(payload)
    bench = read_bin(path)
    assert bench.images == images and bench.issame.tolist() == [True]
