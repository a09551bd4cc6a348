"""Score a model on an exhaustive identity-folder protocol: ``frmask score --protocol folder``.

:func:`score_folder` embeds every image with the usual pipeline (:func:`frmask.embed.pipeline.embed_protocol`:
detection and alignment, failures to acquire, the embedding cache), compares every pair with the block engine
(:mod:`frmask.exhaustive`) and reports it (:func:`frmask.exhaustive_report.block_report`). The
:class:`~frmask.scoring.ScoreResult` it returns can be written with :func:`frmask.report.write_run`: its
``protocol`` and ``scores`` are the pairs kept for ``scores.csv`` (every pair up to
:data:`~frmask.exhaustive_report.ALL_SCORES_LIMIT`, else the genuine pairs and the top impostors), and its
``accumulator`` draws the DET and histograms of the whole set when not every pair was kept.
"""

from __future__ import annotations

import numpy as np

from frmask.protocols.base import Protocol


def folder_comparisons(protocol, embeddings: np.ndarray, *, fta: str = "reject", device: str = "cpu", block=None):
    """The :class:`~frmask.exhaustive.ComparisonSet` of a :class:`~frmask.protocols.folder.FolderProtocol`
    given the embedding of each of its ``images`` (NaN rows for failures to acquire)."""
    from frmask.exhaustive import DEFAULT_BLOCK, comparison_set

    return comparison_set(embeddings, protocol.identity, reference=protocol.reference, probe=protocol.probe,
                          ordered=protocol.ordered, fta=fta, device=device, block=block or DEFAULT_BLOCK,
                          names=[e.key for e in protocol.images])


def kept_protocol(protocol, pairs) -> Protocol:
    """The pairs kept by a block run as an explicit :class:`~frmask.protocols.Protocol` over the same images
    (for ``scores.csv`` and the gallery); ``pair_ids`` holds their index in the full protocol."""
    a, b = protocol.reference[pairs.i], protocol.probe[pairs.j]
    names = np.asarray(protocol.identities, dtype=object)
    kept = Protocol(protocol.name, protocol.images, a, b, protocol.identity[a] == protocol.identity[b],
                    subjects_a=names[protocol.identity[a]], subjects_b=names[protocol.identity[b]],
                    description=protocol.description, reader=protocol.reader)
    kept.pair_ids = protocol.pair_index(pairs.i, pairs.j)
    return kept


def run_in_process(cs, *, fmr_targets, keep_impostors):
    """The default ``compare`` of :func:`score_folder`: :func:`frmask.exhaustive.score_embeddings`, every block of
    the plan merged (under torchrun it deals the plan out to the ranks and merges their gathered parts)."""
    from frmask.exhaustive import score_embeddings

    return score_embeddings(cs, fmr_targets=fmr_targets, keep_impostors=keep_impostors)


def score_folder(embedder, protocol, *, model_name: str = "", detector: str = "yunet", cache=None, threads: int = 2,
                 progress=None, far: float = 0.002, fta: str = "reject", fmr_targets=(), all_scores: bool = False,
                 block=None, extra: dict | None = None, embed=None, compare=None):
    """Embed, compare every pair of, and report a folder ``protocol`` with ``embedder`` (module docstring).

    Hooks for sharding (torch.distributed): ``embed(protocol)`` returns the
    :class:`~frmask.embed.pipeline.ProtocolEmbeddings` of every image (default: :func:`frmask.scoring.embed_images`
    here); ``compare(cs, fmr_targets=..., keep_impostors=...)`` returns the merged
    :class:`~frmask.exhaustive.BlockPart` of the whole plan (default: :func:`run_in_process`; a distributed one
    runs ``run_blocks(cs, cs.plan()[rank::world], ...)`` per process and ``merge_parts`` of the gathered parts).
    """
    from frmask.exhaustive import check_buffer, declared_targets
    from frmask.exhaustive_report import block_report, top_impostors_kept
    from frmask.exhaustive_stats import KeptPairs
    from frmask.scoring import ScoreResult, embed_images, protocol_provenance, run_provenance

    check_buffer(protocol.n_pairs - protocol.n_genuine_pairs, declared_targets(far, fmr_targets))  # before any work
    if embed is None:
        emb = embed_images(protocol, embedder, detector=detector, cache=cache, threads=threads, progress=progress)
    else:
        emb = embed(protocol)
    cs = folder_comparisons(protocol, emb.embeddings, fta=fta, device=getattr(embedder, "torch_device", "cpu"), block=block)
    keep = top_impostors_kept(cs, fmr_targets, far=far, all_scores=all_scores)
    part = (compare or run_in_process)(cs, fmr_targets=declared_targets(far, fmr_targets), keep_impostors=keep)
    report = block_report(part, cs, far=far, fmr_targets=fmr_targets)
    pairs = KeptPairs.concat([part.genuine, part.impostor]).sorted()
    kept = kept_protocol(protocol, pairs)
    complete = keep is None
    lost = cs.fta_genuine + cs.fta_impostor
    scores_note = (("every pair" + (f" with a score ({lost:,} without one, failures to acquire, are not listed)"
                                    if lost else "")) if complete else
                   f"the {len(part.genuine):,} genuine pairs and the {len(part.impostor):,} highest-scoring impostor "
                   f"pairs (those that decide the FNMR at FMR {min(declared_targets(far, fmr_targets)):g}) of "
                   f"{cs.n_pairs:,}; pass --all-scores for every pair")
    run = run_provenance(embedder, model_name=model_name, detector=detector, emb=emb,
                         protocol=protocol_provenance(protocol, extra))
    run["exhaustive"] = {"n_pairs": cs.n_pairs, "n_genuine_pairs": cs.genuine_pairs, "block": cs.block,
                         "n_blocks": len(cs.plan()), "device": str(cs.rows.device), "scores_csv": scores_note,
                         "scores_csv_complete": complete, "n_scores_csv": len(pairs)}
    result = ScoreResult(kept, pairs.score.astype(np.float64), {"all": report}, emb.failures, run)
    result.accumulator = None if complete else part.accumulator
    return result
