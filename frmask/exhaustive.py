"""Exhaustive verification in blocks: every pair of a set of embeddings, never the N x N matrix.

The comparisons of :mod:`frmask.protocols.folder` (and of any embedding set with identity labels):

* unordered (``ordered=False``): every pair {i, j}, i < j, of the N entries of ``reference``;
* ordered (``ordered=True``, masked-vs-nonmasked): every (``reference[i]``, ``probe[j]``), i != j, where
  position i of both lists is the same image (so i == j, an image with its own masked copy, is left out).

A pair is genuine when both entries carry the same identity. The score is the float32 cosine similarity
(embeddings are L2-normalised): blocks of rows times columns are float32 matrix products with torch on the
embeddings' device, streamed into a :class:`~frmask.metrics.ScoreAccumulator`. Memory is
O(N * d + block^2) plus the accumulator's buffer of top impostor scores.

Three steps, so that the work can be shared between processes (``torch.distributed``: process r runs the
blocks ``plan[r::K]``, the parts are gathered and merged):

1. :func:`comparison_set` validates the embeddings and counts everything known up front: the genuine and
   impostor pair counts, the pairs lost to failures to acquire (an entry whose embedding holds NaN; its
   pairs count as by the ``fta`` policy, exactly as NaN pair scores do in :func:`frmask.metrics.verification_report`);
   :meth:`ComparisonSet.plan` lists the blocks in a fixed order (:func:`plan_blocks`).
2. :func:`run_blocks` runs any subset of the plan into a :class:`BlockPart`.
3. :func:`merge_parts` checks that the parts cover the plan exactly once and combines them. The result does
   not depend on how the blocks were split: counts, histograms and the top-impostor buffer are exact
   integers or multisets, and the float64 moments behind the FDR are kept per block and combined in plan
   order.

:func:`score_embeddings` does all three in one process. The accumulator is sized with
``expected_impostors`` = the exact impostor count, so the FNMR at every declared FMR is exact; the report
layer (:mod:`frmask.exhaustive_report`) turns it into a verification report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from frmask.metrics._scores import FTA_POLICIES, allowed_errors, rate_target
from frmask.metrics.streaming import ScoreAccumulator

__all__ = ["DEFAULT_BLOCK", "Block", "BlockPart", "ComparisonSet", "comparison_set", "merge_parts", "plan_blocks",
           "run_blocks", "score_embeddings"]

DEFAULT_BLOCK = 4096  # rows (and columns) per block: 4096^2 float32 scores = 64 MiB
HIST_RANGE = (-1.0, 1.0)  # cosine similarities; rounding beyond +-1 lands in the under/overflow counts
HIST_BINS = 2**16
MAX_BUFFER = 100_000_000  # top impostor scores the accumulator may have to keep (float64: 0.8 GB, twice at peak)


@dataclass(frozen=True)
class Block:
    """One block of the plan: rows ``rows[0]:rows[1]`` times columns ``cols[0]:cols[1]`` of the sorted,
    acquired entries; ``triangle``: a diagonal block of an unordered set (only column > row is a pair)."""

    index: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    triangle: bool = False

    @property
    def size(self) -> int:
        """Number of score cells computed (the matrix product's size, pairs or not)."""
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])


def plan_blocks(n_rows: int, n_cols: int, *, block: int = DEFAULT_BLOCK, triangular: bool = False) -> list[Block]:
    """The blocks covering an ``n_rows`` x ``n_cols`` comparison matrix, in a fixed row-major order.

    ``triangular`` (unordered pairs of one list, ``n_rows == n_cols``): only the blocks on or above the
    diagonal; diagonal blocks are marked ``triangle``. Block ``index`` is its position in the list.
    """
    if block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block}")
    if triangular and n_rows != n_cols:
        raise ValueError(f"a triangular plan needs a square matrix, got {n_rows} x {n_cols}")
    rows = [(s, min(s + block, n_rows)) for s in range(0, n_rows, block)]
    cols = [(s, min(s + block, n_cols)) for s in range(0, n_cols, block)]
    out = []
    for bi, r in enumerate(rows):
        for bj, c in enumerate(cols):
            if triangular and bj < bi:
                continue
            out.append(Block(len(out), r, c, triangular and bi == bj))
    return out


