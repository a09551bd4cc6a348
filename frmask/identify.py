"""1:N identification of a model on a gallery split: embed, search every probe in the gallery, report.

:func:`run_identify` is the library form of ``frmask identify``. The work is cut in two steps that can run
apart (on several processes, :mod:`frmask.distributed`):

1. :func:`score_probes` searches probes ``[a:b]`` in the gallery and returns their per-search results
   (:class:`~frmask.metrics.identification.SearchResults`): float32 matrix products with torch, one block of
   probes at a time (never more than a block x templates matrix), each template score folded into its
   identity's maximum (one column per enrolled identity), then reduced on the device to the mate's score and
   rank and the top score of each search (:func:`~frmask.metrics.identification.searches_from_counts` applies
   the rules).
2. :func:`identification_metrics` turns the results of all probes (concatenated in probe order with
   :meth:`SearchResults.concat`) into the ``identification`` figures, with subject-bootstrap intervals when
   asked.

Blocks start at multiples of ``block`` (:func:`probe_blocks`) and each is padded to at least
:data:`MIN_ROWS` rows, so the matrix product of a probe row takes the same path (and gives the same float32
bits) whichever blocks or processes it is scored in: shard by :func:`probe_blocks` ranges and the merged
results are identical to one pass. Under ``torchrun`` :func:`search_sharded` does that: each rank searches a
contiguous run of the blocks, the results are gathered in probe order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frmask.metrics.identification import (
    DEFAULT_FPIR_TARGETS,
    DEFAULT_MAX_RANK,
    SearchResults,
    identification_ci,
    identification_report,
    searches_from_counts,
)

BLOCK = 1024  # probes per block
MIN_ROWS = 64  # blocks are padded to this many rows: small products take another BLAS path (other rounding)
MAX_BLOCK_SCORES = 1 << 26  # at most this many (block x templates) float32 scores held at once (256 MB)


@dataclass
class Gallery:
    """The enrolled templates: L2-normalised float32 embeddings and the identity index of each, plus the
    gallery images that gave no template (not enrolled, counted)."""

    templates: np.ndarray
    identity: np.ndarray
    n_identities: int
    n_fta: int = 0


@dataclass
class IdentifyResult:
    """Per-search results, the ``identification`` figures, the failures to acquire and the provenance."""

    split: object
    results: SearchResults
    metrics: dict
    failures: dict[int, str]
    run: dict = field(default_factory=dict)


def build_gallery(embeddings: np.ndarray, split) -> Gallery:
    """The :class:`Gallery` of a split from the embeddings of its entries (NaN rows: failures)."""
    g = np.asarray(embeddings[:split.n_gallery], np.float32)
    ok = ~np.isnan(g).any(axis=1)
    if not ok.any():
        raise ValueError(f"{split.name}: no gallery image gave a template ({split.n_gallery} failures to acquire)")
    return Gallery(np.ascontiguousarray(g[ok]), split.gallery_identity[ok], split.n_identities,
                   int(np.count_nonzero(~ok)))


def probe_blocks(n: int, block: int = BLOCK) -> list[tuple[int, int]]:
    """The ranges ``[a, b)`` of the probe blocks: a = 0, block, 2 * block, ... (shard along them)."""
    return [(a, min(a + block, n)) for a in range(0, n, block)]


def _block_size(gallery: Gallery, block: int) -> int:
    return max(MIN_ROWS, min(block, MAX_BLOCK_SCORES // max(1, gallery.templates.shape[0])))


def score_probes(probes: np.ndarray, mate: np.ndarray, subject: np.ndarray, gallery: Gallery, *,
                 device: str = "cpu", block: int = BLOCK, progress=None) -> SearchResults:
    """Search probes in the gallery: ``probes`` (n x d float32 embeddings, NaN rows for failures to acquire),
    ``mate`` (their mate's identity index, -1 when non-mated) and ``subject`` (their identity, for the
    bootstrap). Scores are cosines (dot products of the normalised embeddings) computed in float32 on
    ``device``, block by block (module docstring); ``progress`` is called with the probes done per block."""
    import torch

    dev = torch.device(device)
    gal = torch.from_numpy(gallery.templates).to(dev)
    present, counts = np.unique(gallery.identity, return_counts=True)  # only enrolled identities get a column
    column = np.full(gallery.n_identities, -1, np.int64)
    column[present] = np.arange(present.size)
    gid = torch.from_numpy(column[gallery.identity]).to(dev)
    # the usual layout (K templates per identity, identity after identity): K-1 maximums of strided views
    per = int(counts[0]) if (np.diff(gallery.identity) >= 0).all() and (counts == counts[0]).all() else 0
    parts = []
    for a, b in probe_blocks(len(probes), _block_size(gallery, block)):
        chunk = np.asarray(probes[a:b], np.float32)
        fta = np.isnan(chunk).any(axis=1)
        rows = np.zeros((max(MIN_ROWS, b - a), chunk.shape[1]), np.float32)
        rows[:b - a] = np.where(fta[:, None], 0, chunk)
        scores = (torch.from_numpy(rows).to(dev) @ gal.T)[:b - a]
        if per:
            ids = scores[:, 0::per]
            for j in range(1, per):
                ids = torch.maximum(ids, scores[:, j::per])
        else:
            ids = torch.full((b - a, present.size), -torch.inf, device=dev)
            ids.scatter_reduce_(1, gid.expand(b - a, -1), scores, reduce="amax")
        mate_column = column[np.maximum(mate[a:b], 0)]  # -1: the mate has no template (scores -inf)
        mate_score = ids.gather(1, torch.from_numpy(np.maximum(mate_column, 0)).to(dev)[:, None])
        mate_score[torch.from_numpy(mate_column < 0).to(dev)] = -torch.inf
        count = (ids >= mate_score).sum(dim=1)
        parts.append(searches_from_counts(mate[a:b], subject[a:b], fta, mate_score[:, 0].cpu().numpy(),
                                          count.cpu().numpy(), ids.max(dim=1).values.cpu().numpy()))
        if progress is not None:
            progress(b - a)
    if not parts:
        raise ValueError("no probe to search")
    return SearchResults.concat(parts)


def search_sharded(probes: np.ndarray, mate: np.ndarray, subject: np.ndarray, gallery: Gallery, *,
                   device: str = "cpu", block: int = BLOCK, progress=None) -> SearchResults:
    """:func:`score_probes` of all probes, the probe blocks shared by the processes of a
    :mod:`frmask.distributed` session (rank r: a contiguous run of blocks, :func:`frmask.distributed.shard`)
    and the results gathered in probe order on every rank: the same results as one process (blocks start
    at the same multiples of the block size, module docstring). One process: :func:`score_probes`."""
    from frmask import distributed

    if distributed.world_size() == 1:
        return score_probes(probes, mate, subject, gallery, device=device, block=block, progress=progress)
    if len(probes) == 0:
        raise ValueError("no probe to search")
    blocks = probe_blocks(len(probes), _block_size(gallery, block))
    mine = distributed.my_shard(len(blocks))
    a, b = (blocks[mine.start][0], blocks[mine.stop - 1][1]) if len(mine) else (0, 0)
    part = distributed.checked(lambda: score_probes(probes[a:b], mate[a:b], subject[a:b], gallery, device=device,
                                                    block=block, progress=progress) if b > a else None)
    parts = [p for p in distributed.gather_objects(part) if p is not None]
    if progress is not None:
        progress(len(probes) - (b - a))
    return SearchResults.concat(parts)


def identification_metrics(results: SearchResults, *, max_rank: int = DEFAULT_MAX_RANK,
                           targets=DEFAULT_FPIR_TARGETS, ci: float | None = None, n_boot: int = 1000,
                           seed: int = 0) -> dict:
    """The ``identification`` figures of all searches (:func:`identification_report`), with the ``ci``-level
    subject-bootstrap intervals (:func:`identification_ci`) as ``rank1_ci``, ``cmc_ci``, per target
    ``fnir_ci`` and ``ci`` (the settings) when ``ci`` is given."""
    out = identification_report(results, max_rank=max_rank, targets=targets)
    if ci is not None:
        iv = identification_ci(results, level=ci, n_boot=n_boot, seed=seed, max_rank=max_rank, targets=targets)
        out["rank1_ci"], out["cmc_ci"] = iv["rank1"], iv["cmc"]
        for key, point in out["fnir_at_fpir"].items():
            point["fnir_ci"] = iv["fnir_at_fpir"].get(key)
        out["ci"] = {k: iv[k] for k in ("level", "n_boot", "seed", "method")}
    return out


def run_identify(embedder, split, *, model_name: str = "", detector: str = "yunet", cache=None, threads: int = 2,
                 progress=None, search_progress=None, device: str = "cpu", block: int = BLOCK,
                 max_rank: int = DEFAULT_MAX_RANK, targets=DEFAULT_FPIR_TARGETS, ci: float | None = None,
                 n_boot: int = 1000, seed: int = 0, extra: dict | None = None) -> IdentifyResult:
    """Embed every entry of ``split`` (:func:`frmask.embed.pipeline.embed_protocol`: cache, detection,
    failures to acquire), search the probes (:func:`score_probes`) and report (:func:`identification_metrics`).
    ``progress``/``search_progress``: called with the images embedded / probes searched."""
    from frmask.embed.pipeline import embed_protocol
    from frmask.scoring import run_provenance

    emb = embed_protocol(split, embedder, detector=detector, cache=cache, threads=threads, progress=progress)
    gallery = build_gallery(emb.embeddings, split)
    results = search_sharded(emb.embeddings[split.n_gallery:], split.probe_mate, split.probe_identity, gallery,
                             device=device, block=block, progress=search_progress)
    metrics = {"n_gallery": int(gallery.templates.shape[0]), "n_gallery_fta": gallery.n_fta,
               "n_gallery_identities": int(np.unique(gallery.identity).size), "n_probes": split.n_probes,
               **identification_metrics(results, max_rank=max_rank, targets=targets, ci=ci, n_boot=n_boot,
                                        seed=seed)}
    metrics["left_out_identities"], metrics["short_identities"] = split.left_out, split.short
    protocol = {"name": split.name, "description": split.description, "n_images": len(split.images),
                **split.settings, **(extra or {})}
    run = run_provenance(embedder, model_name=model_name, protocol=protocol, detector=detector, emb=emb)
    return IdentifyResult(split, results, metrics, emb.failures, run)
