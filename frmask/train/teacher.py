"""The frozen teacher of MaskInv distillation: a torch backbone or an ONNX model.

A teacher is called on a batch of clean images as the student gets them: float32 ``(B, 3, 112, 112)``,
RGB, ``(x - 127.5) / 127.5``, on the training device, and returns float32 ``(B, E)`` embeddings (not
normalised; :func:`frmask.train.distill.kd_loss` normalises) on that device, without gradient.

:func:`load_teacher` accepts

- a run folder (its latest checkpoint) or a training checkpoint file: the student backbone saved there;
- a bare backbone state dict (``backbone.pth`` of insightface / ElasticFace, also wrapped in
  ``state_dict`` / ``model`` or with ``module.`` prefixes): the iResNet depth and the embedding size are
  read from its keys and shapes;
- an ``.onnx`` model, run with onnxruntime: its input layout, size and names are read from the graph,
  channel order and pixel normalisation default to RGB / ``pm1`` (the exported students' convention) and
  may be overridden (``channels="BGR"``, ``normalization="raw"``, as :class:`frmask.embed.onnx_model.ModelProfile`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["TorchTeacher", "OnnxTeacher", "load_teacher", "backbone_from_state_dict"]


class TorchTeacher:
    """A frozen backbone in eval mode; bf16 autocast and channels_last on CUDA when asked."""

    def __init__(self, backbone, *, device="cpu", amp: bool = True, channels_last: bool = True,
                 source: str = "") -> None:
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.amp = amp and self.cuda
        self.channels_last = channels_last and self.cuda
        backbone = backbone.to(self.device).eval()
        if self.channels_last:
            backbone = backbone.to(memory_format=torch.channels_last)
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.model = backbone
        self.embedding_size = int(getattr(backbone, "embedding_size", 0)) or self._probe()
        self.source = source

    def _probe(self) -> int:
        import torch

        return int(self(torch.zeros(2, 3, 112, 112, device=self.device)).shape[1])

    def __call__(self, images):
        import torch

        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(images).float()

    def __repr__(self) -> str:
        return f"TorchTeacher({self.source or type(self.model).__name__}, {self.embedding_size}-d)"


class OnnxTeacher:
    """An ONNX recognition model run with onnxruntime on the students' input (converted to its profile)."""

    def __init__(self, model: str | Path | bytes, *, device="cpu", threads: int = 0, **profile: Any) -> None:
        import numpy as np

        from frmask._onnx import make_session
        from frmask.embed.onnx_model import _model_bytes, detect_profile, prune_graph_inputs

        data = _model_bytes(model)
        self.profile = detect_profile(data, **profile)
        if self.profile.size != (112, 112):
            raise ValueError(f"ONNX teacher {model if not isinstance(model, bytes) else ''}: input size "
                             f"{self.profile.size[0]}x{self.profile.size[1]}, the student trains on 112x112")
        import torch

        self.device = torch.device(device)
        ort_device = "cuda" if self.device.type == "cuda" else "cpu"
        self.session = make_session(prune_graph_inputs(data), ort_device, threads)
        shape = next(i.shape for i in self.session.get_inputs() if i.name == self.profile.input_name)
        batch = shape[0] if shape else None
        self.fixed_batch = int(batch) if isinstance(batch, int) and batch > 0 else None
        self.source = str(model) if not isinstance(model, bytes) else "<bytes>"
        self._np = np
        self.embedding_size = int(self._run(np.zeros((1, 3, 112, 112), np.float32)).shape[1])

    def _prepare(self, x):
        """pm1 RGB NCHW float32 numpy -> the model's input."""
        np = self._np
        p = self.profile
        if p.channels == "BGR":
            x = x[:, ::-1]
        if p.normalization == "raw":
            x = x * 127.5 + 127.5
        elif p.normalization == "unit":
            x = (x * 127.5 + 127.5) / 255.0
        if p.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, x):
        np = self._np
        outputs = []
        step = self.fixed_batch or len(x)
        for first in range(0, len(x), step):
            chunk = x[first:first + step]
            count = len(chunk)
            if self.fixed_batch is not None and count < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - count,) + chunk.shape[1:], chunk.dtype)])
            out = self.session.run([self.profile.output_name], {self.profile.input_name: self._prepare(chunk)})[0]
            out = np.asarray(out, dtype=np.float32)
            if out.ndim < 2 or out.shape[0] != len(chunk):
                raise ValueError(f"ONNX teacher {self.source}: output {self.profile.output_name!r} has shape "
                                 f"{out.shape} for a batch of {len(chunk)}; expected (batch, embedding)")
            outputs.append(out[:count].reshape(count, -1))
        return np.concatenate(outputs)

    def __call__(self, images):
        import torch

        x = images.detach().float().cpu().numpy()
        return torch.from_numpy(self._run(x)).to(images.device)

    def __repr__(self) -> str:
        return f"OnnxTeacher({self.source}, {self.embedding_size}-d, {self.profile})"


