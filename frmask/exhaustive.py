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

Per process of a ``torch.distributed`` run (what :func:`frmask.scoring_exhaustive.score_folder`'s ``compare``
hook does; every process builds the same set from the same embeddings)::

    cs = comparison_set(embeddings, identity, reference=..., probe=..., ordered=..., fta=fta)
    part = run_blocks(cs, cs.plan()[rank::world], fmr_targets=declared_targets(far, fmr), keep_impostors=k)
    parts = ...gather_object(part) on rank 0...      # BlockPart pickles (no scratch buffers)
    merged = merge_parts(cs, parts)                  # rank 0; block_report(merged, cs, ...) for the figures

:func:`score_embeddings` does all three in one process. The products run on ``device``; each block's scores
then go to the CPU, where the statistics are computed with numpy (single-threaded, so the bits never depend
on thread counts). The accumulator is sized with
``expected_impostors`` = the exact impostor count, so the FNMR at every declared FMR is exact; the report
layer (:mod:`frmask.exhaustive_report`) turns it into a verification report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from frmask.exhaustive_stats import BlockStatistics, KeptPairs
from frmask.metrics._scores import FTA_POLICIES, allowed_errors, rate_target
from frmask.metrics.streaming import ScoreAccumulator, _cut_for, _Moments

__all__ = ["DEFAULT_BLOCK", "Block", "BlockPart", "ComparisonSet", "block_edges", "check_buffer", "comparison_set",
           "declared_targets", "merge_parts", "plan_blocks", "run_blocks", "score_embeddings"]

DEFAULT_BLOCK = 4096  # rows (and columns) per block: 4096^2 float32 scores = 64 MiB
HIST_RANGE = (-1.0, 1.0)  # cosine similarities; rounding beyond +-1 lands in the under/overflow counts
HIST_BINS = 2**16
DEFAULT_TARGETS = (0.001, 0.002, 0.01)  # FMR 0.1 %, the default FAR 0.2 %, FMR 1 %: what a report asks
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


def block_edges(n: int, block: int = DEFAULT_BLOCK, identity=None) -> list[int]:
    """Cut points ``0 = e_0 < e_1 < ... = n`` of a side into runs of at most ``block`` entries.

    With ``identity`` (sorted labels of the n entries) each cut is put at the last identity boundary that
    keeps the run within ``block`` (inside an identity only when it alone has more than ``block`` images),
    so that off-diagonal blocks hold no genuine pair and skip the masks.
    """
    if block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block}")
    if identity is None:
        return [*range(0, n, block), n] if n else [0]
    starts = np.flatnonzero(np.r_[True, np.asarray(identity)[1:] != np.asarray(identity)[:-1]]) if n else []
    edges = [0]
    while edges[-1] < n:
        limit = edges[-1] + block
        if limit >= n:
            edges.append(n)
            break
        k = int(np.searchsorted(starts, limit, side="right")) - 1  # last identity start <= limit
        cut = int(starts[k]) if k >= 0 and starts[k] > edges[-1] else limit
        edges.append(cut)
    return edges


def plan_blocks(row_edges, col_edges=None, *, triangular: bool = False) -> list[Block]:
    """The blocks between the cut points ``row_edges`` x ``col_edges`` (:func:`block_edges`), row-major.

    ``triangular`` (unordered pairs of one list; ``col_edges`` must be the same cuts): only the blocks on
    or above the diagonal; diagonal blocks are marked ``triangle``. Block ``index`` is its position.
    """
    col_edges = row_edges if col_edges is None else col_edges
    if triangular and list(col_edges) != list(row_edges):
        raise ValueError("a triangular plan needs the same cuts on both sides")
    rows = list(zip(row_edges[:-1], row_edges[1:]))
    cols = list(zip(col_edges[:-1], col_edges[1:]))
    out = []
    for bi, r in enumerate(rows):
        for bj, c in enumerate(cols):
            if triangular and bj < bi:
                continue
            out.append(Block(len(out), (int(r[0]), int(r[1])), (int(c[0]), int(c[1])), triangular and bi == bj))
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
        """The block plan of the acquired entries: :func:`plan_blocks` over identity-aligned
        :func:`block_edges` of ``block`` rows; the same list on every call and in every process."""
        rows = block_edges(len(self.row_pos), self.block, self.row_identity)
        cols = rows if not self.ordered else block_edges(len(self.col_pos), self.block, self.col_identity)
        return plan_blocks(rows, cols, triangular=not self.ordered)

    def accumulator(self, fmr_targets=DEFAULT_TARGETS, *, bins: int = HIST_BINS) -> ScoreAccumulator:
        """An empty accumulator for this set: sized with the exact impostor count, so the FNMR at every
        target is exact, and with one more internal target so that the best accuracy is exact too (it needs
        the min(N_G, N_I) + 1 largest impostor scores) where that fits below FMR 1."""
        e = max(1, self.n_impostor)
        targets = sorted({float(t) for t in fmr_targets})
        need = min(self.genuine_pairs - self.fta_genuine, self.impostor_pairs - self.fta_impostor) + 2
        if need < e and need / e > max(targets):
            targets.append(need / e)
        check_buffer(e, targets)
        return ScoreAccumulator(targets, expected_impostors=e, hist_range=HIST_RANGE, bins=bins, fta=self.fta)


