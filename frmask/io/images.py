"""Image headers: the size an encoded image claims, read before decoding, and the pixel limit.

A small file can claim a huge image (a PNG header saying 60000x60000 is 33 bytes; decoding it would need
10 GB). Every decode in frmask first reads the claimed width and height from the header and refuses images
above :data:`MAX_PIXELS` with a :class:`~frmask.io.errors.FormatError`, which callers treat as a failure to
acquire that one image. PNG and JPEG headers are read here directly (a few microseconds: they are the
formats of benchmark ``.bin`` files, read in bulk); other formats through Pillow's lazy ``Image.open``.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

from frmask.io.errors import FormatError

MAX_PIXELS = 1 << 26
"""Largest image decoded: 67,108,864 pixels (e.g. 8192 x 8192, 192 MiB as RGB); the environment variable
``FRMASK_MAX_IMAGE_PIXELS`` sets another limit."""

_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # frame headers
_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}  # markers without a length field


def max_pixels() -> int:
    """The pixel limit in force (:data:`MAX_PIXELS` unless ``FRMASK_MAX_IMAGE_PIXELS`` says otherwise)."""
    value = os.environ.get("FRMASK_MAX_IMAGE_PIXELS")
    if not value:
        return MAX_PIXELS
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FRMASK_MAX_IMAGE_PIXELS={value!r} is not a whole number of pixels") from None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        if marker in _SOF:
            if pos + 9 > end:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return (width, height) if height else None  # height 0: given later (DNL); the decoder decides
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


def _pillow_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.size
        except Image.DecompressionBombError:
            return (1 << 31, 1)  # Pillow's own limit (far above ours) refused it: too large either way
        except Exception:  # noqa: BLE001 - not an image Pillow knows: the decoder will say
            return None


def claimed_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` an encoded image's header claims, without decoding it; None when unknown."""
    if data[:8] == _PNG:
        return struct.unpack_from(">II", data, 16) if len(data) >= 24 and data[12:16] == b"IHDR" else None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return _pillow_size(data)


def check_pixels(data: bytes, *, path=None, index: int | None = None, limit: int | None = None) -> None:
    """FormatError (naming ``path`` / ``index``) when the image's header claims more than ``limit`` pixels
    (default :func:`max_pixels`; a caller checking many images reads it once)."""
    size = claimed_size(data)
    if size is not None and size[0] * size[1] > (limit := max_pixels() if limit is None else limit):
        raise FormatError(f"image header claims {size[0]}x{size[1]} pixels, more than the {limit:,} frmask "
                          f"decodes (FRMASK_MAX_IMAGE_PIXELS sets the limit)", path=path, index=index)


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def is_png(data: bytes) -> bool:
    return data[:8] == _PNG


def encode_rgb(rgb, *, jpeg: bool = False, quality: int = 95, where: str = "image") -> bytes:
    """uint8 RGB ``(H, W, 3)`` as JPEG (``quality``) or PNG bytes (written in BGR order, as files are)."""
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]) if jpeg else cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError(f"{where}: image encoding failed")
    return buf.tobytes()


def stored_bytes(data: bytes, rgb, where: str = "image") -> bytes:
    """The bytes frmask stores for an encoded image ``data`` (already decoded to ``rgb``) in a ``.bin`` or
    ``.rec``: a JPEG or PNG file byte for byte (what insightface's packs hold; nothing is re-compressed),
    any other format (BMP, PGM, TIFF, WebP, ...) re-encoded losslessly as PNG, a grey image kept grey."""
    if is_jpeg(data) or is_png(data):
        return data
    import cv2
    import numpy as np

    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if grey is not None and grey.ndim == 2 and grey.dtype == np.uint8:
        return cv2.imencode(".png", grey)[1].tobytes()
    return encode_rgb(rgb, where=where)
