"""Training configuration: the :class:`TrainConfig` dataclass and its TOML files.

A configuration is built in layers, each a flat TOML table of :class:`TrainConfig` fields:
the dataclass defaults (the paper's constants), then a *scale* file (``paper``: MS1MV2, iResNet-100,
batch 512, 295k steps; ``small``: a CPU test scale), then a *variant* file (``elasticface``, ``aug``,
``lg``, ``hg``: masks and the distillation weight), then explicit overrides (command-line options and
``--set key=value``). Scale and variant are bundled names (``frmask/train/configs/<name>.toml``) or
paths to TOML files. An unknown key is a :class:`ValueError` naming the key and its source.

Conventions: ``batch_size`` is the global batch (all processes together); the learning rate is
``lr * batch_size / lr_batch`` (0.1 per 512 images); ``lr_milestones`` are fractions of ``steps``
at which the rate is divided by 10 (80k, 140k, 210k of 295k in the paper); the distillation weight
is ``kd_lambda`` before ``round(kd_switch_at * steps)`` and ``kd_lambda_high`` from it on (0 = never
raised).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "VARIANTS", "SCALES", "AMP_DTYPES", "RUNTIME_KEYS", "load_config", "read_toml_config",
           "parse_set", "config_diff"]

VARIANTS = ("elasticface", "aug", "lg", "hg")
SCALES = ("paper", "small")
AMP_DTYPES = ("bfloat16", "float16")

RUNTIME_KEYS = frozenset({"workers", "log_every", "checkpoint_every", "keep_checkpoints", "eval_every",
                          "eval_bins", "eval_mfr2", "eval_flip", "eval_batch_size", "compile", "tensorboard",
                          "augment_device"})
"""Fields that do not change what is trained; ``--resume`` accepts a different value for them."""

_PAPER_MILESTONES = (80_000 / 295_000, 140_000 / 295_000, 210_000 / 295_000)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see the module docstring for conventions)."""

    variant: str = "elasticface"
    # model
    backbone: str = "iresnet100"
    embedding_size: int = 512
    dropout: float = 0.0
    head: str = "elasticface-arc"
    head_s: float = 64.0
    head_m: float = 0.5
    head_std: float = 0.05
    init: str = ""  # student backbone initialisation: run folder, checkpoint or backbone .pth ("" = random)
    # optimisation
    steps: int = 295_000
    batch_size: int = 512
    lr: float = 0.1
    lr_batch: int = 512
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = _PAPER_MILESTONES
    lr_gamma: float = 0.1
    clip_grad_norm: float = 5.0
    # distillation (MaskInv)
    kd_lambda: float = 0.0
    kd_lambda_high: float = 0.0
    kd_switch_at: float = 0.77
    teacher: str = ""
    teacher_channels: str = ""
    teacher_normalization: str = ""
    # mask augmentation of the student's input
    mask: bool = False
    mask_prob: float = 0.5
    mask_types: tuple[str, ...] = ("surgical", "n95", "kn95", "cloth")
    mask_colors: str = "realistic"
    mask_jitter: float = 3.0
    mask_template: str = ""
    align: str = "auto"
    seed: int = 0
    # execution
    amp: bool = True  # autocast of the backbones on CUDA
    amp_dtype: str = "bfloat16"  # its type: bfloat16, or float16 (with a GradScaler; for GPUs without bf16)
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    workers: int = 4
    augment_device: str = "auto"  # masks drawn per sample in the workers, or per batch on the device (auto: CUDA)
    # bookkeeping
    log_every: int = 100
    checkpoint_every: int = 5000
    # newest checkpoints kept (0 = all): each is 192 MB at the small scale, about 870 MB at the paper's
    keep_checkpoints: int = 3
    eval_every: int = 0
    eval_bins: tuple[str, ...] = ()
    eval_mfr2: str = ""  # an MFR2 folder: evaluated per real-mask scenario through frmask.scoring
    eval_flip: bool = True
    eval_batch_size: int = 256
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), _field_types()[f.name]))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field with an impossible value."""
        positive = ("embedding_size", "steps", "batch_size", "lr_batch", "log_every", "checkpoint_every",
                    "eval_batch_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"config {name} must be positive, got {getattr(self, name)}")
        for name in ("workers", "keep_checkpoints", "eval_every", "kd_lambda", "kd_lambda_high", "lr",
                     "weight_decay", "momentum", "clip_grad_norm", "dropout", "mask_jitter", "head_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"config {name} must be >= 0, got {getattr(self, name)}")
        for name in ("mask_prob", "kd_switch_at", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"config {name} must lie in [0, 1], got {getattr(self, name)}")
        if any(not 0.0 < m < 1.0 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(
                self.lr_milestones):
            raise ValueError(f"config lr_milestones must be increasing fractions in (0, 1), got "
                             f"{list(self.lr_milestones)}")
        if self.teacher_channels not in ("", "RGB", "BGR"):
            raise ValueError(f"config teacher_channels must be RGB or BGR, got {self.teacher_channels!r}")
        if self.teacher_normalization not in ("", "pm1", "raw", "unit"):
            raise ValueError(f"config teacher_normalization must be pm1, raw or unit, got "
                             f"{self.teacher_normalization!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"config amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if self.augment_device not in ("auto", "worker", "batch"):
            raise ValueError(f"config augment_device must be auto, worker or batch, got {self.augment_device!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"config variant must be one of {VARIANTS}, got {self.variant!r}")

    # ------------------------------------------------------------------------------ derived values

    @property
    def uses_teacher(self) -> bool:
        """Whether the distillation weight is ever > 0 (only then a teacher is needed and run)."""
        return self.kd_lambda > 0 or self.kd_lambda_high > 0

    @property
    def scaled_lr(self) -> float:
        """The SGD learning rate for the global batch: ``lr * batch_size / lr_batch``."""
        return self.lr * self.batch_size / self.lr_batch

    def milestone_steps(self) -> list[int]:
        """The steps at which the learning rate is multiplied by ``lr_gamma``."""
        return [round(f * self.steps) for f in self.lr_milestones]

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-friendly values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        unknown = sorted(set(values) - set(_field_types()))
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {unknown}; known keys: {sorted(_field_types())}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes}, "override")

    def to_toml(self) -> str:
        """The configuration as a TOML table (readable by :func:`read_toml_config`)."""
        lines = []
        for key, value in self.to_dict().items():
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- type handling


_TYPES: dict[str, Any] | None = None


def _field_types() -> dict[str, Any]:
    global _TYPES
    if _TYPES is None:
        hints = typing.get_type_hints(TrainConfig)
        _TYPES = {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}
    return _TYPES


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` checked against the field's type; ints are accepted for floats, lists for tuples."""
    def bad(what: str):
        return ValueError(f"config {name} must be {what}, got {value!r} ({type(value).__name__})")

    if kind is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise bad("a list")
        return tuple(_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    raise TypeError(f"unsupported config field type {kind!r}")  # pragma: no cover


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


# ------------------------------------------------------------------------------------------ loading


def read_toml_config(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The table of a bundled config name (``"hg"``, ``"small"``) or a TOML file, and its source name.

    Keys are checked against :class:`TrainConfig` (ValueError naming the unknown key and the file).
    """
    text, source = _config_text(name_or_path)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(_field_types()))
    if unknown:
        raise ValueError(f"{source}: unknown config key(s) {unknown}; known keys: {sorted(_field_types())}")
    return table, source


def _config_text(name_or_path: str | Path) -> tuple[str, str]:
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and "/" not in name_or_path and not name_or_path.endswith(".toml"):
        resource = files("frmask.train.configs") / f"{name_or_path}.toml"
        if resource.is_file():
            return resource.read_text(encoding="utf-8"), f"configs/{name_or_path}.toml"
        bundled = sorted(p.name[:-5] for p in files("frmask.train.configs").iterdir()
                         if p.name.endswith(".toml"))
        raise ValueError(f"unknown config {name_or_path!r}; bundled configs: {bundled} (or give a .toml path)")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return path.read_text(encoding="utf-8"), str(path)


def parse_set(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values are TOML literals (``5``, ``0.1``, ``true``, ``[0.3, 0.6]``,
    ``"text"``) and anything that is not a TOML literal is taken as a plain string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in _field_types():
            raise ValueError(f"--set {item!r}: unknown config key {key!r}; known keys: {sorted(_field_types())}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        if _field_types()[key] is str and not isinstance(value, str):
            value = raw.strip()
        out[key] = value
    return out


def load_config(variant: str | Path, scale: str | Path = "paper", overrides: dict[str, Any] | None = None
                ) -> TrainConfig:
    """Defaults <- ``scale`` file <- ``variant`` file <- ``overrides`` (see the module docstring)."""
    values: dict[str, Any] = {}
    scale_table, _ = read_toml_config(scale)
    values.update(scale_table)
    variant_table, source = read_toml_config(variant)
    values.update(variant_table)
    if "variant" not in values:
        raise ValueError(f"{source}: a variant file must set 'variant' (one of {VARIANTS})")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_field_types()))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(_field_types())}")
    values.update(overrides)
    return TrainConfig.from_dict(values)


def config_diff(a: dict[str, Any], b: dict[str, Any], ignore=RUNTIME_KEYS) -> list[str]:
    """Keys whose values differ between two config dicts (missing on one side counts), ``ignore`` aside."""
    keys = (set(a) | set(b)) - set(ignore)
    return sorted(k for k in keys if _norm(a.get(k, "<missing>")) != _norm(b.get(k, "<missing>")))


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