def check_buffer(n_impostor: int, fmr_targets) -> None:
    """ValueError when an exact FNMR at the largest target needs more than :data:`MAX_BUFFER` impostor scores
    in memory (call it before long work: the count of impostor pairs is known before any embedding)."""
    t = max(float(v) for v in fmr_targets)
    keep = allowed_errors(rate_target(t), max(1, int(n_impostor))) + 1
    if keep > MAX_BUFFER:
        raise ValueError(f"{n_impostor:,} impostor comparisons: an exact FNMR at FMR {t:g} needs the {keep:,} largest "
                         f"impostor scores in memory (more than {MAX_BUFFER:,}); this set is too large for the "
                         f"exhaustive engine's exact figures")


def declared_targets(far: float = 0.002, fmr_targets=()) -> tuple[float, ...]:
    """The FMR targets a run answers exactly: FMR 1 %, 0.1 %, ``far`` and the user's, ascending, unique."""
    return tuple(sorted({0.01, 0.001, float(far), *(float(t) for t in fmr_targets)}))


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
class BlockPart:
    """What :func:`run_blocks` made of some blocks of the plan: the accumulator (its moments are not
    meaningful before :func:`merge_parts`), the float64 (count, mean, M2) of each block's genuine and
    impostor scores, and the kept pairs: every genuine pair, and the impostor pairs that may be among the
    ``keep_impostors`` highest (all when None; :func:`merge_parts` keeps exactly that many)."""

    accumulator: ScoreAccumulator
    blocks: list[int] = field(default_factory=list)
    moments: dict = field(default_factory=dict)
    genuine: KeptPairs = field(default_factory=KeptPairs.empty)
    impostor: KeptPairs = field(default_factory=KeptPairs.empty)
    keep_impostors: int | None = None
    top_floor: float = -math.inf  # the keep_impostors-th highest impostor score kept so far

    def __getstate__(self):  # picklable for torch.distributed's gather_object: no scratch buffers
        state = dict(self.__dict__)
        state.pop("_stats", None)
        return state


def _stats(part: BlockPart) -> BlockStatistics:
    if getattr(part, "_stats", None) is None:
        part._stats = BlockStatistics(part.accumulator)
    return part._stats


def _add_impostors(part: BlockPart, x: np.ndarray) -> tuple[tuple[int, float, float], np.ndarray | None]:
    """Record float32 impostor scores ``x`` in the accumulator (through its summary entry point, handing
    over only the scores at or above its floor); returns their moments and, once both floors are set, the
    flat indices of the scores at or above the lower of the accumulator's and the top pairs' floors."""
    acc = part.accumulator
    if x.size == 0:
        return (0, 0.0, 0.0), None
    flat = x.reshape(-1)
    floors = [acc.floor_value] + ([part.top_floor] if part.keep_impostors != 0 else [])
    cut = None if min(floors) == -math.inf else _cut_for(min(floors), np.dtype(np.float32))
    hist, mom, lowest, hits = _stats(part).scan(flat, cut)
    if acc.floor_value == -math.inf:
        cand = flat
    else:
        vals = flat if hits is None else flat[hits]
        cand = vals[vals >= _cut_for(acc.floor_value, np.dtype(np.float32))]
    acc.add_impostor_summary(n=flat.size, candidates=cand, histogram=hist, minimum=lowest, moments=mom)
    return mom, hits


