"""The gallery of the errors of a run: the pairs a reviewer should look at, saved when the run is written.

:func:`select_errors` picks the ``k`` lowest-scoring genuine pairs and the ``k`` highest-scoring impostor
pairs; :func:`write_gallery` saves both images of each as the model saw them (re-prepared by
:func:`frmask.embed.pipeline.prepare_images`: decoded, masked where the protocol masks on the fly,
aligned to the model's input) as small PNGs under ``gallery/``, thumbnails of the failures to acquire
(the original image, at most :data:`THUMB` px a side), and the index ``gallery.json``:

``{"k", "threshold": {"key": "fmr100", "scenario": "all", "value"}, "size": [w, h], "genuine": [pair...],
"impostor": [pair...], "failures": [{"image", "reason", "thumb"}...], "n_failures"}`` where a pair is
``{"rank", "pair", "image_a", "image_b", "subject_a", "subject_b", "score", "scenarios", "thumb_a",
"thumb_b", "missing_a", "missing_b"}`` (thumb paths relative to the run folder; ``missing_*`` the reason
when an image could not be prepared again, else null). Scores are the values written to ``scores.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GALLERY_DIR = "gallery"
GALLERY_INDEX = "gallery.json"
DEFAULT_K = 12
THUMB = 112  # longest side of a failure thumbnail, in pixels
FTA_THUMBS = 48  # failures to acquire shown with a thumbnail (all of them are in failures.csv)
SCORE_FORMAT = "%.9g"  # how scores.csv writes scores; the gallery keeps exactly these values


def csv_scores(scores) -> np.ndarray:
    """``scores`` rounded as ``scores.csv`` writes them (:data:`SCORE_FORMAT`), NaN kept."""
    s = np.asarray(scores, dtype=np.float64)
    return np.array([float(SCORE_FORMAT % v) for v in s], dtype=np.float64)


def select_errors(scores, genuine, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` lowest-scoring genuine pairs and the ``k`` highest-scoring impostor pairs.

    Scores are similarities (a higher score is more likely genuine), so these are the genuine pairs
    closest to a false non-match and the impostor pairs closest to a false match. Pairs with a NaN score
    (a failure to acquire) are left out. Ties are broken by the pair index, lowest first, so the choice
    is deterministic. Genuine indices come in ascending score, impostor indices in descending score.
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(genuine, dtype=bool)
    if s.shape != g.shape:
        raise ValueError(f"scores and genuine differ in length ({s.size} and {g.size})")
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    idx = np.arange(s.size)
    ok = ~np.isnan(s)
    gi, ii = idx[ok & g], idx[ok & ~g]
    low = gi[np.lexsort((gi, s[gi]))][:k]
    high = ii[np.lexsort((ii, -s[ii]))][:k]
    return low, high


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode a gallery thumbnail")
    return buf.tobytes()


def _thumbnail(data: bytes) -> np.ndarray | None:
    """The image ``data`` shrunk to at most :data:`THUMB` px a side, or None when it cannot be decoded."""
    import cv2

    from frmask.io.errors import FormatError
    from frmask.io.insightface_bin import decode_image

    try:
        image = decode_image(data)
    except FormatError:
        return None
    h, w = image.shape[:2]
    scale = THUMB / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return image


def write_gallery(folder, protocol, scores, *, scenarios=None, failures=None, k: int = DEFAULT_K,
                  size=(112, 112), detector: str = "yunet", threshold: float | None = None,
                  threshold_key: str = "fmr100", threshold_scenario: str = "all", threads: int = 2) -> dict:
    """Write ``gallery/`` and ``gallery.json`` into the run folder ``folder`` (module docstring).

    ``protocol``: a :class:`~frmask.protocols.Protocol` (its pairs, subjects and image bytes);
    ``scores``: one per pair (NaN for a failure to acquire); ``scenarios``: each pair's scenario names
    (default: from the protocol); ``failures``: ``{image index: reason}``; ``size`` and ``detector``: how
    the model's crops were prepared. Returns the index that was written.
    """
    from frmask.embed.pipeline import prepare_images

    folder = Path(folder)
    s = csv_scores(scores)
    low, high = select_errors(s, protocol.genuine, k)
    if scenarios is None:
        names = [n for n in protocol.scenario_names() if n != "all"]
        scenarios = [[n for n in names if protocol.scenarios[n][p]] for p in range(protocol.n_pairs)]
    images = sorted({int(i) for p in (*low, *high) for i in (protocol.pair_a[p], protocol.pair_b[p])})
    crops = dict(zip(images, prepare_images(protocol, images, tuple(size), detector=detector, threads=threads,
                                            unreadable_ok=True)))
    (folder / GALLERY_DIR).mkdir(exist_ok=True)

    def pair_entry(kind: str, rank: int, p: int) -> dict:
        entry = {"rank": rank, "pair": p, "image_a": protocol.images[protocol.pair_a[p]].key,
                 "image_b": protocol.images[protocol.pair_b[p]].key,
                 "subject_a": None if protocol.subjects_a is None else str(protocol.subjects_a[p]),
                 "subject_b": None if protocol.subjects_b is None else str(protocol.subjects_b[p]),
                 "score": float(s[p]), "scenarios": list(scenarios[p])}
        for side, index in (("a", protocol.pair_a[p]), ("b", protocol.pair_b[p])):
            crop = crops[int(index)]
            entry[f"thumb_{side}"] = entry[f"missing_{side}"] = None
            if isinstance(crop, str):
                entry[f"missing_{side}"] = crop
            else:
                rel = f"{GALLERY_DIR}/{kind}-{rank:02d}-{side}.png"
                (folder / rel).write_bytes(_png(crop))
                entry[f"thumb_{side}"] = rel
        return entry

    fta = []
    for n, (i, reason) in enumerate(sorted((failures or {}).items())):
        item = {"image": protocol.images[i].key, "reason": reason, "thumb": None}
        if n < FTA_THUMBS:
            try:
                thumb = _thumbnail(protocol.image_bytes(i))
            except OSError:
                thumb = None
            if thumb is not None:
                item["thumb"] = f"{GALLERY_DIR}/fta-{n:02d}.png"
                (folder / item["thumb"]).write_bytes(_png(thumb))
        fta.append(item)
    index = {"k": k, "threshold": {"key": threshold_key, "scenario": threshold_scenario,
                                   "value": None if threshold is None or not np.isfinite(threshold) else float(threshold)},
             "size": list(size),
             "genuine": [pair_entry("genuine", r, int(p)) for r, p in enumerate(low, start=1)],
             "impostor": [pair_entry("impostor", r, int(p)) for r, p in enumerate(high, start=1)],
             "failures": fta[:FTA_THUMBS], "n_failures": len(fta)}
    (folder / GALLERY_INDEX).write_text(json.dumps(index, indent=2, allow_nan=False) + "\n")
    return index


def gallery_of_result(result, folder, *, k: int = DEFAULT_K) -> dict:
    """:func:`write_gallery` for a :class:`~frmask.scoring.ScoreResult` (the model's input size and the
    detector come from its provenance; the threshold is the FMR100 threshold of ``all``)."""
    run = result.run or {}
    size = tuple(run.get("model", {}).get("profile", {}).get("size") or (112, 112))
    report = result.reports.get("all")
    threshold = None if report is None else report.to_dict().get("fmr100_threshold")
    return write_gallery(folder, result.protocol, result.scores, failures=result.failures, k=k, size=size,
                         detector=run.get("detector", "yunet"), threshold=threshold)
