"""Forged and random image files for the tests (importable: tests/ is on sys.path, see conftest)."""

import struct
import zlib


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (with a few bytes of image data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def random_identity_folders(root, identities: int, per_identity: int, seed: int, prefix: str = "id") -> None:
    """``root/<prefix><i>/<k>.png``: random 112x112 colour images (an identity-folder tree for protocol tests)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for identity in range(identities):
        (root / f"{prefix}{identity}").mkdir(parents=True)
        for k in range(per_identity):
            cv2.imwrite(str(root / f"{prefix}{identity}" / f"{k}.png"),
                        rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
