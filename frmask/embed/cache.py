"""An on-disk embedding cache keyed by the model and the image bytes, so re-scoring is instant.

One SQLite file (transactions make every write atomic, and concurrent runs are safe). A row holds, for a
*model key* and an *image key*, either the float32 embedding or the reason the image failed (no face
found, unreadable file), so failures are not recomputed either.

- model key: SHA-256 of the ONNX bytes plus everything else that changes an embedding: the model profile,
  flip test, detector and its options, and :data:`PIPELINE_VERSION` (bumped whenever preprocessing changes).
- image key: SHA-256 of the encoded image bytes plus how the image is aligned (``none``/``detect``).

Default location: ``$FRMASK_CACHE`` if set, else ``$XDG_CACHE_HOME/frmask/embeddings.sqlite`` (XDG default
``~/.cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np

PIPELINE_VERSION = 1
IN_CHUNK = 900  # keys per IN (...) query of get_many (below SQLite's 999-variable limit of old versions)


def default_cache_path() -> Path:
    """Where the cache lives unless told otherwise (module docstring)."""
    if os.environ.get("FRMASK_CACHE"):
        return Path(os.environ["FRMASK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "frmask" / "embeddings.sqlite"


def model_key(model_bytes: bytes, **settings) -> str:
    """Hex key of a model file and the settings that change its embeddings (JSON-serialisable values)."""
    h = hashlib.sha256(model_bytes)
    h.update(json.dumps({**settings, "pipeline": PIPELINE_VERSION}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def image_key(data: bytes, align: str) -> str:
    """Hex key of an image's encoded bytes and its alignment mode."""
    h = hashlib.sha256(data)
    h.update(b"\0align=" + align.encode())
    return h.hexdigest()


class EmbeddingCache:
    """``get_many``/``put_many`` over (model key, image key) -> embedding or failure reason."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            # WAL: a write is one append and readers never block it; NORMAL sync is safe under WAL (a crash
            # can lose the last batches, never corrupt the file) and avoids an fsync per batch
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, image TEXT NOT NULL, "
                             "dim INTEGER, vector BLOB, failure TEXT, PRIMARY KEY (model, image))")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise OSError(f"{self.path}: cannot use as the embedding cache ({exc}); remove it or pass --no-cache") from None

    def get_many(self, model: str, images: list[str]) -> dict[str, np.ndarray | str]:
        """The cached entries among ``images``: key -> float32 vector, or the failure reason (str); one
        ``IN (...)`` query per :data:`IN_CHUNK` keys."""
        found: dict[str, np.ndarray | str] = {}
        unique = list(dict.fromkeys(images))
        for first in range(0, len(unique), IN_CHUNK):
            chunk = unique[first:first + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            self._collect(self._db.execute(f"SELECT image, dim, vector, failure FROM embeddings WHERE model = ? AND "
                                           f"image IN ({marks})", [model, *chunk]), found)
        return found

    @staticmethod
    def _collect(rows, found: dict) -> None:
        for image, dim, vector, failure in rows:
            if failure is not None:
                found[image] = failure
            elif vector is not None and len(vector) == 4 * dim:
                found[image] = np.frombuffer(vector, dtype="<f4").copy()

    def put_many(self, model: str, entries: dict[str, np.ndarray | str]) -> None:
        """Store embeddings (float32 vectors) and failure reasons (str) in one transaction."""
        rows = []
        for image, value in entries.items():
            if isinstance(value, str):
                rows.append((model, image, None, None, value))
            else:
                v = np.ascontiguousarray(value, dtype="<f4")
                rows.append((model, image, int(v.size), v.tobytes(), None))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
