"""Seeded LFW-style pair lists of an identity-labelled image set (the pairs of a new ``.bin`` benchmark).

:func:`select_pairs` draws ``n_pairs`` pairs of distinct images in ``folds`` contiguous folds of equal
size, each fold its ``n_pairs / (2 folds)`` genuine pairs followed by as many impostor pairs, the order of
LFW's ``pairs.txt`` (View 2: 10 folds of 300 + 300) and so of insightface's ``lfw.bin``, whose k-fold
accuracy takes contiguous folds (:func:`frmask.metrics.kfold_accuracy`).

Definitions (``labels[k]`` = identity of image ``k``):

* A pair is an unordered pair of image indices ``a < b``; it is *genuine* when ``labels[a] == labels[b]``
  and an *impostor* pair otherwise. Every pair is stored with ``a < b`` (image ``2i`` of the ``.bin`` is
  the lower index).
* The genuine pairs are a uniform sample without replacement from all ``G = sum_k n_k (n_k - 1) / 2``
  genuine pairs (``n_k`` images of identity ``k``), and the impostor pairs from all ``N (N - 1) / 2 - G``
  impostor pairs: so no pair occurs twice, and identities with many images give more pairs, as a uniform
  draw of pairs does. By default folds are *not* identity-disjoint: the same person may appear in two
  folds. ``disjoint=True`` makes them so, as LFW's are (each identity in one fold, the folds balanced by
  their genuine pairs; the draws are then uniform within each fold).
* Sampling never lists the pairs: pair number ``r`` of the genuine (impostor) pairs in the order
  ``(a, b)`` lexicographic is found from per-image counts of partners, so a set of millions of images
  costs O(N) memory.
* Determinism: the sample depends only on ``labels``, ``n_pairs``, ``folds``, ``disjoint`` and ``seed``
  (numpy's SeedSequence of ``(seed, "pair-selection", 0, "genuine" | "impostor" | "folds")``,
  :func:`frmask.synth.seeding.image_seed_sequence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frmask.synth.seeding import image_seed_sequence

__all__ = ["PairList", "select_pairs", "count_pairs"]

SEED_NAME = "pair-selection"


@dataclass(frozen=True)
class PairList:
    """Pairs ``(a[i], b[i])`` with ``a[i] < b[i]``, ``genuine[i]`` true for same-identity pairs, in
    ``folds`` contiguous folds (genuine first within each)."""

    a: np.ndarray
    b: np.ndarray
    genuine: np.ndarray
    folds: int

    @property
    def n_pairs(self) -> int:
        return len(self.genuine)


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of identity labels, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return labels.astype(np.int64, copy=False)


def _partners(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, genuine partners, impostor partners)``: ``order`` sorts the images by (label, index);
    in that order image ``p``'s genuine partners above it are the rest of its identity's run and its
    impostor partners above it are all images of later identities."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    n = len(labels)
    # end of each image's identity run (exclusive) in the sorted order
    ends = np.searchsorted(sorted_labels, sorted_labels, side="right")
    position = np.arange(n, dtype=np.int64)
    return order, ends - position - 1, n - ends


def count_pairs(labels) -> tuple[int, int]:
    """``(genuine, impostor)``: how many distinct pairs of each kind ``labels`` can give."""
    _, gen, imp = _partners(_check_labels(labels))
    return int(gen.sum()), int(imp.sum())


def _decode(ranks: np.ndarray, partners: np.ndarray, first_partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions ``(p, q)`` of the pairs numbered ``ranks`` in the lexicographic order where
    position ``p`` has ``partners[p]`` partners, the first at ``first_partner[p]``, consecutive."""
    starts = np.concatenate([[0], np.cumsum(partners)])
    p = np.searchsorted(starts, ranks, side="right") - 1
    return p, first_partner[p] + (ranks - starts[p])


