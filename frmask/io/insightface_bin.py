"""insightface benchmark ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

Format: one pickle of the 2-tuple ``(bins, issame_list)``. ``bins`` holds ``2N`` encoded images (JPEG or
PNG bytes); pair ``i`` is ``bins[2i]`` and ``bins[2i + 1]`` and ``issame_list[i]`` says whether both show
the same person.

Reading accepts the layouts found in the wild: files pickled by Python 2 (read with
``encoding="bytes"``), images stored as ``bytes``, ``bytearray`` or 1-D numpy ``uint8`` arrays, and
``issame_list`` as a list of bools or a numpy bool array. Reading never runs arbitrary code: the
unpickler only resolves the few globals that numpy arrays and scalars (of plain numbers, never objects)
and protocol-2 byte strings need, each through a wrapper that checks its arguments, and raises
:class:`FormatError` for anything else. Nothing a pickle asks for can exceed the file's own length: the
opcodes are walked first (every length must fit in the file, every memo index must be below the number of
objects read so far), ``bytearray`` is built only from bytes (never from a size) and numpy arrays only
from their data.

Writing produces one canonical layout: pickle protocol 4 of ``(list of bytes, list of bool)``. Because
reading keeps ``bytes`` objects as they are and ``issame`` converts back to Python bools,
``write_bin(read_bin(p))`` reproduces the bytes of ``p`` exactly whenever ``p`` was written by
:func:`write_bin`. Files in other layouts are normalised to the canonical one.
"""

from __future__ import annotations

import codecs
import importlib
import contextlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from frmask._atomic import atomic_path

from frmask.io.errors import FormatError

__all__ = ["PICKLE_PROTOCOL", "BinBenchmark", "FormatError", "read_bin", "write_bin", "decode_image"]

PICKLE_PROTOCOL = 4
"""Pickle protocol used by :func:`write_bin` (readable by Python >= 3.4)."""

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class BinBenchmark:
    """The pairs of a ``.bin`` benchmark.

    ``images`` holds ``2 * n_pairs`` encoded images (``bytes``); pair ``i`` is ``images[2 * i]`` and
    ``images[2 * i + 1]``. ``issame`` is a read-only 1-D numpy bool array of length ``n_pairs``.
    """

    images: list[bytes]
    issame: np.ndarray

    def __post_init__(self) -> None:
        images = list(self.images)
        for i, image in enumerate(images):
            if type(image) is not bytes:
                raise TypeError(f"images[{i}] must be bytes, got {type(image).__name__}")
        issame = np.array(self.issame)
        if issame.size == 0:
            issame = issame.astype(bool)
        if issame.dtype != np.bool_ or issame.ndim != 1:
            raise TypeError(f"issame must be a 1-D bool array, got dtype {issame.dtype} with shape {issame.shape}")
        if len(images) != 2 * len(issame):
            raise ValueError(f"{len(images)} images for {len(issame)} pairs; expected {2 * len(issame)}")
        issame.setflags(write=False)
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "issame", issame)

    @property
    def n_pairs(self) -> int:
        """Number of pairs (half the number of images)."""
        return len(self.issame)

    def decode(self, index: int) -> np.ndarray:
        """Decode image ``index`` as an RGB ``uint8`` array (see :func:`decode_image`)."""
        return decode_image(self.images[index], index)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinBenchmark):
            return NotImplemented
        return self.images == other.images and np.array_equal(self.issame, other.issame)

    __hash__ = None  # type: ignore[assignment]  # holds a numpy array


# --------------------------------------------------------------------------------------------- reading


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it (latin-1 only)."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, encoding, errors)


def _numpy_global(module: str, name: str) -> Callable[..., Any]:
    """Resolve a numpy helper under its NumPy 2 home (``numpy._core``), falling back to ``numpy.core``."""
    for home in (module.replace("numpy.core.", "numpy._core."), module.replace("numpy._core.", "numpy.core.")):
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(home), name)
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


_MAX_DIMS = 32  # numpy's own limit on array dimensions
_ARRAY_KINDS = "biuf"  # plain numbers: uint8 image bytes and bool flags (others get a precise error later)