# ------------------------------------------------------------------------------------------- loading

_LAYER_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def backbone_from_state_dict(state: dict, source: str = "state_dict"):
    """A fresh iResNet whose depth and embedding size match ``state`` (keys as insightface), loaded strictly."""
    from frmask.train.backbones import LAYERS, get_backbone, load_backbone_weights

    keys = {k.removeprefix("module.").removeprefix("backbone.") for k in state}
    blocks = [0, 0, 0, 0]
    for key in keys:
        m = _LAYER_KEY.match(key)
        if m:
            stage, block = int(m.group(1)) - 1, int(m.group(2))
            blocks[stage] = max(blocks[stage], block + 1)
    name = next((n for n, layers in LAYERS.items() if tuple(layers) == tuple(blocks)), None)
    if name is None:
        raise ValueError(f"{source}: blocks per stage {tuple(blocks)} match no iResNet "
                         f"({', '.join(f'{n} {v}' for n, v in LAYERS.items())})")
    fc = next((v for k, v in state.items() if k.removeprefix("module.").removeprefix("backbone.") == "fc.weight"),
              None)
    if fc is None:
        raise ValueError(f"{source}: no fc.weight in the state dict; not an iResNet backbone")
    model = get_backbone(name, embedding_size=int(fc.shape[0]))
    load_backbone_weights(model, state)
    return model


def load_teacher(spec: str | Path, *, device="cpu", amp: bool = True, channels_last: bool = True,
                 channels: str = "", normalization: str = ""):
    """A teacher from a run folder, a checkpoint, a backbone state dict or an ``.onnx`` model (module doc)."""
    import torch

    from frmask.train.checkpoint import FORMAT, resolve_checkpoint

    path = Path(spec).expanduser()
    if path.suffix.lower() == ".onnx":
        profile = {k: v for k, v in (("channels", channels), ("normalization", normalization)) if v}
        return OnnxTeacher(path, device=device, **profile)
    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        first = re.sub(r"\x1b\[[0-9;]*m", "", (str(exc).strip().splitlines() or [""])[0]).rstrip(". ")
        raise ValueError(f"{path}: not a readable weights file or checkpoint ({type(exc).__name__}: {first}; "
                         f"only tensors and plain values are loaded)") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        from frmask.train.backbones import get_backbone, load_backbone_weights

        config = data["config"]
        model = get_backbone(config["backbone"], embedding_size=config["embedding_size"])
        load_backbone_weights(model, data["backbone"])
        source = f"{path} (step {data['step']})"
    else:
        state = data
        for key in ("state_dict", "model", "backbone"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"teacher {path}: neither a training checkpoint nor a backbone state dict")
        model = backbone_from_state_dict(state, str(path))
        source = str(path)
    return TorchTeacher(model, device=device, amp=amp, channels_last=channels_last, source=source)
