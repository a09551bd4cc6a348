"""Embed every image of a protocol: read, decode, align (detect when needed), batch, infer, cache.

Images are prepared by a few threads (OpenCV and onnxruntime release the GIL) a bounded number of batches
ahead of the model, so decoding and alignment overlap inference. The order of the results never depends
on the threads: each image's crop is a pure function of its bytes.

Alignment per image (:class:`~frmask.protocols.ImageEntry` ``align``):

- ``none``: the image is an aligned crop of the ArcFace template (at any size); it is brought to the
  model's input size by the similarity that maps the template at its size onto the template at the
  model's size (the identity when the sizes agree);
- ``detect``: the largest face found by the detector gives five landmarks, aligned to the model's input;
- ``auto``: ``none`` for a 112x112 image, ``detect`` otherwise.

An image that cannot be read, or where no face is found, is a failure to acquire (FTA): its embedding
row is NaN, its reason is kept, and the pairs that use it get a NaN score for the metrics' FTA policy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from frmask.embed.cache import EmbeddingCache, image_key, model_key


@dataclass
class ProtocolEmbeddings:
    """Embeddings of a protocol's images (NaN rows for failures) and what happened: ``n_cached`` found in the
    cache, ``n_computed`` embedded, ``n_repeated`` copies of an image met earlier in the same protocol (the same
    bytes and alignment: a ``.bin`` stores an image once per pair it is in; under torchrun, within a rank's
    share)."""

    embeddings: np.ndarray
    failures: dict[int, str] = field(default_factory=dict)
    n_cached: int = 0
    n_computed: int = 0
    seconds: float = 0.0
    n_repeated: int = 0


class _Preparer:
    """Turns image bytes into a crop of the model's input size, or a failure reason (thread-safe)."""

    def __init__(self, size: tuple[int, int], detector: str, detector_options: dict | None):
        self.size = size
        self.detector_name = detector
        self.detector_options = detector_options or {}
        self._local = threading.local()

    def _detector(self):
        det = getattr(self._local, "detector", None)
        if det is None:
            from frmask.faces.detect import get_detector

            det = self._local.detector = get_detector(self.detector_name, **self.detector_options)
        return det

    def __call__(self, data: bytes, align: str, index: int) -> np.ndarray | str:
        from frmask.faces.align import align_face, template_for
        from frmask.io.errors import FormatError
        from frmask.io.insightface_bin import decode_image
        from frmask.protocols.base import FTA_PREFIX

        if data.startswith(FTA_PREFIX):  # the protocol's reader already found the failure (e.g. no face to mask)
            return data[len(FTA_PREFIX):].decode("utf-8", "replace")
        try:
            image = decode_image(data)
        except FormatError as exc:
            return f"unreadable image: {exc}"
        h, w = image.shape[:2]
        if align == "auto":
            align = "none" if (w, h) == (112, 112) else "detect"
        if align == "none":
            if (w, h) == self.size:
                return image
            return align_face(image, template_for((w, h)), size=self.size, margin=0.0)
        face = self._detector().detect_largest(image)
        if face is None:
            return "no face detected"
        try:
            return align_face(image, face.landmarks, size=self.size)
        except ValueError as exc:
            return f"cannot align: {exc}"


def prepare_images(protocol, indices, size: tuple[int, int], *, detector: str = "yunet",
                   detector_options: dict | None = None, threads: int = 2,
                   unreadable_ok: bool = False) -> list[np.ndarray | str]:
    """The crops of images ``indices`` of ``protocol`` exactly as the model is fed them (read, masked where
    the protocol masks on the fly, aligned to ``size``), or a failure reason for each, in the order given.
    A file that cannot be read raises, or with ``unreadable_ok`` becomes a reason too."""
    prepare = _Preparer(tuple(size), detector, detector_options)

    def one(i):
        try:
            data = protocol.image_bytes(i)
        except OSError as exc:
            if not unreadable_ok:
                raise
            return f"cannot read the file: {exc}"
        return prepare(data, protocol.images[i].align, i)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(one, indices))


