"""Face embeddings from an ONNX recognition model, run through onnxruntime.

A :class:`ModelProfile` says how a model wants its input: memory layout (``"NCHW"`` or ``"NHWC"``),
channel order (``"RGB"`` or ``"BGR"``), pixel normalisation (``"raw"``: 0..255, ``"pm1"``:
``(x - 127.5) / 127.5``, ``"unit"``: 0..1), crop size ``(w, h)`` and the names of the image input and
the embedding output. :func:`detect_profile` reads layout, size and names from the graph; channel order
and normalisation cannot be read from a graph, so they default to the insightface convention (RGB,
``pm1``) unless given.

:class:`OnnxEmbedder` runs the model on uint8 RGB aligned crops and returns L2-normalised float32
embeddings. It copes with what real exported models do:

- a fixed batch dimension (often 1): images are run in batches of exactly that size (the last one
  padded with black images whose outputs are dropped);
- graph inputs that no node uses, or that are backed by an initializer (weights listed as inputs by
  old exporters): they are pruned from the graph's input list with the ``onnx`` package, so that only
  the image is fed (onnxruntime otherwise demands a value for every unused non-initializer input);
- non-finite outputs: :class:`ValueError` naming the batch and the images;
- outputs that are not embeddings: the output must be ``(N, D)`` with ``D >= 2``. ``(N, D, 1, 1)`` (the 1x1
  feature map that some exporters leave after a global pooling or a 1x1 convolution head) is squeezed to
  ``(N, D)``: its spatial extent is one pixel, so it is an embedding. Any other shape, an image ``(N, 3, H,
  W)`` or ``(N, D, 1)`` included, is refused with the model file and the shape named, when the session is
  made (from the shape onnxruntime infers) and again on every batch (from the real output);
- files that are not models: an empty file, a file that is not an ONNX protobuf, an IR version this
  onnxruntime cannot read (the message says which it can): one-line :class:`ValueError` naming the file.

>>> embedder = OnnxEmbedder("model.onnx", channels="BGR")        # doctest: +SKIP
>>> embeddings = embedder.embed(crops)                             # doctest: +SKIP
>>> scores = cosine_scores(embeddings[0::2], embeddings[1::2])     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frmask._onnx import make_session

__all__ = [
    "DEFAULT_SIZE",
    "ModelProfile",
    "OnnxEmbedder",
    "cosine_scores",
    "detect_profile",
    "prune_graph_inputs",
]

LAYOUTS = ("NCHW", "NHWC")
CHANNELS = ("RGB", "BGR")
NORMALIZATIONS = ("raw", "pm1", "unit")
DEFAULT_SIZE = (112, 112)
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class ModelProfile:
    """How a recognition model wants its input; see the module docstring. ``size`` is ``(w, h)``."""

    layout: str = "NCHW"
    channels: str = "RGB"
    normalization: str = "pm1"
    size: tuple[int, int] = DEFAULT_SIZE
    input_name: str = ""
    output_name: str = ""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {CHANNELS}, got {self.channels!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        try:
            width, height = (int(v) for v in self.size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be (w, h), got {self.size!r}") from None
        if width <= 0 or height <= 0:
            raise ValueError(f"size must be positive, got {self.size!r}")
        object.__setattr__(self, "size", (width, height))
        object.__setattr__(self, "input_name", str(self.input_name))
        object.__setattr__(self, "output_name", str(self.output_name))


# ------------------------------------------------------------------------------------ model graph


def model_source(model: bytes | str | Path) -> str:
    """How messages name a model: its path, or ``"the ONNX model"`` for bytes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "the ONNX model"
    return str(Path(model).expanduser())


def _model_bytes(model: bytes | str | Path) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    return path.read_bytes()


def _parse(model: bytes, source: str = "the ONNX model"):
    """The ModelProto of ``model``; ValueError naming ``source`` for an empty file or one that is not ONNX
    (protobuf parses many byte strings, so a model must also state an IR version and hold a graph)."""
    import onnx
    from google.protobuf.message import DecodeError

    if len(model) == 0:
        raise ValueError(f"{source}: the file is empty (0 bytes), not an ONNX model")
    try:
        proto = onnx.load_model_from_string(model)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: not an ONNX model (it does not parse as one: {exc})") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not len(proto.graph.output):
        raise ValueError(f"{source}: not an ONNX model ({len(model)} bytes without an IR version, a graph or "
                         f"outputs)")
    return proto