@dataclass
class ComparisonSet:
    """The comparisons of one embedding set (module docstring), ready to be run block by block.

    ``rows``/``cols``: the acquired reference and probe embeddings, sorted by identity (stable), as float32
    torch tensors on the device (the same tensor when unordered). ``row_pos``/``col_pos``: the position of
    each in the ``reference``/``probe`` list given; ``row_identity``/``col_identity`` their identities.
    Counts are over every pair, failures to acquire included: ``fta_genuine``/``fta_impostor`` pairs have
    an entry without embedding.
    """

    rows: object
    cols: object
    row_pos: np.ndarray
    col_pos: np.ndarray
    row_identity: np.ndarray
    col_identity: np.ndarray
    ordered: bool
    n_positions: int
    genuine_pairs: int
    impostor_pairs: int
    fta_genuine: int
    fta_impostor: int
    fta: str = "reject"
    block: int = DEFAULT_BLOCK

    @property
    def n_pairs(self) -> int:
        return self.genuine_pairs + self.impostor_pairs

    @property
    def n_impostor(self) -> int:
        """Impostor comparisons in the rate denominators (FTAs included under ``fta="reject"``)."""
        return self.impostor_pairs - (0 if self.fta == "reject" else self.fta_impostor)

    @property
    def n_genuine(self) -> int:
        return self.genuine_pairs - (0 if self.fta == "reject" else self.fta_genuine)

    def plan(self) -> list[Block]:
        """The block plan (:func:`plan_blocks`) of the acquired entries."""
        return plan_blocks(len(self.row_pos), len(self.col_pos), block=self.block, triangular=not self.ordered)

    def accumulator(self, fmr_targets=(0.01, 0.001), *, bins: int = HIST_BINS) -> ScoreAccumulator:
        """An empty accumulator for this set: sized with the exact impostor count, so the FNMR at every
        target is exact, and with one more internal target so that the best accuracy is exact too (it needs
        the min(N_G, N_I) + 1 largest impostor scores) where that fits below FMR 1."""
        e = max(1, self.n_impostor)
        targets = sorted({float(t) for t in fmr_targets})
        need = min(self.genuine_pairs - self.fta_genuine, self.impostor_pairs - self.fta_impostor) + 2
        if need < e and need / e > max(targets):
            targets.append(need / e)
        keep = allowed_errors(rate_target(max(targets)), e) + 1
        if keep > MAX_BUFFER:
            raise ValueError(f"{e:,} impostor comparisons: an exact FNMR at FMR {max(targets):g} needs the {keep:,} "
                             f"largest impostor scores in memory (more than {MAX_BUFFER:,}); declare smaller FMR "
                             f"targets or score a subset")
        return ScoreAccumulator(targets, expected_impostors=e, hist_range=HIST_RANGE, bins=bins, fta=self.fta)


def _identity_codes(identity) -> np.ndarray:
    ident = np.asarray(identity)
    if ident.ndim != 1:
        raise ValueError(f"identity must be one label per entry, got shape {ident.shape}")
    return np.unique(ident, return_inverse=True)[1].astype(np.int64)


def _pair2(n) -> np.ndarray:
    n = np.asarray(n, np.int64)
    return n * (n - 1) // 2


