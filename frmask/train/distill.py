"""Template-level knowledge distillation (MaskInv): the KD loss and the schedule of its weight lambda.

L = L_head + lambda(step) * kd_loss(student, teacher), where kd_loss is the MSE between the L2-normalised
student and teacher embeddings, averaged over batch and dimensions (so it is ||s/|s| - t/|t|||^2 / (B * E)).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

# Variant -> (base, high, switch_at). ElasticFace-Arc (no masks) and ElasticFace-Arc-Aug (masks, no KD) use 0;
# MaskInv-LG keeps 100; MaskInv-HG raises 100 to 3000 at 77 % of training (227k of 295k iterations).
VARIANTS: dict[str, tuple[float, float | None, float]] = {
    "elasticface": (0.0, None, 0.77),
    "aug": (0.0, None, 0.77),
    "lg": (100.0, None, 0.77),
    "hg": (100.0, 3000.0, 0.77),
}


def kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE of L2-normalised (B, E) embeddings, mean over batch and dimensions, computed in at least float32;
    the teacher is detached (no gradient reaches it)."""
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher must be (B, E) of equal shape, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    dtype = torch.promote_types(student.dtype, torch.float32)  # float32 under autocast, float64 kept
    s = F.normalize(student.to(dtype), dim=1)
    t = F.normalize(teacher.detach().to(dtype), dim=1)
    return F.mse_loss(s, t, reduction="mean")


class LambdaSchedule:
    """lambda(step) = base for step < switch_step, high from switch_step on (constant base when high is None).

    switch_step = round(switch_at * total_steps) (Python round: half to even); total_steps is needed only when
    high is set. Steps count from 0.
    """

    def __init__(
        self, base: float = 100.0, high: float | None = None, switch_at: float = 0.77, total_steps: int | None = None
    ) -> None:
        if not (math.isfinite(base) and base >= 0):
            raise ValueError(f"base must be finite and >= 0, got {base}")
        if high is not None and not (math.isfinite(high) and high >= 0):
            raise ValueError(f"high must be finite and >= 0 or None, got {high}")
        if not 0.0 <= switch_at <= 1.0:
            raise ValueError(f"switch_at must be in [0, 1], got {switch_at}")
        if total_steps is not None and (not isinstance(total_steps, numbers.Integral) or total_steps < 1):
            raise ValueError(f"total_steps must be a positive integer or None, got {total_steps!r}")
        if high is not None and total_steps is None:
            raise ValueError("total_steps is required when high is set")
        self.base = float(base)
        self.high = None if high is None else float(high)
        self.switch_at = float(switch_at)
        self.total_steps = None if total_steps is None else int(total_steps)

    @classmethod
    def for_variant(cls, variant: str, total_steps: int | None = None) -> LambdaSchedule:
        """The schedule of a paper variant: elasticface, aug, lg or hg."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        base, high, switch_at = VARIANTS[variant]
        return cls(base, high, switch_at, total_steps)

    @property
    def switch_step(self) -> int | None:
        """First step that uses `high`; None for a constant schedule."""
        if self.high is None:
            return None
        return round(self.switch_at * self.total_steps)

    def __call__(self, step: int) -> float:
        if not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        switch = self.switch_step
        return self.base if switch is None or step < switch else self.high

    def to_dict(self) -> dict:
        return {"base": self.base, "high": self.high, "switch_at": self.switch_at, "total_steps": self.total_steps}

    @classmethod
    def from_dict(cls, d: dict) -> LambdaSchedule:
        unknown = set(d) - {"base", "high", "switch_at", "total_steps"}
        if unknown:
            raise ValueError(f"unknown LambdaSchedule fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LambdaSchedule) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        if self.high is None:
            return f"LambdaSchedule(base={self.base:g}, constant)"
        return (
            f"LambdaSchedule(base={self.base:g} -> high={self.high:g} at step {self.switch_step} "
            f"of {self.total_steps}, switch_at={self.switch_at:g})"
        )
