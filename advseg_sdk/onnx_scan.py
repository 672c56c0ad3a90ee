"""Which tensors of an ONNX file keep their data in other files, read without the onnx package.

Enough of the protobuf wire format (onnx.proto field numbers) to find every tensor of a model,
its functions, node attributes and nested graphs: the torch- and onnx-free SDK uses it to refuse
bundles whose weights could be swapped beside a hashed graph.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from typing import Any

__all__ = ["onnx_external_data"]

# Where TensorProtos sit in an ONNX ModelProto (onnx.proto field numbers): enough of the wire
# format to find every tensor, without the onnx package (the SDK does not depend on it).
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE, _FUNCTION_NODE = 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _DATA_LOCATION_EXTERNAL = 13, 14, 1
_MAX_GRAPH_NESTING = 64


class _NotProtobuf(Exception):
    pass


def _varint(buf: Any, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise _NotProtobuf
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message; length-delimited values are (start, end)."""
    i = start
    value: Any
    while i < end:
        key, i = _varint(buf, i, end)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, end)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i, end)
            value, i = (i, i + n), i + n
        else:
            raise _NotProtobuf
        if i > end or field_no == 0:
            raise _NotProtobuf
        yield field_no, wire, value


def _tensor_external(buf: Any, span: tuple[int, int], found: list[str]) -> None:
    location, external = "", False
    for f, wire, v in _fields(buf, *span):
        if f == _TENSOR_DATA_LOCATION and wire == 0 and v == _DATA_LOCATION_EXTERNAL:
            external = True
        elif f == _TENSOR_EXTERNAL_DATA and wire == 2:  # StringStringEntryProto: key = 1, value = 2
            external = True
            entry = {
                k: bytes(buf[a:b]).decode("utf-8", "replace")
                for k, w, (a, b) in ((k, w, span2) for k, w, span2 in _fields(buf, *v) if w == 2)
            }
            if entry.get(1) == "location":
                location = entry.get(2, "")
    if external:
        found.append(location or "<unnamed>")


def _scan(buf: Any, span: tuple[int, int], kind: str, found: list[str], depth: int) -> None:
    if depth > _MAX_GRAPH_NESTING:
        raise _NotProtobuf
    for f, wire, v in _fields(buf, *span):
        if wire != 2:
            continue
        if kind == "model":
            if f == _MODEL_GRAPH:
                _scan(buf, v, "graph", found, depth + 1)
            elif f == _MODEL_FUNCTIONS:
                _scan(buf, v, "function", found, depth + 1)
        elif kind == "graph":
            if f == _GRAPH_NODE:
                _scan(buf, v, "node", found, depth + 1)
            elif f == _GRAPH_INITIALIZER:
                _tensor_external(buf, v, found)
            elif f == _GRAPH_SPARSE_INITIALIZER:
                _scan(buf, v, "sparse", found, depth + 1)
        elif kind == "function" and f == _FUNCTION_NODE:
            _scan(buf, v, "node", found, depth + 1)
        elif kind == "node" and f == _NODE_ATTRIBUTE:
            _scan(buf, v, "attribute", found, depth + 1)
        elif kind == "attribute":
            if f in (_ATTR_T, _ATTR_TENSORS):
                _tensor_external(buf, v, found)
            elif f in (_ATTR_G, _ATTR_GRAPHS):
                _scan(buf, v, "graph", found, depth + 1)
            elif f in (_ATTR_SPARSE, _ATTR_SPARSES):
                _scan(buf, v, "sparse", found, depth + 1)
        elif kind == "sparse" and f in (1, 2):  # values, indices
            _tensor_external(buf, v, found)


def onnx_external_data(path: str | os.PathLike) -> list[str]:
    """Locations of every tensor of the ONNX file at ``path`` whose data lives in another file.

    A bundle's manifest hashes its ONNX files only, so weights kept beside them
    (``save_as_external_data``) could be swapped unnoticed: loading refuses such graphs. Returns
    ``[]`` for a self-contained graph, and for bytes that are not protobuf at all (ONNX Runtime
    then refuses them with its own message).
    """
    found: list[str] = []
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return found
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                _scan(buf, (0, size), "model", found, 0)
            except _NotProtobuf:
                return []
    return found