def _pair_positions(cs: ComparisonSet, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference position, probe position) of cells (rows, cols) of the sorted matrix; unordered pairs are
    named (smaller position, larger position)."""
    i, j = cs.row_pos[rows], cs.col_pos[cols]
    if not cs.ordered:
        i, j = np.minimum(i, j), np.maximum(i, j)
    return i, j


def _cells(sel: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: int) -> np.ndarray:
    """Flat cell indices of the impostor values ``sel`` of a mixed block, whose row r holds the columns
    outside [lo[r], hi[r]) in order (as ``x[mask]`` lists them)."""
    per_row = lo + (width - hi)
    ends = np.cumsum(per_row)
    row = np.searchsorted(ends, sel, side="right")
    off = sel - (ends[row] - per_row[row])
    col = np.where(off < lo[row], off, hi[row] + off - lo[row])
    return row * width + col


def _keep_top(part: BlockPart, cs: ComparisonSet, b: Block, flat: np.ndarray, runs=None, hits=None) -> None:
    """Keep the impostor scores ``flat`` of block ``b`` (``runs``: the (lo, hi) of a mixed block, see
    :func:`_cells`; None when every cell is an impostor pair) that may be among the ``keep_impostors`` highest: every score
    >= the k-th highest kept so far, ties included, so that the final choice (:meth:`KeptPairs.top`) sees
    every candidate whatever the split."""
    k = part.keep_impostors
    if k == 0 or flat.size == 0:
        return
    if part.top_floor > -math.inf:
        floor = np.float32(part.top_floor)  # a kept float32 score: exact
        sel = np.flatnonzero(flat >= floor) if hits is None else hits[flat[hits] >= floor]
    elif k is not None and flat.size > k:
        cut = np.partition(flat, flat.size - k)[flat.size - k]
        sel = np.flatnonzero(flat >= cut)
    else:
        sel = np.arange(flat.size)
    if k is not None and sel.size > k:
        vals = flat[sel]
        sel = sel[vals >= np.partition(vals, vals.size - k)[vals.size - k]]
    if sel.size == 0:
        return
    width = b.cols[1] - b.cols[0]
    cell = sel if runs is None else _cells(sel, *runs, width)
    i, j = _pair_positions(cs, b.rows[0] + cell // width, b.cols[0] + cell % width)
    kept = KeptPairs.concat([part.impostor, KeptPairs(i, j, flat[sel])])
    if k is not None and len(kept) >= k:
        kth = np.partition(kept.score, len(kept) - k)[len(kept) - k]
        part.top_floor = float(kth)
        if len(kept) > 2 * k:
            kept = kept.select(kept.score >= kth)
    part.impostor = kept


def _genuine_cells(cs: ComparisonSet, b: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols) of the genuine pairs of a block (relative indices) and each row's run [lo, hi) of
    same-identity columns: identities are sorted on both sides, so a row's impostor cells are the columns
    outside its run (and, in a diagonal block, only those after it)."""
    (r0, r1), (c0, c1) = b.rows, b.cols
    rid, cid = cs.row_identity[r0:r1], cs.col_identity[c0:c1]
    lo = np.searchsorted(cid, rid, side="left")
    hi = np.searchsorted(cid, rid, side="right")
    start = np.maximum(lo, np.arange(r1 - r0) + 1) if b.triangle else lo
    counts = np.maximum(hi - start, 0)
    rows = np.repeat(np.arange(r1 - r0), counts)
    cols = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    if cs.ordered:  # an image is not compared with its own masked copy
        keep = cs.row_pos[r0 + rows] != cs.col_pos[c0 + cols]
        rows, cols = rows[keep], cols[keep]
    if b.triangle:
        lo = np.zeros_like(lo)  # columns before the run are below the diagonal: no pair
    return rows, cols, lo, hi


def _run_block(cs: ComparisonSet, b: Block, part: BlockPart) -> int:
    """Score one block into ``part`` (float32 product on the device, statistics on the CPU); returns the
    number of pairs it held."""
    (r0, r1), (c0, c1) = b.rows, b.cols
    x = (cs.rows[r0:r1] @ cs.cols[c0:c1].T).cpu().numpy()
    rid, cid = cs.row_identity, cs.col_identity
    if not (b.triangle or (rid[r0] <= cid[c1 - 1] and cid[c0] <= rid[r1 - 1])):  # sorted: no identity shared
        mom, hits = _add_impostors(part, x)
        part.moments[b.index] = ((0, 0.0, 0.0), mom)
        _keep_top(part, cs, b, x.reshape(-1), None, hits)
        return x.size
    ga, gb, lo, hi = _genuine_cells(cs, b)
    gvals = x[ga, gb]
    if gvals.size:
        part.accumulator.add(genuine=gvals)
        part.genuine = KeptPairs.concat([part.genuine, KeptPairs(*_pair_positions(cs, r0 + ga, c0 + gb), gvals)])
    col = np.arange(c1 - c0)
    mask = (col[None, :] < lo[:, None]) | (col[None, :] >= hi[:, None])
    imp = x[mask]
    mom, hits = _add_impostors(part, imp)
    part.moments[b.index] = (_stats(part).scan(gvals)[1] if gvals.size else (0, 0.0, 0.0), mom)
    _keep_top(part, cs, b, imp, (lo, hi), hits)
    return gvals.size + imp.size


def run_blocks(cs: ComparisonSet, blocks, *, fmr_targets=DEFAULT_TARGETS, keep_impostors: int | None = 0,
               progress=None) -> BlockPart:
    """Run ``blocks`` (any subset of ``cs.plan()``, e.g. ``plan[rank::world]``) into a :class:`BlockPart`.

    ``fmr_targets``: the FMR targets to answer exactly (:func:`declared_targets`; every part of one run
    must use the same).
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
    if getattr(part, "_stats", None) is not None:
        part._stats.close()
        part._stats = None
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


def score_embeddings(cs: ComparisonSet, *, fmr_targets=DEFAULT_TARGETS, keep_impostors: int | None = 0,
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
