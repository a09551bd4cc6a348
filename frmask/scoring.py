"""Score a model on a protocol: embed its images, compare its pairs, report every scenario.

:func:`score_protocol` is the library form of ``frmask score``; :mod:`frmask.report` writes and compares
the run folders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScoreResult:
    """Pair scores (NaN for a failure to acquire), one verification report per scenario, and provenance."""

    protocol: object
    scores: np.ndarray
    reports: dict
    failures: dict[int, str]
    run: dict = field(default_factory=dict)
    #: a :class:`~frmask.metrics.ScoreAccumulator` of the whole set when ``scores`` holds only some of its
    #: pairs (exhaustive protocols): the run folder's plots are drawn from it
    accumulator: object = None


def scenario_report(protocol, scores: np.ndarray, scenario: str, *, far: float = 0.002, fta: str = "reject",
                    convention: str = "iso", fmr_targets=()):
    """The verification report of one scenario's pairs (k-fold accuracy too where the protocol has folds:
    only over all pairs, since folds are contiguous runs of the whole protocol)."""
    from frmask.metrics import pairs_report, verification_report

    sel = protocol.selection(scenario)
    s, g = scores[sel], protocol.genuine[sel]
    if not g.any() or g.all():
        raise ValueError(f"scenario {scenario!r} has no {'impostor' if g.all() else 'genuine'} pairs")
    subjects = {}
    if protocol.subjects_a is not None:
        subjects = dict(subjects_a=protocol.subjects_a[sel], subjects_b=protocol.subjects_b[sel])
    if protocol.folds and scenario == "all":
        return pairs_report(s, g.astype(np.int8), folds=protocol.folds, far=far, fta=fta, convention=convention,
                            fmr_targets=fmr_targets, **subjects)
    if convention == "insightface":
        raise ValueError("the insightface convention needs a k-fold protocol (a .bin benchmark)")
    return verification_report(s[g], s[~g], far=far, fta=fta, convention=convention, fmr_targets=fmr_targets)


def run_date() -> str:
    """When a run is made, for its provenance: UTC, ISO 8601 to the second; ``SOURCE_DATE_EPOCH`` (seconds
    since 1970, the reproducible-builds convention) fixes it, so a rerun can be byte-identical."""
    import os
    from datetime import UTC, datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    except ValueError:
        raise ValueError(f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since 1970") from None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def embed_images(protocol, embedder, *, detector: str = "yunet", cache=None, threads: int = 2, progress=None):
    """:func:`frmask.embed.pipeline.embed_protocol`, refusing a protocol none of whose images could be embedded."""
    from frmask.embed.pipeline import embed_protocol

    emb = embed_protocol(protocol, embedder, detector=detector, cache=cache, threads=threads, progress=progress)
    if len(emb.failures) == len(protocol.images):
        first = next(iter(emb.failures.items()))
        raise ValueError(f"no image of {protocol.name} could be embedded (e.g. {protocol.images[first[0]].key}: "
                         f"{first[1]})")
    return emb


def score_protocol(embedder, protocol, *, model_name: str = "", detector: str = "yunet", cache=None,
                   threads: int = 2, progress=None, far: float = 0.002, fta: str = "reject",
                   convention: str = "iso", fmr_targets=(), extra: dict | None = None) -> ScoreResult:
    """Embed, compare and report ``protocol`` with ``embedder`` (module docstring)."""
    from frmask.embed.pipeline import pair_scores

    emb = embed_images(protocol, embedder, detector=detector, cache=cache, threads=threads, progress=progress)
    scores = pair_scores(protocol, emb.embeddings)
    reports = {name: scenario_report(protocol, scores, name, far=far, fta=fta, convention=convention,
                                     fmr_targets=fmr_targets)
               for name in protocol.scenario_names()}
    run = run_provenance(embedder, model_name=model_name, detector=detector, emb=emb,
                         protocol=protocol_provenance(protocol, extra))
    return ScoreResult(protocol, scores, reports, emb.failures, run)


def protocol_provenance(protocol, extra: dict | None = None) -> dict:
    """The ``protocol`` entry of a pair protocol's run: name, description, image and pair counts, ``extra``."""
    return {"name": protocol.name, "description": protocol.description, "n_images": len(protocol.images),
            "n_pairs": protocol.n_pairs, **(extra or {})}


def run_provenance(embedder, *, model_name: str, protocol: dict, detector: str, emb) -> dict:
    """The ``run`` entry of a run folder's ``metrics.json``: frmask version, date (:func:`run_date`), the model
    (name, SHA-256, input profile, flip), ``protocol`` as given, the detector and the embedding counts of
    ``emb`` (a :class:`~frmask.embed.pipeline.ProtocolEmbeddings`); ``processes`` (K) under torchrun."""
    from frmask._version import __version__
    from frmask.distributed import world_size

    profile = embedder.profile
    run = {
        "frmask": __version__,
        "date": run_date(),
        "model": {"name": model_name, "sha256": hashlib.sha256(embedder.model_bytes).hexdigest(),
                  "profile": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(profile).items()},
                  "flip": embedder.flip},
        "protocol": protocol,
        "detector": detector,
        "n_failures": len(emb.failures),
        "embedding": {"cached": emb.n_cached, "computed": emb.n_computed, "seconds": round(emb.seconds, 3)},
    }
    if world_size() > 1:  # under torchrun (frmask.distributed); absent for one process
        run["processes"] = world_size()
    return run


class ProtocolEvaluator:
    """Scores any embedding function on a protocol, for periodic evaluation during training.

    ``evaluator(embed_fn) -> {"<protocol>/<scenario>/<key>": value}`` where ``embed_fn`` maps uint8
    ``(N, 112, 112, 3)`` aligned RGB crops to L2-normalised embeddings (as :meth:`OnnxEmbedder.embed` and
    :func:`frmask.train.evaluate.make_embed_fn` do). The crops (detection and alignment included) are
    prepared once, on the first call; failures to acquire get NaN scores (the ``fta`` policy decides).
    ``keys``: the report keys to return for every scenario.
    """

    def __init__(self, protocol, *, detector: str = "yunet", size=(112, 112), far: float = 0.002,
                 fta: str = "reject", keys=("max_accuracy", "tpr_at_far", "fmr100", "eer")):
        self.protocol, self.detector, self.size = protocol, detector, tuple(size)
        self.far, self.fta, self.keys = far, fta, tuple(keys)
        self._crops = None
        self._ok = None

    def _prepare(self) -> None:
        from frmask.embed.pipeline import prepare_images

        p = self.protocol
        crops = prepare_images(p, range(len(p.images)), self.size, detector=self.detector)
        self._ok = np.array([not isinstance(c, str) for c in crops])
        if not self._ok.any():
            raise ValueError(f"no image of {p.name} could be aligned for evaluation")
        self._crops = np.stack([c for c in crops if not isinstance(c, str)])

    def __call__(self, embed_fn) -> dict[str, float]:
        if self._crops is None:
            self._prepare()
        vectors = np.asarray(embed_fn(self._crops), dtype=np.float32)
        embeddings = np.full((len(self._ok), vectors.shape[1]), np.nan, np.float32)
        embeddings[self._ok] = vectors
        from frmask.embed.pipeline import pair_scores

        scores = pair_scores(self.protocol, embeddings)
        out = {}
        for name in self.protocol.scenario_names():
            rep = scenario_report(self.protocol, scores, name, far=self.far, fta=self.fta).to_dict()
            out.update({f"{self.protocol.name}/{name}/{k}": float(rep[k]) for k in self.keys if k in rep})
        return out