def embed_protocol(protocol, embedder, *, detector: str = "yunet", detector_options: dict | None = None,
                   cache: EmbeddingCache | None = None, threads: int = 2, progress=None) -> ProtocolEmbeddings:
    """Embed every image of ``protocol`` with ``embedder`` (an :class:`~frmask.embed.OnnxEmbedder`).

    ``cache``: an :class:`EmbeddingCache` (None: no cache). ``threads``: image-preparation threads.
    ``progress``: called with the number of images finished after each batch (e.g. a tqdm ``update``).

    Under ``torchrun`` (a :mod:`frmask.distributed` session of K > 1 processes) each rank reads, aligns and
    embeds its contiguous share of the images (:func:`frmask.distributed.shard`), looking its share up in
    the cache first; the shares are gathered so that every rank returns what one process would, and
    rank 0 alone writes the new entries of all ranks to the cache, in one transaction after the gather (so
    the SQLite file never has two writers; the other ranks only read it). A rank's error (an unreadable
    file) is raised on every rank. ``progress`` counts rank 0's share, then the others' at the gather.
    """
    from frmask import distributed

    t0 = time.perf_counter()
    n = len(protocol.images)
    mkey = model_key(embedder.model_bytes, profile=embedder.profile, flip=embedder.flip, detector=detector,
                     detector_options=detector_options or {})
    if distributed.world_size() == 1:
        part = _embed_part(protocol, embedder, range(n), mkey, detector, detector_options, cache, True, threads,
                           progress)
        return _assemble(n, part, time.perf_counter() - t0)
    mine = distributed.my_shard(n)

    def my_part():
        part = _embed_part(protocol, embedder, mine, mkey, detector, detector_options, cache, False, threads,
                           progress)
        return part, _assemble(len(mine), part, 0.0)

    part, local = distributed.checked(my_part)
    dims = {d for d in distributed.gather_objects(local.embeddings.shape[1]) if d}
    if len(dims) > 1:
        raise ValueError(f"embeddings of different sizes {sorted(dims)} (a stale cache entry?)")
    dim = dims.pop() if dims else 0
    rows = local.embeddings if local.embeddings.shape[1] == dim else np.full((len(mine), dim), np.nan, np.float32)
    shares = distributed.gather_objects((mine.start, local.failures, local.n_cached, local.n_repeated, part.fresh))
    embeddings = np.concatenate(distributed.gather_arrays(rows))
    failures, n_cached, n_repeated, fresh = {}, 0, 0, {}
    for first, fails, cached, repeated, new in shares:
        failures.update({first + i: reason for i, reason in fails.items()})
        n_cached += cached
        n_repeated += repeated
        fresh.update({key: first + i for key, i in new.items()})
    if progress is not None:
        progress(n - len(mine))
    if cache is not None:
        distributed.on_main(lambda: cache.put_many(mkey, {key: failures.get(i, embeddings[i])
                                                          for key, i in fresh.items()}))
    return ProtocolEmbeddings(embeddings, failures, n_cached, n - n_cached - n_repeated, time.perf_counter() - t0,
                              n_repeated)


@dataclass
class _Part:
    """One process's images: ``results[k]`` (vector or failure reason) of the k-th index it was given, how
    many came from the cache, how many repeated an image met earlier in the part, and the image keys it
    computed -> their position k (for the cache)."""

    results: list
    n_cached: int
    fresh: dict[str, int]
    n_repeated: int = 0


READ_CHUNK = 2048  # images read and looked up in the cache at a time: the image bytes in memory are O(this)


