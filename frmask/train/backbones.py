"""iResNet backbones whose state_dict keys match insightface arcface_torch and ElasticFace.

Conventions: input (B, 3, 112, 112) float, RGB, (x - 127.5) / 127.5; output (B, embedding_size), not
normalised. Keys: conv1, bn1, prelu, layer{1..4}.{i}.(bn1, conv1, bn2, prelu, conv2, bn3, downsample.0/1),
bn2, fc, features - so the public `backbone.pth` files load strictly. The `features` BatchNorm1d has its affine
weight fixed at 1 (requires_grad False), as in insightface; its bias trains. No dtype is hard-coded: run the
model under `torch.autocast` for mixed precision, and `model.to(memory_format=torch.channels_last)` works
(the flatten before `fc` is in (C, H, W) order whatever the memory layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
from torch import nn

LAYERS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}
ALIASES = {"r18": "iresnet18", "r34": "iresnet34", "r50": "iresnet50", "r100": "iresnet100", "r200": "iresnet200"}
WIDTHS = (64, 128, 256, 512)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN, 3x3 conv, BN, PReLU, 3x3 conv (stride here), BN, + shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=1e-5)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.prelu = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return y + shortcut


class IResNet(nn.Module):
    """iResNet body: stem (3x3 conv, BN, PReLU) at full resolution, four stride-2 stages, BN, dropout, fc, BN1d."""

    def __init__(
        self, layers: tuple[int, ...], *, embedding_size: int = 512, dropout: float = 0.0, input_size: int = 112
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        if embedding_size < 1:
            raise ValueError(f"embedding_size must be positive, got {embedding_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if input_size < 16 or input_size % 16:
            raise ValueError(f"input_size must be a positive multiple of 16, got {input_size}")
        self.input_size = input_size
        self.embedding_size = embedding_size
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0], eps=1e-5)
        self.prelu = nn.PReLU(WIDTHS[0])
        in_ch = WIDTHS[0]
        for i, (width, blocks) in enumerate(zip(WIDTHS, layers), start=1):
            stage = [IBasicBlock(in_ch, width, stride=2)]
            stage += [IBasicBlock(width, width) for _ in range(1, int(blocks))]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            in_ch = width
        side = input_size // 16
        self.bn2 = nn.BatchNorm2d(WIDTHS[-1], eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(WIDTHS[-1] * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        self._init_weights()

    def _init_weights(self) -> None:
        # Same initialisation as insightface: conv N(0, 0.1), BN weight 1 / bias 0, features weight frozen at 1.
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.normal_(mod.weight, 0.0, 0.1)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(
                f"expected input (B, 3, {self.input_size}, {self.input_size}), got {tuple(x.shape)}"
            )
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


def _builder(name: str) -> Callable[..., IResNet]:
    def build(*, embedding_size: int = 512, dropout: float = 0.0, input_size: int = 112) -> IResNet:
        return IResNet(LAYERS[name], embedding_size=embedding_size, dropout=dropout, input_size=input_size)

    build.__name__ = name
    build.__doc__ = f"{name}: iResNet with blocks {LAYERS[name]} per stage."
    return build


BACKBONES: dict[str, Callable[..., IResNet]] = {name: _builder(name) for name in LAYERS}


def canonical_name(name: str) -> str:
    """'r100' / 'IResNet100' -> 'iresnet100'; ValueError listing the known names otherwise."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKBONES:
        known = ", ".join(list(BACKBONES) + list(ALIASES))
        raise ValueError(f"unknown backbone {name!r}; known: {known}")
    return key


def get_backbone(name: str, *, embedding_size: int = 512, dropout: float = 0.0, input_size: int = 112) -> IResNet:
    """Build a freshly initialised backbone by registry name or alias (r18, r34, r50, r100, r200)."""
    return BACKBONES[canonical_name(name)](embedding_size=embedding_size, dropout=dropout, input_size=input_size)


# ----------------------------------------------------------------------------------------------- weights

_WRAPPER_KEYS = ("state_dict", "model", "backbone")
_PREFIXES = ("module.", "backbone.")
_MAX_LISTED = 8


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _unwrap(obj: object, source: str) -> dict[str, torch.Tensor]:
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        is_map = isinstance(obj, Mapping)
        if is_map and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = [obj[k] for k in _WRAPPER_KEYS if k in obj] if is_map else []
        if not inner:
            break
        obj = inner[0]
    raise ValueError(
        f"{source}: no state_dict found (got {type(obj).__name__}): expected a mapping of names to tensors or a "
        f"dict holding one under one of the keys {', '.join(_WRAPPER_KEYS)}"
    )


def load_backbone_weights(model: nn.Module, path_or_state_dict: str | os.PathLike | Mapping) -> None:
    """Load backbone weights strictly into `model`, in place.

    Accepts a file path (loaded on CPU with weights_only=True), a bare state_dict, or a dict holding one under
    "state_dict", "model" or "backbone". Leading "module." (DDP) and "backbone." prefixes are stripped from keys.
    BatchNorm `num_batches_tracked` buffers may be absent from the source (older exports); any other missing
    key, any unexpected key, or any shape mismatch raises ValueError naming them (nothing is loaded then).
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = os.fspath(path_or_state_dict)
        try:
            obj = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"{source}: no such file") from None
        except Exception as exc:  # unpickling errors come in many types
            raise ValueError(f"{source}: not a readable torch weights file ({exc.__class__.__name__}: {exc})") from exc
    else:
        source, obj = "state_dict", path_or_state_dict
    raw = _unwrap(obj, source)
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        new = _strip(key)
        if new in state:
            raise ValueError(f"{source}: keys collide after stripping prefixes: {key!r} -> {new!r}")
        state[new] = value

    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} in source vs {tuple(expected[k].shape)} in model" for k in mismatched]
        problems.append(f"shape mismatches: {_listing(shapes)}")
        if "fc.weight" in mismatched and state["fc.weight"].dim() == 2:
            problems.append(
                f"embedding size {state['fc.weight'].shape[0]} in source vs {expected['fc.weight'].shape[0]} in model"
            )
    if problems:
        raise ValueError(f"{source}: weights do not fit the model: " + "; ".join(problems))
    for key in expected:
        if key not in state:  # only num_batches_tracked can get here
            state[key] = expected[key]
    model.load_state_dict(state, strict=True)
