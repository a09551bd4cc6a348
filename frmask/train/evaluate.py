"""Periodic evaluation during training: evaluators are callables ``(embed_fn) -> dict[str, float]``.

``embed_fn(images)`` maps uint8 ``(N, 112, 112, 3)`` RGB aligned crops to float32 ``(N, E)``
L2-normalised embeddings (the signature of :meth:`frmask.embed.onnx_model.OnnxEmbedder.embed`), so an
evaluator written for an ONNX embedder (an MFR2 evaluator, say) runs on the student unchanged.
:func:`make_embed_fn` builds one from a backbone (eval mode, no gradient, optional flip: the embeddings
of the image and its mirror image are added before normalising, as insightface does).
:class:`BinEvaluator` scores an insightface ``.bin`` benchmark (LFW, CFP-FP, AgeDB-30, ...): cosine
scores of its pairs and :func:`frmask.metrics.accuracy.kfold_accuracy` (10 contiguous folds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["BinEvaluator", "make_embed_fn", "bin_evaluators", "config_evaluators"]

EmbedFn = Callable[[np.ndarray], np.ndarray]


def make_embed_fn(backbone, *, device="cpu", batch_size: int = 256, flip: bool = True, amp: bool = False,
                  amp_dtype: str = "bfloat16", channels_last: bool = False) -> EmbedFn:
    """An ``embed_fn`` running ``backbone`` in eval mode (its train/eval mode is restored afterwards), under
    autocast to ``amp_dtype`` when ``amp`` (on any device; the trainer asks for it on CUDA only)."""
    import torch

    device = torch.device(device)
    dtype = getattr(torch, amp_dtype)

    def embed(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (112, 112, 3) or images.dtype != np.uint8:
            raise ValueError(f"embed_fn expects uint8 (N, 112, 112, 3) RGB crops, got {images.dtype} "
                             f"{images.shape}")
        was_training = backbone.training
        backbone.eval()
        out = []
        try:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=amp):
                for first in range(0, len(images), batch_size):
                    x = torch.from_numpy(np.ascontiguousarray(images[first:first + batch_size]))
                    x = x.to(device).permute(0, 3, 1, 2).float().sub_(127.5).div_(127.5)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    e = backbone(x).float()
                    if flip:
                        e = e + backbone(x.flip(3)).float()
                    out.append(torch.nn.functional.normalize(e, dim=1).cpu().numpy())
        finally:
            backbone.train(was_training)
        if not out:
            return np.zeros((0, getattr(backbone, "embedding_size", 0)), np.float32)
        return np.concatenate(out).astype(np.float32)

    return embed


class BinEvaluator:
    """k-fold verification accuracy on an insightface ``.bin`` file; images are decoded once, on first use.

    Returns ``{"<name>_acc": mean, "<name>_std": std}`` with ``name`` the file's stem (``lfw``).
    """

    def __init__(self, path: str | Path, *, name: str | None = None, folds: int = 10) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"evaluation benchmark not found: {self.path}")
        self.name = name or self.path.stem
        self.folds = folds
        self._images: np.ndarray | None = None
        self._issame: np.ndarray | None = None

    def _load(self) -> None:
        from frmask.io.insightface_bin import decode_image, read_bin

        bench = read_bin(self.path)
        images = np.empty((len(bench.images), 112, 112, 3), np.uint8)
        for i, data in enumerate(bench.images):
            rgb = decode_image(data, i, source=self.path)
            if rgb.shape != (112, 112, 3):
                raise ValueError(f"{self.path}: image {i} is {rgb.shape[1]}x{rgb.shape[0]}, expected 112x112")
            images[i] = rgb
        self._images, self._issame = images, np.asarray(bench.issame, dtype=bool)

    def __call__(self, embed_fn: EmbedFn) -> dict[str, float]:
        from frmask.metrics.accuracy import kfold_accuracy

        if self._images is None:
            self._load()
        emb = embed_fn(self._images)
        scores = np.einsum("ij,ij->i", emb[0::2].astype(np.float64), emb[1::2].astype(np.float64))
        result = kfold_accuracy(scores, self._issame, self.folds)
        return {f"{self.name}_acc": float(result.mean), f"{self.name}_std": float(result.std)}

    def __repr__(self) -> str:
        return f"BinEvaluator({str(self.path)!r}, folds={self.folds})"


def bin_evaluators(paths) -> list[BinEvaluator]:
    return [BinEvaluator(p) for p in paths]


def config_evaluators(config) -> list:
    """The evaluators a training config asks for: its ``eval_bins`` (10-fold accuracy) and, with
    ``eval_mfr2``, MFR2 by real-mask scenario (:class:`frmask.scoring.ProtocolEvaluator`: best accuracy, TPR at
    FAR 0.2 %, FNMR at FMR 1 % and EER of every scenario, keys ``mfr2/<scenario>/<key>``)."""
    evaluators: list = bin_evaluators(config.eval_bins)
    if config.eval_mfr2:
        from frmask.protocols import load_protocol
        from frmask.scoring import ProtocolEvaluator

        evaluators.append(ProtocolEvaluator(load_protocol("mfr2", config.eval_mfr2)))
    return evaluators