def _embed_part(protocol, embedder, indices, mkey: str, detector: str, detector_options, cache, write: bool,
                threads: int, progress) -> _Part:
    """Embed the images ``indices`` (cache read; cache written batch by batch when ``write``).

    The images stream: they are read :data:`READ_CHUNK` at a time, keyed and looked up in the cache, and
    the bytes of those to embed are held only until their batch is prepared, so memory stays bounded for
    a million images. The batches are those of the whole part's to-do list in order (the same as reading
    everything first), whatever the chunking.
    """
    size = tuple(embedder.profile.size)
    indices = list(indices)
    aligns = [protocol.images[i].align for i in indices]

    def read(i: int) -> bytes:
        try:
            return protocol.image_bytes(i)
        except OSError as exc:  # e.g. an I/O error: say which file
            entry = protocol.images[i]
            raise OSError(f"{getattr(entry, 'path', None) or entry.key}: cannot read the image ({exc})") from None

    result: list[np.ndarray | str | None] = [None] * len(indices)
    ikeys: list[str] = [""] * len(indices)
    first: dict[str, int] = {}  # image key -> the first position with it that is not cached: embedded once
    counts = {"cached": 0, "repeated": 0}
    batch = embedder.batch_size if embedder.fixed_batch is None else max(embedder.batch_size, 32)

    def todo_batches(pool):
        """Batches of (position, bytes) to embed, in position order; cached and repeated positions settled."""
        queue: list[tuple[int, bytes]] = []
        for lo in range(0, len(indices), READ_CHUNK):
            hi = min(lo + READ_CHUNK, len(indices))
            blobs = list(pool.map(read, indices[lo:hi]))
            for k in range(lo, hi):
                ikeys[k] = image_key(blobs[k - lo], aligns[k])
            ask = [ikeys[k] for k in range(lo, hi) if ikeys[k] not in first]
            found = cache.get_many(mkey, ask) if cache is not None and ask else {}
            settled = 0
            for k in range(lo, hi):
                key = ikeys[k]
                if key in first:
                    counts["repeated"] += 1
                    settled += 1
                elif key in found:
                    result[k] = found[key]
                    counts["cached"] += 1
                    settled += 1
                else:
                    first[key] = k
                    queue.append((k, blobs[k - lo]))
            del blobs
            if progress is not None and settled:
                progress(settled)
            while len(queue) >= batch:
                yield queue[:batch]
                del queue[:batch]
        if queue:
            yield queue

    prepare = _Preparer(size, detector, detector_options)

    def prepare_chunk(chunk):
        return [prepare(blob, aligns[k], indices[k]) for k, blob in chunk]

    with ThreadPoolExecutor(max(1, threads)) as reader, ThreadPoolExecutor(max(1, threads)) as pool:
        pending: deque = deque()
        ahead = max(2, 2 * threads)
        it = todo_batches(reader)
        for chunk in it:
            pending.append(([k for k, _ in chunk], pool.submit(prepare_chunk, chunk)))
            if len(pending) >= ahead:
                break
        while pending:
            chunk, future = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(([k for k, _ in nxt], pool.submit(prepare_chunk, nxt)))
            prepared = future.result()
            ok = [j for j, p in enumerate(prepared) if not isinstance(p, str)]
            fresh: dict[str, np.ndarray | str] = {}
            if ok:
                vectors = embedder.embed(np.stack([prepared[j] for j in ok]))
                for j, v in zip(ok, vectors):
                    result[chunk[j]] = v
                    fresh[ikeys[chunk[j]]] = v
            for j, p in enumerate(prepared):
                if isinstance(p, str):
                    result[chunk[j]] = p
                    fresh[ikeys[chunk[j]]] = p
            if cache is not None and write:
                cache.put_many(mkey, fresh)
            if progress is not None:
                progress(len(chunk))
    for k in range(len(indices)):
        if result[k] is None:  # a repeat: the same bytes as a position embedded above
            result[k] = result[first[ikeys[k]]]
    return _Part(result, counts["cached"], dict(first), counts["repeated"])


def _assemble(n: int, part: _Part, seconds: float) -> ProtocolEmbeddings:
    """The (n, dim) float32 matrix (NaN rows for failures) and the failures of a part's results."""
    result = part.results
    dims = {len(r) for r in result if not isinstance(r, str)}
    if len(dims) > 1:
        raise ValueError(f"embeddings of different sizes {sorted(dims)} (a stale cache entry?)")
    dim = dims.pop() if dims else 0
    embeddings = np.full((n, dim), np.nan, np.float32)
    failures = {}
    for i, r in enumerate(result):
        if isinstance(r, str):
            failures[i] = r
        else:
            embeddings[i] = r
    return ProtocolEmbeddings(embeddings, failures, part.n_cached, n - part.n_cached - part.n_repeated, seconds,
                              part.n_repeated)


def pair_scores(protocol, embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair (float64; NaN where either image failed)."""
    a = embeddings[protocol.pair_a].astype(np.float64)
    b = embeddings[protocol.pair_b].astype(np.float64)
    return np.einsum("ij,ij->i", a, b)
