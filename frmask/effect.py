"""Mask-effect analysis as NIST FRVT measures it (NISTIR 8311, 8331): a grid of mask variants at fixed thresholds.

1. **Baseline.** A protocol's comparisons without masks. Every image is aligned once to a 112x112 ArcFace crop
   (detected when needed, as ``frmask score`` does); the crops are embedded and every pair compared. For each
   declared FMR target the decision threshold is fixed on the baseline's impostor scores by the strict ISO rule
   (:func:`frmask.metrics.fnmr_at_fmr`: the lowest-FNMR threshold whose FMR is at most the target). A target
   below the baseline's resolution 1/N_impostor is refused: it would only say "no false match at all".
2. **Variants.** Each point of the grid (the cartesian product of mask types, coverage levels and named colours,
   in the order given) draws exactly that mask on the probes: the second image of every pair (``pair_b``), while
   the references (``pair_a``) stay unmasked; ``both=True`` masks the references too. Only the masked crops are
   embedded again (with the embedding cache, so a repeated run is instant).
3. **Figures per variant and target.** ``fixed``: FNMR and FMR at the baseline's threshold
   (:func:`frmask.metrics.rates_at_threshold`, exact counts) and the FNMR ratio to the baseline's FNMR at that
   threshold; ``recalibrated``: the variant's own strict FNMR@FMR point; and the variant's EER. With ``ci`` every
   rate gets a percentile bootstrap interval over resampled *subjects* (or pairs where the protocol names none);
   the thresholds stay fixed in the resamples, as they are in deployment.

Everything is deterministic: masks of named colours have no random part, and the bootstrap has a seed; the
result does not depend on the number of threads. :func:`frmask.effect_report.write_effect_run` writes the run
folder.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

GRID_KEYS = ("mask-type", "coverage", "color")
GRID_DEFAULTS = {"mask-type": "surgical", "coverage": "high", "color": "light-blue"}
GRID_EXAMPLE = "mask-type=surgical,n95;coverage=low,medium,high;color=light-blue,black"
DEFAULT_TARGETS = (0.01, 0.001)
SIZE = 112


@dataclass(frozen=True)
class Variant:
    """One mask variant: a built-in mask type at a nose coverage level in a named colour."""

    mask_type: str
    coverage: str
    color: str

    @property
    def label(self) -> str:
        return f"{self.mask_type}/{self.coverage}/{self.color}"

    def spec(self):
        from frmask.synth.benchmark import MaskSpec

        return MaskSpec(mask_type=self.mask_type, coverage=self.coverage, color=self.color)


def _allowed(key: str) -> tuple[str, ...]:
    from frmask.synth.colors import color_names
    from frmask.synth.shapes import COVERAGE_LEVELS, MASK_TYPES

    return {"mask-type": MASK_TYPES, "coverage": COVERAGE_LEVELS, "color": color_names()}[key]


def parse_grid(text: str) -> dict[str, tuple[str, ...]]:
    """``"mask-type=surgical,n95;coverage=low,high;color=black"`` -> ``{key: values}`` for every key of
    :data:`GRID_KEYS` (a key left out takes its :data:`GRID_DEFAULTS` value). An empty grid, an unknown or
    repeated key, an unknown, repeated or missing value raise ValueError naming them and what is allowed."""
    if text is None or not text.strip():
        raise ValueError(f"the grid is empty; give e.g. --grid \"{GRID_EXAMPLE}\"")
    grid: dict[str, tuple[str, ...]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        key, sep, values = part.partition("=")
        key = key.strip().lower()
        if key not in GRID_KEYS:
            raise ValueError(f"unknown grid key {key!r} in {part!r}; the keys are {', '.join(GRID_KEYS)}")
        if key in grid:
            raise ValueError(f"grid key {key!r} is given twice")
        names = [v.strip() for v in values.split(",")] if sep else []
        if not names or not all(names):
            raise ValueError(f"grid key {key!r} needs values, e.g. {key}={','.join(_allowed(key)[:2])}")
        allowed = _allowed(key)
        unknown = [v for v in names if v not in allowed]
        if unknown:
            raise ValueError(f"unknown {key} value(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
        if len(set(names)) != len(names):
            raise ValueError(f"grid key {key!r} repeats a value: {','.join(names)}")
        grid[key] = tuple(names)
    if not grid:
        raise ValueError(f"the grid is empty; give e.g. --grid \"{GRID_EXAMPLE}\"")
    return {key: grid.get(key, (GRID_DEFAULTS[key],)) for key in GRID_KEYS}


def grid_variants(grid: dict) -> list[Variant]:
    """The cartesian product of a parsed grid, mask type slowest and colour fastest, values in the given order."""
    return [Variant(m, c, k) for m, c, k in itertools.product(*(grid[key] for key in GRID_KEYS))]


def target_key(target: float) -> str:
    """How an FMR target is written as a key (``0.001``, ``1e-05``), as in the verification reports."""
    return repr(float(target))


# ---------------------------------------------------------------------------------------------------------------
# crops and embeddings
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _CropSet:
    """In-memory PNG crops, shaped like a protocol for :func:`frmask.embed.pipeline.embed_protocol`."""

    name: str
    keys: list
    blobs: list

    @property
    def images(self):
        from frmask.protocols.base import ImageEntry

        return [ImageEntry(k, None, "none") for k in self.keys]

    def image_bytes(self, index: int) -> bytes:
        return self.blobs[index]


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def aligned_crops(protocol, *, detector: str = "yunet", threads: int = 2, progress=None):
    """``(crops, failures)``: every image of ``protocol`` as an aligned 112x112 RGB crop (None where it failed)
    and ``{index: reason}`` of the failures (unreadable, no face), prepared as ``frmask score`` prepares them."""
    from concurrent.futures import ThreadPoolExecutor

    from frmask.embed.pipeline import _Preparer

    prepare = _Preparer((SIZE, SIZE), detector, None)

    def one(i):
        return prepare(protocol.image_bytes(i), protocol.images[i].align, i)

    crops, failures = [], {}
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for i, crop in enumerate(pool.map(one, range(len(protocol.images)))):
            if isinstance(crop, str):
                failures[i] = crop
                crops.append(None)
            else:
                crops.append(crop)
            if progress is not None:
                progress(1)
    return crops, failures


def _embed(embedder, name: str, crops: dict, n: int, *, cache, threads: int, progress, counts: dict) -> np.ndarray:
    """Embeddings (n, D) of ``crops`` (index -> RGB crop); NaN rows for indices without a crop. ``counts`` adds up
    how many came from the cache and how many were computed."""
    from frmask.embed.pipeline import embed_protocol

    order = sorted(crops)
    images = _CropSet(name, [f"{name}#{i}" for i in order], [_png(crops[i]) for i in order])
    emb = embed_protocol(images, embedder, cache=cache, threads=threads, progress=progress)
    counts["cached"] = counts.get("cached", 0) + emb.n_cached
    counts["computed"] = counts.get("computed", 0) + emb.n_computed
    if emb.failures:
        first = next(iter(emb.failures.items()))
        raise ValueError(f"{name}: crop {images.keys[first[0]]} could not be embedded ({first[1]})")
    out = np.full((n, emb.embeddings.shape[1]), np.nan, np.float32)
    out[order] = emb.embeddings
    return out


def masked_crops(variant: Variant, crops: list, indices) -> dict:
    """``{i: crop i with the variant's mask}`` for ``indices`` (crops that failed are left out)."""
    from frmask.synth.benchmark import prepare_template, render_one, render_state

    spec = variant.spec()
    state = render_state(spec, 0, "effect", prepare_template(spec))
    return {i: render_one(state, crops[i], i, state["colorize"](i))[0] for i in indices if crops[i] is not None}


# ---------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class EffectResult:
    """Everything an effect run found; :meth:`to_dict` is the content of ``effect.json``."""

    run: dict
    baseline: dict
    thresholds: dict
    variants: list
    scores: dict = field(default_factory=dict)  # label ("baseline" or a variant's) -> pair scores
    embedding: dict = field(default_factory=dict)  # {"cached": n, "computed": n}: how the embeddings were found

    def to_dict(self) -> dict:
        return {"run": self.run, "baseline": self.baseline, "thresholds": self.thresholds, "variants": self.variants}


def _pair_scores(ref: np.ndarray, probe: np.ndarray, protocol) -> np.ndarray:
    from types import SimpleNamespace

    from frmask.embed.pipeline import pair_scores

    n = len(ref)
    return pair_scores(SimpleNamespace(pair_a=protocol.pair_a, pair_b=protocol.pair_b + n), np.vstack([ref, probe]))


def baseline_thresholds(genuine, impostor, targets, *, fta: str = "reject") -> dict:
    """``{target key: OperatingPoint}``: the strict ISO threshold of every FMR target on the baseline scores.
    A target below the resolution 1/N_impostor raises ValueError saying what resolution the set gives."""
    from frmask.metrics import fnmr_at_fmr

    points = {}
    for target in targets:
        op = fnmr_at_fmr(genuine, impostor, target, fta=fta)
        if op.below_resolution:
            raise ValueError(f"target FMR {target:g} is below the baseline's resolution: its {op.n_impostor:,} "
                             f"impostor comparisons give FMR steps of 1/{op.n_impostor:,} = {1 / op.n_impostor:.3g}; "
                             f"use --fmr {1 / op.n_impostor:.3g} or more, or a larger set")
        points[target_key(target)] = op
    return points


class _Stats:
    """The bootstrap side of one variant: intervals of any statistic of its (genuine, impostor) scores."""

    def __init__(self, g, i, sg, si, *, level, n_boot, seed, base_g=None):
        self.g, self.i, self.sg, self.si = g, i, sg, si
        self.level, self.n_boot, self.seed = level, n_boot, seed
        self.base_g = base_g  # the baseline's genuine scores, pair for pair, for the paired ratio interval

    def ci(self, statistic) -> list | None:
        if self.level is None:
            return None
        from frmask.metrics import bootstrap_ci

        subjects = {} if self.sg is None else dict(genuine_subjects=self.sg, impostor_subjects=self.si)
        iv = bootstrap_ci(self.g, self.i, statistic, n_boot=self.n_boot, level=self.level, seed=self.seed, **subjects)
        return [iv.low, iv.high]

    def ratio_ci(self, threshold: float, fta: str) -> list | None:
        """Paired bootstrap interval of FNMR(variant) / FNMR(baseline) at ``threshold``: each resample draws the
        same subjects (pairs) for both, as :meth:`ci` does; resamples whose baseline has no false non-match have
        no ratio and are skipped; None when more than half of them are."""
        if self.level is None or self.base_g is None:
            return None
        from frmask.metrics import rates_at_threshold
        from frmask.metrics.intervals import bootstrap_resamples, percentile_interval

        def fnmr(g):
            return rates_at_threshold(g, np.zeros(1), threshold, fta=fta).fnmr  # FNMR needs no impostor score

        subjects = {} if self.sg is None else dict(genuine_subjects=self.sg, impostor_subjects=self.si)
        values = []
        g_index = np.arange(len(self.g), dtype=np.float64)  # resample pair indices, then read both score sets
        i_index = np.arange(len(self.i), dtype=np.float64)
        for gb, _ in bootstrap_resamples(g_index, i_index, n_boot=self.n_boot, seed=self.seed, **subjects):
            idx = gb.astype(np.int64)
            if idx.size:
                base = fnmr(self.base_g[idx])
                if base > 0:
                    values.append(fnmr(self.g[idx]) / base)
        if len(values) * 2 < self.n_boot:
            return None
        return list(percentile_interval(values, self.level))


def score_summary(genuine, impostor) -> dict:
    """``genuine_mean``, ``genuine_min`` and ``impostor_mean`` of the acquired scores (NaN, a failure to acquire,
    left out; None when nothing is left): how far a mask moves the scores, also where no rate changes."""
    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    g, i = g[~np.isnan(g)], i[~np.isnan(i)]
    return {"genuine_mean": float(g.mean()) if g.size else None, "genuine_min": float(g.min()) if g.size else None,
            "impostor_mean": float(i.mean()) if i.size else None}


def variant_figures(genuine, impostor, points: dict, baseline_fixed: dict, *, fta: str = "reject", stats=None) -> dict:
    """The figures of one variant's scores: ``eer`` and per target key ``fixed`` (at the baseline threshold of
    ``points``: fnmr, fmr, counts, ``fnmr_ratio`` to ``baseline_fixed[key]``) and ``recalibrated`` (its own
    strict point), each rate with a ``*_ci`` interval when ``stats`` bootstraps."""
    from frmask.metrics import eer, fnmr_at_fmr, fnmr_ratio, rates_at_threshold

    stats = stats or _Stats(genuine, impostor, None, None, level=None, n_boot=0, seed=0)
    out = {"eer": float(eer(genuine, impostor, fta=fta)), "eer_ci": stats.ci(lambda g, i: eer(g, i, fta=fta)),
           **score_summary(genuine, impostor), "targets": {}}
    for key, op in points.items():
        t = op.threshold
        fixed = rates_at_threshold(genuine, impostor, t, fta=fta)
        own = fnmr_at_fmr(genuine, impostor, float(key), fta=fta)
        out["targets"][key] = {
            "fixed": {"threshold": t, "fnmr": fixed.fnmr, "fmr": fixed.fmr,
                      "false_non_matches": fixed.false_non_matches, "false_matches": fixed.false_matches,
                      "fnmr_ratio": fnmr_ratio(fixed.fnmr, baseline_fixed[key]),
                      "fnmr_ratio_ci": stats.ratio_ci(t, fta),
                      "fnmr_ci": stats.ci(lambda g, i, t=t: rates_at_threshold(g, i, t, fta=fta).fnmr),
                      "fmr_ci": stats.ci(lambda g, i, t=t: rates_at_threshold(g, i, t, fta=fta).fmr)},
            "recalibrated": {"threshold": own.threshold, "fnmr": own.fnmr, "fmr": own.fmr,
                             "below_resolution": own.below_resolution,
                             "fnmr_ci": stats.ci(lambda g, i, k=float(key): fnmr_at_fmr(g, i, k, fta=fta).fnmr)},
        }
    return out


def run_effect(embedder, protocol, variants: list, *, targets=DEFAULT_TARGETS, both: bool = False,
               detector: str = "yunet", cache=None, threads: int = 2, fta: str = "reject", ci: float | None = None,
               n_boot: int = 1000, seed: int = 0, progress=None, model_name: str = "", extra: dict | None = None,
               grid: dict | None = None) -> EffectResult:
    """The mask-effect analysis of ``embedder`` on ``protocol`` over ``variants`` (module docstring).

    ``progress(desc, total)`` returns a tqdm-like bar (``update``, ``close``) for each stage: aligning, the
    baseline, and each variant. ``ci``: a confidence level for subject-bootstrap intervals (``n_boot``
    resamples, ``seed``), or None.
    """
    import hashlib

    from frmask._version import __version__
    from frmask.metrics import verification_report

    if not variants:
        raise ValueError("no variant to measure: the grid is empty")
    targets = tuple(dict.fromkeys(float(t) for t in targets))
    if not targets:
        raise ValueError("give at least one FMR target (--fmr)")
    n_impostor = int(np.count_nonzero(~protocol.genuine))
    for target in targets:  # the resolution check before any work (fta="exclude" may lower N_I: checked again)
        if target * n_impostor < 1:
            raise ValueError(f"target FMR {target:g} is below the baseline's resolution: its {n_impostor:,} impostor "
                             f"comparisons give FMR steps of 1/{n_impostor:,} = {1 / n_impostor:.3g}; use --fmr "
                             f"{1 / n_impostor:.3g} or more, or a larger set")
    progress = progress or (lambda desc, total: _NoBar())
    n = len(protocol.images)
    bar = progress(f"aligning {protocol.name}", n)
    try:
        crops, failures = aligned_crops(protocol, detector=detector, threads=threads, progress=bar.update)
    finally:
        bar.close()
    if len(failures) == n:
        first = next(iter(failures.items()))
        raise ValueError(f"no image of {protocol.name} could be aligned (e.g. {protocol.images[first[0]].key}: "
                         f"{first[1]})")
    genuine = protocol.genuine

    def split(scores):
        return scores[genuine], scores[~genuine]

    counts: dict = {"cached": 0, "computed": 0}
    bar = progress("baseline", n - len(failures))
    try:
        base_emb = _embed(embedder, f"{protocol.name}/none", {i: c for i, c in enumerate(crops) if c is not None}, n,
                          cache=cache, threads=threads, progress=bar.update, counts=counts)
    finally:
        bar.close()
    base_scores = _pair_scores(base_emb, base_emb, protocol)
    bg, bi = split(base_scores)
    points = baseline_thresholds(bg, bi, targets, fta=fta)
    report = verification_report(bg, bi, fta=fta, fmr_targets=targets)
    subjects = (None, None)
    if protocol.subjects_a is not None:
        sa, sb = protocol.subjects_a, protocol.subjects_b
        subjects = (sa[genuine], np.column_stack([sa[~genuine], sb[~genuine]]))

    def stats(g, i):
        return _Stats(g, i, *subjects, level=ci, n_boot=n_boot, seed=seed, base_g=bg)

    base_fixed = {key: op.fnmr for key, op in points.items()}
    baseline = {**report.to_dict(), "notes": list(report.notes),
                **{k: v for k, v in variant_figures(bg, bi, points, base_fixed, fta=fta, stats=stats(bg, bi)).items()
                   if k in ("targets", "eer_ci", "genuine_mean", "genuine_min", "impostor_mean")}}
    probes = sorted(set(protocol.pair_b.tolist()) | (set(protocol.pair_a.tolist()) if both else set()))
    rows, all_scores = [], {"baseline": base_scores}
    from frmask.synth.colors import named_color
    from frmask.synth.shapes import SHAPE_NAMES

    n_probes = sum(crops[i] is not None for i in probes)
    for k, variant in enumerate(variants, start=1):
        bar = progress(f"variant {k}/{len(variants)} {variant.label}", n_probes)
        try:
            masked = masked_crops(variant, crops, probes)
            emb = _embed(embedder, f"{protocol.name}/{variant.label}", masked, n, cache=cache, threads=threads,
                         progress=bar.update, counts=counts)
        finally:
            bar.close()
        scores = _pair_scores(emb if both else base_emb, emb, protocol)
        all_scores[variant.label] = scores
        g, i = split(scores)
        rows.append({"label": variant.label, "mask_type": variant.mask_type, "shape": SHAPE_NAMES[variant.mask_type],
                     "coverage": variant.coverage, "color": variant.color,
                     "rgb": [int(v) for v in named_color(variant.color)],
                     "n_genuine": int(g.size), "n_impostor": int(i.size),
                     "n_fta": int(np.count_nonzero(np.isnan(scores))),
                     **variant_figures(g, i, points, base_fixed, fta=fta, stats=stats(g, i))})
    run = {
        "frmask": __version__,
        "model": {"name": model_name, "sha256": hashlib.sha256(embedder.model_bytes).hexdigest(),
                  "flip": embedder.flip},
        "protocol": {"name": protocol.name, "description": protocol.description, "n_images": n,
                     "n_pairs": protocol.n_pairs, **(extra or {})},
        "grid": {k: list(v) for k, v in (grid or {}).items()},
        "masked": "both" if both else "probe",
        "targets": [target_key(t) for t in targets],
        "detector": detector, "fta": fta, "n_failures": len(failures),
        "failures": {protocol.images[i].key: r for i, r in sorted(failures.items())},
        "ci": None if ci is None else {"level": ci, "n_boot": n_boot, "seed": seed,
                                       "method": "subjects" if subjects[0] is not None else "pairs"},
    }
    thresholds = {key: op.threshold for key, op in points.items()}
    return EffectResult(run, baseline, thresholds, rows, all_scores, counts)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def load_effect_protocol(name: str, data, *, root=None):
    """The unmasked protocol of a mask-effect run: ``mfr2`` is MFR2's no-mask faces with every pair compared
    (:func:`frmask.protocols.mfr2.load_mfr2_unmasked`); any other name is :func:`frmask.protocols.load_protocol`'s
    protocol as it is (a ``.bin`` benchmark unmasked, a pairs CSV, an identity folder)."""
    key = str(name).strip().lower()
    if key == "mfr2":
        from frmask.protocols.mfr2 import load_mfr2_unmasked

        return load_mfr2_unmasked(data)
    from frmask.protocols import load_protocol

    return load_protocol(key, data, root=root)