def _dims(value_info) -> list[int | str | None] | None:
    """Shape of a graph input: ints for fixed dims, names / None for dynamic ones; None if unknown."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _used_names(graph) -> set[str]:
    """Every tensor name consumed by a node of ``graph`` or of its subgraphs."""
    import onnx

    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                used |= _used_names(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    used |= _used_names(sub)
    used.update(output.name for output in graph.output)
    return used


def _real_inputs(model_proto) -> list[Any]:
    """Graph inputs that are neither initializer-backed nor unused."""
    graph = model_proto.graph
    initializers = {t.name for t in graph.initializer}
    used = _used_names(graph)
    return [i for i in graph.input if i.name not in initializers and i.name in used]


def prune_graph_inputs(model: bytes, source: str = "the ONNX model") -> bytes:
    """``model`` without the graph inputs that no node uses or that an initializer backs.

    Returned unchanged (same bytes) when there is nothing to prune. Initializer-backed inputs are kept
    for IR versions below 4, where the format requires them in the input list.
    """
    proto = _parse(model, source)
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    used = _used_names(graph)
    drop_initialized = proto.ir_version >= 4
    keep = [i for i in graph.input
            if i.name in used and not (drop_initialized and i.name in initializers)]
    if len(keep) == len(graph.input):
        return model
    del graph.input[:]
    graph.input.extend(keep)
    return proto.SerializeToString()


def _describe_inputs(inputs) -> str:
    parts = []
    for value_info in inputs:
        dims = _dims(value_info)
        shape = "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
        parts.append(f"{value_info.name!r} {shape}")
    return ", ".join(parts) or "none"


def detect_profile(model: bytes | str | Path, **overrides: Any) -> ModelProfile:
    """The :class:`ModelProfile` of an ONNX model (bytes or path), read from its graph.

    The image input is the one 4-D input with a dimension of 3 at position 1 (NCHW) or 3 (NHWC); the
    size comes from the two other non-batch dimensions (112 where dynamic); the output is the graph's
    first. ``channels`` and ``normalization`` default to ``"RGB"`` and ``"pm1"``. Any field may be given
    in ``overrides`` (``input_name`` picks among several image-like inputs). :class:`ValueError` when
    the model has no image-like input, several (without ``input_name``), or an unknown name is given.
    """
    return _detect(_model_bytes(model), model_source(model), overrides)


def _detect(data: bytes, source: str, overrides: dict) -> ModelProfile:
    """:func:`detect_profile` of the ONNX bytes ``data``; messages name ``source``."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelProfile)}
    if unknown:
        raise TypeError(f"unknown profile fields {sorted(unknown)}; known: "
                        f"{[f.name for f in dataclasses.fields(ModelProfile)]}")
    proto = _parse(data, source)
    inputs = _real_inputs(proto)
    candidates = []
    for value_info in inputs:
        dims = _dims(value_info)
        if dims is None or len(dims) != 4:
            continue
        if dims[1] == 3:
            candidates.append((value_info.name, "NCHW", dims[2], dims[3]))
        elif dims[3] == 3:
            candidates.append((value_info.name, "NHWC", dims[1], dims[2]))
    wanted = overrides.get("input_name")
    if wanted:
        if wanted not in {i.name for i in inputs}:
            raise ValueError(f"input_name {wanted!r} is not an input of the model; its inputs: "
                             f"{_describe_inputs(inputs)}")
        candidates = [c for c in candidates if c[0] == wanted] or [(wanted, "NCHW", None, None)]
    if not candidates:
        raise ValueError(f"{source}: the model has no image-like input (4-D with 3 channels at position 1 or 3); "
                         f"its inputs: {_describe_inputs(inputs)}")
    if len(candidates) > 1:
        raise ValueError(f"{source}: the model has several image-like inputs ({[c[0] for c in candidates]}); pick "
                         f"one with input_name=; its inputs: {_describe_inputs(inputs)}")
    name, layout, height, width = candidates[0]
    outputs = [o.name for o in proto.graph.output]
    if not outputs:
        raise ValueError("the model has no outputs")
    output = overrides.get("output_name") or outputs[0]
    if output not in outputs:
        raise ValueError(f"output_name {output!r} is not an output of the model; its outputs: {outputs}")
    size = (width if isinstance(width, int) else DEFAULT_SIZE[0],
            height if isinstance(height, int) else DEFAULT_SIZE[1])
    fields: dict[str, Any] = {"layout": layout, "channels": "RGB", "normalization": "pm1", "size": size,
                              "input_name": name, "output_name": output}
    fields.update(overrides)
    return ModelProfile(**fields)