def _safe_bytearray(*args: Any) -> bytearray:
    """``bytearray`` as pickles of byte strings call it: from bytes (protocols 2-4) or from a latin-1 str
    (Python 2); never from a size (``bytearray(4 << 30)`` would allocate 4 GiB from a 62-byte file)."""
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str) and \
            codecs.lookup(args[1]).name == "iso8859-1":
        return bytearray(args[0], args[1])
    kinds = ", ".join(type(a).__name__ for a in args)
    raise pickle.UnpicklingError(f"bytearray({kinds}) is not allowed (a .bin builds byte strings only from bytes)")


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    """``numpy.dtype`` limited to plain numbers (never objects, records or sub-arrays)."""
    if not isinstance(spec, (str, bytes)):
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not allowed")
    dtype = np.dtype(spec.decode("latin-1") if isinstance(spec, bytes) else spec)
    _check_dtype(dtype)
    return dtype


def _check_dtype(dtype: Any) -> None:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise pickle.UnpicklingError(f"numpy arrays of {dtype} are not allowed (a .bin holds uint8 images and "
                                     f"bool flags)")


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as ``ndarray.__reduce__`` calls it: an empty plain array, whose contents come
    with its state (numpy checks the data's length against the shape); never a preallocated large one."""
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise pickle.UnpicklingError("numpy _reconstruct is only allowed for an empty plain ndarray")
    return np.ndarray((0,), dtype=np.uint8)


def _safe_scalar(dtype: Any, *args: Any) -> Any:
    _check_dtype(dtype)
    return _numpy_global("numpy._core.multiarray", "scalar")(dtype, *args)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    _check_dtype(dtype)
    if not isinstance(shape, tuple) or len(shape) > _MAX_DIMS:
        raise pickle.UnpicklingError("numpy _frombuffer with a bad shape")
    return _numpy_global("numpy._core.numeric", "_frombuffer")(buf, dtype, shape, order)


_NUMPY_HELPERS = {
    ("multiarray", "_reconstruct"): _safe_reconstruct,  # ndarray.__reduce__ (protocols 0-4)
    ("multiarray", "scalar"): _safe_scalar,  # numpy scalars such as numpy.bool_
    ("numeric", "_frombuffer"): _safe_frombuffer,  # ndarray.__reduce_ex__ (protocol 5)
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only what a ``.bin`` needs: byte strings, numpy arrays and scalars of plain
    numbers, each through a wrapper that checks its arguments, so that none allocates more than the file
    holds."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _safe_dtype
        if module in ("builtins", "__builtin__") and name == "bytearray":
            return _safe_bytearray
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        for home in ("numpy.core.", "numpy._core."):
            if module.startswith(home) and (module[len(home):], name) in _NUMPY_HELPERS:
                return _NUMPY_HELPERS[module[len(home):], name]
        raise FormatError(f"pickle refers to {module}.{name}, which a .bin benchmark never needs")


_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def _prescan(data: bytes, path: Path) -> None:
    """Walk the pickle's opcodes without building anything, so that a small file cannot make the unpickler
    allocate much more than its own length: every length-prefixed argument must fit in the file
    (:func:`pickletools.genops` checks), and every memo index must be below the number of opcodes read so
    far (CPython's unpickler sizes its memo by the largest index: a 9-byte pickle could claim 8 GB)."""
    import pickletools

    try:
        for count, (op, arg, pos) in enumerate(pickletools.genops(data), start=1):
            if op.name in _MEMO_PUTS and not 0 <= int(arg) < count:
                raise FormatError(f"pickle memo index {arg} out of range (a .bin of this length has fewer "
                                  f"objects)", path=path, offset=pos)
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - genops raises ValueError (and others) on malformed data
        raise FormatError(f"not a readable pickle, or truncated ({type(exc).__name__}: {exc})", path=path) from None


def _unpickle(data: bytes, path: Path) -> Any:
    _prescan(data, path)
    stream = io.BytesIO(data)
    try:
        obj = _RestrictedUnpickler(stream, encoding="bytes").load()
    except FormatError as exc:
        raise FormatError(str(exc), path=path) from None
    except Exception as exc:  # noqa: BLE001 - any failure inside the unpickler means a bad file
        raise FormatError(
            f"not a readable pickle, or truncated ({type(exc).__name__}: {exc})", path=path
        ) from exc
    if stream.tell() != len(data):
        raise FormatError(f"{len(data) - stream.tell()} unexpected bytes after the pickle", path=path,
                          offset=stream.tell())
    return obj


def _image_bytes(item: Any, index: int, path: Path) -> bytes:
    """One element of ``bins`` as ``bytes`` (bytes, bytearray, memoryview or a 1-D uint8 array)."""
    if type(item) is bytes:
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
        return item.tobytes()
    if isinstance(item, np.ndarray):
        kind = f"numpy array of {item.dtype} with shape {item.shape}"
    else:
        kind = type(item).__name__
    raise FormatError(f"image is a {kind}, expected encoded image bytes", path=path, index=index)


def _issame_array(value: Any, path: Path) -> np.ndarray:
    """``issame_list`` as a bool array: a numpy bool array, or a list/tuple of bools or numpy bools."""
    if isinstance(value, np.ndarray):
        if value.dtype != np.bool_ or value.ndim != 1:
            raise FormatError(f"issame_list is a numpy array of {value.dtype} with shape {value.shape}, "
                              "expected 1-D bool", path=path)
        return value
    if not isinstance(value, (list, tuple)):
        raise FormatError(f"issame_list is a {type(value).__name__}, expected a list of bools", path=path)
    for i, flag in enumerate(value):
        if not isinstance(flag, (bool, np.bool_)):
            raise FormatError(f"issame_list element is a {type(flag).__name__}, expected bool", path=path, index=i)
    return np.array(value, dtype=bool)


def read_bin(path: PathLike) -> BinBenchmark:
    """Read an insightface ``.bin`` benchmark; raise :class:`FormatError` naming the file on any defect.

    A file of 0 pairs is such a defect (nothing could be scored or masked). The whole file is read into
    memory first (benchmark files are tens of MB).
    """
    path = Path(path)
    obj = _unpickle(path.read_bytes(), path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        shape = f"{type(obj).__name__} of length {len(obj)}" if isinstance(obj, (tuple, list)) else type(obj).__name__
        raise FormatError(f"pickle holds a {shape}, expected the 2-tuple (bins, issame_list)", path=path)
    bins, issame_value = obj
    if not isinstance(bins, (list, tuple)):
        raise FormatError(f"bins is a {type(bins).__name__}, expected a list of encoded images", path=path)
    issame = _issame_array(issame_value, path)
    if len(bins) != 2 * len(issame):
        raise FormatError(f"{len(bins)} images for {len(issame)} pairs; expected {2 * len(issame)}", path=path)
    if not issame.size:
        raise FormatError("holds 0 pairs (an empty benchmark): there is nothing to score or mask", path=path)
    images = [_image_bytes(item, i, path) for i, item in enumerate(bins)]
    return BinBenchmark(images, issame)


# --------------------------------------------------------------------------------------------- writing


def write_bin(path: PathLike, benchmark: BinBenchmark) -> None:
    """Write ``benchmark`` as pickle protocol 4 of ``(list of bytes, list of bool)``, atomically.

    The pickle is streamed into a temporary file in the destination folder (the same bytes as
    ``pickle.dumps``, without a second in-memory copy of the benchmark), which is fsynced and then renamed
    over ``path``; on any error the temporary file is removed and ``path`` is left as it was.
    """
    if not isinstance(benchmark, BinBenchmark):
        raise TypeError(f"benchmark must be a BinBenchmark, got {type(benchmark).__name__}")
    payload = (list(benchmark.images), [bool(flag) for flag in benchmark.issame])
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        pickle.dump(payload, f, protocol=PICKLE_PROTOCOL)


# -------------------------------------------------------------------------------------------- decoding


def decode_image(data: bytes, index: int | None = None, *, source: PathLike | None = None) -> np.ndarray:
    """Decode JPEG/PNG bytes to an RGB ``uint8`` array of shape ``(H, W, 3)``.

    Uses ``cv2.imdecode`` with ``IMREAD_COLOR`` (as MXNet's ``imdecode`` does): grey images are
    replicated to three channels, an alpha channel is dropped, 16-bit images are reduced to 8 bits and
    the EXIF orientation is applied. ``index`` and ``source`` only serve the error message. An image whose
    header claims more pixels than :func:`frmask.io.images.max_pixels` is refused before decoding.
    A truncated JPEG may still decode (libjpeg fills the missing rows) and is not reported.
    """
    import cv2

    from frmask.io.images import check_pixels

    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise FormatError("empty image data", path=source, index=index)
    check_pixels(data, path=source, index=index)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FormatError(f"cannot decode image ({exc})", path=source, index=index) from exc
    if bgr is None:
        raise FormatError(f"cannot decode image ({buf.size} bytes, not a valid JPEG/PNG)", path=source, index=index)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
