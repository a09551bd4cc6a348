"""In-memory rewrite of block-quantised ONNX files that onnxruntime refuses (used for YuNet).

The YuNet file is "block-quantised": every weight goes through a DequantizeLinear node (opset 21)
with a block_size attribute. For 26 of them the scale (and zero point) has a single element, shape
(1,) or (1, 1); OpenCV accepts that, but onnxruntime (1.31 here) rejects it ("block_size must
be 0 for per-tensor quantization" / "scale must be 1D tensor with size 64"). One block covering the
whole tensor is per-tensor quantisation, so the file is rewritten in memory, after its SHA-256 check:
those scales and zero points become scalars and their nodes lose block_size and axis. The numbers
are unchanged (outputs agree with cv2.dnn on the original file to ~1e-5). The rewrite edits the
protobuf wire format directly, so that frmask needs no ``onnx`` package for it.
"""

from __future__ import annotations

from typing import Any


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buffer: bytes) -> list[tuple[int, int, Any, bytes]]:
    """Protobuf fields of a message: ``(number, wire type, value, raw bytes of the whole field)``."""
    fields = []
    pos = 0
    while pos < len(buffer):
        start = pos
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire == 1:
            value, pos = buffer[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buffer, pos)
            value, pos = buffer[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buffer[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buffer):
            raise ValueError("truncated protobuf field")
        fields.append((number, wire, value, buffer[start:pos]))
    return fields


def _message_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _tensor_size(tensor: bytes) -> int:
    """Element count of a TensorProto (product of its dims, field 1, packed or not)."""
    size = 1
    for number, wire, value, _ in _fields(tensor):
        if number != 1:
            continue
        if wire == 0:
            size *= value
        else:  # packed
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                size *= dim
    return size


def _per_tensor_dequantize(model: bytes) -> bytes:
    """Rewrite one-block DequantizeLinear nodes of an ONNX model as per-tensor ones (see above)."""
    # ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5; NodeProto.input = 1, .op_type = 4,
    # .attribute = 5, .domain = 7; AttributeProto.name = 1; TensorProto.dims = 1, .name = 8.
    model_fields = _fields(model)
    graphs = [f for f in model_fields if f[0] == 7]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model with one graph")
    graph_fields = _fields(graphs[0][2])
    tensors = {}
    for index, (number, _, value, _) in enumerate(graph_fields):
        if number == 5:
            name = next((v for n, _, v, _ in _fields(value) if n == 8), b"")
            tensors[name] = index
    uses: dict[bytes, int] = {}
    nodes = []
    for index, (number, _, value, _) in enumerate(graph_fields):
        if number == 1:
            node = _fields(value)
            inputs = [v for n, _, v, _ in node if n == 1]
            for name in inputs:
                uses[name] = uses.get(name, 0) + 1
            nodes.append((index, node, inputs))
    replace: dict[int, bytes] = {}
    for index, node, inputs in nodes:
        op_type = next((v for n, _, v, _ in node if n == 4), b"")
        domain = next((v for n, _, v, _ in node if n == 7), b"")
        if op_type != b"DequantizeLinear" or domain not in (b"", b"ai.onnx") or len(inputs) < 2:
            continue
        quant = inputs[1:3]  # scale and (optional) zero point
        if not all(name in tensors and uses[name] == 1 for name in quant):
            continue
        if not all(_tensor_size(graph_fields[tensors[name]][2]) == 1 for name in quant):
            continue
        attributes = [f for f in node if f[0] == 5]
        if not any(next((v for n, _, v, _ in _fields(a[2]) if n == 1), b"") == b"block_size"
                   for a in attributes):
            continue
        kept = [f for f in node if f[0] != 5 or next(
            (v for n, _, v, _ in _fields(f[2]) if n == 1), b"") not in (b"block_size", b"axis")]
        replace[index] = _message_field(1, b"".join(f[3] for f in kept))
        for name in quant:
            position = tensors[name]
            scalar = b"".join(f[3] for f in _fields(graph_fields[position][2]) if f[0] != 1)
            replace[position] = _message_field(5, scalar)
    if not replace:
        return model
    graph = b"".join(replace.get(i, f[3]) for i, f in enumerate(graph_fields))
    return b"".join(_message_field(7, graph) if f[0] == 7 else f[3] for f in model_fields)