def _sample(total: int, k: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(image_seed_sequence(seed, SEED_NAME, 0, kind))
    return rng.choice(total, size=k, replace=False).astype(np.int64)


def select_pairs(labels, n_pairs: int, *, folds: int = 10, seed: int = 0, disjoint: bool = False) -> PairList:
    """``n_pairs`` distinct pairs of the images labelled ``labels``, half genuine (see the module notes).

    ``n_pairs`` must be a positive multiple of ``2 * folds``. ValueError, with the counts, when the labels
    cannot give ``n_pairs / 2`` distinct genuine (or impostor) pairs. ``disjoint=True``: every identity
    belongs to one fold, as in LFW's View 2 (:func:`_disjoint_pairs`).
    """
    labels = _check_labels(labels)
    if disjoint:
        return _disjoint_pairs(labels, n_pairs, folds, seed)
    if isinstance(folds, bool) or int(folds) != folds or folds < 1:
        raise ValueError(f"folds must be a whole number >= 1, got {folds!r}")
    if isinstance(n_pairs, bool) or int(n_pairs) != n_pairs or n_pairs < 1 or n_pairs % (2 * folds):
        raise ValueError(f"the number of pairs must be a positive multiple of 2 x {folds} folds = {2 * folds} "
                         f"(each fold half genuine, half impostor), got {n_pairs!r}")
    folds, half = int(folds), int(n_pairs) // 2
    order, gen, imp = _partners(labels)
    n_gen, n_imp = int(gen.sum()), int(imp.sum())
    n_ids = len(np.unique(labels))
    if n_gen < half:
        with_two = int(np.count_nonzero(np.bincount(np.unique(labels, return_inverse=True)[1]) >= 2))
        raise ValueError(f"{n_pairs} pairs need {half} distinct genuine pairs, but {len(labels)} images of "
                         f"{n_ids} identities ({with_two} with 2 or more images) give only {n_gen}: ask for "
                         f"at most {2 * folds * (n_gen // folds)} pairs, or add images")
    if n_imp < half:
        raise ValueError(f"{n_pairs} pairs need {half} distinct impostor pairs, but {len(labels)} images of "
                         f"{n_ids} identities give only {n_imp}" + (" (impostors need 2 or more identities)"
                                                                    if n_ids < 2 else ""))
    position = np.arange(len(labels), dtype=np.int64)
    ends = position + gen + 1  # first position of the next identity
    gp, gq = _decode(_sample(n_gen, half, "genuine", seed), gen, position + 1)
    ip, iq = _decode(_sample(n_imp, half, "impostor", seed), imp, ends)
    per_fold = half // folds
    a_parts, b_parts, g_parts = [], [], []
    for f in range(folds):
        block = slice(f * per_fold, (f + 1) * per_fold)
        for p, q, same in ((gp, gq, True), (ip, iq, False)):
            x, y = order[p[block]], order[q[block]]
            a_parts.append(np.minimum(x, y))
            b_parts.append(np.maximum(x, y))
            g_parts.append(np.full(per_fold, same))
    return PairList(np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(g_parts), folds)


def _disjoint_pairs(labels: np.ndarray, n_pairs: int, folds: int, seed: int) -> PairList:
    """Identity-disjoint folds: the identities, in a seeded random order, go one by one to the fold with the
    fewest genuine pairs so far (ties: the fewest images, then the lowest fold number); each fold's pairs are
    :func:`select_pairs` of its own images (one fold, seed ``(seed, fold)``), so no identity occurs in two
    folds. ValueError naming the fold when one cannot give its share."""
    select_pairs(labels, n_pairs, folds=folds, seed=seed)  # the checks of the arguments and the overall counts
    ids, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(image_seed_sequence(seed, SEED_NAME, 0, "folds"))
    genuine_of = np.zeros(folds, np.int64)
    images_of = np.zeros(folds, np.int64)
    fold_of = np.empty(len(ids), np.int64)
    for k in rng.permutation(len(ids)):
        f = min(range(folds), key=lambda f: (genuine_of[f], images_of[f], f))
        fold_of[k] = f
        genuine_of[f] += sizes[k] * (sizes[k] - 1) // 2
        images_of[f] += sizes[k]
    per_fold = n_pairs // folds
    a_parts, b_parts, g_parts = [], [], []
    for f in range(folds):
        members = np.flatnonzero(fold_of[inverse] == f)
        try:
            part = select_pairs(labels[members], per_fold, folds=1, seed=int(seed) * folds + f)
        except ValueError as exc:
            raise ValueError(f"identity-disjoint fold {f + 1} of {folds} ({len(members)} images of "
                             f"{int(np.count_nonzero(fold_of == f))} identities): {exc}") from None
        a_parts.append(members[part.a])
        b_parts.append(members[part.b])
        g_parts.append(part.genuine)
    return PairList(np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(g_parts), folds)