# -------------------------------------------------------------------------------------- embedder


def _session(model: bytes, device: str, threads: int, source: str):
    return make_session(model, device, threads, stacklevel=4, source=source)


def embedding_shape(shape, source: str, output: str) -> tuple | None:
    """Check a model output's shape (ints, or names / None where dynamic) as an embedding: ``(N, D)`` with
    ``D >= 2``, or ``(N, D, 1, 1)`` (squeezed; module docstring). Returns the shape, or None when it cannot
    be decided yet (dynamic trailing dimensions, or no shape inferred). ValueError naming ``source`` and the
    shape otherwise."""
    shape = tuple(shape) if shape is not None else ()
    if not shape:
        return None
    known = [d if isinstance(d, (int, np.integer)) and not isinstance(d, bool) else None for d in shape]
    if len(shape) == 4 and None in known[2:]:
        return None
    squeezable = len(shape) == 4 and known[2:] == [1, 1]
    dim = known[1] if len(shape) >= 2 else None
    if (len(shape) == 2 or squeezable) and (dim is None or dim >= 2):
        return shape
    text = "(" + ", ".join("N" if k == 0 else ("?" if d is None else str(d)) for k, d in enumerate(known)) + ")"
    what = "an image" if len(shape) == 4 and known[1] in (1, 3) else "not an embedding"
    raise ValueError(f"{source}: output {output!r} has shape {text}, {what}; a face-recognition model must "
                     f"output embeddings (N, D) with D >= 2 (or (N, D, 1, 1)); pick another output with "
                     f"--output-name / output_name=")