def comparison_set(embeddings, identity, *, reference=None, probe=None, ordered: bool = False, fta: str = "reject",
                   device=None, block: int = DEFAULT_BLOCK, names=None) -> ComparisonSet:
    """Validate and count the comparisons of ``embeddings`` (module docstring).

    ``embeddings``: (E, d) float32, L2-normalised rows; a row with a NaN is a failure to acquire.
    ``identity``: one label per entry. ``reference``/``probe``: entry indices of the two sides (default:
    every entry); unordered sets use ``reference`` only. ``names``: a display name per entry for errors
    (e.g. the image keys). ``device``: torch device of the products (default: CPU).
    """
    import torch

    if fta not in FTA_POLICIES:
        raise ValueError(f"unknown FTA policy {fta!r}; choose one of {', '.join(FTA_POLICIES)}")
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"embeddings must be a non-empty (entries, dim) array, got shape {emb.shape}")
    codes = _identity_codes(identity)
    if codes.shape[0] != emb.shape[0]:
        raise ValueError(f"{emb.shape[0]} embeddings but {codes.shape[0]} identity labels")
    ref = np.arange(emb.shape[0]) if reference is None else np.asarray(reference, np.int64)
    prb = ref if probe is None or not ordered else np.asarray(probe, np.int64)
    for side, name in ((ref, "reference"), (prb, "probe")):
        if side.ndim != 1 or (side.size and (side.min() < 0 or side.max() >= emb.shape[0])):
            raise ValueError(f"{name} must list entry indices in 0..{emb.shape[0] - 1}")
    n = ref.size
    if ordered and prb.size != n:
        raise ValueError(f"ordered comparisons need as many probes as references ({prb.size} vs {n})")
    if ordered and not np.array_equal(codes[ref], codes[prb]):
        i = int(np.flatnonzero(codes[ref] != codes[prb])[0])
        raise ValueError(f"position {i}: reference and probe must be the same image (their identities differ)")
    if n < 2:
        raise ValueError(f"need at least 2 images to compare, got {n}")
    failed = np.isnan(emb).any(axis=1)
    finite = emb[~failed]
    if not np.isfinite(finite).all():
        i = int(np.flatnonzero(~failed)[np.flatnonzero(~np.isfinite(finite).all(axis=1))[0]])
        raise ValueError(f"embedding of entry {names[i] if names is not None else i} is infinite")
    if fta == "error" and failed[np.union1d(ref, prb)].any():
        i = int(np.union1d(ref, prb)[failed[np.union1d(ref, prb)]][0])
        raise ValueError(f"{names[i] if names is not None else f'entry {i}'} has no embedding (failure to acquire) "
                         f"and the FTA policy is 'error'")

    k = int(codes.max()) + 1
    ok_r, ok_p = ~failed[ref], ~failed[prb]
    per_id = np.bincount(codes[ref], minlength=k)
    if ordered:
        both = ok_r & ok_p
        g_total = int((per_id * (per_id - 1)).sum())
        total = n * (n - 1)
        ar = np.bincount(codes[ref][ok_r], minlength=k)
        ap = np.bincount(codes[prb][ok_p], minlength=k)
        b = np.bincount(codes[ref][both], minlength=k)
        g_acq = int((ar * ap - b).sum())
        acq = int(ok_r.sum()) * int(ok_p.sum()) - int(both.sum())
    else:
        g_total = int(_pair2(per_id).sum())
        total = n * (n - 1) // 2
        g_acq = int(_pair2(np.bincount(codes[ref][ok_r], minlength=k)).sum())
        acq = int(_pair2(int(ok_r.sum())))
    if g_total == 0:
        raise ValueError("no genuine pair: every identity has a single image")
    if total - g_total == 0:
        raise ValueError("no impostor pair: every image belongs to one identity")

    def side(entries, ok):
        pos = np.flatnonzero(ok)
        pos = pos[np.argsort(codes[entries[pos]], kind="stable")]
        return pos, codes[entries[pos]]

    row_pos, row_id = side(ref, ok_r)
    dev = torch.device(device or "cpu")
    rows = torch.from_numpy(np.ascontiguousarray(emb[ref[row_pos]], np.float32)).to(dev)
    if ordered:
        col_pos, col_id = side(prb, ok_p)
        cols = torch.from_numpy(np.ascontiguousarray(emb[prb[col_pos]], np.float32)).to(dev)
    else:
        col_pos, col_id, cols = row_pos, row_id, rows
    return ComparisonSet(rows, cols, row_pos, col_pos, row_id, col_id, bool(ordered), n, g_total, total - g_total,
                         g_total - g_acq, (total - g_total) - (acq - g_acq), fta, int(block))


