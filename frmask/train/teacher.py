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

__all__ = ["TorchTeacher", "OnnxTeacher", "load_teacher", "load_torch_backbone", "backbone_from_state_dict"]


class TorchTeacher:
    """A frozen backbone in eval mode; autocast (``amp_dtype``) and channels_last on CUDA when asked."""

    def __init__(self, backbone, *, device="cpu", amp: bool = True, channels_last: bool = True,
                 amp_dtype: str = "bfloat16", source: str = "") -> None:
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.amp = amp and self.cuda
        self.amp_dtype = getattr(torch, amp_dtype)
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
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            return self.model(images).float()

    def __repr__(self) -> str:
        return f"TorchTeacher({self.source or type(self.model).__name__}, {self.embedding_size}-d)"


class OnnxTeacher:
    """An ONNX recognition model run by :class:`frmask.embed.onnx_model.OnnxEmbedder` (its session, profile,
    fixed-batch handling and output checks) on the students' input.

    The students' input tensors are pm1 encodings of uint8 pixels (what the training datasets give), so the
    pixels are recovered exactly (``round(x * 127.5 + 127.5)``) and handed to the embedder, which converts them
    to the model's profile. Returns the raw (unnormalised) embeddings as float32 on the input's device.
    """

    def __init__(self, model: str | Path | bytes, *, device="cpu", threads: int = 0, batch_size: int = 1024,
                 **profile: Any) -> None:
        import numpy as np
        import torch

        from frmask.embed.onnx_model import OnnxEmbedder

        self.device = torch.device(device)
        self.source = str(model) if not isinstance(model, bytes) else "<bytes>"
        self.embedder = OnnxEmbedder(model, device="cuda" if self.device.type == "cuda" else "cpu", threads=threads,
                                     batch_size=batch_size, **profile)
        self.profile = self.embedder.profile
        if self.profile.size != (112, 112):
            raise ValueError(f"ONNX teacher {self.source}: input size {self.profile.size[0]}x{self.profile.size[1]}, "
                             f"the student trains on 112x112")
        self.embedding_size = int(self.embedder._run(np.zeros((1, 112, 112, 3), np.uint8)).shape[1])

    def __call__(self, images):
        import numpy as np
        import torch

        pixels = images.detach().float().mul(127.5).add_(127.5).round_().clamp_(0, 255).to(torch.uint8)
        raw = self.embedder._run(pixels.permute(0, 2, 3, 1).cpu().numpy(), f" (ONNX teacher {self.source})")
        return torch.from_numpy(raw.astype(np.float32)).to(images.device)

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


def load_torch_backbone(spec: str | Path):
    """``(model, source)``: the iResNet of a run folder (latest checkpoint), a checkpoint or a backbone state
    dict, on the CPU, with a description of where it came from. Used for teachers and for ``init``."""
    import torch

    from frmask.train.checkpoint import FORMAT, resolve_checkpoint

    path = resolve_checkpoint(Path(spec).expanduser())
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
        return model, f"{path} (step {data['step']})"
    state = data
    for key in ("state_dict", "model", "backbone"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: neither a training checkpoint nor a backbone state dict")
    return backbone_from_state_dict(state, str(path)), str(path)


def load_teacher(spec: str | Path, *, device="cpu", amp: bool = True, channels_last: bool = True,
                 amp_dtype: str = "bfloat16", channels: str = "", normalization: str = ""):
    """A teacher from a run folder, a checkpoint, a backbone state dict or an ``.onnx`` model (module doc)."""
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".onnx":
        profile = {k: v for k, v in (("channels", channels), ("normalization", normalization)) if v}
        return OnnxTeacher(path, device=device, **profile)
    try:
        model, source = load_torch_backbone(path)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"teacher: {exc}") from None
    return TorchTeacher(model, device=device, amp=amp, channels_last=channels_last, amp_dtype=amp_dtype,
                        source=source)
