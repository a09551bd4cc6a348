"""ONNX export of a trained backbone, verified against torch with onnxruntime.

The exported graph takes ``input``: float32 ``(N, 3, 112, 112)``, RGB, ``(x - 127.5) / 127.5``, NCHW,
with a dynamic batch dimension, and gives ``embedding``: float32 ``(N, E)``, not normalised (the
insightface convention, which :class:`frmask.embed.onnx_model.OnnxEmbedder` reads with its default
profile). The backbone is exported in eval mode on the CPU with torch's TorchScript-based exporter
(``dynamo=False``; deprecated in torch 2.13 but working), or with ``dynamo=True`` by the torch.export-based
one, which needs the ``onnxscript`` package (not a dependency of frmask). After export the model is
run with onnxruntime on a batch of a size other than the one traced, and the largest absolute difference
to the torch output must be <= ``tolerance`` (1e-4) times max(1, the largest output magnitude), else
ValueError and nothing is written (embeddings of trained models have magnitudes of a few units; a barely
trained one, whose BatchNorm running statistics do not yet fit its weights, can give values in the
thousands, where float32 rounding alone exceeds 1e-4 absolute). The file is written atomically.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ExportResult", "INPUT_NAME", "OUTPUT_NAME", "export_onnx", "load_trained_backbone", "onnx_bytes"]

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """The written model, its source, embedding size, the verified max abs difference to torch and the
    largest torch output magnitude of the check."""

    path: Path
    source: str
    step: int | None
    embedding_size: int
    max_abs_diff: float
    max_abs_output: float


def load_trained_backbone(path: str | Path):
    """``(backbone in eval mode on the CPU, source text, step or None)`` from a run folder, a training
    checkpoint or a bare backbone state dict (see :func:`frmask.train.teacher.load_teacher`)."""
    from frmask.train.teacher import load_teacher

    teacher = load_teacher(path, device="cpu", amp=False, channels_last=False)
    if not hasattr(teacher, "model"):
        raise ValueError(f"{path}: export needs a torch checkpoint or run folder, not an ONNX model")
    step = None
    source = teacher.source
    if source.endswith(")") and "(step " in source:
        step = int(source.rsplit("(step ", 1)[1][:-1])
    model = teacher.model.float().eval()
    return model, source, step


def onnx_bytes(model, *, opset: int = DEFAULT_OPSET, input_size: int = 112, dynamo: bool = False) -> bytes:
    """The ONNX serialisation of ``model`` (eval mode, CPU) with a dynamic batch dimension."""
    import torch

    buffer = io.BytesIO()
    dummy = torch.zeros(2, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        if dynamo:
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise ValueError("the torch.export-based ONNX exporter (dynamo) needs the onnxscript package: "
                                 "pip install onnxscript, or export without dynamo") from None
            with torch.no_grad():
                program = torch.onnx.export(model, (dummy,), dynamo=True, input_names=[INPUT_NAME],
                                            output_names=[OUTPUT_NAME], opset_version=opset,
                                            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            return program.model_proto.SerializeToString()
        with torch.no_grad():
            torch.onnx.export(model, (dummy,), buffer, dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              do_constant_folding=True)
    return buffer.getvalue()


def verify_onnx(data: bytes, model, *, batch: int = 3, seed: int = 0, input_size: int = 112
                ) -> tuple[float, float]:
    """``(max abs difference between onnxruntime and torch, max abs torch output)`` on ``batch`` random
    pm1 images."""
    import torch

    from frmask._onnx import make_session

    rng = np.random.default_rng(seed)
    x = ((rng.integers(0, 256, (batch, 3, input_size, input_size)) - 127.5) / 127.5).astype(np.float32)
    session = make_session(data, "cpu")
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    if got.shape != want.shape:
        raise ValueError(f"exported model gives shape {got.shape}, torch {want.shape}")
    return (float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))),
            float(np.max(np.abs(want))))


def export_onnx(source: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET,
                tolerance: float = 1e-4, dynamo: bool = False) -> ExportResult:
    """Export the backbone of ``source`` (run folder, checkpoint or backbone state dict) to ``out``."""
    from frmask._atomic import write_bytes_atomic

    model, text, step = load_trained_backbone(source)
    input_size = int(getattr(model, "input_size", 112))
    data = onnx_bytes(model, opset=opset, input_size=input_size, dynamo=dynamo)
    diff, scale = verify_onnx(data, model, input_size=input_size)
    if not diff <= tolerance * max(1.0, scale):
        raise ValueError(f"exported ONNX model differs from torch by {diff:.3g} (> {tolerance:g} x "
                         f"max(1, {scale:.3g})); not written")
    out = Path(out)
    write_bytes_atomic(out, data)
    return ExportResult(out, text, step, int(model.embedding_size), diff, scale)