# ---------------------------------------------------------------------------------------------- running
@dataclass
class KeptPairs:
    """Pairs kept with their scores: positions ``i`` (reference) and ``j`` (probe), float32 ``score``."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> KeptPairs:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))

    @classmethod
    def concat(cls, parts) -> KeptPairs:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("i", "j", "score")))

    def __len__(self) -> int:
        return self.score.size

    def sorted(self) -> KeptPairs:
        """In pair order (i, then j): the order of :class:`~frmask.protocols.folder.FolderProtocol`'s pairs."""
        order = np.lexsort((self.j, self.i))
        return KeptPairs(self.i[order], self.j[order], self.score[order])

    def top(self, k: int) -> KeptPairs:
        """The k highest scores, ties broken by pair order (so the choice does not depend on the split)."""
        order = np.lexsort((self.j, self.i, -self.score.astype(np.float64)))[:k]
        return KeptPairs(self.i[order], self.j[order], self.score[order])


@dataclass
class BlockPart:
    """What :func:`run_blocks` made of some blocks of the plan: the accumulator (without meaningful moments:
    see ``moments``), the float64 (count, mean, M2) of each block's genuine and impostor scores, and the kept
    pairs: every genuine pair, and the ``keep_impostors`` highest impostor pairs (all when None)."""

    accumulator: ScoreAccumulator
    blocks: list[int] = field(default_factory=list)
    moments: dict = field(default_factory=dict)
    genuine: KeptPairs = field(default_factory=KeptPairs.empty)
    impostor: KeptPairs = field(default_factory=KeptPairs.empty)
    keep_impostors: int | None = None
    _top_floor: float = -math.inf  # the k-th highest impostor score kept so far


def _moments(x: np.ndarray) -> tuple[int, float, float]:
    """float64 (count, mean, M2) of float32 scores, two passes, numpy's pairwise sums (the same bits
    whatever the thread count); 2-D input is summed row by row, then over the rows."""
    if x.size == 0:
        return (0, 0.0, 0.0)
    total = float(np.sum(np.sum(x, axis=-1, dtype=np.float64)))
    mean = total / x.size
    dev = x.astype(np.float64)
    dev -= mean
    np.square(dev, out=dev)
    return (int(x.size), mean, float(np.sum(np.sum(dev, axis=-1))))


def _histogram(x, acc: ScoreAccumulator) -> np.ndarray:
    """The accumulator's float64 bin counts of a float32 torch tensor ([underflow, bins..., overflow]): the
    same IEEE operations as :meth:`ScoreAccumulator.add` (subtract lo, multiply by scale, floor, clip)."""
    import torch

    lo, scale, bins = acc._lo, acc._scale, acc._bins
    idx = x.to(torch.float64).sub_(lo).mul_(scale).floor_().clamp_(-1.0, float(bins)).add_(1.0).to(torch.int64)
    return torch.bincount(idx.reshape(-1), minlength=bins + 2).cpu().numpy().astype(np.int64)


def _add_impostors(acc: ScoreAccumulator, x) -> None:
    """Feed a float32 torch tensor of impostor scores to ``acc`` through its summary entry point, handing
    over only the scores at or above its floor (the others would be dropped on arrival)."""
    import torch

    from frmask.metrics.streaming import _cut_for

    if x.numel() == 0:
        return
    floor = acc.floor_value
    cand = x.reshape(-1) if floor == -math.inf else x[x >= float(_cut_for(floor, np.dtype(np.float32)))]
    acc.add_impostor_summary(n=x.numel(), candidates=cand.cpu().numpy().astype(np.float32, copy=False),
                             histogram=_histogram(x, acc), minimum=float(torch.min(x)), moments=(0, 0.0, 0.0))