_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxEmbedder:
    """Runs an ONNX face-recognition model on aligned crops; see the module docstring.

    ``model`` is ONNX bytes, a path, or a name known to :func:`frmask.embed.zoo.resolve_model` (whose
    profile is then the default). ``profile`` defaults to :func:`detect_profile`; ``profile_overrides``
    replace fields of either. ``device``: ``"cpu"``, ``"cuda"`` (CPU with a warning when CUDA is not
    usable) or ``"auto"`` (CUDA when available, silently CPU otherwise). ``batch_size`` is used when the
    model's batch dimension is dynamic; a fixed one wins. ``flip=True`` adds the embedding of each
    horizontally mirrored crop before normalising.
    """

    def __init__(self, model: bytes | str | Path, profile: ModelProfile | None = None, *,
                 device: str = "cpu", batch_size: int = 64, flip: bool = False, threads: int = 0,
                 **profile_overrides: Any) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        data, zoo_profile = self._resolve(model)
        self.source = model if zoo_profile is not None else model_source(model)
        if profile is None:
            if zoo_profile is not None:
                profile = dataclasses.replace(zoo_profile, **profile_overrides)
            else:
                profile = _detect(data, self.source, profile_overrides)
        elif profile_overrides:
            profile = dataclasses.replace(profile, **profile_overrides)
        if not isinstance(profile, ModelProfile):
            raise TypeError(f"profile must be a ModelProfile, got {type(profile).__name__}")
        self.profile = profile
        self.flip = bool(flip)
        self.device = device
        self.model_bytes = data
        self._session = _session(prune_graph_inputs(data, self.source), device, threads, self.source)
        inputs = {i.name: i for i in self._session.get_inputs()}
        if profile.input_name not in inputs:
            raise ValueError(f"input {profile.input_name!r} is not an input of the model; its inputs: "
                             f"{[(i.name, i.shape) for i in inputs.values()]}")
        others = [name for name in inputs if name != profile.input_name]
        if others:
            raise ValueError(f"the model needs inputs besides the image {profile.input_name!r}: "
                             f"{[(n, inputs[n].shape) for n in others]}")
        outputs = {o.name: o for o in self._session.get_outputs()}
        if profile.output_name not in outputs:
            raise ValueError(f"{self.source}: output {profile.output_name!r} is not an output of the model")
        embedding_shape(outputs[profile.output_name].shape, self.source, profile.output_name)
        image_input = inputs[profile.input_name]
        self._dtype = _INPUT_DTYPES.get(image_input.type)
        if self._dtype is None:
            raise ValueError(f"input {profile.input_name!r} has type {image_input.type}; expected float")
        batch = image_input.shape[0] if image_input.shape else None
        self.fixed_batch = int(batch) if isinstance(batch, int) and batch > 0 else None
        self.batch_size = self.fixed_batch or int(batch_size)

    @staticmethod
    def _resolve(model: Any) -> tuple[bytes, ModelProfile | None]:
        if isinstance(model, str) and not Path(model).expanduser().exists():
            from frmask.embed.zoo import MODELS, resolve_model

            if model in MODELS:
                return resolve_model(model)
        return _model_bytes(model), None

    @property
    def torch_device(self) -> str:
        """The torch device for work beside the model (score comparisons, 1:N searches): ``cuda`` when the model
        runs there (``device`` ``cuda`` or ``auto``) and torch sees a GPU, else ``cpu``."""
        import torch

        return "cuda" if self.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"

    def __repr__(self) -> str:
        return (f"OnnxEmbedder({self.profile!r}, device={self.device!r}, batch_size={self.batch_size}, "
                f"flip={self.flip})")

    # ------------------------------------------------------------------------------ preprocessing

    def _prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> the model's input array."""
        x = images.astype(np.float32)
        if self.profile.channels == "BGR":
            x = x[..., ::-1]
        if self.profile.normalization == "pm1":
            x = (x - 127.5) / 127.5
        elif self.profile.normalization == "unit":
            x = x / 255.0
        if self.profile.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self._dtype)

    def _run(self, images: np.ndarray, what: str = "") -> np.ndarray:
        """Raw (unnormalised) float64 embeddings of ``images``, batch by batch."""
        step = self.batch_size
        outputs = []
        for first in range(0, len(images), step):
            chunk = images[first:first + step]
            count = len(chunk)
            if self.fixed_batch is not None and count < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - count,) + chunk.shape[1:], dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            result = self._session.run([self.profile.output_name],
                                       {self.profile.input_name: self._prepare(chunk)})[0]
            result = np.asarray(result, dtype=np.float64)
            if result.ndim == 0 or result.shape[0] != len(chunk):
                raise ValueError(f"{self.source}: output {self.profile.output_name!r} has shape {result.shape} "
                                 f"for a batch of {len(chunk)} images; expected the batch first")
            embedding_shape(result.shape, self.source, self.profile.output_name)
            result = result[:count].reshape(count, result.shape[1])
            bad = ~np.isfinite(result).all(axis=1)
            if bad.any():
                index = first // step
                raise ValueError(f"the model gave non-finite (NaN/inf) embeddings in batch {index}{what} "
                                 f"(images {[int(i) + first for i in np.flatnonzero(bad)]})")
            outputs.append(result)
        return np.concatenate(outputs)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, D) L2-normalised embeddings of uint8 (N, H, W, 3) RGB crops of the profile's size."""
        images = np.asarray(images)
        if images.ndim == 3:
            raise ValueError(f"images must be a batch (N, H, W, 3); got one image {images.shape} "
                             f"(use images[None])")
        width, height = self.profile.size
        if images.ndim != 4 or images.shape[1:] != (height, width, 3):
            raise ValueError(f"images must have shape (N, {height}, {width}, 3) (RGB crops of the "
                             f"profile's size {width}x{height}), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if len(images) == 0:
            dim = self._run(np.zeros((1, height, width, 3), np.uint8)).shape[1]
            return np.zeros((0, dim), np.float32)
        embeddings = self._run(images)
        if self.flip:
            mirrored = np.ascontiguousarray(images[:, :, ::-1])
            embeddings = embeddings + self._run(mirrored, " (mirrored images, flip=True)")
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        zero = np.flatnonzero(norms[:, 0] == 0)
        if zero.size:
            raise ValueError(f"the model gave all-zero embeddings for images {zero.tolist()[:10]}")
        return (embeddings / norms).astype(np.float32)

    __call__ = embed


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarities of two (N, D) embedding arrays (rows are normalised first)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings must be two (N, D) arrays of one shape, got {a.shape} and {b.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", a, b)
