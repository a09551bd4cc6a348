"""Face embeddings: an ONNX recognition-model runner and a small zoo of named models.

Importing this package needs only numpy; ``onnx`` and onnxruntime are imported when used.
"""

from frmask.embed.onnx_model import (
    ModelProfile,
    OnnxEmbedder,
    cosine_scores,
    detect_profile,
    prune_graph_inputs,
)
from frmask.embed.zoo import MODELS, SFACE_SHA256, resolve_model

__all__ = [
    "MODELS",
    "SFACE_SHA256",
    "ModelProfile",
    "OnnxEmbedder",
    "cosine_scores",
    "detect_profile",
    "prune_graph_inputs",
    "resolve_model",
]