def _keep_top(part: BlockPart, cs: ComparisonSet, s, rows: np.ndarray, cols: np.ndarray) -> None:
    """Keep the impostor pairs of block scores ``s`` (non-impostor cells already -inf) that may be among the
    ``keep_impostors`` highest: every score >= the k-th highest kept so far (ties included), so the final
    choice (:meth:`KeptPairs.top`) sees every candidate whatever the split."""
    import torch

    k = part.keep_impostors
    if k == 0:
        return
    flat = s.reshape(-1)
    floor = part._top_floor
    sel = torch.nonzero(flat > floor if floor == -math.inf else flat >= floor).reshape(-1)
    if k is not None and sel.numel() > k:
        cut = float(torch.kthvalue(flat[sel], sel.numel() - k + 1).values)
        sel = sel[flat[sel] >= cut]
    if sel.numel() == 0:
        return
    sel_np = sel.cpu().numpy()
    width = s.shape[1]
    i, j = _pair_positions(cs, rows[sel_np // width], cols[sel_np % width])
    kept = KeptPairs.concat([part.impostor, KeptPairs(i, j, flat[sel].cpu().numpy().astype(np.float32))])
    if k is not None and len(kept) >= k:
        kth = np.partition(kept.score, len(kept) - k)[len(kept) - k]
        part._top_floor = float(kth)
        if len(kept) > 2 * k:
            m = kept.score >= kth
            kept = KeptPairs(kept.i[m], kept.j[m], kept.score[m])
    part.impostor = kept


def _pair_positions(cs: ComparisonSet, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference position, probe position) of cells (rows, cols) of the sorted matrix; unordered pairs are
    named (smaller position, larger position)."""
    i, j = cs.row_pos[rows], cs.col_pos[cols]
    if not cs.ordered:
        i, j = np.minimum(i, j), np.maximum(i, j)
    return i, j


def _run_block(cs: ComparisonSet, b: Block, part: BlockPart) -> int:
    """Score one block into ``part``; returns the number of pairs it held."""
    import torch

    acc = part.accumulator
    (r0, r1), (c0, c1) = b.rows, b.cols
    s = cs.rows[r0:r1] @ cs.cols[c0:c1].T
    rows, cols = np.arange(r0, r1), np.arange(c0, c1)
    rid, cid = cs.row_identity[r0:r1], cs.col_identity[c0:c1]
    if not (b.triangle or (rid[0] <= cid[-1] and cid[0] <= rid[-1])):  # identities sorted: none shared
        _add_impostors(acc, s)
        part.moments[b.index] = ((0, 0.0, 0.0), _moments(s.cpu().numpy()))
        _keep_top(part, cs, s, rows, cols)
        return int(s.numel())
    dev = s.device
    same = torch.from_numpy(rid[:, None] == cid[None, :]).to(dev)
    valid = torch.ones(same.shape, dtype=torch.bool, device=dev)
    if b.triangle:
        valid = torch.triu(valid, diagonal=1)
    if cs.ordered:
        valid &= torch.from_numpy(cs.row_pos[r0:r1, None] != cs.col_pos[None, c0:c1]).to(dev)
    g_mask, i_mask = same & valid, ~same & valid
    ga, gb = (t.cpu().numpy() for t in torch.nonzero(g_mask, as_tuple=True))
    gvals = s[g_mask].cpu().numpy().astype(np.float32)
    imp = s[i_mask]
    if gvals.size:
        acc.add(genuine=gvals)
        part.genuine = KeptPairs.concat([part.genuine, KeptPairs(*_pair_positions(cs, rows[ga], cols[gb]), gvals)])
    _add_impostors(acc, imp)
    part.moments[b.index] = (_moments(gvals), _moments(imp.cpu().numpy()))
    if part.keep_impostors != 0:
        _keep_top(part, cs, s.masked_fill(~i_mask, -math.inf), rows, cols)
    return int(gvals.size + imp.numel())


def run_blocks(cs: ComparisonSet, blocks, *, fmr_targets=(0.01, 0.001), keep_impostors: int | None = 0,
               progress=None) -> BlockPart:
    """Run ``blocks`` (any subset of ``cs.plan()``, e.g. ``plan[rank::world]``) into a :class:`BlockPart`.

    ``fmr_targets``: the FMR targets to answer exactly (every part of one run must use the same).
    ``keep_impostors``: how many of the highest-scoring impostor pairs to keep with their positions (0: none,
    None: all, for small sets). ``progress``: called with the number of pairs of each finished block.
    """
    import torch

    part = BlockPart(cs.accumulator(fmr_targets), keep_impostors=keep_impostors)
    with torch.inference_mode():
        for b in blocks:
            if b.index in part.moments:
                raise ValueError(f"block {b.index} given twice")
            n = _run_block(cs, b, part)
            part.blocks.append(b.index)
            if progress is not None:
                progress(n)
    return part


def merge_parts(cs: ComparisonSet, parts) -> BlockPart:
    """Combine the parts of one run (they must cover ``cs.plan()`` exactly once) into one finished part:
    accumulator with the failures to acquire counted and the moments combined in plan order, genuine pairs
    and the top impostor pairs in pair order. The same bits whatever the split of the plan."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_parts needs at least one part")
    plan = cs.plan()
    seen: dict[int, int] = {}
    for p in parts:
        for b in p.blocks:
            if b in seen:
                raise ValueError(f"block {b} was run twice (parts {seen[b]} and {parts.index(p)})")
            seen[b] = parts.index(p)
    missing = [b.index for b in plan if b.index not in seen]
    if missing or len(seen) != len(plan):
        raise ValueError(f"{len(missing)} block(s) of the plan were not run (e.g. {missing[:5]})")
    ordered = sorted(parts, key=lambda p: min(p.blocks) if p.blocks else -1)
    acc = ScoreAccumulator.merged([p.accumulator for p in ordered])
    acc.add_failures(genuine=cs.fta_genuine, impostor=cs.fta_impostor)
    moments = {i: m for p in parts for i, m in p.moments.items()}
    from frmask.metrics.streaming import _Moments

    mg, mi = _Moments(), _Moments()
    for b in plan:
        g, i = moments[b.index]
        mg.combine(*g)
        mi.combine(*i)
    acc.replace_moments((mg.n, mg.mean, mg.m2), (mi.n, mi.mean, mi.m2))
    keep = parts[0].keep_impostors
    imp = KeptPairs.concat([p.impostor for p in parts])
    imp = (imp if keep is None else imp.top(keep)).sorted()
    out = BlockPart(acc, [b.index for b in plan], moments, KeptPairs.concat([p.genuine for p in parts]).sorted(),
                    imp, keep)
    return out


def score_embeddings(cs: ComparisonSet, *, fmr_targets=(0.01, 0.001), keep_impostors: int | None = 0,
                     progress: bool | None = None) -> BlockPart:
    """Every block of ``cs``, merged (:func:`run_blocks` + :func:`merge_parts`), with a tqdm bar over the pairs
    (``progress``: None shows it on a terminal only, False never).

    Under ``torchrun`` (a :mod:`frmask.distributed` session of K processes) rank r runs the blocks
    ``plan[r::K]`` (interleaved: the blocks of a triangle differ in cost along the plan), the parts are
    gathered and merged on every rank: the same result as one process (:func:`merge_parts`). The bar counts
    rank 0's pairs (no total then)."""
    import sys

    from tqdm import tqdm

    from frmask import distributed

    plan = cs.plan()
    mine = [plan[i] for i in distributed.my_shard(len(plan), interleaved=True)]
    total = cs.n_pairs - cs.fta_genuine - cs.fta_impostor if distributed.world_size() == 1 else None
    show = (None if progress is None else bool(progress)) if distributed.is_main() else False
    with tqdm(total=total, unit="pair", unit_scale=True, desc="comparing", disable=None if show is None else not show,
              leave=False, file=sys.stderr) as bar:
        part = distributed.checked(lambda: run_blocks(cs, mine, fmr_targets=fmr_targets,
                                                      keep_impostors=keep_impostors, progress=bar.update))
    return merge_parts(cs, distributed.gather_objects(part))
