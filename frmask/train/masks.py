"""Synthetic-mask augmentation of the student image: what each sample draws, and the two places to draw it.

* :meth:`MaskAugment.draw` gives a sample's mask parameters (:class:`MaskDraw`: masked or not, the mask type,
  the colour, the anchor shifts) from its own random streams, so they never depend on the worker, the batch
  or the order of samples.
* ``augment="worker"``: :meth:`MaskAugment.augment` renders the mask on the CPU inside the DataLoader worker
  (:mod:`frmask.synth.render`), and the worker returns float tensors.
* ``augment="batch"``: the worker returns the decoded, flipped uint8 image and the parameters
  (:func:`batch_fields`); :class:`BatchAugment` then draws every mask of the batch on the training device in
  one pass (:class:`frmask.synth.torch_render.BatchMaskRenderer`) and normalises the teacher's clean and the
  student's masked tensors there. Both paths use the same parameters; their pixels agree within the
  tolerance stated in :mod:`frmask.synth.torch_render`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from frmask.synth.seeding import image_rng

__all__ = [
    "AUGMENT_DEVICES",
    "DEFAULT_MASK_TYPES",
    "BatchAugment",
    "MaskAugment",
    "MaskDraw",
    "batch_fields",
    "resolve_augment",
]

SIZE = 112
DEFAULT_MASK_TYPES = ("surgical", "n95", "kn95", "cloth")
AUGMENT_DEVICES = ("auto", "worker", "batch")

_TEMPLATES: dict = {}  # MaskSpec -> (template, shared warp or None); per process, kept alive on purpose
_PLACEMENTS: dict = {}  # MaskSpec -> (homography, level) of the unshifted template
_PLACERS: dict = {}  # MaskSpec -> JitterPlacer of the shifted ones
_BATCH_PLACERS: dict = {}  # MaskSpec -> BatchPlacer of the shifted ones (the device half's)
_PALETTES: dict = {}  # colours name -> Palette or None (uniform)
_FRAME: dict = {}


def _frame_landmarks() -> dict:
    if not _FRAME:
        from frmask.synth.benchmark import frame_landmarks

        _FRAME.update(frame_landmarks())
    return _FRAME


def _prepared(spec):
    """The template of ``spec`` and its shared warp (None with jitter), built once per process."""
    entry = _TEMPLATES.get(spec)
    if entry is None:
        from frmask.synth.benchmark import prepare_template

        entry = _TEMPLATES[spec] = prepare_template(spec)
    return entry


def _palette(colors: str):
    if colors not in _PALETTES:
        from frmask.synth.colors import load_palette

        _PALETTES[colors] = None if colors == "uniform" else load_palette(colors)
    return _PALETTES[colors]


def resolve_augment(augment: str, device) -> str:
    """``"worker"`` or ``"batch"``: ``augment`` itself, or for ``"auto"`` the batch path on CUDA devices and the
    per-sample worker path elsewhere."""
    if augment not in AUGMENT_DEVICES:
        raise ValueError(f"augment_device must be one of {', '.join(AUGMENT_DEVICES)}, got {augment!r}")
    if augment != "auto":
        return augment
    return "batch" if str(device).startswith("cuda") else "worker"


@dataclass(frozen=True)
class MaskDraw:
    """One sample's mask: ``kind`` (index into :attr:`MaskAugment.specs`), ``color`` (uint8 RGB (3,)),
    ``jitter`` (float64 (n_anchors, 2) anchor shifts in pixels, or None when the augmentation has none)."""

    kind: int
    color: np.ndarray
    jitter: np.ndarray | None


@dataclass(frozen=True)
class MaskAugment:
    """Synthetic-mask augmentation of the student image.

    ``prob``: probability that a sample is masked. ``mask_types``: built-in mask types
    (:data:`frmask.synth.shapes.MASK_TYPES`), or names in a MaskTheFace ``masks.cfg`` when ``template`` is such
    a folder; each masked sample draws one uniformly. ``template``: None (built-in masks), the MaskInv template
    ``maskinv_mask_img.png`` (then ``mask_types`` is not used) or a MaskTheFace folder / ``masks.cfg``.
    ``colors``: a palette name or ``.csv`` (``realistic``) or ``uniform`` (uniform random RGB, the paper's).
    ``jitter``: maximum anchor shift in pixels of the 112 crop (uniform per coordinate; 0 = no shift).
    """

    prob: float = 0.5
    mask_types: tuple = DEFAULT_MASK_TYPES
    colors: str = "realistic"
    jitter: float = 3.0
    template: str | None = None

    def __post_init__(self):
        types = (self.mask_types,) if isinstance(self.mask_types, str) else tuple(self.mask_types)
        if not types or not all(isinstance(t, str) and t for t in types):
            raise ValueError(f"mask_types must be a non-empty sequence of names, got {self.mask_types!r}")
        object.__setattr__(self, "mask_types", types)
        prob = float(self.prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mask probability must lie in [0, 1], got {self.prob!r}")
        object.__setattr__(self, "prob", prob)
        jitter = float(self.jitter)
        if not (np.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"jitter must be finite and >= 0 pixels, got {self.jitter!r}")
        object.__setattr__(self, "jitter", jitter)
        if self.template is not None:
            object.__setattr__(self, "template", os.fspath(self.template))
        if self.colors != "uniform" and str(self.colors).lower().endswith(".txt"):
            raise ValueError(f"colors={self.colors!r}: training draws colours from a palette or 'uniform'; "
                             f"index-matched colour files are for benchmarks")

    @functools.cached_property
    def specs(self) -> tuple:
        """One :class:`~frmask.synth.benchmark.MaskSpec` per mask type (a single one for the MaskInv template)."""
        from frmask.synth.benchmark import MaskSpec

        types = self.mask_types
        if self.template is not None and os.path.basename(self.template) == "maskinv_mask_img.png":
            types = ("maskinv",)
        return tuple(MaskSpec(mask_type=t, template=self.template, colors=self.colors, jitter=self.jitter)
                     for t in types)

    def templates(self) -> tuple:
        """The :class:`~frmask.synth.template.MaskTemplate` of each spec (the per-process prepared objects)."""
        return tuple(_prepared(spec)[0] for spec in self.specs)

    def prepare(self) -> MaskAugment:
        """Load the templates and the palette now (errors early, and the per-process cache warm); returns self."""
        for spec in self.specs:
            _prepared(spec)
        _palette(self.colors)
        return self

    def draw(self, seed: int, dataset: str, index: int) -> MaskDraw | None:
        """The mask of sample ``index`` of ``dataset``, or None when it is not masked.

        Draws, in this order: stream ``"mask"``: u ~ U[0, 1) (masked when ``u < prob``), then the mask type;
        stream ``"color"``: the colour; stream ``"jitter"``: the anchor shifts (only with ``jitter > 0``).
        """
        from frmask.synth.colors import random_color
        from frmask.synth.render import jitter_offsets

        specs = self.specs
        rng = image_rng(seed, dataset, index, "mask")
        masked = bool(rng.random() < self.prob)
        kind = int(rng.integers(len(specs)))
        if not masked:
            return None
        template, shared = _prepared(specs[kind])
        color = random_color(image_rng(seed, dataset, index, "color"), _palette(self.colors))
        offsets = None
        if shared is None:
            offsets = jitter_offsets(image_rng(seed, dataset, index, "jitter"), len(template.landmarks), self.jitter)
        return MaskDraw(kind, np.asarray(color, dtype=np.uint8), offsets)

    def placement(self, draw: MaskDraw) -> tuple[np.ndarray, int]:
        """``(homography, level)`` of ``draw`` in the aligned 112 frame (:func:`~frmask.synth.render.place_template`)."""
        from frmask.synth.render import JitterPlacer, place_template

        spec = self.specs[draw.kind]
        if draw.jitter is None:
            if spec not in _PLACEMENTS:
                _PLACEMENTS[spec] = place_template(_prepared(spec)[0], _frame_landmarks(), (SIZE, SIZE))
            return _PLACEMENTS[spec]
        if spec not in _PLACERS:  # place_template's result, with the checks of the unshifted anchors done once
            _PLACERS[spec] = JitterPlacer(_prepared(spec)[0], _frame_landmarks(), (SIZE, SIZE), self.jitter)
        return _PLACERS[spec](draw.jitter)

    @functools.cached_property
    def anchor_count(self) -> int:
        """The most anchors of any template: the rows of :func:`batch_fields`' ``mask_jitter``."""
        return max(len(t.landmarks) for t in self.templates())

    def placements(self, kinds, jitters) -> tuple[np.ndarray, np.ndarray]:
        """``(homographies float64 (N, 3, 3), levels int64 (N,))`` of N masked samples at once: ``kinds`` (N,)
        and ``jitters`` (N, :attr:`anchor_count`, 2) as :func:`batch_fields` carries them (a template with
        fewer anchors reads the first rows). Row i is :meth:`placement` of that draw, the homography fitted
        batch-wise (:class:`~frmask.synth.batch_placement.BatchPlacer`, equal up to the fit's rounding)."""
        from frmask.synth.batch_placement import BatchPlacer

        kinds = np.asarray(kinds, np.int64).reshape(-1)
        jitters = np.asarray(jitters, np.float64)
        homographies, levels = np.empty((len(kinds), 3, 3)), np.zeros(len(kinds), np.int64)
        for kind in np.unique(kinds).tolist():
            rows = np.flatnonzero(kinds == kind)
            spec = self.specs[kind]
            if _prepared(spec)[1] is not None:  # no jitter: the one placement of the template
                homographies[rows], levels[rows] = self.placement(MaskDraw(kind, _NO_COLOR, None))
                continue
            if spec not in _BATCH_PLACERS:
                self.placement(MaskDraw(kind, _NO_COLOR, np.zeros((len(_prepared(spec)[0].landmarks), 2))))
                _BATCH_PLACERS[spec] = BatchPlacer(_PLACERS[spec])
            n = len(_prepared(spec)[0].landmarks)
            homographies[rows], levels[rows] = _BATCH_PLACERS[spec](jitters[rows, :n])
        return homographies, levels

    def augment(self, image: np.ndarray, seed: int, dataset: str, index: int) -> tuple[np.ndarray, bool]:
        """``(student image, masked)`` for an aligned uint8 (112, 112, 3) RGB ``image`` (never modified), drawn
        on the CPU with the parameters of :meth:`draw`. Unmasked: ``image`` itself."""
        from frmask.synth.render import apply_mask, warp_template

        draw = self.draw(seed, dataset, index)
        if draw is None:
            return image, False
        template, shared = _prepared(self.specs[draw.kind])
        if draw.jitter is not None:
            shared = warp_template(template, _frame_landmarks(), (SIZE, SIZE), jitter=draw.jitter)
        return apply_mask(image, shared, draw.color), True


def batch_fields(mask: MaskAugment | None, draw: MaskDraw | None) -> dict:
    """The mask parameters one sample carries to :class:`BatchAugment`: ``mask_kind`` (int), ``mask_color``
    (float32 (3,) RGB), ``mask_jitter`` (float64 (:attr:`MaskAugment.anchor_count`, 2) anchor shifts, zero
    padded; zeros without jitter), as Python ints and numpy arrays (``torch.utils.data.default_collate`` makes
    one tensor of each per batch, far cheaper than a tensor per sample). The homographies are fitted from
    them batch-wise in :class:`BatchAugment` (:meth:`MaskAugment.placements`), not per sample in the worker.
    Unmasked samples carry zeros (never read)."""
    if mask is None:
        return {"mask_kind": 0, "mask_color": _NO_COLOR, "mask_jitter": _NO_JITTER}
    jitter = np.zeros((mask.anchor_count, 2))
    if draw is None:
        return {"mask_kind": 0, "mask_color": _NO_COLOR, "mask_jitter": jitter}
    if draw.jitter is not None:
        jitter[:len(draw.jitter)] = draw.jitter
    return {"mask_kind": int(draw.kind), "mask_color": draw.color.astype(np.float32), "mask_jitter": jitter}


_NO_COLOR = np.zeros(3, np.float32)
_NO_JITTER = np.zeros((1, 2))


class BatchAugment:
    """The device half of ``augment="batch"``: a DataLoader batch of uint8 images and mask parameters ->
    the trainer's batch on ``device``: ``teacher`` (clean) and ``student`` (masked where ``masked``) float32
    (B, 3, 112, 112) in [-1, 1] (``(x - 127.5) / 127.5``), ``label``, ``masked``.

    The masks are drawn in the aligned frame and mirrored for the samples whose image the worker flipped, so
    teacher and student share the flip, as on the worker path.
    """

    def __init__(self, mask: MaskAugment | None, device="cpu"):
        import torch

        from frmask.synth.torch_render import BatchMaskRenderer

        self.device = torch.device(device)
        self.mask = mask
        self.renderer = None if mask is None else BatchMaskRenderer(mask.templates(), self.device)

    def __call__(self, batch: dict) -> dict:
        images = batch["image"].to(self.device, non_blocking=True)
        pixels = images.float()
        teacher = pixels.sub(127.5).div_(127.5)
        student = teacher
        masked = batch["masked"]
        if self.renderer is not None and bool(masked.any()):
            rows = masked.nonzero().reshape(-1)
            kinds = batch["mask_kind"][rows]
            homographies, levels = self.mask.placements(kinds.cpu().numpy(),
                                                         batch["mask_jitter"][rows].cpu().numpy())
            self.renderer.blend_into(pixels, rows, kinds, levels, homographies, batch["mask_color"][rows],
                                     flips=batch["flip"][rows])
            student = pixels.sub_(127.5).div_(127.5)  # unmasked rows: the teacher's values, bit for bit
        return {"teacher": teacher, "student": student, "label": batch["label"].to(self.device, non_blocking=True),
                "masked": masked}

    def batches(self, loader):
        """An iterable over ``loader`` giving each batch through this object."""
        return _Mapped(loader, self)


class _Mapped:
    def __init__(self, loader, fn):
        self.loader, self.fn = loader, fn

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield self.fn(batch)
