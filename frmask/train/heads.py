"""Margin heads: ElasticFace-Arc, ElasticFace-Arc+, ArcFace, CosFace.

Every head holds `weight` (num_classes, embedding_size) - the class centres - and maps (embeddings (B, E),
labels (B,) int64[, margins (B,)]) to logits (B, num_classes) = s * cos(theta_j) for j != label and
s * f(theta_label, m) for the target class; the loss is `F.cross_entropy(logits, labels)`. Embeddings and
centres are L2-normalised inside forward. (ElasticFace stores its `kernel` as (E, C): transpose it to load.)

Target logit f:
- arc heads: cos(theta + m), theta = acos(cos) on cosines clamped to [-1 + EPS, 1 - EPS] (EPS = 1e-6), so the
  gradient of acos stays finite (about 700 at the clamp) when an embedding coincides with its centre.
  When theta + m > pi, cos(theta + m) would rise again as theta grows (the target logit would reward moving
  away from the centre). The ElasticFace authors' code (utils/losses.py) does not guard against this; insightface
  arcface_torch ArcFace (easy_margin False) switches to cos(theta) - m * sin(m) when cos(theta) <= cos(pi - m).
  We do as insightface, per sample (m may differ per sample), so the target logit decreases monotonically with
  theta. It only matters for target angles above pi - m (150 degrees for m = 0.5), which hardly occur in practice.
- cosface: cos(theta) - m.

Margins are computed in float32 (float64 for float64 inputs) whatever the autocast dtype of the cosines;
only the B target entries are changed (the (B, C) cosine matrix is computed once, no acos over all classes).

ElasticFace margins (authors' code, fdbtrs/ElasticFace utils/losses.py, config/config.py): one margin per
sample drawn from Normal(m, std) (torch.normal, unclipped) at every forward; m = 0.5 with std = 0.05 for
ElasticFace-Arc and std = 0.0175 for ElasticFace-Arc+ (the paper text's sigma differs). Here `sample_margins`
draws them (optionally from a given generator) and forward draws them when none are passed.

The "+" rule: the batch's margins are sorted ascending and the target cosines descending (on detached values),
so the sample closest to its centre (largest target cosine) gets the smallest margin and the farthest (hardest)
sample the largest; i.e. the sample with the k-th largest target cosine gets the k-th smallest margin. Margins
are treated as a pool: whatever `margins` are passed, their assignment to samples is decided by this rank.
Sorting is within the batch given to forward (the authors sort within each GPU's batch; so does a DDP rank
here). Ties in cosine are broken by sample order (stable sort).
The authors' code writes `margin_sorted[argsort_desc(cos)]`, i.e. it indexes the sorted margins by the
permutation instead of scattering them through it: sample i gets margin_sorted[idx[i]] where idx[0] is the
sample with the largest cosine. That matches the rule above only when the permutation is its own inverse; in
general it pairs margins with samples in an order unrelated to their cosines' ranks. It is kept as the named
compatibility option `plus_rule="authors-code"`; the default `plus_rule="rank"` implements the stated rule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("elasticface-arc", "elasticface-arc+", "arcface", "cosface")
EPS = 1e-6
PLUS_RULES = ("rank", "authors-code")
_DEFAULTS = {
    "elasticface-arc": (0.5, 0.05),
    "elasticface-arc+": (0.5, 0.0175),
    "arcface": (0.5, 0.0),
    "cosface": (0.35, 0.0),
}


def plus_order(target_cos: torch.Tensor, margins: torch.Tensor, rule: str = "rank") -> torch.Tensor:
    """Assign the pool `margins` (B,) to samples by their target cosines (B,) as ElasticFace+ does (see module doc)."""
    if rule not in PLUS_RULES:
        raise ValueError(f"unknown plus_rule {rule!r}; known: {', '.join(PLUS_RULES)}")
    with torch.no_grad():
        idx = torch.sort(target_cos.detach(), descending=True, stable=True).indices
        pool = torch.sort(margins.detach(), stable=True).values
        if rule == "authors-code":
            return pool[idx]
        out = torch.empty_like(pool)
        out[idx] = pool
        return out


def arc_target(cos: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """cos(theta + m) with the insightface fallback cos(theta) - m sin(m) where theta + m > pi (>= float32)."""
    dtype = torch.promote_types(cos.dtype, torch.float32)
    cos = cos.to(dtype).clamp(-1.0 + EPS, 1.0 - EPS)
    m = margins.to(dtype)
    theta = torch.acos(cos)
    return torch.where(theta + m <= math.pi, torch.cos(theta + m), cos - m * torch.sin(m))


class MarginHead(nn.Module):
    """Normalised linear classifier with a margin on the target class; see the module docstring."""

    def __init__(
        self,
        kind: str,
        *,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m: float,
        std: float = 0.0,
        plus_rule: str = "rank",
    ) -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"unknown head {kind!r}; known: {', '.join(HEADS)}")
        if embedding_size < 1 or num_classes < 2:
            raise ValueError(f"need embedding_size >= 1 and num_classes >= 2, got {embedding_size}, {num_classes}")
        if not (s > 0 and math.isfinite(s)) or not math.isfinite(m) or not (std >= 0 and math.isfinite(std)):
            raise ValueError(f"need s > 0, finite m and std >= 0, got s={s}, m={m}, std={std}")
        if plus_rule not in PLUS_RULES:
            raise ValueError(f"unknown plus_rule {plus_rule!r}; known: {', '.join(PLUS_RULES)}")
        self.kind, self.s, self.m, self.std, self.plus_rule = kind, float(s), float(m), float(std), plus_rule
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)  # as the ElasticFace code; the scale is irrelevant after normalising

    @property
    def elastic(self) -> bool:
        return self.kind.startswith("elasticface")

    def extra_repr(self) -> str:
        extra = f", std={self.std}" if self.elastic else ""
        plus = f", plus_rule={self.plus_rule!r}" if self.kind == "elasticface-arc+" else ""
        return f"{self.kind}, {self.embedding_size} -> {self.num_classes}, s={self.s}, m={self.m}{extra}{plus}"

    def sample_margins(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n float32 margins on CPU (or the generator's device): Normal(m, std) for ElasticFace, m otherwise."""
        device = generator.device if generator is not None else torch.device("cpu")
        if not self.elastic:
            return torch.full((n,), self.m, dtype=torch.float32, device=device)
        return torch.normal(self.m, self.std, size=(n,), generator=generator, device=device)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C) cosine matrix of the embeddings against the normalised class centres (autocast dtype)."""
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"embeddings must be (B, {self.embedding_size}), got {tuple(embeddings.shape)}")
        batch = embeddings.shape[0]
        if labels.shape != (batch,) or labels.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"labels must be an integer tensor of shape ({batch},), got {labels.dtype} {tuple(labels.shape)}")
        if margins is None:
            margins = self.sample_margins(batch)
        elif margins.shape != (batch,):
            raise ValueError(f"margins must have shape ({batch},), got {tuple(margins.shape)}")
        labels = labels.long()
        cos = self.cosines(embeddings)
        cos = cos.to(torch.promote_types(cos.dtype, torch.float32))  # margins in >= float32 under autocast
        margins = margins.to(device=cos.device, dtype=cos.dtype)
        target = cos.gather(1, labels[:, None]).squeeze(1)
        if self.kind == "elasticface-arc+":
            margins = plus_order(target, margins, self.plus_rule)
        if self.kind == "cosface":
            new_target = target - margins
        else:
            new_target = arc_target(target, margins)
        logits = cos.scatter(1, labels[:, None], new_target[:, None])
        return logits * self.s


def get_head(
    name: str,
    *,
    embedding_size: int,
    num_classes: int,
    s: float = 64.0,
    m: float | None = None,
    std: float | None = None,
    plus_rule: str = "rank",
) -> MarginHead:
    """Build a head by name (HEADS); m / std default per head: elasticface-arc 0.5 / 0.05, elasticface-arc+
    0.5 / 0.0175, arcface 0.5, cosface 0.35 (std is ignored by the fixed-margin heads)."""
    key = str(name).strip().lower()
    if key not in _DEFAULTS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(HEADS)}")
    m0, std0 = _DEFAULTS[key]
    return MarginHead(
        key,
        embedding_size=embedding_size,
        num_classes=num_classes,
        s=s,
        m=m0 if m is None else m,
        std=std0 if std is None else std,
        plus_rule=plus_rule,
    )
